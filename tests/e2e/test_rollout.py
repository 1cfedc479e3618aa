"""Safe rollouts against the real binary: `stratus serve` serving the
registry while the CLI changes it.  A 90/10 canary split over 10,000
requests, sticky routing, a shadow that sees copies and never answers, a
failing canary rolled back automatically with no client-visible error
beyond its own share, aliases followed live, and eight concurrent pushes
while the server reads.  Every wait is bounded; nothing asserts a time."""
import concurrent.futures
import http.client
import json
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import binary
from test_registry import home, make_model, ok, st  # noqa: F401 (fixtures)
from test_serve import Server

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
HEADERS = {"Content-Type": "application/json"}


def make_failing_model(path):
    """Takes the same request as make_model (x: [1, 2] float) and fails
    every run: its constant does not broadcast with [N, 2], which the
    declared [?, ?] shapes only reveal at run time."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])
    c = helper.make_tensor("c", TensorProto.FLOAT, [3], [1, 1, 1])
    g = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "g", [x], [y], [c])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


class Client:
    """One keep-alive connection; answers as (status, version header, body)."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def infer(self, path="/v2/models/churn/infer", headers=None, body=BODY):
        self.conn.request("POST", path, body, {**HEADERS, **(headers or {})})
        r = self.conn.getresponse()
        data = r.read()
        return r.status, r.getheader("X-Stratus-Model-Version"), data

    def close(self):
        self.conn.close()


def wait_for(predicate, what, timeout=20, period=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    raise AssertionError(f"timed out waiting for {what}")


def metric(server, name, **labels):
    status, text, _ = server.request("GET", "/metrics")
    assert status == 200
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{{{re.escape(want)}}} (\S+)$", text.decode(), re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture
def reg(st, tmp_path):
    """A registry with churn@1 (y = x + 1) and churn@2 (y = x + 2): same
    signature, different answers."""
    ok(st("push", make_model(tmp_path / "v1.onnx", 1.0), "--name", "churn"))
    ok(st("push", make_model(tmp_path / "v2.onnx", 2.0), "--name", "churn"))
    return st


@pytest.fixture
def server(reg, tmp_path):
    """`stratus serve` with no model flags, in the folder whose .stratus
    holds the registry (STRATUS_HOME is set too)."""
    s = Server(tmp_path, "--poll-ms", "100", "--workers", "2", env=reg.env)
    yield s
    assert s.stop() == 0


def deploy(st, *args):
    """Latency judgement off unless asked: on a loaded machine (sanitizers,
    other jobs) a canary may be slow by chance, and these tests are about
    routing."""
    if "--max-p99-ratio" not in args:
        args = (*args, "--max-p99-ratio", 0)
    return ok(st("deploy", "churn", *map(str, args)))


def wait_routing(server, check, what):
    """Polls one request at a time until check(status, version) holds."""
    c = Client(server.port)
    try:
        return wait_for(lambda: check(*c.infer()[:2]), what)
    finally:
        c.close()


def test_serves_registry_by_default_with_aliases_as_labels(server, reg):
    assert "registry" in server.stderr()
    c = Client(server.port)
    status, version, body = c.infer()
    assert (status, version) == (200, "2")  # the latest, without alias or deployment
    assert json.loads(body)["outputs"][0]["data"] == [3.0, 4.0]
    ok(reg("alias", "churn@1", "production"))
    wait_routing(server, lambda s, v: v == "1", "production to win over the latest")
    status, version, body = c.infer("/v2/models/churn/versions/production/infer")
    assert (status, version) == (200, "1")
    c.conn.request("POST", "/v1/models/churn/labels/production:predict", json.dumps({"instances": [[1, 2]]}),
                   HEADERS)
    r = c.conn.getresponse()
    assert r.status == 200 and r.getheader("X-Stratus-Model-Version") == "1"
    assert json.loads(r.read())["predictions"] == [[2.0, 3.0]]
    status, _, body = c.infer("/v2/models/churn/versions/nosuch/infer")
    assert status == 404 and b"nosuch" in body
    # Moving the alias while serving moves the traffic.
    ok(reg("alias", "churn@2", "production"))
    wait_routing(server, lambda s, v: v == "2", "the alias move to be followed")
    c.close()


def test_canary_split_is_exact(server, reg):
    deploy(reg, "--version", 1, "--canary", 2, "--percent", 10)
    wait_routing(server, lambda s, v: v == "1", "the deployment to be served")
    c = Client(server.port)
    counts = {"1": 0, "2": 0}
    for _ in range(10000):
        status, version, body = c.infer()
        assert status == 200, body
        counts[version] += 1
    c.close()
    share = counts["2"] / 100.0
    print(f"canary share over 10,000 requests: {share:.2f} %")
    assert abs(share - 10.0) <= 2.0
    assert counts["2"] == 1000  # the counter split is exact when nothing else interleaves


def test_sticky_header_keeps_a_user_on_one_version(server, reg):
    deploy(reg, "--version", 1, "--canary", 2, "--percent", 30, "--sticky-header", "X-User")
    wait_routing(server, lambda s, v: v == "1", "the deployment to be served")
    c = Client(server.port)
    seen = {}
    for rnd in range(5):
        for user in range(40):
            status, version, _ = c.infer(headers={"X-User": f"user-{user}"})
            assert status == 200
            seen.setdefault(user, set()).add(version)
    c.close()
    assert all(len(v) == 1 for v in seen.values()), seen
    on_canary = sum(1 for v in seen.values() if v == {"2"})
    assert 0 < on_canary < 40


def test_shadow_sees_copies_and_never_answers(server, reg):
    deploy(reg, "--version", 1, "--shadow", 2)
    wait_routing(server, lambda s, v: v == "1", "the deployment to be served")
    # The shadow starts with the first request after it is loaded.
    wait_for(lambda: metric(server, "stratus_shadow_requests_total", model="churn", version="2") > 0,
             "the shadow to get copies", period=0.1)
    before = metric(server, "stratus_shadow_requests_total", model="churn", version="2")
    c = Client(server.port)
    for _ in range(200):
        status, version, body = c.infer()
        assert (status, version) == (200, "1")
        assert json.loads(body)["outputs"][0]["data"] == [2.0, 3.0]
    c.close()
    wait_for(lambda: metric(server, "stratus_shadow_requests_total", model="churn", version="2") >= before + 200,
             "200 more copies")
    # Its answers (x + 2) differ from the primary's (x + 1): every one.
    wait_for(lambda: metric(server, "stratus_shadow_mismatches_total", model="churn", version="2") >= before + 200,
             "the comparisons")
    assert metric(server, "stratus_shadow_errors_total", model="churn", version="2") == 0
    assert "shadow version 2 differs from version 1" in server.stderr()


def test_failing_canary_rolls_back_automatically(server, reg, tmp_path):
    ok(reg("push", make_failing_model(tmp_path / "bad.onnx"), "--name", "churn"))  # churn@3
    deploy(reg, "--version", 1, "--canary", 3, "--percent", 10, "--window", 3, "--min-requests", 20)
    wait_routing(server, lambda s, v: v == "1", "the deployment to be served")
    c = Client(server.port)
    total = errors = 0
    error_versions = set()
    first_error = rolled_back_at = None
    # Bounded: the rollback comes after ~200 requests (20 canary errors).
    for i in range(20000):
        status, version, _ = c.infer()
        total += 1
        if status != 200:
            errors += 1
            error_versions.add(version)
            first_error = first_error or time.monotonic()
        if i % 50 == 0 and metric(server, "stratus_rollbacks_total", model="churn") >= 1:
            rolled_back_at = time.monotonic()
            break
    assert rolled_back_at, "no rollback after 20,000 requests"
    print(f"rollback {rolled_back_at - first_error:.3f} s after the first canary error; "
          f"{errors} client-visible errors out of {total} requests ({100.0 * errors / total:.2f} %)")
    assert error_versions == {"3"}  # only the canary failed anyone
    assert errors <= total * 0.10 + 1  # no more than the canary's share
    # After it: every request succeeds, on the stable version.
    for _ in range(500):
        status, version, _ = c.infer()
        assert (status, version) == (200, "1")
    c.close()
    log = server.stderr()
    assert re.search(r"WARN .*model churn: canary version 3 rolled back to stable version 1: error rate", log)
    entries = json.loads(ok(reg("audit", "--json")).stdout)["audit"]
    rb = [e for e in entries if e["action"] == "rollback"]
    assert len(rb) == 1 and rb[0]["who"] == "stratus serve (automatic rollback)", rb
    assert "error rate" in json.dumps(rb[0]["after"])
    policy = json.loads(ok(reg("deploy", "churn", "--json")).stdout)
    assert policy["state"] == "rolled_back" and policy["canary"] is None and policy["stable"] == 1
    assert metric(server, "stratus_rollbacks_total", model="churn") == 1


def test_deploy_changes_routing_live(server, reg):
    c = Client(server.port)
    assert c.infer()[1] == "2"
    deploy(reg, "--version", 1)
    wait_routing(server, lambda s, v: v == "1", "deploy --version 1")
    deploy(reg, "--version", 1, "--canary", 2, "--percent", 100)
    wait_routing(server, lambda s, v: v == "2", "a 100 % canary")
    deploy(reg, "--version", 2)
    wait_routing(server, lambda s, v: v == "2", "deploy --version 2")
    # Nothing names version 1 any more: it unloads.
    wait_for(lambda: "version 1 unloaded" in server.stderr(), "version 1 to unload")
    c.close()


def test_concurrent_pushes_while_serving(server, reg, tmp_path):
    stop = threading.Event()
    answers = {"ok": 0, "bad": []}

    def read_loop():
        c = Client(server.port)
        while not stop.is_set():
            status, _, body = c.infer()
            if status == 200:
                answers["ok"] += 1
            else:
                answers["bad"].append((status, body))
        c.close()

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        paths = [make_model(tmp_path / f"p{i}.onnx", 10.0 + i) for i in range(8)]
        procs = [subprocess.Popen([binary(), "push", p, "--name", "fleet"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=reg.env) for p in paths]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        versions = sorted(json.loads(ok(reg("models", "fleet", "--json")).stdout)["versions"],
                          key=lambda v: v["version"])
        assert [v["version"] for v in versions] == list(range(1, 9))
        # The server follows: fleet's latest (8) answers.
        c = Client(server.port)
        wait_for(lambda: c.infer("/v2/models/fleet/infer")[1] == "8", "fleet@8 to be served")
        c.close()
    finally:
        stop.set()
        reader.join(timeout=30)
    assert answers["ok"] > 0 and answers["bad"] == []


def test_registry_flag_needs_a_registry(tmp_path):
    p = subprocess.run([binary(), "serve", "--registry", tmp_path / "nothing", "--port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "nothing" in p.stderr and "registry" in p.stderr.lower()


def test_registry_flag_names_the_home(reg, tmp_path):
    """--registry HOME serves that home whatever STRATUS_HOME says."""
    home = reg.env["STRATUS_HOME"]
    s = Server(tmp_path, "--registry", home, "--poll-ms", "100", env={"STRATUS_HOME": str(tmp_path / "other")})
    try:
        c = Client(s.port)
        assert c.infer()[:2] == (200, "2")
        c.close()
    finally:
        assert s.stop() == 0


def test_registry_versions_report_their_format(st, tmp_path, server):
    """Registry blobs have no file extension: the V2 metadata's platform
    comes from the content, so an XGBoost version is not called ONNX."""
    xgb = pytest.importorskip("xgboost")
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.random((40, 2), dtype=np.float32)
    model = xgb.XGBRegressor(n_estimators=2, max_depth=2).fit(x, x[:, 0])
    model.save_model(str(tmp_path / "trees.json"))
    ok(st("push", tmp_path / "trees.json", "--name", "trees"))
    wait_for(lambda: server.request("GET", "/v2/models/trees")[0] == 200, "trees to be served")
    status, body, _ = server.request("GET", "/v2/models/trees")
    assert json.loads(body)["platform"] == "xgboost"
    status, body, _ = server.request("GET", "/v2/models/churn")
    assert json.loads(body)["platform"] == "onnx"


def test_serve_model_flag_takes_a_registry_reference(reg, tmp_path):
    """`serve --model NAME=REF` resolves a reference like predict and bench
    do; a reference to nothing stops the start with the registry's reason."""
    s = Server(tmp_path, "--model", "pinned=churn@1", env=reg.env)
    try:
        c = Client(s.port)
        status, _, body = c.infer("/v2/models/pinned/infer")
        assert status == 200, body
        assert json.loads(body)["outputs"][0]["data"] == [2.0, 3.0]  # y = x + 1
        c.close()
    finally:
        assert s.stop() == 0
    p = subprocess.run([binary(), "serve", "--port", "0", "--model", "pinned=churn@nope"],
                       capture_output=True, text=True, timeout=30, env={**os.environ, **reg.env})
    assert p.returncode == 1 and "no alias 'nope'" in p.stderr
