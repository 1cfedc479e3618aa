"""The engine benchmark of `make bench`: Stratus against ONNX Runtime
(npm onnxruntime-node) on the same models, machine and run, 1 thread,
batch 1 and 64, printed side by side as ratios.

    /usr/bin/python3 bench/engine.py STRATUS_BIN CACHE_DIR [SECONDS]

CACHE_DIR (outside git) receives the exported models and node_modules.
Ratios read "how many times faster Stratus is": ORT time / Stratus time.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = [("mlp", [784]), ("cnn", [3, 32, 32]), ("transformer", [64, 128])]


def ensure_ort(cache):
    module = os.path.join(cache, "node_modules", "onnxruntime-node")
    if not os.path.isdir(module):
        print("installing onnxruntime-node into", cache, file=sys.stderr)
        # --ignore-scripts: the install script only fetches GPU providers.
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
                        "--prefix", cache, "onnxruntime-node@1"], check=True,
                       stdout=subprocess.DEVNULL)
    return module


def stratus(binary, model, batch, seconds):
    r = subprocess.run([binary, "bench", model, "--batch", str(batch), "--seconds", str(seconds),
                        "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
    return json.loads(r.stdout)


def ort(module, model, shape, seconds):
    r = subprocess.run(["node", os.path.join(HERE, "ort_bench.js"), module, model,
                        ",".join(map(str, shape)), str(seconds)], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-200:]}
    return json.loads(r.stdout)


def ratio(theirs, ours):
    return theirs / ours if ours else float("nan")


def main():
    binary, cache = sys.argv[1], os.path.abspath(sys.argv[2])  # node resolves require() paths from the script
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    models_dir = os.path.join(cache, "models")
    subprocess.run(["/usr/bin/python3", os.path.join(HERE, "models", "export.py"), models_dir],
                   check=True, stderr=subprocess.DEVNULL)
    module = ensure_ort(cache)
    results = []
    print(f"{'model':<12} {'batch':>5} {'stratus p50 us':>15} {'ort p50 us':>11} {'p50 ratio':>9} "
          f"{'stratus rows/s':>15} {'ort rows/s':>11} {'thru ratio':>10}")
    for name, rest in MODELS:
        path = os.path.join(models_dir, name + ".onnx")
        for batch in (1, 64):
            ours = stratus(binary, path, batch, seconds)
            theirs = ort(module, path, [batch] + rest, seconds)
            row = {"model": name, "batch": batch, "stratus": ours, "onnxruntime": theirs}
            results.append(row)
            if "error" in ours or "error" in theirs:
                print(f"{name:<12} {batch:>5}  stratus: {ours.get('error', 'ok')}  ort: {theirs.get('error', 'ok')}")
                continue
            ort_rows = theirs["inferences_per_s"] * batch
            print(f"{name:<12} {batch:>5} {ours['p50_us']:>15.1f} {theirs['p50_us']:>11.1f} "
                  f"{ratio(theirs['p50_us'], ours['p50_us']):>8.2f}x {ours['rows_per_s']:>15.0f} "
                  f"{ort_rows:>11.0f} {ratio(ours['rows_per_s'], ort_rows):>9.2f}x")
    big = os.path.join(models_dir, "big.onnx")
    size_mb = os.path.getsize(big) / 1e6
    # Load time: the median of three loads each, the file in the page cache.
    ours = [stratus(binary, big, 1, 0.01) for _ in range(3)]
    theirs = [ort(module, big, [1, 2560], 0.01) for _ in range(3)]
    results.append({"model": "big", "stratus": ours, "onnxruntime": theirs})
    if all("error" not in r for r in ours + theirs):
        load = sorted(r["load_ms"] for r in ours)[1]
        create = sorted(r["session_create_ms"] for r in theirs)[1]
        print(f"load {size_mb:.0f} MB model (median of 3): stratus {load:.1f} ms, onnxruntime session "
              f"{create:.1f} ms, ratio {ratio(create, load):.1f}x")
    out = os.path.join(cache, "engine-results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print("ratios > 1 mean Stratus is faster; raw figures in", out)


if __name__ == "__main__":
    main()
