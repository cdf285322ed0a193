#!/bin/sh
# Captures ovsdb-server's reply to the hardware_vtep monitor request that
# HardwareVTEP.monitorRequests makes (request id 0), byte for byte, into $1
# (default: monitor-reply.json beside this script). Needs openvswitch-common,
# openvswitch-vtep (vtep-ctl) and python3. Row UUIDs differ on every run, so the
# tests that read the fixture must be updated with the new ones.
set -eu
out=${1:-$(dirname "$0")/monitor-reply.json}
dir=$(mktemp -d /tmp/ovsdb-capture-XXXXXX)
ovsdb-tool create "$dir/db" /usr/share/openvswitch/vtep.ovsschema
/usr/sbin/ovsdb-server "$dir/db" --remote="punix:$dir/sock" --pidfile="$dir/pid" \
    --unixctl="$dir/ctl" --no-chdir --log-file="$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
vtep() { vtep-ctl --db="unix:$dir/sock" --timeout=10 "$@"; }
for _ in $(seq 100); do [ -S "$dir/sock" ] && break; sleep 0.1; done
vtep add-ps ps0
vtep set Physical_Switch ps0 tunnel_ips=10.0.0.1
vtep add-ls ls0
vtep set Logical_Switch ls0 tunnel_key=5001
vtep add-port ps0 p0
vtep bind-ls ps0 p0 100 ls0
vtep add-ucast-remote ls0 00:11:22:33:44:55 10.0.0.2
vtep add-mcast-remote ls0 unknown-dst 10.0.0.3
vtep add-ucast-local ls0 00:aa:bb:cc:dd:ee 10.0.0.1
python3 - "$dir/sock" "$out" <<'PY'
import json, socket, sys
tables = {
    "Physical_Switch": ["name", "description", "tunnel_ips", "ports"],
    "Physical_Port": ["name", "description", "vlan_bindings"],
    "Logical_Switch": ["name", "description", "tunnel_key", "replication_mode", "other_config"],
    "Physical_Locator": ["dst_ip", "encapsulation_type"],
    "Physical_Locator_Set": ["locators"],
    "Ucast_Macs_Remote": ["MAC", "logical_switch", "locator", "ipaddr"],
    "Mcast_Macs_Remote": ["MAC", "logical_switch", "locator_set", "ipaddr"],
    "Ucast_Macs_Local": ["MAC", "logical_switch", "locator", "ipaddr"],
}
request = {"method": "monitor", "id": 0, "params": [
    "hardware_vtep", "vtep", {t: {"columns": c} for t, c in tables.items()}]}
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(json.dumps(request).encode())
reply = b""
s.settimeout(1)
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
except socket.timeout:
    pass
open(sys.argv[2], "wb").write(reply)
PY
