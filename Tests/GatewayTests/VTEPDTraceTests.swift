import Foundation
import TestSupport
import Testing

/// The packet trace, typed in vtepsh against a running vtepd with the kernel's vxlan as the far
/// VTEP: what happened to real frames, and what would happen to a described one.
@Suite("vtepd packet trace", .serialized)
struct VTEPDTraceTests {
    @Test(
        "debug packet-trace records real frames step by step; trace port explains a described one")
    func traceThroughTheShell() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd, shell) = try Self.gatewayWithShell(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])

            let port = a.accessInterface
            #expect(
                try shell("debug packet-trace port \(port) count 2")
                    == "tracing the next 2 frames from port \(port)\n")
            _ = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
            let trace = try shell("show packet-trace")
            // Both known by now: the echo requests are encapsulated to the kernel's VTEP.
            #expect(trace.contains("frame 1 (at "), "\(trace)")
            #expect(trace.contains("  received on port \(port)"), "\(trace)")
            #expect(trace.contains("IPv4 \(a.hostIPv4) → \(b.hostIPv4) ICMP"), "\(trace)")
            #expect(
                trace.contains("destination \(b.hostMAC) is known: behind VTEP \(b.tunnelIP)"),
                "\(trace)")
            #expect(
                trace.contains("decision: encapsulate to VTEP \(b.tunnelIP) (vxlan), VNI 5001"),
                "\(trace)")
            #expect(trace.contains("2 frames recorded, waiting for 0 more"), "\(trace)")
            #expect(!trace.contains("frame 3 "), "only the count asked for: \(trace)")

            // A described frame: unicast to host B over the tunnel; to an unknown MAC, flooded;
            // from a multicast source, dropped with its reason. Nothing is learned or counted.
            let before = try vtepd.countersReport()
            let known = try shell(
                "trace port \(port) src \(a.hostMAC) dst \(b.hostMAC) ip \(a.hostIPv4) \(b.hostIPv4) proto tcp dport 443"
            )
            #expect(known.contains("TCP 49152 → 443"), "\(known)")
            #expect(
                known.contains("decision: encapsulate to VTEP \(b.tunnelIP) (vxlan), VNI 5001"),
                "\(known)")
            #expect(known.contains("would go through prebuilt headers"), "\(known)")
            let stranger = "02:00:0a:77:77:77"
            let unknown = try shell("trace port \(port) src \(stranger) dst 02:00:0a:99:99:99")
            #expect(
                unknown.contains("decision: flood in VNI 5001 to VTEP \(b.tunnelIP) (vxlan)"),
                "\(unknown)")
            let bad = try shell("trace port \(port) src 01:00:5e:00:00:01 dst \(b.hostMAC)")
            #expect(bad.contains("decision: drop, multicast_source_mac"), "\(bad)")
            // Unit tests check every counter stays; here, with traffic of the hosts' own
            // around, the drops stay and the described source is never learned.
            #expect(try vtepd.countersReport().drops == before.drops)
            #expect(!(try vtepd.show("mac-table")).contains(stranger))

            // Refused with a reason, nothing changed.
            let refused = try lab.attempt([
                try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c",
                "trace port nosuch0 src \(a.hostMAC) dst \(b.hostMAC)",
            ])
            #expect(refused.status != 0)
            #expect(
                (refused.output + refused.errors).contains("port nosuch0 is not an access port"),
                "\(refused)")
            #expect(try shell("clear packet-trace") == "packet trace stopped and cleared\n")
            #expect(
                try shell("show packet-trace")
                    == "no packet trace: start one with debug packet-trace\n")
        }
    }

    @Test("show switch statistics, show switch tunnels and show network interface give rates")
    func ratesWhileTrafficFlows() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd, shell) = try Self.gatewayWithShell(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])
            // 20 echo requests a second for 15 s: each way, 20 frames a second cross.
            let pings = try lab.start(
                "ping", ["ping", "-q", "-i", "0.05", "-c", "300", b.hostIPv4],
                in: a.hostNamespace)
            defer { _ = pings.stop() }
            let port = a.accessInterface
            // "port P rx: N frames/s …" with N near 20 once 5 s of samples are in.
            func framesPerSecond(_ text: String, _ prefix: String) -> Int? {
                guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) })
                else { return nil }
                return Int(line.dropFirst(prefix.count).split(separator: " ").first ?? "")
            }
            // Every rate once the switch and the VTEP have two samples too (they appear with
            // the configuration, a second or so after the port).
            let prefixes = [
                "port \(port) rx: ", "port \(port) tx: ", "switch \(vtepd.logicalSwitch) in: ",
                "VTEP \(b.tunnelIP) tx: ", "VTEP \(b.tunnelIP) rx: ",
            ]
            let statistics = try waitUntil("rates of about 20 frames/s", timeout: .seconds(12)) {
                () throws -> String? in
                let statistics = try shell("show switch statistics")
                let rates = prefixes.map { framesPerSecond(statistics, $0) }
                guard rates.allSatisfy({ $0 != nil }), let rx = rates[0], (17...23).contains(rx)
                else { return nil }
                return statistics
            }
            for prefix in prefixes {
                let rate = framesPerSecond(statistics, prefix)
                // The switch counts both directions: about 40.
                #expect(rate.map { (15...45).contains($0) } == true, "\(prefix) in \(statistics)")
            }
            #expect(statistics.contains("kbit/s (5 s)"), "\(statistics)")
            let tunnels = try shell("show switch tunnels")
            #expect(
                framesPerSecond(tunnels, "\(b.tunnelIP) tx: ").map { $0 >= 15 } == true,
                "\(tunnels)")
            let interface = try shell("show network interface \(port)")
            #expect(
                interface.split(separator: "\n").contains {
                    $0.hasPrefix("Input rate:") && $0.contains("frames/s")
                },
                "\(interface)")
        }
    }

    @Test("debug capture writes what a port receives and sends to a pcap file show captures lists")
    func captureThroughTheShell() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd, shell) = try Self.gatewayWithShell(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let port = a.accessInterface
            let started = try shell("debug capture port \(port) count 100 seconds 4")
            #expect(started.contains("capturing on \(port) into \(vtepd.stateRoot.path)/captures/"))
            let path = try #require(
                started.split(separator: " ").first { $0.hasSuffix(".pcap:") }?.dropLast())
            // tcpdump writes the file's header once it listens.
            try waitUntil("tcpdump listens", timeout: .seconds(10)) {
                ((try? FileManager.default.attributesOfItem(atPath: String(path)))?[.size]
                    as? NSNumber)?.intValue ?? 0 >= 24
            }
            #expect(try shell("show captures").contains("\(path)  "))
            #expect(
                (try? shell("debug capture underlay count 1 seconds 1")) == nil,
                "one capture at a time")
            _ = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
            try waitUntil("the capture ends after 4 seconds", timeout: .seconds(20)) {
                !(try shell("show captures")).contains("(capturing)")
            }
            let mode = try #require(
                (try FileManager.default.attributesOfItem(atPath: String(path)))[.posixPermissions]
                    as? NSNumber)
            #expect(mode.intValue == 0o640, "readable by the admins' group, who copy it off")
            // The echo requests vtepd received from host A, and the replies it sent to it: the
            // latter reach the capture only because vtepd sent through the qdisc meanwhile.
            let requests = try lab.execute([
                "tshark", "-n", "-r", String(path), "-Y", "icmp.type == 8", "-T", "fields", "-e",
                "ip.src",
            ]).output.split(separator: "\n")
            let replies = try lab.execute([
                "tshark", "-n", "-r", String(path), "-Y", "icmp.type == 0", "-T", "fields", "-e",
                "ip.src",
            ]).output.split(separator: "\n")
            #expect(requests.count == 3 && requests.allSatisfy { $0 == a.hostIPv4 }, "\(requests)")
            #expect(replies.count == 3 && replies.allSatisfy { $0 == b.hostIPv4 }, "\(replies)")
            let refused = try lab.attempt([
                try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c",
                "debug capture port nosuch0 count 1 seconds 1",
            ])
            #expect(
                refused.status != 0
                    && refused.errors.contains("port nosuch0 is not one of vtepd's access ports"),
                "\(refused)")
        }
    }

    @Test("storm control: a broadcast flood beyond the limit is dropped before replication")
    func stormControlUnderAFlood() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd, shell) = try Self.gatewayWithShell(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let name = vtepd.logicalSwitch
            _ = try shell("set logical-switch \(name) storm-control 100 burst 50")
            #expect(
                try vtepd.control(["get", "Logical_Switch", name, "other_config"]).output
                    .contains(#"bum-burst="50", bum-rate-limit="100""#))
            #expect(
                try shell("show running-config").contains(
                    "set logical-switch \(name) storm-control 100 burst 50"))
            func flooded() throws -> UInt64 {
                try vtepd.countersReport().switches.first { $0.name == name }?.flooded ?? 0
            }
            func dropped() throws -> UInt64 {
                try vtepd.dropCounters().drops["bum_rate_limited"] ?? 0
            }
            // A storm: 20,000 broadcast frames from host A as fast as a packet socket sends
            // them (a fraction of a second); about 100 a second and a burst of 50 may pass.
            try waitUntil("vtepd applies the limit") {
                try (vtepd.control(["get", "Logical_Switch", name, "other_config"]).output)
                    .contains("bum-rate-limit") && (try shell("show switch problems")).isEmpty
            }
            let (floodedBefore, droppedBefore) = (try flooded(), try dropped())
            let asked = ContinuousClock.now
            try lab.sendBroadcastFrames(from: a, count: 20_000)
            // The shell answers right after the storm.
            #expect(try shell("show switch").contains("Physical switch"))
            #expect(ContinuousClock.now - asked < .seconds(5), "the storm and an answer in time")
            try waitUntil("vtepd has read the storm") {
                try dropped() - droppedBefore + (try flooded() - floodedBefore) > 10_000
            }
            let passed = try flooded() - floodedBefore
            #expect(passed <= 50 + 100 * 5, "passed \(passed)")
            #expect(try dropped() - droppedBefore >= 10_000)
            // Unicast to host B still crosses; without the limit, a broadcast crosses again.
            _ = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 1)
            _ = try shell("clear logical-switch \(name) storm-control")
            #expect(
                !(try vtepd.control(["get", "Logical_Switch", name, "other_config"]).output)
                    .contains("bum-rate-limit"))
        }
    }

    @Test("Logical_Binding_Stats: vtepd writes each binding's packets and bytes for a controller")
    func bindingStatisticsReachTheDatabase() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd, _) = try Self.gatewayWithShell(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])
            _ = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 5)
            let port = a.accessInterface
            try waitUntil("Logical_Binding_Stats of \(port) vlan 0 counts the pings") {
                guard
                    let row = try? vtepd.control(["get", "Physical_Port", port, "vlan_stats:0"])
                        .output.trimmingCharacters(in: .whitespacesAndNewlines),
                    let from = try? vtepd.control([
                        "get", "Logical_Binding_Stats", row, "packets_from_local",
                    ]).output.trimmingCharacters(in: .whitespacesAndNewlines),
                    let to = try? vtepd.control([
                        "get", "Logical_Binding_Stats", row, "packets_to_local",
                    ]).output.trimmingCharacters(in: .whitespacesAndNewlines)
                else { return false }
                return (Int(from) ?? 0) >= 5 && (Int(to) ?? 0) >= 5
            }
        }
    }

    /// vtepd beside the kernel's vxlan, pinging across, and `vtepsh -c LINE` against it.
    static func gatewayWithShell(_ lab: Lab) throws -> (
        LabTopology, LabVTEPD, (String) throws -> String
    ) {
        let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
        let vtepd = try lab.startVTEPDBesideKernelVTEP(topology)
        try VTEPDGRETests.waitForPing(
            lab, from: topology.sites[0], to: topology.sites[1], vtepd: vtepd)
        let shell = { (line: String) throws -> String in
            try lab.execute([
                try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c",
                line,
            ]).output
        }
        return (topology, vtepd, shell)
    }
}
