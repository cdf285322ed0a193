#!/usr/bin/env bash
# `make image-test`: the image from a "previous" package, the VM test with the current one
# as the update. Both packages hold the same build (only the version differs: 0.1.0+gitN~previous
# < 0.1.0+gitN), so the update checks the upgrade's mechanics (versions, restart, state and
# settings kept, forwarding resumes), not a migration between two code versions.
set -euo pipefail
cd "$(dirname "$0")/../.."
base=$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/ControlAPI/Product.swift)
version=${VERSION:-$base+git$(git rev-list --count HEAD)}
# IMAGE_TEST_REUSE=1: the packages and the image of the last run, when they are there (a
# change to the test alone).
if [ -n "${IMAGE_TEST_REUSE:-}" ] && [ -e .build/image-test/image/vtep-gateway.img ] &&
    [ -e .build/image-test/previous ] && [ -e .build/image-test/current ]; then
    previous=$(cat .build/image-test/previous)
    current=$(cat .build/image-test/current)
else
    DEB_LINTIAN=no VERSION="$version~previous" ./appliance/build-deb.sh .build/image-test/deb
    previous=$(cat .build/image-test/deb/LATEST)
    DEB_LINTIAN=no VERSION="$version" ./appliance/build-deb.sh .build/image-test/deb
    current=$(cat .build/image-test/deb/LATEST)
    ./appliance/build-image.sh "$previous" .build/image-test/image
    echo "$previous" >.build/image-test/previous
    echo "$current" >.build/image-test/current
fi
./appliance/vm/package-test.sh .build/image-test/image "$current"
exec python3 appliance/vm/image-test.py .build/image-test/image "$previous" "$current"
