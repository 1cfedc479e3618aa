"""Deployments as a user meets them: deploy, show, list, promote, roll back,
delete; bad input that changes nothing; rm refused while a deployment uses
a version; alias removal; the audit log."""
import json

import pytest

from test_registry import fsck_json, home, make_model, ok, st  # noqa: F401 (fixtures)


@pytest.fixture
def churn(st, tmp_path):
    """Model churn with versions 1..4; alias production -> 2."""
    for k in range(1, 5):
        make_model(tmp_path / f"m{k}.onnx", float(k))
        ok(st("push", f"m{k}.onnx", "--name", "churn"))
    ok(st("alias", "churn@2", "production"))
    return "churn"


def policy(st, name="churn"):
    return json.loads(ok(st("deploy", name, "--json")).stdout)


def audit(st):
    return json.loads(ok(st("audit", "--json")).stdout)["audit"]


def snapshot(st):
    """Everything a failed command must leave as it was."""
    p = st("deploy", "churn", "--json")
    return p.returncode, p.stdout, len(audit(st)), ok(st("deployments", "--json")).stdout


def test_deploy_show_list_promote_rollback_delete(st, churn):
    p = ok(st("deploy", "churn", "--version", "production", "--canary", "3", "--percent", "10",
              "--shadow", "4", "--sticky-header", "X-User"))
    assert ("churn: stable 2 (90%), canary 3 (10%), shadow 4, sticky X-User; rollback when "
            "error rate +5.0 pts or p99 x2.0 over 60 s after 20 requests") in p.stdout
    d = policy(st)
    assert d["stable"] == 2 and d["canary"] == 3 and d["canary_percent"] == 10
    assert d["shadow"] == 4 and d["sticky_header"] == "X-User"
    assert d["state"] == "canary" and d["revision"] == 1 and d["previous_stable"] is None
    assert d["rollback_rule"] == {"max_error_rate_increase": 0.05, "max_p99_ratio": 2.0,
                                  "window_s": 60, "min_requests": 20}
    assert "stable 2 (90%)" in ok(st("deploy", "churn")).stdout

    listed = json.loads(ok(st("deployments", "--json")).stdout)["deployments"]
    assert listed == [d]
    assert "churn: stable 2" in ok(st("deployments")).stdout

    p = ok(st("promote", "churn"))
    assert "promoted 3" in p.stdout
    d = json.loads(ok(st("deploy", "churn", "--json")).stdout)
    assert (d["stable"], d["canary"], d["previous_stable"], d["state"]) == (3, None, 2, "stable")
    assert d["revision"] == 2

    # Rollback without a canary: back to the previous stable version.
    d = json.loads(ok(st("rollback", "churn", "--reason", "scores drifted", "--json")).stdout)
    assert (d["stable"], d["previous_stable"], d["state"], d["reason"]) == (2, None, "rolled_back", "scores drifted")

    # Rollback of a canary: all traffic to stable, canary dropped.
    ok(st("deploy", "churn", "--version", "2", "--canary", "4", "--percent", "50",
          "--max-error-rate-increase", "0.1", "--max-p99-ratio", "0", "--window", "30",
          "--min-requests", "5"))
    d = policy(st)
    assert d["rollback_rule"] == {"max_error_rate_increase": 0.1, "max_p99_ratio": 0.0,
                                  "window_s": 30, "min_requests": 5}
    assert "p99" not in ok(st("deploy", "churn")).stdout
    p = ok(st("rollback", "churn"))
    assert "rolled back canary 4" in p.stdout
    d = policy(st)
    assert (d["stable"], d["canary"], d["state"]) == (2, None, "rolled_back")

    actions = [e["action"] for e in audit(st)]
    assert actions[-5:] == ["deploy", "promote", "rollback", "deploy", "rollback"]
    last = audit(st)[-1]
    assert last["target"] == "churn" and last["before"]["canary"] == 4 and last["after"]["canary"] is None

    p = ok(st("deploy", "churn", "--delete"))
    assert "removed the deployment of churn" in p.stdout
    p = st("deploy", "churn")
    assert p.returncode == 1 and "no deployment" in p.stderr
    assert "no deployments yet" in ok(st("deployments")).stdout
    assert audit(st)[-1]["action"] == "undeploy"
    assert fsck_json(st)[0] == 0


BAD = [
    (["--canary", "3", "--percent", "10"], 2, "--version"),
    (["--version", "2", "--percent", "10"], 2, "--percent needs --canary"),
    (["--version", "2", "--canary", "3"], 1, "percent"),
    (["--version", "2", "--canary", "3", "--percent", "0"], 1, "percent"),
    (["--version", "2", "--canary", "3", "--percent", "101"], 1, "percent"),
    (["--version", "2", "--canary", "3", "--percent", "-5"], 2, "--percent"),
    (["--version", "2", "--canary", "3", "--percent", "ten"], 2, "--percent"),
    (["--version", "2", "--canary", "production", "--percent", "10"], 1, "canary must differ"),
    (["--version", "2", "--shadow", "2"], 1, "shadow must differ"),
    (["--version", "2", "--sticky-header", "X User"], 1, "header"),
    (["--version", "2", "--sticky-header", "X-User:"], 1, "header"),
    (["--version", "2", "--sticky-header", "h" * 65], 1, "header"),
    (["--version", "9"], 1, "no version 9"),
    (["--version", "2", "--canary", "staging", "--percent", "10"], 1, "staging"),
    (["--version", "2", "--max-error-rate-increase", "5"], 1, "error rate"),
    (["--version", "2", "--max-error-rate-increase", "0"], 2, "error-rate"),
    (["--version", "2", "--max-p99-ratio", "0.5"], 1, "p99"),
    (["--version", "2", "--window", "0"], 2, "--window"),
    (["--version", "2", "--min-requests", "0"], 2, "--min-requests"),
    (["--version", "2", "--delete"], 2, "--delete"),
    (["--version", "2", "--bogus"], 2, "unknown flag"),
]


@pytest.mark.parametrize("args,code,says", BAD, ids=[" ".join(b[0])[:40] for b in BAD])
def test_bad_deploy_changes_nothing(st, churn, args, code, says):
    ok(st("deploy", "churn", "--version", "1", "--canary", "3", "--percent", "20"))
    before = snapshot(st)
    p = st("deploy", "churn", *args)
    assert p.returncode == code, p.stderr
    assert says in p.stderr
    assert p.stdout == ""
    assert snapshot(st) == before


def test_bad_names_and_missing_things(st, churn):
    before = snapshot(st)
    for args, says in [(["deploy", "nosuch", "--version", "1"], "no model named 'nosuch'"),
                       (["deploy", "a/b", "--version", "1"], "model name"),
                       (["deploy"], "needs the model NAME"),
                       (["promote", "churn"], "no deployment"),
                       (["rollback", "churn"], "no deployment"),
                       (["deploy", "churn", "--delete"], "no deployment"),
                       (["promote"], "needs the model NAME")]:
        p = st(*args)
        assert p.returncode != 0 and says in p.stderr, (args, p.stderr)
    assert snapshot(st) == before


def test_nothing_to_promote_or_roll_back(st, churn):
    ok(st("deploy", "churn", "--version", "2"))
    before = snapshot(st)
    p = st("promote", "churn")
    assert p.returncode == 1 and "no canary to promote" in p.stderr
    p = st("rollback", "churn")
    assert p.returncode == 1 and "nothing to roll back" in p.stderr
    assert snapshot(st) == before


def test_rm_refused_while_deployed(st, churn):
    ok(st("deploy", "churn", "--version", "1", "--canary", "3", "--percent", "10", "--shadow", "4"))
    before = snapshot(st)
    for version, role in [(1, "stable version"), (3, "canary"), (4, "shadow")]:
        p = st("rm", f"churn@{version}")
        assert p.returncode == 1
        assert "deployment of 'churn'" in p.stderr and role in p.stderr and "--force" in p.stderr
    assert snapshot(st) == before

    p = ok(st("rm", "churn@3", "--force"))
    assert "deployment now churn: stable 1 (100%), shadow 4" in p.stdout
    assert policy(st)["canary"] is None
    p = ok(st("rm", "churn@1", "--force"))
    assert "removed the deployment of churn" in p.stdout
    assert st("deploy", "churn").returncode == 1
    assert [e["action"] for e in audit(st)][-4:] == ["deploy", "rm", "undeploy", "rm"]
    assert fsck_json(st)[0] == 0


def test_alias_delete(st, churn):
    p = ok(st("alias", "churn", "--delete", "production"))
    assert "removed alias churn@production (was 2)" in p.stdout
    assert st("show", "churn@production").returncode == 1
    before = len(audit(st))
    p = st("alias", "churn", "--delete", "production")
    assert p.returncode == 1 and "no alias 'production'" in p.stderr
    p = st("alias", "churn@1", "x", "--delete", "y")
    assert p.returncode == 2
    assert len(audit(st)) == before
    e = audit(st)[-1]
    assert (e["action"], e["target"], e["before"]["version"], e["after"]) == ("unalias", "churn@production", 2, None)


def test_audit_listing(st, churn):
    entries = audit(st)
    assert [e["action"] for e in entries] == ["push"] * 4 + ["alias"]
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    assert all(e["who"] for e in entries)
    assert entries[0]["target"] == "churn@1" and entries[0]["before"] is None
    assert entries[0]["after"]["version"] == 1
    last2 = json.loads(ok(st("audit", "--limit", "2", "--json")).stdout)["audit"]
    assert last2 == entries[-2:]
    text = ok(st("audit", "--limit", "1")).stdout.splitlines()
    assert text[0].split() == ["ID", "AT", "WHO", "ACTION", "TARGET"]
    assert text[1].split()[3:] == ["alias", "churn@production"]
    assert st("audit", "--limit", "-1").returncode == 2


def test_help_for_every_deployment_verb(st):
    for verb in ["deploy", "deployments", "promote", "rollback", "audit"]:
        p = ok(st("help", verb))
        assert f"stratus {verb}" in p.stdout
    assert "--delete" in ok(st("help", "alias")).stdout
    assert "deployment" in ok(st("help", "rm")).stdout


def test_no_registry(st):
    for args in [["deploy", "churn"], ["deployments"], ["audit"], ["promote", "churn"]]:
        p = st(*args)
        assert p.returncode == 1 and "no registry" in p.stderr


def test_fsck_reports_a_deployment_naming_a_missing_version(st, churn, home):
    """Deployments name versions by number, with no foreign key: a row
    edited behind the registry's back is damage that fsck must report."""
    import sqlite3
    ok(st("deploy", "churn", "--version", "2", "--canary", "3", "--percent", "10"))
    assert fsck_json(st)[0] == 0
    db = sqlite3.connect(str(home / "registry.db"))
    with db:
        db.execute("UPDATE deployments SET canary = 99")
    db.close()
    code, report = fsck_json(st)
    assert code == 1
    text = json.dumps(report)
    assert "deployment" in text and "canary 99" in text


def test_fsck_gc_removes_an_upload_left_by_a_dead_server(st, churn, home):
    """A server killed during an API push leaves its upload folder in the
    home; fsck names it and --gc removes it, but never a live one."""
    import os
    dead = home / ".upload-999999999-abc123"
    dead.mkdir()
    (dead / "model.onnx").write_bytes(b"partial")
    live = home / f".upload-{os.getpid()}-def456"
    live.mkdir()
    code, report = fsck_json(st)
    assert code == 0
    text = json.dumps(report)
    assert "interrupted upload" in text and "upload in progress" in text
    ok(st("fsck", "--gc"))
    assert not dead.exists() and live.exists()
