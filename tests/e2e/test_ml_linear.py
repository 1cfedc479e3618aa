"""scikit-learn linear models, SVMs and preprocessing as ONNX-ML graphs
(built by tests/fixtures/ml_linear.py, trained here in seconds) through
`stratus predict`: labels equal sklearn's predict, scores and
probabilities match predict_proba / decision_function / transform within
1e-5.  ZipMap outputs come back as [N, classes] plus a keys file."""
import json
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("onnx")
import onnx  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fixtures"))
import ml_linear  # noqa: E402

CASES = list(ml_linear.cases(seed=0))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_sklearn(stratus, tmp_path, case):
    name, model, x, expected = case
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    np.save(tmp_path / "x.npy", x)
    r = stratus("predict", path, "--input", f"X={tmp_path / 'x.npy'}", "--output-dir", tmp_path / "out",
                "--batch-size", "16")
    assert r.code == 0, r.err
    for out, want in expected.items():
        if want.dtype.kind in "US":  # strings come as JSON
            got = np.array(json.loads((tmp_path / "out" / f"{out}.json").read_text()))
            np.testing.assert_array_equal(got, want, err_msg=out)
            continue
        got = np.load(tmp_path / "out" / f"{out}.npy")
        assert got.shape == want.shape, out
        if got.dtype.kind == "i":
            np.testing.assert_array_equal(got, want, err_msg=out)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=out)
    keys = tmp_path / "out" / "output_probability.keys.json"
    is_zipmap = any(o.type.HasField("sequence_type") for o in model.graph.output)
    assert keys.exists() == is_zipmap
    if is_zipmap:
        labels = next(a for n in model.graph.node if n.op_type == "ZipMap" for a in n.attribute)
        want_keys = [v.decode() for v in labels.strings] if labels.strings else list(labels.ints)
        assert json.loads(keys.read_text()) == want_keys


def test_bad_coefficients_refused_at_load(stratus, tmp_path):
    from onnx import TensorProto, helper
    node = helper.make_node("LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                            coefficients=[1.0, 2.0, 3.0, 4.0, 5.0], intercepts=[0.0, 1.0],
                            classlabels_ints=[0, 1])
    graph = helper.make_graph([node], "bad", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                               helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15),
                                                    helper.make_opsetid("ai.onnx.ml", 1)])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    np.save(tmp_path / "x.npy", np.zeros((2, 2), np.float32))
    r = stratus("predict", tmp_path / "bad.onnx", "--input", f"X={tmp_path / 'x.npy'}", "--output-dir",
                tmp_path / "out")
    assert r.code == 1
    assert "5 coefficients do not split into 2 classes" in r.err


def test_maps_only_reach_operators_that_know_them(stratus, tmp_path):
    """A ZipMap output fed to a generic sequence op is refused at load."""
    from onnx import TensorProto, helper
    ml = "ai.onnx.ml"
    zipmap = helper.make_node("ZipMap", ["X"], ["Z"], domain=ml, classlabels_int64s=[1, 2])
    at = helper.make_node("SequenceAt", ["Z", "pos"], ["first"])
    pos = helper.make_tensor("pos", TensorProto.INT64, [], [0])
    first = onnx.TypeProto()
    first.map_type.key_type = TensorProto.INT64
    first.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    graph = helper.make_graph([zipmap, at], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                              [helper.make_value_info("first", first)], initializer=[pos])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid(ml, 1)])
    onnx.save(model, str(tmp_path / "m.onnx"))
    np.save(tmp_path / "x.npy", np.zeros((2, 2), np.float32))
    r = stratus("predict", tmp_path / "m.onnx", "--input", f"X={tmp_path / 'x.npy'}", "--output-dir",
                tmp_path / "out")
    assert r.code == 1
    assert "only DictVectorizer" in r.err
