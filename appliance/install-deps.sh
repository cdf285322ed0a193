#!/usr/bin/env bash
# Installs every Debian package VTEP Gateway needs to build, run, test and benchmark.
# Idempotent: when everything is already installed it changes nothing and asks no mirror.
# `make test` and `.ci/run` call it; run it as root (or through sudo).
set -euo pipefail

# Build: the netlink libraries the Netlink module links against; libnftables, through which
# the Routing module applies the logical routers' NAT rulesets; binutils for
# bench/check-hot-path.sh (nm, objdump).
build=(libmnl-dev libnl-3-dev libnl-route-3-dev libnftables-dev libcrypt-dev pkg-config binutils)
# Peers and wire checks used by the integration tests and by the fixture capture scripts
# (Tests/PacketTests/Fixtures/capture-*.sh): the kernel's tools, Open vSwitch's userspace
# datapath and its hardware_vtep schema, capture tools, mausezahn (netsniff-ng) to inject
# crafted frames; OpenSSH's server and client (VTEPSHSSHTests runs its own sshd); OVN's
# northd and ovn-controller-vtep, the controller VTEPDOVNTests programs vtepd with; Prometheus,
# which VTEPDMetricsTests starts to scrape vtepd's metrics endpoint; nft (nftables), with which
# VTEPDRouterTests reads a router's NAT counters as an operator would.
peers=(nftables iproute2 tcpdump tshark openvswitch-switch openvswitch-vtep iputils-ping netcat-openbsd ethtool netsniff-ng openssh-server openssh-client dnsmasq-base ovn-central ovn-controller-vtep prometheus)
# What the shell runs for the admin: ping (iputils-ping, above) and traceroute; openssl, with
# which vtepd makes the switch's key and self-signed certificate and checks a pasted CA
# (openvswitch-common depends on it; named because vtepd runs it itself).
runtime=(traceroute udhcpc chrony openssl)
# Benchmarks (bench/): iperf3; the traffic generator of ../shared/reference (trafgen) comes
# with netsniff-ng above; gnuplot draws each result's PNG chart (bench/lib/chart.sh).
bench=(iperf3 gnuplot-nox)

# The package, the image and the VM test (`make deb`, `make image`, `make image-test`; asked
# for with --image, so that `make test` does not download an emulator it does not use):
# lintian checks the package, mmdebstrap makes the image's root from Debian's registry,
# e2fsprogs, dosfstools, mtools and fdisk make its file systems and partition table without
# mounting anything, QEMU boots it with OVMF's UEFI firmware.
image=(dpkg-dev lintian mmdebstrap e2fsprogs dosfstools mtools fdisk qemu-system-x86 qemu-utils ovmf openssh-client netcat-openbsd)

wanted=("${build[@]}" "${peers[@]}" "${runtime[@]}" "${bench[@]}")
if [ "${1:-}" = --image ]; then wanted+=("${image[@]}"); fi
missing=()
for p in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # Installing a peer must not leave its daemon running on this machine (openssh-server's
    # postinst starts sshd on port 22, openvswitch-switch starts ovs-vswitchd): tests start
    # their own, in namespaces. invoke-rc.d asks /usr/sbin/policy-rc.d first, and exit status
    # 101 means "action forbidden" (Debian's README.policy-rc.d). One already there
    # (containers ship one) is left as it is.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# install-deps.sh: no service starts while it installs\nexit 101\n' |
            $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
        trap '$sudo rm -f "$policy"' EXIT
    fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "install-deps: all ${#wanted[@]} Debian packages present"
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "install-deps: ERROR: no Swift toolchain on PATH (need Swift 6.2 or later)" >&2
    exit 1
fi
