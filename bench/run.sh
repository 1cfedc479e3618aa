#!/bin/sh
# Runs every benchmark program built into $OUT/bench, side by side with its
# peers; each prints its own table of figures and ratios.
set -u
OUT=${OUT:-build/release}
rc=0
for b in "$OUT"/bench/*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || rc=1
done
# The engine against ONNX Runtime (exports models, installs the npm peer
# into build/bench-cache on first use).
echo "== engine vs onnxruntime"
/usr/bin/python3 bench/engine.py "$STRATUS_BIN" "$(pwd)/build/bench-cache" "${BENCH_SECONDS:-3}" || rc=1
# Tree ensembles: Stratus (ONNX-ML and native XGBoost JSON) against XGBoost's
# own predictor and ONNX Runtime.
echo "== trees vs xgboost and onnxruntime"
/usr/bin/python3 bench/trees.py "$STRATUS_BIN" "$(pwd)/build/bench-cache" "${BENCH_SECONDS:-3}" || rc=1
exit $rc
