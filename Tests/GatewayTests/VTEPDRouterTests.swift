import Foundation
import TestSupport
import Testing

/// Logical routers (L3 gateway) end to end: an overlay host behind the kernel's vxlan + bridge,
/// an "outside" host on vtepd's physical port bound to the uplink logical switch, a router
/// between them configured through `vtep-ctl` in hardware_vtep's Logical_Router table, checked
/// on the outside host's wire.
@Suite("vtepd logical routers with NAT", .serialized)
struct VTEPDRouterTests {
    @Test(
        "SNAT: ping, UDP and TCP from the overlay leave as the external address only; a floating IP reached from outside"
    )
    func snatAndFloatingIP() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            let (overlay, outside) = (setup.overlay, setup.outside)
            try setup.addRouter(
                "r1",
                nat: [
                    #"other_config:"snat:10.0.0.0/24"="198.51.100.10""#,
                    #"other_config:"floating-ip:198.51.100.11"="10.0.0.1""#,
                ])
            try setup.waitForRouter("r1")

            let capture = try lab.capture(
                on: outside.hostInterface, in: outside.hostNamespace, filter: "ip")
            // Ping, from the overlay host (whose own address is the floating IP's).
            let ping = try lab.ping(from: overlay.hostNamespace, to: "198.51.100.2", count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))
            // UDP with content, to a listener on the outside host.
            let udpReceived = lab.file("udp-received.txt")
            let listener = try lab.start(
                "nc-udp", ["nc", "-n", "-u", "-l", "198.51.100.2", "7000"],
                in: outside.hostNamespace, output: udpReceived)
            defer { listener.stop() }
            try waitUntil("the UDP listener", timeout: .seconds(10)) {
                let bound = try lab.execute(
                    ["ss", "-Hlun", "sport", "=", ":7000"], in: outside.hostNamespace)
                return !bound.output.isEmpty
            }
            let message = lab.file("udp-sent.txt")
            try Data("through the router, over UDP\n".utf8).write(to: message)
            try lab.execute(
                ["nc", "-n", "-u", "-w", "1", "198.51.100.2", "7000"], in: overlay.hostNamespace,
                input: message)
            try waitUntil("the UDP datagram at the outside host", timeout: .seconds(10)) {
                (try? String(contentsOf: udpReceived, encoding: .utf8))
                    == "through the router, over UDP\n"
            }
            // TCP with content, 1 MiB checked byte for byte.
            try lab.transferTCP(
                from: overlay.hostNamespace, to: outside.hostNamespace, address: "198.51.100.2",
                size: 1 << 20)
            try lab.stop(capture)
            // On the outside wire: the overlay's packets only ever carry the floating IP
            // (the overlay host's own external address); no internal address shows.
            #expect(try lab.count(in: capture.file, matching: "ip.addr == 10.0.0.0/24") == 0)
            #expect(try lab.count(in: capture.file, matching: "ip.src == 198.51.100.11") > 10)

            // The outside host reaches the overlay host at its floating IP.
            try lab.transferTCP(
                from: outside.hostNamespace, to: overlay.hostNamespace, address: "198.51.100.11",
                listenAddress: overlay.hostIPv4, port: 5202, size: 256 << 10)

            // SNAT proper: a second overlay address, with no floating IP, leaves as the
            // SNAT address.
            try lab.execute(
                ["ip", "addr", "add", "10.0.0.7/24", "dev", overlay.hostInterface],
                in: overlay.hostNamespace)
            let second = try lab.capture(
                on: outside.hostInterface, in: outside.hostNamespace, filter: "icmp")
            let fromSecond = try lab.execute(
                [
                    "ping", "-n", "-c", "2", "-i", "0.2", "-W", "5", "-I", "10.0.0.7",
                    "198.51.100.2",
                ],
                in: overlay.hostNamespace)
            #expect(fromSecond.output.contains("2 received"))
            try lab.stop(second)
            #expect(try lab.count(in: second.file, matching: "ip.src == 198.51.100.10") == 2)
            #expect(try lab.count(in: second.file, matching: "ip.addr == 10.0.0.0/24") == 0)

            // Each NAT rule counted the sessions it made.
            let counters = try setup.natCounters("r1")
            #expect((counters["snat:10.0.0.0/24"] ?? 0) >= 1)
            #expect((counters["floating-ip:198.51.100.11"] ?? 0) >= 3)

            // A NAT rule added live: the ruleset is swapped in place, the session of a ping
            // under way keeps its translation and loses no reply.
            let pinging = try lab.start(
                "ping-live",
                [
                    "ping", "-n", "-q", "-c", "25", "-i", "0.2", "-W", "2", "-I", "10.0.0.7",
                    "198.51.100.2",
                ], in: overlay.hostNamespace)
            Thread.sleep(forTimeInterval: 1)
            try setup.vtepd.control([
                "set", "Logical_Router", "r1",
                #"other_config:"dnat:198.51.100.12:80/tcp"="10.0.0.1:80""#,
            ])
            try setup.waitForRouter("r1", state: "interfaces=2 nat_rules=3 routes=1")
            #expect(pinging.waitForExit(timeout: .seconds(20)))
            #expect(pinging.status == 0)
            #expect(
                pinging.tail().contains("25 packets transmitted, 25 received"), "\(pinging.tail())")
            #expect(
                (try setup.natCounters("r1")["snat:10.0.0.0/24"] ?? 0) == counters[
                    "snat:10.0.0.0/24"]! + 1)
        }
    }

    @Test(
        "From the shell: a port forward reaches the inside host; bad changes refused with nothing changed; hits shown; in running-config"
    )
    func configuredFromTheShell() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            lab.expectNamespace(setup.namespacePrefix + "edge")
            for line in [
                "add logical-router edge",
                "set logical-router edge interface ls5001 10.0.0.254/24",
                "set logical-router edge interface ls6000 198.51.100.1/24",
                "add logical-router edge route 0.0.0.0/0 198.51.100.2",
                "add logical-router edge nat snat 10.0.0.0/24 198.51.100.1",
                "add logical-router edge nat dnat 198.51.100.1:5203 10.0.0.1:5203",
            ] {
                try setup.shell(line)
            }
            try setup.waitForRouter("edge", state: "interfaces=2 nat_rules=2 routes=1")

            // Operator errors: refused with the reason, the row unchanged.
            try setup.shell("add logical-switch tenant2 vni 5002")
            try setup.expectRefused(
                "edge",
                [
                    ("set logical-router edge interface tenant2 10.0.0.1/16", "overlap"),
                    (
                        "add logical-router edge route 10.8.0.0/16 192.0.2.99",
                        "next hop 192.0.2.99 is on none of the router's interfaces"
                    ),
                    (
                        "add logical-router edge nat floating-ip 203.0.113.5 10.0.0.1",
                        "it must be on the uplink's subnet"
                    ),
                    (
                        "remove logical-router edge interface ls6000",
                        "on none of the router's interfaces"
                    ),
                    (
                        "add logical-router edge nat snat 10.0.0.0/24 198.51.100.9",
                        "already has NAT rule"
                    ),
                ])

            // The outside host opens a connection to the forwarded port; the overlay host
            // answers from its own address.
            try lab.transferTCP(
                from: setup.outside.hostNamespace, to: setup.overlay.hostNamespace,
                address: "198.51.100.1", listenAddress: setup.overlay.hostIPv4, port: 5203,
                size: 256 << 10)
            let ping = try lab.ping(
                from: setup.overlay.hostNamespace, to: "198.51.100.2", count: 2)
            #expect(ping == LabPingResult(transmitted: 2, received: 2))

            let report = try setup.shell("show logical-router edge")
            #expect(report.contains("logical router edge: in force"))
            #expect(report.contains("ls5001"))
            #expect(report.contains("0.0.0.0/0 via 198.51.100.2"))
            // The forwarded connection (in TIME_WAIT) and the ping are still tracked.
            let sessions = report.split(separator: "\n").first { $0.hasPrefix("sessions: ") }
                .flatMap { Int($0.split(separator: " ")[1]) }
            #expect((sessions ?? 0) >= 2, "\(report)")
            let forward = report.split(separator: "\n").first {
                $0.contains("dnat 198.51.100.1:5203 tcp → 10.0.0.1:5203")
            }
            #expect(forward.map { $0.hasSuffix(" 1") } == true, "\(report)")
            let snat = report.split(separator: "\n").first {
                $0.contains("snat 10.0.0.0/24 → 198.51.100.1")
            }
            #expect(snat.map { $0.hasSuffix(" 1") } == true, "\(report)")
            #expect(try setup.shell("show logical-routers").contains("in force"))
            // The sessions through conntrack's netlink API: the forwarded connection both
            // ways, as DNAT made it, and the ping as SNAT made it.
            let listing = try setup.shell("show logical-router edge sessions")
            #expect(
                listing.split(separator: "\n").contains {
                    $0.hasPrefix("tcp") && $0.contains("→ 198.51.100.1:5203")
                        && $0.contains("10.0.0.1:5203 → 198.51.100.2:")
                }, "\(listing)")
            #expect(
                listing.split(separator: "\n").contains {
                    $0.hasPrefix("icmp") && $0.contains("10.0.0.1:")
                        && $0.contains("198.51.100.2:") && $0.contains("→ 198.51.100.1")
                }, "\(listing)")
            let config = try setup.shell("show running-config")
            for line in [
                "add logical-router edge",
                "set logical-router edge interface ls5001 10.0.0.254/24",
                "set logical-router edge interface ls6000 198.51.100.1/24",
                "add logical-router edge route 0.0.0.0/0 198.51.100.2",
                "add logical-router edge nat dnat 198.51.100.1:5203 10.0.0.1:5203 tcp",
                "add logical-router edge nat snat 10.0.0.0/24 198.51.100.1",
            ] {
                #expect(config.contains(line + "\n"), "\(line)")
            }
            #expect(
                try setup.auditLog().contains(
                    "add logical-router edge nat snat 10.0.0.0/24 198.51.100.1"))

            try setup.shell("remove logical-router edge")
            try waitUntil("router edge's ports and namespace to go", timeout: .seconds(10)) {
                try setup.routerPorts().isEmpty && setup.namespaceFiles().isEmpty
            }
        }
    }

    @Test(
        "traceroute from the overlay shows the router hop; the outside host's port unreachable comes back translated"
    )
    func tracerouteAndICMPErrors() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            try setup.addSNATRouter()
            let capture = try lab.capture(
                on: setup.outside.hostInterface, in: setup.outside.hostNamespace, filter: "icmp")
            // UDP probes (traceroute's default): hop 1 answers time exceeded itself; the outside
            // host answers port unreachable to the SNAT address, which only reaches the
            // overlay host if the router translates the packet quoted inside the error back.
            let trace = try lab.execute(
                ["traceroute", "-n", "-q", "1", "-w", "3", "-m", "4", "198.51.100.2"],
                in: setup.overlay.hostNamespace, timeout: .seconds(40)
            ).output
            let hops = trace.split(separator: "\n").dropFirst().map {
                $0.split(separator: " ").prefix(2).map(String.init)
            }
            #expect(hops == [["1", "10.0.0.254"], ["2", "198.51.100.2"]], "\(trace)")
            try lab.stop(capture)
            #expect(
                try lab.count(
                    in: capture.file,
                    matching: "icmp.type == 3 && icmp.code == 3 && ip.dst == 198.51.100.10") >= 1)
            #expect(try lab.count(in: capture.file, matching: "ip.addr == 10.0.0.0/24") == 0)
        }
    }

    @Test("Session limit: the session past it is refused and counted, established ones keep going")
    func sessionLimit() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            try setup.addSNATRouter()
            try setup.shell("set logical-router r1 session-limit 2")
            try waitUntil("the limit in r1's ruleset", timeout: .seconds(10)) {
                try setup.inRouter("r1", ["nft", "list", "table", "inet", "vtepd"])
                    .contains("ct count over 2")
            }
            // Session A: a ping under way, answered (so established) before the others.
            let long = try lab.start(
                "ping-a", ["ping", "-n", "-q", "-c", "10", "-i", "0.3", "-W", "2", "198.51.100.2"],
                in: setup.overlay.hostNamespace)
            Thread.sleep(forTimeInterval: 1)
            // Session B fits; session C is past the limit: refused.
            let b = try lab.ping(from: setup.overlay.hostNamespace, to: "198.51.100.2", count: 1)
            #expect(b == LabPingResult(transmitted: 1, received: 1))
            let c = try lab.ping(
                from: setup.overlay.hostNamespace, to: "198.51.100.2", count: 1, reply: .seconds(2))
            #expect(c == LabPingResult(transmitted: 1, received: 0))
            // A kept going throughout.
            #expect(long.waitForExit(timeout: .seconds(20)))
            #expect(long.tail().contains("10 packets transmitted, 10 received"), "\(long.tail())")
            #expect(try setup.natCounters("r1")["session-limit"] == 1)
            #expect(
                try setup.shell("show logical-router r1").contains(
                    "session limit: 2 (new sessions refused past it: 1)"))
            // A NAT rule added live swaps the NAT chains only: the limit's rule keeps counting
            // A and B (still in conntrack, ICMP's 30 s), so session D is refused as C was.
            let handles = try setup.inRouter(
                "r1", ["nft", "-a", "list", "chain", "inet", "vtepd", "forward"])
            try setup.shell("add logical-router r1 nat floating-ip 198.51.100.12 10.0.0.9")
            try setup.waitForRouter("r1", state: "interfaces=2 nat_rules=2 routes=1")
            #expect(
                try setup.inRouter(
                    "r1", ["nft", "-a", "list", "chain", "inet", "vtepd", "forward"])
                    == handles)
            let d = try lab.ping(
                from: setup.overlay.hostNamespace, to: "198.51.100.2", count: 1, reply: .seconds(2))
            #expect(d == LabPingResult(transmitted: 1, received: 0))
            #expect(try setup.natCounters("r1")["session-limit"] == 2)
            #expect(
                try setup.shell("show running-config").contains(
                    "set logical-router r1 session-limit 2\n"))
        }
    }

    @Test(
        "clear logical-router NAME sessions: the sessions listed are removed and counted, the listing is empty, new connections work"
    )
    func clearSessions() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            try setup.addSNATRouter()
            // Two sessions: a ping (ICMP, 30 s in conntrack) and a TCP transfer (TIME_WAIT).
            let ping = try lab.ping(from: setup.overlay.hostNamespace, to: "198.51.100.2", count: 2)
            #expect(ping == LabPingResult(transmitted: 2, received: 2))
            try lab.transferTCP(
                from: setup.overlay.hostNamespace, to: setup.outside.hostNamespace,
                address: "198.51.100.2", size: 64 << 10)
            let listing = try setup.shell("show logical-router r1 sessions")
            let rows = listing.split(separator: "\n").dropFirst()
            #expect(
                rows.contains { $0.hasPrefix("icmp") && $0.contains("10.0.0.1:") }, "\(listing)")
            #expect(rows.contains { $0.hasPrefix("tcp") && $0.contains("10.0.0.1:") }, "\(listing)")

            let cleared = try setup.shell("clear logical-router r1 sessions")
            #expect(cleared == "logical router r1: \(rows.count) sessions removed\n", "\(listing)")
            #expect(
                try setup.shell("show logical-router r1 sessions")
                    == "logical router r1: no sessions\n")
            try setup.expectNoSessions("r1")
            #expect(try setup.auditLog().contains("clear logical-router r1 sessions"))

            // New connections are made and translated as before.
            try lab.transferTCP(
                from: setup.overlay.hostNamespace, to: setup.outside.hostNamespace,
                address: "198.51.100.2", port: 5204, size: 64 << 10)
            let after = try setup.shell("show logical-router r1 sessions")
            #expect(
                after.split(separator: "\n").contains {
                    $0.hasPrefix("tcp") && $0.contains("10.0.0.1:")
                        && $0.contains("198.51.100.2:5204 → 198.51.100.10:")
                }, "\(after)")
            #expect(
                try setup.shell("clear logical-router r1 sessions")
                    == "logical router r1: 1 session removed\n")
            // A router that does not exist: refused, with the reason.
            let refused = try setup.attemptShell("clear logical-router nosuch sessions")
            #expect(refused.status != 0)
            #expect((refused.errors + refused.output).contains("nosuch is not built"))
        }
    }

    @Test(
        "IPv6: ping6 and TCP routed (not translated) between the overlay host and the outside; an IPv6 static route; bad IPv6 changes refused"
    )
    func ipv6Routing() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            let (overlay, outside) = (setup.overlay, setup.outside)
            lab.expectNamespace(setup.namespacePrefix + "edge")
            // The hosts: IPv6 on (the lab's hosts start without it), addresses without DAD.
            for (host, address, route) in [
                (overlay, "2001:db8:1::1/64", ["default", "via", "2001:db8:1::254"]),
                (outside, "2001:db8:2::2/64", ["2001:db8:1::/64", "via", "2001:db8:2::1"]),
            ] {
                for key in ["all", "default", host.hostInterface] {
                    try lab.execute(
                        ["sysctl", "-qw", "net.ipv6.conf.\(key).disable_ipv6=0"],
                        in: host.hostNamespace)
                }
                try lab.execute(
                    ["ip", "addr", "add", address, "dev", host.hostInterface, "nodad"],
                    in: host.hostNamespace)
                try lab.execute(["ip", "-6", "route", "add"] + route, in: host.hostNamespace)
            }
            // A network behind the outside host, reached by a static route via it.
            try lab.execute(
                ["ip", "addr", "add", "2001:db8:99::1/128", "dev", "lo"], in: outside.hostNamespace)
            for line in [
                "add logical-router edge",
                "set logical-router edge interface ls5001 10.0.0.254/24",
                "set logical-router edge interface ls5001 2001:db8:1::254/64",
                "set logical-router edge interface ls6000 198.51.100.1/24",
                "set logical-router edge interface ls6000 2001:db8:2::1/64",
                "add logical-router edge route 2001:db8:99::/64 2001:db8:2::2",
                "add logical-router edge nat snat 10.0.0.0/24 198.51.100.1",
            ] {
                try setup.shell(line)
            }
            try setup.waitForRouter("edge", state: "interfaces=4 nat_rules=1 routes=1")

            let capture = try lab.capture(
                on: outside.hostInterface, in: outside.hostNamespace, filter: "ip6")
            let ping = try lab.ping(from: overlay.hostNamespace, to: "2001:db8:2::2", count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))
            let routed = try lab.ping(from: overlay.hostNamespace, to: "2001:db8:99::1", count: 2)
            #expect(routed == LabPingResult(transmitted: 2, received: 2))
            // TCP over IPv6 each way, checked byte for byte.
            let transferBothWays = { (outward: Int) in
                try lab.transferTCP(
                    from: overlay.hostNamespace, to: outside.hostNamespace,
                    address: "2001:db8:2::2", size: outward)
                try lab.transferTCP(
                    from: outside.hostNamespace, to: overlay.hostNamespace,
                    address: "2001:db8:1::1", port: 5202, size: 64 << 10)
            }
            try transferBothWays(256 << 10)
            // IPv4 goes on beside it, translated.
            let v4 = try lab.ping(from: overlay.hostNamespace, to: "198.51.100.2", count: 2)
            #expect(v4 == LabPingResult(transmitted: 2, received: 2))
            try lab.stop(capture)
            // Routed, not translated: the overlay host's own address on the outside wire, one
            // hop down (64 → 63).
            #expect(
                try lab.count(
                    in: capture.file,
                    matching: "icmpv6.type == 128 && ipv6.src == 2001:db8:1::1 && ipv6.hlim == 63")
                    == 5)
            #expect(
                try lab.count(in: capture.file, matching: "tcp && ipv6.src == 2001:db8:1::1") > 10)

            // Operator errors in IPv6: refused with the reason, the row unchanged.
            try setup.shell("add logical-switch tenant2 vni 5002")
            try setup.expectRefused(
                "edge",
                [
                    ("set logical-router edge interface tenant2 2001:db8::1/32", "overlap"),
                    (
                        "add logical-router edge route 2001:db8:77::/64 2001:db8:5::1",
                        "next hop 2001:db8:5::1 is on none of the router's interfaces"
                    ),
                    (
                        "remove logical-router edge interface ls6000 2001:db8:2::1/64",
                        "on none of the router's interfaces"
                    ),
                    (
                        "add logical-router edge route 2001:db8:77::/64 10.0.0.1",
                        "not of the family"
                    ),
                ])
            let config = try setup.shell("show running-config")
            for line in [
                "set logical-router edge interface ls5001 2001:db8:1::254/64",
                "set logical-router edge interface ls5001 10.0.0.254/24",
                "add logical-router edge route 2001:db8:99::/64 2001:db8:2::2",
            ] {
                #expect(config.contains(line + "\n"), "\(line)")
            }
            // Setting the IPv4 address again replaces that one only: IPv6 goes on.
            try setup.shell("set logical-router edge interface ls5001 10.0.0.253/24")
            // Rebuilt (its interfaces changed): in force a second time as it was.
            try waitUntil("router edge rebuilt", timeout: .seconds(20)) {
                let log = (try? String(contentsOf: setup.vtepd.process.log, encoding: .utf8)) ?? ""
                return log.components(
                    separatedBy: "logical router edge in force interfaces=4 nat_rules=1 routes=1"
                ).count > 2
            }
            #expect(
                try setup.inRouter("edge", ["ip", "-o", "addr", "show"]).contains(
                    "2001:db8:1::254/64"))
            let again = try lab.ping(from: overlay.hostNamespace, to: "2001:db8:2::2", count: 2)
            #expect(again == LabPingResult(transmitted: 2, received: 2))

            // A session limit (far above what this test makes) is an inet table: conntrack
            // then tracks the routed IPv6 connections too, which are listed (addresses in
            // brackets before a port) beside the translated IPv4 ping, and cleared with it.
            try setup.shell("set logical-router edge session-limit 1000")
            try waitUntil("the limit of 1000 in force", timeout: .seconds(20)) {
                (try? setup.inRouter("edge", ["nft", "list", "chain", "inet", "vtepd", "forward"]))?
                    .contains("ct count over 1000 ") == true
            }
            #expect(
                try lab.ping(from: overlay.hostNamespace, to: "2001:db8:2::2", count: 2)
                    == LabPingResult(transmitted: 2, received: 2))
            try transferBothWays(64 << 10)
            #expect(
                try lab.ping(from: overlay.hostNamespace, to: "198.51.100.2", count: 2)
                    == LabPingResult(transmitted: 2, received: 2))
            let listing = try setup.shell("show logical-router edge sessions")
            let rows = listing.split(separator: "\n").dropFirst()
            #expect(
                rows.contains {
                    $0.hasPrefix("tcp") && $0.contains("[2001:db8:1::1]:")
                        && $0.contains("→ [2001:db8:2::2]:5201")
                        && $0.contains("[2001:db8:2::2]:5201 → [2001:db8:1::1]:")
                }, "\(listing)")
            #expect(
                rows.contains {
                    $0.hasPrefix("tcp") && $0.contains("[2001:db8:2::2]:")
                        && $0.contains("→ [2001:db8:1::1]:5202")
                }, "\(listing)")
            #expect(
                rows.contains { $0.hasPrefix("icmpv6") && $0.contains("[2001:db8:1::1]:") },
                "\(listing)")
            #expect(
                rows.contains { $0.hasPrefix("icmp ") && $0.contains("198.51.100.1") },
                "\(listing)")
            let cleared = try setup.shell("clear logical-router edge sessions")
            #expect(
                cleared == "logical router edge: \(rows.count) sessions removed\n", "\(listing)")
            try setup.expectNoSessions("edge")

            // The session limit counts IPv6 sessions: with a limit of 1 (a new rule, counting
            // from none), one ping6 passes and a second session is refused and counted.
            try setup.shell("set logical-router edge session-limit 1")
            try waitUntil("the limit of 1 in force", timeout: .seconds(20)) {
                (try? setup.inRouter("edge", ["nft", "list", "chain", "inet", "vtepd", "forward"]))?
                    .contains("ct count over 1 ") == true
            }
            let first = try lab.ping(from: overlay.hostNamespace, to: "2001:db8:2::2", count: 2)
            #expect(first == LabPingResult(transmitted: 2, received: 2))
            let second = try lab.ping(
                from: overlay.hostNamespace, to: "2001:db8:99::1", count: 1, reply: .seconds(2))
            #expect(second == LabPingResult(transmitted: 1, received: 0))
            #expect(try setup.natCounters("edge")["session-limit"] == 1)
        }
    }

    @Test(
        "MTU and PMTU: the overlay interface gets the overlay's MTU, the router answers frag-needed; frag-needed from beyond comes back through NAT and the inner host's PMTU adapts"
    )
    func pathMTU() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            let (overlay, outside) = (setup.overlay, setup.outside)
            // The outside segment (vtepd's physical port and the outside host) at 1500,
            // Ethernet's default; the lab makes it 1450.
            try lab.execute(
                ["ip", "link", "set", outside.hostInterface, "mtu", "1500"],
                in: outside.hostNamespace)
            try lab.execute(
                ["ip", "link", "set", outside.accessInterface, "mtu", "1500"], in: outside.namespace
            )
            try setup.addRouter(
                "r1",
                nat: [
                    #"other_config:"snat:10.0.0.0/24"="198.51.100.10""#,
                    #"other_config:"floating-ip:198.51.100.11"="10.0.0.7""#,
                ])
            try setup.waitForRouter("r1")
            try lab.execute(
                ["ip", "addr", "add", "10.0.0.7/24", "dev", overlay.hostInterface],
                in: overlay.hostNamespace)
            // The overlay switch (VXLAN over IPv4, underlay MTU 1500) carries 1450; the
            // uplink, bound to the physical port, that port's 1500.
            #expect(try setup.interfaceMTUs("r1") == [1450, 1500])

            // From outside, a full-size packet with DF to the floating IP: the router says
            // frag-needed (MTU 1450) instead of passing a frame the tunnel cannot carry.
            let big = try lab.attempt(
                ["ping", "-n", "-c", "1", "-W", "3", "-M", "do", "-s", "1472", "198.51.100.11"],
                in: outside.hostNamespace)
            #expect(big.status != 0)
            let learned = try lab.execute(
                ["ip", "route", "get", "198.51.100.11"], in: outside.hostNamespace
            ).output
            #expect(learned.contains("mtu 1450"), "\(big.output) \(big.errors) \(learned)")
            let fits = try lab.ping(from: outside.hostNamespace, to: "198.51.100.11", count: 2)
            #expect(fits == LabPingResult(transmitted: 2, received: 2))
            let fitsDF = try lab.attempt(
                [
                    "ping", "-n", "-c", "2", "-i", "0.2", "-W", "3", "-M", "do", "-s", "1422",
                    "198.51.100.11",
                ],
                in: outside.hostNamespace)
            #expect(fitsDF.output.contains("2 received"), "\(fitsDF.output)")

            // Beyond the outside host, a 1300-byte link to a far host: the inner host's big
            // packet leaves as the SNAT address, the outside host answers frag-needed to
            // that address, and the router translates it back to the inner host.
            let far = try lab.namespace("far", ipv6: false)
            let (toFar, farEnd) = try lab.veth(
                "of", in: outside.hostNamespace, "fo", in: far, mtu: 1300)
            try lab.execute(
                ["ip", "addr", "add", "203.0.113.1/24", "dev", toFar], in: outside.hostNamespace)
            try lab.execute(["ip", "addr", "add", "203.0.113.2/24", "dev", farEnd], in: far)
            try lab.execute(["ip", "route", "add", "default", "via", "203.0.113.1"], in: far)
            try lab.execute(["sysctl", "-qw", "net.ipv4.ip_forward=1"], in: outside.hostNamespace)
            let capture = try lab.capture(
                on: outside.hostInterface, in: outside.hostNamespace, filter: "icmp")
            let tooBig = try lab.attempt(
                [
                    "ping", "-n", "-c", "1", "-W", "3", "-M", "do", "-s", "1400", "-I", "10.0.0.1",
                    "203.0.113.2",
                ],
                in: overlay.hostNamespace)
            #expect(tooBig.status != 0)
            let pmtu = try lab.execute(
                ["ip", "route", "get", "203.0.113.2", "from", "10.0.0.1"], in: overlay.hostNamespace
            ).output
            #expect(pmtu.contains("mtu 1300"), "\(tooBig.output) \(tooBig.errors) \(pmtu)")
            // The largest packet that fits now goes through, with DF, both ways.
            let adapted = try lab.attempt(
                [
                    "ping", "-n", "-c", "2", "-i", "0.2", "-W", "3", "-M", "do", "-s", "1272",
                    "-I", "10.0.0.1", "203.0.113.2",
                ],
                in: overlay.hostNamespace)
            #expect(adapted.output.contains("2 received"), "\(adapted.output)")
            try lab.stop(capture)
            // On the outside wire: the frag-needed went to the SNAT address, quoting it; no
            // inside address anywhere.
            #expect(
                try lab.count(
                    in: capture.file,
                    matching: "icmp.type == 3 && icmp.code == 4 && icmp.mtu == 1300"
                        + " && ip.dst == 198.51.100.10") == 1)
            #expect(try lab.count(in: capture.file, matching: "ip.addr == 10.0.0.0/24") == 0)
        }
    }

    @Test(
        "MTU follows the links: the underlay's and the physical port's MTU changed on the link (no database change) reach the router's interfaces, sessions go on"
    )
    func mtuFollowsTheLinks() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            let (overlay, outside) = (setup.overlay, setup.outside)
            try lab.execute(
                ["ip", "link", "set", outside.accessInterface, "mtu", "1500"], in: outside.namespace
            )
            try setup.addSNATRouter()
            // (Built before the port's change above reached it? Then within a round.)
            try waitUntil("r1's interfaces at 1450 and 1500", timeout: .seconds(10)) {
                try setup.interfaceMTUs("r1") == [1450, 1500]
            }
            let inForce = {
                try String(contentsOf: setup.vtepd.process.log, encoding: .utf8)
                    .components(separatedBy: "logical router r1 in force").count
            }
            let builds = try inForce()
            // A ping under way across every change below.
            let long = try lab.start(
                "ping-long",
                ["ping", "-n", "-q", "-c", "30", "-i", "0.2", "-W", "2", "198.51.100.2"],
                in: overlay.hostNamespace)
            // The underlay's MTU lowered on the link: the overlay interface follows (less 50).
            try lab.execute(
                ["ip", "link", "set", outside.underlayInterface, "mtu", "1400"],
                in: outside.namespace)
            try setup.vtepd.process.waitForLog(
                "logical router r1: interface on ls5001 has MTU 1350 (the underlay's MTU less 50)")
            try waitUntil("r1's overlay interface at 1350", timeout: .seconds(10)) {
                try setup.interfaceMTUs("r1") == [1350, 1500]
                    && setup.interfaceMTUs("r1", ports: true) == [1350, 1500]
            }
            // The physical port's MTU raised: the uplink interface follows it.
            try lab.execute(
                ["ip", "link", "set", outside.accessInterface, "mtu", "1600"], in: outside.namespace
            )
            try waitUntil("r1's uplink interface at 1600", timeout: .seconds(10)) {
                try setup.interfaceMTUs("r1") == [1350, 1600]
                    && setup.interfaceMTUs("r1", ports: true) == [1350, 1600]
            }
            #expect(long.waitForExit(timeout: .seconds(20)))
            #expect(long.tail().contains("30 packets transmitted, 30 received"), "\(long.tail())")
            // Changed in place: the router was neither rebuilt nor applied again.
            #expect(try inForce() == builds)
        }
    }

    @Test("Two routers with the same internal prefix stay isolated")
    func overlappingTenants() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            try setup.addRouter(
                "r1", nat: [#"other_config:"snat:10.0.0.0/24"="198.51.100.10""#])
            // A second tenant: the same 10.0.0.0/24 on another logical switch, no hosts on it,
            // and its own SNAT address on the same uplink.
            try setup.vtepd.control(["add-ls", "tenant2"])
            try setup.vtepd.control(["set", "Logical_Switch", "tenant2", "tunnel_key=5002"])
            try setup.addRouter(
                "r2", overlaySwitch: "tenant2", uplinkAddress: "198.51.100.3/24",
                nat: [#"other_config:"snat:10.0.0.0/24"="198.51.100.20""#])
            try setup.waitForRouter("r1")
            try setup.waitForRouter("r2")
            let capture = try lab.capture(
                on: setup.outside.hostInterface, in: setup.outside.hostNamespace, filter: "icmp")
            let ping = try lab.ping(
                from: setup.overlay.hostNamespace, to: "198.51.100.2", count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))
            try lab.stop(capture)
            // Only tenant 1's router carried the overlay host's traffic.
            #expect(try lab.count(in: capture.file, matching: "ip.src == 198.51.100.10") == 3)
            #expect(try lab.count(in: capture.file, matching: "ip.addr == 198.51.100.20") == 0)
            #expect((try setup.natCounters("r2")["snat:10.0.0.0/24"] ?? 0) == 0)
            // Router 2's namespace has its own 10.0.0.0/24 and never saw host 10.0.0.1.
            let neighbours = try setup.inRouter(
                "r2", ["ip", "neigh", "show", "10.0.0.1"])
            #expect(!neighbours.contains("lladdr"))
        }
    }

    @Test(
        "Restart: routers rebuilt after a crash, nothing leaked; a bad router is left out; removal removes everything"
    )
    func lifecycle() async throws {
        try await Lab.runOnOwnThread { lab in
            let setup = try RouterLab(lab)
            try setup.addSNATRouter()
            let portsBefore = try setup.routerPorts()
            #expect(portsBefore.count == 2)

            // Killed: no chance to clean up. Its leftovers are found by the next vtepd.
            _ = setup.vtepd.process.stop(signal: SIGKILL)
            let restarted = try setup.restartVTEPD()
            try restarted.process.waitForLog(
                "removed router namespace \(setup.namespacePrefix)r1 left by an earlier vtepd")
            try setup.waitForRouter("r1", vtepd: restarted)
            #expect(try setup.routerPorts() == portsBefore)
            #expect(try setup.namespaceFiles() == [setup.namespacePrefix + "r1"])
            let ping = try lab.ping(
                from: setup.overlay.hostNamespace, to: "198.51.100.2", count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))

            // A next hop off every interface: the router is not built, and says why.
            try restarted.control(["add-lr", "bad"])
            try restarted.control([
                "set", "Logical_Router", "bad",
                #"switch_binding:"10.1.0.1/24"=\#(try setup.switchUUID(setup.overlaySwitch, restarted))"#,
                #"static_routes:"0.0.0.0/0"="192.0.2.99""#,
            ])
            try waitUntil("the bad router's problem", timeout: .seconds(10)) {
                try restarted.show("configuration").contains(
                    "next hop 192.0.2.99 is on none of the router's interfaces")
            }
            // A router that failed is tried again at each snapshot (and removed again), so
            // its namespace may be there for a moment: what must hold is that it goes.
            try waitUntil("only r1's namespace", timeout: .seconds(10)) {
                try setup.namespaceFiles() == [setup.namespacePrefix + "r1"]
            }
            #expect(try setup.routerPorts() == portsBefore)

            // Removed from the database: its namespace and veths go.
            try restarted.control(["del-lr", "r1"])
            try waitUntil("router r1's ports to go", timeout: .seconds(10)) {
                try setup.routerPorts().isEmpty
            }
            try waitUntil("router r1's namespace to go", timeout: .seconds(10)) {
                try setup.namespaceFiles().isEmpty
            }
            // Stopped gracefully with a router in force: it leaves nothing behind.
            try restarted.control(["del-lr", "bad"])
            try setup.addRouter("r3", nat: [], vtepd: restarted)
            try setup.waitForRouter("r3", vtepd: restarted)
            #expect(restarted.process.stop() == 0)
            #expect(try setup.routerPorts().isEmpty)
            #expect(try setup.namespaceFiles().isEmpty)
        }
    }
}

/// Two sites: site 1 a kernel VTEP with the overlay host 10.0.0.1 on VNI 5001; site 2 vtepd,
/// whose physical port (bound to `ls6000`, the uplink) leads to the outside host
/// 198.51.100.2/24. Routers get 10.0.0.254/24 on the overlay switch and an uplink address.
struct RouterLab {
    let lab: Lab
    let topology: LabTopology
    var vtepd: LabVTEPD
    let overlaySwitch = "ls5001"
    var overlay: LabSite { topology.sites[0] }
    var outside: LabSite { topology.sites[1] }
    var namespacePrefix: String { lab.prefix + "-" }

    init(_ lab: Lab) throws {
        self.lab = lab
        topology = try lab.topology([.kernel(vni: 5001), .gateway])
        let outside = topology.sites[1]
        vtepd = try lab.startVTEPD(
            at: outside, vni: 6000,
            extraArguments: ["--router-namespace-prefix", lab.prefix + "-"])
        try lab.execute(
            ["ip", "addr", "flush", "dev", outside.hostInterface], in: outside.hostNamespace)
        try lab.execute(
            ["ip", "addr", "add", "198.51.100.2/24", "dev", outside.hostInterface],
            in: outside.hostNamespace)
        let overlay = topology.sites[0]
        try lab.execute(
            ["ip", "route", "add", "default", "via", "10.0.0.254"], in: overlay.hostNamespace)
        try lab.replicate(from: overlay, to: [outside])
        try configureOverlaySwitch(on: vtepd)
    }

    /// The overlay switch in vtepd's database: VNI 5001, head-end replication to site 1.
    func configureOverlaySwitch(on vtepd: LabVTEPD) throws {
        try vtepd.control(["--may-exist", "add-ls", overlaySwitch])
        try vtepd.control([
            "set", "Logical_Switch", overlaySwitch, "tunnel_key=5001",
            "replication_mode=source_node",
        ])
        try vtepd.control([
            "add-mcast-remote", overlaySwitch, "unknown-dst", overlay.tunnelIP,
        ])
    }

    func switchUUID(_ name: String, _ vtepd: LabVTEPD) throws -> String {
        try vtepd.control(["get", "Logical_Switch", name, "_uuid"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Router `name`: 10.0.0.254/24 on `overlaySwitch`, `uplinkAddress` on the uplink, a
    /// default route to the outside host, and the `nat` settings (vtep-ctl `set` arguments).
    func addRouter(
        _ name: String, overlaySwitch: String? = nil, uplinkAddress: String = "198.51.100.1/24",
        nat: [String], vtepd: LabVTEPD? = nil
    ) throws {
        let vtepd = vtepd ?? self.vtepd
        lab.expectNamespace(namespacePrefix + name)
        try vtepd.control(["add-lr", name])
        try vtepd.control(
            [
                "set", "Logical_Router", name,
                #"switch_binding:"10.0.0.254/24"=\#(try switchUUID(overlaySwitch ?? self.overlaySwitch, vtepd))"#,
                #"switch_binding:"\#(uplinkAddress)"=\#(try switchUUID(vtepd.logicalSwitch, vtepd))"#,
                #"static_routes:"0.0.0.0/0"="198.51.100.2""#,
            ] + nat)
    }

    /// Router r1 with SNAT of 10.0.0.0/24 to 198.51.100.10, waited for.
    func addSNATRouter() throws {
        try addRouter("r1", nat: [#"other_config:"snat:10.0.0.0/24"="198.51.100.10""#])
        try waitForRouter("r1")
    }

    /// Waits until router `name` is in force with its two interfaces (vtepd logs it once
    /// its namespace, veths, ruleset and data-plane ports are all there).
    func waitForRouter(_ name: String, vtepd: LabVTEPD? = nil, state: String = "interfaces=2")
        throws
    {
        let vtepd = vtepd ?? self.vtepd
        try vtepd.process.waitForLog(
            "notice vtepd.routers: logical router \(name) in force \(state)",
            timeout: .seconds(20))
    }

    /// `vtepsh -c LINE` against vtepd; what it printed. Throws when the line is refused.
    @discardableResult
    func shell(_ line: String) throws -> String {
        try lab.execute([
            try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c", line,
        ]).output
    }

    /// Each line refused with its reason, router `name`'s row unchanged by them all.
    func expectRefused(_ name: String, _ cases: [(line: String, reason: String)]) throws {
        let before = try vtepd.control(["list", "Logical_Router", name]).output
        for (line, reason) in cases {
            let refused = try attemptShell(line)
            #expect(refused.status != 0, "\(line)")
            #expect(
                (refused.errors + refused.output).contains(reason), "\(line): \(refused.errors)")
        }
        #expect(try vtepd.control(["list", "Logical_Router", name]).output == before)
    }

    /// `vtepsh -c LINE`, refused or not.
    func attemptShell(_ line: String) throws -> LabCommandResult {
        try lab.attempt([
            try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c", line,
        ])
    }

    /// vtepd's audit log of changes.
    func auditLog() throws -> String {
        try String(
            contentsOf: vtepd.stateRoot.appendingPathComponent("audit.log"), encoding: .utf8)
    }

    /// Router namespaces live in vtepd's mount namespace (it runs under `ip netns exec`):
    /// reached through its /proc root.
    func namespacePath(_ router: String, _ vtepd: LabVTEPD) -> String {
        "/proc/\(vtepd.process.pid)/root/run/netns/\(namespacePrefix)\(router)"
    }

    /// `arguments` run inside router `name`'s namespace; what they printed.
    func inRouter(_ name: String, _ arguments: [String]) throws -> String {
        try lab.execute(["nsenter", "--net=\(namespacePath(name, vtepd))"] + arguments).output
    }

    /// Waits until router `name`'s conntrack count is 0 (the kernel's own count drops as the
    /// entries are freed), then expects `show logical-router NAME sessions` to list none.
    func expectNoSessions(_ name: String) throws {
        try waitUntil("\(name)'s conntrack count to be 0", timeout: .seconds(10)) {
            try inRouter(name, ["cat", "/proc/sys/net/netfilter/nf_conntrack_count"])
                .trimmingCharacters(in: .whitespacesAndNewlines) == "0"
        }
        #expect(
            try shell("show logical-router \(name) sessions")
                == "logical router \(name): no sessions\n")
    }

    /// Sessions each NAT rule of router `name` made (its counters' packets), by rule key.
    func natCounters(_ name: String) throws -> [String: Int] {
        // The NAT table (ip) and the session limit's (inet).
        let json = try inRouter(name, ["nft", "-j", "list", "ruleset"])
        let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        var counters: [String: Int] = [:]
        for item in root?["nftables"] as? [[String: Any]] ?? [] {
            guard let rule = item["rule"] as? [String: Any],
                let comment = rule["comment"] as? String
            else { continue }
            for case let expression as [String: Any] in rule["expr"] as? [Any] ?? [] {
                if let counter = expression["counter"] as? [String: Any] {
                    counters[comment, default: 0] += (counter["packets"] as? Int) ?? 0
                }
            }
        }
        return counters
    }

    /// The router ports (`lr` + 11 hex digits) in vtepd's namespace, sorted.
    /// The MTUs of router `name`'s interfaces (the inner veth ends), and of its data-plane
    /// ports (the outer ends, in vtepd's namespace), each sorted.
    func interfaceMTUs(_ name: String, ports: Bool = false) throws -> [Int] {
        let links =
            ports
            ? try lab.execute(["ip", "-o", "link", "show"], in: outside.namespace).output
            : try inRouter(name, ["ip", "-o", "link", "show"])
        return links.split(separator: "\n").filter { $0.contains(ports ? ": lr" : ": ri") }
            .compactMap { line -> Int? in
                let fields = line.split(separator: " ")
                return fields.firstIndex(of: "mtu").flatMap { Int(fields[$0 + 1]) }
            }.sorted()
    }

    func routerPorts() throws -> [String] {
        let links = try lab.execute(["ip", "-o", "link", "show"], in: outside.namespace).output
        return links.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            let name = String(fields[1].prefix { $0 != ":" && $0 != "@" })
            return name.count == 13 && name.hasPrefix("lr") ? name : nil
        }.sorted()
    }

    /// The entries of /run/netns with this lab's router prefix, sorted.
    func namespaceFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/run/netns")
            .filter { $0.hasPrefix(namespacePrefix) }.sorted()
    }

    /// Starts vtepd again on the same state root (its database and routers in it).
    func restartVTEPD() throws -> LabVTEPD {
        // The killed one's sockets are still there; the new one's are waited for.
        for stale in ["vtepd.ctl", "db.sock"] {
            try? FileManager.default.removeItem(at: vtepd.stateRoot.appendingPathComponent(stale))
        }
        return try lab.startVTEPD(
            at: outside, vni: 6000,
            extraArguments: ["--router-namespace-prefix", namespacePrefix],
            stateRoot: vtepd.stateRoot, configure: false)
    }
}
