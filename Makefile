# VTEP Gateway. `make test` is the one command CI runs (.ci/run).
SWIFT ?= swift
SWIFT_FORMAT ?= swift-format
SOURCES := Sources Tests bench/Benchmarks

.PHONY: all deps build test bench bench-build demo demo-down format lint clean fuzz deb image \
	image-test

all: build

deps:
	./appliance/install-deps.sh

build: deps
	$(SWIFT) build

# Builds everything (the benchmarks too, so they cannot rot), checks the release build's
# per-frame functions (the forwarding core's and the worker's) for ARC traffic and
# allocation, and runs every test.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) build --package-path bench -c release
	$(SWIFT) build -c release --product vtepd
	./bench/check-hot-path.sh
	SWIFT=$(SWIFT) ./Tests/run-tests.sh

# The Debian package: .build/deb/vtep-gateway_VERSION_amd64.deb (static Swift runtime),
# checked with lintian. VERSION=... overrides the version.
deb:
	./appliance/install-deps.sh --image
	./appliance/build-deb.sh

# The appliance image: .build/image/vtep-gateway.img (ext4 root), vmlinuz, initrd.img; a
# Debian 12 root from mmdebstrap with the package installed and first boot armed.
image: deb
	./appliance/build-image.sh "$$(cat .build/deb/LATEST)"

# The appliance in QEMU (TCG): SSH, console, restart, reboot, two VMs forwarding over VXLAN,
# an upgrade with `update system`. Not part of `make test` (docs/contributing.md, "The appliance in QEMU").
image-test:
	./appliance/install-deps.sh --image
	./appliance/vm/image-test.sh

# libFuzzer over every parser, FUZZ_SECONDS each (default 60); a crash lands in fuzz/crashes/,
# which `make test` replays (FuzzReplayTests) with every corpus file. CPU budgets, the working
# corpus and merging: docs/fuzzing.md.
FUZZ_SECONDS ?= 60
fuzz: deps
	./fuzz/run.sh $(FUZZ_SECONDS)

# Micro-benchmarks (package-benchmark). Figures and how to read them: docs/benchmarks.md.
bench: deps
	cd bench && $(SWIFT) package --allow-writing-to-package-directory benchmark

bench-build: deps
	$(SWIFT) build --package-path bench -c release

# A two-site lab in network namespaces: a host behind vtepd, a host behind the Linux kernel's
# vxlan + bridge; pings and iperf3 across, then prints both MAC tables and vtepd's counters.
demo: deps
	./appliance/demo/demo-up.sh

demo-down:
	./appliance/demo/demo-down.sh

format:
	$(SWIFT_FORMAT) format --in-place --recursive --parallel $(SOURCES) Package.swift bench/Package.swift

lint:
	$(SWIFT_FORMAT) lint --recursive --parallel $(SOURCES) Package.swift bench/Package.swift

clean:
	rm -rf .build bench/.build
