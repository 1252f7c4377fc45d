#!/usr/bin/env bash
# Runs the whole test suite N times in a row (default 30) while two CPU hogs keep both cores busy, the way a
# loaded CI machine would, and prints a summary. A flaky test shows up here long before it blocks someone's work.
#
#   scripts/stress-suite.sh [N]            # N runs of `cargo test --workspace` under load
#   STOP_ON_FAILURE=1 scripts/stress-suite.sh 30
#   HOGS=4 scripts/stress-suite.sh 10      # more (or, with HOGS=0, no) CPU hogs
#
# The suite is built once before the loop (the build is not what is being tested). Each run's output goes to
# target/stress-suite/run-<i>.log; failing runs are listed at the end with the tests that failed. The hogs are
# killed on exit, also on Ctrl-C or a failure of the script itself. Exit status: 0 when every run passed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-30}
hogs=${HOGS:-2}
stop_on_failure=${STOP_ON_FAILURE:-0}
logs=target/stress-suite
mkdir -p "$logs"
rm -f "$logs"/run-*.log

hog_pids=()
stop_hogs() {
    for pid in "${hog_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    hog_pids=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM

echo "==> building the suite"
cargo test --workspace --locked --no-run --quiet

for _ in $(seq 1 "$hogs"); do
    yes > /dev/null &
    hog_pids+=("$!")
done
echo "==> $runs runs of cargo test --workspace with $hogs CPU hogs (pids ${hog_pids[*]:-none})"

passed=0
failed=0
failed_runs=()
start=$(date +%s)
for i in $(seq 1 "$runs"); do
    log="$logs/run-$i.log"
    t0=$(date +%s)
    if cargo test --workspace --locked > "$log" 2>&1; then
        passed=$((passed + 1))
        echo "run $i/$runs: ok ($(( $(date +%s) - t0 )) s)"
    else
        failed=$((failed + 1))
        failed_runs+=("$i")
        echo "run $i/$runs: FAILED ($(( $(date +%s) - t0 )) s), see $log"
        grep -E '^test .* FAILED$|^---- .* stdout ----$|panicked at' "$log" | head -20 | sed 's/^/    /' || true
        if [ "$stop_on_failure" = 1 ]; then
            break
        fi
    fi
done
stop_hogs

echo
echo "==> summary: $passed passed, $failed failed of $((passed + failed)) runs in $(( $(date +%s) - start )) s" \
     "under $hogs CPU hogs"
if [ "$failed" -gt 0 ]; then
    echo "failed runs: ${failed_runs[*]}"
    echo "failed tests (count):"
    for i in "${failed_runs[@]}"; do
        grep -hE '^test .* FAILED$' "$logs/run-$i.log" || echo "test (build or harness failure in run $i) FAILED"
    done | sed -E 's/^test (.*) \.\.\. FAILED$/\1/; s/ FAILED$//' | sort | uniq -c | sort -rn | sed 's/^/    /'
    exit 1
fi
