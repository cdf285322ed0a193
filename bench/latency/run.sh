#!/usr/bin/env bash
# Round-trip time through two VTEPs: ping from host A to host B, p50 and p99, every pair
# measured side by side in one run.
#
# Topology (bench/lib/topology.sh, shared with bench/tcp/run.sh): host A — site A (VTEP) —
# veth underlay — site B (VTEP) — host B, inner MTU 1450, VXLAN VNI 100, every veth with its
# default offloads. MODES (default "kernel-kernel vtepd-kernel"; also vtepd-vtepd,
# vtepd-vtepd-gre) chooses the pairs. Each gets a fresh lab, is reached once (the MAC tables
# learn), then COUNT pings (default 1000) INTERVAL seconds apart (default 0.002) go from host
# A to host B; every reply's rtt counts, percentiles by nearest rank. A pair whose ping
# fails or outlives its time is recorded as failed and the run goes on.
#
# VTEPD=path (default: the checkout's .build/release/vtepd, built by nobody here) and
# VTEPD_LABEL say which vtepd. The table goes to standard output and to RESULTS (default
# bench/results/latency-<date>.md). Namespaces and links are named $P* (default vglat); every
# process started here is stopped by PID and every namespace deleted on exit, also on failure
# or Ctrl-C.
set -euo pipefail

MODES=${MODES:-kernel-kernel vtepd-kernel}
COUNT=${COUNT:-1000}
INTERVAL=${INTERVAL:-0.002}
P=${P:-vglat}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${RESULTS:-$ROOT/bench/results/latency-$(date +%Y-%m-%d).md}
# shellcheck source=../lib/topology.sh
source "$ROOT/bench/lib/topology.sh"

lab_init latency
need_vtepd=
for pair in $MODES; do
    lab_pair_valid "$pair" || die "unknown pair '$pair' in MODES (kernel-kernel, vtepd-kernel, vtepd-vtepd, vtepd-vtepd-gre)"
    lab_pair_has_vtepd "$pair" && need_vtepd=1
done
[[ $COUNT =~ ^[0-9]+$ ]] && [ "$COUNT" -gt 0 ] || die "COUNT must be a positive whole number"
[ -z "$need_vtepd" ] || lab_use_vtepd
# Time allowed for the pings: their schedule, plus 10 s.
LIMIT=$(awk -v c="$COUNT" -v i="$INTERVAL" 'BEGIN { printf "%d", c * i + 10.5 }')

rows=()
for pair in $MODES; do
    log "$pair: building the lab"
    lab_up "$pair" on
    if [ -n "$LAB_ERROR" ]; then
        log "  failed: $LAB_ERROR"
        lab_vtepd_log_tail 10
        rows+=("| $pair | failed | | | | $LAB_ERROR |")
        lab_down
        continue
    fi
    log "  $COUNT pings, $INTERVAL s apart"
    rc=0
    lab_start ha "$WORK/ping.log" timeout -k 2 "$LIMIT" ping -n -c "$COUNT" -i "$INTERVAL" -W 1 "$HOST_B"
    wait "$LAB_PID" || rc=$?
    # Nearest-rank percentiles over the rtt of every reply, in microseconds.
    stats=$(python3 - "$WORK/ping.log" "$COUNT" <<'PY'
import math, re, sys
rtts = sorted(float(m.group(1)) * 1000 for m in
              re.finditer(r"time=([0-9.]+) ms", open(sys.argv[1]).read()))
if not rtts:
    print("none"); sys.exit()
rank = lambda p: rtts[max(0, math.ceil(p / 100 * len(rtts)) - 1)]
print(f"{len(rtts)}/{sys.argv[2]} {rank(50):.0f} {rank(99):.0f} {rtts[-1]:.0f}")
PY
)
    note=
    [ "$rc" -eq 0 ] || note="ping exit status $rc"
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || note="ping outlived $LIMIT s"
    lab_vtepd_alive || note+="${note:+; }vtepd exited"
    if [ "$stats" = none ]; then
        log "  failed: no reply${note:+ ($note)}"
        rows+=("| $pair | failed | | | | no reply${note:+; $note} |")
    else
        set -- $stats
        log "  replies $1, p50 $2 µs, p99 $3 µs, max $4 µs"
        rows+=("| $pair | $1 | $2 | $3 | $4 | $note |")
    fi
    lab_down
done

{
    echo "# Ping round-trip time through two VTEPs, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$COUNT pings, $INTERVAL s apart (ping -i $INTERVAL -c $COUNT), host A (10.0.0.1) to host B"
    echo "(10.0.0.2) across site A — veth underlay (MTU 1500) — site B, inner MTU 1450, VXLAN VNI 100,"
    echo "every veth's default offloads (bench/latency/run.sh, topology bench/lib/topology.sh)."
    echo "Percentiles by nearest rank over the replies' rtt, in microseconds."
    [ -z "$need_vtepd" ] || echo "vtepd: $VTEPD_BUILT."
    echo "$(lab_machine) Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Compare only figures taken in one run."
    echo
    echo "| pair | replies | p50 µs | p99 µs | max µs | note |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} >"$WORK/table.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$WORK/table.md" "$RESULTS"
cat "$WORK/table.md"
log "written to $RESULTS"
# The same table as a picture beside it (bench/lib/chart.sh, gnuplot).
chart=$("$ROOT/bench/lib/chart.sh" "$RESULTS" "Ping round-trip time through two VTEPs ($(basename "$RESULTS" .md))" \
    "µs" "pair" "p50 µs,p99 µs")
log "chart: $chart"
