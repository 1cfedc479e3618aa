"""The model registry as a user meets it: push, models, show, alias, rm,
fsck, references in predict/bench/inspect; concurrent pushes; pushes
killed at random instants; bad input."""
import json
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import time

import numpy as np
import pytest

from conftest import binary

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def make_model(path, k=1.0, weights=0):
    """y = x + k over [batch, 2]; `weights` extra float32 values make the
    file bigger (an unused initializer) so writes take measurable time."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    inits = [helper.make_tensor("c", TensorProto.FLOAT, [2], [k, k])]
    if weights:
        w = np.random.default_rng(int(k * 1000)).random(weights, dtype=np.float32)
        inits.append(helper.make_tensor("w", TensorProto.FLOAT, [weights], w.tobytes(), raw=True))
    g = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "g", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


@pytest.fixture
def home(tmp_path):
    """A fresh STRATUS_HOME; commands run from tmp_path."""
    return tmp_path / ".stratus"


@pytest.fixture
def st(tmp_path, home):
    env = dict(os.environ, STRATUS_HOME=str(home), STRATUS_NO_PROGRESS="1")

    def run(*args, timeout=60):
        p = subprocess.run([binary(), *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, cwd=tmp_path, env=env)
        return p

    run.env = env
    return run


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def fsck_json(st):
    p = st("fsck", "--json")
    report = json.loads(p.stdout)
    return p.returncode, report


# ---- the README flow ---------------------------------------------------------

def test_readme_flow(st, tmp_path, home):
    make_model(tmp_path / "churn.onnx", 1.0)
    make_model(tmp_path / "churn2.onnx", 2.0)
    (tmp_path / "train.csv").write_text("age,income,label\n30,1000,0\n40,2000,1\n")

    p = ok(st("push", "churn.onnx", "--name", "churn", "--alias", "staging",
              "--metric", "auc=0.91", "--param", "depth=6", "--tag", "team=risk",
              "--data", "train.csv"))
    assert "pushed churn@1" in p.stdout
    assert (home / "registry.db").exists()
    pushed = json.loads(ok(st("push", "churn2.onnx", "--name", "churn", "--json")).stdout)
    assert pushed["version"] == 2 and len(pushed["sha256"]) == 64

    models = json.loads(ok(st("models", "--json")).stdout)["models"]
    assert [(m["name"], m["versions"], m["latest"], m["aliases"]) for m in models] == \
        [("churn", 2, 2, {"staging": 1})]
    assert "churn" in ok(st("models")).stdout
    versions = json.loads(ok(st("models", "churn", "--json")).stdout)["versions"]
    assert [v["version"] for v in versions] == [1, 2]

    v = json.loads(ok(st("show", "churn@staging", "--json")).stdout)
    assert v["version"] == 1 and v["aliases"] == ["staging"]
    assert v["metrics"] == {"auc": 0.91} and v["params"] == {"depth": "6"}
    assert v["tags"] == {"team": "risk"}
    data = v["lineage"]["data"]
    assert data["schema"] == {"format": "csv", "columns": ["age", "income", "label"], "rows": 2}
    assert data["size_bytes"] == (tmp_path / "train.csv").stat().st_size
    assert v["lineage"]["user"]
    blob = home / "blobs" / "sha256" / v["sha256"]
    assert blob.read_bytes() == (tmp_path / "churn.onnx").read_bytes()
    assert "auc=0.91" in ok(st("show", "churn@1")).stdout
    assert json.loads(ok(st("show", "churn", "--json")).stdout)["version"] == 2

    # Promote: production -> 2, then the references work everywhere.
    assert "alias churn@production -> 2" in ok(st("alias", "churn@2", "production")).stdout
    np.save(tmp_path / "x.npy", np.array([[1, 2], [3, 4]], dtype=np.float32))
    ok(st("predict", "churn@production", "--input", "x=x.npy", "--output-dir", "out"))
    np.testing.assert_allclose(np.load(tmp_path / "out" / "y.npy"), [[3, 4], [5, 6]])
    ok(st("predict", "churn@staging", "--input", "x=x.npy", "--output-dir", "out1"))
    np.testing.assert_allclose(np.load(tmp_path / "out1" / "y.npy"), [[2, 3], [4, 5]])
    assert "x" in ok(st("inspect", "churn@1")).stdout
    bench = json.loads(ok(st("bench", "churn", "--seconds", "0.1", "--json")).stdout)
    assert bench["runs"] > 0

    # rm refuses an aliased version, --force removes it with its alias.
    p = st("rm", "churn@1")
    assert p.returncode == 1 and "staging" in p.stderr
    ok(st("rm", "churn@1", "--force"))
    assert not blob.exists()  # no other version had that content
    assert json.loads(ok(st("models", "--json")).stdout)["models"][0]["aliases"] == {"production": 2}
    # A later push takes 3: numbers are never reused.
    assert json.loads(ok(st("push", "churn.onnx", "--name", "churn", "--json")).stdout)["version"] == 3

    code, report = fsck_json(st)
    assert code == 0 and report["ok"] and report["versions"] == 2 and report["issues"] == []
    assert "ok" in ok(st("fsck")).stdout

    # The audit log has every change, with before and after.
    db = sqlite3.connect(home / "registry.db")
    rows = db.execute("SELECT action, target, before, after FROM audit ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["push", "alias", "push", "alias", "rm", "push"]
    assert rows[3][1] == "churn@production" and rows[3][2] is None
    assert json.loads(rows[4][2])["aliases_removed"] == "'staging'"
    db.close()


def test_help_for_every_registry_verb(st):
    for verb in ("push", "models", "show", "alias", "rm", "fsck"):
        p = ok(st("help", verb))
        assert p.stdout.startswith(f"usage: stratus {verb}")
    assert "push" in ok(st("help")).stdout


def test_mlflow_folder(st, tmp_path):
    folder = tmp_path / "mlruns" / "model"
    folder.mkdir(parents=True)
    make_model(folder / "model.onnx")
    (folder / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.14.0\n"
        "  python_function:\n    loader_module: mlflow.onnx\nrun_id: 0a1b2c\n")
    ok(st("push", folder, "--name", "mlf"))
    v = json.loads(ok(st("show", "mlf", "--json")).stdout)
    assert v["format"] == "onnx" and v["tags"] == {"mlflow.run_id": "0a1b2c"}
    assert v["lineage"]["source_path"] == str(folder)

    (folder / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n")
    p = st("push", folder, "--name", "mlf")
    assert p.returncode == 1 and "sklearn" in p.stderr
    (folder / "MLmodel").unlink()
    p = st("push", folder, "--name", "mlf")
    assert p.returncode == 1 and "MLmodel" in p.stderr


def test_git_commit_in_lineage(st, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    make_model(repo / "m.onnx")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    for cmd in (["git", "init", "-q"], ["git", "add", "m.onnx"], ["git", "commit", "-qm", "m"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    ok(st("push", repo / "m.onnx", "--name", "g"))
    v = json.loads(ok(st("show", "g", "--json")).stdout)
    assert v["lineage"]["source_commit"] == head


# ---- several processes at once -------------------------------------------------

def test_eight_concurrent_pushes(st, tmp_path):
    for i in range(8):
        make_model(tmp_path / f"m{i}.onnx", float(i + 1))
    procs = [subprocess.Popen([binary(), "push", f"m{i}.onnx", "--name", "race", "--json",
                               "--metric", f"i={i}"],
                              cwd=tmp_path, env=st.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(8)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["version"] for r in results) == list(range(1, 9))
    versions = json.loads(ok(st("models", "race", "--json")).stdout)["versions"]
    assert [v["version"] for v in versions] == list(range(1, 9))
    # Each push's metric landed on the version it was told it got.
    by_version = {v["version"]: v["metrics"]["i"] for v in versions}
    for i, r in enumerate(results):
        assert by_version[r["version"]] == i
    code, report = fsck_json(st)
    assert code == 0 and report["ok"]


def test_pushes_killed_at_random_instants(st, tmp_path, home):
    """50 pushes, each SIGKILLed at a random instant: the registry stays
    consistent, every committed version is readable, numbering has no gaps."""
    models = [make_model(tmp_path / f"big{i}.onnx", float(i + 1), weights=300_000) for i in range(3)]
    ok(st("push", models[0], "--name", "crash"))
    rng = random.Random(6)
    # Calibrate: how long one push takes here.
    t0 = time.monotonic()
    ok(st("push", models[1], "--name", "crash"))
    span = max(time.monotonic() - t0, 0.05)
    killed = 0
    for i in range(50):
        p = subprocess.Popen([binary(), "push", models[i % 3], "--name", "crash", "--alias", "last"],
                             cwd=tmp_path, env=st.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, span * 2))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait(timeout=60)
        code, report = fsck_json(st)
        assert code == 0 and report["ok"], report
        assert all(not i["damage"] for i in report["issues"])
    print(f"{killed} of 50 pushes killed, one push takes {span * 1000:.0f} ms")
    assert killed > 0
    versions = json.loads(ok(st("models", "crash", "--json")).stdout)["versions"]
    numbers = [v["version"] for v in versions]
    assert numbers == list(range(1, len(numbers) + 1))
    contents = {m.read_bytes() for m in models}
    for v in versions:
        assert (home / "blobs" / "sha256" / v["sha256"]).read_bytes() in contents
    if len(numbers) > 2:  # some pushes finished before their kill
        last = json.loads(ok(st("show", "crash@last", "--json")).stdout)
        assert last["version"] in numbers
    # gc leaves only what versions name.
    ok(st("fsck", "--gc"))
    code, report = fsck_json(st)
    assert code == 0 and report["issues"] == []
    names = {p.name for p in (home / "blobs" / "sha256").iterdir()}
    assert names == {v["sha256"] for v in versions}


# ---- bad input ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a/b", "a\\b", "..", "x..y", "bad\x01name", "", "n" * 129, "a@b"])
def test_bad_names(st, tmp_path, home, name):
    make_model(tmp_path / "m.onnx")
    p = st("push", "m.onnx", "--name", name)
    assert p.returncode == 2
    assert "model name" in p.stderr
    assert not home.exists()  # nothing was created


def test_bad_alias_and_flags(st, tmp_path):
    make_model(tmp_path / "m.onnx")
    for args, needle in ((["--alias", "12"], "number"), (["--alias", "latest"], "reserved"),
                         (["--metric", "auc"], "KEY=VALUE"), (["--metric", "auc=high"], "number"),
                         (["--tag", "=v"], "KEY=VALUE")):
        p = st("push", "m.onnx", "--name", "ok", *args)
        assert p.returncode == 2 and needle in p.stderr, (args, p.stderr)
    assert st("push", "m.onnx").returncode == 2  # no --name
    ok(st("push", "m.onnx", "--name", "ok"))
    assert st("alias", "ok", "prod").returncode == 2  # no version
    assert st("rm", "ok@prod").returncode == 2  # rm wants a number
    p = st("push", "m.onnx", "--name", "ok", "--tag", "k=1", "--tag", "k=2")
    assert p.returncode == 1 and "twice" in p.stderr
    assert json.loads(ok(st("models", "ok", "--json")).stdout)["versions"][-1]["version"] == 1


def test_missing_things(st, tmp_path):
    p = st("models")
    assert p.returncode == 1 and "no registry" in p.stderr
    p = st("predict", "nope@1", "--input", "x=x.npy", "--output-dir", "o")
    assert p.returncode == 1 and "no such file" in p.stderr
    make_model(tmp_path / "m.onnx")
    ok(st("push", "m.onnx", "--name", "m"))
    for args, needle in ((["show", "m@9"], "no version 9"), (["show", "m@prod"], "no alias 'prod'"),
                         (["show", "zzz"], "no model named 'zzz'"), (["alias", "m@9", "prod"], "no version 9"),
                         (["rm", "m@9"], "no version 9"), (["inspect", "m@9"], "no version 9"),
                         (["bench", "m@prod", "--seconds", "0.1"], "no alias")):
        p = st(*args)
        assert p.returncode == 1 and needle in p.stderr, (args, p.stderr)
    p = st("push", "missing.onnx", "--name", "m")
    assert p.returncode == 1 and "missing.onnx" in p.stderr


def test_not_a_model_changes_nothing(st, tmp_path, home):
    make_model(tmp_path / "m.onnx")
    ok(st("push", "m.onnx", "--name", "m"))
    before = (home / "registry.db").read_bytes()
    (tmp_path / "notes.txt").write_text("definitely not a model\n")
    p = st("push", "notes.txt", "--name", "m")
    assert p.returncode == 1 and "not a model" in p.stderr
    assert json.loads(ok(st("models", "m", "--json")).stdout)["versions"][-1]["version"] == 1
    assert len(list((home / "blobs" / "sha256").iterdir())) == 1
    ok(st("fsck"))
    assert (home / "registry.db").read_bytes() == before


def test_corrupted_blob(st, tmp_path, home):
    make_model(tmp_path / "m.onnx")
    ok(st("push", "m.onnx", "--name", "m"))
    v = json.loads(ok(st("show", "m", "--json")).stdout)
    blob = home / "blobs" / "sha256" / v["sha256"]
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    for args in (["inspect", "m@1"], ["predict", "m", "--input", "x=x.npy", "--output-dir", "o"]):
        p = st(*args)
        assert p.returncode == 1 and "damaged" in p.stderr and "fsck" in p.stderr, p.stderr
    code, report = fsck_json(st)
    assert code == 1 and not report["ok"]
    assert [i["kind"] for i in report["issues"]] == ["bad_blob"]
    p = st("fsck")
    assert p.returncode == 1 and "DAMAGE" in p.stdout
    # Pushing the same model again repairs the blob.
    ok(st("push", "m.onnx", "--name", "m"))
    assert fsck_json(st)[0] == 0
