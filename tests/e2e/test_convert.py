"""`stratus convert`: .npy <-> JSON, bit-exact, and clear errors on bad input."""
import json
import struct

import numpy as np
import pytest

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64", "bool"]


def sig_digits(text):
    mantissa = text.lower().split("e")[0].replace("-", "").replace(".", "")
    return len(mantissa.lstrip("0").rstrip("0")) or 1


def sample(dtype, shape, rng):
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype(stratus, tmp_path, dtype):
    rng = np.random.default_rng(7)
    a = sample(dtype, (3, 4, 2), rng)
    np.save(tmp_path / "a.npy", a)
    r = stratus("convert", tmp_path / "a.npy", tmp_path / "a.json")
    assert r.code == 0, r.err
    doc = json.loads((tmp_path / "a.json").read_text())
    assert np.array(doc).shape == a.shape
    assert (np.array(doc, dtype=dtype) == a).all()
    r = stratus("convert", tmp_path / "a.json", tmp_path / "b.npy", "--dtype", dtype)
    assert r.code == 0, r.err
    b = np.load(tmp_path / "b.npy")
    assert b.dtype == a.dtype and b.shape == a.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype,bits,uint", [("float32", 32, np.uint32), ("float64", 64, np.uint64)])
def test_random_bit_patterns_round_trip_exactly(stratus, tmp_path, dtype, bits, uint):
    rng = np.random.default_rng(11)
    raw = rng.integers(0, 2**bits - 1, 20000, dtype=uint, endpoint=True)
    a = raw.view(dtype)
    a = a[np.isfinite(a)]
    np.save(tmp_path / "a.npy", a)
    assert stratus("convert", tmp_path / "a.npy", tmp_path / "a.json").code == 0
    text = (tmp_path / "a.json").read_text()
    # Python's float() is correctly rounded: the text must denote the same value.
    parsed = np.array(json.loads(text), dtype="float64").astype(dtype)
    assert parsed.tobytes() == a.tobytes()
    # Shortest: no more significant digits than numpy's shortest repr.
    for x, s in zip(a[:2000], text.strip("[]\n").split(",")[:2000]):
        theirs = np.format_float_scientific(x, unique=True)
        assert sig_digits(s) <= sig_digits(theirs), (s, theirs)
    assert stratus("convert", tmp_path / "a.json", tmp_path / "b.npy", "--dtype", dtype).code == 0
    assert np.load(tmp_path / "b.npy").tobytes() == a.tobytes()


def test_npy_v2_and_scalar_and_empty(stratus, tmp_path):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    with open(tmp_path / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, a, version=(2, 0))
    assert stratus("convert", tmp_path / "v2.npy", tmp_path / "v2.json").code == 0
    assert json.loads((tmp_path / "v2.json").read_text()) == a.tolist()
    np.save(tmp_path / "s.npy", np.float32(2.5))
    assert stratus("convert", tmp_path / "s.npy", tmp_path / "s.json").code == 0
    assert json.loads((tmp_path / "s.json").read_text()) == 2.5
    np.save(tmp_path / "e.npy", np.zeros((0, 3), np.float32))
    assert stratus("convert", tmp_path / "e.npy", tmp_path / "e.json").code == 0


def test_flat_output(stratus, tmp_path):
    np.save(tmp_path / "a.npy", np.arange(4, dtype=np.int32).reshape(2, 2))
    assert stratus("convert", tmp_path / "a.npy", tmp_path / "a.json", "--flat").code == 0
    assert json.loads((tmp_path / "a.json").read_text()) == [0, 1, 2, 3]


def expect_failure(r, *words):
    assert r.code == 1, (r.code, r.err)
    line = r.err.strip()
    assert "\n" not in line, line
    for w in words:
        assert w in line, line


def test_truncated_npy(stratus, tmp_path):
    np.save(tmp_path / "a.npy", np.ones((10, 10), np.float32))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-7])
    expect_failure(stratus("convert", tmp_path / "t.npy", tmp_path / "t.json"), "bytes")
    (tmp_path / "h.npy").write_bytes(data[:20])
    expect_failure(stratus("convert", tmp_path / "h.npy", tmp_path / "h.json"))


def test_lying_and_huge_shapes(stratus, tmp_path):
    def npy(header):
        header = header + " " * (-(len(header) + 11) % 64) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 16
    (tmp_path / "lie.npy").write_bytes(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100, 100), }"))
    expect_failure(stratus("convert", tmp_path / "lie.npy", tmp_path / "o.json"), "bytes")
    (tmp_path / "huge.npy").write_bytes(
        npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }"))
    expect_failure(stratus("convert", tmp_path / "huge.npy", tmp_path / "o.json"))
    assert not (tmp_path / "o.json").exists()


def test_fortran_and_object_rejected(stratus, tmp_path):
    np.save(tmp_path / "f.npy", np.asfortranarray(np.ones((3, 2), np.float32)))
    expect_failure(stratus("convert", tmp_path / "f.npy", tmp_path / "o.json"), "Fortran")
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    expect_failure(stratus("convert", tmp_path / "o.npy", tmp_path / "o.json"), "object")


def test_bad_json(stratus, tmp_path):
    cases = {"malformed": "[1, 2,", "ragged": "[[1,2],[3]]", "text": '["a"]'}
    for name, text in cases.items():
        (tmp_path / f"{name}.json").write_text(text)
        expect_failure(stratus("convert", tmp_path / f"{name}.json", tmp_path / "o.npy"), "offset")
    (tmp_path / "big.json").write_text("[1, 300]")
    expect_failure(stratus("convert", tmp_path / "big.json", tmp_path / "o.npy", "--dtype", "uint8"), "300")
    assert not (tmp_path / "o.npy").exists()


def test_nan_has_no_json_form(stratus, tmp_path):
    np.save(tmp_path / "n.npy", np.array([1.0, np.nan], np.float32))
    expect_failure(stratus("convert", tmp_path / "n.npy", tmp_path / "n.json"))


def test_usage_errors(stratus, tmp_path):
    assert stratus("convert", "a.npy").code == 2
    assert stratus("convert", "a.txt", "b.json").code == 2
    assert stratus("convert", "a.npy", "b.npy").code == 2
    r = stratus("convert", "a.json", "b.npy", "--dtype", "float128")
    assert r.code == 2 and "unknown --dtype" in r.err
    r = stratus("convert", tmp_path / "missing.npy", tmp_path / "b.json")
    assert r.code == 1 and "missing.npy" in r.err
