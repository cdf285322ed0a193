#!/usr/bin/env bash
# make demo: two sites joined by VXLAN VNI 5001 across an underlay link.
#
#   host A (vgdemo-ha) --access-- gateway A (vgdemo-gwa) ==underlay== gateway B (vgdemo-gwb) --access-- host B (vgdemo-hb)
#   10.50.0.1/24                  vtepd, 192.168.50.1                  kernel vxlan0 + br0,           10.50.0.2/24
#                                                                      192.168.50.2
#
# Site B is always the Linux kernel's vxlan device and bridge. Site A is vtepd (the default,
# DEMO_GATEWAY=vtepd) or, with DEMO_GATEWAY=kernel, a second kernel VTEP, so the demo also runs
# where vtepd is not built. Both replicate broadcast and unknown-unicast frames head-end to
# the other site. Everything it makes is named vgdemo*; `make demo-down` removes it all.
set -euo pipefail

P=vgdemo
GATEWAY=${DEMO_GATEWAY:-vtepd}
STATE=${DEMO_STATE:-/tmp/vgdemo}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VNI=5001
UL_A=192.168.50.1 UL_B=192.168.50.2
HOST_A=10.50.0.1 HOST_B=10.50.0.2
# Fixed host MACs, so the tables printed at the end read at a glance.
MAC_A=02:00:0a:32:00:01 MAC_B=02:00:0a:32:00:02
# 1500 less IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 (RFC 7348 §4.3).
INNER_MTU=1450

die() { echo "demo-up: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

case $GATEWAY in
vtepd | kernel) ;;
*) die "DEMO_GATEWAY must be vtepd or kernel, not '$GATEWAY'" ;;
esac
[ "$(id -u)" -eq 0 ] || die "needs root for network namespaces (try: sudo make demo)"
need=(ip bridge ethtool ping iperf3)
[ "$GATEWAY" = vtepd ] && need+=(swift vtep-ctl ovsdb-server)
for tool in "${need[@]}"; do
    command -v "$tool" >/dev/null || die "$tool not found; run appliance/install-deps.sh"
done
if ip netns list | grep -q "^$P-"; then
    die "a demo is already up ($(ip netns list | grep -o "^$P-[a-z]*" | tr '\n' ' ')); run make demo-down first"
fi

# On any failure (a failing command, or die): show why, then remove the half-built demo so
# the next run starts clean.
failed() {
    local status=$1
    [ "$status" -eq 0 ] && return 0
    echo "demo-up: failed (exit status $status)" >&2
    if [ -f "$STATE/vtepd.log" ]; then
        echo "--- last lines of $STATE/vtepd.log:" >&2
        tail -n 30 "$STATE/vtepd.log" >&2 || true
    fi
    "$ROOT/appliance/demo/demo-down.sh" >&2 || true
}
trap 'failed $?' EXIT

mkdir -p "$STATE"

# VTEPD=/path/to/vtepd uses that binary instead of building one.
if [ "$GATEWAY" = vtepd ] && [ -z "${VTEPD:-}" ]; then
    step "building vtepd (swift build -c release --product vtepd)"
    swift build --package-path "$ROOT" -c release --product vtepd
    VTEPD="$(swift build --package-path "$ROOT" -c release --show-bin-path)/vtepd"
fi
[ "$GATEWAY" = kernel ] || [ -x "$VTEPD" ] || die "no vtepd executable at $VTEPD"

step "namespaces and links"
for ns in ha gwa gwb hb; do
    ip netns add "$P-$ns"
    ip -n "$P-$ns" link set lo up
done
ip link add "$P-ah" netns "$P-ha" type veth peer name "$P-aacc" netns "$P-gwa"
ip link add "$P-bh" netns "$P-hb" type veth peer name "$P-bacc" netns "$P-gwb"
ip link add "$P-aul" netns "$P-gwa" type veth peer name "$P-bul" netns "$P-gwb"
ip -n "$P-gwa" addr add "$UL_A/24" dev "$P-aul"
ip -n "$P-gwb" addr add "$UL_B/24" dev "$P-bul"
# The hosts speak IPv4 only, and the gateways put no link-local address on the overlay side:
# the learned tables then hold the two hosts and nothing else.
for ns in ha hb; do
    in_ns "$P-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
for end in "ha $P-ah $HOST_A $MAC_A" "hb $P-bh $HOST_B $MAC_B"; do
    set -- $end
    ip -n "$P-$1" link set "$2" address "$4" mtu "$INNER_MTU" up
    ip -n "$P-$1" addr add "$3/24" dev "$2"
done
for end in "gwa $P-aacc" "gwb $P-bacc" "gwa $P-aul" "gwb $P-bul"; do
    set -- $end
    ip -n "$P-$1" link set "$2" up
done
ip -n "$P-gwa" link set "$P-aacc" addrgenmode none
ip -n "$P-gwb" link set "$P-bacc" addrgenmode none
# Every veth keeps its default offloads (checksum offload, TSO, GSO, GRO on), as users keep
# them on their NICs: vtepd reads and writes super-frames with their virtio_net_hdr.
# DEMO_OFFLOADS=off turns them off on every link instead, standing for NICs without offloads.
if [ "${DEMO_OFFLOADS:-on}" = off ]; then
    for end in "ha $P-ah" "gwa $P-aacc" "hb $P-bh" "gwb $P-bacc" "gwa $P-aul" "gwb $P-bul"; do
        set -- $end
        # Only with DEMO_OFFLOADS=off: stands for a NIC without offloads.
        in_ns "$P-$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null # no-offload NIC
    done
fi

# A kernel VTEP: vxlan0 (dstport 4789 given explicitly, the kernel's default is the pre-IANA
# 8472) learning remote MACs, bridged with the access port; BUM frames head-end to $3.
kernel_vtep() {
    local ns=$1 local_ip=$2 remote_ip=$3 uplink=$4 access=$5
    ip -n "$ns" link add vxlan0 type vxlan id "$VNI" local "$local_ip" dstport 4789 dev "$uplink" learning
    ip -n "$ns" link add br0 type bridge
    ip -n "$ns" link set vxlan0 addrgenmode none
    ip -n "$ns" link set br0 addrgenmode none
    ip -n "$ns" link set vxlan0 master br0
    ip -n "$ns" link set "$access" master br0
    ip -n "$ns" link set vxlan0 up
    ip -n "$ns" link set br0 up
    in_ns "$ns" bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst "$remote_ip"
}

step "site B: Linux kernel vxlan0 (VNI $VNI) + br0, head-end replication to $UL_A"
kernel_vtep "$P-gwb" "$UL_B" "$UL_A" "$P-bul" "$P-bacc"

if [ "$GATEWAY" = kernel ]; then
    step "site A: Linux kernel vxlan0 (VNI $VNI) + br0 (DEMO_GATEWAY=kernel)"
    kernel_vtep "$P-gwa" "$UL_A" "$UL_B" "$P-aul" "$P-aacc"
else
    step "site A: vtepd in $P-gwa (log $STATE/vtepd.log)"
    mkdir -p "$STATE/vtepd"
    # ip netns exec and nohup both exec, so $! is vtepd's own PID.
    ip netns exec "$P-gwa" nohup "$VTEPD" run --state-root "$STATE/vtepd" \
        --physical-switch "$P-ps" --tunnel-ip "$UL_A" --underlay "$P-aul" --port "$P-aacc" \
        >"$STATE/vtepd.log" 2>&1 </dev/null &
    echo $! >"$STATE/vtepd.pid"
    for _ in $(seq 300); do
        [ -S "$STATE/vtepd/db.sock" ] && [ -S "$STATE/vtepd/vtepd.ctl" ] && break
        kill -0 "$(cat "$STATE/vtepd.pid")" 2>/dev/null || die "vtepd exited (see $STATE/vtepd.log)"
        sleep 0.1
    done
    [ -S "$STATE/vtepd/vtepd.ctl" ] || die "vtepd made no control socket in 30 s (see $STATE/vtepd.log)"

    step "site A: hardware_vtep configuration through vtep-ctl"
    vc() { echo "+ vtep-ctl $*"; vtep-ctl --db="unix:$STATE/vtepd/db.sock" "$@"; }
    vc --may-exist add-ps "$P-ps"
    vc --may-exist add-port "$P-ps" "$P-aacc"
    vc --may-exist add-ls "ls$VNI"
    # source_node: vtepd replicates BUM frames itself, one copy to each unknown-dst locator
    # (head-end, as site B's kernel does), and learns what arrives from them; the schema's
    # default, service_node, would relay through site B and learn nothing from it.
    vc set Logical_Switch "ls$VNI" tunnel_key="$VNI" replication_mode=source_node
    # VLAN 0 in vlan_bindings is the untagged traffic of the port.
    vc bind-ls "$P-ps" "$P-aacc" 0 "ls$VNI"
    vc add-mcast-remote "ls$VNI" unknown-dst "$UL_B"
fi

step "ping host B ($HOST_B) from host A"
in_ns "$P-ha" ping -c 3 -i 0.2 -W 2 "$HOST_B"

step "iperf3 from host A to host B, 5 s"
ip netns exec "$P-hb" nohup iperf3 --server --one-off --bind "$HOST_B" \
    >"$STATE/iperf3-server.log" 2>&1 </dev/null &
echo $! >"$STATE/iperf3.pid"
for _ in $(seq 100); do
    in_ns "$P-hb" ss -Hltn sport = :5201 | grep -q . && break
    sleep 0.05
done
in_ns "$P-ha" iperf3 --client "$HOST_B" --time 5

step "site B: bridge fdb show dev vxlan0 (the kernel learned host A, $MAC_A, behind $UL_A)"
in_ns "$P-gwb" bridge fdb show dev vxlan0
if [ "$GATEWAY" = vtepd ]; then
    step "site A: vtepd show mac-table"
    "$VTEPD" show mac-table --control "$STATE/vtepd/vtepd.ctl"
    step "site A: vtepd show counters"
    "$VTEPD" show counters --control "$STATE/vtepd/vtepd.ctl"
else
    step "site A: bridge fdb show dev vxlan0"
    in_ns "$P-gwa" bridge fdb show dev vxlan0
fi

trap - EXIT
cat <<DONE

The demo is up ($GATEWAY at site A). Try:
  ip netns exec $P-ha ping $HOST_B
  ip netns exec $P-gwb tcpdump -ni $P-bul udp port 4789
Take it down with: make demo-down   (or $ROOT/appliance/demo/demo-down.sh)
DONE
