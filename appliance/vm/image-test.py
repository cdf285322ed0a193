#!/usr/bin/env python3
"""The appliance as users get it (make image-test): the image booted under QEMU (TCG), reached
over SSH forwarded to 127.0.0.1, configured only through `ssh admin@... "vtepsh command"`.

  image-test.py IMAGE_DIR OLD_DEB NEW_DEB

1. VM A boots; `show system` over SSH lands in vtepsh; the admin password is set at the
   serial console's first login (login prompts for it); `set hostname`, `restart service`,
   the name is kept; `copy running-config`.
2. VM B boots; the two are joined by a QEMU socket network (the underlay, 127.0.0.1 only);
   each has an access interface tapped to a host namespace this test makes on this machine.
   A logical switch is configured on both through SSH; ping and a TCP transfer cross VXLAN.
3. VM A reboots (`reboot`, confirmed on a terminal): hostname, password, switch config back,
   forwarding again.
4. VM B is updated with `update system` from the image's package to NEW_DEB (copied with
   scp): versions before and after, forwarding resumes with the state kept.

Every name carries a per-run prefix; namespaces, taps and QEMU (by PID) are removed even on
failure. Prints `N passed, N failed`.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from appliance_vm import VM, VMError, free_port  # noqa: E402

image_dir, old_deb, new_deb = sys.argv[1:4]
run_id = f"{os.getpid() % 100000:05d}"
prefix = f"vti{run_id}"
work = tempfile.mkdtemp(prefix=f"vtep-image-test-{run_id}-")
started = time.monotonic()
results = []
vms = []
namespaces = []
taps = []


def log(text):
    print(f"[{time.monotonic() - started:7.1f}s] {text}", flush=True)


def check(name, condition, detail=""):
    results.append((name, bool(condition)))
    log(("PASS " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))
    return bool(condition)


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def cleanup():
    for vm in vms:
        try:
            vm.stop()
        except Exception as e:  # keep cleaning
            log(f"stopping {vm.name}: {e}")
    for ns in namespaces:
        sh("ip", "netns", "delete", ns, check=False)
    for tap in taps:
        sh("ip", "link", "delete", tap, check=False)


def host_namespace(name, tap, address):
    """The host behind an appliance's access port: a namespace on this machine, with the tap
    QEMU has for the VM's eth2 moved into it."""
    ns = f"{prefix}-{name}"
    sh("ip", "netns", "add", ns)
    namespaces.append(ns)
    sh("ip", "link", "set", tap, "netns", ns)
    sh("ip", "-n", ns, "addr", "add", address, "dev", tap)
    sh("ip", "-n", ns, "link", "set", tap, "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    return ns


def make_tap(name):
    tap = f"{prefix}{name}"
    sh("ip", "tuntap", "add", "dev", tap, "mode", "tap")
    taps.append(tap)
    return tap


def console_login_sets_password(vm, password):
    """First console login: admin has no password yet (the seed gave a key, so it is not
    expired): login lets admin in, and vtepsh's `set user admin password` sets it."""
    vm.drain(keep=False)
    vm.type("\r")
    vm.expect("login:", timeout=60)
    vm.type("admin\r")
    vm.expect("> ", timeout=60)
    vm.type("set user admin password\r")
    vm.expect("New password:", timeout=30)
    vm.type(password + "\r")
    vm.expect("Retype new password:", timeout=30)
    vm.type(password + "\r")
    _, seen = vm.expect("Password changed.", "% ", timeout=60)
    vm.type("exit\r")
    return seen


def console_login(vm, password):
    vm.drain(keep=False)
    vm.type("\r")
    vm.expect("login:", timeout=120)
    vm.type("admin\r")
    vm.expect("Password:", timeout=30)
    vm.type(password + "\r")
    _, seen = vm.expect("> ", "Login incorrect", timeout=60)
    vm.type("exit\r")
    return seen


def vtepd_pid(vm):
    """vtepd's pid from `show system` ("vtepd: ... pid N"), None when it does not answer."""
    r = vm.ssh("show system", check=False)
    for line in r.stdout.splitlines():
        if line.startswith("vtepd:") and " pid " in line:
            return line.rsplit(" pid ", 1)[1].strip()
    return None


def ping(ns, address, count=3):
    return sh("ip", "netns", "exec", ns, "ping", "-c", str(count), "-W", "2", address, check=False)


def tcp_transfer(ns_server, ns_client, address, size=4 << 20):
    """`size` random bytes through nc from one namespace to the other; compare digests."""
    source = os.path.join(work, "payload")
    with open(source, "wb") as f:
        f.write(os.urandom(size))
    received = os.path.join(work, "received")
    port = "5201"
    with open(received, "wb") as out:
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns_server, "nc", "-d", "-l", address, port],
            stdout=out, stderr=subprocess.DEVNULL)
        time.sleep(1)
        with open(source, "rb") as src:
            client = subprocess.run(
                ["ip", "netns", "exec", ns_client, "nc", "-N", "-w", "10", address, port],
                stdin=src, capture_output=True, timeout=120)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    with open(source, "rb") as a, open(received, "rb") as b:
        return client.returncode == 0 and a.read() == b.read()


def configure_switch(vm, port="eth2"):
    # Head-end replication to the other VTEP; the access port untagged into VNI 5000. The
    # underlay's MTU leaves room for VXLAN's 50 bytes over the hosts' 1500 (vtepd never
    # fragments: a frame too big for the underlay is dropped and counted).
    other = "192.0.2.2" if vm.name.endswith("a") else "192.0.2.1"
    for line in [
        "set network interface eth1 mtu 1600",
        "add logical-switch web vni 5000",
        f"set logical-switch web replication head-end {other}",
        f"bind switch port {port} vlan 0 logical-switch web",
    ]:
        vm.ssh(line)


try:
    key = os.path.join(work, "id_ed25519")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
    public = open(key + ".pub").read().strip()
    underlay_port = free_port()

    def seed(name, tunnel):
        return (f"hostname = {name}\nmanagement-interface = eth0\nunderlay = eth1\n"
                f"tunnel-ip = {tunnel}/24\nport = eth2\nadmin-authorized-key = {public}\n")

    tap_a, tap_b = make_tap("a"), make_tap("b")
    a = VM(f"{prefix}-a", image_dir, work, key, seed("gw-a-seed", "192.0.2.1"),
           nics=[(f"socket,listen=127.0.0.1:{underlay_port}", "52:54:00:00:01:01"),
                 (f"tap,ifname={tap_a},script=no,downscript=no", "52:54:00:00:01:02")], log=log)
    vms.append(a)
    a.start()
    boot = a.wait_ssh()
    log(f"VM A: SSH answered {boot:.0f} s after QEMU started")
    out = a.ssh("show system").stdout
    check("ssh admin@127.0.0.1 'show system' lands in vtepsh", "vtepsh:" in out and "vtepd:" in out, out)
    old_version = a.ssh("show system update").stdout
    check("show system update names the installed package", "installed: vtep-gateway" in old_version, old_version)
    check("first boot took the hostname from the seed", a.ssh("show hostname").stdout.strip() == "gw-a-seed")
    password = "Appliance-Test-1"
    try:
        seen = console_login_sets_password(a, password)
        check("console: first login without a password, then set user admin password",
              seen.endswith("Password changed."), seen[-300:])
    except VMError as e:
        check("console: first login without a password, then set user admin password", False, str(e))

    a.ssh("set hostname gw-a")
    pid_before = vtepd_pid(a)
    a.ssh("restart service")
    deadline = time.monotonic() + 120
    pid_after = pid_before
    while time.monotonic() < deadline and pid_after in (pid_before, None):
        time.sleep(2)
        pid_after = vtepd_pid(a)
    restarted_at = time.monotonic()
    check(f"restart service: a new vtepd (pid {pid_before} -> {pid_after})",
          pid_after not in (pid_before, None))
    check("restart service: vtepd back, hostname kept", a.ssh("show hostname").stdout.strip() == "gw-a")
    # The unit's private /dev keeps /dev/net/tun (BindPaths=, DeviceAllow=): vxlan-transmit
    # auto's choice is the kernel's to make (whole on Linux 6.17+, trains before), never the
    # sandbox's.
    started_log = a.ssh("show tech-support").stdout
    check("vxlan-transmit auto under the unit: /dev/net/tun opens, the kernel decides",
          "vxlan-transmit auto:" in started_log and "/dev/net/tun" not in started_log
          and ("no UDP-tunnel GSO for TAP devices" in started_log or "written whole" in started_log),
          "\n".join(l for l in started_log.splitlines() if "vxlan-transmit" in l) or started_log[-1500:])
    # Debian 12's kernel (6.1) takes no UDP GSO from packet sockets (6.2): vxlan-trains auto
    # sends trains through UDP sockets (UDP_SEGMENT) instead of one datagram at a time.
    kernel = a.ssh("show system", check=False).stdout
    check("vxlan-trains auto: trains through UDP sockets on a kernel before 6.2",
          "vxlan-trains auto: this kernel (6.1" in started_log
          and "UDP GSO trains leave through the kernel's UDP sockets (UDP_SEGMENT)" in started_log,
          "\n".join(l for l in started_log.splitlines() if "vxlan-trains" in l) or kernel)

    b = VM(f"{prefix}-b", image_dir, work, key, seed("gw-b", "192.0.2.2"),
           nics=[(f"socket,connect=127.0.0.1:{underlay_port}", "52:54:00:00:02:01"),
                 (f"tap,ifname={tap_b},script=no,downscript=no", "52:54:00:00:02:02")], log=log)
    vms.append(b)
    b.start()
    ns_a = host_namespace("ha", tap_a, "10.77.0.1/24")
    ns_b = host_namespace("hb", tap_b, "10.77.0.2/24")
    boot_b = b.wait_ssh()
    log(f"VM B: SSH answered {boot_b:.0f} s after QEMU started")
    configure_switch(a)
    configure_switch(b)
    ok = False
    for attempt in range(15):
        if ping(ns_a, "10.77.0.2", count=2).returncode == 0:
            ok = True
            break
        time.sleep(2)
    check("ping crosses VXLAN between the two appliances", ok, ping(ns_a, "10.77.0.2").stdout)
    check("a 4 MiB TCP transfer crosses VXLAN intact", tcp_transfer(ns_b, ns_a, "10.77.0.2"))
    statistics = a.ssh("show switch statistics").stdout
    trains = [int(l.split()[-1]) for l in statistics.splitlines()
              if l.split()[:1] == ["trains_out"] and l.split()[-1].isdigit()]
    check("A sent the transfer's segments in UDP GSO trains (trains_out)",
          trains != [] and trains[0] > 0, statistics[-1500:])
    # WatchdogSec=20s: a vtepd whose pings stopped would have been killed and restarted.
    waited = time.monotonic() - restarted_at
    pid_now = vtepd_pid(a)
    check(f"watchdog: the same vtepd {waited:.0f} s after its restart (WatchdogSec=20s)",
          waited > 25 and pid_now == pid_after, f"pid {pid_after} -> {pid_now}")
    macs = a.ssh("show switch mac-table").stdout
    check("A learned B's host behind VTEP 192.0.2.2", "192.0.2.2" in macs, macs)
    a.ssh("copy running-config backup.cfg")
    a.ssh("remove logical-switch web")
    gone = "web" not in a.ssh("show switch logical-switches").stdout
    restored = a.ssh("copy backup.cfg running-config", check=False)
    check("copy running-config FILE; remove the switch; copy FILE running-config brings it back",
          gone and restored.returncode == 0 and "web" in a.ssh("show switch logical-switches").stdout,
          restored.stdout + restored.stderr)

    # Reboot A through the shell, confirmed on a terminal.
    reboot = subprocess.run(
        ["ssh", "-tt", "-p", str(a.ssh_port), "-i", key, "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "admin@127.0.0.1", "reboot"],
        input="yes\n", capture_output=True, text=True, timeout=60)
    check("reboot asks for confirmation", "Reboot the appliance now?" in reboot.stdout, reboot.stdout + reboot.stderr)
    went_down = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if a.ssh("show hostname", check=False, timeout=10).returncode != 0:
                went_down = True
                break
        except subprocess.TimeoutExpired:
            went_down = True
            break
        time.sleep(1)
    check("reboot: the appliance goes down", went_down)
    a.started = time.monotonic()
    reboot_time = a.wait_ssh(timeout=600)
    log(f"VM A: back on SSH {reboot_time:.0f} s after it went down")
    check("reboot: a new vtepd", vtepd_pid(a) is not None)
    check("after reboot: hostname kept", a.ssh("show hostname").stdout.strip() == "gw-a")
    check("after reboot: logical switch kept", "web" in a.ssh("show switch logical-switches").stdout)
    ok = any(ping(ns_a, "10.77.0.2", count=2).returncode == 0 or time.sleep(2) for _ in range(15))
    check("after reboot: ping crosses VXLAN again", ok)
    try:
        seen = console_login(a, password)
        check("after reboot: console login with the password set at first login", "Login incorrect" not in seen, seen)
    except VMError as e:
        check("after reboot: console login with the password set at first login", False, str(e))

    # Update B to the new package.
    before = b.ssh("show system update").stdout
    b.scp(new_deb, os.path.basename(new_deb))
    listed = b.ssh("show system update").stdout
    check("show system update lists the copied package as installable", "can be installed" in listed, listed)
    pid_before_update = vtepd_pid(b)
    b.ssh(f"update system {os.path.basename(new_deb)}")
    new_version = subprocess.run(["dpkg-deb", "-f", new_deb, "Version"], capture_output=True, text=True).stdout.strip()
    deadline = time.monotonic() + 600
    after = ""
    while time.monotonic() < deadline:
        time.sleep(5)
        r = b.ssh("show system update", check=False)
        after = r.stdout
        # dpkg shows the new version from its unpacking on; the postinst restarts vtepd
        # after that: done when both are seen.
        pid_now = vtepd_pid(b)
        if (r.returncode == 0 and f"installed: vtep-gateway {new_version}" in after.splitlines()
                and pid_now not in (pid_before_update, None)):
            break
    log(f"update: before {before.splitlines()[0] if before else '?'}; after {after.splitlines()[0] if after else '?'}")
    check("update system installs the new version",
          f"installed: vtep-gateway {new_version}" in after.splitlines(), after)
    check(f"update system: vtepd restarted (pid {pid_before_update} -> {pid_now})",
          pid_now not in (pid_before_update, None))
    check("after update: logical switch kept", "web" in b.ssh("show switch logical-switches").stdout)
    check("after update: hostname kept", b.ssh("show hostname").stdout.strip() == "gw-b")
    ok = any(ping(ns_b, "10.77.0.1", count=2).returncode == 0 or time.sleep(2) for _ in range(20))
    check("after update: forwarding resumes", ok)
except BaseException as e:
    traceback.print_exc()
    check("the test ran to its end", False, str(e))
finally:
    cleanup()
    for vm in vms:
        log(f"{vm.name} console log: {vm.console_log.name}")
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    log(f"VM test took {time.monotonic() - started:.0f} s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 and passed > 0 else 1)
