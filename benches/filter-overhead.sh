#!/usr/bin/env bash
# benches/filter-overhead.sh: what a filter chain costs over plain passthrough, measured in
# one Corridor process with one route per chain, side by side, in alternating rounds.
#   /plain    no chain
#   /limited  rate_limit keyed by a header (limits far above the load, so nothing is refused)
#   /quiet    the same with headers = "refused" (no RateLimit headers on allowed answers)
#   /std      headers + request_id
# Everything on 127.0.0.1; every process is stopped on exit.
#
#   DURATION=8s  ROUNDS=2  CONNS=50  THREADS=1  CORRIDOR_BIN=target/release/corridor
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
CORRIDOR_BIN=${CORRIDOR_BIN:-target/release/corridor}
source benches/lib.sh
require_tools nginx wrk curl
BACKEND=$(free_port); GATEWAY=$(free_port)

start_backend "$BACKEND"

chain_routes_config "$THREADS" "$GATEWAY" "$BACKEND" > "$tmp/corridor.toml"
"$CORRIDOR_BIN" run --config "$tmp/corridor.toml" 2> "$tmp/corridor.err" & pids+=($!)
wait_for "http://127.0.0.1:$GATEWAY/plain"

declare -A total
for round in $(seq "$ROUNDS"); do
  for route in plain limited quiet std; do
    wrk -t1 -c"$CONNS" -d2s -H 'x-partner: acme' "http://127.0.0.1:$GATEWAY/$route" >/dev/null
    rps=$(wrk -t1 -c"$CONNS" -d"$DURATION" -H 'x-partner: acme' "http://127.0.0.1:$GATEWAY/$route" |
      awk '/Requests\/sec/ { print $2 }')
    echo "round $round  /$route  $rps rps"
    total[$route]=$(awk -v a="${total[$route]:-0}" -v b="$rps" 'BEGIN { print a + b }')
  done
done
for route in limited quiet std; do
  awk -v r="$route" -v a="${total[$route]}" -v b="${total[plain]}" \
    'BEGIN { printf "/%s vs /plain: %.3f (mean over rounds)\n", r, a / b }'
done
