#!/usr/bin/env bash
# TCP throughput through two VTEPs with iperf3, every pair measured side by side in one run.
#
# Topology (bench/lib/topology.sh, the layout of `make demo`):
#
#   host A --veth-- site A (VTEP) ==veth underlay, MTU 1500== site B (VTEP) --veth-- host B
#   10.0.0.1, inner MTU 1450                                                     10.0.0.2
#
# MODES (default all) chooses the pairs of VTEPs: kernel-kernel (Linux vxlan, dstport 4789,
# VNI 100, + bridge at both sites), vtepd-kernel (vtepd at A), vtepd-vtepd, vtepd-vtepd-gre
# (logical switch other_config:encapsulation=gre; this kernel has no gretap, so no kernel GRE
# row). OFFLOADS (default "on off"): "on" leaves every veth's default offloads alone, "off"
# turns tx/tso/gso/gro off on all six veths (a NIC without offloads). Each pair and offload
# mode gets a fresh lab; in it, iperf3 runs with STREAMS (default "1 4") parallel streams, host
# A to host B and host B to host A (-R), DURATION seconds each (default 4). A test that errs
# or outlives DURATION + 20 s is recorded as failed, the lab is rebuilt and the run goes on.
# Gbit/s is end.sum_received.bits_per_second, retransmissions end.sum_sent.retransmits of
# iperf3 -J; "vs kernel" divides a row by the kernel-kernel row of the same offloads, streams
# and direction. "vtepd ns/segment" is what each vtepd cost per TCP segment carried: the CPU
# time of all its threads while the iperf3 client ran (/proc/PID/task/*/schedstat, as
# bench/pps/run.sh counts it; the kernel's work done in its system calls included) over
# end.sum_received.bytes / 1,398 (the MSS at inner MTU 1450 with TCP timestamps), site A's
# then site B's. It compares builds and encapsulations on a busy machine, where Gbit/s says
# more about the other load than about vtepd.
#
# VTEPD=path (default: the checkout's .build/release/vtepd, built by nobody here) and
# VTEPD_LABEL ("release build of 6e9d501") say which vtepd. The table goes to standard output
# and to RESULTS (default bench/results/tcp-<date>.md). Namespaces and links are named $P*
# (default vgtcp); every process started here is stopped by PID and every namespace deleted on
# exit, also on failure or Ctrl-C.
set -euo pipefail

MODES=${MODES:-kernel-kernel vtepd-kernel vtepd-vtepd vtepd-vtepd-gre}
OFFLOADS=${OFFLOADS:-on off}
STREAMS=${STREAMS:-1 4}
DURATION=${DURATION:-4}
P=${P:-vgtcp}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${RESULTS:-$ROOT/bench/results/tcp-$(date +%Y-%m-%d).md}
# shellcheck source=../lib/topology.sh
source "$ROOT/bench/lib/topology.sh"

lab_init tcp iperf3
need_vtepd=
for pair in $MODES; do
    lab_pair_valid "$pair" || die "unknown pair '$pair' in MODES (kernel-kernel, vtepd-kernel, vtepd-vtepd, vtepd-vtepd-gre)"
    lab_pair_has_vtepd "$pair" && need_vtepd=1
done
for o in $OFFLOADS; do
    case $o in on | off) ;; *) die "OFFLOADS holds on and/or off, not '$o'" ;; esac
done
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -gt 0 ] || die "DURATION must be whole seconds"
[ -z "$need_vtepd" ] || lab_use_vtepd

# cpu_ns PID: the CPU time of every thread of process PID so far, in nanoseconds (0 once it
# is gone), read as bench/pps/run.sh's dut_cpu_ns reads it.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.0f", t}'
}

# iperf3_test STREAMS DIRECTION(ab|ba): one iperf3 run from host A (with -R for ba); sets
# RESULT to "GBITS RETRANSMITS" or "failed REASON", and COST to vtepd's ns per segment
# ("A 1234, B 567"; a site without vtepd left out) or empty.
iperf3_test() {
    local streams=$1 direction=$2 server client rc=0 args pid before=() after=()
    COST=
    lab_start hb "$WORK/iperf3-server.log" iperf3 --server --one-off --bind "$HOST_B"
    server=$LAB_PID
    for _ in $(seq 100); do
        ip netns exec "${P}hb" ss -Hltn sport = :5201 | grep -q . && break
        kill -0 "$server" 2>/dev/null || break
        sleep 0.05
    done
    if ! ip netns exec "${P}hb" ss -Hltn sport = :5201 | grep -q .; then
        stop_pid "$server"
        RESULT="failed iperf3 server did not listen"
        return 0
    fi
    args=(--client "$HOST_B" --time "$DURATION" --parallel "$streams" --json --connect-timeout 3000)
    [ "$direction" = ab ] || args+=(--reverse)
    for pid in "${LAB_VTEPD_PIDS[@]}"; do before+=("$(cpu_ns "$pid")"); done
    lab_start ha "$WORK/iperf3.json" timeout -k 2 $((DURATION + 20)) iperf3 "${args[@]}"
    client=$LAB_PID
    wait "$client" || rc=$?
    for pid in "${LAB_VTEPD_PIDS[@]}"; do after+=("$(cpu_ns "$pid")"); done
    stop_pid "$server"
    RESULT=$(python3 - "$WORK/iperf3.json" "$rc" "$((DURATION + 20))" <<'PY'
import json, sys
path, rc, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if rc == 124 or rc == 137:
    print(f"failed timeout: no result in {limit} s"); sys.exit()
try:
    d = json.load(open(path))
except Exception as e:
    print(f"failed iperf3 exit {rc}, no JSON"); sys.exit()
if d.get("error"):
    print("failed iperf3: " + d["error"].replace("|", "/")); sys.exit()
try:
    bps = d["end"]["sum_received"]["bits_per_second"]
    rtx = d["end"]["sum_sent"].get("retransmits", "")
except KeyError:
    print(f"failed iperf3 exit {rc}, no end summary"); sys.exit()
print(f"{bps / 1e9:.2f} {rtx}")
PY
)
    local i used bytes segments
    bytes=$(python3 -c 'import json, sys
try: print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bytes"]))
except Exception: print(0)' "$WORK/iperf3.json")
    segments=$((bytes / 1398))
    [ "$segments" -gt 0 ] || return 0
    for i in "${!LAB_VTEPD_SITES[@]}"; do
        used=$((${after[$i]:-0} - ${before[$i]:-0}))
        [ "$used" -gt 0 ] || continue
        COST+="${COST:+, }${LAB_VTEPD_SITES[$i]} $((used / segments))"
    done
}

declare -A GBITS
rows=()
for pair in $MODES; do
    for offloads in $OFFLOADS; do
        log "$pair, offloads $offloads: building the lab"
        lab_up "$pair" "$offloads"
        for streams in $STREAMS; do
            for direction in ab ba; do
                dir_label="A→B"
                [ "$direction" = ab ] || dir_label="B→A"
                note=
                if [ -n "$LAB_ERROR" ]; then
                    # One more try on a fresh lab before the test is called failed.
                    log "  lab not ready ($LAB_ERROR); rebuilding it"
                    lab_vtepd_log_tail 10
                    lab_down
                    lab_up "$pair" "$offloads"
                fi
                if [ -n "$LAB_ERROR" ]; then
                    RESULT="failed $LAB_ERROR"
                else
                    iperf3_test "$streams" "$direction"
                fi
                set -- $RESULT
                if [ "$1" = failed ]; then
                    shift
                    note=$*
                    log "  $streams stream(s) $dir_label: failed ($note)"
                    if ! lab_vtepd_alive; then
                        [[ $note == *exited* ]] || note+="; vtepd exited"
                        lab_vtepd_log_tail 10
                    fi
                    rows+=("$pair|$offloads|$streams|$dir_label|failed||$note")
                    # The next test gets a fresh lab: a wedged VTEP must not fail it too.
                    lab_down
                    lab_up "$pair" "$offloads"
                else
                    log "  $streams stream(s) $dir_label: $1 Gbit/s, ${2:-?} retransmissions${COST:+, vtepd ns/segment $COST}"
                    lab_vtepd_alive || note="vtepd exited after the test"
                    GBITS["$pair|$offloads|$streams|$dir_label"]=$1
                    rows+=("$pair|$offloads|$streams|$dir_label|$1|${2:-}|$note|$COST")
                fi
            done
        done
        lab_down
    done
done

{
    echo "# TCP throughput through two VTEPs, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "iperf3 $(iperf3 --version | awk 'NR == 1 {print $2}'), ${DURATION} s per test, host A (10.0.0.1) to host B (10.0.0.2)"
    echo "across site A — veth underlay (MTU 1500) — site B, inner MTU 1450, VXLAN VNI 100"
    echo "(bench/tcp/run.sh, topology bench/lib/topology.sh). B→A is iperf3 -R (host B sends)."
    echo "Offloads on: every veth as the kernel made it; off: tx, tso, gso, gro off on all six veths."
    echo "Gbit/s: end.sum_received.bits_per_second; retransmissions: end.sum_sent.retransmits."
    echo "vs kernel: the row's Gbit/s over kernel-kernel's with the same offloads, streams, direction."
    echo "vtepd ns/segment: CPU time of each vtepd (all threads) during the test over received bytes / 1,398."
    [ -z "$need_vtepd" ] || echo "vtepd: $VTEPD_BUILT."
    echo "$(lab_machine) Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Compare only figures taken in one run."
    echo
    echo "| pair | offloads | streams | direction | Gbit/s | retransmissions | vs kernel | vtepd ns/segment | note |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for row in "${rows[@]}"; do
        IFS='|' read -r pair offloads streams dir_label gbits rtx note cost <<<"$row"
        ratio=
        base=${GBITS["kernel-kernel|$offloads|$streams|$dir_label"]:-}
        if [ "$pair" != kernel-kernel ] && [ "$gbits" != failed ] && [ -n "$base" ]; then
            ratio=$(awk -v a="$gbits" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f×", a / b }')
        fi
        echo "| $pair | $offloads | $streams | $dir_label | $gbits | $rtx | $ratio | ${cost:-} | $note |"
    done
} >"$WORK/table.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$WORK/table.md" "$RESULTS"
cat "$WORK/table.md"
log "written to $RESULTS"
# The same table as a picture beside it (bench/lib/chart.sh, gnuplot).
chart=$("$ROOT/bench/lib/chart.sh" "$RESULTS" "TCP throughput through two VTEPs (iperf3) ($(basename "$RESULTS" .md))" \
    "Gbit/s" "pair,offloads,streams,direction" "Gbit/s")
log "chart: $chart"
