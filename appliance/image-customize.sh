#!/bin/sh
# mmdebstrap customize hook of build-image.sh: turns the installed root ($1) into an
# appliance image. Runs on the build host, outside the chroot.
set -eu
root=$1
echo vtep-gateway >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvtep-gateway\n' >"$root/etc/hosts"
printf 'LABEL=vtep-root / ext4 errors=remount-ro 0 1\n' >"$root/etc/fstab"
# Every appliance makes its own SSH host keys and machine id on its first boot.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# The management interface is configured by first boot (systemd-networkd); waiting for any
# one interface is online enough, the others may be access ports that never get an address.
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
printf '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30\n' \
    >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf"
rm -f "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"
# root has no password (locked): admins are `admin`, in vtepsh.
chroot "$root" passwd -l root >/dev/null
# The serial console is the appliance's console (console=ttyS0 on the kernel command line
# starts serial-getty@ttyS0 there).
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# systemd-firstboot would prompt on the console for a locale, time zone and root password
# on the first boot (the machine id is empty): the appliance's own first boot does its setup.
ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"
# openvswitch-vtep (a dependency, for vtep-ctl and the schema) ships the OVS VTEP emulator's
# LSB service; vtepd runs its own ovsdb-server, and that service's stop hangs for minutes at
# shutdown (systemd waits 5 min for it): the appliance never runs it.
ln -sf /dev/null "$root/etc/systemd/system/openvswitch-vtep.service"
# openvswitch-switch comes with openvswitch-vtep; its ovsdb-server and ovs-vswitchd have no
# work on the appliance (vtepd is the data plane and runs its own database server).
ln -sf /dev/null "$root/etc/systemd/system/openvswitch-switch.service"
ln -sf /dev/null "$root/etc/systemd/system/ovs-vswitchd.service"
ln -sf /dev/null "$root/etc/systemd/system/ovsdb-server.service"
