"""ONNX-ML tree ensembles through `stratus predict`: models trained here
with scikit-learn and XGBoost, exported by tests/fixtures/ml_trees.py,
must give the libraries' own predictions within 1e-5 (labels exactly).
Hand-built graphs cover every branch mode, NaN tracking and TreeEnsemble
(ml opset 5) against a plain Python walk."""
import math
import pathlib
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
from onnx import TensorProto, helper

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fixtures"))
import ml_trees  # noqa: E402

sklearn = pytest.importorskip("sklearn")
from sklearn import ensemble, tree  # noqa: E402


def predict(stratus, tmp_path, model, X, name="model"):
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    np.save(tmp_path / f"{name}_x.npy", X)
    out = tmp_path / f"{name}_out"
    r = stratus("predict", path, "--input", f"X={tmp_path / f'{name}_x.npy'}", "--output-dir", out)
    assert r.code == 0, r.err
    return {p.stem: np.load(p, allow_pickle=True) for p in out.glob("*.npy")}


def data(n=300, f=8, classes=0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    X[:, 3] = np.round(X[:, 3] * 2) / 2  # ties at thresholds
    score = X[:, 0] + 0.5 * X[:, 1] * X[:, 2] - X[:, 3]
    if classes:
        edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
        return X, np.digitize(score, edges).astype(np.int64)
    return X, score.astype(np.float64)


def check_classifier(stratus, tmp_path, est, X, labels_of=None):
    got = predict(stratus, tmp_path, ml_trees.from_sklearn(est, X.shape[1]), X)
    proba = est.predict_proba(X)
    np.testing.assert_allclose(got["probabilities"], proba, atol=1e-5)
    # labels exactly, except where sklearn's top two are tied within float rounding
    top = np.sort(proba, axis=1)
    clear = top[:, -1] - top[:, -2] > 1e-6
    want = est.predict(X)
    assert (got["label"][clear].astype(want.dtype) == want[clear]).all()


@pytest.mark.parametrize("make", [
    lambda: tree.DecisionTreeClassifier(max_depth=6, random_state=0),
    lambda: ensemble.RandomForestClassifier(n_estimators=7, max_depth=5, random_state=0),
    lambda: ensemble.ExtraTreesClassifier(n_estimators=6, max_depth=6, random_state=0),
])
@pytest.mark.parametrize("classes", [2, 3])
def test_sklearn_forest_classifiers(stratus, tmp_path, make, classes):
    X, y = data(classes=classes)
    check_classifier(stratus, tmp_path, make().fit(X, y), X)


def test_sklearn_string_labels(stratus, tmp_path):
    """String labels are computed; `predict` cannot write string .npy
    files, so only the probabilities leave the graph here."""
    X, y = data(classes=3)
    names = np.array(["ant", "bee", "cat"])[y]
    est = ensemble.RandomForestClassifier(n_estimators=5, max_depth=4, random_state=1).fit(X, names)
    model = ml_trees.from_sklearn(est, X.shape[1])
    del model.graph.output[0]
    got = predict(stratus, tmp_path, model, X)
    assert set(got) == {"probabilities"}
    np.testing.assert_allclose(got["probabilities"], est.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("classes", [2, 4])
def test_sklearn_gradient_boosting_classifier(stratus, tmp_path, classes):
    X, y = data(classes=classes, seed=classes)
    est = ensemble.GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0).fit(X, y)
    check_classifier(stratus, tmp_path, est, X)


@pytest.mark.parametrize("make", [
    lambda: tree.DecisionTreeRegressor(max_depth=7, random_state=0),
    lambda: ensemble.RandomForestRegressor(n_estimators=8, max_depth=6, random_state=0),
    lambda: ensemble.ExtraTreesRegressor(n_estimators=5, max_depth=6, random_state=0),
    lambda: ensemble.GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0),
])
def test_sklearn_regressors(stratus, tmp_path, make):
    X, y = data(seed=3)
    est = make().fit(X, y)
    got = predict(stratus, tmp_path, ml_trees.from_sklearn(est, X.shape[1]), X)
    np.testing.assert_allclose(got["variable"][:, 0], est.predict(X), atol=1e-5, rtol=1e-5)


# --- XGBoost, with missing values ------------------------------------------------

xgb = pytest.importorskip("xgboost")


def with_nan(X, seed):
    X = X.copy()
    rng = np.random.default_rng(seed)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


@pytest.mark.parametrize("objective,classes", [("binary:logistic", 2), ("multi:softprob", 3),
                                               ("reg:squarederror", 0)])
def test_xgboost(stratus, tmp_path, objective, classes):
    X, y = data(n=400, classes=classes, seed=5)
    X = with_nan(X, 6)
    params = {"objective": objective, "max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 0}
    if classes > 2:
        params["num_class"] = classes
    if objective == "reg:squarederror":
        params["base_score"] = 0.25
    bst = xgb.train(params, xgb.DMatrix(X, label=y, missing=np.nan), 12)
    got = predict(stratus, tmp_path, ml_trees.from_xgboost(bst, X.shape[1]), X)
    want = bst.predict(xgb.DMatrix(X, missing=np.nan))
    if objective == "binary:logistic":
        np.testing.assert_allclose(got["probabilities"][:, 1], want, atol=1e-5)
        np.testing.assert_allclose(got["probabilities"][:, 0], 1 - want, atol=1e-5)
        clear = np.abs(want - 0.5) > 1e-6
        assert (got["label"][clear] == (want[clear] > 0.5)).all()
    elif classes:
        np.testing.assert_allclose(got["probabilities"], want, atol=1e-5)
        top = np.sort(want, axis=1)
        clear = top[:, -1] - top[:, -2] > 1e-6
        assert (got["label"][clear] == want.argmax(axis=1)[clear]).all()
    else:
        np.testing.assert_allclose(got["variable"][:, 0], want, atol=1e-5, rtol=1e-5)


def test_xgboost_binary_with_positive_leaves_only(stratus, tmp_path):
    """Skewed labels: the first trees only push towards class 1, so every
    leaf weight is positive (ONNX Runtime would skip the logistic here)."""
    X, _ = data(n=300, seed=8)
    y = (np.random.default_rng(9).random(len(X)) < 0.95).astype(np.int64)
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                    xgb.DMatrix(X, label=y), 2)
    model = ml_trees.from_xgboost(bst, X.shape[1])
    weights = [a for a in model.graph.node[0].attribute if a.name == "class_weights_as_tensor"][0]
    assert min(onnx.numpy_helper.to_array(weights.t)) >= 0
    got = predict(stratus, tmp_path, model, X)
    want = bst.predict(xgb.DMatrix(X))
    np.testing.assert_allclose(got["probabilities"][:, 1], want, atol=1e-5)
    assert (got["label"] == (want > 0.5)).all()


# --- every branch mode, hand-built, against a Python walk ---------------------------

MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


def ref_test(mode, x, t, tracks_true):
    """ONNX Runtime's test: the comparison, or NaN with missing tracking."""
    if math.isnan(x) and tracks_true:
        return True
    return {"BRANCH_LEQ": x <= t, "BRANCH_LT": x < t, "BRANCH_GTE": x >= t, "BRANCH_GT": x > t,
            "BRANCH_EQ": x == t, "BRANCH_NEQ": x != t}[mode]


def random_trees(rng, n_trees, n_features, n_targets):
    """Full trees of depth 3 in tuples: (tree, node) -> (feature, mode, t, tracks)."""
    b = ml_trees._Builder()
    spec = {}
    for k in range(n_trees):
        for i in range(15):
            if i >= 7:
                b.node(k, i, 0, "LEAF", 0.0, 0, 0)
                for tgt in rng.choice(n_targets, size=rng.integers(1, n_targets + 1), replace=False):
                    w = float(rng.normal())
                    b.weight(k, i, int(tgt), w)
                    spec.setdefault((k, i), []).append((int(tgt), w))
            else:
                f = int(rng.integers(n_features))
                mode = MODES[int(rng.integers(len(MODES)))]
                t = float(rng.integers(-2, 3)) * 0.5
                tracks = int(rng.integers(2))
                b.node(k, i, f, mode, t, 2 * i + 1, 2 * i + 2, tracks)
                spec[(k, i)] = (f, mode, t, tracks)
    return b, spec


def ref_predict(spec, n_trees, n_targets, X, agg, base):
    out = np.zeros((len(X), n_targets))
    for r, row in enumerate(X):
        acc = [[] for _ in range(n_targets)]
        for k in range(n_trees):
            i = 0
            while i < 7:
                f, mode, t, tracks = spec[(k, i)]
                i = 2 * i + 1 if ref_test(mode, float(row[f]), t, tracks) else 2 * i + 2
            for tgt, w in spec[(k, i)]:
                acc[tgt].append(w)
        for tgt in range(n_targets):
            v = acc[tgt]
            s = {"SUM": sum(v), "AVERAGE": sum(v) / n_trees, "MIN": min(v) if v else 0.0,
                 "MAX": max(v) if v else 0.0}[agg]
            out[r, tgt] = s + base[tgt]
    return out


@pytest.mark.parametrize("agg", ["SUM", "AVERAGE", "MIN", "MAX"])
def test_every_mode_and_aggregate(stratus, tmp_path, agg):
    rng = np.random.default_rng(11)
    n_trees, n_features, n_targets = 6, 4, 3
    b, spec = random_trees(rng, n_trees, n_features, n_targets)
    base = [0.5, -1.0, 2.0]
    model = ml_trees.regressor(b, n_features, n_targets, base_values=base, aggregate=agg)
    X = (rng.integers(-3, 4, size=(200, n_features)) * 0.5).astype(np.float32)
    X[rng.random(X.shape) < 0.15] = np.nan
    got = predict(stratus, tmp_path, model, X)
    want = ref_predict(spec, n_trees, n_targets, X, agg, base)
    np.testing.assert_allclose(got["variable"], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("post", ["SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"])
def test_post_transforms(stratus, tmp_path, post):
    rng = np.random.default_rng(12)
    b, spec = random_trees(rng, 4, 3, 3)
    model = ml_trees.regressor(b, 3, 3, post=post)
    X = (rng.integers(-3, 4, size=(50, 3)) * 0.5).astype(np.float32)
    raw = ref_predict(spec, 4, 3, X, "SUM", [0, 0, 0])
    got = predict(stratus, tmp_path, model, X)["variable"]
    if post == "SOFTMAX":
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        want = e / e.sum(axis=1, keepdims=True)
    elif post == "SOFTMAX_ZERO":
        mx = raw.max(axis=1, keepdims=True)
        e = np.where(np.abs(raw) > 1e-7, np.exp(raw - mx), raw * np.exp(-mx))
        want = e / np.where(np.abs(raw) > 1e-7, e, 0).sum(axis=1, keepdims=True)
    else:
        want = 1 / (1 + np.exp(-raw))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_probit(stratus, tmp_path):
    special = pytest.importorskip("scipy.special")
    b = ml_trees._Builder()
    b.node(0, 0, 0, "BRANCH_LT", 0.0, 1, 2)
    b.node(0, 1, 0, "LEAF", 0, 0, 0)
    b.node(0, 2, 0, "LEAF", 0, 0, 0)
    b.weight(0, 1, 0, 0.125)
    b.weight(0, 2, 0, 0.5)
    b.weight(0, 2, 1, 0.9)
    model = ml_trees.regressor(b, 1, 2, base_values=[0.0, 0.05], post="PROBIT")
    X = np.array([[-1.0], [1.0]], np.float32)
    got = predict(stratus, tmp_path, model, X)["variable"]
    want = special.ndtri(np.array([[0.125, 0.05], [0.5, 0.95]]))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_tree_ensemble_opset5_with_sets(stratus, tmp_path):
    """TreeEnsemble: a set-membership root, leaves by index, shared leaf weights."""
    # node 0: x0 in {1, 3, 4} ? node 1 : node 2
    # node 1: x1 <= 0.5 ? leaf 0 : leaf 1        node 2: x1 > -1 ? leaf 2 : leaf 0
    # tree 2 (root 3): x2 == 2 ? leaf 3 : leaf 3 (a single-leaf tree)
    splits = [0.0, 0.5, -1.0, 2.0]
    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=2, aggregate_function=1,
        post_transform=0, tree_roots=[0, 3],
        nodes_featureids=[0, 1, 1, 2],
        nodes_modes=helper.make_tensor("m", TensorProto.UINT8, [4], [6, 0, 3, 4]),
        nodes_splits=helper.make_tensor("s", TensorProto.DOUBLE, [4], splits),
        nodes_truenodeids=[1, 0, 2, 3], nodes_trueleafs=[0, 1, 1, 1],
        nodes_falsenodeids=[2, 1, 0, 3], nodes_falseleafs=[0, 1, 1, 1],
        nodes_missing_value_tracks_true=[1, 0, 0, 0],
        membership_values=helper.make_tensor("v", TensorProto.DOUBLE, [4], [1, 3, 4, np.nan]),
        leaf_targetids=[0, 1, 0, 1],
        leaf_weights=helper.make_tensor("w", TensorProto.DOUBLE, [4], [1.0, 2.0, 4.0, 8.0]))
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])
    model = helper.make_model(helper.make_graph([node], "t5", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 8
    rng = np.random.default_rng(3)
    X = rng.integers(-1, 6, size=(100, 3)).astype(np.float32)
    X[::7, 0] = np.nan
    leaf_w = [(0, 1.0), (1, 2.0), (0, 4.0), (1, 8.0)]
    want = np.zeros((len(X), 2))
    for r, (a, b_, c) in enumerate(X):
        in_set = True if math.isnan(a) else a in (1, 3, 4)
        leaf = (0 if b_ <= 0.5 else 1) if in_set else (2 if b_ > -1 else 0)
        want[r, leaf_w[leaf][0]] += leaf_w[leaf][1]
        want[r, 1] += 8.0
    got = predict(stratus, tmp_path, model, X)
    np.testing.assert_allclose(got["Y"], want)


def test_corrupt_tree_is_refused(stratus, tmp_path):
    b = ml_trees._Builder()
    b.node(0, 0, 0, "BRANCH_LEQ", 0.5, 1, 7)  # no node 7
    b.node(0, 1, 0, "LEAF", 0, 0, 0)
    b.weight(0, 1, 0, 1.0)
    path = tmp_path / "bad.onnx"
    onnx.save(ml_trees.regressor(b, 2), str(path))
    np.save(tmp_path / "x.npy", np.zeros((2, 2), np.float32))
    r = stratus("predict", path, "--input", f"X={tmp_path / 'x.npy'}", "--output-dir", tmp_path / "o")
    assert r.code != 0
    assert "tree 0: node 0: child node 7 is not in the tree" in r.err
    b.nodes["falsenodeids"][0] = 0  # a cycle
    onnx.save(ml_trees.regressor(b, 2), str(path))
    r = stratus("predict", path, "--input", f"X={tmp_path / 'x.npy'}", "--output-dir", tmp_path / "o")
    assert r.code != 0 and "reached twice" in r.err, r.err
