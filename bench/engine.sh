#!/usr/bin/env bash
# Engine benchmark (BENCHMARKS.md, "Engine (replay)").
#
# Generates the benchmark snapshot with tools/gen_snapshot.py (8 HAProxy
# processes, 1000 frontends, 1000 backends, 20 servers per backend: ~65 MB of
# `show stat` CSV), builds the release bench binary, then:
#   1. `cargo bench --bench engine` with HS_BENCH_RUNS runs (min / median wall);
#   2. one run (HS_BENCH_RUNS=1) under `/usr/bin/time -v`: wall time and peak
#      RSS of the whole process (snapshot read, aggregation, output streamed).
# `aggr-server-metrics` is on. Usage: bench/engine.sh [RUNS] (default 15).
# HS_BENCH_ROOT overrides where the snapshot is generated (default
# $TMPDIR/hs-engine-bench; reused when it already exists).
set -euo pipefail

cd "$(dirname "$0")/.."
runs="${1:-15}"
root="${HS_BENCH_ROOT:-${TMPDIR:-/tmp}/hs-engine-bench}"
dir="$root/1700000000"

if [ ! -e "$dir/admin8.sock_stat" ]; then
    echo "== generating $dir"
    python3 tools/gen_snapshot.py --out "$root" --processes 8 \
        --frontends 1000 --backends 1000 --servers 20
fi
mb=$(du -cm "$dir"/*_stat | tail -1 | cut -f1)
echo "== input: $dir ($mb MB of show stat CSV)"

echo "== building (release)"
cargo bench --bench engine --no-run
# The bench executable itself, so that /usr/bin/time measures it, not cargo.
exe=$(cargo bench --bench engine --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "engine" and m.get("executable"):
        print(m["executable"])')

echo "== $runs runs"
HS_BENCH_DIR="$dir" HS_BENCH_RUNS="$runs" "$exe"

echo "== one run under /usr/bin/time -v"
HS_BENCH_DIR="$dir" HS_BENCH_RUNS=1 /usr/bin/time -v "$exe" 2>&1 |
    grep -E 'engine/|lines |Elapsed \(wall|Maximum resident'
