#!/usr/bin/env bash
# The data-plane worker's CPU time per ping round trip: vtepd at site A, the kernel's vxlan at
# site B (bench/lib/topology.sh, default offloads), COUNT pings (default 3000) INTERVAL
# seconds apart (default 0.002) from host A to host B; the worker thread's (vtepd-datapath)
# sum_exec_runtime from /proc/PID/task/TID/schedstat before and after, divided by the pings.
# On a veth the peer's path runs inside the worker's sends, so this is vtepd's own work plus
# the kernel's work it carries. Less noisy than the round-trip time on a shared machine, so
# alternate builds with VTEPD=path and compare. Namespaces $P* (default vgcp), removed on exit.
set -euo pipefail
COUNT=${COUNT:-3000}
INTERVAL=${INTERVAL:-0.002}
P=${P:-vgcp}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/topology.sh
source "$ROOT/bench/lib/topology.sh"
lab_init latency-cpu
lab_use_vtepd
lab_up vtepd-kernel on
[ -z "$LAB_ERROR" ] || die "$LAB_ERROR"
pid=${LAB_VTEPD_PIDS[0]}
tid=$(grep -l '^vtepd-datapath$' /proc/"$pid"/task/*/comm | head -1 | cut -d/ -f5)
[ -n "$tid" ] || die "no vtepd-datapath thread in vtepd $pid"
ip netns exec "${P}ha" ping -c 100 -i "$INTERVAL" -q "$HOST_B" >/dev/null
before=$(cut -d' ' -f1 /proc/"$pid"/task/"$tid"/schedstat)
ip netns exec "${P}ha" ping -c "$COUNT" -i "$INTERVAL" -q "$HOST_B" >/dev/null
after=$(cut -d' ' -f1 /proc/"$pid"/task/"$tid"/schedstat)
echo "vtepd worker CPU per round trip: $(((after - before) / COUNT)) ns ($COUNT pings, $VTEPD)"
lab_down
