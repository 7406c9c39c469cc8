#!/usr/bin/env bash
# Live demo: real HAProxy instances → haproxystats → Graphite (carbon-c-relay
# + carbon-cache writing whisper files), all on loopback, all in one temp dir.
#
#   contrib/demo/run.sh           run until Ctrl-C, printing what lands in whisper
#   contrib/demo/run.sh --once    one cycle, check the metrics landed, exit (CI)
#
# What it starts: 2 HAProxy 2.6 instances with stats sockets and live traffic,
# carbon-cache and carbon-c-relay on free ports, and haproxystats itself (the
# supervisor: puller, directory watcher, processors, Graphite sink) pulling
# every DEMO_INTERVAL seconds (default 5). It prints each snapshot that lands
# in whisper. Ctrl-C (or any exit) stops everything it started.
set -euo pipefail

once=false
[ "${1:-}" = "--once" ] && once=true
cycle_seconds=${DEMO_INTERVAL:-5}

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

contrib/install-deps.sh
cargo build --release --quiet
bin="$repo/target/release/haproxystats"

work=$(mktemp -d /tmp/haproxystats-demo.XXXXXX)
log_prefix=demo
# free_port, wait_for_port, start_haproxy, start_carbon, stop_all: the same
# set-up the soak uses.
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

mkdir -p "$work/sockets"

# --- HAProxy: two instances, each serving its own backend responder --------
frontend_ports=()
for i in 1 2; do
    fe_port=$(free_port); app_port=$(free_port)
    frontend_ports+=("$fe_port")
    cat > "$work/haproxy$i.cfg" <<CFG
global
    stats socket $work/sockets/haproxy$i.sock mode 600 level admin
    pidfile $work/haproxy$i.pid
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe_web
    bind 127.0.0.1:$fe_port
    default_backend be_app
backend be_app
    balance roundrobin
    server app1 127.0.0.1:$app_port check inter 1s
    server app2 127.0.0.1:$app_port check inter 1s
frontend responder
    bind 127.0.0.1:$app_port
    http-request return status 200 content-type text/plain string ok
CFG
    start_haproxy "haproxy$i" "$work/haproxy$i.cfg"
    wait_for_port "$fe_port" "haproxy$i"
done
echo "demo: 2 HAProxy instances up, stats sockets in $work/sockets"

# --- Graphite: carbon-cache behind carbon-c-relay ---------------------------
start_carbon
echo "demo: carbon-c-relay on 127.0.0.1:$relay_port → carbon-cache, whisper in $work/carbon/storage/whisper"

# --- haproxystats configuration ---------------------------------------------
cat > "$work/haproxystats.conf" <<CONF
[paths]
base-dir = $work

[pull]
pull-interval = $cycle_seconds
socket-dir = $work/sockets
dst-dir = \${paths:base-dir}/snapshots
tmp-dst-dir = \${paths:base-dir}/snapshots.tmp

[process]
src-dir = \${paths:base-dir}/snapshots
calculate-percentages = true
per-process-metrics = true

[graphite]
server = 127.0.0.1
port = $relay_port
namespace = demo
prefix-hostname = false
CONF
"$bin" -f "$work/haproxystats.conf" -P >/dev/null
echo "demo: configuration valid ($work/haproxystats.conf)"

traffic() {
    for port in "${frontend_ports[@]}"; do
        for _ in $(seq 1 $((RANDOM % 40 + 10))); do
            curl -s -o /dev/null "http://127.0.0.1:$port/" || true
        done
    done
}

# The newest timestamp with a value for a metric, and the value.
whisper_latest() {
    local file="$work/carbon/storage/whisper/${1//.//}.wsp" now
    [ -f "$file" ] || return 1
    now=$(date +%s)
    whisper-fetch --from=$((now - 600)) --until=$((now + 1)) "$file" 2>/dev/null \
        | awk '$2 != "None" { ts=$1; v=$2 } END { if (ts) print ts, v; else exit 1 }'
}

# --- haproxystats itself: the supervisor (puller + watcher + processors + sinks)
"$bin" -f "$work/haproxystats.conf" >"$work/haproxystats.log" 2>&1 &
daemon=$!
pids+=("$daemon")
echo "demo: haproxystats running (pid $daemon, log $work/haproxystats.log), pulling every ${cycle_seconds}s"

probe=demo.haproxy.frontend.fe_web.req_tot
last_seen=""
deadline=$(( $(date +%s) + 60 ))
while true; do
    traffic
    sleep 1
    kill -0 "$daemon" 2>/dev/null || {
        echo "demo: haproxystats exited; its log:" >&2
        cat "$work/haproxystats.log" >&2
        exit 1
    }
    if latest=$(whisper_latest "$probe"); then
        ts=${latest%% *}
        if [ "$ts" != "$last_seen" ]; then
            last_seen=$ts
            files=$(find "$work/carbon/storage/whisper" -name '*.wsp' | wc -l)
            echo "demo: snapshot $ts landed: whisper has $files metrics; $probe = ${latest#* }"
            if $once; then
                kill -TERM "$daemon"
                status=0
                wait "$daemon" || status=$?
                if [ "$status" -ne 0 ]; then
                    echo "demo: haproxystats exited $status on SIGTERM; its log:" >&2
                    cat "$work/haproxystats.log" >&2
                    exit 1
                fi
                echo "demo: haproxystats stopped cleanly on SIGTERM"
                break
            fi
            deadline=$(( $(date +%s) + 60 ))
        fi
    fi
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "demo: nothing new landed in whisper for 60 s; haproxystats log:" >&2
        tail -n 50 "$work/haproxystats.log" >&2
        exit 1
    fi
done
