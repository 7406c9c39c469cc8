#!/usr/bin/env bash
# Runs every test file that talks to a Kafka broker (tansu) ROUNDS times in
# a row, to find the tests that pass only by luck. Each failed run's output
# is kept in LOG_DIR; the last line counts runs, as "N passed, M failed".
#
#   contrib/loop-kafka-tests.sh [ROUNDS] [LOG_DIR]     (default 10, a temp dir)
#
# Run it with a `cargo build` beside it (another checkout, another target
# dir) to test under load, as the README's Development section says.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-10}
logs=${2:-$(mktemp -d /tmp/hs-kafka-loop.XXXXXX)}
mkdir -p "$logs"
files=(central_e2e central_clusters central central_state_unreadable edge kafka_e2e kafka_process sink_kafka tansu_fetch)

cargo test --quiet --no-run $(printf -- '--test %s ' "${files[@]}") >/dev/null
passed=0
failed=0
for round in $(seq 1 "$rounds"); do
    for file in "${files[@]}"; do
        started=$(date +%s)
        if cargo test --quiet --test "$file" >"$logs/$file.$round.log" 2>&1; then
            passed=$((passed + 1))
            rm -f "$logs/$file.$round.log"
            echo "round $round: $file ok ($(($(date +%s) - started)) s)"
        else
            failed=$((failed + 1))
            echo "round $round: $file FAILED ($(($(date +%s) - started)) s): $logs/$file.$round.log"
        fi
    done
done
echo "loop-kafka-tests: $rounds rounds of ${#files[@]} files, failed runs' output in $logs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
