#!/bin/sh
# The serving benchmark of `make bench`, with wrk on loopback, side by side:
#  1. HTTP ceiling: GET /v2/health/ready against nginx serving a static file
#     of the same bytes, same wrk threads and connections;
#  2. V2 infer on the small tabular model (examples/models/iris v2) against
#     FastAPI + uvicorn computing it with numpy: peak requests/s, then p50/p99
#     at a fixed rate of half of Stratus's peak;
#  3. the CNN of bench/models/export.py with dynamic batching on and off
#     under 64 connections.
# Fixed rate: wrk has no open-loop mode, so the Lua script's delay() hook
# paces each connection (1 ms between a response and its next request;
# connections = rate / 1000); the rate reached is printed next to it.
#   STRATUS_BIN=bin/stratus BENCH_SECONDS=5 sh bench/serve.sh
set -u
BIN=${STRATUS_BIN:-$(pwd)/bin/stratus}
SECS=${BENCH_SECONDS:-5}
PY=/usr/bin/python3
CONNS=64
THREADS=2
TMP=$(mktemp -d "${TMPDIR:-/tmp}/stratus-bench-serve.XXXXXX")
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { echo "serve bench: wrk not installed (make deps)"; exit 1; }
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # $1 url: up to 20 s
    i=0
    while [ $i -lt 200 ]; do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    echo "serve bench: $1 never answered"; return 1
}
# rps and latency percentiles (us) from wrk --latency output.
wrk_rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
wrk_pct() { # $1 file $2 percent label ("50%" / "99%") -> microseconds
    awk -v p="$2" '$1 == p { v = $2; u = 1;
        if (v ~ /us$/) { sub(/us$/, "", v) } else if (v ~ /ms$/) { sub(/ms$/, "", v); u = 1000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); u = 1000000 }
        printf "%.0f", v * u }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# --- the servers -------------------------------------------------------------
MODELS="$TMP/models"
mkdir -p "$MODELS"
cp -r examples/models/iris "$MODELS/iris"
printf '{"version_policy": {"latest": 1}, "max_batch_size": 64}\n' > "$MODELS/iris/config.json"
$PY bench/models/export.py "$TMP/export" >/dev/null 2>&1 || { echo "serve bench: model export failed"; exit 1; }
mkdir -p "$MODELS/cnn/1" "$MODELS/cnn_nobatch/1"
cp "$TMP/export/cnn.onnx" "$MODELS/cnn/1/model.onnx"
cp "$TMP/export/cnn.onnx" "$MODELS/cnn_nobatch/1/model.onnx"
printf '{"max_batch_size": 64, "max_queue_delay_us": 2000}\n' > "$MODELS/cnn/config.json"
printf '{"max_batch_size": 0}\n' > "$MODELS/cnn_nobatch/config.json"

SPORT=$(free_port)
"$BIN" serve --models "$MODELS" --host 127.0.0.1 --port "$SPORT" --log-level warn 2>"$TMP/stratus.log" &
PIDS="$PIDS $!"
wait_http "http://127.0.0.1:$SPORT/v2/health/ready" || { cat "$TMP/stratus.log"; exit 1; }

NPORT=$(free_port)
mkdir -p "$TMP/nginx/www" "$TMP/nginx/logs"
curl -s "http://127.0.0.1:$SPORT/v2/health/ready" > "$TMP/nginx/www/ready"
# Run as root, nginx's workers drop to an unprivileged user: let it read.
chmod a+rx "$TMP" "$TMP/nginx" "$TMP/nginx/www"
chmod a+r "$TMP/nginx/www/ready"
cat > "$TMP/nginx/nginx.conf" <<NGINX
worker_processes $(nproc);
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NPORT;
        location = /v2/health/ready { default_type application/json; alias $TMP/nginx/www/ready; }
    }
}
NGINX
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/logs/stderr" &
PIDS="$PIDS $!"
wait_http "http://127.0.0.1:$NPORT/v2/health/ready" || { cat "$TMP/nginx/logs/"*; exit 1; }

FPORT=$(free_port)
$PY bench/fastapi_server.py examples/models/iris/2/model.onnx "$FPORT" "$(nproc)" 2>"$TMP/fastapi.log" &
PIDS="$PIDS $!"
wait_http "http://127.0.0.1:$FPORT/v2/health/ready" || { cat "$TMP/fastapi.log"; exit 1; }

# Request bodies: one iris row; one CNN image.
$PY -c 'import json; print(json.dumps({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}))' > "$TMP/iris.json"
$PY -c '
import json, random
random.seed(0)
print(json.dumps({"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":[round(random.uniform(-1,1),3) for _ in range(3072)]}]}))' > "$TMP/cnn.json"
cat > "$TMP/post.lua" <<'LUA'
local f = io.open(os.getenv("BODY_FILE"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local pace = tonumber(os.getenv("PACE_MS") or "0")
if pace > 0 then
    function delay() return pace end
end
LUA
run_wrk() { # $1 out file, $2 url, $3 connections, [$4 body file, $5 pace ms]
    t=$THREADS
    [ "$3" -lt "$t" ] && t=$3
    if [ $# -ge 4 ]; then
        BODY_FILE=$4 PACE_MS=${5:-0} wrk -t$t -c"$3" -d"${SECS}s" --latency -s "$TMP/post.lua" "$2" > "$1" 2>&1
    else
        wrk -t$t -c"$3" -d"${SECS}s" --latency "$2" > "$1" 2>&1
    fi
}
warm() { BODY_FILE=$2 PACE_MS=0 wrk -t1 -c4 -d1s -s "$TMP/post.lua" "$1" >/dev/null 2>&1; }

echo "serving benchmark: wrk -t$THREADS -c$CONNS, ${SECS}s per run, $(nproc) CPUs (wrk shares them)"

# --- 1. HTTP ceiling -------------------------------------------------------------
run_wrk "$TMP/w_sready" "http://127.0.0.1:$SPORT/v2/health/ready" $CONNS
run_wrk "$TMP/w_nready" "http://127.0.0.1:$NPORT/v2/health/ready" $CONNS
S=$(wrk_rps "$TMP/w_sready"); N=$(wrk_rps "$TMP/w_nready")
printf '\n1. GET /v2/health/ready (%s bytes)\n' "$(wc -c < "$TMP/nginx/www/ready")"
printf '   %-22s %12s req/s  p50 %6s us  p99 %6s us\n' stratus "$S" "$(wrk_pct "$TMP/w_sready" 50%)" "$(wrk_pct "$TMP/w_sready" 99%)"
printf '   %-22s %12s req/s  p50 %6s us  p99 %6s us\n' "nginx (static file)" "$N" "$(wrk_pct "$TMP/w_nready" 50%)" "$(wrk_pct "$TMP/w_nready" 99%)"
printf '   ratio stratus/nginx: %sx (goal >= 0.8)\n' "$(ratio "$S" "$N")"

# --- 2. small tabular model ----------------------------------------------------------
SURL="http://127.0.0.1:$SPORT/v2/models/iris/infer"
FURL="http://127.0.0.1:$FPORT/v2/models/iris/infer"
warm "$SURL" "$TMP/iris.json"; warm "$FURL" "$TMP/iris.json"
run_wrk "$TMP/w_sinf" "$SURL" $CONNS "$TMP/iris.json"
run_wrk "$TMP/w_finf" "$FURL" $CONNS "$TMP/iris.json"
S=$(wrk_rps "$TMP/w_sinf"); F=$(wrk_rps "$TMP/w_finf")
printf '\n2. POST /v2/models/iris/infer, 1 row (MLP 4-16-3)\n'
printf '   %-22s %12s req/s  p50 %6s us  p99 %6s us\n' stratus "$S" "$(wrk_pct "$TMP/w_sinf" 50%)" "$(wrk_pct "$TMP/w_sinf" 99%)"
printf '   %-22s %12s req/s  p50 %6s us  p99 %6s us\n' "fastapi+uvicorn numpy" "$F" "$(wrk_pct "$TMP/w_finf" 50%)" "$(wrk_pct "$TMP/w_finf" 99%)"
printf '   ratio stratus/fastapi: %sx (goal >= 20)\n' "$(ratio "$S" "$F")"
# Half of each server's own peak.  A paced connection sends one request per
# (pace + latency); a first run measures that, a second one corrects the
# number of connections to land near the target rate.
for who in stratus fastapi; do
    if [ $who = stratus ]; then peak=$S; url=$SURL; else peak=$F; url=$FURL; fi
    target=$(awk -v p="$peak" 'BEGIN { printf "%.0f", p / 2 }')
    pace=1
    conns=$(awk -v t="$target" 'BEGIN { c = int(t / 1000 + 0.5); if (c < 1) c = 1; print c }')
    if [ "$conns" -le 1 ]; then pace=$(awk -v t="$target" 'BEGIN { d = int(1000 / t + 0.5); if (d < 1) d = 1; print d }'); fi
    run_wrk "$TMP/w_fix_$who" "$url" "$conns" "$TMP/iris.json" "$pace"
    got=$(wrk_rps "$TMP/w_fix_$who")
    conns=$(awk -v c="$conns" -v t="$target" -v g="$got" 'BEGIN { n = (g > 0) ? int(c * t / g + 0.5) : c; if (n < 1) n = 1; if (n > 256) n = 256; print n }')
    run_wrk "$TMP/w_fix_$who" "$url" "$conns" "$TMP/iris.json" "$pace"
    printf '   %-22s target %s req/s (%s conns, %s ms pacing): got %s req/s  p50 %s us  p99 %s us\n' "$who" "$target" \
        "$conns" "$pace" "$(wrk_rps "$TMP/w_fix_$who")" "$(wrk_pct "$TMP/w_fix_$who" 50%)" "$(wrk_pct "$TMP/w_fix_$who" 99%)"
done

# --- 3. batching on the CNN -----------------------------------------------------------
printf '\n3. POST CNN 3x32x32 infer, 1 image per request, %s connections\n' $CONNS
for m in cnn cnn_nobatch; do
    url="http://127.0.0.1:$SPORT/v2/models/$m/infer"
    warm "$url" "$TMP/cnn.json"
    run_wrk "$TMP/w_$m" "$url" $CONNS "$TMP/cnn.json"
    label=$([ $m = cnn ] && echo "batching on (64, 2 ms)" || echo "batching off")
    printf '   %-22s %12s req/s  p50 %6s us  p99 %6s us\n' "$label" "$(wrk_rps "$TMP/w_$m")" \
        "$(wrk_pct "$TMP/w_$m" 50%)" "$(wrk_pct "$TMP/w_$m" 99%)"
done
printf '   throughput ratio on/off: %sx\n' "$(ratio "$(wrk_rps "$TMP/w_cnn")" "$(wrk_rps "$TMP/w_cnn_nobatch")")"
for f in "$TMP"/w_*; do
    if grep -q "Non-2xx" "$f"; then echo "   warning: $(basename "$f"): $(grep Non-2xx "$f")"; fi
done
