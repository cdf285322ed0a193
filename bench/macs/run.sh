#!/usr/bin/env bash
# A million MACs through vtepd (issue 15 item 4): learn N source MACs from frames on a real
# access port, then measure what a new user meets at that size.
#
# The lab is bench/lib/topology.sh's vtepd-kernel pair (host A --veth-- vtepd ==underlay==
# kernel vxlan -- host B). Once host A reaches host B, a generator in host A's namespace
# (python3, AF_PACKET on host A's veth) sends N frames, each from another source MAC
# (06:00:00:00:00:00 + i, ethertype 0x88b5), to host A's own MAC: vtepd learns each source
# behind its access port and drops the frame (its destination is behind the port it came
# in on). Passes repeat (up to PASSES) until the switch has learned N entries or its table is
# full: a frame the access port's ring had no room for is sent again by the next pass.
#
# The switch's MAC ageing is off (other_config:mac-ageing=0): the frames are sent once, and
# the run must not measure MACs ageing out. Reported: the time to learn; vtepd's RSS (VmRSS)
# before and after learning, and its peak in each phase (learning, publishing, settled,
# while `vtepsh -c 'show switch mac-table'` lists the table), sampled every 0.1 s for the
# whole run; VmHWM; anonymous and file-backed RSS at start and at the end;
# the listing's time and line count; the time until ovsdb-server's Ucast_Macs_Local holds a
# row for every learned MAC (counted every second, up to PUBLISH_TIMEOUT s, by an update that
# changes nothing: its answer is the count); the CPU vtepd and ovsdb-server used meanwhile, and
# vtepd's busiest threads; then vtepd's CPU over 10 s once everything is published. N is
# settable (default 1048576: the default MAC table limit, which holds hosts A and B too, so
# the last of N are refused and said so); N=20000 is a quick run.
#
# Use: sudo N=1048576 bench/macs/run.sh   (release build first: swift build -c release)
# The table goes to standard output and to RESULTS (default bench/results/macs-DATE.md).
# Every process it starts is stopped by PID and every namespace deleted on exit.
set -euo pipefail

N=${N:-1048576}
PASSES=${PASSES:-3}
PUBLISH_TIMEOUT=${PUBLISH_TIMEOUT:-900}
P=${P:-vgmac}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${RESULTS:-$ROOT/bench/results/macs-$(date +%Y-%m-%d).md}
# shellcheck source=../lib/topology.sh
source "$ROOT/bench/lib/topology.sh"
lab_init macs vtep-ctl ovsdb-server
lab_use_vtepd
VTEPSH=${VTEPSH:-$(dirname "$VTEPD")/vtepsh}
[ -x "$VTEPSH" ] || die "no vtepsh executable at $VTEPSH"

lab_up vtepd-kernel on
[ -z "$LAB_ERROR" ] || die "$LAB_ERROR"
STATE=$WORK/state-a
# The frames are sent once (a pass or three): MACs must not age out (300 s by default)
# while the run measures.
lab_vc "$STATE" set Logical_Switch "ls$VNI" other_config:mac-ageing=0
VPID=${LAB_VTEPD_PIDS[0]}
OVSDB_PID=$(cat /proc/"$VPID"/task/*/children 2>/dev/null | tr ' ' '\n' | while read -r c; do
    [ -n "$c" ] && [ "$(cat /proc/"$c"/comm 2>/dev/null)" = ovsdb-server ] && echo "$c"
done | head -n 1)
[ -n "$OVSDB_PID" ] || die "vtepd's ovsdb-server child not found"

rss() { awk '/^VmRSS/ {print int($2/1024)}' /proc/"$VPID"/status; }
# VmRSS split: anonymous memory (the heap, the MAC table, the rings) and mapped files (the
# executable and its libraries).
rss_split() { awk '/^RssAnon/ {a = int($2/1024)} /^RssFile/ {f = int($2/1024)} END {print a " anon + " f " file"}' /proc/"$VPID"/status; }
# The highest VmRSS sampled since the last call, into PEAK: a sampler reads it every 0.1 s
# for the whole run (a once-a-second look misses a round's short peak); it ends with vtepd.
touch "$WORK/rss.samples"
( while r=$(awk '/^VmRSS/ {print int($2/1024)}' /proc/"$VPID"/status 2>/dev/null); do echo "$r"; sleep 0.1; done >>"$WORK/rss.samples" ) &
RSS_SAMPLER=$!
PEAK_MARK=0
peak_since() {
    local n
    n=$(wc -l <"$WORK/rss.samples")
    PEAK=$(sed -n "$((PEAK_MARK + 1)),${n}p" "$WORK/rss.samples" | sort -n | tail -n 1)
    PEAK_MARK=$n
}
hwm() { awk '/^VmHWM/ {print int($2/1024)}' /proc/"$VPID"/status; }
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
hz=$(getconf CLK_TCK)
now() { date +%s.%N; }
# The switch's learned and refused counters.
learned() {
    ip netns exec "${P}sa" "$VTEPD" show counters --control "$STATE/vtepd.ctl" --json |
        python3 -c 'import json,sys; s=[x for x in json.load(sys.stdin)["switches"] if x["name"]=="ls100"][0]; print(s["learned"], s["learningRefused"])'
}
# Rows in Ucast_Macs_Local: the count of an update that changes nothing, over the database
# socket (a select answers distinct rows: of no columns, one).
rows() {
    python3 - "$STATE/db.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(json.dumps({"id": 1, "method": "transact", "params": ["hardware_vtep",
    {"op": "update", "table": "Ucast_Macs_Local", "where": [], "row": {}}]}).encode())
buf = b""; dec = json.JSONDecoder()
while True:
    buf += s.recv(1 << 20)
    try:
        msg, _ = dec.raw_decode(buf.decode())
    except ValueError:
        continue
    if msg.get("id") == 1:
        print(msg["result"][0]["count"]); break
PY
}
thread_ticks() { for t in /proc/"$VPID"/task/*; do echo "$(basename "$t") $(cat "$t"/comm) $(awk '{print $14 + $15}' "$t"/stat)"; done; }

rss_before=$(rss)
split_before=$(rss_split)
peak_since
log "vtepd pid $VPID, ovsdb-server pid $OVSDB_PID, RSS ${rss_before} MiB; learning $N MACs"

cat >"$WORK/gen.py" <<'PY'
import socket, sys
ifname, n, dst = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
tail = b"\x88\xb5" + bytes(46)
for i in range(n):
    while True:
        try:
            s.send(dst + (0x060000000000 + i).to_bytes(6, "big") + tail)
            break
        except BlockingIOError:
            pass
PY
t0=$(now)
t_first=$t0
# CPU from the first frame: publishing runs while learning does.
v0=$(ticks "$VPID") o0=$(ticks "$OVSDB_PID")
thread_ticks >"$WORK/threads0"
pass=0
read -r base_learned base_refused < <(learned)
while :; do
    pass=$((pass + 1))
    ip netns exec "${P}ha" python3 "$WORK/gen.py" "${P}ah" "$N" "$MAC_A"
    sleep 1
    read -r l r < <(learned)
    got=$((l - base_learned)) refused=$((r - base_refused))
    log "pass $pass: learned $got, refused $refused"
    { [ "$got" -ge "$N" ] || [ "$refused" -gt 0 ] || [ "$pass" -ge "$PASSES" ]; } && break
done
t_learn=$(echo "$(now) - $t0" | bc)
rss_learned=$(rss)
peak_since
rss_learning=$PEAK
log "learned $got in $t_learn s; RSS $rss_learned MiB (peak while learning $rss_learning MiB)"

# Publishing: until ovsdb-server holds a row per learned MAC.
t0=$(now)
published=0
rss_publish=0
while :; do
    published=$(rows)
    r=$(rss); [ "$r" -gt "$rss_publish" ] && rss_publish=$r
    [ "$published" -ge "$got" ] && break
    [ "$(echo "$(now) - $t0 > $PUBLISH_TIMEOUT" | bc)" -eq 1 ] && break
    sleep 1
done
t_publish=$(echo "$(now) - $t0" | bc)
peak_since
[ "$PEAK" -gt "$rss_publish" ] && rss_publish=$PEAK
t_publish_all=$(echo "$(now) - $t_first" | bc)
v_cpu=$(echo "scale=1; ($(ticks "$VPID") - $v0) / $hz" | bc)
o_cpu=$(echo "scale=1; ($(ticks "$OVSDB_PID") - $o0) / $hz" | bc)
thread_ticks >"$WORK/threads1"
busiest=$(join <(sort "$WORK/threads0") <(sort "$WORK/threads1") | awk -v hz="$hz" '{printf "%s %.1f s\n", $2, ($5 - $3) / hz}' | sort -k2 -rn | head -n 3 | paste -sd, | sed 's/,/, /g')
rate=$(echo "scale=0; $published / $t_publish_all" | bc)
log "published $published rows, $t_publish_all s from the first frame ($rate rows/s); vtepd CPU $v_cpu s, ovsdb-server $o_cpu s; busiest threads: $busiest"

# Settled: what vtepd costs holding a million MACs with nothing to publish (the publisher
# still gathers the learned set once a second to see whether it changed).
sleep 12
i0=$(ticks "$VPID")
sleep 10
idle_cpu=$(echo "scale=2; ($(ticks "$VPID") - $i0) / $hz / 10 * 100" | bc)
peak_since
rss_settled=$PEAK
log "settled: vtepd used $idle_cpu% of a CPU over 10 s; RSS peak $rss_settled MiB"

if [ "$published" -lt "$got" ]; then
    log "not every MAC was published; vtepd says:"
    "$VTEPSH" --control "$STATE/vtepd.ctl" -c 'show switch problems' >&2 || true
    tail -n 20 "$WORK/vtepd-a.log" >&2 || true
fi

# Listing, with vtepd's RSS sampled meanwhile.
peak_since
t0=$(now)
lines=$("$VTEPSH" --control "$STATE/vtepd.ctl" -c 'show switch mac-table' | wc -l)
t_list=$(echo "$(now) - $t0" | bc)
peak_since
rss_list=$PEAK
hwm_end=$(hwm)
split_end=$(rss_split)
kill "$RSS_SAMPLER" 2>/dev/null || true
log "listed $lines lines in $t_list s; RSS peak while listing $rss_list MiB; VmHWM $hwm_end MiB"

{
    echo "# A million MACs: learning, memory, listing, publishing ($(date +%Y-%m-%d))"
    echo
    echo "bench/macs/run.sh, N=$N. $(lab_machine) vtepd: $VTEPD_BUILT. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| measure | value |"
    echo "|---|---|"
    echo "| MACs learned (refused at the table limit) | $got ($refused) in $pass pass(es) |"
    echo "| time to learn | $t_learn s |"
    echo "| vtepd RSS before / after learning (peak while learning) | $rss_before / $rss_learned MiB ($rss_learning MiB) |"
    echo "| vtepd RSS peak while publishing | $rss_publish MiB |"
    echo "| rows in Ucast_Macs_Local | $published, all there $t_publish s after learning ended, $t_publish_all s after the first frame ($rate rows/s) |"
    echo "| CPU from the first frame to the last row: vtepd / ovsdb-server | $v_cpu s / $o_cpu s |"
    echo "| vtepd's busiest threads meanwhile | $busiest |"
    echo "| vtepd's CPU once everything is published (10 s) | $idle_cpu% of a CPU |"
    echo "| vtepd RSS peak meanwhile (22 s) | $rss_settled MiB |"
    echo "| \`vtepsh -c 'show switch mac-table'\` | $lines lines in $t_list s |"
    echo "| vtepd RSS peak while listing | $rss_list MiB |"
    echo "| vtepd VmHWM at the end | $hwm_end MiB |"
    echo "| vtepd RSS at start / at the end | $split_before / $split_end MiB |"
} | tee "$RESULTS"
