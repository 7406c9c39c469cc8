#!/usr/bin/env bash
# Soak test: the supervisor (`haproxystats -f CONF`: puller, watcher,
# processors, Graphite sink, local-store) pulling 4 real HAProxy instances
# with live traffic every second into a real carbon stack, for SECONDS
# (default 600), through 3 injected child crashes and a relay outage; then
# proves that nothing was lost and memory stayed flat.
#
#   bench/soak.sh [SECONDS]        CI runs `bench/soak.sh 60`
#
# Environment: SOAK_TARGET_DIR (cargo target dir, default target/soak),
# SOAK_REPORT (write the summary there as Markdown), SOAK_KEEP=1 (keep the
# work dir, e.g. to read logs after a failure).
#
# Schedule (T = SECONDS):
#   0.10 T        relay stopped (SIGTERM) for 30 s (T < 240: T/8, at least 5 s)
#   0.25 T        RSS baseline (after warm-up and outage)
#   0.35/0.55/0.75 T   kill -USR2: crash the puller, the watcher, the Graphite sink
#   T             SIGTERM: the daemon must drain and exit 0
# Memory (RssAnon, and VmRSS for the record) is sampled every 5 s.
#
# Checks (any failure: exit 1 with a line saying what): every published
# snapshot has a local-store dir and vice versa; src-dir is empty (a snapshot
# published while the daemon was stopping is left for the next start by
# design: `haproxystats process` is run to drain it, and it is counted);
# nothing in <src-dir>.failed; every (path, timestamp, value) of every
# local-store file is in whisper; 3 "child died" and 3 "child restarted" log
# lines; GraphiteDroppedLines is 0 in every snapshot; the max RssAnon over the
# second half is at most the baseline + max(10 %, 2 MB) (runs of 300 s and
# more; shorter ones report memory without judging it).
set -euo pipefail

duration=${1:-600}
case $duration in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
[ "$duration" -ge 40 ] || { echo "soak: SECONDS must be at least 40" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
log_prefix=soak
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

contrib/install-deps.sh graphite
build_release "${SOAK_TARGET_DIR:-$repo/target/soak}" --features fault-injection

# Short path: HAProxy's stats socket paths must fit in sun_path.
work=$(mktemp -d /tmp/hs-soak.XXXXXX)
failed=true
# Violations found after the run: all are checked and reported, then exit 1.
violations=()
violation() {
    violations+=("$*")
    echo "soak: FAIL: $*" >&2
}
cleanup() {
    stop_all
    if $failed && [ -f "$work/haproxystats.log" ]; then
        echo "soak: last lines of the haproxystats log:" >&2
        tail -n 30 "$work/haproxystats.log" >&2 || true
    fi
    if [ "${SOAK_KEEP:-0}" = 1 ]; then
        echo "soak: work dir kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 4 HAProxy instances with traffic ---------------------------------------
mkdir -p "$work/sockets"
frontend_ports=()
for i in 1 2 3 4; do
    fe_port=$(free_port); api_port=$(free_port); app_port=$(free_port)
    frontend_ports+=("$fe_port" "$api_port")
    cat >"$work/haproxy$i.cfg" <<CFG
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
frontend fe_api
    bind 127.0.0.1:$api_port
    default_backend be_api
backend be_app
    balance roundrobin
    server app1 127.0.0.1:$app_port check inter 1s
    server app2 127.0.0.1:$app_port check inter 1s
    server app3 127.0.0.1:$app_port check inter 1s
backend be_api
    balance leastconn
    server api1 127.0.0.1:$app_port check inter 1s
    server api2 127.0.0.1:$app_port check inter 1s
frontend responder
    bind 127.0.0.1:$app_port
    http-request return status 200 content-type text/plain string ok
CFG
    start_haproxy "haproxy$i" "$work/haproxy$i.cfg"
done
for port in "${frontend_ports[@]}"; do wait_for_port "$port" haproxy; done
say "4 HAProxy instances up"

(
    while true; do
        for port in "${frontend_ports[@]}"; do
            for _ in $(seq 1 $((RANDOM % 5 + 1))); do
                curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/" || true
            done
        done
        sleep 0.2
    done
) &
pids+=("$!")

# --- carbon-cache + carbon-c-relay ------------------------------------------
start_carbon
say "carbon-c-relay on 127.0.0.1:$relay_port -> carbon-cache on $line_port"

# --- haproxystats --------------------------------------------------------------
cat >"$work/haproxystats.conf" <<CONF
[paths]
base-dir = $work

[pull]
pull-interval = 1
pull-timeout = 0.9
socket-dir = $work/sockets
dst-dir = \${paths:base-dir}/incoming
tmp-dst-dir = \${paths:base-dir}/incoming.tmp
queue-size = 3600

[process]
src-dir = \${paths:base-dir}/incoming
calculate-percentages = true
per-process-metrics = true
aggr-server-metrics = true

[graphite]
server = 127.0.0.1
port = $relay_port
namespace = soak
prefix-hostname = false
queue-size = 10000000
# The resend window fills by design (16 MiB by default, ~5 min at this
# soak's ~50 KB/s): a small one is full within seconds, so that any RSS
# growth after T/4 is a leak, not the window filling.
replay-bytes = 262144

[local-store]
dir = \${paths:base-dir}/local-store
CONF
"$bin" -f "$work/haproxystats.conf" -P >/dev/null
src_dir="$work/incoming"
store_dir="$work/local-store"
log="$work/haproxystats.log"

# RUST_BACKTRACE is unset (build_release), as under systemd. A developer
# shell often sets it, and then the first injected panic symbolizes a
# backtrace, which loads and keeps the binary's debug info (~35 MB of RSS,
# once, measured): the RSS check would see that, not the daemon's steady state.
"$bin" -f "$work/haproxystats.conf" >"$log" 2>&1 &
daemon=$!
pids+=("$daemon")
start=$(date +%s)
load_start=$(loadavg)
say "haproxystats running (pid $daemon) for ${duration}s, pull-interval 1 s"

# Memory every 5 s: "<seconds since start> <RssAnon kB> <threads> <VmRSS kB>".
# The check is on RssAnon (heap, arenas, stacks: where a leak shows); VmRSS
# also counts the binary's own code pages, faulted in as new code paths run
# (the first crash, the first reconnect...) — bounded by the binary's size,
# and several MB for the debug build CI uses.
(
    while kill -0 "$daemon" 2>/dev/null; do
        anon=$(anon_kb "$daemon")
        rss=$(rss_kb "$daemon")
        threads=$(awk '/^Threads:/ { print $2 }' "/proc/$daemon/status" 2>/dev/null || true)
        [ -n "$anon" ] && echo "$(($(date +%s) - start)) $anon $threads $rss" >>"$work/rss"
        sleep 5
    done
) &
pids+=("$!")

# --- the schedule ---------------------------------------------------------------
outage=30
if [ "$duration" -lt 240 ]; then
    outage=$((duration / 8))
    [ "$outage" -ge 5 ] || outage=5
fi
outage_at=$((duration / 10))
crash_at=($((duration * 35 / 100)) $((duration * 55 / 100)) $((duration * 75 / 100)))
crash_names=(puller watcher graphite)
crashes=0
relay_down=false
relay_stopped_at=0
outage_real=0

while true; do
    now=$(($(date +%s) - start))
    [ "$now" -ge "$duration" ] && break
    kill -0 "$daemon" 2>/dev/null || {
        wait "$daemon" && status=0 || status=$?
        die "haproxystats exited ($status) after ${now}s; log: $(tail -n 20 "$log")"
    }
    if ! $relay_down && [ "$relay_stopped_at" -eq 0 ] && [ "$now" -ge "$outage_at" ]; then
        say "t=${now}s: stopping carbon-c-relay for ${outage}s"
        relay_stopped_at=$(date +%s)
        stop_relay
        relay_down=true
    fi
    if $relay_down && [ "$(date +%s)" -ge $((relay_stopped_at + outage)) ]; then
        start_relay
        outage_real=$(($(date +%s) - relay_stopped_at))
        relay_down=false
        say "t=${now}s: carbon-c-relay back after ${outage_real}s"
    fi
    if [ "$crashes" -lt 3 ] && [ "$now" -ge "${crash_at[$crashes]}" ]; then
        say "t=${now}s: kill -USR2 (crash the ${crash_names[$crashes]})"
        kill -USR2 "$daemon"
        crashes=$((crashes + 1))
    fi
    sleep 1
done
$relay_down && die "the relay outage did not end before the run did (SECONDS too short)"

# --- stop ---------------------------------------------------------------------
hwm=$(hwm_kb "$daemon")
say "t=${duration}s: SIGTERM (VmHWM ${hwm} kB)"
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
[ "$status" -eq 0 ] || violation "haproxystats exited $status on SIGTERM (expected 0)"
grep -q "stopped; " "$log" || violation "no 'stopped; ...' line (a clean drain) in the log"
sleep 0.1

# Left in src-dir by the shutdown (published while stopping): by design they
# are processed at the next start, so start the process half to drain them.
left_at_stop=$(find "$src_dir" -mindepth 1 -maxdepth 1 | wc -l)
if [ "$left_at_stop" -gt 0 ]; then
    say "$left_at_stop snapshot(s) left in src-dir at shutdown: running 'haproxystats process' to drain them"
    "$bin" process -f "$work/haproxystats.conf" >"$work/process.log" 2>&1 &
    drain=$!
    pids+=("$drain")
    for _ in $(seq 1 300); do
        [ "$(find "$src_dir" -mindepth 1 -maxdepth 1 | wc -l)" -eq 0 ] && break
        sleep 0.1
    done
    kill -TERM "$drain"
    dstatus=0
    wait "$drain" || dstatus=$?
    [ "$dstatus" -eq 0 ] || violation "haproxystats process exited $dstatus on SIGTERM; log: $(tail -n 20 "$work/process.log")"
fi

# --- verify -------------------------------------------------------------------
grep -o 'snapshot published ts=[0-9]*' "$log" | sed 's/.*ts=//' | sort >"$work/published.all"
sort -u "$work/published.all" >"$work/published"
published=$(wc -l <"$work/published")
# Two snapshots published under one timestamp: the second replaces the
# first's points (Graphite keeps one value per path and second). Seen after
# a puller restart; reported, not counted as a violation (nothing is lost).
duplicate_ts=$(uniq -d "$work/published.all" | tr '\n' ' ')
[ -z "$duplicate_ts" ] || say "WARNING: snapshots published twice under one timestamp: $duplicate_ts"
find "$store_dir" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -u >"$work/stored"
stored=$(wc -l <"$work/stored")
pull_failures=$(grep -c 'pull cycle failed' "$log" || true)
say "snapshots: published $published, in local-store $stored, failed pull cycles $pull_failures"
[ "$published" -gt 0 ] || die "no snapshot was published"
if ! diff -q "$work/published" "$work/stored" >/dev/null; then
    diff "$work/published" "$work/stored" | head -n 20 >&2
    violation "published snapshots and local-store dirs differ (< only published, > only stored)"
fi
leftover=$(find "$src_dir" -mindepth 1 -maxdepth 1 | wc -l)
[ "$leftover" -eq 0 ] || violation "$leftover snapshot(s) left unprocessed in $src_dir: $(find "$src_dir" -mindepth 1 -maxdepth 1 -printf '%f ' | head -c 300)"
if [ -d "$src_dir.failed" ] && [ -n "$(ls -A "$src_dir.failed")" ]; then
    violation "quarantined snapshots in $src_dir.failed: $(find "$src_dir.failed" -mindepth 1 -maxdepth 1 -printf '%f ' | head -c 300)"
fi

died=$(grep -c 'child died' "$log" || true)
restarted=$(grep -c 'child restarted' "$log" || true)
say "restarts: $died 'child died', $restarted 'child restarted'"
if [ "$died" -ne 3 ] || [ "$restarted" -ne 3 ]; then
    violation "expected 3 'child died' and 3 'child restarted' log lines: $(grep 'child died\|child restarted' "$log")"
fi

say "verifying every local-store line against whisper"
# The whisper module comes with Debian's python3-whisper: prefer the system
# python over one earlier in PATH (pyenv) that lacks it.
wpython=
for candidate in /usr/bin/python3 python3; do
    "$candidate" -c 'import whisper' 2>/dev/null && wpython=$candidate && break
done
[ -n "$wpython" ] || die "no python3 with the whisper module (Debian package python3-whisper)"
"$wpython" "$repo/bench/soak_verify.py" --local-store "$store_dir" \
    --whisper "$work/carbon/storage/whisper" --prefix soak.haproxy --restarts 3 \
    --timeout 120 >"$work/verify.out" || {
    cat "$work/verify.out" >&2
    violation "whisper verification failed (see above)"
}
grep -v '^FAIL\|^  ' "$work/verify.out" || true
lines_verified=$(awk -F= '/^lines_verified=/ { print $2 }' "$work/verify.out")
metrics=$(awk -F= '/^metrics=/ { print $2 }' "$work/verify.out")

# RSS: the baseline is the sample nearest 0.25 T; the second half must stay
# within max(10 %, 2 MB) of it.
read -r rss_first rss_base rss_max rss_last rss_limit rss_samples < <(
    awk -v q=$((duration / 4)) -v h=$((duration / 2)) '
        NR == 1 { first = $2 }
        { d = $1 - q; if (d < 0) d = -d; if (best == "" || d < best) { best = d; base = $2 }
          if ($1 >= h && $2 > max) max = $2; last = $2; n++ }
        END { lim = base * 1.10; if (base + 2048 > lim) lim = base + 2048
              printf "%d %d %d %d %d %d\n", first, base, max, last, lim, n }' "$work/rss")
say "RssAnon (kB): first $rss_first, at T/4 $rss_base, max over 2nd half $rss_max, last $rss_last (limit $rss_limit, $rss_samples samples); VmRSS last $(tail -n 1 "$work/rss" | cut -d' ' -f4) kB"
[ "$rss_samples" -ge 4 ] || violation "too few RSS samples ($rss_samples)"
# Under 300 s the warm-up (allocator arenas, first crash and reconnect paths)
# is most of the window: memory is reported, judged only in long runs.
if [ "$duration" -lt 300 ]; then
    say "RssAnon not judged: runs under 300 s are warm-up; bench/soak.sh 600 judges it"
else
    [ "$rss_max" -le "$rss_limit" ] || violation "RssAnon grew: max $rss_max kB over the second half > limit $rss_limit kB (T/4: $rss_base kB); samples (s kB threads): $(tr '\n' ',' <"$work/rss")"
fi

if [ "${#violations[@]}" -eq 0 ]; then
    failed=false
    result="PASS"
else
    result=$(printf '%s; ' "${violations[@]}" | cut -c1-2000)
    result="FAIL: ${result%; }"
fi
summary=$(
    cat <<MD
### bench/soak.sh $duration

- run: $(date -u -d "@$start" '+%Y-%m-%d %H:%M UTC'), ${duration} s, pull-interval 1 s, 4 HAProxy $(haproxy -v | awk 'NR==1 { print $3 }') instances with traffic
$(machine_md "$load_start")
- snapshots published and processed: $published (timestamps published twice: ${duplicate_ts:-none}; local-store dirs: $stored; failed pull cycles: $pull_failures; left in src-dir at SIGTERM and drained by \`haproxystats process\`: $left_at_stop)
- lines verified in whisper (value and timestamp): ${lines_verified:-not all, see the violations} of $(awk -F= '/^lines=/ { print $2 }' "$work/verify.out") lines, $metrics metrics
- child restarts: $died died / $restarted restarted (puller, watcher, Graphite sink at 0.35/0.55/0.75 T); GraphiteDroppedLines: $(grep -o 'graphite_dropped_lines=.*' "$work/verify.out" || echo "NOT 0 or missing")
- relay outage: ${outage_real} s (SIGTERM at t=${outage_at} s, restarted on the same port)
- RssAnon (every 5 s): first $rss_first kB, at T/4 $rss_base kB, max over the second half $rss_max kB (limit $rss_limit kB), last $rss_last kB; VmHWM $hwm kB
- RssAnon samples (s:kB): $(awk '{ printf "%s%d:%d", sep, $1, $2; sep = " " }' "$work/rss")
- exit on SIGTERM: $status
- result: **$result**
MD
)
echo
echo "$summary"
if [ -n "${SOAK_REPORT:-}" ]; then echo "$summary" >"$SOAK_REPORT"; fi
$failed && die "${#violations[@]} violation(s), listed above"
say "PASS"
