import Foundation
import TestSupport
import Testing

/// vtepd under what goes wrong on a live network, checked on the wire against the Linux
/// kernel's vxlan: bad underlay input, a frame too big for the underlay, reconfiguration while
/// traffic flows, and the loss of its ovsdb-server.
@Suite("vtepd robustness on the wire", .serialized)
struct VTEPDRobustnessTests {
    /// Datagrams sent per bad-input case: the matching counter must rise by exactly this.
    static let sent = 5

    /// One kind of bad underlay input and the counters it must move.
    struct BadInput {
        let name: String
        let payload: [UInt8]
        /// Send from the far site's second address (a VTEP nobody configured).
        var fromUnconfiguredAddress = false
        /// `changes(since:)` after `sent` datagrams: counter → delta.
        let counts: [String: Int64]
        /// Inner frames host A must receive: 0 for every bad input.
        var delivered = 0
    }

    static func badInputs() -> [BadInput] {
        let n = Int64(sent)
        let frame = LabVXLANPayload.broadcastFrame()
        // A malformed VXLAN header is a malformed frame: counted under its own reason and, as
        // CountersReport documents ("their sum is the malformed drop reason's count"), under
        // the `malformed` drop.
        func malformed(_ reason: String) -> [String: Int64] {
            ["malformed": n, "malformed/" + reason: n]
        }
        return [
            BadInput(
                name: "I flag clear (RFC 7348 §5)",
                payload: LabVXLANPayload(flags: 0x00, vni: 5001, inner: frame).bytes,
                counts: malformed("vxlan_i_flag_clear")),
            BadInput(
                name: "a reserved flag bit set",
                payload: LabVXLANPayload(flags: 0x0C, vni: 5001, inner: frame).bytes,
                counts: malformed("vxlan_reserved_flags_set")),
            BadInput(
                name: "reserved bits after the flags set",
                payload: LabVXLANPayload(reservedAfterFlags: 0x00_0100, vni: 5001, inner: frame)
                    .bytes,
                counts: malformed("vxlan_reserved_bits_set")),
            BadInput(
                name: "reserved byte after the VNI set",
                payload: LabVXLANPayload(vni: 5001, reservedAfterVNI: 0x01, inner: frame).bytes,
                counts: malformed("vxlan_reserved_bits_set")),
            BadInput(
                name: "truncated VXLAN header (5 bytes)",
                payload: Array(LabVXLANPayload(vni: 5001, inner: []).bytes.prefix(5)),
                counts: malformed("vxlan_truncated")),
            BadInput(
                name: "empty UDP payload",
                payload: [],
                counts: malformed("vxlan_truncated")),
            BadInput(
                name: "VXLAN header and a 10-byte inner frame",
                payload: LabVXLANPayload(vni: 5001, inner: Array(frame.prefix(10))).bytes,
                counts: malformed("ethernet_truncated")),
            BadInput(
                name: "VXLAN header and no inner frame",
                payload: LabVXLANPayload(vni: 5001, inner: []).bytes,
                counts: malformed("ethernet_truncated")),
            BadInput(
                name: "unknown VNI 5002",
                payload: LabVXLANPayload(vni: 5002, inner: frame).bytes,
                counts: ["unknown_vni": n]),
            BadInput(
                name: "source address not a configured VTEP",
                payload: LabVXLANPayload(vni: 5001, inner: frame).bytes,
                fromUnconfiguredAddress: true,
                counts: ["unknown_source_vtep": n]),
            // The control: the same frame, well formed, is counted nowhere and reaches the
            // host, so the checks above can see a frame that gets through.
            BadInput(
                name: "well-formed (control)",
                payload: LabVXLANPayload(vni: 5001, inner: frame).bytes,
                counts: [:], delivered: sent),
        ]
    }

    @Test(
        "bad underlay input: each dropped under its own counter, none reaches the host",
        arguments: [LabUnderlayFamily.ipv4, .ipv6])
    func badUnderlayInput(family: LabUnderlayFamily) async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)], family: family)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let vtepd = try Self.startPair(lab, topology)
            // The far site's second underlay address: not a locator anywhere in the database.
            let stranger = family == .ipv4 ? "192.0.2.12" : "2001:db8::12"
            try lab.execute(
                [
                    "ip", "addr", "add", stranger + (family == .ipv4 ? "/24" : "/64"), "dev",
                    b.underlayInterface,
                ] + (family == .ipv4 ? [] : ["nodad"]),
                in: b.namespace)

            for input in Self.badInputs() {
                let host = try lab.capture(on: a.hostInterface, in: a.hostNamespace)
                let before = try vtepd.dropCounters()
                try lab.sendUDP(
                    from: b.namespace,
                    source: input.fromUnconfiguredAddress ? stranger : b.tunnelIP,
                    to: a.tunnelIP,
                    payloads: Array(repeating: input.payload, count: Self.sent))
                // Sent last: once host A has it, vtepd has counted all of the above.
                try lab.sendUDP(
                    from: b.namespace, source: b.tunnelIP, to: a.tunnelIP,
                    payloads: [LabProbe.vxlan])
                try lab.stop(host, once: 1, match: LabProbe.filter, settle: .zero)
                let after = try vtepd.dropCounters()
                #expect(
                    after.changes(since: before) == input.counts,
                    "\(input.name): counters moved by \(after.changes(since: before))")
                // What could be the injected frames: anything from the crafted source
                // (02:00:0b:ad…, also the first bytes of the truncated inner frames), of its
                // EtherType, or malformed. The overlay's own chatter (the kernel site's MLD,
                // IGMP, router solicitations, ARP) is rightly flooded and not judged here; nor
                // is the probe.
                let arrived = try lab.summaries(
                    in: host.file,
                    matching: "!(\(LabProbe.filter)) && (eth.src[0:4] == 02:00:0b:ad"
                        + " || eth.type == 0x88b5 || _ws.malformed)")
                #expect(
                    arrived.count == input.delivered,
                    "\(input.name): \(arrived.count) frames reached host A: \(arrived)")
            }

            try vtepd.process.requireRunning()
            let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))
        }
    }

    @Test(
        "a frame too big for the underlay is counted under underlay_too_big, never fragmented",
        arguments: [LabUnderlayFamily.ipv4, .ipv6])
    func oversizeFrame(family: LabUnderlayFamily) async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)], family: family)
            let (a, b) = (topology.sites[0], topology.sites[1])
            // Host A at MTU 1500 over an underlay of 1500: a full-size inner frame plus the
            // VXLAN overhead (50 bytes over IPv4, 70 over IPv6) exceeds the underlay MTU.
            try lab.execute(
                ["ip", "link", "set", a.hostInterface, "mtu", "1500"], in: a.hostNamespace)
            try lab.execute(
                ["ip", "link", "set", a.accessInterface, "mtu", "1500"], in: a.namespace)
            let vtepd = try Self.startPair(lab, topology)

            let wire = try lab.capture(on: topology.switchPorts[0], in: topology.switchNamespace)
            let hostB = try lab.capture(on: b.hostInterface, in: b.hostNamespace)
            let before = try vtepd.dropCounters()
            // 1472 bytes of ICMP data: a 1500-byte IPv4 packet, a 1514-byte frame; -M do
            // keeps host A from fragmenting it itself.
            let big = try lab.attempt(
                [
                    "ping", "-n", "-q", "-c", "\(Self.sent)", "-i", "0.2", "-W", "1", "-s",
                    "1472", "-M", "do", b.hostIPv4,
                ], in: a.hostNamespace, timeout: .seconds(30))
            #expect(
                big.output.contains("\(Self.sent) packets transmitted, 0 received"), "\(big.output)"
            )
            // Small echo requests after them, on the same path, answered: vtepd has read and
            // counted the big ones. Once the captures hold the small ones, they hold whatever
            // vtepd sent of the big ones before.
            let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))
            let expected: [String: Int64] = ["underlay_too_big": Int64(Self.sent)]
            let after = try vtepd.dropCounters()
            #expect(after.changes(since: before) == expected, "\(after.changes(since: before))")

            let fragments = "ip.flags.mf == 1 || ip.frag_offset > 0 || ipv6.fraghdr"
            try lab.stop(wire, once: 3, match: "icmp.type == 0", settle: .zero)
            #expect(try lab.count(in: wire.file, matching: fragments) == 0)
            #expect(try lab.count(in: wire.file, matching: "frame.len > 1514") == 0)
            try lab.stop(hostB, once: 3, match: "icmp.type == 8 && frame.len < 1400", settle: .zero)
            #expect(try lab.count(in: hostB.file, matching: "icmp && frame.len > 1400") == 0)
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "reconfiguration under traffic: ucast remotes and the flood list change the wire")
    func reconfigurationUnderTraffic() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001), .kernel(vni: 5001)])
            let (a, b, c) = (topology.sites[0], topology.sites[1], topology.sites[2])
            let vtepd = try Self.startPair(lab, topology)
            try lab.replicate(from: c, to: [a])

            // Echo requests from host A to host B's MAC, unicast-encapsulated to site i.
            func toHostB(at site: LabSite) -> (String, String, String) {
                (
                    topology.switchPorts[site.index - 1], topology.switchNamespace,
                    "vxlan.vni == 5001 && ip.dst == \(site.tunnelIP) && eth.dst == \(b.hostMAC)"
                        + " && icmp.type == 8"
                )
            }
            let unicast = try lab.start(
                "ping-unicast", ["ping", "-n", "-i", "0.2", "-c", "100000", b.hostIPv4],
                in: a.hostNamespace)
            try lab.watchWire(
                [toHostB(at: b), toHostB(at: c)], what: "echo requests going to site B only"
            ) { $0[0] > 0 && $0[1] == 0 }

            // A static remote MAC overrides the learned one: host B's MAC now "lives" at C.
            try vtepd.control(["add-ucast-remote", vtepd.logicalSwitch, b.hostMAC, c.tunnelIP])
            try lab.watchWire(
                [toHostB(at: b), toHostB(at: c)],
                what: "echo requests to host B's MAC moving to site C after add-ucast-remote"
            ) { $0[0] == 0 && $0[1] > 0 }
            let table = try vtepd.show("mac-table")
            #expect(table.contains(b.hostMAC) && table.contains(c.tunnelIP), "\(table)")

            // Removing it lets host B's MAC be flooded, answered and learned at B again.
            try vtepd.control(["del-ucast-remote", vtepd.logicalSwitch, b.hostMAC])
            try lab.watchWire(
                [toHostB(at: b), toHostB(at: c)],
                what: "echo requests back at site B after del-ucast-remote"
            ) { $0[0] > 0 && $0[1] == 0 }
            let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))
            unicast.stop(signal: SIGINT)

            // The flood list: broadcasts follow `unknown-dst` as it changes.
            func broadcasts(at site: LabSite) -> (String, String, String) {
                (
                    topology.switchPorts[site.index - 1], topology.switchNamespace,
                    LabSelfTests.broadcastInVNI5001 + " && ip.dst == \(site.tunnelIP)"
                )
            }
            let flood = try lab.start(
                "ping-broadcast", ["ping", "-n", "-b", "-i", "0.2", "-c", "100000", "10.0.0.255"],
                in: a.hostNamespace)
            try lab.watchWire(
                [broadcasts(at: b), broadcasts(at: c)], what: "broadcasts replicated to B only"
            ) { $0[0] > 0 && $0[1] == 0 }
            try vtepd.control([
                "add-mcast-remote", vtepd.logicalSwitch, "unknown-dst", c.tunnelIP,
            ])
            try lab.watchWire(
                [broadcasts(at: b), broadcasts(at: c)],
                what: "broadcasts replicated to B and C after add-mcast-remote"
            ) { $0[0] > 0 && $0[1] > 0 }
            try vtepd.control([
                "del-mcast-remote", vtepd.logicalSwitch, "unknown-dst", b.tunnelIP,
            ])
            try lab.watchWire(
                [broadcasts(at: b), broadcasts(at: c)],
                what: "broadcasts replicated to C only after del-mcast-remote"
            ) { $0[0] == 0 && $0[1] > 0 }
            flood.stop(signal: SIGINT)
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "ovsdb-server lost: forwarding goes on, vtepd restarts it and applies the next change")
    func databaseServerLoss() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001), .kernel(vni: 5001)])
            let (a, b, c) = (topology.sites[0], topology.sites[1], topology.sites[2])
            let vtepd = try Self.startPair(lab, topology)
            try lab.replicate(from: c, to: [a])

            let first = try Self.waitForDatabaseServer(of: vtepd, other: nil)
            // The outage must outlast the ping: with its database file moved away, every
            // ovsdb-server vtepd starts exits at once ("No such file"), so the server stays
            // down until the file is back, however quickly vtepd retries.
            let database = vtepd.stateRoot.appendingPathComponent("vtep.db")
            let away = vtepd.stateRoot.appendingPathComponent("vtep.db.away")
            try FileManager.default.moveItem(at: database, to: away)
            var restored = false
            defer { if !restored { try? FileManager.default.moveItem(at: away, to: database) } }
            guard kill(first, SIGKILL) == 0 else {
                throw LabError(
                    description: "kill(\(first), SIGKILL): \(String(cString: strerror(errno)))")
            }
            try waitUntil("ovsdb-server \(first) to stop accepting after SIGKILL") {
                !vtepd.databaseAcceptsConnections
            }

            let during = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 5)
            #expect(during == LabPingResult(transmitted: 5, received: 5))
            #expect(!vtepd.databaseAcceptsConnections, "the outage ended during the ping")
            let configuration = try vtepd.show("configuration")
            #expect(configuration.contains(vtepd.logicalSwitch), "\(configuration)")
            try vtepd.process.requireRunning()

            try FileManager.default.moveItem(at: away, to: database)
            restored = true
            let second = try Self.waitForDatabaseServer(of: vtepd, other: first)
            #expect(second != first)
            // vtep-ctl waits for the connection; --timeout bounds one attempt.
            try waitUntil("vtep-ctl to reach the restarted ovsdb-server") {
                try lab.attempt(["vtep-ctl", "--timeout=5", "--db=\(vtepd.database)", "list-ls"])
                    .status == 0
            }

            // A change after the restart reaches the wire: vtepd reconnected and resynchronised.
            try vtepd.control([
                "add-mcast-remote", vtepd.logicalSwitch, "unknown-dst", c.tunnelIP,
            ])
            let flood = try lab.start(
                "ping-broadcast", ["ping", "-n", "-b", "-i", "0.2", "-c", "100000", "10.0.0.255"],
                in: a.hostNamespace)
            try lab.watchWire(
                [
                    (
                        topology.switchPorts[2], topology.switchNamespace,
                        LabSelfTests.broadcastInVNI5001 + " && ip.dst == \(c.tunnelIP)"
                    )
                ], timeout: .seconds(60),
                what: "broadcasts replicated to C after the restart and add-mcast-remote"
            ) { $0[0] > 0 }
            flood.stop(signal: SIGINT)
            let after = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
            #expect(after == LabPingResult(transmitted: 3, received: 3))
            try vtepd.process.requireRunning()
        }
    }

    // MARK: Setup

    /// vtepd at site 1 and a kernel VTEP at site 2, replicating to each other head-end, with
    /// a ping across answered, so both have learned each other's host.
    static func startPair(_ lab: Lab, _ topology: LabTopology) throws -> LabVTEPD {
        let (a, b) = (topology.sites[0], topology.sites[1])
        let vtepd = try lab.startVTEPD(at: a, vni: 5001)
        try lab.replicate(from: a, to: [b], vtepd: vtepd)
        try lab.replicate(from: b, to: [a])
        // vtepd applies the database asynchronously: the first echo requests may go before
        // the replication list is in force, so wait for one answered ping.
        try waitUntil("host A to ping host B through vtepd") {
            if try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 1).received == 1 {
                return true
            }
            try vtepd.process.requireRunning()
            return false
        }
        let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
        guard ping.received == 3 else {
            throw LabError(description: "host A to host B through vtepd: \(ping)")
        }
        return vtepd
    }

    /// Waits until vtepd runs an ovsdb-server other than `other` and returns its PID.
    static func waitForDatabaseServer(of vtepd: LabVTEPD, other: pid_t?) throws -> pid_t {
        try waitUntil(
            "vtepd to run an ovsdb-server (other than \(other.map(String.init) ?? "none")) "
                + "accepting on its socket", lastSeen: vtepd.process.tail()
        ) {
            if let pid = vtepd.databaseServerPID(), pid != other, vtepd.databaseAcceptsConnections {
                return pid
            }
            try vtepd.process.requireRunning()
            return nil
        }
    }
}
