#!/usr/bin/env bash
# The soak's disturbances (bench/soak/run.sh starts each as its own process group and stops
# it by PID). Each loops until stopped and writes one line per event to standard output:
# "SECONDS EVENT DETAIL", SECONDS since the loop started.
#
#   chaos.sh reconfig DB_SOCKET PHYSICAL_SWITCH PORT INTERVAL
#       A hardware_vtep change every INTERVAL s with vtep-ctl, in a cycle of eight: a remote
#       MAC to a third VTEP added and removed, storm control on ls100 set and cleared,
#       logical switch ls200 added, bound to PORT VLAN 20, unbound, deleted. None touches
#       what the traffic needs (ls100's bindings and replication), so the counters go on.
#   chaos.sh ovsdb-kill STATE_ROOT VTEPD_PID EVERY
#       Every EVERY s: SIGKILL to vtepd's ovsdb-server (its PID from the pidfile, checked to
#       be an ovsdb-server child of VTEPD_PID), then how long until vtepd has a new one.
#   chaos.sh flap NAMESPACE PORT EVERY
#       Every EVERY s: the access port PORT (in NAMESPACE, vtepd's side of a link) down for 2 s.
#   chaos.sh ctlflood SOAK_PY CONTROL_SOCKET EVERY SECONDS CONNECTIONS
#       Every EVERY s: SECONDS of CONNECTIONS control connections pipelining requests.
set -uo pipefail

start=$SECONDS
event() { echo "$((SECONDS - start)) $*"; }

case ${1:-} in
reconfig)
    db=$2 ps=$3 port=$4 interval=$5
    vc() { vtep-ctl --timeout=3 "--db=unix:$db" "$@" 2>&1; }
    i=0
    while :; do
        case $((i % 8)) in
        0) what="add-ucast-remote" out=$(vc add-ucast-remote ls100 02:00:00:00:00:99 192.168.100.3) ;;
        1) what="del-ucast-remote" out=$(vc del-ucast-remote ls100 02:00:00:00:00:99) ;;
        2) what="storm-control-on" out=$(vc set Logical_Switch ls100 other_config:bum-rate-limit=300 other_config:bum-burst=300) ;;
        3) what="storm-control-off" out=$(vc remove Logical_Switch ls100 other_config bum-rate-limit -- remove Logical_Switch ls100 other_config bum-burst) ;;
        4) what="add-ls" out=$(vc --may-exist add-ls ls200 -- set Logical_Switch ls200 tunnel_key=200) ;;
        5) what="bind-ls" out=$(vc bind-ls "$ps" "$port" 20 ls200) ;;
        6) what="unbind-ls" out=$(vc unbind-ls "$ps" "$port" 20) ;;
        7) what="del-ls" out=$(vc --if-exists del-ls ls200) ;;
        esac
        # shellcheck disable=SC2181
        if [ $? -eq 0 ]; then event ok "$what"; else event failed "$what: ${out//$'\n'/ }"; fi
        i=$((i + 1))
        sleep "$interval"
    done
    ;;
ovsdb-kill)
    state=$2 vtepd=$3 every=$4
    pidof_ovsdb() {
        local f pid
        for f in "$state"/*.pid; do
            [ -f "$f" ] || continue
            pid=$(cat "$f" 2>/dev/null) || continue
            [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = ovsdb-server ] || continue
            [ "$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" = "$vtepd" ] || continue
            echo "$pid"
            return 0
        done
        return 1
    }
    while :; do
        sleep "$every"
        if ! old=$(pidof_ovsdb); then
            event failed "no ovsdb-server child of vtepd $vtepd to kill"
            continue
        fi
        kill -KILL "$old"
        t0=$EPOCHREALTIME
        new=
        for _ in $(seq 300); do
            new=$(pidof_ovsdb) && [ "$new" != "$old" ] && break
            new=
            sleep 0.1
        done
        if [ -n "$new" ]; then
            event ok "killed ovsdb-server $old; vtepd started $new after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s"
        else
            event failed "killed ovsdb-server $old; no new one in 30 s"
        fi
    done
    ;;
flap)
    ns=$2 port=$3 every=$4
    while :; do
        sleep "$every"
        ip -n "$ns" link set "$port" down
        sleep 2
        ip -n "$ns" link set "$port" up
        event ok "flapped $port (2 s down)"
    done
    ;;
ctlflood)
    soak=$2 ctl=$3 every=$4 seconds=$5 connections=$6
    while :; do
        sleep "$every"
        if out=$(python3 "$soak" ctlflood "$ctl" "$seconds" "$connections" 2>&1); then
            event ok "$out"
        else
            event failed "${out//$'\n'/ }"
        fi
    done
    ;;
*)
    echo "usage: $0 reconfig|ovsdb-kill|flap|ctlflood ARGS... (see the comment at the top)" >&2
    exit 2
    ;;
esac
