# shellcheck shell=bash disable=SC2154,SC2034  # work, log_prefix come from the caller; bin, ports go back to it
# Shell helpers shared by bench/soak.sh, bench/cpu.sh and contrib/demo/run.sh (sourced, not run).
#
# The caller sets `work` (a temp dir) and `log_prefix` (e.g. "soak"), and
# appends every background PID it wants stopped to the `pids` array; the
# helpers below start real HAProxy instances and the carbon stack (the same
# set-up as tests/support/carbon.rs) on free ports. They run in sessions of
# their own (setsid, same PID): a Ctrl-C at the terminal reaches the script
# alone, whose trap stops them in order, instead of every child at once.

pids=()

say() { echo "$log_prefix: $*"; }
die() {
    echo "$log_prefix: FAIL: $*" >&2
    exit 1
}

# build_release TARGET_DIR [CARGO ARGS...]: sets bin to the release binary.
# The daemon runs as under systemd: unset RUST_BACKTRACE and
# RUST_LIB_BACKTRACE (see bench/soak.sh) for every child started from here.
# BUILD_PROFILE=dev (or SOAK_PROFILE=dev) builds the debug profile instead
# (CI's short soak: it reuses the fault-injection build of the tests; the
# demos: sooner built).
build_release() {
    local target=$1
    shift
    if [ "${BUILD_PROFILE:-${SOAK_PROFILE:-release}}" = dev ]; then
        say "building haproxystats (dev profile${*:+ $*}) in $target"
        CARGO_TARGET_DIR=$target cargo build --quiet "$@"
        bin="$target/debug/haproxystats"
    else
        say "building haproxystats (release${*:+ $*}) in $target"
        CARGO_TARGET_DIR=$target cargo build --release --quiet "$@"
        bin="$target/release/haproxystats"
    fi
    unset RUST_BACKTRACE RUST_LIB_BACKTRACE
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for_port() {
    local port=$1 what=$2 tries=${3:-300}
    for _ in $(seq 1 "$tries"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$what did not start listening on port $port"
}

# Stops a PID: SIGTERM, then SIGKILL after `grace` tenths of a second.
stop_pid() {
    local pid=$1 grace=${2:-50}
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 "$grace"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Stops every PID in `pids`, newest first (the daemon before its back ends).
stop_all() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[$i]}" 2>/dev/null || true
    done
    for _ in $(seq 1 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# start_haproxy NAME CFG: runs `haproxy -db -f CFG` in the background, logs to
# $work/NAME.log; its PID is appended to `pids`.
start_haproxy() {
    local name=$1 cfg=$2
    setsid haproxy -f "$cfg" -db >"$work/$name.log" 2>&1 &
    pids+=("$!")
}

# The carbon stack: carbon-cache (whisper under $work/carbon/storage/whisper,
# retention $carbon_retention, default 1s:1h) and carbon-c-relay in front of it. Sets line_port and
# relay_port; start_relay/stop_relay restart the relay on the same port.
start_carbon() {
    mkdir -p "$work/carbon"/{storage,conf,log,run}
    line_port=$(free_port)
    local pickle_port query_port
    pickle_port=$(free_port)
    query_port=$(free_port)
    relay_port=$(free_port)
    cat >"$work/carbon/conf/carbon.conf" <<CONF
[cache]
STORAGE_DIR = $work/carbon/storage
LOCAL_DATA_DIR = $work/carbon/storage/whisper
WHITELISTS_DIR = $work/carbon/storage/lists
CONF_DIR = $work/carbon/conf
LOG_DIR = $work/carbon/log
PID_DIR = $work/carbon/run
USER =
DATABASE = whisper
ENABLE_LOGROTATION = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
MIN_TIMESTAMP_RESOLUTION = 1
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $line_port
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $pickle_port
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = $query_port
USE_FLOW_CONTROL = True
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = False
CARBON_METRIC_INTERVAL = 0
ENABLE_TAGS = False
LOG_LISTENER_CONNECTIONS = False
LOG_UPDATES = False
LOG_CACHE_HITS = False
CONF
    cat >"$work/carbon/conf/storage-schemas.conf" <<CONF
[everything]
pattern = .*
retentions = ${carbon_retention:-1s:1h}
CONF
    setsid carbon-cache --config="$work/carbon/conf/carbon.conf" --nodaemon \
        --pidfile="$work/carbon/run/carbon-cache.pid" start >"$work/carbon/log/stdout" 2>&1 &
    cache_pid=$!
    pids+=("$cache_pid")
    wait_for_port "$line_port" carbon-cache
    cat >"$work/carbon/relay.conf" <<CONF
listen type linemode 127.0.0.1:$relay_port proto tcp;
cluster cache forward 127.0.0.1:$line_port proto tcp;
match * send to cache stop;
CONF
    relay_generation=0
    start_relay
}

# Starts carbon-c-relay on relay_port (again); sets relay_pid.
start_relay() {
    relay_generation=$((relay_generation + 1))
    local attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        setsid carbon-c-relay -f "$work/carbon/relay.conf" -s -w 1 -H haproxystats-bench \
            >"$work/carbon/log/relay.$relay_generation.$attempt.log" 2>&1 &
        relay_pid=$!
        pids+=("$relay_pid")
        for _ in $(seq 1 50); do
            (exec 3<>"/dev/tcp/127.0.0.1/$relay_port") 2>/dev/null && return 0
            kill -0 "$relay_pid" 2>/dev/null || break
            sleep 0.1
        done
        # Lost the port (TIME_WAIT, a port race): try again.
        stop_pid "$relay_pid" 10
        sleep 1
    done
    die "carbon-c-relay did not start listening on port $relay_port (logs in $work/carbon/log)"
}

# Stops the relay like `systemctl stop` would (SIGTERM: it forwards what it
# read, then exits); SIGKILL only if it is still there after 15 s.
stop_relay() {
    stop_pid "$relay_pid" 150
}

# VmRSS / VmHWM of a PID in kB (empty when it is gone).
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
anon_kb() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# The machine, for the reports; $1 is the load average at the start.
machine_md() {
    local model
    model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "- machine: $(nproc) CPUs ($model), kernel $(uname -r)"
    echo "- load average at the start: $1, at the end: $(loadavg) (shared machine: other engineers may be compiling)"
}
