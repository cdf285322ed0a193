#!/usr/bin/env bash
# Builds the appliance's Debian package: vtep-gateway_VERSION_amd64.deb in OUT (default
# .build/deb/), with dpkg-deb from a staged tree, and checks it with lintian (errors fail the
# build). The Swift runtime is linked statically (--static-swift-stdlib): the target has no
# Swift. A separate scratch path keeps this release build from invalidating `make test`'s.
#
#   appliance/build-deb.sh [OUT]        VERSION=0.1.0+5 overrides the version
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
OUT=${1:-.build/deb}
SCRATCH=${DEB_SCRATCH:-.build/deb-build}
base=$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/ControlAPI/Product.swift)
VERSION=${VERSION:-$base+git$(git rev-list --count HEAD 2>/dev/null || echo 0)}
ARCH=amd64
PKG=vtep-gateway

for product in vtepd vtepsh vtep-dhcp-event; do
    "$SWIFT" build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product "$product"
done
bin=$("$SWIFT" build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --show-bin-path)

mkdir -p "$OUT"
OUT=$(realpath "$OUT")
stage=$(mktemp -d "$OUT/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/sbin" "$root/usr/bin" "$root/usr/lib/$PKG" \
    "$root/usr/lib/systemd/system" "$root/etc/vtep-gateway" "$root/etc/ssh/sshd_config.d" \
    "$root/usr/share/doc/$PKG"
# vtepd finds vtep-dhcp-event beside its own executable (/proc/self/exe), so both live in
# /usr/lib/vtep-gateway and /usr/sbin/vtepd is a link to it.
install -m 755 -s "$bin/vtepd" "$root/usr/lib/$PKG/vtepd"
install -m 755 -s "$bin/vtep-dhcp-event" "$root/usr/lib/$PKG/vtep-dhcp-event"
ln -s "../lib/$PKG/vtepd" "$root/usr/sbin/vtepd"
install -m 755 -s "$bin/vtepsh" "$root/usr/bin/vtepsh"
install -m 755 appliance/first-boot "$root/usr/lib/$PKG/first-boot"
install -m 644 appliance/systemd/vtepd.service appliance/systemd/vtep-gateway-first-boot.service \
    "$root/usr/lib/systemd/system/"
install -m 644 etc/vtep-gateway/vtepd.conf "$root/etc/vtep-gateway/vtepd.conf"
install -m 644 appliance/sshd/vtep-gateway.conf "$root/etc/ssh/sshd_config.d/vtep-gateway.conf"
install -m 644 appliance/debian/copyright "$root/usr/share/doc/$PKG/copyright"
install -m 644 README.md "$root/usr/share/doc/$PKG/README.md"
gzip -9n <README.md >"$root/usr/share/doc/$PKG/README.md.gz" && rm "$root/usr/share/doc/$PKG/README.md"
# The guides README.md links to (docs/), compressed as Debian policy §12.3 asks.
install -d "$root/usr/share/doc/$PKG/docs"
for doc in docs/*.md; do
    gzip -9n <"$doc" >"$root/usr/share/doc/$PKG/$doc.gz"
done
# Manual pages, printed by the binaries just built (the same text as docs/man/, which
# DocumentationTests compare with the programs): vtepsh(1), vtepd.conf(5), vtepd(8).
install -d "$root/usr/share/man/man1" "$root/usr/share/man/man5" "$root/usr/share/man/man8"
"$bin/vtepsh" --reference man | gzip -9n >"$root/usr/share/man/man1/vtepsh.1.gz"
"$bin/vtepd" --reference conf | gzip -9n >"$root/usr/share/man/man5/vtepd.conf.5.gz"
"$bin/vtepd" --reference man | gzip -9n >"$root/usr/share/man/man8/vtepd.8.gz"
{
    echo "$PKG ($VERSION) bookworm; urgency=medium"
    echo
    echo "  * Built from $(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')."
    echo
    echo " -- VTEP Gateway developers <developers@vtep-gateway.example.net>  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$root/usr/share/doc/$PKG/changelog.gz"
for script in postinst prerm postrm; do
    install -m 755 "appliance/debian/$script" "$root/DEBIAN/$script"
done
printf '/etc/vtep-gateway/vtepd.conf\n/etc/ssh/sshd_config.d/vtep-gateway.conf\n' >"$root/DEBIAN/conffiles"

# Shared libraries the binaries link, as dpkg-shlibdeps finds them (it wants a debian/control).
mkdir -p "$stage/src/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PKG" "$PKG" >"$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O \
    "$root/usr/lib/$PKG/vtepd" "$root/usr/lib/$PKG/vtep-dhcp-event" "$root/usr/bin/vtepsh" |
    sed -n 's/^shlibs:Depends=//p')
# Programs vtepd and vtepsh run, and what first boot uses; libnftables1 is among the shlibs
# above already (vtepd links it for the logical routers' NAT) and named for the reader.
runtime="libnftables1, openvswitch-common, openvswitch-vtep, openssh-server, udhcpc, chrony, traceroute, iputils-ping, iproute2, openssl, tcpdump, passwd, systemd"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: $PKG
Version: $VERSION
Architecture: $ARCH
Maintainer: VTEP Gateway developers <developers@vtep-gateway.example.net>
Installed-Size: $size
Depends: $shlibs, $runtime
Section: net
Priority: optional
Description: VXLAN/GRE tunnel endpoint gateway appliance
 vtepd bridges physical ports and VLANs into VXLAN, GRE and NVGRE overlays,
 programmed through the OVSDB hardware_vtep schema by a controller or by the
 admin's shell. vtepsh is that shell: administrators log in over SSH and land
 in it. The package ships the systemd units, the configuration file, the sshd
 drop-in and the first-boot setup of the appliance.
CONTROL

deb="$OUT/${PKG}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb" >"$OUT/LATEST"
echo "build-deb: $deb ($(du -h "$deb" | cut -f1))"
# DEB_LINTIAN=no skips the check (the VM test's packages, built twice per run).
if [ "${DEB_LINTIAN:-yes}" != no ] && command -v lintian >/dev/null; then
    # Errors fail the build; warnings are printed (today: postinst calls systemctl). Tags to suppress, one a line with its reason, go in lintian-suppressed.
    lintian --fail-on error --suppress-tags-from-file appliance/debian/lintian-suppressed "$deb"
fi
