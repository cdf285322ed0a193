"""QEMU appliance VMs for the image test: boot the image (TCG), talk to its serial console,
run vtepsh commands over SSH forwarded to 127.0.0.1. Every VM, overlay disk, socket and tap
the test makes carries the run's unique prefix and is removed by `close()`, QEMU stopped by
its PID."""

import os
import shutil
import signal
import socket
import subprocess
import time


class VMError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VM:
    def __init__(self, name, image_dir, work, key, seed, nics=(), memory=1024, log=print):
        self.name = name
        self.work = work
        self.key = key
        self.log = log
        self.ssh_port = free_port()
        self.disk = os.path.join(work, f"{name}.qcow2")
        self.serial_path = os.path.join(work, f"{name}.serial")
        self.console_log = open(os.path.join(work, f"{name}.console.log"), "ab")
        self.seed = os.path.join(work, f"{name}.seed")
        with open(self.seed, "w") as f:
            f.write(seed)
        self.image_dir = image_dir
        self.nics = list(nics)
        self.memory = memory
        self.process = None
        self.serial = None
        self.buffer = b""
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
             os.path.abspath(os.path.join(image_dir, "vtep-gateway.img")), self.disk],
            check=True)

    def start(self):
        command = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
            "-smp", "1", "-m", str(self.memory), "-nographic", "-name", self.name,
            # The disk boots as a machine would: UEFI firmware, systemd-boot from its ESP.
            "-bios", "/usr/share/ovmf/OVMF.fd",
            "-drive", f"file={self.disk},format=qcow2,if=virtio,cache=unsafe",
            "-fw_cfg", f"name=opt/vtep-gateway/seed,file={self.seed}",
            "-netdev", f"user,id=mgmt,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=mgmt",
            "-chardev", f"socket,id=console,path={self.serial_path},server=on,wait=off,logfile={self.console_log.name},logappend=on",
            "-serial", "chardev:console", "-monitor", "none", "-display", "none",
        ]
        for index, (netdev, mac) in enumerate(self.nics):
            command += ["-netdev", f"{netdev},id=n{index}",
                        "-device", f"virtio-net-pci,netdev=n{index},mac={mac}"]
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=self.console_log, stderr=self.console_log,
                                        start_new_session=True)
        for _ in range(100):
            if os.path.exists(self.serial_path):
                break
            if self.process.poll() is not None:
                raise VMError(f"{self.name}: qemu exited with {self.process.returncode}")
            time.sleep(0.1)
        self.serial = socket.socket(socket.AF_UNIX)
        self.serial.connect(self.serial_path)
        self.serial.settimeout(0.5)
        self.buffer = b""
        self.log(f"{self.name}: qemu pid {self.process.pid}, ssh 127.0.0.1:{self.ssh_port}")

    # Serial console
    def expect(self, *patterns, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            for p in patterns:
                i = self.buffer.find(p.encode())
                if i >= 0:
                    seen = self.buffer[: i + len(p)]
                    self.buffer = self.buffer[i + len(p):]
                    return p, seen.decode(errors="replace")
            if time.monotonic() > deadline:
                raise VMError(f"{self.name}: console: none of {patterns} within {timeout} s; "
                              f"last: {self.buffer[-400:].decode(errors='replace')!r}")
            if self.process.poll() is not None:
                raise VMError(f"{self.name}: qemu exited ({self.process.returncode})")
            try:
                data = self.serial.recv(4096)
                if data:
                    self.buffer += data
            except socket.timeout:
                pass

    def type(self, text):
        self.serial.sendall(text.encode())

    # SSH
    def ssh(self, command, check=True, timeout=60, user="admin"):
        result = subprocess.run(
            ["ssh", "-p", str(self.ssh_port), "-i", self.key, "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
             f"{user}@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise VMError(f"{self.name}: ssh {command!r} exited {result.returncode}: "
                          f"{result.stdout}{result.stderr}")
        return result

    def scp(self, source, target):
        subprocess.run(
            ["scp", "-P", str(self.ssh_port), "-i", self.key, "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", source, f"admin@127.0.0.1:{target}"],
            check=True, capture_output=True, timeout=120)

    def wait_ssh(self, timeout=600, command="show hostname"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VMError(f"{self.name}: qemu exited ({self.process.returncode})")
            try:
                last = self.ssh(command, check=False, timeout=20)
                if last.returncode == 0:
                    return time.monotonic() - self.started
            except subprocess.TimeoutExpired:
                pass
            self.drain()
            time.sleep(2)
        raise VMError(f"{self.name}: no answer to ssh {command!r} in {timeout} s: {last}")

    def drain(self, keep=True):
        """Reads what the console printed so far; keep=False forgets it, so the next
        expect() waits for fresh output (a login prompt of this boot, not an earlier one)."""
        if not keep:
            self.buffer = b""
        try:
            while True:
                data = self.serial.recv(65536)
                if not data:
                    break
                self.buffer = (self.buffer + data)[-65536:] if keep else b""
        except (socket.timeout, OSError):
            pass

    def wait_exit(self, timeout=120):
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise VMError(f"{self.name}: still running {timeout} s after the power-off")

    def stop(self):
        if self.serial:
            self.serial.close()
            self.serial = None
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if os.path.exists(self.serial_path):
            os.unlink(self.serial_path)
