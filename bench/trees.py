"""The tree benchmark of `make bench`: one XGBoost model (200 trees, depth 8,
20 features, reg:squarederror, fixed seed) run by
  - Stratus on its ONNX-ML form (TreeEnsembleRegressor),
  - Stratus on the native XGBoost JSON (when `stratus inspect` accepts it),
  - XGBoost's own predictor (Booster.inplace_predict, nthread 1, timed here
    in Python per call: the figure includes the Python call overhead),
  - ONNX Runtime's TreeEnsembleRegressor (npm onnxruntime-node),
1 thread, batch 1 and 1000, on the same rows (uniform in [-1, 1), the
generator of ort_bench.js).  Prints the median microseconds per row and
the ratios peer / Stratus (above 1: Stratus is faster).

    /usr/bin/python3 bench/trees.py STRATUS_BIN CACHE_DIR [SECONDS]
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
sys.path.insert(0, HERE)
import engine  # noqa: E402  (ONNX Runtime install and driver)
import ml_trees  # noqa: E402

N_FEATURES, N_TREES, DEPTH = 20, 200, 8
BATCHES = (1, 1000)


def rows(n):
    """The rows ort_bench.js feeds: its LCG, uniform in [-1, 1)."""
    out = np.empty(n * N_FEATURES, np.float32)
    seed = 12345
    for i in range(out.size):
        seed = (seed * 1103515245 + 12345) % 2147483648
        out[i] = seed / 1073741824 - 1
    return out.reshape(n, N_FEATURES)


def build(cache):
    import onnx
    import xgboost as xgb
    os.makedirs(cache, exist_ok=True)
    native = os.path.join(cache, "trees_xgb.json")
    onnx_path = os.path.join(cache, "trees.onnx")
    if not (os.path.exists(native) and os.path.exists(onnx_path)):
        rng = np.random.default_rng(42)
        X = rng.uniform(-1, 1, size=(20000, N_FEATURES)).astype(np.float32)
        y = np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2] + np.abs(X[:, 3]) + 0.1 * rng.normal(size=len(X))
        bst = xgb.train({"objective": "reg:squarederror", "max_depth": DEPTH, "eta": 0.1,
                         "nthread": 2, "seed": 0}, xgb.DMatrix(X, label=y), N_TREES)
        bst.save_model(native)
        # float attributes: exact for XGBoost's float thresholds, and the
        # form every ONNX Runtime build reads
        onnx.save(ml_trees.from_xgboost(bst, N_FEATURES, double_attrs=False), onnx_path)
    for b in BATCHES:
        path = os.path.join(cache, f"trees_x{b}.npy")
        if not os.path.exists(path):
            np.save(path, rows(b))
    return native, onnx_path


def stratus(binary, model, batch, seconds, cache, input_name="X"):
    args = [binary, "bench", model, "--json", "--threads", "1", "--seconds", str(seconds)]
    if input_name:
        args += ["--input", f"{input_name}={os.path.join(cache, f'trees_x{batch}.npy')}"]
    else:
        args += ["--batch", str(batch)]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout)


def native_input_name(binary, path):
    """The native model's input name, or None when Stratus cannot load it."""
    r = subprocess.run([binary, "inspect", path, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    try:
        info = json.loads(r.stdout)
        return info["inputs"][0]["name"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def xgboost_peer(native, batch, seconds):
    import xgboost as xgb
    bst = xgb.Booster(model_file=native)
    bst.set_param({"nthread": 1})
    X = rows(batch)
    for _ in range(10):
        bst.inplace_predict(X)
    lat = []
    start = time.perf_counter()
    while len(lat) < 5 or time.perf_counter() - start < seconds:
        a = time.perf_counter()
        bst.inplace_predict(X)
        lat.append((time.perf_counter() - a) * 1e6)
    lat.sort()
    return {"p50_us": lat[len(lat) // 2], "runs": len(lat)}


def main():
    binary, cache = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    native, onnx_path = build(cache)
    module = engine.ensure_ort(cache)
    name = native_input_name(binary, native)
    print(f"XGBoost regressor: {N_TREES} trees, depth {DEPTH}, {N_FEATURES} features; 1 thread; "
          "median us per row (ratio = peer / Stratus ONNX-ML)")
    print(f"{'batch':>5} {'stratus onnx':>13} {'stratus json':>13} {'xgboost':>9} {'ort':>9} "
          f"{'vs xgboost':>11} {'vs ort':>8}")
    results = []
    for batch in BATCHES:
        ours = stratus(binary, onnx_path, batch, seconds, cache)
        mine_json = (stratus(binary, native, batch, seconds, cache, name) if name is not None
                     else {"error": "skipped: native loader not present"})
        xg = xgboost_peer(native, batch, seconds)
        ort = engine.ort(module, onnx_path, [batch, N_FEATURES], seconds)
        results.append({"batch": batch, "stratus_onnx": ours, "stratus_json": mine_json,
                        "xgboost": xg, "onnxruntime": ort})

        def per_row(r):
            return r["p50_us"] / batch if "p50_us" in r else float("nan")

        o, j, x, t = per_row(ours), per_row(mine_json), per_row(xg), per_row(ort)
        print(f"{batch:>5} {o:>13.3f} {j:>13.3f} {x:>9.3f} {t:>9.3f} {x / o:>10.2f}x {t / o:>7.2f}x")
        for label, r in (("stratus onnx", ours), ("stratus json", mine_json), ("onnxruntime", ort)):
            if "error" in r:
                print(f"      {label}: {r['error']}")
    with open(os.path.join(cache, "trees.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
