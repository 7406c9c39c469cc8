#!/usr/bin/env bash
# Live demo: real HAProxy instances → haproxystats → Graphite (carbon-c-relay
# + carbon-cache writing whisper files, graphite-web drawing them), all on
# loopback, all in one temp dir.
#
#   contrib/demo/run.sh                 run until Ctrl-C, printing what lands in whisper
#                                       and the URL of the graphs
#   contrib/demo/run.sh --once          three cycles, then check every target of
#                                       contrib/grafana/load-balancer.json against
#                                       graphite-web and a screenshot of its graphs (CI)
#   contrib/demo/run.sh --picture FILE  2.5 minutes of graphs, their screenshot
#                                       into FILE (the README's docs/graphs.png)
#
# What it starts: 2 HAProxy 2.6 instances with stats sockets and live traffic,
# carbon-cache and carbon-c-relay on free ports, graphite-web (Debian's
# 1.1.8, its own dashboard page showing the main panels of the Grafana
# dashboard), and haproxystats itself (the supervisor: puller, directory
# watcher, processors, Graphite sink) pulling every DEMO_INTERVAL seconds
# (default 5; 2 with --once). It prints each snapshot that lands in whisper.
# Ctrl-C (or any exit) stops everything it started.
set -euo pipefail

mode=live
picture=""
case "${1:-}" in
--once) mode=once ;;
--picture)
    mode=picture
    picture=${2:?--picture needs a file name}
    picture=$(cd "$(dirname "$picture")" && pwd)/$(basename "$picture")
    ;;
"") ;;
*)
    echo "usage: $0 [--once | --picture FILE]" >&2
    exit 2
    ;;
esac
if [ "$mode" = once ]; then cycle_seconds=${DEMO_INTERVAL:-2}; else cycle_seconds=${DEMO_INTERVAL:-5}; fi
# Snapshots to wait for before checking: rates need two points.
case $mode in once) wanted=3 ;; picture) wanted=$((150 / cycle_seconds)) ;; *) wanted=0 ;; esac

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

# Only what this mode starts: the browser only for the screenshot.
if [ "$mode" = live ]; then contrib/install-deps.sh graphite; else contrib/install-deps.sh graphite browser; fi

work=$(mktemp -d /tmp/haproxystats-demo.XXXXXX)
log_prefix=demo
# free_port, wait_for_port, start_haproxy, start_carbon, stop_all: the same
# set-up the soak uses.
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
# shellcheck source=contrib/demo/graphite-web.sh
. "$repo/contrib/demo/graphite-web.sh"
# shellcheck source=contrib/demo/haproxy.sh
. "$repo/contrib/demo/haproxy.sh"
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM
# The debug build: it is built sooner than the release one (fat LTO, one
# codegen unit), and a few small HAProxy instances need no optimised
# binary. DEMO_PROFILE=release runs the release build instead.
BUILD_PROFILE=${DEMO_PROFILE:-dev} build_release "$repo/target"

# --- HAProxy: two instances, each serving its own backend responder --------
frontend_ports=()
for i in 1 2; do
    start_demo_haproxy "haproxy$i" "$work/sockets"
    frontend_ports+=("$frontend_port")
done
echo "demo: 2 HAProxy instances up, stats sockets in $work/sockets"

# --- Graphite: carbon-cache behind carbon-c-relay, graphite-web -------------
# One whisper point per pull, as in production: perSecond of a counter needs
# consecutive points, not one point in every DEMO_INTERVAL slots.
carbon_retention="${cycle_seconds}s:1h"
start_carbon
whisper="$work/carbon/storage/whisper"
echo "demo: carbon-c-relay on 127.0.0.1:$relay_port → carbon-cache, whisper in $whisper"
start_graphite_web "$whisper"
echo "demo: graphite-web on $graphite_url"

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
prefix-hostname = true
CONF
"$bin" -f "$work/haproxystats.conf" -P >/dev/null
echo "demo: configuration valid ($work/haproxystats.conf)"

# The newest timestamp with a value for a metric, and the value. The host
# part of the path is haproxystats' host name (prefix-hostname = true).
whisper_latest() {
    local file now
    file=$(compgen -G "$whisper/${1//.//}.wsp" | head -n 1) || return 1
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

grafana="$repo/contrib/grafana"
dashboard_url="$graphite_url/dashboard/haproxystats"
# The main panels of the Grafana dashboard on graphite-web's dashboard page;
# tried again for a few seconds while carbon-cache still writes the first
# snapshot's metrics (the template variables list what is in whisper).
show_graphs() {
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        python3 "$grafana/to_graphite_web.py" --graphite "$graphite_url" --name haproxystats \
            --var namespace=demo --minutes "$([ "$mode" = picture ] && echo 3 || echo 10)" \
            "$grafana/load-balancer.json" 2>"$work/to_graphite_web.log" && return 0
        sleep 1
    done
    die "could not load the graphs into graphite-web: $(cat "$work/to_graphite_web.log")"
}

# Every target of the dashboard returns data; the checker itself rejects
# targets naming metrics we do not send; the graphs are drawn.
check_graphs() {
    python3 "$grafana/check_targets.py" --graphite "$graphite_url" --var namespace=demo \
        "$grafana/load-balancer.json" || die "a dashboard target returns no data (above)"
    local out status=0
    out=$(python3 "$grafana/check_targets.py" --graphite "$graphite_url" --var namespace=demo \
        --wait 0 "$grafana/testdata/wrong-targets.json") || status=$?
    [ "$status" -eq 1 ] && [ "$(grep -c '^FAIL' <<<"$out")" -eq 3 ] \
        && grep -q '/ wrong metric /' <<<"$out" && grep -q '/ wrong path inside a function /' <<<"$out" \
        && grep -q '/ wrong name inside braces /' <<<"$out" \
        || die "check_targets.py did not reject exactly the three wrong targets (exit $status): $out"
    echo "demo: check_targets.py rejects the three wrong targets of contrib/grafana/testdata/wrong-targets.json"
    screenshot_dashboard "$dashboard_url" "$work/graphs.png"
    python3 "$grafana/png_lines.py" "$work/graphs.png" || die "the screenshot shows no graphs ($work/graphs.png)"
}

probe='demo.*.haproxy.frontend.fe_web.req_tot'
last_seen=""
landed=0
deadline=$(( $(date +%s) + 60 ))
while true; do
    traffic "${frontend_ports[@]}"
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
            landed=$((landed + 1))
            echo "demo: snapshot $ts landed: whisper has $files metrics; $probe = ${latest#* }"
            if [ "$landed" -eq 1 ]; then
                show_graphs
                echo "demo: graphs of the two HAProxy instances: open $dashboard_url"
            fi
            if [ "$mode" = picture ] && [ "$landed" -ge "$wanted" ]; then
                screenshot_dashboard "$dashboard_url" "$picture"
                python3 "$grafana/png_lines.py" "$picture" || die "the screenshot shows no graphs ($picture)"
                echo "demo: picture of the graphs in $picture"
                break
            fi
            if [ "$mode" = once ] && [ "$landed" -ge "$wanted" ]; then
                check_graphs
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
