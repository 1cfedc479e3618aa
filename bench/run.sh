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
exit $rc
