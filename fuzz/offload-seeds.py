#!/usr/bin/env python3
"""Seeds of the offload fuzz target (Tests/FuzzChecks `offload`), written into
fuzz/corpus/offload, each named by its SHA-1 as libFuzzer names inputs. The input: a
virtio_net_hdr's six fields (big-endian), the largest segment payload asked for, the port's
MTU for merging, then frames, each after its 2-byte length. The frames: TCP over IPv4 and
IPv6 (one tag or none) with correct checksums or with the pseudo-header sum offload leaves,
UDP for UDP_L4; what the data plane meets from hosts (super-frames) and tunnels (segments to
merge)."""
import hashlib
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "offload")


def fold(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data):
    return ~fold(data) & 0xFFFF


ETHERNET = bytes.fromhex("020000000002 020000000001")
SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SRC6, DST6 = bytes.fromhex("fd" + "00" * 14 + "01"), bytes.fromhex("fd" + "00" * 14 + "02")


def l2(ethertype, vlan):
    return ETHERNET + (struct.pack("!HH", 0x8100, vlan) if vlan else b"") + struct.pack("!H", ethertype)


def tcp_segment(sequence, flags, payload):
    options = b"\x01\x01\x08\x0a" + struct.pack("!II", 1000, 2000)
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", 40000, 5201, sequence, 7777, offset << 4, flags, 502, 0, 0) + options + payload


def with_checksum(segment, pseudo, at, full):
    value = checksum(pseudo + segment) if full else fold(pseudo)
    return segment[:at] + struct.pack("!H", value) + segment[at + 2:]


def tcp4(sequence, flags, payload, full=True, vlan=None):
    segment = tcp_segment(sequence, flags, payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0x1234, 0x4000, 64, 6, 0, SRC4, DST4)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    pseudo = SRC4 + DST4 + struct.pack("!BBH", 0, 6, len(segment))
    return l2(0x0800, vlan) + ip + with_checksum(segment, pseudo, 16, full)


def tcp6(sequence, flags, payload, full=True, vlan=None):
    segment = tcp_segment(sequence, flags, payload)
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(segment), 6, 64, SRC6, DST6)
    pseudo = SRC6 + DST6 + struct.pack("!I3xB", len(segment), 6)
    return l2(0x86DD, vlan) + ip + with_checksum(segment, pseudo, 16, full)


def udp4(payload):
    datagram = struct.pack("!HHHH", 4000, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(datagram), 0x99, 0x4000, 64, 17, 0, SRC4, DST4)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    pseudo = SRC4 + DST4 + struct.pack("!BBH", 0, 17, len(datagram))
    return l2(0x0800, None) + ip + with_checksum(datagram, pseudo, 6, False)


def vnet(flags=0, gso=0, header=0, size=0, start=0, offset=0):
    return struct.pack("!BBHHHH", flags, gso, header, size, start, offset)


def seed(header, segment_size, mtu, frames):
    data = header + struct.pack("!HH", segment_size, mtu)
    for frame in frames:
        data += struct.pack("!H", len(frame)) + frame
    with open(os.path.join(OUT, hashlib.sha1(data).hexdigest()), "wb") as out:
        out.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    data = bytes(i * 7 & 0xFF for i in range(6000))
    # A TSO super-frame over IPv4, its checksum left to offload, cut at 1,400.
    seed(vnet(1, 1, 66, 1448, 34, 16), 1400, 1500, [tcp4(1, 0x18, data[:4000], full=False)])
    # What GRO merged over IPv6 behind a tag, checksum verified, cut at 1,428.
    seed(vnet(2, 4, 90, 1428, 58, 16), 1428, 1500, [tcp6(5, 0x10, data[:3000], vlan=7)])
    # A UDP_L4 super-frame.
    seed(vnet(1, 5, 42, 1000, 34, 6), 1472, 1500, [udp4(data[:2500])])
    # One frame whose checksum is left to finish.
    seed(vnet(1, 0, 0, 0, 34, 16), 0, 1500, [tcp4(9, 0x18, data[:100], full=False)])
    # Four segments of one IPv4 flow to merge, the last with PSH.
    seed(vnet(), 0, 1500, [tcp4(1000 + i * 1448, 0x10 if i < 3 else 0x18, data[i * 1448:(i + 1) * 1448]) for i in range(4)])
    # Three IPv6 segments to merge, then one that does not continue them.
    seed(vnet(), 0, 1500, [tcp6(50 + i * 1428, 0x10, data[i * 1428:(i + 1) * 1428]) for i in range(3)] + [tcp6(1, 0x10, data[:1428])])
    # A super-frame a tunnel carried whole (longer than the port's MTU), then a segment after it.
    seed(vnet(), 0, 1500, [tcp4(1, 0x10, data[:2896], full=False), tcp4(1 + 2896, 0x10, data[2896:2896 + 1448])])


if __name__ == "__main__":
    main()
