#!/usr/bin/env python3
"""Seeds of the worker fuzz target (Tests/FuzzChecks `worker`), written into
fuzz/corpus/worker, each named by its SHA-1. An input: one byte choosing the worker (0 trains,
1 super-frames written whole, 2 VXLAN read from the underlay's ring), then records `[source,
vnet header (10 bytes), length (2), bytes]`; source 0-2 an access port (p0 untagged in
"web" VNI 5000, p1 a trunk of VLAN 100 "web" and 200 "db", p2 "svc" over GRE key 7000), 3 the
VXLAN socket, 4 the GRE socket, 5 and up the underlay's ring or the clock; bit 7 picks the
IPv6 peer (fd00::9) over 10.0.0.2. Frames built by fuzz/offload-seeds.py's helpers."""
import hashlib
import importlib.util
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("offload_seeds", os.path.join(HERE, "offload-seeds.py"))
o = importlib.util.module_from_spec(spec)
spec.loader.exec_module(o)
OUT = os.path.join(HERE, "corpus", "worker")

HOST_A = bytes.fromhex("020000000001")
REMOTE = bytes.fromhex("02000000000b")


def frame_between(src, dst, frame):
    return dst + src + frame[12:]


def vxlan(vni, inner):
    return struct.pack("!BxxxI", 0x08, vni << 8) + inner


def gre(key, inner):
    return struct.pack("!HHI", 0x2000, 0x6558, key) + inner


def underlay(payload):
    udp = struct.pack("!HHHH", 50000, 4789, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                     bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]))
    ip = ip[:10] + struct.pack("!H", o.checksum(ip)) + ip[12:]
    return bytes.fromhex("020000000001 020000000077 0800") + ip + udp


def arp_request(sender_mac, sender_ip, target_ip):
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, sender_mac, bytes(sender_ip), b"\0" * 6, bytes(target_ip))
    return b"\xff" * 6 + sender_mac + b"\x08\x06" + body


def record(source, frame, header=None, size=0):
    header = header or o.vnet(size=size)
    return bytes([source]) + header + struct.pack("!H", len(frame)) + frame


def seed(worker, records):
    data = bytes([worker]) + b"".join(records)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, hashlib.sha1(data).hexdigest()), "wb") as out:
        out.write(data)


def main():
    data = bytes(i * 7 & 0xFF for i in range(8000))
    tso = o.vnet(1, 1, 66, 1448, 34, 16)
    big = o.tcp4(1, 0x10, data[:5792], full=False)
    segments = [o.tcp4(1000 + i * 1398, 0x10, data[i * 1398:(i + 1) * 1398]) for i in range(3)]
    for worker in (0, 1):
        seed(worker, [
            # Host A is learned on p0; the remote host behind 10.0.0.2 from a tunnel frame.
            record(0, arp_request(HOST_A, [10, 1, 0, 1], [10, 1, 0, 2])),
            record(3, vxlan(5000, frame_between(REMOTE, HOST_A, segments[0]))),
            # A TSO super-frame to it: cut into trains, or written whole.
            record(0, frame_between(HOST_A, REMOTE, big), tso),
            # Segments of one flow back, merged for p0; then a UDP_GRO train of two.
            record(3, b"".join(vxlan(5000, frame_between(REMOTE, HOST_A, s)) for s in segments[1:2])),
            record(3, b"".join(vxlan(5000, frame_between(REMOTE, HOST_A, s)) for s in segments[1:]),
                   size=8 + len(frame_between(REMOTE, HOST_A, segments[1]))),
            # Tagged frames on the trunk, one to db's multicast group.
            record(1, o.tcp4(5, 0x18, data[:200], vlan=100)),
            record(1, o.tcp6(5, 0x18, data[:300], vlan=200)),
            # GRE into svc from fd00::9, and from p2 out over GRE.
            record(0x84, gre(7000, frame_between(REMOTE, HOST_A, segments[0]))),
            record(2, frame_between(HOST_A, REMOTE, big), tso),
            record(9 << 3 | 5, b""),
        ])
    seed(2, [
        record(0, arp_request(HOST_A, [10, 1, 0, 1], [10, 1, 0, 2])),
        record(5, underlay(vxlan(5000, frame_between(REMOTE, HOST_A, segments[0])))),
        record(5, underlay(vxlan(5000, frame_between(REMOTE, HOST_A, segments[1])))),
        record(0, frame_between(HOST_A, REMOTE, big), tso),
    ])


if __name__ == "__main__":
    main()
