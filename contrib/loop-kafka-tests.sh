#!/usr/bin/env bash
# Runs every test file that talks to a Kafka broker (tansu) ROUNDS times in
# a row, LANES (default 3) at a time as CI does, to find the tests that pass
# only by luck. A failed round's output is kept in LOG_DIR; the last line
# counts the runs of files, as "N passed, M failed".
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
# The files contrib/run-tests.py knows to start tansu (its KAFKA list).
mapfile -t files < <(contrib/run-tests.py --only-kafka --list 2>/dev/null)
[ "${#files[@]}" -gt 0 ] || { echo "loop-kafka-tests: no Kafka test binary found" >&2; exit 1; }

passed=0
failed=0
for round in $(seq 1 "$rounds"); do
    # As CI runs them: several binaries at a time (contrib/run-tests.py).
    log="$logs/round.$round.log"
    contrib/run-tests.py --lanes "${LANES:-3}" --only-kafka >"$log" 2>&1 || true
    ok=$(grep -c '^PASS ' "$log" || true)
    bad=$(grep -c '^---- FAIL ' "$log" || true)
    if [ $((ok + bad)) -ne ${#files[@]} ]; then
        echo "round $round: run-tests.py reported $ok passed and $bad failed of ${#files[@]}: $log" >&2
        bad=$((${#files[@]} - ok))
    fi
    passed=$((passed + ok))
    failed=$((failed + bad))
    grep -E '^(PASS|---- FAIL) ' "$log" | sed "s/^/round $round: /"
    [ "$bad" -eq 0 ] && rm -f "$log"
done
echo "loop-kafka-tests: $rounds rounds of ${#files[@]} files, ${LANES:-3} at a time; failed rounds' output in $logs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
