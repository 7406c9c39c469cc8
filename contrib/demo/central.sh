#!/usr/bin/env bash
# Live demo of central processing (SPEC §7): load balancers publish their raw
# snapshots to Kafka, `haproxystats central` turns them into each load
# balancer's lines and each cluster's, Graphite draws them. All real, all on
# loopback, all in one temp dir.
#
#   contrib/demo/central.sh          run until Ctrl-C, printing each cluster
#                                    window as it lands in whisper, and the URLs
#                                    of the graphs
#   contrib/demo/central.sh --once   4 windows of each cluster, then check them
#                                    and every target of contrib/grafana/cluster.json
#                                    (contrib/grafana/check.sh), stop (CI)
#
# What it starts: three load balancers, each HAProxy 2.6 with live traffic
# and an edge (`haproxystats` with `[process] local = false`) publishing its
# snapshots every DEMO_INTERVAL seconds (default 5; 2 with --once): eu-1 and
# eu-2 in cluster `eu`, us-1 (two HAProxy processes) in cluster `us`; the
# broker tansu (memory storage: the topics go with it); two `haproxystats
# central` in one group, sharing the topics' two partitions, with `[central]
# window` = the pull interval; carbon-c-relay + carbon-cache, and
# graphite-web showing the main panels of the Cluster Grafana dashboard for
# each cluster. Each window of a cluster is printed with its
# LoadBalancersReporting / LoadBalancersExpected, LateSnapshots and its
# fe_web request counter next to each load balancer's own: with every load
# balancer reporting, their sum (--once fails otherwise, and when a central
# or an edge does not stop cleanly on SIGTERM). The two centrals share this
# host's name, so their own metrics share `demo.<host>.haproxystats.`.
# Ctrl-C (or any exit) stops everything it started.
set -euo pipefail

mode=live
case "${1:-}" in
--once) mode=once ;;
"") ;;
*)
    echo "usage: $0 [--once]" >&2
    exit 2
    ;;
esac
if [ "$mode" = once ]; then window=${DEMO_INTERVAL:-2}; else window=${DEMO_INTERVAL:-5}; fi
# Windows of each cluster to wait for with --once: rates need two points,
# and the first windows may lack an LB that was not publishing yet.
wanted=4
namespace=demo
snapshots_topic=haproxystats.snapshots
partitions=2
# Cluster → its load balancers; load balancer → its HAProxy processes (us-1
# runs two, so that both clusters have the percentiles across processes).
cluster_names=(eu us)
declare -A clusters=([eu]="eu-1 eu-2" [us]="us-1")
declare -A processes=([eu-1]=1 [eu-2]=1 [us-1]=2)

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

contrib/install-deps.sh graphite kafka

work=$(mktemp -d /tmp/haproxystats-central-demo.XXXXXX)
log_prefix=central-demo
# free_port, wait_for_port, start_haproxy, start_carbon, stop_pid, stop_all
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
# shellcheck source=contrib/demo/graphite-web.sh
. "$repo/contrib/demo/graphite-web.sh"
# shellcheck source=contrib/demo/haproxy.sh
. "$repo/contrib/demo/haproxy.sh"

# The edges and centrals are stopped before the broker and carbon, so that
# what they hold goes out (SIGTERM: an edge publishes what it pulled, a
# central drains its sinks and commits), SIGKILL for any still there after
# 20 s; `stopped` says how each one went (LOG:STATUS).
daemons=()
daemon_logs=()
stopped=""
stop_daemons() {
    local i status alive
    for i in "${!daemons[@]}"; do kill -TERM "${daemons[$i]}" 2>/dev/null || true; done
    for _ in $(seq 1 200); do
        alive=0
        for i in "${!daemons[@]}"; do kill -0 "${daemons[$i]}" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for i in "${!daemons[@]}"; do
        kill -9 "${daemons[$i]}" 2>/dev/null || true
        status=0
        wait "${daemons[$i]}" 2>/dev/null || status=$?
        stopped+=" ${daemon_logs[$i]}:$status"
    done
    daemons=()
    daemon_logs=()
}
cleanup() {
    # A second Ctrl-C while stopping must not leave the rest running.
    trap '' INT TERM
    stop_daemons
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 0' INT TERM
# The debug build: it is built sooner than the release one (fat LTO, one
# codegen unit), and a few small HAProxy instances need no optimised
# binary. DEMO_PROFILE=release runs the release build instead.
BUILD_PROFILE=${DEMO_PROFILE:-dev} build_release "$repo/target"

tansu=$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")
[ -x "$tansu" ] || die "tansu missing: run contrib/install-deps.sh kafka"

# --- The broker: tansu, the topics the operator creates ---------------------
kafka_port=$(free_port)
setsid "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
pids+=("$!")
wait_for_port "$kafka_port" tansu
create_topic() {
    "$tansu" topic create "$1" --partitions "$2" --broker "tcp://127.0.0.1:$kafka_port" \
        >>"$work/tansu-topics.log" 2>&1 || die "tansu topic create $1: $(tail -n 3 "$work/tansu-topics.log")"
}
# The snapshots topic; central creates the partials and state topics. No
# metrics topic: on central [kafka] describes the input, and its lines go
# to Kafka only when [kafka] topic is set.
create_topic "$snapshots_topic" "$partitions"
say "tansu on 127.0.0.1:$kafka_port (memory storage), topic $snapshots_topic with $partitions partitions"

# --- Three load balancers: HAProxy processes in each edge's socket dir -----
frontend_ports=()
for cluster in "${cluster_names[@]}"; do
    for lb in ${clusters[$cluster]}; do
        for p in $(seq 1 "${processes[$lb]}"); do
            start_demo_haproxy "haproxy-$lb-$p" "$work/$lb/sockets"
            frontend_ports+=("$frontend_port")
        done
    done
done
say "3 load balancers up: eu-1, eu-2 (cluster eu), us-1 (cluster us, 2 HAProxy processes)"

# --- Graphite: carbon-cache behind carbon-c-relay, graphite-web -------------
# One whisper point per window: perSecond of a counter needs consecutive
# points.
carbon_retention="${window}s:1h"
start_carbon
whisper="$work/carbon/storage/whisper"
start_graphite_web "$whisper"
say "carbon-c-relay on 127.0.0.1:$relay_port, whisper in $whisper; graphite-web on $graphite_url"

# --- The edges: pull, publish, process nothing ------------------------------
for cluster in "${cluster_names[@]}"; do
    for lb in ${clusters[$cluster]}; do
        cat >"$work/$lb/edge.conf" <<CONF
[paths]
base-dir = $work/$lb

[pull]
pull-interval = $window
socket-dir = \${paths:base-dir}/sockets
dst-dir = \${paths:base-dir}/incoming
tmp-dst-dir = \${paths:base-dir}/incoming.tmp

[process]
src-dir = \${paths:base-dir}/incoming
local = false

[kafka]
brokers = 127.0.0.1:$kafka_port
snapshots-topic = $snapshots_topic
cluster = $cluster
lb-name = $lb
# tansu 0.6.0 loses the rest of a batch for a consumer that fetches from
# inside it (tests/tansu_fetch.rs): one record per batch. Kafka needs none.
librdkafka.batch.num.messages = 1
CONF
        "$bin" -f "$work/$lb/edge.conf" -P >/dev/null
    done
done

# --- Two centrals in one consumer group --------------------------------------
# grace: a window waits two more windows for an LB that did not publish.
for i in 1 2; do
    mkdir -p "$work/central$i"
    cat >"$work/central$i/central.conf" <<CONF
[paths]
base-dir = $work/central$i

[pull]
; how often central sends its own metrics
pull-interval = $window

[process]
per-process-metrics = true
calculate-percentages = true

[graphite]
server = 127.0.0.1
port = $relay_port
namespace = $namespace

[kafka]
brokers = 127.0.0.1:$kafka_port
snapshots-topic = $snapshots_topic
# As for the edges: tansu and batches (tests/tansu_fetch.rs).
librdkafka.batch.num.messages = 1

[central]
window = $window
grace = $((2 * window))
CONF
    "$bin" central -f "$work/central$i/central.conf" -P >/dev/null
done
say "configurations valid ($work/*/edge.conf, $work/central*/central.conf)"

unset RUST_BACKTRACE RUST_LIB_BACKTRACE
for i in 1 2; do
    setsid "$bin" central -f "$work/central$i/central.conf" >"$work/central$i/central.log" 2>&1 &
    daemons+=("$!")
    daemon_logs+=("$work/central$i/central.log")
    say "central$i running (pid $!, log $work/central$i/central.log)"
done
for cluster in "${cluster_names[@]}"; do
    for lb in ${clusters[$cluster]}; do
        setsid "$bin" -f "$work/$lb/edge.conf" >"$work/$lb/edge.log" 2>&1 &
        daemons+=("$!")
        daemon_logs+=("$work/$lb/edge.log")
        say "edge $lb (cluster $cluster) running (pid $!, log $work/$lb/edge.log), publishing every ${window}s"
    done
done

# A daemon that exited on its own: the end of its log, and the demo fails.
check_daemons() {
    local i
    for i in "${!daemons[@]}"; do
        kill -0 "${daemons[$i]}" 2>/dev/null && continue
        echo "$log_prefix: FAIL: ${daemon_logs[$i]%/*} exited; the end of its log:" >&2
        tail -n 30 "${daemon_logs[$i]}" >&2
        exit 1
    done
}

grafana="$repo/contrib/grafana"
# The main panels of the Cluster dashboard on graphite-web's dashboard page,
# one page per cluster; tried again for a few seconds while carbon-cache
# still writes the first window (the template variables list what is in
# whisper).
show_graphs() {
    local cluster=$1
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        python3 "$grafana/to_graphite_web.py" --graphite "$graphite_url" --name "cluster-$cluster" \
            --var namespace="$namespace" --var cluster="$cluster" --minutes 10 \
            "$grafana/cluster.json" 2>"$work/to_graphite_web.log" && return 0
        sleep 1
    done
    die "could not load the graphs of $cluster into graphite-web: $(cat "$work/to_graphite_web.log")"
}

# --- What lands in whisper, window by window --------------------------------
# Traffic all along, also while the loop below waits on graphite-web: a
# window without requests would repeat the previous one's counters.
(while true; do
    traffic "${frontend_ports[@]}"
    sleep 0.5
done) &
pids+=("$!")

cluster_args=()
for cluster in "${cluster_names[@]}"; do
    members=${clusters[$cluster]}
    cluster_args+=(--cluster "$cluster=${members// /,}")
done
declare -A last=() landed=() whole=()
mismatches=()
deadline=$(($(date +%s) + 90))
while true; do
    sleep 1
    check_daemons
    after=()
    for cluster in "${cluster_names[@]}"; do after+=(--after "$cluster=${last[$cluster]:-0}"); done
    # Debian's python3: the one with python3-whisper (whisper-fetch's).
    found=$(/usr/bin/python3 "$repo/contrib/demo/cluster_windows.py" --whisper "$whisper" \
        --namespace "$namespace" "${cluster_args[@]}" "${after[@]}") \
        || die "contrib/demo/cluster_windows.py failed"
    while read -r cluster t reporting expected late req members; do
        [ -n "$cluster" ] || continue
        last[$cluster]=$t
        landed[$cluster]=$((${landed[$cluster]:-0} + 1))
        shown=""
        for member in $members; do shown+="${shown:+ + }${member%%=*} ${member#*=}"; done
        say "$cluster $(date -d "@$t" +%T): LoadBalancersReporting/Expected $reporting/$expected," \
            "LateSnapshots $late, frontend.fe_web.req_tot $req = $shown"
        # Every LB reported: the cluster's counter is the sum of theirs.
        read -r -a values <<<"$members"
        if [ "$reporting" = "${#values[@]}" ]; then
            sum=$(printf '%s\n' "${values[@]#*=}" | awk '/^[0-9.]+$/ { s += $1; n++ } END { if (n == NR) print s; else print "?" }')
            if [ "$sum" = "$req" ]; then
                whole[$cluster]=$((${whole[$cluster]:-0} + 1))
            elif [ "$sum" != "?" ] && [ "$req" != "?" ]; then
                mismatches+=("$cluster $t: req_tot $req, the sum of its load balancers' $sum")
            fi
        fi
        if [ "${landed[$cluster]}" -eq 1 ]; then
            show_graphs "$cluster"
            say "graphs of cluster $cluster: open $graphite_url/dashboard/cluster-$cluster"
        fi
        deadline=$(($(date +%s) + 60))
    done <<<"$found"
    if [ "$mode" = once ]; then
        done=1
        for cluster in "${cluster_names[@]}"; do
            [ "${landed[$cluster]:-0}" -ge "$wanted" ] || done=0
        done
        [ "$done" -eq 1 ] && break
    fi
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "$log_prefix: FAIL: no new cluster window in whisper for 60 s; the centrals' logs end with:" >&2
        tail -n 20 "$work"/central*/central.log >&2
        exit 1
    fi
done

# --- --once: the values, the dashboard, a clean stop ------------------------
[ "${#mismatches[@]}" -eq 0 ] || die "a cluster's counter is not the sum of its load balancers': ${mismatches[*]}"
for cluster in "${cluster_names[@]}"; do
    [ "${whole[$cluster]:-0}" -ge 1 ] \
        || die "no window of $cluster with every load balancer reporting and its counter their sum"
done
say "every window with all its load balancers has their sum as its counter"
for cluster in "${cluster_names[@]}"; do
    contrib/grafana/check.sh "$whisper" --var namespace="$namespace" --var cluster="$cluster" \
        "$grafana/cluster.json" || die "a target of contrib/grafana/cluster.json returns no data for $cluster (above)"
done
stop_daemons
for entry in $stopped; do
    [ "${entry##*:}" = 0 ] && continue
    tail -n 30 "${entry%:*}" >&2
    die "${entry%:*} (above): exited ${entry##*:} on SIGTERM"
done
say "the edges and centrals stopped cleanly on SIGTERM"
