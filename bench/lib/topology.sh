# shellcheck shell=bash
# The two-site lab of the end-to-end benchmarks (bench/tcp/run.sh, bench/latency/run.sh).
# Sourced, not run. The layout of `make demo` and ../shared/reference/kernel-vxlan-topo.sh:
#
#   host A ($P"ha") --ah/aa-- site A ($P"sa") ==au/bu== site B ($P"sb") --ba/bh-- host B ($P"hb")
#   10.0.0.1/24, MTU 1450     192.168.100.1    underlay     192.168.100.2    10.0.0.2/24, MTU 1450
#
# Every link is a veth pair (names $P + the two letters above: ah is host A's end, aa site A's
# access port, au/bu the underlay, 1500 bytes). Each site is a VTEP for VNI 100, the Linux
# kernel's vxlan (dstport 4789) + bridge or vtepd (VXLAN, or GRE with key 100); both learn the
# remote host's MAC from what arrives and replicate broadcast/unknown frames head-end to the
# other site's tunnel IP. Inner MTU 1450: 1500 less IPv4 20 + UDP 8 + VXLAN 8 + Ethernet 14.
#
# A pair names the two sites: kernel-kernel, vtepd-kernel, vtepd-vtepd, vtepd-vtepd-gre (the
# kernel here has no gretap, so no kernel GRE site). Offloads "on" leaves every veth as the
# kernel made it; "off" runs `ethtool -K IF tx off tso off gso off gro off` on all six veths
# (a NIC without offloads) before the sites start.
#
# Use:   P=vgx; ROOT=...; source "$ROOT/bench/lib/topology.sh"; lab_init NAME [TOOL...]
#        lab_use_vtepd                  (when a pair has a vtepd site: finds VTEPD, VTEPD_BUILT)
#        lab_up PAIR on|off             (LAB_ERROR empty when host A reaches host B)
#        lab_start NS LOG CMD...        (background, own process group; PID in LAB_PID)
#        LAB_VTEPD_PIDS, LAB_VTEPD_SITES (vtepd processes of the lab and their sites, A or B)
#        lab_down
# lab_init installs the EXIT trap: whatever happens, every process started through lab_start
# is stopped by its PID, anything left inside the lab's namespaces (an ovsdb-server that
# vtepd started, say) by the PIDs `ip netns pids` gives, and every namespace is deleted.
#
# Errors in building the lab (an `ip` command failing) end the run; a site that does not come
# up (vtepd exits, vtep-ctl fails, host B unreachable) sets LAB_ERROR instead, so a caller can
# record the pair as failed and go on.
#
# Not yet shared with bench/pps/run.sh (one VTEP between trafgen's gen and sink, unicast to a
# static remote): it could take lab_init, stop_pid, lab_start and lab_down as they are (its
# own copies do the same), and lab_kernel_site/lab_vtepd_site once the flood target and an
# optional static remote MAC become parameters and LAB_NAMESPACES its own three namespaces.

HOST_A=10.0.0.1 HOST_B=10.0.0.2
MAC_A=02:00:0a:00:00:01 MAC_B=02:00:0a:00:00:02
UL_A=192.168.100.1 UL_B=192.168.100.2
VNI=100 INNER_MTU=1450
LAB_NAMESPACES="ha sa sb hb"
LAB_READY_SECONDS=${LAB_READY_SECONDS:-20}

die() { echo "$LAB_NAME: $*" >&2; exit 1; }
log() { echo "$LAB_NAME: $*" >&2; }

# lab_init NAME [TOOL...]: checks root, the tools, that no namespace of this prefix exists;
# makes WORK and installs the traps.
lab_init() {
    LAB_NAME=$1
    shift
    [ "$(id -u)" -eq 0 ] || die "needs root for network namespaces"
    for tool in ip bridge ethtool ping ss setsid timeout python3 "$@"; do
        command -v "$tool" >/dev/null || die "$tool not found; run appliance/install-deps.sh"
    done
    for n in $LAB_NAMESPACES; do
        ip netns list | grep -q "^$P$n\b" &&
            die "namespace $P$n exists already (another run, or a crashed one: ip netns del it)"
    done
    WORK=$(mktemp -d "/tmp/$P.XXXXXX")
    PIDS=()
    LAB_VTEPD_PIDS=()
    LAB_VTEPD_SITES=()
    LAB_VTEPD_LOGS=()
    trap lab_exit EXIT
    trap 'exit 130' INT TERM
}

lab_exit() {
    local status=$?
    [ "$status" -eq 0 ] || lab_vtepd_log_tail
    lab_down
    rm -rf "$WORK"
    exit "$status"
}

# lab_use_vtepd: VTEPD defaults to the release build in the checkout (nothing is built here:
# `swift build -c release --product vtepd` first, or VTEPD=path); VTEPD_LABEL says in the
# table what the binary is (e.g. "release build of 6e9d501"); VTEPD_ARGS adds options to every
# vtepd started (e.g. "--busy-poll-us 0").
lab_use_vtepd() {
    VTEPD=${VTEPD:-$ROOT/.build/release/vtepd}
    [ -x "$VTEPD" ] || die "no vtepd executable at $VTEPD (build it, or set VTEPD=path)"
    for tool in vtep-ctl ovsdb-server; do
        command -v "$tool" >/dev/null || die "$tool not found; run appliance/install-deps.sh"
    done
    VTEPD_BUILT=${VTEPD_LABEL:-VTEPD=$VTEPD}${VTEPD_ARGS:+ with $VTEPD_ARGS}
}

# lab_pair_valid PAIR: whether lab_up knows PAIR.
lab_pair_valid() {
    case $1 in
    kernel-kernel | vtepd-kernel | vtepd-vtepd | vtepd-vtepd-gre) return 0 ;;
    *) return 1 ;;
    esac
}
lab_pair_has_vtepd() { [[ $1 == vtepd-* ]]; }

# Stops the process group led by PID $1 (each process started by lab_start leads its own):
# SIGINT, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 -- "-$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# lab_start NS LOG CMD...: runs CMD in namespace $P$NS in the background, leading its own
# process group (setsid and ip netns exec both exec, so $! is the group's leader), output to
# LOG. Sets LAB_PID; the PID joins PIDS, which lab_down stops.
lab_start() {
    local ns=$1 out=$2
    shift 2
    setsid ip netns exec "$P$ns" "$@" >"$out" 2>&1 </dev/null &
    LAB_PID=$!
    PIDS+=("$LAB_PID")
}

# lab_down: stops what lab_start started, then anything still inside the lab's namespaces,
# then deletes the namespaces (their links go with them). Safe when nothing is up.
lab_down() {
    local n pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
    LAB_VTEPD_PIDS=()
    LAB_VTEPD_SITES=()
    for n in $LAB_NAMESPACES; do
        for pid in $(ip netns pids "$P$n" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    done
    for n in $LAB_NAMESPACES; do
        ip netns list | grep -q "^$P$n\b" || continue
        for _ in $(seq 20); do
            [ -z "$(ip netns pids "$P$n" 2>/dev/null)" ] && break
            sleep 0.1
        done
        for pid in $(ip netns pids "$P$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$P$n" 2>/dev/null || true
    done
}

# lab_vtepd_alive: whether every vtepd of the lab still runs.
lab_vtepd_alive() {
    local pid
    for pid in "${LAB_VTEPD_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || return 1
    done
    return 0
}

lab_vtepd_log_tail() {
    local f
    for f in "${LAB_VTEPD_LOGS[@]}"; do
        [ -s "$f" ] || continue
        echo "--- last lines of $(basename "$f"):" >&2
        tail -n "${1:-20}" "$f" >&2 || true
    done
}

# The topology without VTEPs.
lab_links() {
    local offloads=$1 n x
    for n in $LAB_NAMESPACES; do
        ip netns add "$P$n"
        ip -n "$P$n" link set lo up
    done
    ip link add "${P}ah" netns "${P}ha" type veth peer name "${P}aa" netns "${P}sa"
    ip link add "${P}au" netns "${P}sa" type veth peer name "${P}bu" netns "${P}sb"
    ip link add "${P}ba" netns "${P}sb" type veth peer name "${P}bh" netns "${P}hb"
    # The hosts speak IPv4 only and the access ports carry no link-local address: the MAC
    # tables hold the two hosts and nothing else.
    for n in ha hb; do
        ip netns exec "$P$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    ip -n "${P}ha" link set "${P}ah" address "$MAC_A" mtu "$INNER_MTU" up
    ip -n "${P}ha" addr add "$HOST_A/24" dev "${P}ah"
    ip -n "${P}hb" link set "${P}bh" address "$MAC_B" mtu "$INNER_MTU" up
    ip -n "${P}hb" addr add "$HOST_B/24" dev "${P}bh"
    ip -n "${P}sa" addr add "$UL_A/24" dev "${P}au"
    ip -n "${P}sb" addr add "$UL_B/24" dev "${P}bu"
    for x in "sa ${P}aa" "sb ${P}ba"; do
        set -- $x
        ip -n "$P$1" link set "$2" addrgenmode none
    done
    for x in "sa ${P}aa" "sa ${P}au" "sb ${P}bu" "sb ${P}ba"; do
        set -- $x
        ip -n "$P$1" link set "$2" up
    done
    # OFFLOADS=off stands for NICs without offloads; "on" leaves every veth as Linux made it.
    if [ "$offloads" = off ]; then
        for x in "ha ${P}ah" "sa ${P}aa" "sa ${P}au" "sb ${P}bu" "sb ${P}ba" "hb ${P}bh"; do
            set -- $x
            # Only with OFFLOADS=off: stands for a NIC without offloads.
            ip netns exec "$P$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null # no-offload NIC
        done
    fi
}

# lab_kernel_site a|b: vxlan0 (VNI 100, dstport 4789 given explicitly: the kernel's default
# is the pre-IANA 8472) + br0 with the access port; BUM frames head-end to the other site.
lab_kernel_site() {
    local side=$1 ns local_ip remote_ip
    ns=${P}s$side
    if [ "$side" = a ]; then local_ip=$UL_A remote_ip=$UL_B; else local_ip=$UL_B remote_ip=$UL_A; fi
    ip -n "$ns" link add vxlan0 type vxlan id "$VNI" local "$local_ip" dstport 4789 dev "${P}${side}u" learning
    ip -n "$ns" link add br0 type bridge
    ip -n "$ns" link set vxlan0 addrgenmode none
    ip -n "$ns" link set br0 addrgenmode none
    ip -n "$ns" link set vxlan0 master br0
    ip -n "$ns" link set "${P}${side}a" master br0
    ip -n "$ns" link set vxlan0 up
    ip -n "$ns" link set br0 up
    ip netns exec "$ns" bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst "$remote_ip"
}

lab_vc() {
    local state=$1
    shift
    vtep-ctl --timeout=10 "--db=unix:$state/db.sock" "$@" >>"$WORK/vtep-ctl.log" 2>&1
}

# lab_vtepd_site a|b vxlan|gre: vtepd with a fresh state root, logical switch ls100 (VNI 100)
# bound to the access port untagged, source-node replication to the other site's tunnel IP.
# Sets LAB_ERROR when vtepd does not come up or refuses the configuration.
lab_vtepd_site() {
    local side=$1 encapsulation=$2 local_ip remote_ip state ps acc pid
    if [ "$side" = a ]; then local_ip=$UL_A remote_ip=$UL_B; else local_ip=$UL_B remote_ip=$UL_A; fi
    state=$WORK/state-$side ps=${P}ps$side acc=${P}${side}a
    rm -rf "$state"
    mkdir -p "$state"
    LAB_VTEPD_LOGS+=("$WORK/vtepd-$side.log")
    lab_start "s$side" "$WORK/vtepd-$side.log" "$VTEPD" run --state-root "$state" \
        --physical-switch "$ps" --tunnel-ip "$local_ip" --underlay "${P}${side}u" --port "$acc" \
        ${VTEPD_ARGS:-}
    pid=$LAB_PID
    LAB_VTEPD_PIDS+=("$pid")
    LAB_VTEPD_SITES+=("${side^^}")
    for _ in $(seq 300); do
        [ -S "$state/db.sock" ] && [ -S "$state/vtepd.ctl" ] && break
        kill -0 "$pid" 2>/dev/null || { LAB_ERROR="vtepd at site ${side^^} exited at start"; return 0; }
        sleep 0.1
    done
    [ -S "$state/vtepd.ctl" ] || { LAB_ERROR="vtepd at site ${side^^} made no control socket in 30 s"; return 0; }
    # source_node: vtepd replicates BUM frames itself to the unknown-dst locator and learns
    # what arrives from it (the schema's default, service_node, would learn nothing).
    if ! lab_vc "$state" --may-exist add-ps "$ps" ||
        ! lab_vc "$state" --may-exist add-port "$ps" "$acc" ||
        ! lab_vc "$state" --may-exist add-ls "ls$VNI" ||
        ! lab_vc "$state" set Logical_Switch "ls$VNI" tunnel_key="$VNI" replication_mode=source_node \
            other_config:encapsulation="$encapsulation" ||
        ! lab_vc "$state" bind-ls "$ps" "$acc" 0 "ls$VNI" ||
        ! lab_vc "$state" add-mcast-remote "ls$VNI" unknown-dst "$remote_ip"; then
        LAB_ERROR="vtep-ctl failed at site ${side^^} (see vtep-ctl.log)"
        tail -n 5 "$WORK/vtep-ctl.log" >&2 || true
    fi
}

# lab_up PAIR on|off: the lab with PAIR's sites; returns once host A pings host B (polled,
# up to LAB_READY_SECONDS), with LAB_ERROR empty, or else with LAB_ERROR saying why.
lab_up() {
    local pair=$1 offloads=$2 site_a site_b encapsulation=vxlan side kind
    LAB_ERROR=
    LAB_VTEPD_PIDS=()
    LAB_VTEPD_SITES=()
    LAB_VTEPD_LOGS=()
    case $pair in
    kernel-kernel) site_a=kernel site_b=kernel ;;
    vtepd-kernel) site_a=vtepd site_b=kernel ;;
    vtepd-vtepd) site_a=vtepd site_b=vtepd ;;
    vtepd-vtepd-gre) site_a=vtepd site_b=vtepd encapsulation=gre ;;
    *) die "unknown pair '$pair' (kernel-kernel, vtepd-kernel, vtepd-vtepd, vtepd-vtepd-gre)" ;;
    esac
    lab_links "$offloads"
    for side in a b; do
        if [ "$side" = a ]; then kind=$site_a; else kind=$site_b; fi
        if [ "$kind" = kernel ]; then
            lab_kernel_site "$side"
        else
            lab_vtepd_site "$side" "$encapsulation"
            [ -z "$LAB_ERROR" ] || return 0
        fi
    done
    local deadline=$((SECONDS + LAB_READY_SECONDS))
    while :; do
        if ip netns exec "${P}ha" ping -c 1 -W 1 -q "$HOST_B" >/dev/null 2>&1; then
            return 0
        fi
        lab_vtepd_alive || { LAB_ERROR="vtepd exited before host B answered"; return 0; }
        [ "$SECONDS" -lt "$deadline" ] || { LAB_ERROR="host B unreachable after $LAB_READY_SECONDS s"; return 0; }
        sleep 0.2
    done
}

# The line for a results file: what ran where.
lab_machine() {
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)."
}
