#!/usr/bin/env python3
"""Seeds of the fuzz target `netlink`: what this machine's kernel answers the requests vtepd
makes over rtnetlink (route lookups, neighbour lookups and solicitations, errors with the
kernel's extended-ack text) and the dumps a reply datagram may look like (links, addresses,
routes), each with its first message renumbered to the sequence the fuzz check's requests
carry (FuzzChecks.KernelReply.sequence = 1). Writes fuzz/corpus/netlink/NAME.

    python3 fuzz/capture-netlink-replies.py
"""
import os
import socket
import struct

NETLINK_ROUTE = 0
NETLINK_CAP_ACK, NETLINK_EXT_ACK, SOL_NETLINK = 10, 11, 270
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_NEWNEIGH, RTM_GETNEIGH = 18, 22, 26, 28, 30
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_CREATE = 1, 4, 0x300, 0x400
NUD_INCOMPLETE, NTF_USE = 1, 8
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "netlink")


def attribute(kind, payload):
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def exchange(body_type, flags, family_header, attributes=b"", dump=False):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    s.bind((0, 0))
    body = family_header + attributes
    s.send(struct.pack("=IHHII", 16 + len(body), body_type, flags, 77, 0) + body)
    reply = s.recv(65536)
    s.close()
    # The fuzz check's requests are numbered 1: renumber every message of the datagram.
    out, at = bytearray(reply), 0
    while at + 16 <= len(out):
        length = struct.unpack_from("=I", out, at)[0]
        struct.pack_into("=I", out, at + 8, 1)
        if length < 16:
            break
        at += (length + 3) & ~3
    return bytes(out)


def rtmsg(family, dst_len):
    return struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, 0, 0, 0, 0, 0)


def ndmsg(family, ifindex, state=0, flags=0):
    return struct.pack("=BxxxiHBB", family, ifindex, state, flags, 0)


def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


os.makedirs(OUT, exist_ok=True)
lo = socket.if_nametoindex("lo")
v4, v6 = socket.inet_pton(socket.AF_INET, "127.0.0.1"), socket.inet_pton(socket.AF_INET6, "::1")
save("route-v4-local", exchange(RTM_GETROUTE, NLM_F_REQUEST, rtmsg(2, 32), attribute(1, v4)))
save("route-v6-local", exchange(RTM_GETROUTE, NLM_F_REQUEST, rtmsg(10, 128), attribute(1, v6)))
unreachable = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
save("route-v6-unreachable",
     exchange(RTM_GETROUTE, NLM_F_REQUEST, rtmsg(10, 128), attribute(1, unreachable)))
# ENOENT with the kernel's extended-ack text.
save("neighbour-absent",
     exchange(RTM_GETNEIGH, NLM_F_REQUEST, ndmsg(2, lo), attribute(1, v4)))
save("neighbour-no-device",
     exchange(RTM_GETNEIGH, NLM_F_REQUEST, ndmsg(2, 99999), attribute(1, v4)))
save("solicit-refused",
     exchange(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
              ndmsg(2, lo, NUD_INCOMPLETE, NTF_USE), attribute(1, v4)))
ifinfomsg, ifaddrmsg = struct.pack("=Bxxxiii", 0, 0, 0, 0), struct.pack("=BBBBi", 0, 0, 0, 0, 0)
save("dump-links", exchange(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, ifinfomsg))
save("dump-addresses", exchange(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, ifaddrmsg))
save("dump-routes", exchange(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, rtmsg(0, 0)))
