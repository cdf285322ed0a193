// swift-tools-version: 6.2
// The VTEP Gateway package. Module boundaries and dependency direction follow
// ../shared/ARCHITECTURE.md: dependencies point one way only, from the executables down:
//   vtepd → Gateway, DaemonLogging, swift-service-lifecycle (ServiceGroup: signals, ordered stop)
//   Gateway → SwitchControl, DataPlane, HostConfiguration, ControlAPI, MetricsEndpoint, DaemonLogging, ManualPages
//   MetricsEndpoint → ControlAPI (the reports it exposes), swift-prometheus, SwiftNIO's HTTP/1
//   vtepsh → ShellSession → Shell, ControlAPI, ProcessSpawning, ManualPages (nothing privileged: no netlink, no libcrypt)
//   SwitchControl → OVSDB, Forwarding, ControlAPI, ProcessSpawning, DaemonLogging, Routing
//   Routing → Datapath (setns), ProcessSpawning (ip), libnftables
//   DataPlane → Datapath, Forwarding, Netlink, swift-system (Errno)
//   HostConfiguration → Appliance, ProcessSpawning, Netlink, CCrypt
//   ControlAPI → Appliance, Shell (the grammar's vocabulary), DaemonLogging, SwiftNIO
//   Appliance, Forwarding, Datapath, Netlink, Shell → Packet
//   DaemonLogging → swift-log; the libraries that log take a swift-log Logger per subsystem
// Each target below says in one line what it owns.
import PackageDescription

let package = Package(
    name: "vtep-gateway",
    products: [
        .library(name: "Packet", targets: ["Packet"]),
        .library(name: "Forwarding", targets: ["Forwarding"]),
        .library(name: "Datapath", targets: ["Datapath"]),
        .library(name: "OVSDB", targets: ["OVSDB"]),
        .library(name: "Appliance", targets: ["Appliance"]),
        .library(name: "ControlAPI", targets: ["ControlAPI"]),
        .library(name: "HostConfiguration", targets: ["HostConfiguration"]),
        .library(name: "DataPlane", targets: ["DataPlane"]),
        .library(name: "SwitchControl", targets: ["SwitchControl"]),
        .library(name: "Shell", targets: ["Shell"]),
        .library(name: "Gateway", targets: ["Gateway"]),
        .executable(name: "vtepd", targets: ["vtepd"]),
        .executable(name: "vtepsh", targets: ["vtepsh"]),
        .executable(name: "vtep-dhcp-event", targets: ["vtep-dhcp-event"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(
            url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Wire formats over raw buffer views; allocates nothing per packet.
        .target(name: "Packet"),
        // Logical switches, bindings, MAC tables, the per-packet decision. Pure: no I/O,
        // time is injected.
        .target(name: "Forwarding", dependencies: ["Packet", "CPrefetch"]),
        // Cache prefetch hints Swift does not expose (static inline C, inlined into callers).
        .target(name: "CPrefetch"),
        // Linux packet I/O: AF_PACKET access ports, UDP tunnel sockets, preallocated batches.
        // Makes no forwarding decisions.
        .target(name: "Datapath", dependencies: ["Packet", "CLinuxNet"]),
        // What Swift cannot see of the Linux socket API: mmsghdr, CMSG macros, PACKET_* and
        // tpacket_auxdata, setns.
        .target(name: "CLinuxNet"),
        // RFC 7047 JSON-RPC client on SwiftNIO and the typed hardware_vtep model. Knows nothing
        // of the data plane.
        .target(
            name: "OVSDB",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Typed rtnetlink: routes and neighbours for the underlay's next hops over libmnl;
        // links, addresses and routes of the host's configuration over libnl-route-3.
        .target(name: "Netlink", dependencies: ["Packet", "CMnl", "CNLRoute"]),
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(
            name: "CNLRoute", pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        // libxcrypt's crypt_gensalt_rn / crypt_rn, for the appliance users' password hashes.
        .systemLibrary(
            name: "CCrypt", pkgConfig: "libxcrypt", providers: [.apt(["libcrypt-dev"])]),
        // Typed appliance settings (host name, users, interfaces, routes, DNS, NTP), their
        // atomic store and the audit log of changes. Applies nothing; touches no packets.
        .target(name: "Appliance", dependencies: ["Packet"]),
        // vtepd's control API: each command declared once (wire form, shell grammar, audit,
        // running-config line), results and reports, newline-delimited JSON framing, the
        // Unix-socket server and client, peer credentials. What vtepsh links.
        .target(
            name: "ControlAPI",
            dependencies: [
                "Appliance", "Shell", "Packet", "DaemonLogging",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The process's one log output: swift-log lines on stderr, with journald's <N> priority
        // prefixes when run under systemd; a per-reason rate limiter for repeated failures.
        .target(
            name: "DaemonLogging",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        // systemd's notification protocol (sd_notify(3)): readiness, watchdog, status.
        .target(name: "SystemdNotify"),
        // Starting other programs by argument vector (posix_spawn, no shell, no inherited
        // descriptors, clean signal state): short commands run to completion, supervised
        // children. Used by HostConfiguration, SwitchControl and the shell's diagnostics.
        .target(name: "ProcessSpawning"),
        // Applying settings to the host: netlink links, addresses and routes, /etc files,
        // shadow(5) and yescrypt, udhcpc leases and supervision, chrony.
        .target(
            name: "HostConfiguration",
            dependencies: [
                "Appliance", "ProcessSpawning", "Packet", "Netlink", "CCrypt",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The data plane's worker: Datapath batches through the Forwarding decision into
        // transmit queues, with counters and the last I/O error; the underlay next-hop resolver.
        .target(
            name: "DataPlane",
            dependencies: [
                "Datapath", "Forwarding", "Packet", "Netlink",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Logical routers of the L3 gateway: a network namespace per router, veths into the
        // data plane, kernel routes, an nftables NAT ruleset through libnftables.
        .target(
            name: "Routing",
            dependencies: [
                "Packet", "Datapath", "ProcessSpawning", "CNftables",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .systemLibrary(
            name: "CNftables", pkgConfig: "libnftables", providers: [.apt(["libnftables-dev"])]),
        // The switch's control: hardware_vtep rows ↔ forwarding snapshots (the role of
        // ovs-vtep), local-MAC publishing, the vtep-ctl-like writes, the supervised ovsdb-server.
        .target(
            name: "SwitchControl",
            dependencies: [
                "OVSDB", "Forwarding", "Packet", "ControlAPI", "ProcessSpawning", "DaemonLogging",
                "Routing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The Prometheus metrics of vtepd's counters and state, and the HTTP endpoint
        // (`GET /metrics`, SwiftNIO's HTTP/1) that serves them on the configured address.
        .target(
            name: "MetricsEndpoint",
            dependencies: [
                "ControlAPI", "Packet",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // vtepd's assembly: its parts started in order and handed out as services; the control
        // handler routing each command to the appliance settings or the switch; the control
        // side's rounds (next hops, data-plane I/O errors) and the problems they report.
        .target(
            name: "Gateway",
            dependencies: [
                "SwitchControl", "DataPlane", "HostConfiguration", "ControlAPI", "Appliance",
                "OVSDB", "Forwarding", "Packet", "Datapath", "Netlink", "DaemonLogging", "Routing",
                "MetricsEndpoint", "CLinuxNet",
                "SystemdNotify", "ManualPages",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The appliance shell's pure core: command tree, parser, `?` help, Tab completion,
        // line editor over a byte stream. No sockets, no NIO.
        .target(name: "Shell", dependencies: ["Packet"]),
        // A vtepsh session: parsed commands to control requests, the line editor's loop,
        // ping and traceroute by argument vector. vtepsh's testable part.
        .target(
            name: "ShellSession",
            dependencies: [
                "Shell", "ControlAPI", "Appliance", "ProcessSpawning", "Packet", "ManualPages",
            ]),
        // Manual pages in man(7) roff, from swift-argument-parser's description of a command
        // line and prose sections: what vtepd(8), vtepd.conf(5) and vtepsh(1) are made of.
        .target(name: "ManualPages"),
        // The appliance shell: an admin's login shell and `vtepsh -c "CMD"`; a client of
        // vtepd's control socket.
        .executableTarget(
            name: "vtepsh",
            dependencies: [
                "ShellSession", "Shell", "ControlAPI", "Appliance", "Packet", "ManualPages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // udhcpc's script: hands each DHCP event to vtepd (Glibc only, so it starts fast).
        .executableTarget(name: "vtep-dhcp-event"),
        // The gateway daemon: its command line, logging set up, `GatewayDaemon`'s services run
        // in a ServiceGroup (signals, ordered shutdown); no logic tests need.
        .executableTarget(
            name: "vtepd",
            dependencies: [
                "Gateway", "DataPlane", "OVSDB", "Packet", "DaemonLogging", "SystemdNotify",
                "ManualPages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What the test targets share (test support, not shipped): one wait-until helper
        // that says what it waited for and how long, the seeded SplitMix64 generator, and
        // ARP and neighbour discovery frames.
        .target(name: "TestSupport", dependencies: ["Packet"], path: "Tests/TestSupport"),
        // Seeded property checking shared by the test targets (test support, not shipped).
        .target(
            name: "PropertyChecks",
            dependencies: [
                "TestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            path: "Tests/PropertyChecks"
        ),
        // What each fuzz target checks of one input; linked into the libFuzzer mains of fuzz/
        // and replayed over the corpora by FuzzReplayTests (test support, not shipped).
        .target(
            name: "FuzzChecks",
            dependencies: [
                "Appliance", "ControlAPI", "DataPlane", "Datapath", "Forwarding", "Netlink",
                "OVSDB", "Packet", "Shell", "ShellSession", "SwitchControl",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/FuzzChecks"
        ),
        .testTarget(name: "FuzzReplayTests", dependencies: ["FuzzChecks"]),
        .testTarget(
            name: "PacketTests",
            dependencies: [
                "Packet", "PropertyChecks", "TestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "ForwardingTests",
            dependencies: [
                "Forwarding", "Packet", "PropertyChecks", "TestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        // Network namespaces and veth pairs for the tests that need them (test support).
        .target(
            name: "NamespaceLab", dependencies: ["Datapath", "TestSupport"],
            path: "Tests/NamespaceLab"),
        // The data plane's worker on in-memory ports: frame by frame, no namespaces.
        .testTarget(
            name: "DataPlaneTests",
            dependencies: ["DataPlane", "Datapath", "Forwarding", "Packet", "TestSupport"]),
        .testTarget(
            name: "DatapathTests",
            dependencies: ["Datapath", "Packet", "NamespaceLab", "TestSupport"]),
        .testTarget(
            name: "NetlinkTests",
            dependencies: ["Netlink", "Datapath", "Packet", "NamespaceLab", "TestSupport"]),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "SwitchControl", "DataPlane", "HostConfiguration", "ControlAPI",
                "ProcessSpawning", "OVSDB", "Forwarding", "Packet", "PropertyChecks", "Appliance",
                "Shell",
                "ShellSession", "Datapath", "NamespaceLab", "DaemonLogging", "TestSupport",
                "Netlink", "Routing",
                "MetricsEndpoint",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Logical routers' configuration, names and NAT rulesets (pure; no namespace).
        .testTarget(name: "RoutingTests", dependencies: ["Routing", "Packet"]),
        .testTarget(name: "SystemdNotifyTests", dependencies: ["SystemdNotify"]),
        .testTarget(
            name: "MetricsEndpointTests",
            dependencies: ["MetricsEndpoint", "ControlAPI", "Packet", "TestSupport"]),
        .testTarget(
            name: "DaemonLoggingTests",
            dependencies: ["DaemonLogging", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "ShellTests",
            dependencies: [
                "Shell", "ShellSession", "ControlAPI", "Appliance", "Packet", "PropertyChecks",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "ApplianceTests",
            dependencies: [
                "Appliance", "ControlAPI", "HostConfiguration", "ProcessSpawning", "Packet",
                "Netlink", "Datapath", "NamespaceLab", "CCrypt", "DaemonLogging", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        // The documentation checked: README.md and docs/ (examples, links, quick start,
        // generated manual pages, database keys).
        .testTarget(
            name: "DocumentationTests",
            dependencies: ["Shell", "ShellSession", "SwitchControl", "TestSupport"]),
        .testTarget(
            name: "OVSDBTests",
            dependencies: [
                "OVSDB", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["Fixtures"]
        ),
    ]
)
