#!/usr/bin/env bash
# Builds the appliance's Debian 12 image from the package: OUT/vtep-gateway.img (a raw ext4
# root file system), OUT/vmlinuz and OUT/initrd.img beside it, booted by QEMU's direct kernel
# boot (see appliance/vm/run-vm.sh for the command line). mmdebstrap makes the root from
# Debian's registry (as root, no container needed); the package is installed with apt, so
# its Depends are what brings the rest; first boot stays armed (the package's postinst sees
# no running systemd and leaves it for the first boot).
#
#   appliance/build-image.sh DEB [OUT]     (default OUT: .build/image)
set -euo pipefail
cd "$(dirname "$0")/.."
DEB=$(realpath "$1")
OUT=${2:-.build/image}
SIZE=${IMAGE_SIZE:-2G}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
work=$(mktemp -d "$OUT/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The base: a kernel for virtual machines, systemd with networkd for the management
# interface, sshd; the package brings Open vSwitch, chrony, udhcpc and the rest.
include=linux-image-cloud-amd64,systemd-sysv,udev,dbus,openssh-server,iproute2,procps,less,ca-certificates,kmod,e2fsprogs
start=$(date +%s)
mmdebstrap --variant=apt --mode=root --include="$include" \
    --customize-hook="copy-in $DEB /tmp" \
    --customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /tmp/$(basename "$DEB")" \
    --customize-hook="rm \"\$1\"/tmp/$(basename "$DEB")" \
    --customize-hook="$PWD/appliance/image-customize.sh \"\$1\"" \
    bookworm "$work/root" 2>&1 | grep -v '^I: ' || true
[ -x "$work/root/usr/lib/vtep-gateway/vtepd" ] || { echo "build-image: the package is not installed in the root" >&2; exit 1; }

cp "$work/root/boot/vmlinuz-"* "$OUT/vmlinuz"
cp "$work/root/boot/initrd.img-"* "$OUT/initrd.img"
rm -f "$OUT/vtep-gateway.img"
truncate -s "$SIZE" "$OUT/vtep-gateway.img"
mkfs.ext4 -q -L vtep-root -d "$work/root" "$OUT/vtep-gateway.img"
dpkg-deb -f "$DEB" Version >"$OUT/version"
echo "build-image: $OUT/vtep-gateway.img ($(du -h --apparent-size "$OUT/vtep-gateway.img" | cut -f1) sparse, $(du -h "$OUT/vtep-gateway.img" | cut -f1) used), package $(cat "$OUT/version"), $(($(date +%s) - start)) s"
