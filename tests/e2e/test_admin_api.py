"""Black-box tests of the management API (/api/v1) and of API keys on the
inference routes: the real binary on 127.0.0.1, a fresh STRATUS_HOME per
test, spoken to with the standard library.  Every wait is bounded.

Covers: the token (made 0600 at first start, never logged; a group-readable
one refused; --admin-token-file), 401 for every route and method without or
with a wrong token and nothing changed, every route's happy path and its
errors, a push through the API then a prediction, and API keys (both
header forms, open health and metrics, reloading the key file).
"""
import json
import os
import re
import stat
import subprocess
import time

import pytest

from conftest import ROOT, binary
from test_serve import ROWS, Server, v2_body

EXAMPLES = ROOT / "examples" / "models"
IRIS_V1 = EXAMPLES / "iris" / "1" / "model.onnx"
IRIS_V2 = EXAMPLES / "iris" / "2" / "model.onnx"

pytestmark = pytest.mark.skipif(not IRIS_V2.exists(), reason="examples/models missing (scripts/make_examples.py)")

# Every route and method of the API, with a body where one is expected.
ROUTES = [
    ("GET", "/api/v1/models", None),
    ("GET", "/api/v1/models/iris", None),
    ("POST", "/api/v1/models/iris/versions", b"not read"),
    ("GET", "/api/v1/models/iris/versions/1", None),
    ("DELETE", "/api/v1/models/iris/versions/1?force=true", None),
    ("PUT", "/api/v1/models/iris/aliases/prod", b'{"version": 1}'),
    ("DELETE", "/api/v1/models/iris/aliases/prod", None),
    ("GET", "/api/v1/deployments", None),
    ("GET", "/api/v1/deployments/iris", None),
    ("PUT", "/api/v1/deployments/iris", b'{"version": 1}'),
    ("DELETE", "/api/v1/deployments/iris", None),
    ("POST", "/api/v1/deployments/iris/promote", None),
    ("POST", "/api/v1/deployments/iris/rollback", None),
    ("GET", "/api/v1/audit?limit=5", None),
    ("GET", "/api/v1/no/such/route", None),
    ("PATCH", "/api/v1/models", None),
]


@pytest.fixture
def home(tmp_path):
    """An empty folder: serving it makes the registry (a missing one is refused)."""
    h = tmp_path / "home"
    h.mkdir()
    return h


def cli(home, *args, timeout=60):
    env = dict(os.environ, STRATUS_HOME=str(home), STRATUS_NO_PROGRESS="1")
    p = subprocess.run([binary(), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    p.code, p.out = p.returncode, p.stdout
    return p


class Api:
    """A server on `home` with the management API, and its token."""

    def __init__(self, tmp_path, home, *args):
        self.server = Server(tmp_path, "--registry", home, "--poll-ms", "100", *args,
                             env={"STRATUS_HOME": str(home)}, wait_ready=False)
        self.token = (home / "admin.token").read_text().strip() if (home / "admin.token").exists() else None

    def call(self, method, path, body=None, token=True, headers=None):
        hdrs = dict(headers or {})
        if token is True:
            hdrs["Authorization"] = f"Bearer {self.token}"
        elif token:
            hdrs["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        status, data, got = self.server.request(method, path, body, hdrs)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return status, parsed, got

    def push(self, name, path, alias=None):
        q = f"?alias={alias}" if alias else ""
        return self.call("POST", f"/api/v1/models/{name}/versions{q}", path.read_bytes())


@pytest.fixture
def api(tmp_path, home):
    a = Api(tmp_path, home)
    yield a
    assert a.server.stop() == 0


def registry_state(home):
    models = cli(home, "models", "--json")
    audit = cli(home, "audit", "--json")
    return models.code, models.out, audit.code, audit.out


# ---- the token ------------------------------------------------------------------

def test_token_made_0600_and_never_logged(api, home):
    path = home / "admin.token"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert re.fullmatch(r"[0-9a-f]{64}", api.token)
    assert api.token not in api.server.stderr()
    assert str(path) in api.server.stderr()
    assert api.call("GET", "/api/v1/models")[0] == 200


def test_token_kept_across_restarts(tmp_path, home):
    a = Api(tmp_path, home)
    first = a.token
    assert a.server.stop() == 0
    b = Api(tmp_path, home)
    try:
        assert b.token == first
        assert b.call("GET", "/api/v1/models")[0] == 200
    finally:
        assert b.server.stop() == 0


def test_no_token_or_wrong_token_is_401_and_changes_nothing(api, home):
    assert api.push("iris", IRIS_V1, alias="prod")[0] == 201
    before = registry_state(home)
    for method, path, body in ROUTES:
        for token in (None, "x" * 64, api.token + "0", api.token[:-1], "Basic " + api.token):
            hdrs = {"Authorization": token} if token and token.startswith("Basic") else None
            status, r, got = api.call(method, path, body, token=None if hdrs else token, headers=hdrs)
            assert status == 401, (method, path, token, status, r)
            assert got.get("WWW-Authenticate", "").startswith('Bearer realm="stratus"')
            assert "error" in r
    # Every method on every route, not only the ones the route takes.
    for path in sorted({p for _, p, _ in ROUTES}):
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, r, got = api.call(method, path, b'{"version": 1}', token=None)
            assert status == 401 and "WWW-Authenticate" in got, (method, path, status)
    # The scheme is case-insensitive; the token is not.
    assert api.call("GET", "/api/v1/models", headers={"Authorization": "bearer " + api.token}, token=None)[0] == 200
    assert api.call("GET", "/api/v1/models", token=api.token.upper())[0] == 401
    assert registry_state(home) == before


def test_group_readable_token_refused(tmp_path, home):
    a = Api(tmp_path, home)
    assert a.server.stop() == 0
    token = home / "admin.token"
    os.chmod(token, 0o640)
    env = dict(os.environ, STRATUS_HOME=str(home))
    p = subprocess.run([binary(), "serve", "--host", "127.0.0.1", "--port", "0", "--registry", str(home)],
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 1, p.stderr
    assert f"chmod 600 {token}" in p.stderr


def test_admin_token_file(tmp_path, home):
    tf = tmp_path / "token"
    tf.write_text("  my-own-secret-token-1234  \n")
    os.chmod(tf, 0o600)
    a = Api(tmp_path, home, "--admin-token-file", tf)
    try:
        assert not (home / "admin.token").exists()
        assert a.call("GET", "/api/v1/models", token="my-own-secret-token-1234")[0] == 200
        assert a.call("GET", "/api/v1/models", token="my-own-secret-token-123")[0] == 401
    finally:
        assert a.server.stop() == 0
    for text, why in (("short\n", "at least 16"), ("", "at least 16"), ("two words-0123456789\n", "space")):
        tf.write_text(text)
        p = subprocess.run([binary(), "serve", "--host", "127.0.0.1", "--port", "0", "--registry", str(home),
                            "--admin-token-file", str(tf)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and why in p.stderr, p.stderr
    p = subprocess.run([binary(), "serve", "--host", "127.0.0.1", "--port", "0", "--registry", str(home),
                        "--admin-token-file", str(tmp_path / "missing")], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "missing" in p.stderr


# ---- models, versions, aliases ------------------------------------------------------

def test_models_versions_aliases(api, home):
    assert api.call("GET", "/api/v1/models")[1] == {"models": []}
    status, r, _ = api.push("iris", IRIS_V1, alias="prod")
    assert status == 201, r
    assert r["model"] == "iris" and r["version"] == 1 and r["format"] == "onnx" and r["alias"] == "prod"
    status, r, _ = api.push("iris", IRIS_V2)
    assert status == 201 and r["version"] == 2 and r["alias"] is None

    # The same JSON as the CLI's.
    status, models, _ = api.call("GET", "/api/v1/models")
    assert status == 200
    assert models == json.loads(cli(home, "models", "--json").out)
    assert models["models"][0]["aliases"] == {"prod": 1} and models["models"][0]["latest"] == 2
    status, m, _ = api.call("GET", "/api/v1/models/iris")
    assert status == 200 and m == json.loads(cli(home, "models", "iris", "--json").out)
    assert [v["version"] for v in m["versions"]] == [1, 2]
    status, v, _ = api.call("GET", "/api/v1/models/iris/versions/1")
    assert status == 200 and v == json.loads(cli(home, "show", "iris@1", "--json").out)
    assert v["aliases"] == ["prod"] and v["file_name"] == "model.onnx"
    assert v["sha256"] == m["versions"][0]["sha256"]
    assert api.call("HEAD", "/api/v1/models/iris")[0] == 200

    # Aliases.
    status, r, _ = api.call("PUT", "/api/v1/models/iris/aliases/prod", {"version": 2})
    assert status == 200 and r == {"model": "iris", "alias": "prod", "version": 2}
    assert json.loads(cli(home, "show", "iris@prod", "--json").out)["version"] == 2
    status, r, _ = api.call("DELETE", "/api/v1/models/iris/aliases/prod")
    assert status == 200 and r["removed"] is True
    assert api.call("DELETE", "/api/v1/models/iris/aliases/prod")[0] == 404
    assert cli(home, "show", "iris@prod").code != 0

    # rm: refused while an alias points at it, then forced.
    assert api.call("PUT", "/api/v1/models/iris/aliases/staging", {"version": 1})[0] == 200
    status, r, _ = api.call("DELETE", "/api/v1/models/iris/versions/1")
    assert status == 409 and "force" in r["error"]
    assert api.call("GET", "/api/v1/models/iris/versions/1")[0] == 200
    status, r, _ = api.call("DELETE", "/api/v1/models/iris/versions/1?force=true")
    assert status == 200 and r == {"model": "iris", "version": 1, "removed": True}
    assert api.call("GET", "/api/v1/models/iris/versions/1")[0] == 404
    status, r, _ = api.call("DELETE", "/api/v1/models/iris/versions/2")
    assert status == 200
    assert api.call("GET", "/api/v1/models/iris")[1]["versions"] == []
    # The next push does not reuse a number.
    assert api.push("iris", IRIS_V1)[1]["version"] == 3
    assert cli(home, "fsck").code == 0


def test_model_errors(api, home):
    assert api.push("iris", IRIS_V1)[0] == 201
    before = registry_state(home)
    cases = [
        ("GET", "/api/v1/models/nope", None, 404),
        ("GET", "/api/v1/models/iris/versions/9", None, 404),
        ("GET", "/api/v1/models/iris/versions/x", None, 400),
        ("GET", "/api/v1/models/iris/versions/0", None, 400),
        ("GET", "/api/v1/models/..", None, 400),
        ("GET", "/api/v1/models/a%01b", None, 400),
        ("DELETE", "/api/v1/models/iris/versions/9", None, 404),
        ("DELETE", "/api/v1/models/iris/versions/1?force=maybe", None, 400),
        ("PUT", "/api/v1/models/iris/aliases/prod", b"{not json", 400),
        ("PUT", "/api/v1/models/iris/aliases/prod", b"[1]", 400),
        ("PUT", "/api/v1/models/iris/aliases/prod", {"version": "1"}, 400),
        ("PUT", "/api/v1/models/iris/aliases/prod", {"version": 1, "extra": 1}, 400),
        ("PUT", "/api/v1/models/iris/aliases/prod", {"version": 9}, 404),
        ("PUT", "/api/v1/models/iris/aliases/123", {"version": 1}, 400),
        ("PUT", "/api/v1/models/iris/aliases/latest", {"version": 1}, 400),
        ("PUT", "/api/v1/models/nope/aliases/prod", {"version": 1}, 404),
        ("DELETE", "/api/v1/models/iris/aliases/none", None, 404),
        ("PUT", "/api/v1/models/iris/aliases/prod", b'{"version": 1, "pad": "' + b"x" * 70000 + b'"}', 413),
        ("POST", "/api/v1/models/iris/versions", b"", 400),
        ("POST", "/api/v1/models/iris/versions", b"this is not a model", 400),
        ("POST", "/api/v1/models/iris/versions?alias=1", IRIS_V1.read_bytes(), 400),
        ("POST", "/api/v1/models/bad..name/versions", IRIS_V1.read_bytes(), 400),
        ("GET", "/api/v1/models/iris/nothing", None, 404),
        ("GET", "/api/v1/models/iris/versions/1/extra", None, 404),
        ("GET", "/api/v1//models", None, 404),
        ("GET", "/api/v1", None, 404),
        ("GET", "/api/v1/audit?limit=x", None, 400),
        ("GET", "/api/v1/audit?limit=100000", None, 413),
    ]
    for method, path, body, want in cases:
        status, r, _ = api.call(method, path, body)
        assert status == want, (method, path, status, r)
        assert isinstance(r, dict) and r.get("error"), (method, path, r)
    status, r, _ = api.call("POST", "/api/v1/models/iris/versions", b"\x08\x07garbage")
    assert status == 400 and "not a model Stratus can load" in r["error"]
    # Wrong methods name what is allowed.
    for method, path, allow in (("POST", "/api/v1/models", "GET"), ("PUT", "/api/v1/models/iris", "GET"),
                                ("GET", "/api/v1/models/iris/versions", "POST"),
                                ("POST", "/api/v1/models/iris/versions/1", "DELETE"),
                                ("GET", "/api/v1/models/iris/aliases/prod", "PUT"),
                                ("PATCH", "/api/v1/deployments/iris", "PUT"),
                                ("GET", "/api/v1/deployments/iris/promote", "POST"),
                                ("DELETE", "/api/v1/audit", "GET")):
        status, r, got = api.call(method, path)
        assert status == 405 and allow in got.get("Allow", ""), (method, path, status, got)
    assert registry_state(home) == before
    assert not [p for p in home.iterdir() if p.name.startswith("api-upload")]


# ---- deployments and audit -------------------------------------------------------------

def test_deployments(api, home):
    for _ in range(3):
        assert api.push("iris", IRIS_V1)[0] == 201
    status, r, _ = api.call("PUT", "/api/v1/deployments/iris", {
        "version": 1, "canary": 2, "percent": 10, "shadow": 3, "sticky_header": "X-User",
        "rollback": {"max_error_rate_increase": 0.1, "max_p99_ratio": 3, "window_seconds": 30, "min_requests": 5}})
    assert status == 200, r
    assert r["model"] == "iris" and r["stable"] == 1 and r["canary"] == 2 and r["canary_percent"] == 10
    assert r["shadow"] == 3 and r["sticky_header"] == "X-User" and r["state"] == "canary"
    assert r["rollback_rule"]["window_s"] == 30 and r["rollback_rule"]["min_requests"] == 5
    status, got, _ = api.call("GET", "/api/v1/deployments/iris")
    assert status == 200 and got == r
    status, lst, _ = api.call("GET", "/api/v1/deployments")
    assert status == 200 and lst == {"deployments": [r]}

    # rm of a version the deployment uses is refused without force.
    assert api.call("DELETE", "/api/v1/models/iris/versions/2")[0] == 409

    status, r, _ = api.call("POST", "/api/v1/deployments/iris/promote")
    assert status == 200 and r["stable"] == 2 and r["canary"] is None and r["previous_stable"] == 1
    assert api.call("POST", "/api/v1/deployments/iris/promote")[0] == 409  # no canary left
    assert api.call("PUT", "/api/v1/deployments/iris", {"version": 2, "canary": 3, "percent": 50})[0] == 200
    status, r, _ = api.call("POST", "/api/v1/deployments/iris/rollback", {"reason": "bad p99"})
    assert status == 200 and r["stable"] == 2 and r["canary"] is None
    assert r["state"] == "rolled_back" and r["reason"] == "bad p99"
    status, r, _ = api.call("POST", "/api/v1/deployments/iris/rollback")
    assert status == 200 and r["stable"] == 1
    assert api.call("POST", "/api/v1/deployments/iris/rollback")[0] == 409  # nothing to go back to
    status, r, _ = api.call("PUT", "/api/v1/deployments/iris", {"version": 1, "rollback": {"max_p99_ratio": 0}})
    assert status == 200 and r["rollback_rule"]["max_p99_ratio"] == 0 and r["rollback_rule"]["window_s"] == 60

    # Errors.
    cases = [
        ({"version": 1, "canary": 2, "percent": 10, "weight": 1, "colour": "red"}, 400, "weight"),
        ({"version": 1, "rollback": {"window": 3}}, 400, "window"),
        ({"canary": 2, "percent": 10}, 400, "version"),
        ({"version": "1"}, 400, "version"),
        ({"version": 1, "canary": 2, "percent": 150}, 400, "percent"),
        ({"version": 1, "canary": 1, "percent": 10}, 400, "canary"),
        ({"version": 1, "sticky_header": "bad header"}, 400, "sticky"),
        ({"version": 1, "rollback": [1]}, 400, "rollback"),
        ({"version": 1, "rollback": {"window_seconds": 0}}, 400, "window_seconds"),
        ({"version": 1, "rollback": {"min_requests": -1}}, 400, "min_requests"),
        ({"version": 1, "rollback": {"max_error_rate_increase": 2}}, 400, "error rate"),
        ({"version": 9}, 404, "9"),
    ]
    for body, want, word in cases:
        status, r, _ = api.call("PUT", "/api/v1/deployments/iris", body)
        assert status == want and word in r["error"], (body, status, r)
    assert api.call("PUT", "/api/v1/deployments/iris", b"{bad")[0] == 400
    assert api.call("PUT", "/api/v1/deployments/nope", {"version": 1})[0] == 404
    assert api.call("GET", "/api/v1/deployments/nope")[0] == 404
    assert api.call("POST", "/api/v1/deployments/nope/promote")[0] == 404
    assert api.call("POST", "/api/v1/deployments/iris/rollback", {"why": "x"})[0] == 400
    assert api.call("POST", "/api/v1/deployments/iris/frobnicate")[0] == 404

    status, r, _ = api.call("DELETE", "/api/v1/deployments/iris")
    assert status == 200 and r == {"model": "iris", "removed": True}
    assert api.call("DELETE", "/api/v1/deployments/iris")[0] == 404
    assert api.call("GET", "/api/v1/deployments")[1] == {"deployments": []}


def test_audit(api, home):
    assert api.push("iris", IRIS_V1, alias="prod")[0] == 201
    assert api.call("PUT", "/api/v1/models/iris/aliases/staging", {"version": 1})[0] == 200
    status, r, _ = api.call("GET", "/api/v1/audit")
    assert status == 200
    actions = [e["action"] for e in r["audit"]]
    assert "push" in actions and actions[-1] == "alias"
    assert all(e["who"] == "api" for e in r["audit"])
    status, r, _ = api.call("GET", "/api/v1/audit?limit=1")
    assert status == 200 and len(r["audit"]) == 1 and r["audit"][0]["action"] == "alias"
    out = cli(home, "audit", "--json")
    if out.code == 0:
        cli_audit = json.loads(out.out)
        entries = cli_audit["audit"] if isinstance(cli_audit, dict) else cli_audit
        assert entries[-1] == r["audit"][0]


def test_push_then_predict(api, home):
    status, r, _ = api.push("iris", IRIS_V2, alias="prod")
    assert status == 201
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, data, _ = api.server.request("GET", "/v2/models/iris/ready")
        if status == 200:
            break
        time.sleep(0.05)
    assert status == 200, api.server.stderr()
    v = api.call("GET", "/api/v1/models/iris/versions/1")[1]
    # The temporary copy the upload was pushed from is not the source.
    assert v["lineage"]["source_path"] == "upload to the management API"
    assert v["created_by"] == "api"
    status, data, _ = api.server.request("POST", "/v2/models/iris/infer", json.dumps(v2_body()),
                                         {"Content-Type": "application/json"})
    assert status == 200, data
    labels = [o for o in json.loads(data)["outputs"] if o["name"] == "label"][0]["data"]
    assert labels == [0, 1, 2]


def test_api_off_without_registry(tmp_path):
    s = Server(tmp_path, "--model", f"iris={IRIS_V1}")
    try:
        status, data, _ = s.request("GET", "/api/v1/models", headers={"Authorization": "Bearer x" * 4})
        assert status == 404
    finally:
        assert s.stop() == 0


# ---- API keys --------------------------------------------------------------------------

KEY_A = "key-a-0123456789abcdef0123"
KEY_B = "key-b-0123456789abcdef0123"


def write_keys(path, *keys):
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# inference keys\n\n" + "".join(k + "\n" for k in keys))
    os.replace(tmp, path)


def test_api_keys(tmp_path):
    keys = tmp_path / "keys"
    write_keys(keys, KEY_A)
    s = Server(tmp_path, "--model", f"iris={IRIS_V1}", "--api-keys", keys)
    try:
        infer = [("POST", "/v2/models/iris/infer", json.dumps(v2_body())),
                 ("POST", "/v1/models/iris:predict", json.dumps({"instances": ROWS})),
                 ("POST", "/invocations", json.dumps({"instances": ROWS})),
                 ("POST", "/predict", json.dumps({"instances": ROWS})),
                 ("GET", "/v2/models/iris", None),
                 ("GET", "/v1/models/iris", None)]
        ct = {"Content-Type": "application/json"}
        for method, path, body in infer:
            for hdrs in ({}, {"X-API-Key": KEY_B}, {"Authorization": "Bearer " + KEY_B},
                         {"Authorization": KEY_A}, {"X-API-Key": KEY_A[:-1]}):
                status, data, got = s.request(method, path, body, {**ct, **hdrs})
                assert status == 401, (path, hdrs, status)
                assert got.get("WWW-Authenticate", "").startswith("Bearer")
                assert "error" in json.loads(data)
            for hdrs in ({"X-API-Key": KEY_A}, {"Authorization": "Bearer " + KEY_A}):
                status, data, _ = s.request(method, path, body, {**ct, **hdrs})
                assert status == 200, (path, hdrs, status, data)
        for path in ("/v2/health/live", "/v2/health/ready", "/ping", "/health", "/v2", "/metrics"):
            assert s.request("GET", path)[0] == 200, path
        assert 'code="401"' in s.request("GET", "/metrics")[1].decode()

        # A changed file is read again (checked at most once a second).
        write_keys(keys, KEY_B)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if s.request("GET", "/v2/models/iris", headers={"X-API-Key": KEY_B})[0] == 200:
                break
            time.sleep(0.1)
        assert s.request("GET", "/v2/models/iris", headers={"X-API-Key": KEY_B})[0] == 200
        assert s.request("GET", "/v2/models/iris", headers={"X-API-Key": KEY_A})[0] == 401
        # A broken rewrite keeps the keys that worked, and says why.
        keys.write_text("short\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "keeping the 1 key" not in s.stderr():
            s.request("GET", "/v2/models/iris", headers={"X-API-Key": KEY_B})
            time.sleep(0.1)
        assert "keeping the 1 key" in s.stderr()
        assert s.request("GET", "/v2/models/iris", headers={"X-API-Key": KEY_B})[0] == 200
        assert KEY_A not in s.stderr() and KEY_B not in s.stderr()
    finally:
        assert s.stop() == 0


def test_api_keys_bad_file_refused_at_start(tmp_path):
    keys = tmp_path / "keys"
    for text, why in (("# nothing\n", "no key"), ("short\n", "line 1")):
        keys.write_text(text)
        p = subprocess.run([binary(), "serve", "--host", "127.0.0.1", "--port", "0", "--model", f"iris={IRIS_V1}",
                            "--api-keys", str(keys)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and why in p.stderr, p.stderr


def test_push_xgboost_json_and_ubj(api, home, tmp_path):
    xgb = pytest.importorskip("xgboost")
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=y), 3)
    for ext in ("json", "ubj"):
        path = tmp_path / f"m.{ext}"
        booster.save_model(str(path))
        status, r, _ = api.push("xgb", path)
        assert status == 201 and r["format"] == "xgboost", r
        v = api.call("GET", f"/api/v1/models/xgb/versions/{r['version']}")[1]
        assert v["file_name"] == f"model.{ext}" and v["size_bytes"] == path.stat().st_size


# ---- hostile input ----------------------------------------------------------------

def test_mutated_requests_never_break_the_api(api, home):
    """Seeded mutations of valid management requests (paths, query strings,
    JSON bodies, model uploads): every answer is a 2xx or a 4xx (503 only
    when busy), the server keeps serving, and the registry stays consistent."""
    import random
    rng = random.Random(1234)
    assert api.push("iris", IRIS_V1, alias="prod")[0] == 201
    model = IRIS_V2.read_bytes()
    seeds = [
        ("GET", "/api/v1/models", None),
        ("GET", "/api/v1/models/iris", None),
        ("GET", "/api/v1/models/iris/versions/1", None),
        ("PUT", "/api/v1/models/iris/aliases/staging", b'{"version": 1}'),
        ("DELETE", "/api/v1/models/iris/aliases/staging", None),
        ("PUT", "/api/v1/deployments/iris",
         b'{"version":1,"canary":2,"percent":10,"shadow":3,"sticky_header":"X-U",'
         b'"rollback":{"max_error_rate_increase":0.1,"max_p99_ratio":0,"window_seconds":5,"min_requests":3}}'),
        ("POST", "/api/v1/deployments/iris/promote", None),
        ("POST", "/api/v1/deployments/iris/rollback", b'{"reason":"x"}'),
        ("GET", "/api/v1/audit?limit=3", None),
        ("POST", "/api/v1/models/iris/versions?alias=a", model[:4096]),
        ("DELETE", "/api/v1/models/iris/versions/9?force=true", None),
    ]
    noise = ["", "/", "//", "%", "%zz", "%00", "..", "?", "&", "=", "@", "\\", "\x7f", "é", "0", "-1",
             "99999999999999999999", "{", "}", "[", "]", ",", ":", '"', "null", "1e309", " "]

    def mutate(data):
        data = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            pos = rng.randint(0, len(data))
            if op == 0 and data:
                del data[min(pos, len(data) - 1)]
            elif op == 1:
                data[pos:pos] = rng.choice(noise).encode()
            elif op == 2 and data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
            else:
                data = data[:pos]
        return bytes(data)

    statuses = {}
    for i in range(300):
        method, path, body = rng.choice(seeds)
        if rng.random() < 0.5:
            path = mutate(path.encode()).decode("latin-1")
            if not path.startswith("/api/v1"):
                path = "/api/v1/" + path.lstrip("/")
            path = "".join(c if 0x21 <= ord(c) < 0x7f else "%%%02X" % (ord(c) & 0xff) for c in path)
        if body is not None and rng.random() < 0.7:
            body = mutate(body)
        status, _, _ = api.call(method, path, body)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500 or status == 503, (method, path, body, status)
    print("statuses:", dict(sorted(statuses.items())))
    assert api.call("GET", "/api/v1/models")[0] == 200
    assert api.server.request("GET", "/v2/health/live")[0] == 200
    fsck = cli(home, "fsck", "--json")
    assert fsck.code == 0, fsck.out


def test_api_requests_counted_in_metrics(api):
    def counted(code):
        _, text, _ = api.server.request("GET", "/metrics")
        m = re.search(rf'^stratus_api_requests_total{{code="{code}"}} (\d+)$', text.decode(), re.M)
        return int(m.group(1)) if m else 0

    assert api.call("GET", "/api/v1/models", token=False)[0] == 401
    assert api.call("GET", "/api/v1/models")[0] == 200
    assert api.call("GET", "/api/v1/models/nope")[0] == 404
    assert (counted(401), counted(200), counted(404)) == (1, 1, 1)
