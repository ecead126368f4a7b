#!/usr/bin/env bash
# benches/instructions.sh: instructions per request inside Corridor's request handling, per
# route, counted by callgrind. Unlike requests per second, the count does not move with
# machine load, so it can compare changes on a busy machine.
#
# For each route, Corridor (1 worker, the release binary) runs twice under callgrind with
# collection toggled on in pingora's per-connection handling (`*process_new_http*`); one
# keep-alive client sends LOW, then HIGH sequential requests. (count(HIGH) − count(LOW)) /
# (HIGH − LOW) cancels startup and the first request's one-time costs.
#   /plain    no chain
#   /limited  rate_limit keyed by a header (limits far above the load)
#   /quiet    the same with headers = "refused" (no RateLimit headers on allowed answers)
#   /std      request_id + headers
#
#   ROUTES="plain limited quiet std"  LOW=200  HIGH=1200  CORRIDOR_BIN=target/release/corridor
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTES=${ROUTES:-plain limited quiet std}
LOW=${LOW:-200}
HIGH=${HIGH:-1200}
CORRIDOR_BIN=${CORRIDOR_BIN:-target/release/corridor}
source benches/lib.sh
require_tools nginx curl python3 valgrind
BACKEND=$(free_port)
start_backend "$BACKEND"


# Sequential keep-alive GETs on one connection; fails on any non-200.
drive() { # port path count
  python3 - "$@" <<'PY'
import http.client, sys
port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(count):
    conn.request("GET", path, headers={"x-partner": "acme"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        sys.exit(f"GET {path}: {resp.status}")
PY
}

count() { # route requests -> instructions collected
  local port out pid
  port=$(free_port)
  out="$tmp/cg.$1.$2"
  chain_routes_config 1 "$port" "$BACKEND" > "$tmp/corridor.$port.toml"
  valgrind --tool=callgrind --toggle-collect='*process_new_http*' --callgrind-out-file="$out" \
    "$CORRIDOR_BIN" run --config "$tmp/corridor.$port.toml" 2> "$tmp/valgrind.$port.err" &
  pid=$!
  for _ in $(seq 300); do curl -fs -o /dev/null "http://127.0.0.1:$port/plain" && break; sleep 0.2; done
  drive "$port" "/$1" "$2"
  kill -INT "$pid"; wait "$pid" || true
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

for route in $ROUTES; do
  low=$(count "$route" "$LOW")
  high=$(count "$route" "$HIGH")
  awk -v r="$route" -v a="$low" -v b="$high" -v n=$((HIGH - LOW)) \
    'BEGIN { printf "/%-8s %8.0f instructions per request\n", r, (b - a) / n }'
done
