#!/usr/bin/env bash
# Where each vtepd's data-plane worker spends its time while iperf3 runs through two VTEPs:
# `perf record -a -g` over a window of an iperf3 run in bench/tcp/run.sh's lab, then each
# site's worker thread (the thread of its vtepd with the most samples) broken down by what
# its call stacks show (bench/tcp/profile-breakdown.py): vtepd's own code, the system calls
# it makes, and the kernel work those calls run inline. On veth the far site's receive path
# (IP input, the tunnel socket's queue) runs in the sender's system call, so the sender's
# worker pays for both ends of every underlay packet; the breakdown names that part.
#
# PAIR (default vtepd-vtepd-gre; vtepd-vtepd for VXLAN), OFFLOADS (on), STREAMS (1),
# DIRECTION (ab: host A sends; ba: host B sends), WINDOW (perf's seconds, default 4; iperf3
# runs WINDOW + 3). VTEPD=path as bench/tcp/run.sh (needs a build with symbols, as
# `swift build -c release` makes). Prints the table; keeps perf.data in OUT (default: a
# temporary directory, removed) when OUT is given. Root; namespaces $P* (default vgprof),
# removed on exit as bench/tcp/run.sh's are.
set -euo pipefail

PAIR=${PAIR:-vtepd-vtepd-gre}
OFFLOADS=${OFFLOADS:-on}
STREAMS=${STREAMS:-1}
DIRECTION=${DIRECTION:-ab}
WINDOW=${WINDOW:-4}
P=${P:-vgprof}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/topology.sh
source "$ROOT/bench/lib/topology.sh"

lab_init profile iperf3 perf
lab_pair_valid "$PAIR" && lab_pair_has_vtepd "$PAIR" ||
    die "PAIR must have a vtepd site (vtepd-kernel, vtepd-vtepd, vtepd-vtepd-gre), not '$PAIR'"
case $OFFLOADS in on | off) ;; *) die "OFFLOADS is on or off, not '$OFFLOADS'" ;; esac
case $DIRECTION in ab | ba) ;; *) die "DIRECTION is ab or ba, not '$DIRECTION'" ;; esac
[[ $WINDOW =~ ^[0-9]+$ ]] && [ "$WINDOW" -gt 0 ] || die "WINDOW must be whole seconds"
lab_use_vtepd
OUT=${OUT:-}
data=${OUT:-$WORK}
mkdir -p "$data"

lab_up "$PAIR" "$OFFLOADS"
[ -z "$LAB_ERROR" ] || die "$LAB_ERROR"
lab_start hb "$WORK/iperf3-server.log" iperf3 --server --one-off --bind "$HOST_B"
for _ in $(seq 100); do
    ip netns exec "${P}hb" ss -Hltn sport = :5201 | grep -q . && break
    sleep 0.05
done
args=(--client "$HOST_B" --time $((WINDOW + 3)) --parallel "$STREAMS" --json)
[ "$DIRECTION" = ab ] || args+=(--reverse)
lab_start ha "$WORK/iperf3.json" iperf3 "${args[@]}"
client=$LAB_PID
sleep 1.5
perf record -q -g -a -o "$data/perf.data" -- sleep "$WINDOW" >/dev/null 2>&1
wait "$client" || true
gbits=$(python3 -c 'import json, sys
try: print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("failed")' "$WORK/iperf3.json")

sites=()
for i in "${!LAB_VTEPD_PIDS[@]}"; do sites+=("${LAB_VTEPD_SITES[$i]}=${LAB_VTEPD_PIDS[$i]}"); done
echo "# $PAIR, offloads $OFFLOADS, $STREAMS stream(s), $([ "$DIRECTION" = ab ] && echo "A→B" || echo "B→A"): $gbits Gbit/s"
echo "vtepd: $VTEPD_BUILT. $(lab_machine) Load average: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
perf script -i "$data/perf.data" -F pid,tid,ip,sym 2>/dev/null |
    python3 "$ROOT/bench/tcp/profile-breakdown.py" "${sites[@]}"
