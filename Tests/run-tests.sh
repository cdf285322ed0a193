#!/usr/bin/env bash
# Runs every test (Swift Testing) and, when any fails, repeats the failures' lines at the end:
# CI shows only the tail of a long log, and the tail should say what failed.
set -uo pipefail
cd "$(dirname "$0")/.."
log=.build/test-output.log
mkdir -p .build
"${SWIFT:-swift}" test --disable-xctest "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo
    echo "=== failures (from $log) ==="
    grep -E -A3 '^✘ .*(recorded an issue|failed)|error:|Fatal error|Crash' "$log" | grep -v '^--$' | head -120
    echo "=== swift test exited $status ==="
fi
exit "$status"
