"""Black-box tests of `stratus serve`: the real binary on a loopback port,
spoken to over HTTP with the standard library.  Every wait is bounded.

Covers each protocol end to end (KServe V2, TF Serving, SageMaker, Vertex
AI), errors and their status codes, hot reload under a client loop (zero
non-2xx), a version that fails to load, 429 on a full queue, SIGTERM drain
with requests in flight, and /metrics in the Prometheus text format.
"""
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import ROOT, binary

EXAMPLES = ROOT / "examples" / "models"
IRIS_V1 = EXAMPLES / "iris" / "1" / "model.onnx"
IRIS_V2 = EXAMPLES / "iris" / "2" / "model.onnx"
ROWS = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]
LABELS = [0, 1, 2]

pytestmark = pytest.mark.skipif(not IRIS_V2.exists(), reason="examples/models missing (scripts/make_examples.py)")


class Server:
    """`stratus serve ARGS` on 127.0.0.1 and a free port, stderr in a file."""

    def __init__(self, tmp_path, *args, env=None, wait_ready=True):
        self.log_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        cmd = [binary(), "serve", "--host", "127.0.0.1", *map(str, args)]
        if "--port" not in args:
            cmd += ["--port", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log, env=full_env)
        self.port = self._wait_port()
        if wait_ready:
            self.wait_ready()

    def _wait_port(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            m = re.search(r"listening on [^\s]+:(\d+)", text)
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {text}")
            time.sleep(0.02)
        raise AssertionError("server did not say where it listens: " + self.log_path.read_text())

    def wait_ready(self, path="/v2/health/ready"):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.request("GET", path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("server never became ready: " + self.stderr())

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, data, dict(r.getheaders())
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, data, hdrs = self.request(method, path, body, headers)
        return status, (json.loads(data) if data else None), hdrs

    def stderr(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("server did not stop after SIGTERM")
        self.log.close()
        return code


@pytest.fixture
def repo(tmp_path):
    """A copy of the example repository the test may change."""
    dst = tmp_path / "models"
    shutil.copytree(EXAMPLES, dst)
    return dst


@pytest.fixture
def server(tmp_path, repo):
    s = Server(tmp_path, "--models", repo, "--poll-ms", "100")
    yield s
    assert s.stop() == 0


def v2_body(rows=ROWS, **extra):
    flat = [v for r in rows for v in r]
    return {"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP32", "data": flat}], **extra}


def output(resp, name):
    for o in resp["outputs"]:
        if o["name"] == name:
            return o
    raise AssertionError(f"no output {name} in {resp}")


def flatten(x):
    if isinstance(x, list):
        return [v for e in x for v in flatten(e)]
    return [x]


# ---- KServe V2 -------------------------------------------------------------

def test_v2_health_and_metadata(server):
    assert server.json("GET", "/v2/health/live")[0] == 200
    assert server.json("GET", "/v2/health/ready")[0] == 200
    status, meta, _ = server.json("GET", "/v2")
    assert status == 200 and meta["name"] == "stratus" and "version" in meta and "extensions" in meta
    status, m, _ = server.json("GET", "/v2/models/iris")
    assert status == 200 and m["name"] == "iris"
    assert sorted(m["versions"]) == ["1", "2"]
    assert m["inputs"][0]["name"] == "input" and m["inputs"][0]["datatype"] == "FP32"
    assert m["inputs"][0]["shape"] == [-1, 4]
    assert {o["name"] for o in m["outputs"]} == {"probabilities", "label"}
    assert server.json("GET", "/v2/models/iris/versions/1")[0] == 200
    assert server.json("GET", "/v2/models/iris/ready")[0] == 200
    assert server.json("GET", "/v2/models/iris/versions/2/ready")[0] == 200
    assert server.json("GET", "/v2/models/nope/ready")[0] == 404
    assert server.json("GET", "/v2/models/iris/versions/9")[0] == 404


def test_v2_infer(server):
    status, r, hdrs = server.json("POST", "/v2/models/iris/infer", v2_body(id="req-7"))
    assert status == 200, r
    assert r["model_name"] == "iris" and r["model_version"] == "2" and r["id"] == "req-7"
    assert output(r, "label")["data"] == LABELS
    probs = output(r, "probabilities")
    assert probs["shape"] == [3, 3] and probs["datatype"] == "FP32"
    flat = flatten(probs["data"])
    for i in range(3):
        assert abs(sum(flat[3 * i:3 * i + 3]) - 1) < 1e-5
    # A pinned version, nested data, and the outputs selector.
    body = {"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS}],
            "outputs": [{"name": "label"}]}
    status, r, _ = server.json("POST", "/v2/models/iris/versions/1/infer", body)
    assert status == 200, r
    assert r["model_version"] == "1"
    assert [o["name"] for o in r["outputs"]] == ["label"]
    assert flatten(r["outputs"][0]["data"]) == LABELS


def test_v2_errors(server):
    status, r, _ = server.json("POST", "/v2/models/nope/infer", v2_body())
    assert status == 404 and "error" in r
    status, r, _ = server.json("POST", "/v2/models/iris/versions/9/infer", v2_body())
    assert status == 404 and "error" in r
    status, data, _ = server.request("POST", "/v2/models/iris/infer", "{not json",
                                     {"Content-Type": "application/json"})
    assert status == 400 and "error" in json.loads(data)
    bad = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    status, r, _ = server.json("POST", "/v2/models/iris/infer", bad)
    assert status == 400 and "input" in r["error"]
    status, r, hdrs = server.json("GET", "/v2/models/iris/infer")
    assert status == 405 and "POST" in hdrs.get("Allow", "")
    status, r, _ = server.json("GET", "/no/such/route")
    assert status == 404 and "error" in r


# ---- TF Serving ---------------------------------------------------------------

def test_tfserving(server):
    status, r, _ = server.json("POST", "/v1/models/iris:predict", {"instances": ROWS})
    assert status == 200, r
    preds = r["predictions"]
    assert len(preds) == 3
    assert [p["label"] for p in preds] == LABELS
    status, r, _ = server.json("POST", "/v1/models/iris/versions/1:predict", {"inputs": {"input": ROWS}})
    assert status == 200, r
    assert flatten(r["outputs"]["label"]) == LABELS
    status, r, _ = server.json("POST", "/v1/models/iris/labels/stable:predict", {"instances": ROWS[:1]})
    assert status == 200 and r["predictions"][0]["label"] == 0
    assert server.json("POST", "/v1/models/iris/labels/nope:predict", {"instances": ROWS})[0] == 404
    status, r, _ = server.json("GET", "/v1/models/iris")
    assert status == 200
    versions = {s["version"]: s["state"] for s in r["model_version_status"]}
    assert versions == {"1": "AVAILABLE", "2": "AVAILABLE"}
    status, r, _ = server.json("GET", "/v1/models/iris/versions/2")
    assert status == 200 and r["model_version_status"][0]["version"] == "2"
    assert server.json("GET", "/v1/models/nope")[0] == 404
    status, r, _ = server.json("GET", "/v1/models/iris/versions/1/metadata")
    assert status == 200 and r["model_spec"]["version"] == "1"


# ---- SageMaker -------------------------------------------------------------------

def test_sagemaker(tmp_path):
    s = Server(tmp_path, "--model", f"iris={IRIS_V2}")
    try:
        assert s.request("GET", "/ping")[0] == 200
        status, r, _ = s.json("POST", "/invocations", {"instances": ROWS})
        assert status == 200, r
        status, data, hdrs = s.request("POST", "/invocations", "5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n",
                                       {"Content-Type": "text/csv", "Accept": "text/csv"})
        assert status == 200, data
        assert hdrs.get("Content-Type", "").startswith("text/csv")
        assert len(data.decode().strip().splitlines()) == 2
    finally:
        assert s.stop() == 0


def test_sagemaker_target_model_and_container_contract(tmp_path):
    model_dir = tmp_path / "opt-ml-model"
    for name in ("a", "b"):
        (model_dir / name / "1").mkdir(parents=True)
        shutil.copy(IRIS_V2, model_dir / name / "1" / "model.onnx")
    port_probe = Server(tmp_path, "--model", f"x={IRIS_V2}")
    free_port = port_probe.port
    assert port_probe.stop() == 0
    # `serve` with no models: the SageMaker location, the SageMaker port.
    s = Server(tmp_path, "--port", str(free_port), env={"STRATUS_SAGEMAKER_MODEL_DIR": str(model_dir)})
    try:
        assert s.port == free_port
        status, r, _ = s.json("POST", "/invocations", {"instances": ROWS})
        assert status == 400 and "X-Amzn-SageMaker-Target-Model" in r["error"]
        status, r, _ = s.json("POST", "/invocations", {"instances": ROWS},
                              {"X-Amzn-SageMaker-Target-Model": "b.tar.gz"})
        assert status == 200, r
        status, r, _ = s.json("POST", "/invocations", {"instances": ROWS},
                              {"X-Amzn-SageMaker-Target-Model": "zzz.tar.gz"})
        assert status == 404
    finally:
        assert s.stop() == 0


# ---- Vertex AI ----------------------------------------------------------------------

def test_vertex(tmp_path):
    env = {"AIP_PREDICT_ROUTE": "/v1/endpoints/1/deployedModels/2:predict", "AIP_HEALTH_ROUTE": "/healthz"}
    s = Server(tmp_path, "--model", f"iris={IRIS_V2}", env=env)
    try:
        assert s.request("GET", "/healthz")[0] == 200
        status, r, _ = s.json("POST", env["AIP_PREDICT_ROUTE"], {"instances": ROWS, "parameters": {}})
        assert status == 200, r
        assert len(r["predictions"]) == 3
    finally:
        assert s.stop() == 0


# ---- hot reload, failed loads, queue limits, drain ------------------------------------

def test_hot_reload_without_failed_requests(server, repo):
    failures, versions, stop = [], set(), threading.Event()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body = json.dumps(v2_body())
        while not stop.is_set():
            conn.request("POST", "/v2/models/iris/infer", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                failures.append((r.status, data))
            else:
                versions.add(json.loads(data)["model_version"])
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        # New versions appear (copied in, as a user would) and old ones vanish.
        for v in (3, 4, 5):
            shutil.copytree(EXAMPLES / "iris" / "2", repo / "iris" / f"{v}.tmp")
            os.rename(repo / "iris" / f"{v}.tmp", repo / "iris" / str(v))
            shutil.rmtree(repo / "iris" / str(v - 2))
            deadline = time.monotonic() + 15
            while str(v) not in versions and time.monotonic() < deadline and not failures:
                time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert failures == []
    assert "5" in versions
    status, m, _ = server.json("GET", "/v2/models/iris")
    assert sorted(m["versions"]) == ["4", "5"]


def test_failed_version_keeps_previous(server, repo):
    bad = repo / "iris" / "7"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"this is not an onnx model")
    deadline = time.monotonic() + 15
    metrics = ""
    while time.monotonic() < deadline:
        metrics = server.request("GET", "/metrics")[1].decode()
        if 'stratus_model_load_failures_total{model="iris"} 1' in metrics:
            break
        time.sleep(0.1)
    assert 'stratus_model_load_failures_total{model="iris"} 1' in metrics
    status, r, _ = server.json("POST", "/v2/models/iris/infer", v2_body())
    assert status == 200 and r["model_version"] == "2"
    assert "version 7 failed to load" in server.stderr()
    status, r, _ = server.json("GET", "/v1/models/iris")
    states = {v["version"]: (v["state"], v["status"]["error_code"]) for v in r["model_version_status"]}
    assert states["7"] == ("END", "UNKNOWN") and states["2"] == ("AVAILABLE", "OK")


def test_not_ready_is_a_4xx(tmp_path):
    """The V2 spec: 200 means ready, a 4xx means not.  A model whose only
    version fails to load is not ready, nor is the server (all models)."""
    repo = tmp_path / "models"
    (repo / "bad" / "1").mkdir(parents=True)
    (repo / "bad" / "1" / "model.onnx").write_bytes(b"this is not an onnx model")
    shutil.copytree(EXAMPLES / "iris", repo / "iris")
    server = Server(tmp_path, "--models", repo, wait_ready=False)
    try:
        server.wait_ready("/v2/models/iris/ready")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "failed to load" not in server.stderr():
            time.sleep(0.05)
        assert server.request("GET", "/v2/models/bad/ready")[0] == 400
        assert server.request("GET", "/v2/health/ready")[0] == 400
        assert server.request("GET", "/v2/health/live")[0] == 200
        status, r, _ = server.json("GET", "/v2/models/bad")
        assert status == 503 and "no version ready" in r["error"]
    finally:
        server.stop()


def test_full_queue_answers_429(tmp_path, repo):
    (repo / "iris" / "config.json").write_text(json.dumps(
        {"max_batch_size": 64, "max_queue_delay_us": 1500000, "max_queue_size": 1}))
    s = Server(tmp_path, "--models", repo, "--workers", "1")
    try:
        results = []

        def one():
            status, data, hdrs = s.request("POST", "/v2/models/iris/infer", json.dumps(v2_body()),
                                           {"Content-Type": "application/json"})
            results.append((status, hdrs.get("Retry-After")))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        codes = sorted(r[0] for r in results)
        assert codes.count(200) >= 1 and 429 in codes, results
        assert all(ra for code, ra in results if code == 429)
    finally:
        assert s.stop() == 0


def test_sigterm_drains_requests_in_flight(tmp_path, repo):
    (repo / "iris" / "config.json").write_text(json.dumps(
        {"max_batch_size": 64, "max_queue_delay_us": 800000}))
    s = Server(tmp_path, "--models", repo, "--grace-seconds", "10")
    results = []

    def one():
        try:
            results.append(s.request("POST", "/v2/models/iris/infer", json.dumps(v2_body()),
                                     {"Content-Type": "application/json"})[0])
        except OSError as e:
            results.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # the requests are queued, waiting for their batch
    code = s.stop()
    for t in threads:
        t.join(timeout=30)
    assert code == 0
    assert results == [200, 200, 200]
    assert "draining" in s.stderr()


def test_metrics_parse(server):
    server.json("POST", "/v2/models/iris/infer", v2_body())
    server.json("POST", "/v2/models/nope/infer", v2_body())
    status, data, hdrs = server.request("GET", "/metrics")
    assert status == 200 and hdrs["Content-Type"].startswith("text/plain")
    text = data.decode()
    assert text.endswith("\n")
    types, samples = {}, []
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? '
                         r'(-?[0-9.e+\-]+|\+Inf|NaN)$')
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"TYPE twice for {name}"
            types[name] = kind
        elif line.startswith("#") or not line:
            continue
        else:
            m = line_re.match(line)
            assert m, f"not a sample line: {line!r}"
            samples.append(line)
    assert types["stratus_requests_total"] == "counter"
    for h in ("stratus_request_duration_seconds", "stratus_request_queue_seconds",
              "stratus_request_compute_seconds", "stratus_batch_size"):
        assert types[h] == "histogram"
        assert any(s.startswith(h + '_bucket{model="iris",le="+Inf"}') for s in samples)
    assert types["stratus_requests_in_flight"] == "gauge"
    assert types["stratus_models_loaded"] == "gauge"
    assert "stratus_models_loaded 2" in samples
    assert 'stratus_requests_total{model="iris",version="2",protocol="v2",code="200"} 1' in samples
    assert any(s.startswith('stratus_requests_total{model="",version="",protocol="v2",code="404"}')
               for s in samples)
    rss = [s for s in samples if s.startswith("stratus_process_resident_memory_bytes ")]
    assert rss and int(rss[0].split()[1]) > 0
    # Cumulative buckets never go down.
    counts = [int(s.rsplit(" ", 1)[1]) for s in samples
              if s.startswith('stratus_request_duration_seconds_bucket{model="iris"')]
    assert counts == sorted(counts)


def test_help_documents_serve(stratus):
    r = stratus("help", "serve")
    assert r.code == 0
    for word in ("--models", "--model", "--port", "--workers", "AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT",
                 "max_queue_delay_us", "version_policy", "/invocations", "AIP_PREDICT_ROUTE", "/metrics",
                 "--grace-seconds"):
        assert word in r.out, word


def test_no_models_is_usage_error(stratus, tmp_path):
    r = stratus("serve", env={**os.environ, "STRATUS_SAGEMAKER_MODEL_DIR": str(tmp_path / "none")})
    assert r.code == 2 and "--models" in r.err
