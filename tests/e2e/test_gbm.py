"""XGBoost (JSON, UBJSON) and LightGBM (text) models through the real
binary: predictions within 1e-5 of xgboost / sklearn / LightGBM's rules
(fixtures from tests/fixtures/gbm_models.py, made here), `inspect` in text
and JSON, `bench`, and corrupted models refused with exit code 1 and the
reason."""
import json
import pathlib
import subprocess

import numpy as np
import pytest

pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

PY = "/usr/bin/python3"
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    out = tmp_path_factory.mktemp("gbm")
    subprocess.run([PY, str(ROOT / "tests" / "fixtures" / "gbm_models.py"), str(out)], check=True,
                   capture_output=True, timeout=600)
    cases = json.loads((out / "manifest.json").read_text())
    return out, {c["name"]: c for c in cases}


def predict(stratus, model, x_path, out_dir):
    r = stratus("predict", model, "--input", f"input={x_path}", "--output-dir", out_dir)
    return r


def test_predictions_match_reference(stratus, fixtures, tmp_path):
    base, cases = fixtures
    assert len(cases) >= 40
    bad = []
    for name, c in cases.items():
        out = tmp_path / name
        r = predict(stratus, base / c["model"], base / c["x"], out)
        if r.code != 0:
            bad.append(f"{name}: exit {r.code}: {r.err.strip()}")
            continue
        got = np.load(out / f"{c['output']}.npy")
        want = np.load(base / c["expected"])
        if got.shape != want.shape:
            bad.append(f"{name}: shape {got.shape}, expected {want.shape}")
        elif not np.allclose(got, want, rtol=1e-5, atol=1e-5):
            bad.append(f"{name}: max difference {np.abs(got - want).max()}")
    assert not bad, "\n".join(bad)


def test_every_family_is_covered(fixtures):
    _, cases = fixtures
    for need in ("xgb_binary_logistic_json", "xgb_binary_logistic_ubj", "xgb_multi_softprob_ubj",
                 "xgb_multi_softmax_json", "xgb_reg_squarederror_json", "xgb_reg_logistic_json",
                 "xgb_count_poisson_ubj", "xgb_rank_pairwise_json", "xgb_categorical_partition_json",
                 "xgb_categorical_onehot_ubj", "lgb_sklearn_regression", "lgb_sklearn_binary",
                 "lgb_sklearn_multiclass", "lgb_hand_missing_categorical"):
        assert need in cases


def test_inspect_text_and_json(stratus, fixtures):
    base, cases = fixtures
    r = stratus("inspect", base / cases["xgb_multi_softprob_ubj"]["model"])
    assert r.code == 0, r.err
    assert "XGBoost model (ubjson, xgboost 1.7" in r.out
    assert "objective: multi:softprob" in r.out
    assert "classes: 3" in r.out
    assert "probabilities" in r.out and "[N, 3]" in r.out
    r = stratus("inspect", "--json", base / cases["xgb_binary_logistic_json"]["model"])
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["format"] == "xgboost" and info["encoding"] == "json"
    assert info["objective"] == "binary:logistic"
    assert info["trees"] == 12 and info["features"] == 6 and info["classes"] == 0
    assert info["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["N", 6]}]
    assert info["outputs"] == [{"name": "predictions", "dtype": "float32", "shape": ["N"]}]
    r = stratus("inspect", "--json", base / cases["lgb_sklearn_multiclass"]["model"])
    info = json.loads(r.out)
    assert info["format"] == "lightgbm" and info["objective"] == "multiclass" and info["classes"] == 3
    assert info["outputs"][0]["name"] == "probabilities"
    r = stratus("inspect", base / cases["lgb_sklearn_regression"]["model"])
    assert "LightGBM model (text, lightgbm v4)" in r.out and "trees: 20" in r.out


def test_bench_runs(stratus, fixtures):
    base, cases = fixtures
    r = stratus("bench", base / cases["xgb_reg_squarederror_json"]["model"], "--batch", "64", "--seconds", "0.2",
                "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["runs"] > 0


def test_wrong_feature_count(stratus, fixtures, tmp_path):
    base, cases = fixtures
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    r = predict(stratus, base / cases["xgb_binary_logistic_json"]["model"], tmp_path / "x.npy", tmp_path / "o")
    assert r.code == 1
    assert "input" in r.err and "6" in r.err


def corrupt_xgb(path, edit):
    m = json.loads(path.read_text())
    edit(m["learner"]["gradient_booster"]["model"]["trees"][3], m)
    return json.dumps(m)


XGB_CORRUPTIONS = [
    ("left_child", lambda t, m: t["left_children"].__setitem__(0, 90), "tree 3: node 0: left child 90 out of range"),
    ("cycle", lambda t, m: t["right_children"].__setitem__(0, 0), "tree 3: node 0: right child 0 is reached twice"),
    ("feature", lambda t, m: t["split_indices"].__setitem__(0, 99), "feature 99 out of range (the model has 6 features)"),
    ("threshold", lambda t, m: t["split_conditions"].__setitem__(0, float("inf")), "split condition is not finite"),
    ("length", lambda t, m: t["default_left"].pop(), "'default_left' has"),
    ("objective", lambda t, m: m["learner"]["objective"].__setitem__("name", "reg:mystery"),
     "objective 'reg:mystery' is not supported"),
]


@pytest.mark.parametrize("name,edit,reason", XGB_CORRUPTIONS, ids=[c[0] for c in XGB_CORRUPTIONS])
def test_corrupt_xgboost_refused(stratus, fixtures, tmp_path, name, edit, reason):
    base, cases = fixtures
    src = base / cases["xgb_binary_logistic_json"]["model"]
    bad = tmp_path / "model.json"
    bad.write_text(corrupt_xgb(src, edit))
    for verb in (("predict", bad, "--input", f"input={base / cases['xgb_binary_logistic_json']['x']}",
                  "--output-dir", tmp_path / "o"), ("inspect", bad)):
        r = stratus(*verb)
        assert r.code == 1, r.out
        assert reason in r.err
        assert "model.json" in r.err


def test_truncated_models_refused(stratus, fixtures, tmp_path):
    base, cases = fixtures
    for name, ext in (("xgb_binary_logistic_json", "json"), ("xgb_binary_logistic_ubj", "ubj"),
                      ("lgb_sklearn_regression", "txt")):
        data = (base / cases[name]["model"]).read_bytes()
        bad = tmp_path / f"cut.{ext}"
        bad.write_bytes(data[:len(data) * 2 // 3])
        r = stratus("inspect", bad)
        assert r.code == 1, name
        assert f"cut.{ext}" in r.err
        assert ("truncated" in r.err or "end of" in r.err or "past the end" in r.err), r.err


def test_corrupt_lightgbm_refused(stratus, fixtures, tmp_path):
    base, cases = fixtures
    text = (base / cases["lgb_hand_missing_categorical"]["model"]).read_text()
    for old, new, reason in (("left_child=-1\nright_child=-2\nleaf_value=10",
                              "left_child=-1\nright_child=-5\nleaf_value=10", "tree 1: node 0: right child -5 out of range"),
                             ("split_feature=2", "split_feature=8", "feature 8 out of range (the model has 4 features)"),
                             ("threshold=1.0\n", "threshold=nan\n", "tree 2: threshold[0] is 'nan', not a finite number"),
                             ("objective=regression", "objective=cross_entropy_lambda", "is not supported")):
        assert old in text
        bad = tmp_path / "model.txt"
        bad.write_text(text.replace(old, new, 1))
        r = stratus("inspect", bad)
        assert r.code == 1
        assert reason in r.err, r.err
