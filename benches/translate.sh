#!/usr/bin/env bash
# benches/translate.sh: what protocol translation costs, against the demo core, in one
# Corridor process (1 worker) with three routes, measured side by side in alternating rounds:
#   GET  /plain/accounts/ACC-1001/balance   HTTP passthrough to the demo core's JSON API
#   GET  /soap/ACC-1001/balance             the `soap` filter: JSON -> SOAP GetBalance -> JSON
#   POST /iso/authorize                     an iso8583 upstream: JSON -> 0100 -> 0110 -> JSON
# Issue #7 asks for SOAP >= 0.6x and ISO 8583 >= 0.7x the passthrough rps of the same run.
#
#   DURATION=8s  ROUNDS=2  CONNS=50  CORRIDOR_BIN=target/release/corridor
#   DEMOCORE_BIN=target/release/corridor-democore
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-50}
CORRIDOR_BIN=${CORRIDOR_BIN:-target/release/corridor}
DEMOCORE_BIN=${DEMOCORE_BIN:-target/release/corridor-democore}
source benches/lib.sh
require_tools wrk curl python3
[ -x "$DEMOCORE_BIN" ] || cargo build --release -p corridor-democore
CORE=$(free_port); HOST=$(free_port); GATEWAY=$(free_port)

"$DEMOCORE_BIN" --listen "127.0.0.1:$CORE" --iso-listen "127.0.0.1:$HOST" 2> "$tmp/core.err" & pids+=($!)

cat > "$tmp/corridor.toml" <<TOML
[server]
threads = 1
access_log = "off"
[[listeners]]
listen = "127.0.0.1:$GATEWAY"

[upstreams.core]
targets = ["127.0.0.1:$CORE"]
[upstreams.cards]
targets = ["127.0.0.1:$HOST"]
[upstreams.cards.iso8583]
spec_file = "$PWD/conf/iso8583/demo-host.toml"
links = 2
max_in_flight = 256

[[chains.soap_balance.filters]]
type = "soap"
version = "1.1"
action = "urn:corridor:democore:accounts:1#GetBalance"
path = "/soap/accounts"
namespaces = { acc = "urn:corridor:democore:accounts:1" }
request = "<acc:GetBalance><acc:accountId>\${path:1}</acc:accountId></acc:GetBalance>"
response = { root = "acc:GetBalanceResponse/acc:balance", fields = { account_id = "acc:accountId", available = { path = "acc:available", type = "number" }, currency = "acc:currency" } }

[[routes]]
id = "plain"
upstream = "core"
[routes.match]
path_prefix = "/plain"
[routes.rewrite]
strip_prefix = "/plain"

[[routes]]
id = "soap"
upstream = "core"
chain = "soap_balance"
[routes.match]
path_regex = "/soap/[A-Z0-9-]+/balance"

[[routes]]
id = "iso"
upstream = "cards"
operation = "authorization"
[routes.match]
path = "/iso/authorize"
TOML
"$CORRIDOR_BIN" run --config "$tmp/corridor.toml" 2> "$tmp/corridor.err" & pids+=($!)
wait_for "http://127.0.0.1:$GATEWAY/plain/health"

body='{"pan":"4111111111111111","amount_minor":1250,"currency":"978","terminal_id":"T0000001","merchant_id":"M000000000001"}'
cat > "$tmp/iso.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
declare -A paths=([plain]=/plain/accounts/ACC-1001/balance [soap]=/soap/ACC-1001/balance [iso]=/iso/authorize)
declare -A scripts=([plain]="" [soap]="" [iso]="-s $tmp/iso.lua")

# Each route must answer 200 before it is measured (the first ISO call opens the links).
for _ in 1 2 3; do curl -s -o /dev/null -X POST -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$GATEWAY/iso/authorize" || true; sleep 0.3; done
for route in plain soap; do
  curl -fs "http://127.0.0.1:$GATEWAY${paths[$route]}" >/dev/null || { echo "/$route fails" >&2; cat "$tmp/corridor.err" >&2; exit 1; }
done
curl -fs -X POST -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$GATEWAY/iso/authorize" | grep -q '"approved":true' \
  || { echo "/iso/authorize is not approved" >&2; exit 1; }
echo "soap answer: $(curl -fs "http://127.0.0.1:$GATEWAY${paths[soap]}")"

declare -A total
for round in $(seq "$ROUNDS"); do
  for route in plain soap iso; do
    url="http://127.0.0.1:$GATEWAY${paths[$route]}"
    # shellcheck disable=SC2086
    wrk -t1 -c"$CONNS" -d2s ${scripts[$route]} "$url" >/dev/null
    # shellcheck disable=SC2086
    out=$(wrk -t1 -c"$CONNS" -d"$DURATION" ${scripts[$route]} "$url")
    if grep -q "Non-2xx" <<<"$out"; then echo "/$route answered errors:" >&2; echo "$out" >&2; exit 1; fi
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    echo "round $round  $route  $rps rps"
    total[$route]=$(awk -v a="${total[$route]:-0}" -v b="$rps" 'BEGIN { print a + b }')
  done
done
for route in soap iso; do
  awk -v a="${total[$route]}" -v b="${total[plain]}" -v r="$route" \
    'BEGIN { printf "%s vs plain: %.3f (mean over rounds)\n", r, a / b }'
done
