#!/bin/sh
# Seeds of the fuzz target `ovsdb-rows`: the bytes a real ovsdb-server (Open vSwitch's, with
# the hardware_vtep schema) sends a client that monitors the tables vtepd reads, while vtep-ctl
# builds a gateway and changes it: one stream with `monitor` (RFC 7047: the reply's
# <table-updates>, then `update` notifications), one with `monitor_cond_since` (the reply's
# <table-updates2>, then `update3`). Writes fuzz/corpus/ovsdb-rows/{monitor,cond-since}-stream.
# Needs openvswitch-common, openvswitch-vtep and python3 (appliance/install-deps.sh).
set -eu
out=$(cd "$(dirname "$0")" && pwd)/corpus/ovsdb-rows
dir=$(mktemp -d /tmp/ovsdb-rows-XXXXXX)
ovsdb-tool create "$dir/db" /usr/share/openvswitch/vtep.ovsschema
/usr/sbin/ovsdb-server "$dir/db" --remote="punix:$dir/sock" --pidfile="$dir/pid" \
    --unixctl="$dir/ctl" --no-chdir --log-file="$dir/log" -vconsole:off &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$dir/sock" ] && break; sleep 0.1; done
vtep() { vtep-ctl --db="unix:$dir/sock" --timeout=10 "$@"; }
vtep add-ps ps0
vtep set Physical_Switch ps0 tunnel_ips=10.0.0.1
vtep add-port ps0 p0
vtep add-port ps0 p1
python3 - "$dir/sock" "$out" <<'PY'
import json, socket, subprocess, sys, time
path, out = sys.argv[1], sys.argv[2]
tables = {
    "Physical_Switch": ["name", "description", "tunnel_ips", "ports"],
    "Physical_Port": ["name", "description", "vlan_bindings"],
    "Logical_Switch": ["name", "description", "tunnel_key", "replication_mode", "other_config"],
    "Physical_Locator": ["dst_ip", "encapsulation_type"],
    "Physical_Locator_Set": ["locators"],
    "Ucast_Macs_Remote": ["MAC", "logical_switch", "locator", "ipaddr"],
    "Mcast_Macs_Remote": ["MAC", "logical_switch", "locator_set", "ipaddr"],
    "Ucast_Macs_Local": ["MAC", "logical_switch", "locator", "ipaddr"],
    "Mcast_Macs_Local": ["MAC", "logical_switch", "locator_set", "ipaddr"],
    "Tunnel": ["local", "remote", "bfd_params"],
    "Logical_Router": ["name", "description", "switch_binding", "static_routes", "other_config"],
}
def connect(request):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(json.dumps(request).encode())
    return s
streams = {
    "monitor-stream": connect({"method": "monitor", "id": 0, "params": [
        "hardware_vtep", "vtep", {t: {"columns": c} for t, c in tables.items()}]}),
    "cond-since-stream": connect({"method": "monitor_cond_since", "id": 0, "params": [
        "hardware_vtep", "vtep", {t: [{"columns": c}] for t, c in tables.items()},
        "00000000-0000-0000-0000-000000000000"]}),
}
received = {name: b"" for name in streams}
def drain():
    time.sleep(0.3)
    for name, s in streams.items():
        s.settimeout(0.2)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                received[name] += chunk
        except socket.timeout:
            pass
def vtep(*args):
    subprocess.run(["vtep-ctl", "--db=unix:" + path, "--timeout=10", *args], check=True,
                   stdout=subprocess.DEVNULL)
    drain()
drain()
vtep("add-ls", "ls0")
vtep("set", "Logical_Switch", "ls0", "tunnel_key=5001")
vtep("bind-ls", "ps0", "p0", "100", "ls0")
vtep("bind-ls", "ps0", "p1", "0", "ls0")
vtep("add-ucast-remote", "ls0", "00:11:22:33:44:55", "10.0.0.2")
vtep("add-ucast-remote", "ls0", "00:11:22:33:44:66", "vxlan_over_ipv4", "10.0.0.3")
vtep("add-mcast-remote", "ls0", "unknown-dst", "10.0.0.3")
vtep("add-mcast-remote", "ls0", "unknown-dst", "10.0.0.4")
vtep("add-ucast-local", "ls0", "00:aa:bb:cc:dd:ee", "10.0.0.1")
vtep("add-ls", "ls1")
vtep("set", "Logical_Switch", "ls1", "tunnel_key=6001", "replication_mode=source_node",
     "other_config:arp-suppression=true", "other_config:bum-rate-limit=100")
vtep("set", "Logical_Switch", "ls0", "description=web", "tunnel_key=5002")
vtep("del-mcast-remote", "ls0", "unknown-dst", "10.0.0.4")
vtep("del-ucast-remote", "ls0", "00:11:22:33:44:55")
vtep("unbind-ls", "ps0", "p1", "0")
vtep("--", "--id=@lr", "create", "Logical_Router", "name=lr0",
     "static_routes:0.0.0.0/0=10.0.0.254")
vtep("del-ls", "ls1")
for name, data in received.items():
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)
PY
