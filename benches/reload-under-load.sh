#!/usr/bin/env bash
# benches/reload-under-load.sh: p99 latency of Corridor while its config is reloaded once a
# second, against the same load without reloads. Each reload is real: the config alternates
# between two versions (a comment differs), so every second a whole runtime is rebuilt and
# swapped. Everything on 127.0.0.1; every process is stopped on exit.
#
#   DURATION=15s  RATE=20000  CONNS=50  ROUTES=200  CORRIDOR_BIN=target/release/corridor
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
RATE=${RATE:-20000}
CONNS=${CONNS:-50}
ROUTES=${ROUTES:-200}
CORRIDOR_BIN=${CORRIDOR_BIN:-target/release/corridor}
source benches/lib.sh
require_tools nginx h2load curl
BACKEND=$(free_port); GATEWAY=$(free_port); ADMIN=$(free_port)

start_backend "$BACKEND"

write_config() { # version-comment
  local i
  {
    printf '# %s\n[server]\nthreads = 1\naccess_log = "off"\nconfig_rescan = "1h"\n' "$1"
    printf '[admin]\nlisten = "127.0.0.1:%s"\n[[listeners]]\nlisten = "127.0.0.1:%s"\n' "$ADMIN" "$GATEWAY"
    printf '[upstreams.backend]\ntargets = ["127.0.0.1:%s"]\n' "$BACKEND"
    for i in $(seq 1 "$ROUTES"); do
      printf '[[routes]]\nid = "r%s"\nupstream = "backend"\n[routes.match]\npath_regex = "/r%s/[0-9]+"\n' "$i" "$i"
    done
    printf '[[routes]]\nid = "all"\nupstream = "backend"\npriority = -1\n[routes.match]\npath_prefix = "/"\n'
  } > "$tmp/conf/next.toml"
  mv "$tmp/conf/next.toml" "$tmp/conf/corridor.toml"   # atomic, like an editor's save
}
mkdir -p "$tmp/conf"
write_config v0
"$CORRIDOR_BIN" run --config "$tmp/conf/corridor.toml" 2> "$tmp/corridor.err" & pids+=($!)
wait_for "http://127.0.0.1:$GATEWAY/x"

measure() { # label
  h2load --h1 -c "$CONNS" --rps $((RATE / CONNS)) -D "$DURATION" --log-file "$tmp/$1.log" \
    "http://127.0.0.1:$GATEWAY/x" > "$tmp/$1.out" 2>&1
  awk -v label="$1" '{ t[NR] = $3 / 1000.0; if ($2 != 200) errors++ }
    END { n = asort(t); printf "%-14s requests=%d errors=%d p50_ms=%.3f p99_ms=%.3f p99.9_ms=%.3f\n",
          label, n, errors + 0, t[int(n*0.50)], t[int(n*0.99)], t[int(n*0.999)] }' "$tmp/$1.log"
}

measure steady
( i=0; while true; do i=$((i + 1)); write_config "v$i"; sleep 1; done ) & pids+=($!)
measure reloading
kill "${pids[-1]}"
applied=$(curl -fs "http://127.0.0.1:$ADMIN/metrics" | awk '/^corridor_config_reloads_total\{result="applied"\}/ { print $2 }')
echo "reloads applied during the run: $applied (routes: $ROUTES + 1, rate: $RATE rps, $CONNS connections)"
