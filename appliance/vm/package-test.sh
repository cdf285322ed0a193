#!/usr/bin/env bash
# The package's install, upgrade, remove and purge, in a copy of the image's root (loop-mounted,
# chroot; no systemd runs there, so the maintainer scripts take their no-systemd branch: the
# VM test covers the upgrade under systemd). Prints `N passed, N failed`.
#
#   package-test.sh IMAGE_DIR NEW_DEB
set -euo pipefail
image_dir=$1
new_deb=$(realpath "$2")
work=$(mktemp -d /var/tmp/vtep-package-test-XXXXXX)
root=$work/root
passed=0
failed=0
cleanup() {
    umount "$root/proc" 2>/dev/null || true
    umount "$root" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
check() { # NAME COMMAND...
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "PASS $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
    fi
}
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive "$@"; }

cp --sparse=always "$image_dir/vtep-gateway.img" "$work/disk.img"
mkdir "$root"
# The root partition starts at 65 MiB (build-image.sh).
mount -o loop,offset=$((65 * 1048576)) "$work/disk.img" "$root"
mount -t proc proc "$root/proc"

old=$(in_root dpkg-query -W -f='${Version}' vtep-gateway)
check "the image has the package installed ($old)" test -x "$root/usr/lib/vtep-gateway/vtepd"
check "first boot is armed, not run" test ! -e "$root/var/lib/vtep-gateway/.first-boot-done"
check "vtepd.service is enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/vtepd.service"
# State and a local edit, as an appliance in use has them.
mkdir -p "$root/var/lib/vtep-gateway"
echo state >"$root/var/lib/vtep-gateway/vtep.db"
echo "# a local edit" >>"$root/etc/vtep-gateway/vtepd.conf"
in_root VTEP_SEED=none /usr/lib/vtep-gateway/first-boot >/dev/null
check "first boot (run by hand here): admin with vtepsh as its shell" \
    sh -c "grep -q '^admin:.*:/usr/bin/vtepsh\$' '$root/etc/passwd'"
check "first boot: vtepsh in /etc/shells" grep -qx /usr/bin/vtepsh "$root/etc/shells"
check "first boot: admin's password empty and expired" \
    sh -c "grep -q '^admin::0:' '$root/etc/shadow'"
check "first boot: SSH host keys" test -s "$root/etc/ssh/ssh_host_ed25519_key"

cp "$new_deb" "$root/tmp/new.deb"
in_root dpkg -i --force-confold /tmp/new.deb >/dev/null
new=$(in_root dpkg-query -W -f='${Version}' vtep-gateway)
check "upgrade $old -> $new" test "$new" = "$(dpkg-deb -f "$new_deb" Version)"
check "upgrade keeps the state" grep -qx state "$root/var/lib/vtep-gateway/vtep.db"
check "upgrade keeps the local edit of vtepd.conf" grep -qx "# a local edit" "$root/etc/vtep-gateway/vtepd.conf"

in_root dpkg --remove vtep-gateway >/dev/null
check "remove: the programs are gone" test ! -e "$root/usr/lib/vtep-gateway/vtepd" -a ! -e "$root/usr/bin/vtepsh"
check "remove: vtepsh left /etc/shells" sh -c "! grep -qx /usr/bin/vtepsh '$root/etc/shells'"
check "remove: the state is kept" grep -qx state "$root/var/lib/vtep-gateway/vtep.db"
check "remove: the configuration is kept" test -e "$root/etc/vtep-gateway/vtepd.conf"

in_root dpkg --purge vtep-gateway >/dev/null
check "purge: the state is gone" test ! -e "$root/var/lib/vtep-gateway"
check "purge: the configuration is gone" test ! -e "$root/etc/vtep-gateway/vtepd.conf"
check "purge: the unit links are gone" test ! -e "$root/etc/systemd/system/multi-user.target.wants/vtepd.service"

in_root dpkg -i /tmp/new.deb >/dev/null
check "install again after purge" test -x "$root/usr/lib/vtep-gateway/vtepd"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
