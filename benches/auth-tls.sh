#!/usr/bin/env bash
# benches/auth-tls.sh: what authentication and TLS cost, side by side on this machine.
#   tls      Corridor's TLS 1.3 listener vs nginx's (ssl_protocols TLSv1.3), both proxying
#            to the same backend with the same worker count; keep-alive connections.
#   handshake the same two, with a new TLS connection per request (Connection: close).
#   jwt      one Corridor process: /plain (no chain) vs /jwt (ES256 token, warm cache).
# Rounds alternate between the contenders; ratios are means over rounds. Certificates and
# keys are made with openssl in a temp dir; every process is stopped on exit.
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
require_tools nginx wrk curl openssl python3
BACKEND=$(free_port); NGINX_TLS=$(free_port); GATEWAY=$(free_port); GATEWAY_TLS=$(free_port)

start_backend "$BACKEND"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$tmp/server.key" -out "$tmp/server.crt" 2>/dev/null
# The token's key: an ES256 JWKS for the gateway, a token signed with it for wrk.
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/jwt.pem"
python3 benches/mint-es256.py "$tmp/jwt.pem" "$tmp/jwks.json" > "$tmp/token"

mkdir -p "$tmp/nginx-tls"
cat > "$tmp/nginx-tls.conf" <<NGINX
worker_processes $THREADS; daemon off; pid $tmp/nginx-tls.pid; error_log $tmp/nginx-tls.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $tmp/nginx-tls; proxy_temp_path $tmp/nginx-tls;
  upstream backend { server 127.0.0.1:$BACKEND; keepalive 64; }
  server { listen 127.0.0.1:$NGINX_TLS ssl;
    ssl_certificate $tmp/server.crt; ssl_certificate_key $tmp/server.key;
    ssl_protocols TLSv1.3;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGINX
nginx -c "$tmp/nginx-tls.conf" -p "$tmp" & pids+=($!)

cat > "$tmp/corridor.toml" <<TOML
[server]
threads = $THREADS
access_log = "off"
[[listeners]]
listen = "127.0.0.1:$GATEWAY"
[[listeners]]
listen = "127.0.0.1:$GATEWAY_TLS"
[listeners.tls]
certificates = [{ cert_file = "server.crt", key_file = "server.key" }]
[upstreams.backend]
targets = ["127.0.0.1:$BACKEND"]
[chains.jwt]
filters = [{ type = "jwt", issuer = "https://idp.bench.test", audiences = ["corridor"], algorithms = ["ES256"], jwks_file = "jwks.json" }]
[[routes]]
id = "jwt"
upstream = "backend"
chain = "jwt"
[routes.match]
path = "/jwt"
[[routes]]
id = "plain"
upstream = "backend"
[routes.match]
path_prefix = "/"
TOML
"$CORRIDOR_BIN" run --config "$tmp/corridor.toml" 2> "$tmp/corridor.err" & pids+=($!)
wait_for "http://127.0.0.1:$GATEWAY/plain"
curl -fsk -o /dev/null "https://127.0.0.1:$NGINX_TLS/" || { echo "nginx TLS does not answer" >&2; exit 1; }
curl -fsk -o /dev/null "https://127.0.0.1:$GATEWAY_TLS/" || { echo "Corridor TLS does not answer" >&2; exit 1; }
TOKEN=$(cat "$tmp/token")
curl -fs -o /dev/null -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$GATEWAY/jwt" ||
  { echo "the bench token is refused: $(tail -3 "$tmp/corridor.err")" >&2; exit 1; }

measure() { # name url [wrk args...] -> rps, accumulated in total[name]
  local name=$1 url=$2; shift 2
  wrk -t1 -c"$CONNS" -d2s "$@" "$url" >/dev/null
  local rps
  rps=$(wrk -t1 -c"$CONNS" -d"$DURATION" "$@" "$url" | awk '/Requests\/sec/ { print $2 }')
  echo "round $round  $name  $rps rps"
  total[$name]=$(awk -v a="${total[$name]:-0}" -v b="$rps" 'BEGIN { print a + b }')
}

declare -A total
for round in $(seq "$ROUNDS"); do
  measure nginx-tls "https://127.0.0.1:$NGINX_TLS/"
  measure corridor-tls "https://127.0.0.1:$GATEWAY_TLS/"
  measure nginx-handshake "https://127.0.0.1:$NGINX_TLS/" -H "Connection: close"
  measure corridor-handshake "https://127.0.0.1:$GATEWAY_TLS/" -H "Connection: close"
  measure plain "http://127.0.0.1:$GATEWAY/plain"
  measure jwt "http://127.0.0.1:$GATEWAY/jwt" -H "authorization: Bearer $TOKEN"
done
ratio() { awk -v a="${total[$1]}" -v b="${total[$2]}" -v t="$3" 'BEGIN { printf "%s: %.3f\n", t, a / b }'; }
ratio corridor-tls nginx-tls "TLS 1.3 keep-alive, Corridor vs nginx"
ratio corridor-handshake nginx-handshake "TLS 1.3 new connection per request, Corridor vs nginx"
ratio jwt plain "JWT ES256 (warm cache) vs passthrough"
