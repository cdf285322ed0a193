import ControlAPI
import Foundation
import TestSupport
import Testing

/// ARP and ND suppression with real peers: host A behind vtepd (a namespace on an access
/// veth), host B behind the kernel's vxlan and bridge. What crosses the underlay is counted
/// with tshark on the underlay switch's port to vtepd.
@Suite("vtepd ARP and ND suppression", .serialized)
struct VTEPDARPSuppressionTests {
    static let hostA6 = "fd01::1"
    static let hostB6 = "fd01::2"

    @Test(
        "with suppression on, A resolves B (ARP and ND) without a request crossing the underlay; a gratuitous ARP replaces a stale entry; off, ARP floods again"
    )
    func suppressionWithTheKernelAsTheFarVTEP() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd, shell) = try VTEPDTraceTests.gatewayWithShell(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let name = vtepd.logicalSwitch
            func counters() throws -> CountersReport.LogicalSwitch? {
                try vtepd.countersReport().switches.first { $0.name == name }
            }
            /// Empties A's neighbour cache (both families) and pings `address` once.
            func resolve(_ address: String) throws {
                try lab.execute(
                    ["ip", "neigh", "flush", "dev", a.hostInterface], in: a.hostNamespace)
                try lab.execute(
                    ["ip", "-6", "neigh", "flush", "dev", a.hostInterface], in: a.hostNamespace)
                #expect(
                    try lab.ping(from: a.hostNamespace, to: address, count: 1)
                        == LabPingResult(transmitted: 1, received: 1), "A reaches \(address)")
            }
            /// The requests from A that crossed vtepd's underlay while `body` ran: ARP requests
            /// from A's address, and neighbour solicitations from A's IPv6 address.
            func requestsCrossing(probe: String, _ body: () throws -> Void) throws -> (
                arp: Int, nd: Int
            ) {
                // On the underlay switch's port to vtepd: vtepd's own sends bypass the taps
                // of its interface (PACKET_QDISC_BYPASS).
                let wire = try lab.capture(
                    on: topology.switchPorts[0], in: topology.switchNamespace,
                    filter: "udp port 4789")
                try body()
                try lab.injectProbe(probe, from: a)
                try lab.stop(wire, atProbe: probe)
                return (
                    try lab.count(
                        in: wire.file,
                        matching: "arp.opcode == 1 && arp.src.proto_ipv4 == \(a.hostIPv4)"),
                    try lab.count(
                        in: wire.file, matching: "icmpv6.type == 135 && ipv6.src == \(Self.hostA6)")
                )
            }
            // IPv6 on both hosts (the lab's hosts speak IPv4 only), global addresses only.
            for (site, address) in [(a, Self.hostA6), (b, Self.hostB6)] {
                try lab.execute(
                    ["ip", "link", "set", site.hostInterface, "addrgenmode", "none"],
                    in: site.hostNamespace)
                try lab.execute(
                    ["sysctl", "-qw", "net.ipv6.conf.\(site.hostInterface).disable_ipv6=0"],
                    in: site.hostNamespace)
                try lab.execute(
                    ["ip", "addr", "add", "\(address)/64", "dev", site.hostInterface, "nodad"],
                    in: site.hostNamespace)
            }

            // On, through the shell: written to the database, in the running configuration.
            _ = try shell("set logical-switch \(name) arp-suppression")
            #expect(
                try vtepd.control(["get", "Logical_Switch", name, "other_config"]).output
                    .contains(#"arp-suppression="true""#))
            #expect(
                try shell("show running-config").contains(
                    "set logical-switch \(name) arp-suppression"))
            try waitUntil("vtepd suppresses") { try counters()?.neighbourAnswered != nil }

            // The first resolution is flooded (nothing known yet); B's answers come back
            // through the tunnel and teach vtepd.
            let first = try requestsCrossing(probe: "02:00:0a:00:00:e0") {
                try resolve(b.hostIPv4)
                try resolve(Self.hostB6)
            }
            #expect(first.arp >= 1 && first.nd >= 1, "the unknown are flooded: \(first)")
            let taught = try #require(try counters())
            #expect(taught.neighbourFlooded ?? 0 >= 2, "\(taught)")

            // Now A resolves B in both families and not one request crosses the underlay.
            let crossed = try requestsCrossing(probe: "02:00:0a:00:00:e1") {
                try resolve(b.hostIPv4)
                try resolve(Self.hostB6)
            }
            #expect(crossed.arp == 0 && crossed.nd == 0, "\(crossed)")
            let answered = try #require(try counters())
            #expect(
                (answered.neighbourAnswered ?? 0) >= (taught.neighbourAnswered ?? 0) + 2,
                "\(answered)")
            #expect(try shell("show switch statistics").contains("ARP and ND suppression"))

            // B takes a new MAC and announces it (gratuitous ARP): vtepd answers with it.
            let moved = "02:00:0a:00:00:77"
            try lab.execute(
                ["ip", "link", "set", b.hostInterface, "address", moved], in: b.hostNamespace)
            let announce = """
                import socket, sys
                mac = bytes.fromhex(sys.argv[2].replace(":", ""))
                ip = socket.inet_aton(sys.argv[3])
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                s.bind((sys.argv[1], 0))
                s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + bytes.fromhex("0001080006040001")
                       + mac + ip + bytes(6) + ip)
                """
            try lab.execute(
                ["python3", "-c", announce, b.hostInterface, moved, b.hostIPv4],
                in: b.hostNamespace)
            let afterMove = try requestsCrossing(probe: "02:00:0a:00:00:e2") {
                try resolve(b.hostIPv4)
            }
            #expect(afterMove.arp == 0, "\(afterMove)")
            let neighbour = try lab.execute(
                ["ip", "neigh", "show", b.hostIPv4, "dev", a.hostInterface], in: a.hostNamespace
            ).output
            #expect(neighbour.contains(moved), "A learned B's new MAC from vtepd: \(neighbour)")

            // Off: A's requests cross the underlay again, as without the feature.
            _ = try shell("clear logical-switch \(name) arp-suppression")
            #expect(
                !(try vtepd.control(["get", "Logical_Switch", name, "other_config"]).output)
                    .contains("arp-suppression"))
            try waitUntil("vtepd floods again") { try counters()?.neighbourAnswered == nil }
            let flooded = try requestsCrossing(probe: "02:00:0a:00:00:e3") {
                try resolve(b.hostIPv4)
            }
            #expect(flooded.arp >= 1, "\(flooded)")
        }
    }

    @Test(
        "a static remote MAC given with its host's IP is answered for, with no request on the underlay; the IP is in the database and the running configuration; a bad IP is refused"
    )
    func staticRemoteMACWithItsAddress() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd, shell) = try VTEPDTraceTests.gatewayWithShell(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let name = vtepd.logicalSwitch
            // A host nobody runs: only the static entry can answer for it.
            let (ghost, ghostMAC) = ("10.0.0.99", "02:00:0a:00:00:99")
            _ = try shell("set logical-switch \(name) arp-suppression")
            let line = "add switch remote-mac \(name) \(ghostMAC) \(b.tunnelIP) ip \(ghost)"
            _ = try shell(line)
            #expect(try shell("show running-config").contains(line))
            let rows = try vtepd.control([
                "--columns=ipaddr", "find", "Ucast_Macs_Remote", "MAC=\"\(ghostMAC)\"",
            ]).output
            #expect(rows.contains(#""\#(ghost)""#), "\(rows)")
            // Refused with the reason, nothing written.
            let refused = try lab.attempt([
                try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c",
                "add switch remote-mac \(name) 02:00:0a:00:00:98 \(b.tunnelIP) ip 224.0.0.5",
            ])
            #expect(refused.status != 0)
            #expect(
                (refused.errors + refused.output).contains("cannot be the host's address"),
                "\(refused)")
            #expect(
                !(try vtepd.control(["list-remote-macs", name]).output).contains(
                    "02:00:0a:00:00:98"))

            let wire = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            try waitUntil("A resolves the static host through vtepd") {
                try lab.execute(
                    ["ip", "neigh", "flush", "dev", a.hostInterface], in: a.hostNamespace)
                // The ping itself goes unanswered (no such host); its ARP request is answered.
                _ = try lab.attempt(["ping", "-c", "1", "-W", "1", ghost], in: a.hostNamespace)
                let neighbour = try lab.execute(
                    ["ip", "neigh", "show", ghost, "dev", a.hostInterface], in: a.hostNamespace
                ).output
                return neighbour.contains(ghostMAC)
            }
            try lab.injectProbe("02:00:0a:00:00:e4", from: a)
            try lab.stop(wire, atProbe: "02:00:0a:00:00:e4")
            #expect(
                try lab.count(
                    in: wire.file,
                    matching: "arp.opcode == 1 && arp.dst.proto_ipv4 == \(ghost)") == 0,
                "an ARP request for the static host crossed the underlay")
        }
    }
}
