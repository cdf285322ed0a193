#!/usr/bin/env bash
# Builds the appliance's Debian 12 disk image from the package: OUT/vtep-gateway.img, a GPT
# disk with an EFI system partition (systemd-boot, the kernel, the initrd, one loader entry)
# and the ext4 root (label vtep-root). It boots on UEFI firmware (QEMU: -bios OVMF.fd). All
# of it is made without mounting anything (mkfs.ext4 -d, mtools, sfdisk, dd). OUT/vmlinuz and
# OUT/initrd.img are kept beside it for QEMU's direct kernel boot of the root partition. mmdebstrap makes the root from
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
include=linux-image-cloud-amd64,systemd-boot-efi,systemd-sysv,udev,dbus,openssh-server,iproute2,procps,less,ca-certificates,kmod,e2fsprogs
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
cmdline="root=LABEL=vtep-root rw console=ttyS0,115200 net.ifnames=0"

# The EFI system partition: systemd-boot as the removable-media loader, so the firmware finds
# it without boot entries in NVRAM.
esp=$work/esp.img
truncate -s 64M "$esp"
mkfs.vfat -F 32 -n VTEP-ESP "$esp" >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" "$work/root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$OUT/vmlinuz" ::/vmlinuz
mcopy -i "$esp" "$OUT/initrd.img" ::/initrd.img
printf 'default vtep-gateway.conf\ntimeout 0\n' >"$work/loader.conf"
printf 'title VTEP Gateway\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$cmdline" >"$work/entry.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/entry.conf" ::/loader/entries/vtep-gateway.conf

rootfs=$work/root.img
truncate -s "$SIZE" "$rootfs"
mkfs.ext4 -q -L vtep-root -d "$work/root" "$rootfs"
root_mib=$(($(stat -c %s "$rootfs") / 1048576))
disk=$OUT/vtep-gateway.img
rm -f "$disk"
# 1 MiB for the GPT, 64 MiB ESP, the root, 1 MiB for the backup GPT.
truncate -s $((1 + 64 + root_mib + 1))M "$disk"
sfdisk --quiet "$disk" <<PARTITIONS
label: gpt
start=1MiB, size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=65MiB, size=${root_mib}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
PARTITIONS
dd if="$esp" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$rootfs" of="$disk" bs=1M seek=65 conv=notrunc,sparse status=none
dpkg-deb -f "$DEB" Version >"$OUT/version"
echo "build-image: $disk ($(du -h --apparent-size "$disk" | cut -f1) sparse, $(du -h "$disk" | cut -f1) used), package $(cat "$OUT/version"), $(($(date +%s) - start)) s"
