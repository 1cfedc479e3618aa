"""The CLI contract: verbs, help, exit codes, hints, --json."""
import json


def test_help_lists_every_verb(stratus):
    r = stratus("help")
    assert r.code == 0
    assert "version" in r.out and "help" in r.out


def test_no_verb_is_usage_error(stratus):
    r = stratus()
    assert r.code == 2
    assert "usage: stratus VERB" in r.err


def test_help_of_a_verb(stratus):
    r = stratus("help", "version")
    assert r.code == 0
    assert r.out.startswith("usage: stratus version")
    assert "--json" in r.out
    assert stratus("version", "--help").out == r.out


def test_unknown_verb_suggests_closest(stratus):
    r = stratus("verison")
    assert r.code == 2
    assert "unknown verb 'verison'; did you mean 'version'?" in r.err


def test_unknown_flag_suggests_closest(stratus):
    r = stratus("version", "--jsn")
    assert r.code == 2
    assert "did you mean '--json'?" in r.err
    assert r.out == ""


def test_help_unknown_verb(stratus):
    r = stratus("help", "nope-not-a-verb")
    assert r.code == 2
    assert "no verb" in r.err


def test_unexpected_argument(stratus):
    r = stratus("version", "extra")
    assert r.code == 2
    assert "unexpected argument 'extra'" in r.err


def test_version_text(stratus):
    r = stratus("version")
    assert r.code == 0
    assert r.out.startswith("stratus ")
    assert "commit" in r.out and "cpu" in r.out


def test_version_json(stratus):
    r = stratus("version", "--json")
    assert r.code == 0
    v = json.loads(r.out)
    for key in ("version", "commit", "compiler", "build_flags", "cpu_features", "cpus"):
        assert key in v
    assert isinstance(v["cpu_features"], list)
    assert v["cpus"] >= 1


def test_log_format_flag_validated(stratus):
    r = stratus("--log-format", "xml", "version")
    assert r.code == 2
    assert "--log-format must be 'text' or 'json'" in r.err
    assert stratus("--log-format=json", "version").code == 0
    assert stratus("version", "--log-level", "debug").code == 0
