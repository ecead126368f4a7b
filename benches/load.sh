#!/usr/bin/env bash
# benches/load.sh: Corridor against nginx, side by side, on this machine.
#
# One nginx instance plays the backend (1 worker, fixed 50-byte and 16 KiB
# bodies). In front of it run, with the same number of workers/threads:
#   - nginx as a reverse proxy (upstream keep-alive pool, HTTP/1.1 upstream),
#   - Corridor with a generated config routing everything to the backend.
# wrk measures the backend directly, then each proxy, at saturation; then
# h2load offers a fixed rate (RATE_PCT% of nginx's measured rps) to both
# proxies, to compare tail latency at equal load. Everything runs on
# 127.0.0.1, in a temp dir, and every process started is stopped on exit.
#
# Usage: benches/load.sh            (from anywhere; env vars below tune it)
#   WORKERS="1 2"      proxy workers (nginx worker_processes = Corridor threads)
#   BODIES="small 16k" response bodies: small = 50 bytes, 16k = 16384 bytes
#   DURATION=10s       length of each measured run (wrk and h2load syntax)
#   WARMUP=2s          unmeasured wrk run before each measurement (0 = none)
#   CONNS=50           concurrent connections
#   WRK_THREADS=1      wrk threads
#   RATE_PCT=70        fixed-rate load as a percentage of nginx's rps
#   FIXED_RATE=1       0 skips the fixed-rate runs (and h2load)
#   SKIP_CORRIDOR=0    1 measures nginx only (no cargo build)
#   CORRIDOR_BIN=      use this binary instead of building target/release/corridor
#   READY_TIMEOUT=30   seconds a server may take to answer its first request
#   KEEP_TMP=0         1 keeps the temp dir (configs, logs, raw outputs)
#   OUT=               also write the result tables to this file
#
# Needs nginx, wrk, curl and (for the fixed rate) h2load; missing ones are
# installed with apt-get (Debian packages nginx-light or nginx, wrk, curl,
# nghttp2-client). Neither wrk2 nor oha is packaged in Debian; h2load's --rps
# is the packaged fixed-rate option. Like wrk, it starts a client's next
# request only after the previous answer, so queueing delay under overload is
# not counted (coordinated omission): keep RATE_PCT well below 100.
set -euo pipefail

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*)
    echo "load.sh: no arguments expected (see --help)" >&2
    exit 2
    ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$ROOT/benches

WORKERS=$(echo "${WORKERS:-1 2}" | tr ',' ' ')
BODIES=$(echo "${BODIES:-small 16k}" | tr ',' ' ')
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-50}
WRK_THREADS=${WRK_THREADS:-1}
RATE_PCT=${RATE_PCT:-70}
FIXED_RATE=${FIXED_RATE:-1}
SKIP_CORRIDOR=${SKIP_CORRIDOR:-0}
CORRIDOR_BIN=${CORRIDOR_BIN:-}
READY_TIMEOUT=${READY_TIMEOUT:-30}
KEEP_TMP=${KEEP_TMP:-0}
OUT=${OUT:-}

log() { echo "load.sh: $*" >&2; }
die() {
    echo "load.sh: ERROR: $*" >&2
    exit 1
}

for b in $BODIES; do
    case $b in small | 16k) ;; *) die "unknown body '$b' in BODIES (small, 16k)" ;; esac
done
for w in $WORKERS; do
    [[ $w =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be positive integers, got '$w'"
done

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d "${TMPDIR:-/tmp}/corridor-load.XXXXXX")
# nginx workers drop to an unprivileged user when run as root: let them read.
chmod 755 "$TMP"
PIDS=()

# Stops one process: INT (fast shutdown for nginx and pingora), then TERM
# (background children of a script may ignore INT), then KILL.
stop_pid() {
    local pid=$1 sig
    for sig in INT TERM; do
        kill -"$sig" "$pid" 2>/dev/null || return 0
        for _ in $(seq 1 25); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 0.1
        done
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "$KEEP_TMP" = 1 ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background, remembers its pid in LAST_PID (the caller
# picks it up; `$(...)` would lose PIDS).
spawn() {
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# Forgets and stops one process started with spawn.
unspawn() {
    local pid=$1 p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    stop_pid "$pid"
}

# Runs a load generator in the background and waits, so that a signal reaches
# our trap at once instead of after the run.
run_load() {
    local logf=$1
    shift
    spawn "$logf" "$@"
    local pid=$LAST_PID rc=0
    wait "$pid" || rc=$?
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    [ "$rc" -eq 0 ] || die "$1 failed (exit $rc): $(tail -n 5 "$logf")"
}

# fail_start NAME MESSAGE LOGFILE...: says why, shows the logs' tails, exits 1.
fail_start() {
    local name=$1 msg=$2 f
    shift 2
    {
        echo "load.sh: ERROR: $name: $msg"
        for f in "$@"; do
            [ -s "$f" ] || continue
            echo "---- last lines of $f"
            tail -n 20 "$f"
        done
    } >&2
    exit 1
}

# Waits until URL answers 200, or fails clearly if the process died.
wait_ready() {
    local name=$1 pid=$2 url=$3
    shift 3 # the rest: log files to show on failure
    for _ in $(seq 1 $((READY_TIMEOUT * 10))); do
        if ! kill -0 "$pid" 2>/dev/null; then
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            fail_start "$name" "failed to start (exited with status $rc)" "$@"
        fi
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    fail_start "$name" "no 200 from $url within ${READY_TIMEOUT}s" "$@"
}

# Checks that URL returns a body of the expected size (a misrouted proxy
# answering a fast 404 must not pass for a fast proxy).
check_body() {
    local name=$1 url=$2 want=$3 got
    got=$(curl -fsS --max-time 5 "$url" | wc -c) || die "$name: GET $url failed"
    [ "$got" -eq "$want" ] || die "$name: GET $url returned $got bytes, expected $want"
}

# ---------------------------------------------------------------- ports
USED_PORTS=" "
# Sets the variable named $1 to a free loopback port below the usual
# ephemeral range (32768+), so load-generator sockets cannot collide with it.
free_port() {
    local p
    for _ in $(seq 1 500); do
        p=$((20000 + RANDOM % 12000))
        case $USED_PORTS in *" $p "*) continue ;; esac
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
        USED_PORTS+="$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "no free port on 127.0.0.1"
}

# ---------------------------------------------------------------- tools
APT_UPDATED=0
apt_install() {
    [ "$(id -u)" -eq 0 ] || die "missing $*: run as root or 'apt-get install -y $*' first"
    command -v apt-get >/dev/null || die "missing $* and no apt-get: install it by hand"
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        apt-get update -qq >"$TMP/apt.log" 2>&1 || die "apt-get update failed: $(tail -n 5 "$TMP/apt.log")"
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >>"$TMP/apt.log" 2>&1 || {
        tail -n 5 "$TMP/apt.log" >&2
        return 1
    }
}

find_nginx() {
    NGINX=$(command -v nginx || true)
    [ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || true
}

find_nginx
if [ -z "$NGINX" ]; then
    # nginx-light is the small build (bookworm); later releases only have nginx.
    apt_install nginx-light || apt_install nginx || true
    find_nginx
    [ -n "$NGINX" ] || die "could not install nginx (see apt output above)"
fi
command -v wrk >/dev/null || apt_install wrk || die "could not install wrk"
command -v curl >/dev/null || apt_install curl || die "could not install curl"
if [ "$FIXED_RATE" = 1 ]; then
    command -v h2load >/dev/null || apt_install nghttp2-client || die "could not install h2load (nghttp2-client)"
fi

if [ "$(id -u)" -eq 0 ]; then
    NGINX_USER="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"
else
    NGINX_USER=""
fi

# ---------------------------------------------------------------- corridor build
if [ "$SKIP_CORRIDOR" != 1 ]; then
    if [ -z "$CORRIDOR_BIN" ]; then
        log "cargo build --release --bin corridor"
        (cd "$ROOT" && cargo build --release --bin corridor) || die "cargo build --release --bin corridor failed"
        CORRIDOR_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/corridor
        case $CORRIDOR_BIN in /*) ;; *) CORRIDOR_BIN=$ROOT/$CORRIDOR_BIN ;; esac
    fi
    [ -x "$CORRIDOR_BIN" ] || die "no Corridor binary at $CORRIDOR_BIN"
fi

# ---------------------------------------------------------------- configs
render() { # template out key=value...
    local tmpl=$1 out=$2
    shift 2
    local args=() kv
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$tmpl" >"$out"
    ! grep -n '@[A-Z_]*@' "$out" || die "unfilled placeholder in $out"
}

mkdir -p "$TMP/www" "$TMP/tmp"
# 16 KiB JSON: {"data":"xxx...x"} padded to exactly 16384 bytes.
{
    printf '{"data":"'
    head -c $((16384 - 11)) /dev/zero | tr '\0' 'x'
    printf '"}'
} >"$TMP/www/16k"
chmod -R a+rX "$TMP/www"
declare -A BODY_LEN=([small]=50 [16k]=16384)

free_port BACKEND_PORT
render "$BENCH_DIR/nginx-backend.conf.in" "$TMP/backend.conf" \
    "DIR=$TMP" "BACKEND_PORT=$BACKEND_PORT" "USER=$NGINX_USER"

start_nginx() { # name conf -> LAST_PID
    local name=$1 conf=$2
    "$NGINX" -t -q -p "$TMP" -c "$conf" -e "$TMP/$name.err.log" >"$TMP/$name.test.log" 2>&1 ||
        fail_start "$name" "nginx -t rejected $conf" "$TMP/$name.test.log"
    spawn "$TMP/$name.log" "$NGINX" -p "$TMP" -c "$conf" -e "$TMP/$name.err.log"
}

# ---------------------------------------------------------------- measuring
to_seconds() { # 10s | 2m | 1h | 10 -> seconds
    local d=$1
    case $d in
    *ms) awk -v v="${d%ms}" 'BEGIN { print v / 1000 }' ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
    esac
}
DURATION_S=$(to_seconds "$DURATION")

# Saturation run; sets RPS P50 P99 (ms) ERRS.
run_wrk() {
    local tag=$1 url=$2 out
    out=$TMP/wrk-$tag.txt
    if [ "$WARMUP" != 0 ]; then
        run_load "$TMP/wrk-$tag.warmup.txt" wrk -t"$WRK_THREADS" -c"$CONNS" -d"$WARMUP" "$url"
    fi
    run_load "$out" wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency "$url"
    read -r RPS P50 P99 ERRS < <(awk '
        function ms(v,   n, u) {
            n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n / 1000
            if (u == "s") return n * 1000
            if (u == "m") return n * 60000
            return n
        }
        /^Requests\/sec:/ { rps = $2 }
        /^ +50% / { p50 = ms($2) }
        /^ +99% / { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) { v = $i; gsub(/,/, "", v); if (v ~ /^[0-9]+$/) err += v } }
        END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, err }
    ' "$out")
    [ "$RPS" != 0 ] || die "wrk measured 0 rps on $url: $(tail -n 5 "$out")"
}

# Fixed-rate run with h2load; sets ACH (achieved rps) P50 P99 P999 (ms) ERRS.
run_fixed() {
    local tag=$1 url=$2 rate=$3 per_client logf
    logf=$TMP/h2load-$tag.tsv
    per_client=$(awk -v r="$rate" -v c="$CONNS" 'BEGIN { printf "%.3f", r / c }')
    run_load "$TMP/h2load-$tag.txt" h2load --h1 -t1 -c"$CONNS" --rps="$per_client" \
        -D "$DURATION" --log-file="$logf" "$url"
    local ok=$TMP/h2load-$tag.ok-us
    # Columns: start (us since epoch), status (-1 = failed), duration (us).
    awk -F'\t' '$2 >= 200 && $2 < 400 { print $3 }' "$logf" | sort -n >"$ok"
    ERRS=$(awk -F'\t' '!($2 >= 200 && $2 < 400)' "$logf" | wc -l)
    read -r ACH P50 P99 P999 < <(awk -v dur="$DURATION_S" '
        { v[NR] = $1 }
        function pct(p,   i) { i = int(NR * p + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; return v[i] / 1000 }
        END {
            if (NR == 0) { print "0 0 0 0"; exit }
            printf "%.0f %.3f %.3f %.3f\n", NR / dur, pct(0.50), pct(0.99), pct(0.999)
        }
    ' "$ok")
}

# Percentage of CPU time busy over one second, machine-wide (from /proc/stat).
cpu_busy_pct() {
    local a b
    a=$(head -n 1 /proc/stat)
    sleep 1
    b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); tot = 0
        for (i = 2; i <= n; i++) tot += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%d", (tot > 0) ? 100 * (tot - idle) / tot : 0
    }'
}

# ---------------------------------------------------------------- results
SAT_ROWS=()
FIX_ROWS=()
declare -A NGINX_RPS NGINX_P99

# Marks a fixed-rate run that fell more than 5% short of the offered rate: its
# latencies were not measured at the intended load.
SHORT_SEEN=0
short_of_rate() {
    SHORT=""
    if [ $((ACH * 100)) -lt $(($1 * 95)) ]; then
        SHORT="!"
        SHORT_SEEN=1
    fi
}

ratio() { awk -v a="$1" -v b="${2:-0}" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'; }

print_tables() {
    {
        echo
        echo "== Saturation (wrk -t$WRK_THREADS -c$CONNS -d$DURATION; ratio = rps / nginx rps)"
        printf '%-9s %-7s %-5s %10s %9s %9s %6s %8s\n' target workers body rps p50_ms p99_ms errors vs_nginx
        local r
        for r in "${SAT_ROWS[@]}"; do
            # shellcheck disable=SC2086
            printf '%-9s %-7s %-5s %10s %9s %9s %6s %8s\n' $r
        done
        if [ "${#FIX_ROWS[@]}" -gt 0 ]; then
            echo
            echo "== Fixed rate (h2load --h1 -c$CONNS, ${RATE_PCT}% of nginx rps, $DURATION; ratio = p99 / nginx p99)"
            printf '%-9s %-7s %-5s %8s %8s %9s %9s %9s %6s %8s\n' \
                target workers body offered achieved p50_ms p99_ms p99.9_ms errors vs_nginx
            for r in "${FIX_ROWS[@]}"; do
                # shellcheck disable=SC2086
                printf '%-9s %-7s %-5s %8s %8s %9s %9s %9s %6s %8s\n' $r
            done
            [ "$SHORT_SEEN" = 0 ] || {
                echo "! achieved < 95% of offered: the target or the load generator could not keep up"
                echo "  (try a lower RATE_PCT). A server closing keep-alive connections (a per-connection"
                echo "  request limit) also does this: h2load is slow to reconnect in --rps mode."
            }
        fi
    } | tee -a "$TMP/results.txt"
}

# ---------------------------------------------------------------- run
{
    echo "== Corridor vs nginx on $(nproc) CPU(s): $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel $(uname -r); $("$NGINX" -v 2>&1); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    [ "$FIXED_RATE" = 1 ] && h2load --version | head -n 1
    [ "$SKIP_CORRIDOR" = 1 ] || echo "corridor: $CORRIDOR_BIN ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "workers: $WORKERS; bodies: $BODIES; duration $DURATION, warm-up $WARMUP, $CONNS connections"
    echo "Load generator, backend and proxy share these CPUs: compare ratios, not absolutes."
} | tee "$TMP/results.txt" >&2
busy=$(cpu_busy_pct)
if [ "$busy" -gt 15 ]; then
    log "WARNING: the machine is already ${busy}% busy before the benchmark; expect noisy numbers" |&
        tee -a "$TMP/results.txt" >&2
fi

start_nginx backend "$TMP/backend.conf"
BACKEND_PID=$LAST_PID
wait_ready backend "$BACKEND_PID" "http://127.0.0.1:$BACKEND_PORT/small" \
    "$TMP/backend.log" "$TMP/backend.err.log"
for b in $BODIES; do
    check_body backend "http://127.0.0.1:$BACKEND_PORT/$b" "${BODY_LEN[$b]}"
done

for b in $BODIES; do
    log "wrk backend (direct) /$b"
    run_wrk "backend-$b" "http://127.0.0.1:$BACKEND_PORT/$b"
    SAT_ROWS+=("backend 1 $b $RPS $P50 $P99 $ERRS -")
done

for w in $WORKERS; do
    free_port PROXY_PORT
    render "$BENCH_DIR/nginx-proxy.conf.in" "$TMP/proxy-$w.conf" \
        "DIR=$TMP" "BACKEND_PORT=$BACKEND_PORT" "PROXY_PORT=$PROXY_PORT" \
        "WORKERS=$w" "USER=$NGINX_USER"
    start_nginx "proxy" "$TMP/proxy-$w.conf"
    PROXY_PID=$LAST_PID
    wait_ready nginx-proxy "$PROXY_PID" "http://127.0.0.1:$PROXY_PORT/small" \
        "$TMP/proxy.log" "$TMP/proxy.err.log"

    CORRIDOR_PID=""
    if [ "$SKIP_CORRIDOR" != 1 ]; then
        free_port CORRIDOR_PORT
        free_port ADMIN_PORT
        cat >"$TMP/corridor-$w.toml" <<EOF
[server]
threads = $w
access_log = "off"

# Off the default 9901, so a running demo does not collide with the bench.
[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[listeners]]
listen = "127.0.0.1:$CORRIDOR_PORT"

[upstreams.backend]
targets = ["127.0.0.1:$BACKEND_PORT"]

[[routes]]
id = "all"
upstream = "backend"
[routes.match]
path_prefix = "/"
EOF
        RUST_LOG=${RUST_LOG:-warn} spawn "$TMP/corridor-$w.log" \
            "$CORRIDOR_BIN" run --config "$TMP/corridor-$w.toml"
        CORRIDOR_PID=$LAST_PID
        wait_ready corridor "$CORRIDOR_PID" "http://127.0.0.1:$CORRIDOR_PORT/small" \
            "$TMP/corridor-$w.log"
    fi

    for b in $BODIES; do
        check_body nginx-proxy "http://127.0.0.1:$PROXY_PORT/$b" "${BODY_LEN[$b]}"
        log "wrk nginx (workers=$w) /$b"
        run_wrk "nginx-$w-$b" "http://127.0.0.1:$PROXY_PORT/$b"
        NGINX_RPS[$w/$b]=$RPS
        SAT_ROWS+=("nginx $w $b $RPS $P50 $P99 $ERRS 1.00")
        if [ -n "$CORRIDOR_PID" ]; then
            check_body corridor "http://127.0.0.1:$CORRIDOR_PORT/$b" "${BODY_LEN[$b]}"
            log "wrk corridor (threads=$w) /$b"
            run_wrk "corridor-$w-$b" "http://127.0.0.1:$CORRIDOR_PORT/$b"
            SAT_ROWS+=("corridor $w $b $RPS $P50 $P99 $ERRS $(ratio "$RPS" "${NGINX_RPS[$w/$b]}")")
        fi
    done

    if [ "$FIXED_RATE" = 1 ]; then
        for b in $BODIES; do
            nginx_rps=${NGINX_RPS[$w/$b]}
            rate=$((nginx_rps * RATE_PCT / 100))
            log "h2load nginx (workers=$w) /$b at $rate rps"
            run_fixed "nginx-$w-$b" "http://127.0.0.1:$PROXY_PORT/$b" "$rate"
            NGINX_P99[$w/$b]=$P99
            short_of_rate "$rate"
            FIX_ROWS+=("nginx $w $b $rate $ACH$SHORT $P50 $P99 $P999 $ERRS 1.00")
            if [ -n "$CORRIDOR_PID" ]; then
                log "h2load corridor (threads=$w) /$b at $rate rps"
                run_fixed "corridor-$w-$b" "http://127.0.0.1:$CORRIDOR_PORT/$b" "$rate"
                short_of_rate "$rate"
                FIX_ROWS+=("corridor $w $b $rate $ACH$SHORT $P50 $P99 $P999 $ERRS $(ratio "$P99" "${NGINX_P99[$w/$b]}")")
            fi
        done
    fi

    [ -z "$CORRIDOR_PID" ] || unspawn "$CORRIDOR_PID"
    unspawn "$PROXY_PID"
done

print_tables
if [ -n "$OUT" ]; then
    cp "$TMP/results.txt" "$OUT"
    log "results written to $OUT"
fi
