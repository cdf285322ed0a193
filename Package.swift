// swift-tools-version: 6.2
// The VTEP Gateway package. Module boundaries and dependency direction follow
// ../shared/ARCHITECTURE.md: dependencies point one way only, from the executables down:
//   vtepd → Gateway → SwitchControl, DataPlane, HostConfiguration, ControlAPI
//   vtepsh → ShellSession → Shell, ControlAPI, ProcessSpawning (nothing privileged: no netlink, no libcrypt)
//   SwitchControl → OVSDB, Forwarding, ControlAPI, ProcessSpawning
//   DataPlane → Datapath, Forwarding, Netlink
//   HostConfiguration → Appliance, ProcessSpawning, Netlink, CCrypt
//   ControlAPI → Appliance, SwiftNIO
//   Appliance, Forwarding, Datapath, Netlink, Shell → Packet
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
        // vtepd's control API: the protocol (commands, results, reports), newline-delimited
        // JSON framing, the Unix-socket server and client, peer credentials. What vtepsh links.
        .target(
            name: "ControlAPI",
            dependencies: [
                "Appliance", "Packet",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Starting other programs by argument vector (posix_spawn, no shell, no inherited
        // descriptors, clean signal state): short commands run to completion, supervised
        // children. Used by HostConfiguration, SwitchControl and the shell's diagnostics.
        .target(name: "ProcessSpawning"),
        // Applying settings to the host: netlink links, addresses and routes, /etc files,
        // shadow(5) and yescrypt, udhcpc leases and supervision, chrony.
        .target(
            name: "HostConfiguration",
            dependencies: ["Appliance", "ProcessSpawning", "Packet", "Netlink", "CCrypt"]
        ),
        // The data plane's worker: Datapath batches through the Forwarding decision into
        // transmit queues, with counters; the underlay next-hop resolver.
        .target(
            name: "DataPlane",
            dependencies: ["Datapath", "Forwarding", "Packet", "Netlink"]
        ),
        // The switch's control: hardware_vtep rows ↔ forwarding snapshots (the role of
        // ovs-vtep), local-MAC publishing, the vtep-ctl-like writes, the supervised ovsdb-server.
        .target(
            name: "SwitchControl",
            dependencies: [
                "OVSDB", "Forwarding", "Packet", "ControlAPI", "ProcessSpawning",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["README-keys.md"]
        ),
        // vtepd's assembly: the control handler that routes each command to the appliance
        // settings or the switch, and the appliance settings' application at run time.
        .target(
            name: "Gateway",
            dependencies: [
                "SwitchControl", "DataPlane", "HostConfiguration", "ControlAPI", "Appliance",
                "OVSDB", "Forwarding", "Packet", "Datapath", "Netlink",
            ]
        ),
        // The appliance shell's pure core: command tree, parser, `?` help, Tab completion,
        // line editor over a byte stream. No sockets, no NIO.
        .target(name: "Shell", dependencies: ["Packet"]),
        // A vtepsh session: parsed commands to control requests, the line editor's loop,
        // ping and traceroute by argument vector. vtepsh's testable part.
        .target(
            name: "ShellSession",
            dependencies: ["Shell", "ControlAPI", "Appliance", "ProcessSpawning", "Packet"]),
        // The appliance shell: an admin's login shell and `vtepsh -c "CMD"`; a client of
        // vtepd's control socket.
        .executableTarget(
            name: "vtepsh",
            dependencies: [
                "ShellSession", "Shell", "ControlAPI", "Appliance", "Packet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The gateway daemon: bootstrap settings, wiring and signals; no logic tests need.
        // udhcpc's script: hands each DHCP event to vtepd (Glibc only, so it starts fast).
        .executableTarget(name: "vtep-dhcp-event"),
        .executableTarget(
            name: "vtepd",
            dependencies: [
                "Gateway", "SwitchControl", "DataPlane", "HostConfiguration", "ControlAPI",
                "Appliance", "OVSDB", "Forwarding", "Packet", "Datapath",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // What the test targets share (test support, not shipped): one wait-until helper
        // that says what it waited for and how long, and the seeded SplitMix64 generator.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // Seeded property checking shared by the test targets (test support, not shipped).
        .target(
            name: "PropertyChecks",
            dependencies: [
                "TestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            path: "Tests/PropertyChecks"
        ),
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
                "Forwarding", "Packet", "PropertyChecks",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        // Network namespaces and veth pairs for the tests that need them (test support).
        .target(
            name: "NamespaceLab", dependencies: ["Datapath", "TestSupport"],
            path: "Tests/NamespaceLab"),
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
                "ShellSession", "Datapath", "NamespaceLab", "TestSupport",
            ]
        ),
        .testTarget(
            name: "ShellTests",
            dependencies: [
                "Shell", "Packet", "PropertyChecks",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "ApplianceTests",
            dependencies: [
                "Appliance", "ControlAPI", "HostConfiguration", "ProcessSpawning", "Packet",
                "Netlink", "Datapath", "NamespaceLab", "CCrypt",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
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
