#!/usr/bin/env bash
# benches/filter-overhead.sh: what a filter chain costs over plain passthrough, measured in
# one Corridor process with one route per chain, side by side, in alternating rounds.
#   /plain    no chain
#   /limited  rate_limit keyed by a header (limits far above the load, so nothing is refused)
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
for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (benches/load.sh installs it)" >&2; exit 1; }
done
[ -x "$CORRIDOR_BIN" ] || cargo build --release --bin corridor
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACKEND=$(port); GATEWAY=$(port)

cat > "$tmp/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $tmp/nginx.pid; error_log $tmp/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND; location / { return 200 '{"status":"ok","padding":"0123456789abcdef"}'; } } }
NGINX
nginx -c "$tmp/nginx.conf" -p "$tmp" & pids+=($!)

cat > "$tmp/corridor.toml" <<TOML
[server]
threads = $THREADS
access_log = "off"
[[listeners]]
listen = "127.0.0.1:$GATEWAY"
[upstreams.backend]
targets = ["127.0.0.1:$BACKEND"]
[chains.limited]
filters = [{ type = "rate_limit", key = "header:x-partner", limits = [{ name = "s", per = "1s", requests = 100000000 }] }]
[chains.std]
filters = [{ type = "request_id" }, { type = "headers", request = { set = { "x-channel" = "partner" } }, response = { remove = ["x-debug"] } }]
[[routes]]
id = "plain"
upstream = "backend"
[routes.match]
path = "/plain"
[[routes]]
id = "limited"
upstream = "backend"
chain = "limited"
[routes.match]
path = "/limited"
[[routes]]
id = "std"
upstream = "backend"
chain = "std"
[routes.match]
path = "/std"
TOML
"$CORRIDOR_BIN" run --config "$tmp/corridor.toml" 2> "$tmp/corridor.err" & pids+=($!)
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$GATEWAY/plain" >/dev/null 2>&1 && break; sleep 0.2; done

declare -A total
for round in $(seq "$ROUNDS"); do
  for route in plain limited std; do
    wrk -t1 -c"$CONNS" -d2s -H 'x-partner: acme' "http://127.0.0.1:$GATEWAY/$route" >/dev/null
    rps=$(wrk -t1 -c"$CONNS" -d"$DURATION" -H 'x-partner: acme' "http://127.0.0.1:$GATEWAY/$route" |
      awk '/Requests\/sec/ { print $2 }')
    echo "round $round  /$route  $rps rps"
    total[$route]=$(awk -v a="${total[$route]:-0}" -v b="$rps" 'BEGIN { print a + b }')
  done
done
for route in limited std; do
  awk -v r="$route" -v a="${total[$route]}" -v b="${total[plain]}" \
    'BEGIN { printf "/%s vs /plain: %.3f (mean over rounds)\n", r, a / b }'
done
