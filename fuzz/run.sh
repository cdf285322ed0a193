#!/usr/bin/env bash
# libFuzzer over every parser that meets input from the network, an operator or a controller,
# and over the forwarding decision (Tests/FuzzChecks: control, shell, json, packet, dhcp,
# decision, bfd). Builds the checks and what they use with libFuzzer and AddressSanitizer
# (release, in .build-fuzz), links one binary per target
# with swiftc (SwiftPM renames an executable's main, which libFuzzer provides), and runs each
# for SECONDS (default 60) over a scratch copy of its corpus: the repository's seeds in
# fuzz/corpus/TARGET stay as they are. A crash is copied to fuzz/crashes/TARGET, where
# `make test` (FuzzReplayTests) replays it once fixed. Prints executions per target.
#
#   fuzz/run.sh [SECONDS]            every target
#   TARGETS="json shell" fuzz/run.sh 600
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${1:-60}
TARGETS=${TARGETS:-control shell json packet dhcp decision bfd}
SCRATCH=$ROOT/.build-fuzz
WORK=$(mktemp -d /tmp/vtep-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# -sanitize=fuzzer alone leaves a module of several files without coverage counters (Swift
# 6.3: a multi-file module, whole-module or not, gets none; a one-file module does), and
# libFuzzer then sees only the entry point: ask for the coverage libFuzzer needs explicitly.
swift build --package-path "$ROOT" -c release --sanitize=fuzzer --sanitize=address \
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
    --scratch-path "$SCRATCH" --target FuzzChecks >&2
# Resolved after the build: in a fresh scratch directory the `release` link does not exist
# before it, and find(1) does not descend into a link given as its starting point.
BIN=$(readlink -f "$SCRATCH/release")
# Every object the checks' modules were built into (C shims included), none of an
# executable's or a test's.
mapfile -t OBJECTS < <(find "$BIN" -path '*.build/*.o' \
    ! -path '*/vtepd.build/*' ! -path '*/vtepsh.build/*' ! -path '*/vtep-dhcp-event.build/*' \
    ! -path '*Tests.build/*' ! -path '*-tool.build/*' ! -path '*/ModuleCache/*' | sort)

# The C modules those objects import (NIO's shims, libnl, libmnl, libcrypt, ours), as SwiftPM
# passes them to the compiler.
CLANG=()
while IFS= read -r map; do
    CLANG+=(-Xcc "-fmodule-map-file=$map" -Xcc -I -Xcc "$(dirname "$map")")
done < <({
    # C targets' maps SwiftPM wrote (X.build/module.modulemap), not Swift modules' headers.
    find "$BIN" -mindepth 2 -maxdepth 2 -name module.modulemap ! -path '*-tool.build/*'
    find "$SCRATCH/checkouts" "$ROOT/Sources" -name module.modulemap
} 2>/dev/null | sort)
while IFS= read -r include; do
    CLANG+=(-Xcc -I -Xcc "$include")
done < <(find "$SCRATCH/checkouts" "$ROOT/Sources" -type d -name include -path '*/Sources/*' \
    2>/dev/null | sort)
CLANG+=(-Xcc -I/usr/include/libnl3)

for target in $TARGETS; do
    [ -d "$ROOT/fuzz/corpus/$target" ] || { echo "no corpus for $target" >&2; exit 2; }
    cat > "$WORK/$target.swift" <<SWIFT
import FuzzChecks
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzChecks.targets["$target"]!(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
SWIFT
    swiftc -O -sanitize=fuzzer,address -parse-as-library -I "$BIN/Modules" "${CLANG[@]}" \
        -module-cache-path "$WORK/cache" "$WORK/$target.swift" "${OBJECTS[@]}" \
        -lnl-route-3 -lnl-3 -lmnl -lcrypt -o "$WORK/fuzz-$target" > "$WORK/link-$target" 2>&1 ||
        { cat "$WORK/link-$target" >&2; exit 1; }
    mkdir -p "$WORK/corpus-$target" "$ROOT/fuzz/crashes/$target"
    cp "$ROOT/fuzz/corpus/$target"/* "$WORK/corpus-$target/"
    status=0
    # No leak detection: the Swift runtime's metadata caches and lazily initialised globals
    # (the command tree) are reported as leaks on exit, which would stop every run at once.
    (cd "$WORK" && ASAN_OPTIONS=detect_leaks=0 "./fuzz-$target" \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -detect_leaks=0 \
        -artifact_prefix="$ROOT/fuzz/crashes/$target/" "corpus-$target" \
        > "$WORK/log-$target" 2>&1) || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$WORK/log-$target" | grep -o '[0-9]*$' || echo "?")
    if [ "$status" -ne 0 ]; then
        echo "$target: FAILED after $runs executions (exit $status); see fuzz/crashes/$target" >&2
        tail -n 40 "$WORK/log-$target" >&2
        exit 1
    fi
    echo "$target: $runs executions in ${SECONDS_EACH}s, no crash"
done
