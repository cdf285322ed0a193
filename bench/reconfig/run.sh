#!/usr/bin/env bash
# How long vtepd takes to apply a hardware_vtep change while traffic flows: the time from
# `vtep-ctl` returning to the first frame on the wire that shows the change. The issue asks
# for "takes effect within a second"; this measures it (tests never assert it).
#
# Topology (all namespaces prefixed $P, default vgrc):
#
#   host --veth (h / a)--> dut (vtepd, 192.0.2.1) --veth (u1 / w1)--+
#                                  b (kernel vxlan, 192.0.2.2) --(w2)-+-- br0 in sw
#                                  c (kernel vxlan, 192.0.2.3) --(w3)-+
#
# Traffic: trafgen in host sends 1,000 frames a second (one every ms: the resolution of every
# figure) from 02:00:0a:00:00:01 to 02:00:00:00:00:99, a MAC nobody owns, so vtepd floods
# them head-end to the switch's `unknown-dst` locator, site b. Captured with tcpdump on w2
# and w3 for the whole run. Each repetition makes three changes, SETTLE seconds apart:
#
#   add-ucast-remote  ls 02:00:00:00:00:99 → 192.0.2.3: first frame to 99 unicast to c;
#   del-ucast-remote  ls 02:00:00:00:00:99:              first frame to 99 flooded to b again;
#   bind-ls           the access port to the other switch (ls5001 ↔ ls5002, VNI 5001 ↔
#                     5002, both replicating to b; unbind-ls and bind-ls in one vtep-ctl
#                     transaction): first frame to b in the new VNI.
#
# The latency of a change is the capture timestamp of its first such frame (kernel time, the
# same clock as bash's $EPOCHREALTIME) minus the time vtep-ctl returned. A change with no
# such frame before the next change is reported as missed. REPS (default 20) repetitions; the
# table (median, p90, max per change) goes to standard output and
# bench/results/reconfig-<date>.md.
# Every process started here is stopped by PID and every namespace deleted on exit, also on
# failure or Ctrl-C. VTEPD=/path/to/vtepd skips the release build.
set -euo pipefail

REPS=${REPS:-20}
SETTLE=${SETTLE:-1.5}
P=${P:-vgrc}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${RESULTS:-$ROOT/bench/results/reconfig-$(date +%Y-%m-%d).md}
WORK=$(mktemp -d "/tmp/$P.XXXXXX")
DUT_IP=192.0.2.1 B_IP=192.0.2.2 C_IP=192.0.2.3
MAC_X=02:00:00:00:00:99

die() { echo "reconfig: $*" >&2; exit 1; }
log() { echo "reconfig: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root for network namespaces"
for tool in ip trafgen tcpdump tshark awk vtep-ctl ovsdb-server; do
    command -v "$tool" >/dev/null || die "$tool not found; run appliance/install-deps.sh"
done
NAMESPACES="sw host dut b c"
for n in $NAMESPACES; do
    ip netns list | grep -q "^$P$n\b" &&
        die "namespace $P$n exists already (another run, or a crashed one: ip netns del it)"
done

PIDS=()
cleanup() {
    local status=$?
    teardown
    if [ "$status" -ne 0 ] && [ -f "$WORK/vtepd.log" ]; then
        echo "--- last lines of vtepd's log:" >&2
        tail -n 30 "$WORK/vtepd.log" >&2 || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops the process group led by PID $1: SIGINT, up to 5 s, then SIGKILL. Each process
# started here leads its own group (setsid), so the group is ours and nothing else.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 -- "-$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Stops what this run started, then anything still inside its namespaces (an ovsdb-server
# that outlived vtepd, say) by the PIDs `ip netns pids` names, then deletes the namespaces.
teardown() {
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
    for n in $NAMESPACES; do
        for pid in $(ip netns pids "$P$n" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    done
    sleep 0.2
    for n in $NAMESPACES; do
        for pid in $(ip netns pids "$P$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$P$n" 2>/dev/null || true
    done
}

topology() {
    for n in $NAMESPACES; do
        ip netns add "$P$n"
        ip -n "$P$n" link set lo up
    done
    ip netns exec "${P}host" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n "${P}sw" link add br0 type bridge mcast_snooping 0 stp_state 0
    ip -n "${P}sw" link set br0 up
    local i=1
    for n in dut b c; do
        ip link add "${P}u$i" netns "$P$n" type veth peer name "${P}w$i" netns "${P}sw"
        ip -n "${P}sw" link set "${P}w$i" master br0
        ip -n "${P}sw" link set "${P}w$i" up
        ip -n "$P$n" link set "${P}u$i" up
        ip -n "$P$n" addr add "192.0.2.$i/24" dev "${P}u$i"
        i=$((i + 1))
    done
    ip link add "${P}h" netns "${P}host" type veth peer name "${P}a" netns "${P}dut"
    ip -n "${P}host" link set "${P}h" address 02:00:0a:00:00:01
    ip -n "${P}dut" link set "${P}a" addrgenmode none
    ip -n "${P}host" link set "${P}h" up
    ip -n "${P}dut" link set "${P}a" up
    # b and c take VXLAN for both VNIs and deliver it nowhere: no ICMP port unreachable
    # goes back to vtepd, and nothing they do moves the figures.
    for x in "b $B_IP 2" "c $C_IP 3"; do
        set -- $x
        for vni in 5001 5002; do
            ip -n "$P$1" link add "vx$vni" type vxlan id $vni local "$2" dstport 4789 \
                dev "${P}u$3" nolearning
            ip -n "$P$1" link set "vx$vni" up
        done
    done
    # Underlay neighbours resolved and the bridge's MAC table filled before anything counts.
    for ip in $B_IP $C_IP; do
        ip netns exec "${P}dut" ping -c 1 -W 5 "$ip" >/dev/null || die "underlay: cannot reach $ip"
    done
    ip netns exec "${P}b" ping -c 1 -W 5 "$C_IP" >/dev/null || die "underlay: b cannot reach c"
}

VC=()
start_vtepd() {
    local state="$WORK/vtepd-state"
    mkdir -p "$state"
    setsid ip netns exec "${P}dut" "$VTEPD" run --state-root "$state" --physical-switch "${P}ps" \
        --tunnel-ip "$DUT_IP" --underlay "${P}u1" --port "${P}a" >"$WORK/vtepd.log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    for _ in $(seq 300); do
        [ -S "$state/db.sock" ] && [ -S "$state/vtepd.ctl" ] && break
        kill -0 "$pid" 2>/dev/null || die "vtepd exited at start"
        sleep 0.1
    done
    [ -S "$state/vtepd.ctl" ] || die "vtepd made no control socket in 30 s"
    VC=(vtep-ctl "--db=unix:$state/db.sock")
    "${VC[@]}" --may-exist add-ps "${P}ps"
    "${VC[@]}" --may-exist add-port "${P}ps" "${P}a"
    for vni in 5001 5002; do
        "${VC[@]}" --may-exist add-ls ls$vni
        "${VC[@]}" set Logical_Switch ls$vni tunnel_key=$vni replication_mode=source_node
        "${VC[@]}" add-mcast-remote ls$vni unknown-dst $B_IP
    done
    "${VC[@]}" bind-ls "${P}ps" "${P}a" 0 ls5001
}

# Starts tcpdump on w$1 writing $WORK/w$1.pcap; returns once it listens.
start_capture() {
    local port=$1
    setsid ip netns exec "${P}sw" tcpdump -i "${P}w$port" --immediate-mode -n -U -s 128 -Z root \
        -w "$WORK/w$port.pcap" udp port 4789 >"$WORK/tcpdump-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do
        grep -q "listening on" "$WORK/tcpdump-$port.log" 2>/dev/null && return 0
        sleep 0.05
    done
    die "tcpdump on ${P}w$port did not start: $(cat "$WORK/tcpdump-$port.log")"
}

# frames PORT: one line per captured VXLAN frame: epoch time, VNI, inner destination MAC.
frames() {
    tshark -n -r "$WORK/w$1.pcap" -Y vxlan -T fields -E separator=' ' -E occurrence=l \
        -e frame.time_epoch -e vxlan.vni -e eth.dst 2>/dev/null
}

if [ -z "${VTEPD:-}" ]; then
    log "building vtepd (swift build -c release --product vtepd)"
    swift build --package-path "$ROOT" -c release --product vtepd >&2
    VTEPD="$(swift build --package-path "$ROOT" -c release --show-bin-path)/vtepd"
    VTEPD_BUILT="release build of $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    git -C "$ROOT" diff --quiet HEAD -- Sources Package.swift 2>/dev/null ||
        VTEPD_BUILT+=" with uncommitted changes"
else
    VTEPD_BUILT="${VTEPD_LABEL:-VTEPD=$VTEPD}"
fi
[ -x "$VTEPD" ] || die "no vtepd executable at $VTEPD"

topology
start_vtepd
start_capture 2
start_capture 3
cat >"$WORK/flow.trafgen" <<T
{ eth(da=$MAC_X, sa=02:00:0a:00:00:01), ipv4(saddr=10.0.0.1, daddr=10.0.0.99, ttl=64), udp(sp=4000, dp=9), fill(0x41, 18) }
T
setsid ip netns exec "${P}host" trafgen --dev "${P}h" --conf "$WORK/flow.trafgen" --cpus 1 \
    --gap 1ms --no-sock-mem --notouch-irq --no-cpu-stats >"$WORK/trafgen.log" 2>&1 &
PIDS+=($!)
TRAFGEN=$!

# The flow must be flooded to b before the first change, or the first figure measures
# vtepd's start, not a change.
for _ in $(seq 100); do
    sleep 0.2
    kill -0 "$TRAFGEN" 2>/dev/null || die "trafgen exited: $(cat "$WORK/trafgen.log")"
    frames 2 | awk -v m=$MAC_X '$3 == m {found = 1} END {exit !found}' && break
done
frames 2 | awk -v m=$MAC_X '$3 == m {found = 1} END {exit !found}' ||
    die "the flow to $MAC_X never reached b through vtepd in 20 s"

# changes: one line per change: when vtep-ctl started and returned ($EPOCHREALTIME: no
# fork, so the timestamps are not late by a `date` process), what to look for.
: >"$WORK/changes"
change() {
    local kind=$1
    shift
    local started=$EPOCHREALTIME
    "${VC[@]}" "$@"
    echo "$started $EPOCHREALTIME $kind" >>"$WORK/changes"
    sleep "$SETTLE"
}
ls_now=ls5001
log "$REPS repetitions of add-ucast-remote, del-ucast-remote, bind-ls, $SETTLE s apart"
for rep in $(seq "$REPS"); do
    change add-ucast add-ucast-remote "$ls_now" $MAC_X $C_IP
    change del-ucast del-ucast-remote "$ls_now" $MAC_X
    if [ $ls_now = ls5001 ]; then ls_now=ls5002; else ls_now=ls5001; fi
    # One transaction: the port is never unbound in between.
    change "bind-ls-${ls_now#ls}" unbind-ls "${P}ps" "${P}a" 0 -- bind-ls "${P}ps" "${P}a" 0 "$ls_now"
    [ $((rep % 5)) -eq 0 ] && log "  $rep done"
done
kill -0 "$TRAFGEN" 2>/dev/null || die "trafgen exited during the run: $(cat "$WORK/trafgen.log")"
# The last change's frames land in the captures, then everything stops (tcpdump on SIGINT
# writes out what it holds).
sleep 0.5
for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
PIDS=()

frames 2 | awk '{print $0, "b"}' >"$WORK/frames"
frames 3 | awk '{print $0, "c"}' >>"$WORK/frames"
sort -n -o "$WORK/frames" "$WORK/frames"

# For each change, the first frame after vtep-ctl started (and before the next change) that
# shows it: add-ucast: to MAC_X at c; del-ucast: to MAC_X at b; bind-ls-V: VNI V at b. Its
# latency counts from vtep-ctl's return, so it is negative when vtepd applied the change
# before vtep-ctl had exited (the server answers vtep-ctl and notifies vtepd at once).
awk -v m=$MAC_X '
    FNR == NR { t[NR] = $1; done[NR] = $2; kind[NR] = $3; n = NR; next }
    { ft[++f] = $1; vni[f] = $2; dst[f] = $3; at[f] = $4 }
    END {
        j = 1
        for (i = 1; i <= n; i++) {
            end = (i < n) ? t[i + 1] : 1e18
            while (j <= f && ft[j] <= t[i]) j++
            hit = ""
            for (k = j; k <= f && ft[k] < end; k++) {
                if (kind[i] == "add-ucast" && at[k] == "c" && dst[k] == m) { hit = ft[k]; break }
                if (kind[i] == "del-ucast" && at[k] == "b" && dst[k] == m) { hit = ft[k]; break }
                if (kind[i] ~ /^bind-ls-/ && at[k] == "b" && vni[k] == substr(kind[i], 9)) {
                    hit = ft[k]; break
                }
            }
            name = kind[i]; sub(/-[0-9]+$/, "", name)
            if (hit == "") print name, "missed"
            else printf "%s %.1f\n", name, (hit - done[i]) * 1000
        }
    }' "$WORK/changes" "$WORK/frames" >"$WORK/latencies"

row() {
    local kind=$1 what=$2
    local values missed n
    values=$(awk -v k="$kind" '$1 == k && $2 != "missed" {print $2}' "$WORK/latencies" | sort -n)
    missed=$(awk -v k="$kind" '$1 == k && $2 == "missed"' "$WORK/latencies" | grep -c . || true)
    n=$(printf '%s\n' "$values" | grep -c . || true)
    if [ "$n" -eq 0 ]; then
        echo "| $what | 0 | $missed | | | |"
        return
    fi
    printf '%s\n' "$values" | awk -v what="$what" -v missed="$missed" '
        { v[NR] = $1 }
        END {
            p50 = v[int((NR + 1) / 2)]; i90 = int(NR * 0.9 + 0.999); if (i90 < 1) i90 = 1
            printf "| %s | %d | %d | %.1f | %.1f | %.1f |\n", what, NR, missed, p50, v[i90], v[NR]
        }'
}

cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
{
    echo "# Reconfiguration latency of vtepd under traffic, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Time from \`vtep-ctl\` returning to the first frame on the underlay that shows the"
    echo "change, with a 1,000 frames/s flow through vtepd (so figures resolve to about 1 ms);"
    echo "$REPS repetitions of each change, $SETTLE s apart (bench/reconfig/run.sh). vtepd:"
    echo "$VTEPD_BUILT. Machine: $(nproc) CPUs ($cpu), Linux $(uname -r). Load average at"
    echo "the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine lengthens every"
    echo "figure). A change missed shows no frame before the next change ($SETTLE s). A"
    echo "negative figure: the change was on the wire before vtep-ctl had exited."
    echo
    echo "| change | seen | missed | median ms | p90 ms | max ms |"
    echo "|---|---|---|---|---|---|"
    row add-ucast "add-ucast-remote: first unicast to the new locator"
    row del-ucast "del-ucast-remote: first frame flooded again"
    row bind-ls "bind-ls: first frame in the new VNI"
} >"$WORK/table.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$WORK/table.md" "$RESULTS"
cat "$WORK/table.md"
log "written to $RESULTS"
# The same table as a picture beside it (bench/lib/chart.sh, gnuplot).
chart=$("$ROOT/bench/lib/chart.sh" "$RESULTS" "Reconfiguration latency: vtep-ctl to the first frame showing it ($(basename "$RESULTS" .md))" \
    "ms after vtep-ctl returned" "change" "median ms,p90 ms,max ms")
log "chart: $chart"
