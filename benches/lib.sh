# Shared by the small bench scripts (sourced, not run): tool checks, a temp dir whose
# processes are stopped on exit, free loopback ports, a 1-worker nginx backend, and the
# one-route-per-chain config that filter-overhead.sh and instructions.sh compare.
# Expects CORRIDOR_BIN to be set and the working directory to be the repository root.

require_tools() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "needs $tool (benches/load.sh installs it)" >&2; exit 1; }
  done
  [ -x "$CORRIDOR_BIN" ] || cargo build --release --bin corridor
}

tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_backend() { # port: a small JSON answer at every path
  cat > "$tmp/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $tmp/nginx.pid; error_log $tmp/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$1; location / { return 200 '{"status":"ok","padding":"0123456789abcdef"}'; } } }
NGINX
  nginx -c "$tmp/nginx.conf" -p "$tmp" & pids+=($!)
}

wait_for() { # url
  for _ in $(seq 50); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "no answer from $1" >&2; exit 1
}

chain_routes_config() { # threads port backend: one route per chain, for comparing chains
  cat <<TOML
[server]
threads = $1
access_log = "off"
[[listeners]]
listen = "127.0.0.1:$2"
[upstreams.backend]
targets = ["127.0.0.1:$3"]
[chains.limited]
filters = [{ type = "rate_limit", key = "header:x-partner", limits = [{ name = "s", per = "1s", requests = 100000000 }] }]
[chains.quiet]
filters = [{ type = "rate_limit", key = "header:x-partner", headers = "refused", limits = [{ name = "s", per = "1s", requests = 100000000 }] }]
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
id = "quiet"
upstream = "backend"
chain = "quiet"
[routes.match]
path = "/quiet"
[[routes]]
id = "std"
upstream = "backend"
chain = "std"
[routes.match]
path = "/std"
TOML
}
