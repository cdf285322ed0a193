#!/usr/bin/env bash
# Checks the release build's per-frame functions for ARC traffic and heap allocation: every
# function below is disassembled and must contain no call to swift_retain/swift_release (or
# their variants), swift_allocObject, malloc or an existential-boxing runtime entry.
# package-benchmark's retain/release counters need a runtime interposer this toolchain mirror
# does not ship, so this reads the machine code instead. `make test` runs it.
set -euo pipefail
cd "$(dirname "$0")"
binary=${1:-.build/x86_64-unknown-linux-gnu/release/ForwardingBenchmarks}
[ -x "$binary" ] || { echo "check-hot-path: no $binary (run: swift build -c release)" >&2; exit 1; }
# The data plane worker's per-frame transmit steps live in vtepd itself.
vtepd=${2:-../.build/release/vtepd}
[ -x "$vtepd" ] || { echo "check-hot-path: no $vtepd (run: swift build -c release --product vtepd)" >&2; exit 1; }

# Demangled names (prefix match) of the functions a frame passes through.
hot=(
    "ForwardingEngine.decide(_:frame:now:)"
    "ForwardingEngine.decide(_:superFrame:frames:now:)"
    "ForwardingEngine.greIngress("
    "ForwardingEngine.prefetch(_:frame:)"
    "ForwardingEngine.fromTunnel("
    "MACTable.lookupValue(_:now:)"
    "MACTable.learnValue(_:_:now:)"
    "MACTable.lookup(_:on:now:into:)"
    "MACTable.lookup(_:on:now:)"
    "EthernetHeader.parse("
    "FlowHasher.hash("
    "OuterHeaderTemplate.stamp("
    "SuperFrame.init("
    "SuperFrame.write("
    "TCPCoalescer.start("
    "TCPCoalescer.append("
    "TCPCoalescer.finish("
    "NeighbourDiscovery.message(in:header:)"
    "NeighbourDiscovery.reply(to:header:answering:into:)"
    "NeighbourTable.learn("
)
# What the worker does per frame once a batch is in hand: deliver to a port (merging TCP
# segments), flood, encapsulate (one frame, a super-frame's segments, a UDP GSO train); and
# per batch, the receive loops (which also run the per-frame steps above) and the flushes.
worker_hot=(
    "DataPlaneWorker.toPort("
    "DataPlaneWorker.closeCoalescing("
    "DataPlaneWorker.flood("
    "DataPlaneWorker.reply("
    "DataPlaneWorker.toTunnel("
    "DataPlaneWorker.toTunnelAsTrains("
    "DataPlaneWorker.toTrain("
    "DataPlaneWorker.closeTrain("
    "DataPlaneWorker.toTunnelWhole("
    "TunnelGSOPort.send("
    "DataPlaneWorker.fromAccess(superFrame:"
    "DataPlaneWorker.fromAccess(_:into:now:)"
    "DataPlaneWorker.fromTunnel("
    "DataPlaneWorker.fromGRE("
    "DataPlaneWorker.fromVXLANRing("
    "DataPlaneWorker.fromBFDChannel("
    "DataPlaneWorker.flushPort("
    "DataPlaneWorker.flushUnderlay("
    "DataPlaneWorker.flushTrains("
    "AccessPort.receive(into:)"
    "UDPTunnelSocket.receive(into:)"
    "RawTunnelSocket.receive(into:)"
    "UnderlayPort.send("
    "UnderlayPort.sendTrains("
    "AccessPort.receiveFromRing("
    "AccessPort.placeInRing("
    "AccessPort.drainTransmitRing("
)
forbidden='swift_(retain|release|unknownObject(Retain|Release)|bridgeObject(Retain|Release)|allocObject|allocBox|allocExistentialBox)|<malloc|<calloc|<realloc|<_Znwm'

checked=0
failed=0
# check BINARY NAME...: every function whose demangled name starts with a NAME.
check() {
local binary=$1 sorted symbols lines name address start next stop code calls
shift
sorted=$(nm -n --defined-only "$binary")
symbols=$(swift demangle --simplified <<<"$sorted")
for name in "$@"; do
    lines=$(grep -E '^[0-9a-f]+ [tT] ' <<<"$symbols" | grep -F -- "$name" |
        grep -v -E "(thunk|metadata|descriptor|getter|setter|closure)" || true)
    if [ -z "$lines" ]; then
        echo "check-hot-path: FAIL: $name not found in $binary (renamed? inlined everywhere?)"
        failed=1
        continue
    fi
    while read -r address _ _; do
        start=$((16#$address))
        # The function ends where the next symbol starts.
        # Compare as strings: awk would read an address like 2e8 as a number.
        next=$(awk -v a="$address" '($1 "") > (a "") {print $1; exit}' <<<"$sorted")
        stop=$((16#$next))
        code=$(objdump -d --no-show-raw-insn --start-address=$start --stop-address=$stop "$binary")
        calls=$(grep -E '\bcall' <<<"$code" | grep -E "$forbidden" || true)
        checked=$((checked + 1))
        if [ -n "$calls" ]; then
            echo "check-hot-path: FAIL: $name calls:"
            echo "$calls" | sed 's/^/    /'
            failed=1
        fi
    done <<<"$lines"
done
}
check "$binary" "${hot[@]}"
check "$vtepd" "${worker_hot[@]}"
if [ "$failed" -ne 0 ]; then exit 1; fi
echo "check-hot-path: $checked hot-path functions: no ARC traffic, no heap allocation"
