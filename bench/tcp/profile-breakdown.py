#!/usr/bin/env python3
"""Breaks down each vtepd worker's samples from `perf script -F pid,tid,ip,sym` (standard
input) by what their call stacks show. Arguments: SITE=PID for each vtepd (A=1234 B=5678).
Each site's worker is the thread of that process with the most samples. Used by
bench/tcp/profile.sh; the categories are checked in order, the first that matches a stack
takes the sample.
"""
import re
import sys
from collections import Counter, defaultdict

# (label, test on the stack's frames, leaf first). Kernel work a send runs inline (on veth the
# receiver's softirq runs under the sending call: the far site's IP input and tunnel socket
# for an underlay packet, the host's TCP for a frame to an access port) is split by where it
# ends.
INLINE = ("process_backlog", "net_rx_action", "__napi_poll")


def has(stack, *names):
    return any(any(n in f for n in names) for f in stack)


CATEGORIES = [
    ("send, the receiving end's kernel run inline (veth): tunnel socket queue",
     lambda s: has(s, "sendmmsg", "sendmsg", "__sys_sendto") and has(s, *INLINE)
     and has(s, "raw_local_deliver", "raw_rcv", "udp_queue_rcv", "__udp_enqueue", "udp_unicast_rcv",
             "udp_gro_receive", "skb_segment")),
    ("send, the receiving end's kernel run inline (veth): TCP",
     lambda s: has(s, "sendmmsg", "sendmsg", "__sys_sendto") and has(s, *INLINE)
     and has(s, "tcp_v4_rcv", "tcp_v6_rcv")),
    ("send, the receiving end's kernel run inline (veth): IP input, route",
     lambda s: has(s, "sendmmsg", "sendmsg", "__sys_sendto") and has(s, *INLINE)
     and has(s, "ip_rcv", "ip6_rcv", "ip_route_input", "fib_")),
    ("send, the receiving end's kernel run inline (veth): softirq, backlog",
     lambda s: has(s, "sendmmsg", "sendmsg", "__sys_sendto") and has(s, *INLINE, "do_softirq")),
    ("send: device transmit (veth)",
     lambda s: has(s, "sendmmsg", "sendmsg", "__sys_sendto") and has(s, "veth_xmit", "dev_hard_start_xmit")),
    ("send: per message (msghdr, iovec, buffer allocation, copy, header parsing)",
     lambda s: has(s, "sendmmsg", "sendmsg", "__sys_sendto")),
    ("receive system calls (recvmmsg, ring)", lambda s: has(s, "recvmmsg", "recvmsg", "recvfrom")),
    ("poll(2)", lambda s: has(s, "do_sys_poll", "__x64_sys_poll", "__poll")),
    ("vtepd: segmentation, checksums, copies",
     lambda s: has(s, "SuperFrame", "InternetChecksum", "memmove", "memcpy", "stampTrain")),
    ("vtepd: coalescing", lambda s: has(s, "TCPCoalescer")),
    ("vtepd: forwarding decision", lambda s: has(s, "10Forwarding")),
    ("vtepd: other", lambda s: has(s, "DataPlane", "Datapath", "Packet")),
    ("other", lambda s: True),
]


def samples(lines):
    header = re.compile(r"^\s*(\d+)/(\d+)")
    pid = tid = None
    stack = []
    for line in lines:
        line = line.rstrip("\n")
        match = header.match(line)
        if match:
            if pid is not None:
                yield pid, tid, stack
            pid, tid, stack = int(match.group(1)), int(match.group(2)), []
        elif line.strip() and pid is not None:
            parts = line.split(None, 1)
            stack.append(parts[1].split("+")[0] if len(parts) > 1 else "?")
    if pid is not None:
        yield pid, tid, stack


def main():
    sites = {}
    for argument in sys.argv[1:]:
        site, _, pid = argument.partition("=")
        sites[int(pid)] = site
    if not sites:
        sys.exit("usage: perf script -F pid,tid,ip,sym | profile-breakdown.py A=PID [B=PID]")
    by_thread = defaultdict(list)
    for pid, tid, stack in samples(sys.stdin):
        if pid in sites:
            by_thread[(pid, tid)].append(stack)
    columns = []
    for pid, site in sites.items():
        threads = [(len(v), t) for (p, t), v in by_thread.items() if p == pid]
        if not threads:
            print(f"site {site}: no samples of vtepd PID {pid}", file=sys.stderr)
            continue
        count, tid = max(threads)
        total = sum(c for c, _ in threads)
        counts = Counter()
        for stack in by_thread[(pid, tid)]:
            for label, test in CATEGORIES:
                if test(stack):
                    counts[label] += 1
                    break
        columns.append((site, tid, count, total, counts))
    if not columns:
        sys.exit(1)
    print("| where the worker's time goes | " + " | ".join(
        f"site {s} (thread {t}, {c} samples of {n})" for s, t, c, n, _ in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for label, _ in CATEGORIES:
        cells = [f"{100 * counts[label] / count:.1f} %" for _, _, count, _, counts in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
