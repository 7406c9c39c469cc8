#!/usr/bin/env bash
# Steady-state CPU and peak RSS of the supervisor (`haproxystats -f CONF`:
# puller + processors + Graphite sink) at pull-interval = 10 on the engine
# benchmark's shape: 8 real HAProxy instances, each with 1000 frontends,
# 1000 backends and 20 servers per backend (no health checks), Graphite
# being a carbon-c-relay that discards everything (`blackhole`).
# CPU_KAFKA=1 adds the Kafka sink: a tansu broker (memory storage, one
# topic of one partition; `contrib/install-deps.sh` installs it) and a
# `[kafka]` section (brokers, topic, queue-size; format graphite and
# compression zstd by default); the broker's own CPU and peak RSS over the
# same window are reported apart from the daemon's.
# CPU_EDGE=1 runs the node as an edge (SPEC §5, §7: `[process] local =
# false`, `[kafka] snapshots-topic`): it pulls and publishes each snapshot
# as Arrow IPC parts into tansu (started as with CPU_KAFKA) and processes
# nothing; compare with a run without it (the same pulls, processed
# locally and sent to Graphite).
#
#   bench/cpu.sh [WARMUP_SECONDS] [WINDOW_SECONDS]     defaults 20 and 120
#   CPU_KAFKA=1 bench/cpu.sh [WARMUP_SECONDS] [WINDOW_SECONDS]
#   CPU_EDGE=1 bench/cpu.sh [WARMUP_SECONDS] [WINDOW_SECONDS]
#
# CPU% of one core = (utime + stime) delta from /proc/PID/stat over the
# window / window length (the window starts mid-interval and is rounded up
# to whole intervals, so it holds a whole number of cycles); peak RSS = VmHWM at the end. The per-cycle
# breakdown comes from the log ("snapshot processed ... seconds="), cycles
# inside the window only. Environment: CPU_TARGET_DIR (cargo target dir,
# default target/soak), CPU_REPORT (write the results there as Markdown),
# CPU_PERF (a file: `perf record` the daemon over the window into it, for
# `perf report -i FILE`; sampling costs a little CPU of its own, so the
# percentage of such a run is not the one to record), CPU_KAFKA (above).
# The report also gives the snapshots still in src-dir at the window's end
# (each stays there until every sink confirmed its lines) and the daemon's
# last word on SIGTERM.
#
# The HAProxy configurations are those of tests/support/haproxy.rs
# render_config without `check` and without the 1000 `use_backend` rules per
# frontend (1M ACL lines per instance, which only slow HAProxy's start and
# do not change what `show stat` reports).
set -euo pipefail

warmup=${1:-20}
window=${2:-120}
instances=8 frontends=1000 backends=1000 servers=20
interval=10

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
log_prefix=cpu
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

if [ -n "${CPU_KAFKA:-}${CPU_EDGE:-}" ]; then contrib/install-deps.sh graphite kafka; else contrib/install-deps.sh graphite; fi
build_release "${CPU_TARGET_DIR:-$repo/target/soak}"

work=$(mktemp -d /tmp/hs-cpu.XXXXXX)
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/sockets"

# --- 8 HAProxy instances: ports outside the ephemeral range, found free ------
responder_port=$(free_port)
python3 - "$work" "$instances" "$frontends" "$backends" "$servers" "$responder_port" <<'PY'
import socket, sys
work, n, nfe, nbe, nsrv, responder = sys.argv[1], *map(int, sys.argv[2:])
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports, held, port = [], [], 10000
while len(ports) < n * nfe:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        held.append(s)
        ports.append(port)
    except OSError:
        s.close()
    port += 1
    if port >= lo:
        sys.exit("not enough free ports below the ephemeral range")
for s in held:
    s.close()
for i in range(n):
    c = [f"global\n    nbthread 1\n    stats socket {work}/sockets/haproxy{i}.sock mode 600 level admin\n"
         "    stats timeout 10s\n    hard-stop-after 3s\n\n"
         "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n"
         "    timeout server 10s\n    timeout http-request 5s\n\n"]
    for j in range(nfe):
        c.append(f"frontend fe_{j}\n    bind 127.0.0.1:{ports[i * nfe + j]}\n"
                 f"    default_backend be_{j % nbe}\n\n")
    for k in range(nbe):
        c.append(f"backend be_{k}\n    balance roundrobin\n    option httpchk GET /health\n")
        c.extend(f"    server srv_{k}_{s} 127.0.0.1:{responder}\n" for s in range(nsrv))
        c.append("\n")
    c.append(f"frontend responder\n    bind 127.0.0.1:{responder}\n"
             "    http-request return status 200 content-type text/plain string ok\n"
             if i == 0 else "")
    open(f"{work}/haproxy{i}.cfg", "w").write("".join(c))
PY
for i in $(seq 0 $((instances - 1))); do
    start_haproxy "haproxy$i" "$work/haproxy$i.cfg"
done
for i in $(seq 0 $((instances - 1))); do
    for _ in $(seq 1 600); do
        [ -S "$work/sockets/haproxy$i.sock" ] && break
        kill -0 "${pids[$i]}" 2>/dev/null || die "haproxy$i exited: $(tail -n 5 "$work/haproxy$i.log")"
        sleep 0.1
    done
    [ -S "$work/sockets/haproxy$i.sock" ] || die "haproxy$i has no stats socket after 60 s"
done
say "$instances HAProxy instances up ($frontends frontends, $backends backends, $servers servers per backend each)"

# --- Graphite: carbon-c-relay discarding everything ---------------------------
relay_port=$(free_port)
mkdir -p "$work/carbon/log"
cat >"$work/carbon/relay.conf" <<CONF
listen type linemode 127.0.0.1:$relay_port proto tcp;
match * send to blackhole stop;
CONF
relay_generation=0
start_relay

# --- Kafka (CPU_KAFKA=1): tansu with its memory storage ------------------------
kafka=${CPU_KAFKA:-0}
edge=${CPU_EDGE:-0}
case "$edge" in
    0) ;;
    1) kafka=1 ;;
    *) die "CPU_EDGE is 0 or 1, not '$edge'" ;;
esac
kafka_topic=haproxystats.metrics
snapshots_topic=haproxystats.snapshots
if [ "$kafka" = 1 ]; then
    tansu=$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")
    [ -x "$tansu" ] || die "tansu not found in PATH nor in ~/.cargo/bin (contrib/install-deps.sh kafka installs it)"
    kafka_port=$(free_port)
    "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
        --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
        --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
    broker=$!
    pids+=("$broker")
    wait_for_port "$kafka_port" tansu 200
    for topic in "$kafka_topic" $([ "$edge" = 1 ] && echo "$snapshots_topic"); do
        "$tansu" topic create "$topic" --partitions 1 --broker "tcp://127.0.0.1:$kafka_port" \
            >"$work/tansu-topic.log" 2>&1 || die "tansu topic create failed: $(tail -n 5 "$work/tansu-topic.log")"
    done
    say "tansu (pid $broker) on port $kafka_port, topic $kafka_topic (1 partition)"
elif [ "$kafka" != 0 ]; then
    die "CPU_KAFKA is 0 or 1, not '$kafka'"
fi

cat >"$work/haproxystats.conf" <<CONF
[paths]
base-dir = $work

[pull]
pull-interval = $interval
pull-timeout = 8
timeout = 2
socket-dir = $work/sockets
dst-dir = \${paths:base-dir}/incoming
tmp-dst-dir = \${paths:base-dir}/incoming.tmp
buffer-limit = 67108864

[process]
src-dir = \${paths:base-dir}/incoming
aggr-server-metrics = true
$([ "$edge" = 1 ] && echo "local = false")

[graphite]
server = 127.0.0.1
port = $relay_port
namespace = cpu
prefix-hostname = false
queue-size = 20000000
CONF
# queue-size as Graphite's: one snapshot here (1.19 M lines) is more than
# the default 1 000 000, which would drop its oldest lines.
if [ "$kafka" = 1 ]; then
    cat >>"$work/haproxystats.conf" <<CONF

[kafka]
brokers = 127.0.0.1:$kafka_port
topic = $kafka_topic
queue-size = 20000000
$([ "$edge" = 1 ] && echo "snapshots-topic = $snapshots_topic")
CONF
fi
"$bin" -f "$work/haproxystats.conf" -P >/dev/null
log="$work/haproxystats.log"
"$bin" -f "$work/haproxystats.conf" >"$log" 2>&1 &
daemon=$!
pids+=("$daemon")
started=$(date +%s)
load_start=$(loadavg)
say "haproxystats running (pid $daemon), pull-interval $interval s; warm-up ${warmup}s, window ${window}s"

ticks() { awk '{ print $14 + $15 }' "/proc/${1:-$daemon}/stat"; }
hz=$(getconf CLK_TCK)
# percent TICKS: TICKS of CPU over the window, in % of one core.
percent() { awk -v c="$1" -v hz="$hz" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", 100 * c / hz / (b - a) }'; }
sleep "$warmup"
kill -0 "$daemon" 2>/dev/null || die "haproxystats exited during warm-up: $(tail -n 20 "$log")"
# Pull cycles start on multiples of the interval: the window starts half an
# interval after one, and lasts a whole number of intervals, so that it holds
# exactly that many cycles (a cycle more or less would move the result by
# 1/12 on a 120 s window).
window=$(((window + interval - 1) / interval * interval))
sleep "$(awk -v now="$(date +%s.%N)" -v i="$interval" 'BEGIN { w = i / 2 - (now % i); if (w < 0) w += i; print w }')"
t0=$(date +%s.%N); c0=$(ticks); w0=$(date -u +%Y-%m-%dT%H:%M:%S)
if [ "$kafka" = 1 ]; then k0=$(ticks "$broker"); fi
if [ -n "${CPU_PERF:-}" ]; then
    perf record -q -F 999 -p "$daemon" -o "$CPU_PERF" -- sleep "$window" >/dev/null 2>&1 ||
        die "perf record failed (is linux-perf installed?)"
else
    sleep "$window"
fi
kill -0 "$daemon" 2>/dev/null || die "haproxystats exited during the window: $(tail -n 20 "$log")"
t1=$(date +%s.%N); c1=$(ticks); w1=$(date -u +%Y-%m-%dT%H:%M:%S)
hwm=$(hwm_kb "$daemon")
rss=$(rss_kb "$daemon")
pending=$(find "$work/incoming" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | wc -l)
if [ "$kafka" = 1 ]; then
    kill -0 "$broker" 2>/dev/null || die "tansu exited during the window: $(tail -n 20 "$work/tansu.log")"
    k1=$(ticks "$broker")
    broker_cpu=$(percent $((k1 - k0)))
    broker_md="- Kafka: tansu $("$tansu" --version 2>/dev/null | awk '{ print $NF }'), memory storage, topic $kafka_topic (1 partition); [kafka] brokers, topic, queue-size = 20000000, the rest default (format graphite, compression zstd); tansu's own CPU over the window $broker_cpu % of one core ($((k1 - k0)) ticks), its RSS at the end $(rss_kb "$broker") kB, peak $(hwm_kb "$broker") kB"
fi
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
[ "$status" -eq 0 ] || say "warning: haproxystats exited $status on SIGTERM"

cpu=$(percent $((c1 - c0)))
# Cycles in the window: log lines with an ISO timestamp between w0 and w1.
cycles=$(awk -v a="$w0" -v b="$w1" 'substr($1, 1, 19) >= a && substr($1, 1, 19) < b && /snapshot processed/' "$log")
# `|| true`: an edge processes nothing, so grep finds no cycle.
breakdown=$(echo "$cycles" | { grep -o 'seconds=[0-9.e-]*' || true; } | sed 's/seconds=//' | sort -g |
    awk '{ v[NR] = $1; s += $1 } END { if (NR) printf "%d cycles: processing min %.3f s, median %.3f s, max %.3f s, mean %.3f s", NR, v[1], v[int((NR + 1) / 2)], v[NR], s / NR; else print "no cycle in the window" }')
lines=$(echo "$cycles" | { grep -o 'lines=[0-9]*' || true; } | head -n 1 | sed 's/lines=//')
bytes=$(grep -o 'snapshot published.*bytes=[0-9]*' "$log" | tail -n 1 | grep -o 'bytes=[0-9]*' | sed 's/bytes=//')
# The cycle in progress at SIGTERM is cancelled by design: not a failure.
grep 'pull cycle failed\|could not start' "$log" | grep -v 'cancelled: shutting down' >"$work/failed" || true
failed=$(wc -l <"$work/failed")
failed_lines=$(cut -c1-400 "$work/failed")
dropped=$(grep -ci 'dropped' "$log" || true)
last_word=$(grep -o 'stopped;[^"]*' "$log" | tail -n 1 || true)

summary=$(
    cat <<MD
### $([ "$edge" = 1 ] && echo "CPU_EDGE=1 " || echo "${broker_md:+CPU_KAFKA=1 }")bench/cpu.sh $warmup $window

- run: $(date -u -d "@$started" '+%Y-%m-%d %H:%M UTC'); $instances HAProxy $(haproxy -v | awk 'NR==1 { print $3 }') instances × ($frontends frontends, $backends backends, $servers servers per backend, no checks), pull-interval $interval s, aggr-server-metrics on, Graphite = carbon-c-relay blackhole${broker_md:+, Kafka = tansu}
$(machine_md "$load_start")
- snapshot: ${bytes:-?} bytes pulled per cycle, ${lines:-?} lines sent per cycle; failed pull cycles (not counting the one SIGTERM cancels): $failed; log lines mentioning drops: $dropped
- CPU over the ${window} s window (after ${warmup} s warm-up): **$cpu % of one core** (utime+stime $((c1 - c0)) ticks at $hz Hz)
- per cycle ($breakdown)
- RSS at the end $rss kB, peak (VmHWM) $hwm kB
- exit on SIGTERM: $status; snapshots in src-dir at the window's end: $pending; the daemon's last word: ${last_word:-none}
${broker_md:+$broker_md
}${failed_lines:+- failed pull cycles in the log:
\`\`\`
$failed_lines
\`\`\`}
MD
)
echo
echo "$summary"
[ -n "${CPU_REPORT:-}" ] && echo "$summary" >"$CPU_REPORT"
say "done"
