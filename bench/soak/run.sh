#!/usr/bin/env bash
# Soak (issue 15): vtepd under traffic and disturbance for DURATION seconds (default 1800),
# its resources sampled every SAMPLE_EVERY s (default 10); they must stay flat after warm-up
# and its frame counters must add up. A benchmark, not a test: it takes half an hour.
#
# Topology (bench/lib/topology.sh, the layout of `make demo`, with two more hosts):
#
#   host A ($P"ha") --ah/aa--+
#   host C ($P"hc") --ch/ca--+ site A ($P"sa"): vtepd ==au/bu== site B ($P"sb"): kernel vxlan
#   host D ($P"hd") --dh/da--+   ls100 VNI 100: aa, ca, da       + bridge --ba/bh-- host B ($P"hb")
#                                ls300 VNI 300: ca VLAN 10
#
# vtepd (release build: VTEPD=path, default .build/release/vtepd) runs with its own
# ovsdb-server, --mac-table-limit MAC_TABLE_LIMIT (default 8192) and metrics on its
# namespace's loopback; ls100 has other_config:mac-limit=SWITCH_MAC_LIMIT (default 4096) and
# mac-ageing=60, source-node replication to site B. For the whole run:
#
#   traffic  iperf3 TCP host D → host B capped at TCP_RATE (default 20M bit/s), restarted if
#            it ends; trafgen 64-byte frames host A → host B (unicast, encapsulated) at
#            FLOOD_PPS (default 4000); trafgen at host C, CHURN_PPS (default 3000) in a cycle
#            of three 64-byte frames: a random source MAC to host A on ls100 (past its
#            mac-limit), a random source MAC to an unknown MAC on VLAN 10 → ls300 (past the
#            global limit; no flood target, so dropped and counted), a broadcast on ls100
#            (flooded to host A and site B, storm-controlled every other second of four);
#   chaos    a vtep-ctl change every RECONFIG_EVERY s (default 1; bench/soak/chaos.sh), vtepd's
#            ovsdb-server SIGKILLed every OVSDB_KILL_EVERY s (default 240), host D's access
#            link (vtepd's side) down for 2 s every FLAP_EVERY s (default 30), CTL_CONNECTIONS (default 80: past the limit of
#            64) control connections pipelining requests for 5 s every CTL_FLOOD_EVERY s
#            (default 60; CTL_COMMANDS, default counters,logical-switches,nonsense-command).
#
# Samples (bench/soak/soak.py sample): vtepd's RSS, open descriptors and threads from /proc,
# the MAC-table size (Σ vtep_mac_entries from its metrics), ovsdb-server's RSS, and vtepd's
# `counters` (control socket). Verdict (soak.py check; the rule and the accounting are stated
# there and in the results file): exit 0 only when every resource's median over the last
# third of the samples after WARMUP (default DURATION/6) is within its allowance of its median
# over the first third, every frame equation holds in every snapshot, vtepd still runs and host
# A still reaches host B. The table goes to RESULTS (default bench/results/soak-<date>.md),
# the samples drawn beside it as a PNG; the samples' CSV is kept as RESULTS with .csv.
#
# Rates are modest and settable: the machine is shared. Namespaces, links and processes are
# named with prefix $P (default vgsk); every process started here is stopped by PID and every
# namespace deleted on exit, also on failure or Ctrl-C.
set -euo pipefail

DURATION=${DURATION:-1800}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
WARMUP=${WARMUP:-$((DURATION / 6))}
TCP_RATE=${TCP_RATE:-20M}
FLOOD_PPS=${FLOOD_PPS:-4000}
CHURN_PPS=${CHURN_PPS:-3000}
MAC_TABLE_LIMIT=${MAC_TABLE_LIMIT:-8192}
SWITCH_MAC_LIMIT=${SWITCH_MAC_LIMIT:-4096}
RECONFIG_EVERY=${RECONFIG_EVERY:-1}
OVSDB_KILL_EVERY=${OVSDB_KILL_EVERY:-240}
FLAP_EVERY=${FLAP_EVERY:-30}
CTL_FLOOD_EVERY=${CTL_FLOOD_EVERY:-60}
CTL_CONNECTIONS=${CTL_CONNECTIONS:-80}
METRICS_PORT=${METRICS_PORT:-9109}
P=${P:-vgsk}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${RESULTS:-$ROOT/bench/results/soak-$(date +%Y-%m-%d).md}
SOAK_PY=$ROOT/bench/soak/soak.py
CHAOS=$ROOT/bench/soak/chaos.sh
# shellcheck source=../lib/topology.sh
source "$ROOT/bench/lib/topology.sh"
LAB_NAMESPACES="ha sa sb hb hc hd"
MAC_C=02:00:0c:00:00:01 MAC_D=02:00:0a:00:00:04 HOST_D=10.0.0.4

for v in DURATION SAMPLE_EVERY WARMUP FLOOD_PPS CHURN_PPS MAC_TABLE_LIMIT SWITCH_MAC_LIMIT \
    OVSDB_KILL_EVERY FLAP_EVERY CTL_FLOOD_EVERY CTL_CONNECTIONS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || { echo "soak: $v must be a positive whole number" >&2; exit 2; }
done
[ "$WARMUP" -lt "$DURATION" ] || { echo "soak: WARMUP must be shorter than DURATION" >&2; exit 2; }
lab_init soak iperf3 trafgen gnuplot vtep-ctl
lab_use_vtepd
VTEPD_BUILT=${VTEPD_LABEL:-VTEPD=$VTEPD}

# The lab: bench/lib/topology.sh's links and sites, host C's and host D's links added before
# vtepd starts (they are vtepd's ports). The flapped link is host D's: trafgen, which the other
# two hosts run, sends flat out, ignoring --rate, once its link has been down.
lab_links on
for x in "c $MAC_C" "d $MAC_D"; do
    set -- $x
    ip link add "${P}${1}h" netns "${P}h$1" type veth peer name "${P}${1}a" netns "${P}sa"
    ip netns exec "${P}h$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "${P}h$1" link set "${P}${1}h" address "$2" mtu "$INNER_MTU" up
    ip -n "${P}sa" link set "${P}${1}a" addrgenmode none
    ip -n "${P}sa" link set "${P}${1}a" up
done
ip -n "${P}hd" addr add "$HOST_D/24" dev "${P}dh"
LAB_ERROR=
VTEPD_ARGS="--port ${P}ca --port ${P}da --metrics-listen 127.0.0.1:$METRICS_PORT --mac-table-limit $MAC_TABLE_LIMIT"
lab_vtepd_site a vxlan
[ -z "$LAB_ERROR" ] || die "$LAB_ERROR"
VTEPD_PID=${LAB_VTEPD_PIDS[0]}
STATE=$WORK/state-a
lab_kernel_site b
ps=${P}psa
lab_vc "$STATE" --may-exist add-port "$ps" "${P}ca" &&
    lab_vc "$STATE" --may-exist add-port "$ps" "${P}da" &&
    lab_vc "$STATE" bind-ls "$ps" "${P}ca" 0 ls100 &&
    lab_vc "$STATE" bind-ls "$ps" "${P}da" 0 ls100 &&
    lab_vc "$STATE" set Logical_Switch ls100 other_config:mac-limit="$SWITCH_MAC_LIMIT" \
        other_config:mac-ageing=60 &&
    lab_vc "$STATE" --may-exist add-ls ls300 &&
    lab_vc "$STATE" set Logical_Switch ls300 tunnel_key=300 replication_mode=source_node &&
    lab_vc "$STATE" bind-ls "$ps" "${P}ca" 10 ls300 ||
    die "vtep-ctl failed configuring ls100/ls300: $(tail -n 3 "$WORK/vtep-ctl.log")"
deadline=$((SECONDS + LAB_READY_SECONDS))
until ip netns exec "${P}ha" ping -c 1 -W 1 -q "$HOST_B" >/dev/null 2>&1 &&
    ip netns exec "${P}hd" ping -c 1 -W 1 -q "$HOST_B" >/dev/null 2>&1; do
    lab_vtepd_alive || die "vtepd exited before host B answered"
    [ "$SECONDS" -lt "$deadline" ] || die "host B unreachable after $LAB_READY_SECONDS s"
    sleep 0.2
done
log "lab up: vtepd pid $VTEPD_PID ($VTEPD_BUILT); hosts A and D reach host B"

# Traffic.
lab_start hb "$WORK/iperf3-server.log" nice -n 5 iperf3 --server --bind "$HOST_B"
for _ in $(seq 100); do
    ip netns exec "${P}hb" ss -Hltn sport = :5201 | grep -q . && break
    sleep 0.05
done
# The client again whenever it ends (a flap long enough to reset the connection, say).
lab_start hd "$WORK/iperf3.log" bash -c "while :; do echo \"iperf3 start \$(date -u +%T)\";
    nice -n 5 iperf3 --client $HOST_B --bitrate $TCP_RATE --time $((DURATION + 60)) --interval 60 \
        --connect-timeout 3000; echo \"iperf3 ended \$? \$(date -u +%T)\"; sleep 1; done"
cat >"$WORK/flood.trafgen" <<T
{ eth(da=$MAC_B, sa=$MAC_A), ipv4(saddr=$HOST_A, daddr=$HOST_B, ttl=64), udp(sp=dinc(1000,60000,1), dp=9), fill(0x41, 18) }
T
# 60 bytes each before the FCS: 64 on the wire. Ethertype 0x88b5 (local experimental): no
# host answers them.
mac_bytes() { echo "0x${1//:/, 0x}"; }
cat >"$WORK/churn.trafgen" <<T
{ $(mac_bytes "$MAC_A"), 0x02, drnd(5), c16(0x88b5), fill(0x00, 46) }
{ 0x02, 0x00, 0x00, 0x00, 0x10, 0x99, 0x02, drnd(5), c16(0x8100), c16(10), c16(0x88b5), fill(0x00, 42) }
{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, $(mac_bytes "$MAC_C"), c16(0x88b5), fill(0x00, 46) }
T
trafgen_opts=(--cpus 1 --no-sock-mem --notouch-irq --no-cpu-stats)
lab_start ha "$WORK/flood.log" nice -n 5 trafgen --dev "${P}ah" --conf "$WORK/flood.trafgen" \
    --rate "${FLOOD_PPS}pps" "${trafgen_opts[@]}"
FLOOD_PID=$LAB_PID
lab_start hc "$WORK/churn.log" nice -n 5 trafgen --dev "${P}ch" --conf "$WORK/churn.trafgen" \
    --rate "${CHURN_PPS}pps" "${trafgen_opts[@]}"
CHURN_PID=$LAB_PID

# Sampling, from inside vtepd's namespace (its metrics listen on that loopback).
CSV=$WORK/samples.csv COUNTERS=$WORK/counters.jsonl STOP=$WORK/stop
lab_start sa "$WORK/sampler.log" python3 "$SOAK_PY" sample "$STATE/vtepd.ctl" \
    "http://127.0.0.1:$METRICS_PORT/metrics" "$VTEPD_PID" "$CSV" "$COUNTERS" "$SAMPLE_EVERY" "$STOP"
SAMPLER_PID=$LAB_PID

# Disturbances: each its own process group (setsid), stopped by PID with the rest.
chaos() {
    local name=$1
    shift
    setsid bash "$CHAOS" "$@" >"$WORK/chaos-$name.log" 2>&1 </dev/null &
    PIDS+=($!)
    CHAOS_PIDS+=($!)
}
CHAOS_PIDS=()
chaos reconfig reconfig "$STATE/db.sock" "$ps" "${P}ca" "$RECONFIG_EVERY"
chaos ovsdb ovsdb-kill "$STATE" "$VTEPD_PID" "$OVSDB_KILL_EVERY"
chaos flap flap "${P}sa" "${P}da" "$FLAP_EVERY"
chaos ctl ctlflood "$SOAK_PY" "$STATE/vtepd.ctl" "$CTL_FLOOD_EVERY" 5 "$CTL_CONNECTIONS"

log "soaking for $DURATION s (warm-up $WARMUP s), sampling every $SAMPLE_EVERY s"
started=$SECONDS
failed=
while [ $((SECONDS - started)) -lt "$DURATION" ]; do
    sleep 10
    lab_vtepd_alive || { failed="vtepd exited after $((SECONDS - started)) s"; break; }
    kill -0 "$SAMPLER_PID" 2>/dev/null || { failed="the sampler stopped: $(tail -n 3 "$WORK/sampler.log")"; break; }
    for pid in "$FLOOD_PID" "$CHURN_PID"; do
        kill -0 "$pid" 2>/dev/null || { failed="trafgen $pid exited"; break 2; }
    done
    [ $(((SECONDS - started) % 300)) -ge 10 ] || log "  $((SECONDS - started)) s: $(tail -n 1 "$CSV")"
done
elapsed=$((SECONDS - started))

# Stop the disturbances and the traffic, put the links back up, let the last frames
# through, then the final sample (the sampler takes one more when STOP appears).
for pid in "${CHAOS_PIDS[@]}" "$FLOOD_PID" "$CHURN_PID"; do stop_pid "$pid"; done
ip -n "${P}sa" link set "${P}da" up
sleep 2
touch "$STOP"
for _ in $(seq 100); do kill -0 "$SAMPLER_PID" 2>/dev/null || break; sleep 0.2; done
alive=yes
lab_vtepd_alive || alive=no
reach=no
if ip netns exec "${P}ha" ping -c 3 -W 2 -q "$HOST_B" >/dev/null 2>&1 &&
    ip netns exec "${P}hd" ping -c 3 -W 2 -q "$HOST_B" >/dev/null 2>&1; then reach=yes; fi

count() { grep -c "$2" "$WORK/chaos-$1.log" 2>/dev/null || true; }
reconfig_ok=$(count reconfig ' ok ') reconfig_failed=$(count reconfig ' failed ')
kills_ok=$(count ovsdb ' ok ') kills_failed=$(count ovsdb ' failed ')
restart_times=$(awk '/ ok / {for (i = 1; i <= NF; i++) if ($i == "after") print $(i + 1)}' \
    "$WORK/chaos-ovsdb.log" | sort -n | awk '{v[NR] = $1} END {if (NR) printf "%s–%s s", v[1], v[NR]}')
flaps=$(count flap ' ok ')
ctl_floods=$(count ctl ' ok ')
ctl_summary=$(awk '/ ok / {o += $4; r += $6; a += $8; e += $10} END {printf "%d connections opened, %d refused or closed by vtepd, %d requests answered, %d errors answered", o, r, a, e}' "$WORK/chaos-ctl.log")
iperf_restarts=$(($(grep -c '^iperf3 start' "$WORK/iperf3.log" || true) - 1))
[ "$iperf_restarts" -ge 0 ] || iperf_restarts=0
refusals=$(ip netns exec "${P}sa" python3 -c "
import urllib.request
for l in urllib.request.urlopen('http://127.0.0.1:$METRICS_PORT/metrics', timeout=5).read().decode().splitlines():
    if l.startswith('vtep_limit_refusals_total{'): print(l.split('\"')[1] + ' ' + l.rsplit(' ', 1)[1])
" 2>/dev/null | paste -sd, - || true)

check_status=0
python3 "$SOAK_PY" check "$CSV" "$COUNTERS" "$WARMUP" "ls100:3" "$WORK/verdict.md" >/dev/null ||
    check_status=$?
[ -z "$failed" ] || check_status=1
[ "$alive" = yes ] || { check_status=1; failed+="${failed:+; }vtepd is not running at the end"; }
[ "$reach" = yes ] || { check_status=1; failed+="${failed:+; }host A or D no longer reaches host B"; }
samples=$(($(wc -l <"$CSV") - 1))

{
    echo "# Soak of vtepd, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$elapsed s of traffic and disturbance (DURATION=$DURATION, bench/soak/run.sh), $samples samples"
    echo "every $SAMPLE_EVERY s; warm-up $WARMUP s. vtepd: $VTEPD_BUILT, --mac-table-limit"
    echo "$MAC_TABLE_LIMIT; ls100 mac-limit $SWITCH_MAC_LIMIT, mac-ageing 60 s. $(lab_machine)"
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "Traffic: iperf3 TCP host D → host B at $TCP_RATE bit/s (restarted $iperf_restarts time(s));"
    echo "trafgen 64-byte unicast host A → host B at $FLOOD_PPS frames/s; trafgen at host C, $CHURN_PPS"
    echo "frames/s of 64 bytes: random source MACs on ls100 (past its limit) and on ls300 (past the"
    echo "global limit), and broadcasts on ls100."
    echo
    echo "| disturbance | count |"
    echo "|---|---|"
    echo "| vtep-ctl changes applied (every $RECONFIG_EVERY s) | $reconfig_ok |"
    echo "| vtep-ctl changes that failed (while ovsdb-server was down) | $reconfig_failed |"
    echo "| ovsdb-server SIGKILLed (every $OVSDB_KILL_EVERY s); vtepd's restart took | $kills_ok; ${restart_times:-n/a} |"
    echo "| ovsdb-server not restarted within 30 s | $kills_failed |"
    echo "| host D's access link flapped, 2 s down (every $FLAP_EVERY s) | $flaps |"
    echo "| control-socket floods ($CTL_CONNECTIONS connections, 5 s, every $CTL_FLOOD_EVERY s) | $ctl_floods: $ctl_summary |"
    echo "| vtepd's limit refusals (vtep_limit_refusals_total) | ${refusals:-none} |"
    echo
    echo "vtepd still running at the end: $alive; hosts A and D reach host B after the run: $reach."
    [ -z "$failed" ] || echo "Run problems: $failed."
    echo
    echo "Flatness rule: after the warm-up, the samples are cut in thirds; a resource is flat"
    echo "when the median of the last third exceeds the median of the first third by no more"
    echo "than its allowance: RSS 10% or 4 MiB, descriptors 4, threads 2, MAC entries 10% or 64"
    echo "(whichever is larger). Medians: a sample taken during a control-socket flood holds up"
    echo "to 64 more descriptors for those seconds, which is no leak; a leak moves the median."
    echo
    cat "$WORK/verdict.md"
} >"$WORK/table.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$WORK/table.md" "$RESULTS"
cp "$CSV" "${RESULTS%.md}.csv"
cat "$WORK/table.md"
log "written to $RESULTS and ${RESULTS%.md}.csv"

# The samples over time, four panels (chart.sh draws bar charts of tables; this is a series).
png=${RESULTS%.md}.png
# ovsdb-server's deaths as dotted lines (the chaos loops start with the sampler, within a second).
kills=$(awk '/ ok killed/ {printf "set arrow from %s/60.0, graph 0 to %s/60.0, graph 1 nohead dashtype 3 lc rgb \"red\"\n", $1, $1}' "$WORK/chaos-ovsdb.log")
gnuplot <<GNUPLOT
set terminal pngcairo size 1200,800 font "sans,10"
set output "$png"
set datafile separator ","
set multiplot layout 2,2 title "vtepd soak: $(basename "$RESULTS" .md), $elapsed s; warm-up to the dashed line, red dots: ovsdb-server killed"
set grid
set xlabel "minutes"
set key off
set arrow from $WARMUP/60.0, graph 0 to $WARMUP/60.0, graph 1 nohead dashtype 2
$kills
set title "RSS (MiB)"
set yrange [0:*]
plot "$CSV" every ::1 using (\$1/60):(\$2/1024) with lines lw 2
set title "open file descriptors"
plot "$CSV" every ::1 using (\$1/60):3 with lines lw 2
set title "threads"
plot "$CSV" every ::1 using (\$1/60):4 with lines lw 2
set title "MAC-table entries (limit $MAC_TABLE_LIMIT)"
plot "$CSV" every ::1 using (\$1/60):5 with lines lw 2
unset multiplot
GNUPLOT
log "chart: $png"
# SOAK_KEEP=DIR keeps the run's files (logs, every counters snapshot) for a closer look.
[ -z "${SOAK_KEEP:-}" ] || { mkdir -p "$SOAK_KEEP" && cp -r "$WORK"/. "$SOAK_KEEP"/; }
exit "$check_status"
