#!/bin/sh
# Runs the test layers and ends with one line "N passed, N failed".
#   OUT=build/<variant>  STRATUS_BIN=/abs/path/stratus  LAYERS="unit replay e2e"
# Unit tests are cmocka programs (TAP output, one count per test case);
# replay runs each fuzzer over its seed corpus (one count per target);
# e2e is pytest over tests/e2e against the real binary (one count per test).
set -u
OUT=${OUT:-build/release}
LAYERS=${LAYERS:-"unit replay conformance e2e"}
# Commas separate layers as well as spaces; an unknown layer is an error,
# not a silent "0 passed".
LAYERS=$(echo "$LAYERS" | tr ',' ' ')
for layer in $LAYERS; do
    case $layer in
    unit | replay | conformance | e2e) ;;
    *) echo "tests/run.sh: unknown layer '$layer' in LAYERS (use unit, replay, conformance, e2e)" >&2; exit 2 ;;
    esac
done
ONNX_DATA=${ONNX_DATA:-/usr/share/libonnx-testdata/data}
PY=/usr/bin/python3
passed=0
failed=0
log="$OUT/test-logs"
mkdir -p "$log"

count() { # $1 = 0 pass / else fail, $2 = label
    if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $2"; fi
}

for layer in $LAYERS; do
case $layer in
unit)
    for t in "$OUT"/tests/test_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        CMOCKA_MESSAGE_OUTPUT=TAP "$t" > "$log/$name.tap" 2>&1
        rc=$?
        ok=$(grep -c '^ok ' "$log/$name.tap")
        # cmocka reports a skipped test as "not ok N # SKIP": not a failure.
        skip=$(grep -c '^not ok .*# SKIP' "$log/$name.tap")
        bad=$(($(grep -c '^not ok ' "$log/$name.tap") - skip))
        passed=$((passed + ok))
        failed=$((failed + bad))
        if [ "$bad" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; }; then
            [ "$bad" -eq 0 ] && failed=$((failed + 1))
            echo "FAIL unit $name (exit $rc):"
            grep -v '^ok ' "$log/$name.tap" | grep -v '# SKIP' | tail -n 30
        fi
        [ "$skip" -gt 0 ] && echo "unit   $name: $ok passed, $bad failed, $skip skipped" || echo "unit   $name: $ok passed, $bad failed"
    done
    ;;
replay)
    for t in "$OUT"/fuzz/*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        if [ ! -d "fuzz/corpus/$name" ]; then
            count 1 "replay $name: no seed corpus in fuzz/corpus/$name"
            continue
        fi
        "$t" "fuzz/corpus/$name" > "$log/replay-$name.log" 2>&1
        rc=$?
        count $rc "replay $name"
        [ $rc -ne 0 ] && tail -n 30 "$log/replay-$name.log"
        echo "replay $name: $(tail -n 1 "$log/replay-$name.log")"
    done
    ;;
conformance)
    # The ONNX backend cases listed as passing must keep passing.
    list=tests/conformance/passing.txt
    if [ ! -x "$OUT/conformance" ] || [ ! -f "$list" ]; then
        count 1 "conformance: runner or $list missing"
        continue
    fi
    "$OUT/conformance" --only "$list" "$ONNX_DATA/node" "$ONNX_DATA/pytorch-converted" \
        "$ONNX_DATA/pytorch-operator" "$ONNX_DATA/simple" > "$log/conformance.log" 2>&1
    rc=$?
    set -- $(tail -n 1 "$log/conformance.log" | sed 's/[^0-9 ]//g')
    if [ $# -ne 2 ]; then
        tail -n 20 "$log/conformance.log"
        count 1 "conformance: runner did not finish (exit $rc)"
        continue
    fi
    passed=$((passed + $1))
    failed=$((failed + $2))
    [ "$2" -gt 0 ] && grep -E '^(FAIL|unsupported)' "$log/conformance.log"
    echo "conformance: $1 passed, $2 failed (cases in $list)"
    ;;
e2e)
    if [ ! -x "$PY" ]; then
        count 1 "e2e: $PY not found (run make deps)"
        continue
    fi
    xml="$log/e2e.xml"
    rm -f "$xml"
    STRATUS_BIN=${STRATUS_BIN:-$(pwd)/bin/stratus} "$PY" -m pytest -q -p no:cacheprovider \
        --junitxml="$xml" tests/e2e > "$log/e2e.log" 2>&1
    rc=$?
    if [ ! -f "$xml" ]; then
        cat "$log/e2e.log"
        count 1 "e2e: pytest did not run (exit $rc)"
        continue
    fi
    set -- $("$PY" - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - k, f, k)
PYEOF
)
    passed=$((passed + $1))
    failed=$((failed + $2))
    [ "$2" -gt 0 ] && grep -E '^(FAILED|ERROR)' "$log/e2e.log"
    [ "$2" -gt 0 ] || [ $rc -eq 0 ] || [ $rc -eq 5 ] || { cat "$log/e2e.log"; failed=$((failed + 1)); }
    echo "e2e    pytest: $1 passed, $2 failed, $3 skipped"
    ;;
esac
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
