#!/usr/bin/env bash
# Engine vs the original: one large snapshot processed by the Python original
# (haproxystats 0.5.1, driven by tests/oracle/run_original.py) and by ours
# (`haproxystats -f CONF replay DIR`), both with aggr-server-metrics = true,
# both under /usr/bin/time -v, in the same run. Prints wall time and peak RSS.
# Ours takes about 0.1 s, where /usr/bin/time's 10 ms steps are coarse: it
# runs OURS_RUNS times (default 5), each timed to the microsecond, and the
# min and median are printed too, with the ratios to the original's wall.
#
#   bench/engine-vs-original.sh [WORKDIR]
#
# Needs: the oracle venv (.ci/install-oracle.sh; $HS_ORACLE_VENV, default
# /opt/hs-oracle/V), GNU time (/usr/bin/time), python3. Builds
# target/release/haproxystats (respects $CARGO_TARGET_DIR) if it is missing.
# The original's RSS is the largest process of its tree (its worker).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${HS_ORACLE_VENV:-/opt/hs-oracle/V}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OURS="$TARGET/release/haproxystats"
WORK="${1:-$(mktemp -d /tmp/engine-vs-original.XXXXXX)}"
TS=1700000000

[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -x "$VENV/bin/haproxystats-process" ] || { echo "no original in $VENV: run .ci/install-oracle.sh" >&2; exit 1; }
if [ ! -x "$OURS" ]; then
    (cd "$ROOT" && cargo build --release --bin haproxystats)
fi

mkdir -p "$WORK/in" "$WORK/incoming"
SNAP="$WORK/in/$TS"
if [ ! -d "$SNAP" ]; then
    python3 "$ROOT/tools/gen_snapshot.py" --out "$WORK/in" --processes 8 --frontends 1000 \
        --backends 1000 --servers 20 --legacy-info --timestamp "$TS" >/dev/null
fi
cat > "$WORK/haproxystats.conf" <<CONF
[process]
src-dir = $WORK/incoming
aggr-server-metrics = true
CONF

# field NAME FILE: a value of /usr/bin/time -v
field() { sed -n "s/^[[:space:]]*$1: //p" "$2"; }

# now_us: microseconds since the epoch (bash's clock: no process started)
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo $((10#$t)); }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "$WORK/oracle" "$WORK/original.txt"
# Each timed run starts with no dirty page cache left by the one before (the
# kernel writing back 55 MB of output would share the CPUs with it).
sync
t0=$(now_us)
/usr/bin/time -v -o "$WORK/original.time" \
    "$VENV/bin/python" "$ROOT/tests/oracle/run_original.py" --venv "$VENV" \
    --config "$WORK/haproxystats.conf" --work "$WORK/oracle" --workers 1 --timeout 1800 \
    "$SNAP" > "$WORK/original.txt"
original_us=$(( $(now_us) - t0 ))
ours_us=()
for _ in $(seq "${OURS_RUNS:-5}"); do
    # Freeing the previous run's 55 MB of page cache is not this run's work.
    rm -f "$WORK/ours.txt"
    sync
    t0=$(now_us)
    /usr/bin/time -v -o "$WORK/ours.time" \
        "$OURS" -f "$WORK/haproxystats.conf" replay "$SNAP" > "$WORK/ours.txt"
    ours_us+=($(( $(now_us) - t0 )))
done

input_mb=$(du -sm "$SNAP" | cut -f1)
echo "input: $SNAP ($input_mb MB; 8 processes, 1000 frontends, 1000 backends, 20 servers each)"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
echo "load average before the runs: $load_before (1, 5, 15 min)"
printf '%-10s %12s %14s %10s %s\n' side wall peak_RSS_MB lines "self-reported processing (s)"
for side in original ours; do
    wall=$(field "Elapsed (wall clock) time (h:mm:ss or m:ss)" "$WORK/$side.time")
    rss_kb=$(field "Maximum resident set size (kbytes)" "$WORK/$side.time")
    lines=$(wc -l < "$WORK/$side.txt")
    self=$(sed -n "s/.*\.haproxystats\.WallClockTimeAllStats \([0-9.]*\) .*/\1/p" "$WORK/$side.txt" | head -1)
    printf '%-10s %12s %14s %10s %s\n' "$side" "$wall" "$((rss_kb / 1024))" "$lines" "${self:-?}"
done
python3 - "$original_us" "${ours_us[@]}" <<'PY'
import statistics, sys
original, ours = int(sys.argv[1]), sorted(int(x) for x in sys.argv[2:])
lo, med = ours[0], statistics.median(ours)
print(f"wall to the microsecond: original {original / 1e6:.3f} s; ours over {len(ours)} runs "
      f"min {lo / 1e3:.1f} ms, median {med / 1e3:.1f} ms "
      f"(all: {', '.join(f'{x / 1e3:.1f}' for x in ours)})")
print(f"ratio original/ours: {original / med:.0f}x at our median, {original / lo:.0f}x at our min")
PY
echo "outputs and /usr/bin/time reports in $WORK (ours: the last run)"
