#!/usr/bin/env bash
# Packets per second through a VTEP: encapsulation and decapsulation, for the Linux kernel's
# vxlan + bridge and for vtepd, measured in one run on one topology so the figures compare.
#
# Topology (../shared/reference/dut-topo.sh):
#
#   gen --veth (g / acc)--> dut --veth (ul / s)--> sink
#
# Encapsulation: trafgen in gen sends 64-byte frames (02:00:00:00:00:01 -> :02, UDP with
# incrementing source ports) into the dut's access port; the dut encapsulates them in VXLAN
# VNI 100 to 192.168.100.2 (the sink, made known by a static neighbour entry and, for the
# destination MAC, a static forwarding entry, so every frame is unicast-encapsulated, not
# flooded); counted by the sink's rx_packets. Decapsulation: trafgen in the sink sends VXLAN
# built from ../shared/reference/decap.trafgen.tmpl to the dut's underlay address; the dut
# strips it and delivers the inner frame to gen; counted by gen's rx_packets. Each figure is
# the median of WINDOWS (default 3) consecutive windows of WINDOW seconds (default 5), after
# WARMUP seconds (default 1). trafgen runs on one CPU. Before a DUT is timed, 10 frames each
# way are checked on the wire with tshark (right VNI, addresses and inner frame).
#
# MODES="ceiling kernel vtepd vtepd-ring vtepd-gre" (the default) chooses the rows: the
# generator ceiling (trafgen into a bare veth), the kernel, vtepd with VXLAN, vtepd with VXLAN
# read from the underlay's ring (--vxlan-receive ring), vtepd with GRE (logical
# switch other_config:encapsulation=gre: RFC 2890 GRE, key = VNI, protocol 0x6558; the same
# frames, the GRE packets the sink sends built from GRE_TEMPLATE). This kernel has no gretap,
# so there is no kernel GRE row; Open vSwitch's userspace GRE is not measured here. The table goes to standard output and to
# bench/results/pps-<date>.md. Every process it starts is stopped by PID and every namespace
# deleted on exit, also on failure or Ctrl-C.
set -euo pipefail

MODES=${MODES:-ceiling kernel vtepd vtepd-ring vtepd-gre}
WINDOW=${WINDOW:-5}
WINDOWS=${WINDOWS:-3}
WARMUP=${WARMUP:-1}
P=${P:-vgpps}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TEMPLATE=${DECAP_TEMPLATE:-$ROOT/bench/pps/decap.trafgen.tmpl}
GRE_TEMPLATE=${GRE_DECAP_TEMPLATE:-$ROOT/bench/pps/decap-gre.trafgen.tmpl}
RESULTS=${RESULTS:-$ROOT/bench/results/pps-$(date +%Y-%m-%d).md}
WORK=$(mktemp -d "/tmp/$P.XXXXXX")
DUT_IP=192.168.100.1 SINK_IP=192.168.100.2 VNI=100

die() { echo "pps: $*" >&2; exit 1; }
log() { echo "pps: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root for network namespaces"
for tool in ip bridge trafgen tcpdump tshark awk; do
    command -v "$tool" >/dev/null || die "$tool not found; run appliance/install-deps.sh"
done
[ -f "$TEMPLATE" ] || die "decapsulation template $TEMPLATE not found"
for mode in $MODES; do
    case $mode in
    ceiling | kernel) ;;
    vtepd | vtepd-ring | vtepd-gre)
        command -v vtep-ctl >/dev/null || die "vtep-ctl not found (Debian openvswitch-vtep)"
        [ "$mode" != vtepd-gre ] || [ -f "$GRE_TEMPLATE" ] ||
            die "GRE decapsulation template $GRE_TEMPLATE not found"
        ;;
    *) die "unknown mode '$mode' in MODES (ceiling, kernel, vtepd, vtepd-ring, vtepd-gre)" ;;
    esac
done
ip netns list | grep -q "^${P}\(gen\|dut\|sink\)\b" &&
    die "namespaces ${P}gen/dut/sink exist already (another run, or a crashed one: ip netns del them)"

PIDS=()
cleanup() {
    local status=$?
    teardown
    if [ "$status" -ne 0 ] && [ -f "$WORK/vtepd.log" ]; then
        echo "--- last lines of vtepd's log:" >&2
        tail -n 30 "$WORK/vtepd.log" >&2 || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops the process group led by PID $1 (trafgen forks its workers, which a signal to the
# parent alone leaves sending): SIGINT, up to 5 s, then SIGKILL. Each process started here
# leads its own group (setsid), so the group is ours and nothing else.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 -- "-$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

rx_packets() { ip netns exec "$P$1" cat "/sys/class/net/$2/statistics/rx_packets"; }
mac_of() { ip -n "$P$1" link show "$2" | awk '/link\/ether/ {print $2}'; }

# The bare topology of dut-topo.sh with MODE=none.
topology() {
    for n in gen dut sink; do
        ip netns del "$P$n" 2>/dev/null || true
        ip netns add "$P$n"
        ip -n "$P$n" link set lo up
    done
    ip link add "${P}g" netns "${P}gen" type veth peer name "${P}acc" netns "${P}dut"
    ip link add "${P}ul" netns "${P}dut" type veth peer name "${P}s" netns "${P}sink"
    for x in "gen ${P}g" "dut ${P}acc" "dut ${P}ul" "sink ${P}s"; do
        set -- $x
        ip -n "$P$1" link set "$2" up
    done
    ip -n "${P}dut" addr add "$DUT_IP/24" dev "${P}ul"
    # The sink has no address and answers no ARP: the dut must know its MAC statically.
    ip -n "${P}dut" neigh add "$SINK_IP" lladdr "$(mac_of sink "${P}s")" dev "${P}ul" nud permanent
}

# Stops what this run started, then anything still inside its namespaces (an ovsdb-server
# that vtepd started and that outlived it, say) by the PIDs `ip netns pids` names, then
# deletes the namespaces.
teardown() {
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
    for n in gen dut sink; do
        for pid in $(ip netns pids "$P$n" 2>/dev/null); do
            kill -TERM "$pid" 2>/dev/null || true
        done
    done
    sleep 0.2
    for n in gen dut sink; do
        for pid in $(ip netns pids "$P$n" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$P$n" 2>/dev/null || true
    done
}

kernel_dut() {
    local d="${P}dut"
    ip -n "$d" link add vx$VNI type vxlan id $VNI local $DUT_IP remote $SINK_IP dstport 4789 \
        dev "${P}ul" nolearning
    ip -n "$d" link add br0 type bridge
    ip -n "$d" link set vx$VNI master br0
    ip -n "$d" link set "${P}acc" master br0
    ip -n "$d" link set vx$VNI up
    ip -n "$d" link set br0 up
    ip netns exec "$d" bridge fdb add 02:00:00:00:00:02 dev vx$VNI dst $SINK_IP master static
}

# vtepd_dut [ENCAPSULATION [OPTIONS]]: vtepd with logical switch ls$VNI in vxlan (default) or
# gre, OPTIONS added to its command line after VTEPD_ARGS.
vtepd_dut() {
    local encapsulation=${1:-vxlan} options=${2:-}
    # A fresh database per run: the previous mode's bindings must not be there.
    local state="$WORK/vtepd-state-$encapsulation"
    rm -rf "$state"
    mkdir -p "$state"
    setsid ip netns exec "${P}dut" "$VTEPD" run --state-root "$state" --physical-switch "${P}ps" \
        --tunnel-ip "$DUT_IP" --underlay "${P}ul" --port "${P}acc" ${VTEPD_ARGS:-} $options \
        >"$WORK/vtepd.log" 2>&1 &
    PIDS+=($!)
    local pid=$!
    DUT_PID=$pid
    for _ in $(seq 300); do
        [ -S "$state/db.sock" ] && [ -S "$state/vtepd.ctl" ] && break
        kill -0 "$pid" 2>/dev/null || die "vtepd exited at start"
        sleep 0.1
    done
    [ -S "$state/vtepd.ctl" ] || die "vtepd made no control socket in 30 s"
    local vc=(vtep-ctl "--db=unix:$state/db.sock")
    "${vc[@]}" --may-exist add-ps "${P}ps"
    "${vc[@]}" --may-exist add-port "${P}ps" "${P}acc"
    "${vc[@]}" --may-exist add-ls ls$VNI
    "${vc[@]}" set Logical_Switch ls$VNI tunnel_key=$VNI replication_mode=source_node \
        other_config:encapsulation="$encapsulation"
    "${vc[@]}" bind-ls "${P}ps" "${P}acc" 0 ls$VNI
    # As the kernel's static fdb entry: the destination MAC is known, frames are unicast.
    "${vc[@]}" add-ucast-remote ls$VNI 02:00:00:00:00:02 $SINK_IP
    sleep 1
}

# The CPU time, in nanoseconds, the DUT process has run (all its threads, kernel work done in
# their context included: the syscalls, and the receiving veth's stack that runs in the
# sender's softirq); empty when the DUT is the kernel (its work runs in trafgen's context).
dut_cpu_ns() {
    [ -n "${DUT_PID:-}" ] || return 0
    cat /proc/"$DUT_PID"/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.0f", t}'
}

# measure SENDER_NS SENDER_IF CONFIG COUNTER_NS COUNTER_IF: sets PPS to the packets per
# second over one window, and NS_PER_FRAME to the DUT's CPU time per frame forwarded over
# all windows (empty for the kernel): unlike PPS, it hardly moves when other work shares
# the machine, so builds compare by it on a busy machine. Not run in $(...): trafgen's PID must reach PIDS in this shell, so
# the EXIT trap stops it even when the run is interrupted mid-window.
measure() {
    local sender=$1 dev=$2 conf=$3 counter=$4 counted=$5
    setsid ip netns exec "$P$sender" trafgen --dev "$dev" --conf "$conf" --cpus 1 --no-sock-mem \
        --notouch-irq --no-cpu-stats >"$WORK/trafgen.log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    # setsid(1) makes its process a group leader once it runs: wait for that, not a race.
    local tries=0
    until [ "$(ps -o pgid= "$pid" | tr -d ' ')" = "$pid" ]; do
        tries=$((tries + 1))
        [ "$tries" -le 100 ] || die "trafgen (pid $pid) leads no process group of its own"
        sleep 0.01
    done
    sleep "$WARMUP"
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/trafgen.log" >&2; die "trafgen exited"; }
    local before after rates=() first cpu_before cpu_after profiler=
    # PERF=DIR: the DUT's worker thread sampled over the windows (perf record -g), one file per
    # DUT and direction, to read with `perf report -i FILE --no-children | swift demangle`.
    if [ -n "${PERF:-}" ] && [ -n "${DUT_PID:-}" ]; then
        local tid
        tid=$(grep -l '^vtepd-datapath$' /proc/"$DUT_PID"/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5)
        if [ -n "$tid" ]; then
            mkdir -p "$PERF"
            perf record -q -F 4999 -g -t "$tid" -o "$PERF/$PERF_LABEL.data" -- sleep $((WINDOW * WINDOWS)) \
                >/dev/null 2>&1 &
            profiler=$!
            PIDS+=($profiler)
        fi
    fi
    before=$(rx_packets "$counter" "$counted")
    first=$before
    cpu_before=$(dut_cpu_ns)
    for _ in $(seq "$WINDOWS"); do
        sleep "$WINDOW"
        after=$(rx_packets "$counter" "$counted")
        rates+=($(((after - before) / WINDOW)))
        before=$after
    done
    cpu_after=$(dut_cpu_ns)
    [ -z "$profiler" ] || wait "$profiler" || true
    stop_pid "$pid"
    NS_PER_FRAME=
    if [ -n "$cpu_before" ] && [ "$after" -gt "$first" ]; then
        NS_PER_FRAME=$(((cpu_after - cpu_before) / (after - first)))
        log "  DUT CPU: $NS_PER_FRAME ns per frame"
    fi
    # The median window: one window disturbed by other work on the machine moves nothing.
    PPS=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    log "  windows: ${rates[*]} pps; median $PPS"
    [ "$PPS" -gt 0 ] || die "nothing arrived on $counted in $P$counter: the DUT forwarded no frame"
}

# verify SENDER_NS SENDER_IF CONFIG CAPTURE_NS CAPTURE_IF DISPLAY_FILTER: before a DUT is
# timed, 10 frames of CONFIG must arrive at CAPTURE_IF as DISPLAY_FILTER says (tshark),
# so a DUT that forwards the wrong thing fast fails here instead of scoring.
verify() {
    local sender=$1 dev=$2 conf=$3 cap=$4 capif=$5 filter=$6
    local pcap="$WORK/verify.pcap"
    rm -f "$pcap" "$WORK/tcpdump.log"
    setsid ip netns exec "$P$cap" tcpdump -i "$capif" --immediate-mode -n -U -s 0 -Z root -w "$pcap" \
        >"$WORK/tcpdump.log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    for _ in $(seq 100); do
        grep -q "listening on" "$WORK/tcpdump.log" 2>/dev/null && break
        sleep 0.05
    done
    ip netns exec "$P$sender" trafgen --dev "$dev" --conf "$conf" --cpus 1 --num 10 \
        --no-sock-mem --notouch-irq --no-cpu-stats >/dev/null 2>&1
    sleep 0.5
    stop_pid "$pid"
    local n
    n=$(tshark -n -r "$pcap" -Y "$filter" -T fields -e frame.number 2>/dev/null | grep -c . || true)
    if [ "$n" -ne 10 ]; then
        [ -z "${PPS_DEBUG:-}" ] || cp "$pcap" "$WORK/tcpdump.log" /tmp/
        die "of 10 frames sent, $n arrived on $capif in $P$cap as '$filter'"
    fi
}

encap_conf="$WORK/encap.trafgen"
cat >"$encap_conf" <<'T'
{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(saddr=10.0.0.1, daddr=10.0.0.2, ttl=64), udp(sp=dinc(1000,60000,1), dp=9), fill(0x41, 18) }
T
# decap_conf [TEMPLATE]: the sink's trafgen configuration, with the real MACs.
decap_conf() {
    sed -e "s/DUT_UNDERLAY_MAC/$(mac_of dut "${P}ul")/" -e "s/SINK_MAC/$(mac_of sink "${P}s")/" \
        "${1:-$TEMPLATE}" >"$WORK/decap.trafgen"
    echo "$WORK/decap.trafgen"
}

# VTEPD=/path/to/vtepd uses that binary instead of building one (release build by default);
# VTEPD_LABEL then says in the table what it is (e.g. "release build of 02b357b");
# VTEPD_ARGS adds options to vtepd's command line (e.g. "--datapath-priority 1").
# PERF=DIR samples the vtepd worker thread during each measurement (perf record -g at 4,999 Hz)
# into DIR/MODE-encap.data and DIR/MODE-decap.data: the profile the figures came with.
if [[ " $MODES " == *" vtepd"* ]]; then
    if [ -z "${VTEPD:-}" ]; then
        log "building vtepd (swift build -c release --product vtepd)"
        swift build --package-path "$ROOT" -c release --product vtepd >&2
        VTEPD="$(swift build --package-path "$ROOT" -c release --show-bin-path)/vtepd"
        VTEPD_BUILT="release build of $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        git -C "$ROOT" diff --quiet HEAD -- Sources Package.swift 2>/dev/null ||
            VTEPD_BUILT+=" with uncommitted changes"
    else
        VTEPD_BUILT="${VTEPD_LABEL:-VTEPD=$VTEPD}${VTEPD_ARGS:+ with $VTEPD_ARGS}"
    fi
    [ -x "$VTEPD" ] || die "no vtepd executable at $VTEPD"
fi

rows=()
for mode in $MODES; do
    topology
    case $mode in
    ceiling)
        log "generator ceiling: trafgen into a bare veth"
        measure gen "${P}g" "$encap_conf" dut "${P}acc"
        rows+=("| trafgen into a bare veth (generator ceiling) | $PPS | | | |")
        ;;
    kernel | vtepd | vtepd-ring | vtepd-gre)
        tunnel="udp.dstport == 4789 && vxlan.vni == $VNI"
        template=$TEMPLATE
        if [ "$mode" = kernel ]; then
            kernel_dut
            name="Linux kernel vxlan + bridge ($(uname -r))"
        elif [ "$mode" = vtepd ]; then
            vtepd_dut vxlan
            name="vtepd ($VTEPD_BUILT)"
        elif [ "$mode" = vtepd-ring ]; then
            vtepd_dut vxlan "--vxlan-receive ring"
            name="vtepd, vxlan-receive ring ($VTEPD_BUILT)"
        else
            vtepd_dut gre
            name="vtepd, GRE key $VNI ($VTEPD_BUILT)"
            tunnel="ip.proto == 47 && gre.flags_and_version == 0x2000 && gre.proto == 0x6558 && gre.key == $VNI"
            template=$GRE_TEMPLATE
        fi
        log "$mode: checking 10 frames each way on the wire"
        verify gen "${P}g" "$encap_conf" sink "${P}s" \
            "ip.src == $DUT_IP && ip.dst == $SINK_IP && $tunnel && eth.dst == 02:00:00:00:00:02 && udp.dstport == 9"
        verify sink "${P}s" "$(decap_conf "$template")" gen "${P}g" \
            "!vxlan && !gre && eth.src == 02:00:00:00:00:02 && eth.dst == 02:00:00:00:00:01 && ip.src == 10.0.0.2 && udp.dstport == 9"
        log "$mode: encapsulation"
        PERF_LABEL=$mode-encap
        measure gen "${P}g" "$encap_conf" sink "${P}s"
        encap=$PPS encap_ns=$NS_PER_FRAME
        log "$mode: decapsulation"
        PERF_LABEL=$mode-decap
        measure sink "${P}s" "$(decap_conf "$template")" gen "${P}g"
        rows+=("| $name | $encap | $PPS | $encap_ns | $NS_PER_FRAME |")
        DUT_PID=
        ;;
    esac
    teardown
done

cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
{
    echo "# Packets per second through a VTEP, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "64-byte inner frames from trafgen on one CPU; each figure is the median of ${WINDOWS}"
    echo "${WINDOW}-second windows after ${WARMUP} s of warm-up, counted by the receiving veth's"
    echo "rx_packets (bench/pps/run.sh; topology of"
    echo "../shared/reference/dut-topo.sh). Machine: $(nproc) CPUs ($cpu), Linux $(uname -r)."
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine"
    echo "lowers every row). Compare only figures taken in one run. The ns/frame columns are"
    echo "the DUT process's CPU time (all threads, kernel work in their context included) per"
    echo "frame forwarded over the windows, for vtepd (the kernel's work runs in trafgen's context)."
    echo
    echo "| DUT | encap pps | decap pps | encap ns/frame | decap ns/frame |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} >"$WORK/table.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$WORK/table.md" "$RESULTS"
cat "$WORK/table.md"
log "written to $RESULTS"
# The same table as a picture beside it (bench/lib/chart.sh, gnuplot).
chart=$("$ROOT/bench/lib/chart.sh" "$RESULTS" "64-byte frames per second through one VTEP ($(basename "$RESULTS" .md))" \
    "frames/s" "DUT" "encap pps,decap pps")
log "chart: $chart"
