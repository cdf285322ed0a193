#!/usr/bin/env bash
# A logical router with SNAT (issue 12, docs/routers.md): routed + SNAT 64-byte UDP packets per
# second over many flows, and iperf3 TCP, from an overlay host to an outside host, through
# vtepd's router and through a pure-kernel reference, in one run on one topology.
#
# Topology (bench/lib/topology.sh's links, re-addressed):
#
#   host A ($P"ha") --ah/aa-- site A ($P"sa") ==au/bu== DUT ($P"sb") --ba/bh-- host B ($P"hb")
#   10.0.0.1/24 gw .254      kernel vxlan VNI 100      router namespace      198.51.100.2/24
#   MTU 1450                 192.168.100.1             192.168.100.2         MTU 1500 (outside)
#
# The DUT routes between the overlay (VNI 100, 10.0.0.0/24, router 10.0.0.254, MTU 1450) and
# the outside segment (the physical port ba, 198.51.100.0/24, router 198.51.100.1), with SNAT of
# 10.0.0.0/24 to 198.51.100.1:
#   vtepd:  vtepd with logical switch ls100 (VNI 100, head-end to site A) and ls200 bound to ba,
#           and logical router r1 (vtep-ctl: switch_binding, other_config snat): its namespace,
#           veths, MTU and ruleset are vtepd's own;
#   kernel: the kernel's vxlan + bridge for VNI 100, a bridge with ba for the outside, and a
#           router namespace $P"kr" wired to both by veths (MTU 1450 and 1500, as vtepd's), with
#           the same nftables ruleset (the table vtepd wrote, read back from its router and
#           written here with the reference's interface name; both go into the results).
# MODES (default "vtepd kernel vtepd-ft kernel-ft"; vtepd before kernel): "-ft" adds an nftables flowtable for
# established flows in the router namespace (a table of its own: flowtable on both router
# interfaces, `flow add` for TCP and UDP in forward).
#
# pps: trafgen in site A sends VXLAN (VNI 100) straight onto the underlay to the DUT, inner
# frames of 64 bytes from host A's MAC to the router's overlay MAC, 10.0.0.1 → 198.51.100.2,
# UDP to port 9 from a source port drawn at random for each packet (up to 65536 flows): each
# new one is a new conntrack entry and SNAT binding, as many flows are. Counted by host B's rx_packets (host B drops them before
# its stack, so it sends no port unreachable back); the median of WINDOWS (3) windows of WINDOW
# (5) seconds after WARMUP (2) seconds. Before timing, 10 of them must arrive at host B as
# SNAT made them (tshark: source 198.51.100.1, no 10.0.0.0/24). The flowtable cannot speed a
# one-way UDP flood (a flow enters it only once conntrack saw a reply); the -ft pps rows show
# its cost, not a gain.
# With vtepd, its CPU time per frame that reached host B (all its threads, from
# /proc/PID/task/*/schedstat) is given too: the figure to compare builds by on a busy machine.
# TCP: iperf3 host A → host B and back (-R), STREAMS (default "1 4"), DURATION (4) s each,
# with the sender's retransmissions, (A → B) its mean RTT and vtepd's share of a CPU. Before the pps run, 50 pings
# host A → host B (the round trip through the router while nothing else crosses it).
#
# Offloads are left as Linux made every veth. VTEPD (default the checkout's .build/release/vtepd)
# and VTEPD_LABEL say which vtepd; PERF=1 records `perf record -g` of vtepd for 5 s during its
# pps run and for 2 s of its one-stream B → A TCP run (and the whole machine then, `-a`), and
# puts the top of `perf report` in the results (PERF_KEEP=DIR keeps the perf.data files).
# STATS=FILE appends vtepd's `show switch statistics` after each of its TCP runs (drops,
# super-frames, trains; with VTEPSH, default the vtepsh beside VTEPD). AUTOGROUP_NICE=N is an experiment, not part of a comparison: vtepd's
# scheduling group (/proc/PID/autogroup; every process this script starts leads a session,
# hence a group of its own) gets nice N, to see how much of a run on a loaded machine is the
# scheduler's share (see bench/results/l3-2026-12-05-s11.md). Results: standard output and
# RESULTS (default bench/results/l3-<date>.md). Namespaces and links are named $P* (default
# vgl3), vtepd's router namespace $P-r1; every process started here is stopped by PID and every
# namespace deleted on exit, also on failure or Ctrl-C.
set -euo pipefail

MODES=${MODES:-vtepd kernel vtepd-ft kernel-ft}
STREAMS=${STREAMS:-1 4}
DURATION=${DURATION:-4}
WINDOW=${WINDOW:-5}
WINDOWS=${WINDOWS:-3}
WARMUP=${WARMUP:-2}
P=${P:-vgl3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${RESULTS:-$ROOT/bench/results/l3-$(date +%Y-%m-%d).md}
# shellcheck source=../lib/topology.sh
source "$ROOT/bench/lib/topology.sh"
LAB_NAMESPACES="ha sa sb hb kr"
ROUTER_NS=${P}-r1
INSIDE=10.0.0.254 OUTSIDE=198.51.100.1 OUTSIDE_HOST=198.51.100.2

lab_init l3 iperf3 trafgen tshark tcpdump nft nsenter
for mode in $MODES; do
    case $mode in kernel | vtepd | kernel-ft | vtepd-ft) ;; *) die "unknown mode '$mode' in MODES" ;; esac
done
[[ " $MODES " == *" vtepd"* ]] && lab_use_vtepd
# A kernel built without nf_flow_table cannot have a flowtable: its -ft rows are left out,
# and the results say so.
FT_NOTE=
if [[ $MODES == *-ft* ]] && zcat /proc/config.gz 2>/dev/null | grep -q '^# CONFIG_NF_FLOW_TABLE is not set'; then
    FT_NOTE="The flowtable rows are missing: this kernel ($(uname -r)) is built without nf_flow_table (CONFIG_NF_FLOW_TABLE is not set), so nftables refuses a flowtable."
    log "$FT_NOTE"
    MODES=$(printf '%s\n' $MODES | grep -v -- '-ft$' | tr '\n' ' ')
fi
[ -e "/run/netns/$ROUTER_NS" ] && die "/run/netns/$ROUTER_NS exists (a crashed run: ip netns del $ROUTER_NS)"
# vtepd removes its router when it stops; a file left by a killed one goes here.
# lab_down, then the namespaces deleted by name: lab_down's `ip netns list | grep -q` can
# take grep's early exit (SIGPIPE to ip, under pipefail) for "not there" when many
# namespaces exist, and leave them.
l3_down() {
    lab_down
    for n in $LAB_NAMESPACES; do ip netns del "$P$n" 2>/dev/null || true; done
}
l3_exit() {
    local status=$?
    l3_down
    ip netns del "$ROUTER_NS" 2>/dev/null || true
    (exit "$status")
    lab_exit
}
trap l3_exit EXIT

VTEPD_PID=
# router_exec CMD...: CMD in the DUT's router namespace.
router_exec() {
    if [ -n "$VTEPD_PID" ]; then
        nsenter "--net=/proc/$VTEPD_PID/root/run/netns/$ROUTER_NS" "$@"
    else
        ip netns exec "${P}kr" "$@"
    fi
}

# The links of bench/lib/topology.sh, host B moved to the outside subnet at 1500 bytes.
l3_links() {
    lab_links on
    ip -n "${P}ha" route add default via "$INSIDE"
    ip -n "${P}hb" addr flush dev "${P}bh"
    ip -n "${P}hb" link set "${P}bh" mtu 1500
    ip -n "${P}hb" addr add "$OUTSIDE_HOST/24" dev "${P}bh"
    ip -n "${P}sb" link set "${P}ba" mtu 1500
    # Host B drops the flood before its stack (no port unreachable back); TCP goes on.
    ip netns exec "${P}hb" nft -f - <<'N'
table ip bench {
    chain in {
        type filter hook prerouting priority raw; policy accept;
        udp dport 9 drop
    }
}
N
}

# The reference: vxlan + bridge for the overlay, a bridge for the outside, the router namespace.
kernel_dut() {
    local s=${P}sb
    ip -n "$s" link add vxlan0 type vxlan id "$VNI" local "$UL_B" dstport 4789 dev "${P}bu" learning
    ip -n "$s" link add l3in type bridge
    ip -n "$s" link add l3out type bridge
    # (lab_links made ${P}kr, one of LAB_NAMESPACES; vtepd's runs leave it empty.)
    ip netns exec "${P}kr" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$s" link add "${P}lo" type veth peer name "${P}ro" netns "${P}kr"
    ip -n "$s" link add "${P}lu" type veth peer name "${P}ru" netns "${P}kr"
    ip -n "$s" link set "${P}lo" mtu 1450
    ip -n "${P}kr" link set "${P}ro" mtu 1450
    for x in "vxlan0 l3in" "${P}lo l3in" "${P}ba l3out" "${P}lu l3out"; do
        set -- $x
        ip -n "$s" link set "$1" addrgenmode none
        ip -n "$s" link set "$1" master "$2"
        ip -n "$s" link set "$1" up
    done
    ip -n "$s" link set l3in up
    ip -n "$s" link set l3out up
    ip netns exec "$s" bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst "$UL_A"
    ip -n "${P}kr" addr add "$INSIDE/24" dev "${P}ro"
    ip -n "${P}kr" addr add "$OUTSIDE/24" dev "${P}ru"
    ip -n "${P}kr" link set "${P}ro" up
    ip -n "${P}kr" link set "${P}ru" up
    RI_OVERLAY=${P}ro RI_UPLINK=${P}ru
    # vtepd's ruleset, its uplink interface's name replaced by ours.
    [ -n "${VTEPD_RULESET:-}" ] || die "MODES must run vtepd before kernel (the reference takes vtepd's ruleset)"
    RULESET=${VTEPD_RULESET//$VTEPD_UPLINK/$RI_UPLINK}
    printf 'flush ruleset\n%s\n' "$RULESET" | ip netns exec "${P}kr" nft -f -
}

vtepd_dut() {
    local state=$WORK/state-dut vc ls100 ls200
    rm -rf "$state"
    mkdir -p "$state"
    LAB_VTEPD_LOGS+=("$WORK/vtepd-dut.log")
    lab_start sb "$WORK/vtepd-dut.log" "$VTEPD" run --state-root "$state" \
        --physical-switch "${P}ps" --tunnel-ip "$UL_B" --underlay "${P}bu" --port "${P}ba" \
        --router-namespace-prefix "${P}-" ${VTEPD_ARGS:-}
    VTEPD_PID=$LAB_PID
    LAB_VTEPD_PIDS+=("$VTEPD_PID")
    for _ in $(seq 300); do
        [ -S "$state/db.sock" ] && [ -S "$state/vtepd.ctl" ] && break
        kill -0 "$VTEPD_PID" 2>/dev/null || die "vtepd exited at start"
        sleep 0.1
    done
    # An experiment, not a comparison: vtepd's scheduling group given more weight (see
    # AUTOGROUP_NICE above). Only now: before setsid has run in the child, the PID's group
    # would still be this script's.
    if [ -n "${AUTOGROUP_NICE:-}" ]; then
        echo "$AUTOGROUP_NICE" >"/proc/$VTEPD_PID/autogroup"
        log "vtepd's $(cat "/proc/$VTEPD_PID/autogroup")"
    fi
    vc=(lab_vc "$state")
    "${vc[@]}" --may-exist add-ps "${P}ps"
    "${vc[@]}" --may-exist add-port "${P}ps" "${P}ba"
    "${vc[@]}" add-ls ls100
    "${vc[@]}" set Logical_Switch ls100 tunnel_key=100 replication_mode=source_node
    "${vc[@]}" add-mcast-remote ls100 unknown-dst "$UL_A"
    "${vc[@]}" add-ls ls200
    "${vc[@]}" set Logical_Switch ls200 tunnel_key=200 replication_mode=source_node
    "${vc[@]}" bind-ls "${P}ps" "${P}ba" 0 ls200
    "${vc[@]}" add-lr r1
    ls100=$(vtep-ctl "--db=unix:$state/db.sock" get Logical_Switch ls100 _uuid)
    ls200=$(vtep-ctl "--db=unix:$state/db.sock" get Logical_Switch ls200 _uuid)
    "${vc[@]}" set Logical_Router r1 "switch_binding:\"$INSIDE/24\"=$ls100" \
        "switch_binding:\"$OUTSIDE/24\"=$ls200" "other_config:\"snat:10.0.0.0/24\"=$OUTSIDE"
    for _ in $(seq 200); do
        grep -q "logical router r1 in force interfaces=2 nat_rules=1" "$WORK/vtepd-dut.log" && break
        kill -0 "$VTEPD_PID" 2>/dev/null || die "vtepd exited"
        sleep 0.1
    done
    grep -q "logical router r1 in force interfaces=2 nat_rules=1" "$WORK/vtepd-dut.log" ||
        die "router r1 not in force after 20 s"
    # The router's interfaces: the overlay one has 10.0.0.254, the uplink 198.51.100.1.
    RI_OVERLAY=$(router_exec ip -o addr show to "$INSIDE/32" | awk '{print $2}')
    RI_UPLINK=$(router_exec ip -o addr show to "$OUTSIDE/32" | awk '{print $2}')
    VTEPD_UPLINK=$RI_UPLINK
    VTEPD_RULESET=$(router_exec nft list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/')
}

# flowtable_on: the flowtable for established TCP and UDP flows, in a table of its own.
flowtable_on() {
    router_exec nft -f - <<N
table ip bench_ft {
    flowtable ft {
        hook ingress priority filter
        devices = { $RI_OVERLAY, $RI_UPLINK }
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        meta l4proto { tcp, udp } flow add @ft
    }
}
N
}

# The flood's trafgen configuration: VXLAN from site A to the DUT, inner UDP from random source ports.
flood_conf() {
    local router_mac dut_mac sa_mac
    # (ip, not /sys: nsenter --net keeps vtepd's view of sysfs.)
    router_mac=$(router_exec ip -o link show dev "$RI_OVERLAY" | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')
    [[ $router_mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || die "no MAC for the router's $RI_OVERLAY"
    dut_mac=$(ip netns exec "${P}sb" cat "/sys/class/net/${P}bu/address")
    sa_mac=$(ip netns exec "${P}sa" cat "/sys/class/net/${P}au/address")
    # The inner frame as bytes (trafgen's header functions do not nest inside a payload):
    # IPv4 header with its checksum computed here, UDP without checksum (0, allowed over
    # IPv4), the source port's two bytes random per packet.
    local inner
    inner=$(python3 - "$router_mac" "$MAC_A" "$OUTSIDE_HOST" <<'PY'
import sys
dst, src, daddr = sys.argv[1], sys.argv[2], sys.argv[3]
mac = lambda m: ",".join("0x" + b for b in m.split(":"))
ip = [0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1] + [int(x) for x in daddr.split(".")]
total = sum((ip[i] << 8) + ip[i + 1] for i in range(0, 20, 2))
while total >> 16: total = (total & 0xFFFF) + (total >> 16)
ip[10], ip[11] = (~total >> 8) & 0xFF, ~total & 0xFF
print(mac(dst) + ", " + mac(src) + ", 0x08,0x00, " + ",".join(str(b) for b in ip)
      + ", drnd(), drnd(), 0x00,0x09, 0x00,0x1a, 0x00,0x00, fill(0x41,18)")
PY
)
    cat >"$WORK/flood.trafgen" <<T
{ eth(da=$dut_mac, sa=$sa_mac), ipv4(saddr=$UL_A, daddr=$UL_B, ttl=64, df), udp(sp=dinc(49152,65000,1), dp=4789, csum=0),
  0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00,
  $inner }
T
    echo "$WORK/flood.trafgen"
}

rx_b() { ip netns exec "${P}hb" cat "/sys/class/net/${P}bh/statistics/rx_packets"; }

# verify_flood CONF: 10 frames of the flood reach host B, as SNAT made them.
verify_flood() {
    local pcap=$WORK/verify.pcap n pid
    rm -f "$pcap"
    lab_start hb "$WORK/tcpdump.log" tcpdump -i "${P}bh" --immediate-mode -n -U -s 0 -Z root -w "$pcap" udp port 9
    pid=$LAB_PID
    for _ in $(seq 100); do
        grep -q "listening on" "$WORK/tcpdump.log" 2>/dev/null && break
        sleep 0.05
    done
    timeout -k 2 20 ip netns exec "${P}sa" trafgen --dev "${P}au" --conf "$1" --cpus 1 --num 10 \
        --no-sock-mem --notouch-irq --no-cpu-stats >/dev/null 2>&1 || die "trafgen did not send 10 frames"
    sleep 1
    stop_pid "$pid"
    n=$(tshark -n -r "$pcap" -Y "ip.src == $OUTSIDE && ip.dst == $OUTSIDE_HOST && udp.dstport == 9 && !(ip.addr == 10.0.0.0/24)" \
        -T fields -e frame.number 2>/dev/null | grep -c . || true)
    [ "$n" -eq 10 ] || die "of 10 flood frames sent, $n reached host B as SNAT made them"
}

# vtepd's CPU time so far, in ns, over all its threads (the worker, and the router's work it
# does in its send calls: veth delivers in the sender's context); empty for the kernel.
dut_cpu_ns() {
    [ -n "$VTEPD_PID" ] || return 0
    cat /proc/"$VTEPD_PID"/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.0f", t}'
}

# measure_pps CONF: sets PPS, the median rate at host B, and NS_PER_FRAME, vtepd's CPU time
# per frame that reached host B over all windows (empty for the kernel): unlike PPS it hardly
# moves when other work shares the machine, so builds compare by it on a busy machine.
measure_pps() {
    local pid before after first cpu0 cpu1 rates=()
    lab_start sa "$WORK/trafgen.log" trafgen --dev "${P}au" --conf "$1" --cpus 1 --no-sock-mem \
        --notouch-irq --no-cpu-stats
    pid=$LAB_PID
    sleep "$WARMUP"
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/trafgen.log" >&2; die "trafgen exited"; }
    if [ -n "${PERF:-}" ] && [ -n "$VTEPD_PID" ] && [ "$MODE" = vtepd ]; then
        perf record -g -o "$WORK/perf.data" -p "$VTEPD_PID" -- sleep 5 >/dev/null 2>&1 || true
        [ -z "${PERF_KEEP:-}" ] || cp "$WORK/perf.data" "$PERF_KEEP"/
    fi
    cpu0=$(dut_cpu_ns)
    before=$(rx_b)
    first=$before
    for _ in $(seq "$WINDOWS"); do
        sleep "$WINDOW"
        after=$(rx_b)
        rates+=($(((after - before) / WINDOW)))
        before=$after
    done
    cpu1=$(dut_cpu_ns)
    stop_pid "$pid"
    PPS=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    NS_PER_FRAME=
    [ -z "$cpu0" ] || [ "$after" -le "$first" ] || NS_PER_FRAME=$(((cpu1 - cpu0) / (after - first)))
    log "  windows: ${rates[*]} pps; median $PPS${NS_PER_FRAME:+; vtepd $NS_PER_FRAME ns CPU per frame}"
}

# iperf3 STREAMS ab|ba: sets RESULT to Gbit/s (or "failed …").
tcp_test() {
    local streams=$1 direction=$2 server client rc=0 args cpu0 cpu1 t0 t1
    lab_start hb "$WORK/iperf3-server.log" iperf3 --server --one-off --bind "$OUTSIDE_HOST"
    server=$LAB_PID
    for _ in $(seq 100); do
        ip netns exec "${P}hb" ss -Hltn sport = :5201 | grep -q . && break
        sleep 0.05
    done
    args=(--client "$OUTSIDE_HOST" --time "$DURATION" --parallel "$streams" --json --connect-timeout 3000)
    [ "$direction" = ab ] || args+=(--reverse)
    cpu0=$(dut_cpu_ns)
    t0=$(date +%s%N)
    lab_start ha "$WORK/iperf3.json" timeout -k 2 $((DURATION + 20)) iperf3 "${args[@]}"
    client=$LAB_PID
    # PERF=1: the one-stream outside → overlay run profiled too, vtepd's threads and the
    # whole machine (the router's softirq work runs outside vtepd's threads as well).
    if [ -n "${PERF:-}" ] && [ -n "$VTEPD_PID" ] && [ "$MODE" = vtepd ] &&
        [ "$streams" = 1 ] && [ "$direction" = ba ]; then
        sleep 1
        perf record -a -g -o "$WORK/perf-tcp-all.data" -- sleep 2 >/dev/null 2>&1 &
        perf record -g -o "$WORK/perf-tcp.data" -p "$VTEPD_PID" -- sleep 2 >/dev/null 2>&1 || true
        wait $! || true
        [ -z "${PERF_KEEP:-}" ] || cp "$WORK"/perf-tcp*.data "$PERF_KEEP"/
    fi
    wait "$client" || rc=$?
    cpu1=$(dut_cpu_ns)
    t1=$(date +%s%N)
    stop_pid "$server"
    if [ -n "${STATS:-}" ] && [ -n "$VTEPD_PID" ]; then
        {
            echo "== $MODE $streams $direction"
            "${VTEPSH:-$(dirname "$VTEPD")/vtepsh}" --control "$WORK/state-dut/vtepd.ctl" -c "show switch statistics"
            # Each packet socket's queue and drops (skmem d…), by interface: which port overran.
            echo "-- ss -0 -e -m in vtepd's namespace"
            ip netns exec "${P}sb" ss -0 -n -e -m
            ip -n "${P}sb" -o link show | awk '{print $1, $2}'
        } >>"$STATS" 2>&1 || true
    fi
    # vtepd's share of one CPU over the run (over 100 %: its threads ran on both CPUs).
    local cpu=
    [ -z "$cpu0" ] || cpu=$(((cpu1 - cpu0) * 100 / (t1 - t0)))
    RESULT=$(python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    r = d["end"]["sum_sent"].get("retransmits")
    rtt = [x["sender"].get("mean_rtt") for x in d["end"].get("streams", []) if x.get("sender", {}).get("mean_rtt")]
    extra = ([] if r is None else ["%d retr" % r]) + (["RTT %d µs" % (sum(rtt) / len(rtt))] if rtt else []) + (["vtepd %s %% CPU" % sys.argv[3]] if sys.argv[3] else [])
    print(("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9) + (" (" + ", ".join(extra) + ")" if extra else "")) if not d.get("error") else "failed " + d["error"])
except Exception:
    print("failed exit " + sys.argv[2])' "$WORK/iperf3.json" "$rc" "$cpu")
}

declare -A PPS_OF TCP_OF PING_OF NS_OF
for MODE in $MODES; do
    log "$MODE: building"
    VTEPD_PID=
    l3_links
    lab_kernel_site a
    case $MODE in
    vtepd*) vtepd_dut ;;
    kernel*) kernel_dut ;;
    esac
    [[ $MODE == *-ft ]] && flowtable_on
    deadline=$((SECONDS + 20))
    until ip netns exec "${P}ha" ping -c 1 -W 1 -q "$OUTSIDE_HOST" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$MODE: host B unreachable from host A after 20 s"
        sleep 0.2
    done
    # The round trip through the router while nothing else crosses it.
    rtt=$(ip netns exec "${P}ha" ping -c 50 -i 0.02 -q "$OUTSIDE_HOST" 2>/dev/null | sed -n 's|.* = \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/.*|\2 ms (min \1, max \3)|p')
    log "$MODE: ping host A → host B: ${rtt:-failed}"
    PING_OF[$MODE]=${rtt:-failed}
    conf=$(flood_conf)
    verify_flood "$conf"
    log "$MODE: pps"
    measure_pps "$conf"
    PPS_OF[$MODE]=$PPS
    NS_OF[$MODE]=$NS_PER_FRAME
    for streams in $STREAMS; do
        for direction in ab ba; do
            tcp_test "$streams" "$direction"
            log "$MODE: TCP $streams stream(s) $direction: $RESULT"
            TCP_OF[$MODE $streams $direction]=$RESULT
        done
    done
    if [ -n "${PERF:-}" ] && [ -f "$WORK/perf.data" ] && [ "$MODE" = vtepd ]; then
        perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -25 >"$WORK/perf.txt" || true
    fi
    if [ -n "${PERF:-}" ] && [ -f "$WORK/perf-tcp.data" ] && [ "$MODE" = vtepd ]; then
        perf report -i "$WORK/perf-tcp.data" --no-children --sort symbol --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -25 >"$WORK/perf-tcp.txt" || true
        perf report -i "$WORK/perf-tcp-all.data" --no-children --sort comm --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -12 >"$WORK/perf-tcp-all.txt" || true
    fi
    [ -z "$VTEPD_PID" ] || stop_pid "$VTEPD_PID"
    l3_down
done

ratio() { python3 -c 'import sys; a,b=sys.argv[1],sys.argv[2]
try: print("%.2f×" % (float(a.split()[0])/float(b.split()[0])))
except Exception: print("")' "$1" "$2"; }
{
    echo "# A logical router with SNAT: vtepd vs the kernel, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "bench/l3/run.sh: host A behind a kernel VTEP (VNI 100) → the DUT's router (SNAT"
    echo "10.0.0.0/24 → $OUTSIDE) → host B on the DUT's physical port. pps: 64-byte inner UDP"
    echo "frames over up to 65536 flows (random source ports), VXLAN from trafgen on one CPU, median of"
    echo "$WINDOWS × ${WINDOW} s at host B. TCP: iperf3, $DURATION s, Gbit/s received. Default offloads."
    echo "vtepd: ${VTEPD_BUILT:-not run}${AUTOGROUP_NICE:+, its autogroup at nice $AUTOGROUP_NICE (an experiment)}. $(lab_machine)"
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work shares the machine)."
    echo
    echo "| DUT | ping A→B | routed+SNAT pps | vs kernel | vtepd ns CPU/frame |$(for s in $STREAMS; do printf ' TCP %s A→B | vs kernel | TCP %s B→A | vs kernel |' "$s" "$s"; done)"
    echo "|---|---|---|---|---|$(for s in $STREAMS; do printf -- '---|---|---|---|'; done)"
    for MODE in $MODES; do
        ref=kernel
        [[ $MODE == *-ft ]] && ref=kernel-ft
        line="| $MODE | ${PING_OF[$MODE]:-} | ${PPS_OF[$MODE]} | $(ratio "${PPS_OF[$MODE]}" "${PPS_OF[$ref]:-}") | ${NS_OF[$MODE]:-} |"
        for s in $STREAMS; do
            for d in ab ba; do
                line+=" ${TCP_OF[$MODE $s $d]} | $(ratio "${TCP_OF[$MODE $s $d]}" "${TCP_OF[$ref $s $d]:-}") |"
            done
        done
        echo "$line"
    done
    [ -z "$FT_NOTE" ] || { echo; echo "$FT_NOTE"; }
    echo
    echo "The ruleset vtepd wrote in its router (the reference runs the same, its uplink named ${P}ru):"
    echo
    echo '```'
    echo "${VTEPD_RULESET:-}"
    echo '```'
    if [ -s "$WORK/perf.txt" ]; then
        echo
        echo "perf record -g of vtepd during its pps run (top symbols, self time):"
        echo
        echo '```'
        cat "$WORK/perf.txt"
        echo '```'
    fi
    if [ -s "$WORK/perf-tcp.txt" ]; then
        echo
        echo "perf record -g of vtepd during its one-stream TCP B→A run (top symbols, self time):"
        echo
        echo '```'
        cat "$WORK/perf-tcp.txt"
        echo '```'
    fi
    if [ -s "$WORK/perf-tcp-all.txt" ]; then
        echo
        echo "perf record -a -g of the whole machine at the same time (by command; vtepd's worker is oot.default-qos):"
        echo
        echo '```'
        cat "$WORK/perf-tcp-all.txt"
        echo '```'
    fi
} >"$WORK/table.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$WORK/table.md" "$RESULTS"
cat "$WORK/table.md"
log "written to $RESULTS"
