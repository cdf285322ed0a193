#!/usr/bin/env bash
# Captures real Linux-kernel VXLAN traffic between two network namespaces and writes the
# golden pcap fixtures that Tests/PacketTests/GoldenCaptureTests.swift checks.
#
# Recorded with: Linux 6.18.44 (x86_64), iproute2 6.1.0, tcpdump 4.99.3 / libpcap 1.10.3,
# iputils-ping 20221126, netcat-openbsd 1.219, ethtool 6.1 (Debian 12 packages).
# Needs root, `ip netns`, veth and the kernel vxlan driver. Touches nothing outside the two
# namespaces it creates; every name carries the prefix vgk<pid>- and is removed on exit.
#
# Topology (all addresses live only inside the two namespaces):
#
#   ns A                                         ns B
#   vx (vxlan id 5001 dstport 4789)              vx (vxlan id 5001 dstport 4789)
#     02:00:00:00:51:01                            02:00:00:00:51:02
#     192.168.51.1/24  fd51::1/64                  192.168.51.2/24  fd51::2/64
#   u (veth) 02:00:00:00:88:01  ---------------  u (veth) 02:00:00:00:88:02
#     10.88.0.1/24  fd88::1/64                     10.88.0.2/24  fd88::2/64
#
# The inner address sits directly on the vxlan device: the kernel builds every packet (ARP,
# ND, ICMP, TCP, the VXLAN/UDP/IP outer headers). Transmit checksum offload is turned off on
# both devices so the captured frames carry the checksums a real wire would see (over veth a
# CHECKSUM_PARTIAL packet is never completed). IPv6 autoconfiguration, DAD and router
# solicitation are off so the captures hold only the traffic we generate. The vxlan UDP source
# port comes from the kernel's default range (net.ipv4.ip_local_port_range, 32768–60999). The
# device details as recorded (`ip -d link show vx` in A, IPv4 underlay):
#   vxlan id 5001 remote 10.88.0.2 local 10.88.0.1 dev u srcport 0 0 dstport 4789 ttl auto
#   ageing 300 udpcsum noudp6zerocsumtx noudp6zerocsumrx addrgenmode none
# i.e. the outer UDP checksum is filled in over both IPv4 and IPv6; the outer IPv4 header has
# DF clear and a per-packet IP ID; TTL/hop limit 64.
#
# Exact capture commands (run in ns A, on the underlay veth "u"):
#   kernel-vxlan-ipv4.pcap        tcpdump -i u -s 256 -U -w F 'udp port 4789'
#                                 ; ping -c 3 -i 0.2 192.168.51.2      (vxlan local 10.88.0.1 remote 10.88.0.2)
#   kernel-vxlan-inner-ipv6.pcap  tcpdump -i u -s 256 -U -w F 'udp port 4789'
#                                 ; ping -6 -c 2 -i 0.2 fd51::2        (same IPv4 underlay)
#   kernel-vxlan-inner-tcp.pcap   tcpdump -i u -s 256 -U -w F 'udp port 4789'
#                                 ; B: nc -l 192.168.51.2 7000 ; A: printf 'hello vtep\n' | nc -N -p 40000 192.168.51.2 7000
#   kernel-vxlan-ipv6.pcap        tcpdump -i u -s 256 -U --time-stamp-precision=nano -w F 'udp port 4789'
#                                 ; ping -c 3 -i 0.2 192.168.51.2      (vxlan local fd88::1 remote fd88::2)
# (kernel-vxlan-ipv6.pcap is written with nanosecond timestamps, magic a1b23c4d, so the
# reader's nanosecond path is exercised by a real file.)
#
# Usage: sudo ./capture-kernel-vxlan.sh [output-dir]   (default: this script's directory)
set -euo pipefail

for cmd in ip tcpdump tshark ping nc ethtool; do
    command -v "$cmd" >/dev/null || { echo "$0 needs $cmd (apt-get install iproute2 tcpdump tshark iputils-ping netcat-openbsd ethtool)" >&2; exit 1; }
done

OUT=${1:-$(cd "$(dirname "$0")" && pwd)}
P="vgk$$-"
NSA="${P}a"
NSB="${P}b"
TMP=$(mktemp -d "/tmp/${P}XXXX")
PIDS=()

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    ip netns del "$NSA" 2>/dev/null
    ip netns del "$NSB" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

a() { ip netns exec "$NSA" "$@"; }
b() { ip netns exec "$NSB" "$@"; }

ip netns add "$NSA"
ip netns add "$NSB"
for ns in "$NSA" "$NSB"; do
    # No autoconfiguration noise (RS, DAD, link-local) on devices created from here on.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.router_solicitations=0 \
        net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.default.dad_transmits=0 \
        net.ipv6.conf.default.addr_gen_mode=1 net.ipv6.conf.all.accept_dad=0
    ip netns exec "$ns" ip link set lo up
done

# The underlay veth pair, created directly inside the namespaces (no host-side name).
ip link add "${P}u" netns "$NSA" address 02:00:00:00:88:01 type veth \
    peer name "${P}u" netns "$NSB" address 02:00:00:00:88:02
a ip link set "${P}u" name u
b ip link set "${P}u" name u
for ns in "$NSA" "$NSB"; do ip netns exec "$ns" ethtool -K u tx off >/dev/null; done
a ip addr add 10.88.0.1/24 dev u
b ip addr add 10.88.0.2/24 dev u
a ip addr add fd88::1/64 dev u nodad
b ip addr add fd88::2/64 dev u nodad
a ip link set u up
b ip link set u up

# make_vxlan NS MAC LOCAL REMOTE INNER4: (re)creates the vxlan device "vx" in NS.
make_vxlan() {
    local ns=$1 mac=$2 local=$3 remote=$4 inner4=$5
    ip netns exec "$ns" ip link del vx 2>/dev/null || true
    ip netns exec "$ns" ip link add vx address "$mac" type vxlan id 5001 dstport 4789 \
        local "$local" remote "$remote" dev u
    ip netns exec "$ns" ethtool -K vx tx off >/dev/null
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.vx.disable_ipv6=1
    ip netns exec "$ns" ip addr add "$inner4" dev vx
    ip netns exec "$ns" ip link set vx up
}

# capture FILE [tcpdump options…] -- COMMAND…: captures VXLAN on A's underlay while COMMAND runs.
capture() {
    local file=$1; shift
    local opts=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    a ip neigh flush dev vx
    b ip neigh flush dev vx
    # Started without a wrapper function so that $! is tcpdump itself (ip netns exec execs).
    ip netns exec "$NSA" tcpdump -i u -s 256 -U -n "${opts[@]}" -w "$TMP/$file" \
        'udp port 4789' 2>"$TMP/$file.log" &
    local pid=$!
    PIDS+=("$pid")
    # Wait until tcpdump is really listening.
    for _ in $(seq 50); do grep -q 'listening on' "$TMP/$file.log" 2>/dev/null && break; sleep 0.1; done
    "$@"
    sleep 1
    kill -TERM "$pid"
    wait "$pid" || true
    cp "$TMP/$file" "$OUT/$file"
    echo "$file: $(tshark -r "$OUT/$file" 2>/dev/null | wc -l) packets, $(stat -c %s "$OUT/$file") bytes"
}

# --- IPv4 underlay ---------------------------------------------------------------------
make_vxlan "$NSA" 02:00:00:00:51:01 10.88.0.1 10.88.0.2 192.168.51.1/24
make_vxlan "$NSB" 02:00:00:00:51:02 10.88.0.2 10.88.0.1 192.168.51.2/24
a ip -d link show vx | sed -n 's/^ *\(vxlan id .*\)/A vx: \1/p'
sleep 1
capture kernel-vxlan-ipv4.pcap -- a ping -q -c 3 -i 0.2 192.168.51.2

# Inner IPv6: ICMPv6 echo plus neighbour discovery (NS to the solicited-node group is BUM
# traffic: the kernel sends it to the default remote). Wait out the MLD reports that adding
# the address triggers so they stay out of the capture.
for ns in "$NSA" "$NSB"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.vx.disable_ipv6=0; done
a ip addr add fd51::1/64 dev vx nodad
b ip addr add fd51::2/64 dev vx nodad
sleep 4
capture kernel-vxlan-inner-ipv6.pcap -- a ping -6 -q -c 2 -i 0.2 fd51::2

# Inner TCP: a complete short connection (ARP, handshake, 11 bytes of data, FIN exchange).
ip netns exec "$NSB" nc -l 192.168.51.2 7000 >/dev/null &
PIDS+=($!)
sleep 0.5
tcp_client() { printf 'hello vtep\n' | a nc -N -p 40000 192.168.51.2 7000; }
capture kernel-vxlan-inner-tcp.pcap -- tcp_client

# --- IPv6 underlay ---------------------------------------------------------------------
make_vxlan "$NSA" 02:00:00:00:51:01 fd88::1 fd88::2 192.168.51.1/24
make_vxlan "$NSB" 02:00:00:00:51:02 fd88::2 fd88::1 192.168.51.2/24
sleep 1
capture kernel-vxlan-ipv6.pcap --time-stamp-precision=nano -- a ping -q -c 3 -i 0.2 192.168.51.2
