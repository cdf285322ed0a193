#!/usr/bin/env bash
# make demo-down: removes everything demo-up.sh made. Processes are stopped by the PIDs in
# their PID files (and any process still left in a vgdemo namespace, such as an ovsdb-server
# orphaned by a crashed vtepd, by its PID from `ip netns pids`), then the namespaces, which
# takes their links with them, then the state directory. Safe to run when nothing is up.
set -euo pipefail

P=vgdemo
STATE=${DEMO_STATE:-/tmp/vgdemo}

[ "$(id -u)" -eq 0 ] || { echo "demo-down: needs root" >&2; exit 1; }

# Stops PID $1 if it still runs inside one of the demo's namespaces (a recycled PID
# belonging to anything else is left alone): SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1 what=$2
    kill -0 "$pid" 2>/dev/null || return 0
    case $(ip netns identify "$pid" 2>/dev/null) in
    "$P"-*) ;;
    *) return 0 ;;
    esac
    echo "demo-down: stopping $what (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

if [ -d "$STATE" ]; then
    for pidfile in "$STATE"/*.pid; do
        [ -f "$pidfile" ] || continue
        stop_pid "$(cat "$pidfile")" "$(basename "$pidfile" .pid)"
    done
fi

namespaces=$(ip netns list | awk '{print $1}' | grep "^$P-" || true)
for ns in $namespaces; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        stop_pid "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null || echo process) in $ns"
    done
done
for ns in $namespaces; do
    ip netns del "$ns"
    echo "demo-down: deleted namespace $ns"
done
rm -rf "$STATE"
echo "demo-down: nothing of the demo is left"
