#!/usr/bin/env python3
"""The soak's helpers (bench/soak/run.sh): the sampler, the control-socket flood and the
verdict. Standard library only.

  soak.py sample CTL METRICS_URL PID CSV COUNTERS INTERVAL STOPFILE
      Every INTERVAL s until STOPFILE exists: vtepd's RSS, open descriptors, threads (from
      /proc/PID), its MAC-table size (the sum of vtep_mac_entries from METRICS_URL) and
      ovsdb-server's RSS as a CSV row, and vtepd's `counters` (control socket CTL) as one
      JSON line of COUNTERS. Runs in vtepd's namespace (the metrics listen on its loopback).
  soak.py ctlflood CTL SECONDS CONNECTIONS
      Opens CONNECTIONS control connections at once (more than vtepd's 64 are refused) and
      has each pipeline requests (CTL_COMMANDS, default counters,logical-switches,
      nonsense-command) as fast as vtepd reads them for SECONDS; prints "opened N refused M
      answered A errors E".
  soak.py check CSV COUNTERS WARMUP COPIES OUT.md
      The verdict: flatness of each resource after WARMUP s, and the frame accounting of
      every counters snapshot (see ACCOUNTING below); writes the tables to OUT.md, prints
      them, exits 1 when a resource grew or a counter did not add up.
"""
import json
import os
import socket
import sys
import time
import urllib.request

# ---------------------------------------------------------------------------------------
# Control socket


def control(path, command, arguments=None, timeout=5.0):
    """One request on a fresh connection; the result, or raises."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        request = {"id": 1, "command": command}
        if arguments is not None:
            request["arguments"] = arguments
        s.sendall((json.dumps(request) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    answer = json.loads(data)
    if not answer.get("ok"):
        raise RuntimeError(answer.get("error", "refused"))
    return answer["result"]


def counters_result(result):
    """The counters report, whether the result is the report or wraps it."""
    if isinstance(result, dict) and "switches" not in result and len(result) == 1:
        return next(iter(result.values()))
    return result


# ---------------------------------------------------------------------------------------
# Sampler


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def ovsdb_rss(ctl):
    """ovsdb-server's RSS in KiB, from the pidfile beside the control socket; "" if none."""
    state = os.path.dirname(ctl)
    for name in os.listdir(state):
        if name.endswith(".pid") and "ovsdb" in name:
            try:
                pid = int(open(os.path.join(state, name)).read().strip())
                return proc_status(pid)["VmRSS"].split()[0]
            except (OSError, ValueError, KeyError):
                return ""
    return ""


def mac_entries(url):
    total = 0
    with urllib.request.urlopen(url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("vtep_mac_entries{"):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def with_retries(body, attempts=10):
    """vtepd refuses connections beyond its limit while the control flood runs: try again."""
    for i in range(attempts):
        try:
            return body()
        except Exception as e:  # noqa: BLE001 - any failure is retried, the last reported
            last = e
            time.sleep(0.5)
    raise last


def sample(ctl, url, pid, csv_path, counters_path, interval, stopfile):
    pid = int(pid)
    interval = float(interval)
    start = time.monotonic()
    with open(csv_path, "w") as csv, open(counters_path, "w") as out:
        csv.write("seconds,rss_kib,fds,threads,mac_entries,ovsdb_rss_kib\n")
        csv.flush()
        n = 0
        while True:
            # One more sample once STOPFILE appears: the counters after the traffic stopped.
            stopping = os.path.exists(stopfile)
            t = round(time.monotonic() - start)
            try:
                status = proc_status(pid)
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                print(f"sample: vtepd (pid {pid}) is gone", file=sys.stderr)
                return 1
            try:
                macs = with_retries(lambda: mac_entries(url))
            except Exception as e:  # noqa: BLE001
                print(f"sample: metrics unreadable at {t} s: {e}", file=sys.stderr)
                macs = ""
            try:
                report = counters_result(with_retries(lambda: control(ctl, "counters")))
                out.write(json.dumps({"seconds": t, "counters": report}) + "\n")
                out.flush()
            except Exception as e:  # noqa: BLE001
                print(f"sample: counters unreadable at {t} s: {e}", file=sys.stderr)
            csv.write(
                f"{t},{status['VmRSS'].split()[0]},{fds},{status['Threads']},{macs},"
                f"{ovsdb_rss(ctl)}\n")
            csv.flush()
            if stopping:
                break
            # The next slot still ahead: a sample that waited out a control flood (vtepd
            # refuses connections past its limit) skips the slots it overran, so no two rows
            # share a time.
            n = max(n + 1, int((time.monotonic() - start) // interval) + 1)
            next_at = start + n * interval
            while time.monotonic() < next_at and not os.path.exists(stopfile):
                time.sleep(min(0.5, max(0.0, next_at - time.monotonic())))
    return 0


# ---------------------------------------------------------------------------------------
# Control flood


def ctlflood(ctl, seconds, connections):
    seconds, connections = float(seconds), int(connections)
    socks, refused = [], 0
    for _ in range(connections):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(ctl)
            socks.append(s)
        except OSError:
            refused += 1
            s.close()
    # CTL_COMMANDS (environment, comma-separated) chooses the requests; by default a cheap
    # one, one that reads the database, and one vtepd refuses.
    commands = os.environ.get("CTL_COMMANDS") or "counters,logical-switches,nonsense-command"
    requests = [
        (json.dumps({"id": i + 1, "command": c}) + "\n").encode()
        for i, c in enumerate(commands.split(","))
    ]
    answered = errors = 0
    buffers = {s: b"" for s in socks}
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline and socks:
        for s in list(socks):
            try:
                s.send(requests[i % len(requests)])
            except BlockingIOError:
                pass
            except OSError:
                socks.remove(s)  # vtepd closed it (over the limit): counted below
                refused += 1
                continue
            try:
                while True:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        socks.remove(s)
                        refused += 1
                        break
                    buffers[s] += chunk
                    *lines, buffers[s] = buffers[s].split(b"\n")
                    for line in lines:
                        try:
                            if json.loads(line).get("ok"):
                                answered += 1
                            else:
                                errors += 1
                        except ValueError:
                            errors += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                if s in socks:
                    socks.remove(s)
                refused += 1
        i += 1
        time.sleep(0.002)
    for s in socks:
        s.close()
    print(f"opened {connections} refused {refused} answered {answered} errors {errors}")
    return 0


# ---------------------------------------------------------------------------------------
# Verdict
#
# ACCOUNTING. vtepd counts every frame it reads once, and the worker's `counters` are read
# between two batches, so no frame is half counted: every equation below must hold exactly
# (off by 0) in every snapshot. A super-frame counts as the frames it stands for everywhere.
#
#  A. access in:  Σ port rxFrames = Σ switch fromAccess + no_binding + qinq_on_access_port
#                 + port_not_configured (+ truncated and malformed frames refused before a
#                 switch is known, which vtepd does not split by side: zero in this traffic)
#  T. tunnel in:  Σ vtep rxFrames = Σ switch fromTunnel + unknown_vni (a tunnel packet is
#                 counted against its VTEP after the decision; one refused before it, as
#                 malformed VXLAN, truncated or from an unknown sender, is only a drop)
#  D. decided, per switch: fromAccess + fromTunnel = encapsulated + toAccess + flooded
#                 + drops (+ neighbourAnswered with ARP suppression): every frame of a
#                 switch is one decision: unicast out, flooded once, or dropped once
#  E. out:        encapsulated + toAccess + Σ copies(s) × flooded(s) = Σ vtep txFrames
#                 + Σ port txFrames + underlay_too_big + transmit_queue_full + send_failed
#                 + too_big_for_port + no_local_address + destination_gone
#                 A flood counts once in `flooded` however many copies it makes; each copy
#                 is one frame in the tx counter of the port or VTEP it went to, or one
#                 egress drop. copies(s) is what the lab's configuration gives: switch ls100
#                 has three access attachments and one replication VTEP, so a flood from an
#                 access port makes 2 + 1 copies and one from the tunnel 3: 3 either way (a
#                 copy to a port whose link is down is a send_failed drop, still one copy).
#                 E is checked from the first sample on (each snapshot's difference minus
#                 the first's): frames flooded while the lab was being configured, before
#                 hosts C's and D's ports joined ls100, made fewer copies.
#  E per side:    floods from access F_a are not counted apart from those from tunnels, so
#                 the tunnel side gives F_a = Σ vtep tx + tunnel-only egress drops −
#                 encapsulated (one replication VTEP), which must lie in [0, flooded]; the
#                 access side is then E's remainder.
# Frames the kernel dropped before vtepd read them (access_receive_overrun,
# underlay_receive_overrun) are in no rx counter and are reported beside, not in, A and T.

EGRESS_DROPS = [
    "underlay_too_big", "transmit_queue_full", "send_failed", "too_big_for_port",
    "no_local_address", "destination_gone",
]


def accounting(report, copies):
    drops = {d["reason"]: d["count"] for d in report.get("drops", [])}
    d = lambda name: drops.get(name, 0)  # noqa: E731
    switches = report.get("switches", [])
    ports = report.get("ports", [])
    vteps = report.get("vteps", [])
    from_access = sum(s["fromAccess"] for s in switches)
    from_tunnel = sum(s["fromTunnel"] for s in switches)
    port_rx = sum(p["rxFrames"] for p in ports)
    port_tx = sum(p["txFrames"] for p in ports)
    vtep_rx = sum(v["rxFrames"] for v in vteps)
    vtep_tx = sum(v["txFrames"] for v in vteps)
    rows = {}
    access_drops = d("no_binding") + d("qinq_on_access_port") + d("port_not_configured")
    rows["A access in"] = (port_rx, from_access + access_drops)
    rows["T tunnel in"] = (vtep_rx, from_tunnel + d("unknown_vni"))
    for s in switches:
        decided = (s["encapsulated"] + s["toAccess"] + s["flooded"] + s["drops"]
                   + (s.get("neighbourAnswered") or 0))
        rows[f"D {s['name']} decided"] = (s["fromAccess"] + s["fromTunnel"], decided)
    expected = sum(s["encapsulated"] + s["toAccess"] for s in switches) + sum(
        copies.get(s["name"], 0) * s["flooded"] for s in switches)
    egress_drops = sum(d(r) for r in EGRESS_DROPS)
    rows["E out (copies)"] = (expected, vtep_tx + port_tx + egress_drops)
    encapsulated = sum(s["encapsulated"] for s in switches)
    flooded = sum(s["flooded"] for s in switches)
    implied = vtep_tx + d("underlay_too_big") + d("no_local_address") - encapsulated
    extra = {
        "ambiguous": d("truncated") + d("malformed"),
        "overruns": d("access_receive_overrun") + d("underlay_receive_overrun"),
        "implied_floods_from_access": implied,
        "flooded": flooded,
        "port_rx": port_rx, "port_tx": port_tx, "vtep_rx": vtep_rx, "vtep_tx": vtep_tx,
        "egress_drops": egress_drops, "drops": drops,
    }
    return rows, extra


def thirds(samples, warmup):
    after = [r for r in samples if r[0] >= warmup]
    n = len(after) // 3
    if n == 0:
        return None, None
    return after[:n], after[-n:]


def check(csv_path, counters_path, warmup, copies_arg, out_path):
    warmup = float(warmup)
    copies = {}
    for item in copies_arg.split(","):
        if item:
            name, _, k = item.partition(":")
            copies[name] = int(k)
    header, *lines = open(csv_path).read().split("\n")
    names = header.split(",")
    samples = []
    for line in lines:
        if not line:
            continue
        values = line.split(",")
        samples.append([float(v) if v else None for v in values])
    failures = []
    out = []
    # Flatness: the median of the last third of the samples after warm-up against the median
    # of the first third; growth beyond the allowance fails. Medians, not maxima: a sample
    # taken during a control-socket flood holds 64 more descriptors for those 5 s, which is
    # no leak; a leak moves the median. The maxima are shown beside.
    allowance = {
        "rss_kib": (0.10, 4096), "fds": (0.0, 4), "threads": (0.0, 2), "mac_entries": (0.10, 64)
    }
    out.append("| resource | first third after warm-up: median (max) | last third: median (max) "
               "| growth of the median | allowed | verdict |")
    out.append("|---|---|---|---|---|---|")
    first, last = thirds(samples, warmup)
    if first is None:
        failures.append(f"fewer than 3 samples after the {warmup:.0f} s warm-up")
    else:
        for column, (fraction, absolute) in allowance.items():
            i = names.index(column)
            va = sorted(r[i] for r in first if r[i] is not None)
            vb = sorted(r[i] for r in last if r[i] is not None)
            if not va or not vb:
                failures.append(f"{column}: no samples")
                continue
            a, b = va[(len(va) - 1) // 2], vb[(len(vb) - 1) // 2]
            allowed = max(a * fraction, absolute)
            growth = b - a
            ok = growth <= allowed
            if not ok:
                failures.append(f"{column} grew by {growth:.0f} (allowed {allowed:.0f})")
            unit = " KiB" if column.endswith("kib") else ""
            out.append(f"| {column} | {a:.0f}{unit} ({va[-1]:.0f}) | {b:.0f}{unit} ({vb[-1]:.0f}) "
                       f"| {growth:+.0f}{unit} | {allowed:.0f}{unit} | {'flat' if ok else 'GREW'} |")
    # Counters: every snapshot's equations, and that no counter went backwards.
    snapshots = [json.loads(l) for l in open(counters_path) if l.strip()]
    if not snapshots:
        failures.append("no counters snapshot")
    worst = {}
    previous = None
    resets = []
    baseline = {}
    if snapshots:
        rows, _ = accounting(snapshots[0]["counters"], copies)
        baseline = {name: left - right for name, (left, right) in rows.items()
                    if name.startswith("E ")}
    for snap in snapshots:
        rows, extra = accounting(snap["counters"], copies)
        for name, (left, right) in rows.items():
            off = left - right - baseline.get(name, 0)
            if name not in worst or abs(off) > abs(worst[name][0]):
                worst[name] = (off, snap["seconds"])
        if extra["implied_floods_from_access"] < 0 or (
                extra["implied_floods_from_access"] > extra["flooded"]):
            failures.append(f"implied floods from access {extra['implied_floods_from_access']} "
                            f"outside [0, {extra['flooded']}] at {snap['seconds']} s")
        totals = {f"switch {s['name']} {k}": s[k] for s in snap["counters"].get("switches", [])
                  for k in ("fromAccess", "fromTunnel", "flooded", "drops")}
        totals.update({f"port {p['name']} {k}": p[k] for p in snap["counters"].get("ports", [])
                       for k in ("rxFrames", "txFrames")})
        totals.update({f"drop {k}": v for k, v in extra["drops"].items()})
        if previous:
            for k, v in totals.items():
                if k in previous and v < previous[k]:
                    resets.append(f"{k} went from {previous[k]} to {v} at {snap['seconds']} s")
        previous = totals
    if resets:
        failures.append(f"{len(resets)} counter(s) went backwards, first: {resets[0]}")
    if snapshots:
        final = snapshots[-1]
        rows, extra = accounting(final["counters"], copies)
        out.append("")
        out.append(f"Frame accounting from vtepd's own counters (`counters` on its control "
                   f"socket), the last snapshot ({final['seconds']} s) and the largest "
                   f"difference in any of the {len(snapshots)} snapshots:")
        out.append("")
        out.append("| equation | left | right | off | largest off (at) | verdict |")
        out.append("|---|---|---|---|---|---|")
        for name, (left, right) in rows.items():
            off = left - right - baseline.get(name, 0)
            w, at = worst.get(name, (0, 0))
            ok = off == 0 and w == 0
            if name.startswith(("A ", "T ")) and extra["ambiguous"] and abs(w) <= extra["ambiguous"]:
                ok = True  # within the truncated/malformed frames vtepd does not split by side
            if not ok:
                failures.append(f"{name}: off by {off} (largest {w} at {at} s)")
            note = ""
            if name in baseline:
                note = f" (from the first sample: {baseline[name]:+d} then)"
            out.append(f"| {name}{note} | {left} | {right} | {off:+d} | {w:+d} ({at} s) "
                       f"| {'adds up' if ok else 'OFF'} |")
        out.append("")
        out.append(
            f"Egress per side: Σ vtep tx {extra['vtep_tx']}, Σ access-port tx {extra['port_tx']}, "
            f"egress drops {extra['egress_drops']}; floods from access (implied by the tunnel "
            f"side) {extra['implied_floods_from_access']} of {extra['flooded']} floods. "
            f"Receive overruns (kernel drops before vtepd read, in no rx counter): "
            f"{extra['overruns']}. Truncated + malformed: {extra['ambiguous']}.")
        nonzero = sorted((k, v) for k, v in extra["drops"].items() if v)
        out.append("")
        out.append("Drops by reason (last snapshot): " + (", ".join(
            f"{k} {v}" for k, v in nonzero) or "none") + ".")
    if resets:
        out.append("")
        out.append("Counters that went backwards: " + "; ".join(resets[:5]) + ".")
    out.append("")
    out.append("Verdict: " + ("PASS: every resource flat after warm-up, every equation adds up."
                              if not failures else "FAIL: " + "; ".join(failures) + "."))
    text = "\n".join(out) + "\n"
    open(out_path, "w").write(text)
    print(text)
    return 1 if failures else 0


def main(argv):
    commands = {"sample": (sample, 7), "ctlflood": (ctlflood, 3), "check": (check, 5)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    body, _ = commands[argv[1]]
    return body(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
