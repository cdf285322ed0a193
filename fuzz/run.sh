#!/usr/bin/env bash
# libFuzzer over every parser that meets input from the network, an operator, a controller or
# the kernel, and over the forwarding decision (Tests/FuzzChecks; docs/fuzzing.md). Builds the
# checks and what they use with libFuzzer and AddressSanitizer (release, in .build-fuzz), links
# one binary per target with swiftc (SwiftPM renames an executable's main, which libFuzzer
# provides) into .build-fuzz/fuzz/bin, and runs each over its working corpus,
# .build-fuzz/fuzz/corpus/TARGET: kept between runs (outside git), so runs add up; the
# repository's seeds (fuzz/corpus/TARGET) are copied into it first and stay as they are. A
# crash is copied to fuzz/crashes/TARGET, where `make test` (FuzzReplayTests) replays it once
# fixed. Prints executions, CPU seconds, coverage and corpus size per target; the full log of
# each run is .build-fuzz/fuzz/log/TARGET.log (its PID in TARGET.pid while it runs).
#
#   fuzz/run.sh [SECONDS]                 every target, SECONDS of wall time each (default 60)
#   TARGETS="json shell" fuzz/run.sh 600
#   FUZZ_CPU_SECONDS=1800 FUZZ_PARALLEL=2 FUZZ_NICE=10 TARGETS="packet decision" fuzz/run.sh
#       until each fuzzer has used 1800 s of CPU (user + system, its own), two at a time
#   FUZZ_BUILD=0 ...                      reuse the binaries of the last build
#   fuzz/run.sh build                     only build and link
#   fuzz/run.sh status                    each target's last or current run: PID if running,
#                                         CPU seconds so far, executions, cov/ft, corpus size
#   fuzz/run.sh merge                     add the working corpus's inputs that reach new
#                                         coverage to fuzz/corpus/TARGET (minimised; commit them)
#
# The CPU budget is read from /proc/PID/stat, not libFuzzer's -max_total_time (wall time): on
# a shared machine a wall-time run says little about how much fuzzing was done. When the
# budget is spent the fuzzer gets SIGINT and prints its final statistics.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=run
if [ "${1:-}" = merge ] || [ "${1:-}" = build ] || [ "${1:-}" = status ]; then
    MODE=$1
    shift
fi
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'
    exit 0
fi
SECONDS_EACH=${1:-60}
[[ $SECONDS_EACH =~ ^[0-9]+$ ]] || {
    echo "usage: fuzz/run.sh [build | status | merge] [SECONDS] (fuzz/run.sh --help)" >&2
    exit 2
}
CPU_BUDGET=${FUZZ_CPU_SECONDS:-}
PARALLEL=${FUZZ_PARALLEL:-1}
NICENESS=${FUZZ_NICE:-0}
TARGETS=${TARGETS:-control shell json ovsdb-rows netlink packet dhcp decision bfd offload worker}
SCRATCH=$ROOT/.build-fuzz
BINARIES=$SCRATCH/fuzz/bin
CORPORA=$SCRATCH/fuzz/corpus
LOGS=$SCRATCH/fuzz/log
WORK=$(mktemp -d /tmp/vtep-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BINARIES" "$CORPORA" "$LOGS"

build() {
    # -sanitize=fuzzer alone leaves a module of several files without coverage counters (Swift
    # 6.3: a multi-file module, whole-module or not, gets none; a one-file module does), and
    # libFuzzer then sees only the entry point: ask for the coverage libFuzzer needs explicitly.
    swift build --package-path "$ROOT" -c release --sanitize=fuzzer --sanitize=address \
        -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
        --scratch-path "$SCRATCH" --target FuzzChecks >&2
    # Resolved after the build: in a fresh scratch directory the `release` link does not exist
    # before it, and find(1) does not descend into a link given as its starting point.
    local bin objects clang map include
    bin=$(readlink -f "$SCRATCH/release")
    # Every object the checks' modules were built into (C shims included), none of an
    # executable's or a test's.
    mapfile -t objects < <(find "$bin" -path '*.build/*.o' \
        ! -path '*/vtepd.build/*' ! -path '*/vtepsh.build/*' ! -path '*/vtep-dhcp-event.build/*' \
        ! -path '*Tests.build/*' ! -path '*-tool.build/*' ! -path '*/ModuleCache/*' | sort)
    # The C modules those objects import (NIO's shims, libnl, libmnl, libcrypt, ours), as
    # SwiftPM passes them to the compiler.
    clang=()
    while IFS= read -r map; do
        clang+=(-Xcc "-fmodule-map-file=$map" -Xcc -I -Xcc "$(dirname "$map")")
    done < <({
        # C targets' maps SwiftPM wrote (X.build/module.modulemap), not Swift modules' headers.
        find "$bin" -mindepth 2 -maxdepth 2 -name module.modulemap ! -path '*-tool.build/*'
        find "$SCRATCH/checkouts" "$ROOT/Sources" -name module.modulemap
    } 2>/dev/null | sort)
    while IFS= read -r include; do
        clang+=(-Xcc -I -Xcc "$include")
    done < <(find "$SCRATCH/checkouts" "$ROOT/Sources" -type d -name include -path '*/Sources/*' \
        2>/dev/null | sort)
    clang+=(-Xcc -I/usr/include/libnl3)
    for target in $TARGETS; do
        cat > "$WORK/$target.swift" <<SWIFT
import FuzzChecks
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzChecks.targets["$target"]!(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
SWIFT
        swiftc -O -sanitize=fuzzer,address -parse-as-library -I "$bin/Modules" "${clang[@]}" \
            -module-cache-path "$WORK/cache" "$WORK/$target.swift" "${objects[@]}" \
            -lnl-route-3 -lnl-3 -lmnl -lcrypt -o "$WORK/fuzz-$target" > "$WORK/link-$target" 2>&1 ||
            { cat "$WORK/link-$target" >&2; exit 1; }
        # A new file, not the old one rewritten: a run still using the old binary goes on.
        mv -f "$WORK/fuzz-$target" "$BINARIES/fuzz-$target"
    done
}

# User + system CPU seconds process $1 has used (fields 14 and 15 of /proc/PID/stat, in clock
# ticks; the command name in field 2 may hold spaces, so count from the closing parenthesis).
cpu_seconds() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $(((${12} + ${13}) / TICKS))
}
TICKS=$(getconf CLK_TCK)

# One target over its working corpus, until SECONDS_EACH of wall time or CPU_BUDGET of CPU.
fuzz_one() {
    local target=$1 log=$LOGS/$1.log pid cpu=0 status=0 limit
    mkdir -p "$CORPORA/$target" "$ROOT/fuzz/crashes/$target"
    local seed
    for seed in "$ROOT/fuzz/corpus/$target"/*; do
        [ -e "$CORPORA/$target/${seed##*/}" ] || cp "$seed" "$CORPORA/$target/"
    done
    limit=(-max_total_time="$SECONDS_EACH")
    [ -n "$CPU_BUDGET" ] && limit=()
    # No leak detection: the Swift runtime's metadata caches and lazily initialised globals
    # (the command tree) are reported as leaks on exit, which would stop every run at once.
    # An input that takes a minute (libFuzzer's default: 20) is a hang worth keeping, with
    # room for a loaded machine.
    (cd "$WORK" && ASAN_OPTIONS=detect_leaks=0 exec nice -n "$NICENESS" \
        "$BINARIES/fuzz-$target" "${limit[@]}" -timeout=60 -print_final_stats=1 -detect_leaks=0 \
        -artifact_prefix="$ROOT/fuzz/crashes/$target/" "$CORPORA/$target") > "$log" 2>&1 &
    pid=$!
    echo "$pid" > "$LOGS/$target.pid"
    while kill -0 "$pid" 2>/dev/null; do
        cpu=$(cpu_seconds "$pid") || break
        if [ -n "$CPU_BUDGET" ] && [ "$cpu" -ge "$CPU_BUDGET" ]; then
            kill -INT "$pid"
            break
        fi
        sleep 5
    done
    wait "$pid" || status=$?
    rm -f "$LOGS/$target.pid"
    local runs coverage files size
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    coverage=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
    files=$(find "$CORPORA/$target" -type f | wc -l)
    size=$(du -sk --apparent-size "$CORPORA/$target" | cut -f1)
    # 72: libFuzzer's exit status after SIGINT, the end of a CPU-budget run.
    if [ "$status" -ne 0 ] && ! { [ -n "$CPU_BUDGET" ] && [ "$status" -eq 72 ] &&
        ! grep -q 'ERROR: libFuzzer\|ERROR: AddressSanitizer\|SUMMARY: ' "$log"; }; then
        echo "$target: FAILED after $runs executions, ${cpu}s CPU (exit $status); see" \
            "fuzz/crashes/$target and $log" >&2
        tail -n 40 "$log" >&2
        return 1
    fi
    echo "$target: $runs executions, ${cpu}s CPU, $coverage, corpus $files files ${size} KB," \
        "no crash"
}

# Inputs of the working corpus that reach coverage fuzz/corpus/TARGET does not, added to it.
merge_one() {
    local target=$1
    (cd "$WORK" && ASAN_OPTIONS=detect_leaks=0 "$BINARIES/fuzz-$target" -merge=1 \
        -detect_leaks=0 "$ROOT/fuzz/corpus/$target" "$CORPORA/$target") \
        > "$LOGS/$target-merge.log" 2>&1 ||
        { tail -n 20 "$LOGS/$target-merge.log" >&2; return 1; }
    echo "$target: fuzz/corpus/$target now $(find "$ROOT/fuzz/corpus/$target" -type f | wc -l)" \
        "files, $(du -sk --apparent-size "$ROOT/fuzz/corpus/$target" | cut -f1) KB"
}

# Where each target's run stands, from its log and, while it runs, /proc.
status_one() {
    local target=$1 log=$LOGS/$1.log state=idle cpu="" line runs coverage
    [ -f "$log" ] || { echo "$target: never run"; return; }
    if [ -f "$LOGS/$target.pid" ] && cpu=$(cpu_seconds "$(cat "$LOGS/$target.pid")"); then
        state="running as PID $(cat "$LOGS/$target.pid"), ${cpu}s CPU so far"
    fi
    line=$(grep -a -E '^#[0-9]+' "$log" | tail -n 1 || true)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' ||
        echo "${line%%[[:space:]]*}" | tr -d '#')
    coverage=$(echo "$line" | grep -o 'cov: [0-9]* ft: [0-9]*' || true)
    echo "$target: $state; $runs executions, $coverage, corpus" \
        "$(find "$CORPORA/$target" -type f 2>/dev/null | wc -l) files" \
        "$(du -sk --apparent-size "$CORPORA/$target" 2>/dev/null | cut -f1) KB"
}

# The whole run in one function, called and exited on one line: bash has then read all of
# it before it starts, and an edit of this file cannot change a run that is under way.
main() {
    for target in $TARGETS; do
        [ -d "$ROOT/fuzz/corpus/$target" ] || { echo "no corpus for $target" >&2; return 2; }
    done
    if [ "$MODE" = status ]; then
        for target in $TARGETS; do status_one "$target"; done
        return 0
    fi
    [ "${FUZZ_BUILD:-1}" = 0 ] || build
    [ "$MODE" = build ] && return 0
    if [ "$MODE" = merge ]; then
        for target in $TARGETS; do merge_one "$target"; done
        return 0
    fi
    failed=0
    running=0
    for target in $TARGETS; do
        if [ "$running" -ge "$PARALLEL" ]; then
            wait -n || failed=1
            running=$((running - 1))
        fi
        fuzz_one "$target" &
        running=$((running + 1))
    done
    while [ "$running" -gt 0 ]; do
        wait -n || failed=1
        running=$((running - 1))
    done
    return "$failed"
}
main; exit
