import Datapath
import Forwarding
import Foundation
import Packet
import Synchronization
import TestSupport
import Testing

/// vtepd's GRE (RFC 2784/2890, Ethernet over GRE with the VNI as key) against Open vSwitch's
/// userspace datapath, NVGRE (RFC 7637) between two vtepd gateways, a VXLAN and a GRE switch
/// side by side, and bad GRE input, all checked on the wire.
@Suite("vtepd GRE and NVGRE on the wire", .serialized)
struct VTEPDGRETests {
    /// The inner broadcast of `Lab.sendBroadcastPing`, in GRE with key 5001.
    static let broadcastInKey5001 =
        "gre.key == 5001 && eth.dst == ff:ff:ff:ff:ff:ff && icmp.type == 8"
    static let gre = "ip proto 47 or ip6 proto 47"

    @Test("OVS userspace GRE peer over IPv4: ARP, ping, learning both sides, 4 MiB TCP both ways")
    func ovsPeerIPv4() async throws {
        try await Lab.runOnOwnThread { lab in try Self.checkOVSPeer(lab, family: .ipv4) }
    }

    @Test("OVS userspace GRE peer over IPv6: ARP, ping, learning both sides, 4 MiB TCP both ways")
    func ovsPeerIPv6() async throws {
        try await Lab.runOnOwnThread { lab in try Self.checkOVSPeer(lab, family: .ipv6) }
    }

    @Test("GRE checksum and sequence number, sent and accepted, against OVS")
    func ovsPeerChecksumAndSequence() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd, ovs) = try Self.greSites(lab, family: .ipv4)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let aMAC = try lab.interfaceMAC(a.underlayInterface, in: a.namespace)

            // Checksums both ways (OVS verifies ours; we verify OVS's).
            try vtepd.control([
                "set", "Logical_Switch", vtepd.logicalSwitch, "other_config:gre-checksum=true",
            ])
            try ovs.setTunnel(
                remote: a.tunnelIP, remoteMAC: aMAC, key: 5001, extraOptions: ["options:csum=true"])
            try Self.waitForPing(lab, from: a, to: b, vtepd: vtepd)
            let checksummed = try Self.pingCaptured(lab, topology, a, b)
            #expect(
                try lab.count(
                    in: checksummed.file,
                    matching: "ip.src == \(a.tunnelIP) && gre.flags_and_version == 0xa000"
                        + " && gre.checksum.status == 1 && gre.key == 5001 && icmp.type == 8")
                    == 3)
            let fromOVS = try Self.fields(
                lab, checksummed.file, filter: "ip.src == \(b.tunnelIP) && icmp.type == 0",
                fields: ["gre.flags_and_version", "gre.checksum.status", "_ws.col.Info"])
            #expect(
                fromOVS.filter { $0[0] == "0xa000" && $0[1] == "1" }.count == 3, "\(fromOVS)")
            // Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
            #expect(try lab.count(in: checksummed.file, matching: "gre.checksum.status == 0") == 0)

            // Sequence numbers (without checksum: OVS 3.1 userspace checksums before writing
            // the sequence number, see docs/contributing.md "Found on the way").
            try vtepd.control([
                "set", "Logical_Switch", vtepd.logicalSwitch, "other_config:gre-checksum=false",
                "other_config:gre-sequence=true",
            ])
            try ovs.setTunnel(
                remote: a.tunnelIP, remoteMAC: aMAC, key: 5001, extraOptions: ["options:seq=true"])
            try Self.waitForPing(lab, from: a, to: b, vtepd: vtepd)
            let sequenced = try Self.pingCaptured(lab, topology, a, b)
            // Every packet we send to OVS carries the next number (ARP included), the echo
            // requests among them.
            let ours = try Self.fields(
                lab, sequenced.file, filter: "ip.src == \(a.tunnelIP)",
                fields: ["gre.flags_and_version", "gre.sequence_number", "icmp.type"])
            let numbers = ours.compactMap { UInt32($0[1]) }
            #expect(ours.allSatisfy { $0[0] == "0x3000" }, "\(ours)")
            #expect(numbers.count == ours.count && ours.count >= 3, "\(ours)")
            #expect(zip(numbers, numbers.dropFirst()).allSatisfy { $1 == $0 &+ 1 }, "\(numbers)")
            #expect(ours.filter { $0[2] == "8" }.count == 3, "\(ours)")
            #expect(
                try lab.count(
                    in: sequenced.file,
                    matching: "ip.src == \(b.tunnelIP) && gre.flags_and_version == 0x3000"
                        + " && icmp.type == 0") == 3)
            let counters = try vtepd.dropCounters()
            #expect(counters.malformed.isEmpty, "\(counters)")
            try vtepd.process.requireRunning()
        }
    }

    @Test("NVGRE between two vtepd gateways: RFC 7637 layout on the wire, FlowID from the flow")
    func nvgreBetweenGateways() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepdA, vtepdB) = try Self.nvgrePair(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])

            let wire = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: Self.gre)
            let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))
            try lab.transferTCP(
                from: a.hostNamespace, to: b.hostNamespace, address: b.hostIPv4, size: 1 << 20)
            try lab.stop(wire)
            // RFC 7637 §3.2: C = 0, K = 1, S = 0, version 0 (flags word 0x2000), protocol
            // 0x6558, an 8-byte GRE header, key = VSID << 8 | FlowID.
            let rows = try Self.fields(
                lab, wire.file, filter: "gre",
                fields: [
                    "gre.flags_and_version", "gre.proto", "gre.key", "ip.proto", "eth.type",
                ])
            #expect(rows.count > 100, "\(rows.count) NVGRE packets captured")
            var flowIDs: Set<UInt32> = []
            for row in rows {
                #expect(row[0] == "0x2000", "\(row)")
                #expect(row[1] == "0x6558", "\(row)")
                let key = try #require(UInt32(row[2].dropFirst(2), radix: 16) ?? UInt32(row[2]))
                #expect(key >> 8 == 5001, "VSID of key \(row[2])")
                flowIDs.insert(key & 0xFF)
                #expect(row[3].hasPrefix("47"), "\(row)")
                // Inner Ethernet right after the 8-byte header: outer IP length = 20 + 8 +
                // inner frame, so the inner EtherType dissects as IPv4 or ARP.
                #expect(row[4].contains("0x0800") || row[4].contains("0x0806"), "\(row)")
            }
            // The ICMP and the TCP flow (and their directions) hash apart; ARP as well.
            #expect(flowIDs.count >= 2, "FlowIDs seen: \(flowIDs)")
            // Learning on both gateways, under the NVGRE locator.
            let tableA = try vtepdA.show("mac-table")
            #expect(tableA.contains(b.hostMAC) && tableA.contains(b.tunnelIP), "\(tableA)")
            let tableB = try vtepdB.show("mac-table")
            #expect(tableB.contains(a.hostMAC) && tableB.contains(a.tunnelIP), "\(tableB)")
            for vtepd in [vtepdA, vtepdB] {
                let counters = try vtepd.dropCounters()
                #expect(counters.malformed.isEmpty, "\(counters)")
                try vtepd.process.requireRunning()
            }
        }
    }

    @Test("a VXLAN switch to the kernel and a GRE switch to OVS in one vtepd, isolated")
    func vxlanAndGRESideBySide() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001), .gateway])
            let (a, kernel, ovsSite) = (topology.sites[0], topology.sites[1], topology.sites[2])
            // A second host behind vtepd on a port of its own, for the GRE switch (this kernel
            // has no 802.1Q devices, so not a VLAN of the first port).
            let hostG = try lab.namespace("hg", ipv6: false)
            let (hostGLink, accessG) = try lab.veth(
                "eg", in: hostG, "ag", in: a.namespace, mtu: 1450)
            let hostGMAC = "02:00:0a:00:00:11"
            try lab.execute(
                ["ip", "link", "set", accessG, "addrgenmode", "none"], in: a.namespace)
            try lab.execute(["ip", "link", "set", hostGLink, "address", hostGMAC], in: hostG)
            try lab.execute(["ip", "addr", "add", "10.0.0.11/24", "dev", hostGLink], in: hostG)
            try lab.apply(topology.offloads, to: hostGLink, in: hostG)
            try lab.apply(topology.offloads, to: accessG, in: a.namespace)

            let vtepd = try lab.startVTEPD(at: a, vni: 5001, extraArguments: ["--port", accessG])
            try lab.replicate(from: a, to: [kernel], vtepd: vtepd)
            try lab.replicate(from: kernel, to: [a])
            try vtepd.control(["--may-exist", "add-port", vtepd.physicalSwitch, accessG])
            try vtepd.control(["--may-exist", "add-ls", "ls6001"])
            try vtepd.control([
                "set", "Logical_Switch", "ls6001", "tunnel_key=6001",
                "replication_mode=source_node", "other_config:encapsulation=gre",
            ])
            try vtepd.control(["bind-ls", vtepd.physicalSwitch, accessG, "0", "ls6001"])
            try vtepd.control(["add-mcast-remote", "ls6001", "unknown-dst", ovsSite.tunnelIP])
            let ovs = try lab.startOVS(
                at: ovsSite, remote: a.tunnelIP,
                remoteMAC: try lab.interfaceMAC(a.underlayInterface, in: a.namespace), key: 6001)
            try lab.warmUnderlay(topology)

            try Self.waitForPing(lab, from: a, to: kernel, vtepd: vtepd)
            try Self.waitForPing(lab, fromNamespace: hostG, to: ovsSite.hostIPv4, vtepd: vtepd)
            #expect(
                try lab.ping(from: a.hostNamespace, to: kernel.hostIPv4, count: 3)
                    == LabPingResult(transmitted: 3, received: 3))
            #expect(
                try lab.ping(from: hostG, to: ovsSite.hostIPv4, count: 3)
                    == LabPingResult(transmitted: 3, received: 3))
            // Across: same IP subnet, different logical switches: nothing gets through.
            let wireToOVS = try lab.capture(
                on: topology.switchPorts[2], in: topology.switchNamespace)
            let wireToKernel = try lab.capture(
                on: topology.switchPorts[1], in: topology.switchNamespace)
            #expect(
                try lab.ping(from: a.hostNamespace, to: ovsSite.hostIPv4, count: 3).received == 0)
            #expect(try lab.ping(from: hostG, to: kernel.hostIPv4, count: 3).received == 0)
            // Then one answered ping along each wire's own switch: once its reply is
            // captured, whatever vtepd had sent across before is too.
            #expect(try lab.ping(from: hostG, to: ovsSite.hostIPv4, count: 1).received == 1)
            #expect(
                try lab.ping(from: a.hostNamespace, to: kernel.hostIPv4, count: 1).received == 1)
            try lab.stop(wireToOVS, once: 1, match: "gre && icmp.type == 0", settle: .zero)
            try lab.stop(wireToKernel, once: 1, match: "vxlan && icmp.type == 0", settle: .zero)
            #expect(try lab.count(in: wireToOVS.file, matching: "vxlan") == 0)
            #expect(try lab.count(in: wireToOVS.file, matching: "eth.src == \(a.hostMAC)") == 0)
            #expect(try lab.count(in: wireToKernel.file, matching: "gre") == 0)
            #expect(try lab.count(in: wireToKernel.file, matching: "eth.src == \(hostGMAC)") == 0)

            let ovsMACs = try ovs.learnedMACs().map(\.mac)
            #expect(ovsMACs.contains(hostGMAC), "\(ovsMACs)")
            #expect(!ovsMACs.contains(a.hostMAC), "\(ovsMACs)")
            let kernelMACs = try lab.forwardingDatabase(in: kernel.namespace).map(\.mac)
            #expect(kernelMACs.contains(a.hostMAC), "\(kernelMACs)")
            #expect(!kernelMACs.contains(hostGMAC), "\(kernelMACs)")
            try vtepd.process.requireRunning()
        }
    }

    /// One kind of bad GRE input and the counters it must move.
    struct BadInput {
        let name: String
        let packet: [UInt8]
        var fromUnconfiguredAddress = false
        let counts: [String: Int64]
        var delivered = 0
    }

    static let sent = 5

    static func badInputs() -> [BadInput] {
        let n = Int64(sent)
        let frame = LabVXLANPayload.broadcastFrame()
        func malformed(_ reason: String) -> [String: Int64] {
            ["malformed": n, "malformed/" + reason: n]
        }
        /// flags/version word, protocol, then optional words, then `inner`.
        func gre(_ flags: UInt16, protocol: UInt16 = 0x6558, words: [UInt32], _ inner: [UInt8])
            -> [UInt8]
        {
            var bytes = [
                UInt8(flags >> 8), UInt8(flags & 0xFF), UInt8(`protocol` >> 8),
                UInt8(`protocol` & 0xFF),
            ]
            for word in words {
                bytes += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: word >> $0) }
            }
            return bytes + inner
        }
        // A valid checksummed packet, then its checksum bit-flipped.
        var checksummed = gre(0xA000, words: [0, 5001], frame)
        let sum = checksummed.withUnsafeBytes { InternetChecksum.checksum($0) }
        checksummed[4] = UInt8(sum >> 8)
        checksummed[5] = UInt8(sum & 0xFF)
        var wrongSum = checksummed
        wrongSum[5] ^= 0x01
        return [
            BadInput(
                name: "protocol type 0x0800 instead of 0x6558",
                packet: gre(0x2000, protocol: 0x0800, words: [5001], frame),
                counts: malformed("gre_wrong_protocol")),
            BadInput(
                name: "no key (K clear)", packet: gre(0x0000, words: [], frame),
                counts: malformed("gre_key_missing")),
            BadInput(
                name: "routing bit set (RFC 2784 §2.3)",
                packet: gre(0x6000, words: [5001], frame),
                counts: malformed("gre_routing_present")),
            BadInput(
                name: "version 1", packet: gre(0x2001, words: [5001], frame),
                counts: malformed("gre_bad_version")),
            BadInput(
                name: "truncated (3 bytes)", packet: [0x20, 0x00, 0x65],
                counts: malformed("gre_truncated")),
            BadInput(
                name: "K set, key cut off", packet: Array(gre(0x2000, words: [5001], []).prefix(6)),
                counts: malformed("gre_truncated")),
            BadInput(
                name: "C set, wrong checksum", packet: wrongSum,
                counts: malformed("gre_bad_checksum")),
            BadInput(
                name: "key 5002 names no switch", packet: gre(0x2000, words: [5002], frame),
                counts: ["unknown_vni": n]),
            BadInput(
                name: "key 0x01001389 (above 24 bits; its low 24 bits are 5001)",
                packet: gre(0x2000, words: [0x0100_1389], frame),
                counts: ["unknown_vni": n]),
            BadInput(
                name: "source address not a configured VTEP",
                packet: gre(0x2000, words: [5001], frame), fromUnconfiguredAddress: true,
                counts: ["unknown_source_vtep": n]),
            // Controls: well formed, with and without a (right) checksum and a sequence number.
            BadInput(
                name: "well-formed (control)", packet: gre(0x2000, words: [5001], frame),
                counts: [:], delivered: sent),
            BadInput(
                name: "well-formed with checksum (control)", packet: checksummed, counts: [:],
                delivered: sent),
            BadInput(
                name: "well-formed with sequence number (control)",
                packet: gre(0x3000, words: [5001, 77], frame), counts: [:], delivered: sent),
        ]
    }

    @Test(
        "bad GRE input: each dropped under its own counter, none reaches the host",
        arguments: [LabUnderlayFamily.ipv4, .ipv6])
    func badGREInput(family: LabUnderlayFamily) async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .gateway], family: family)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            try vtepd.control([
                "set", "Logical_Switch", vtepd.logicalSwitch, "other_config:encapsulation=gre",
            ])
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            let stranger = family == .ipv4 ? "192.0.2.12" : "2001:db8::12"
            try lab.execute(
                [
                    "ip", "addr", "add", stranger + (family == .ipv4 ? "/24" : "/64"), "dev",
                    b.underlayInterface,
                ] + (family == .ipv4 ? [] : ["nodad"]),
                in: b.namespace)
            // vtepd applies the database asynchronously: wait until the GRE switch is in force.
            try waitUntil(
                "vtepd to show a GRE switch", lastSeen: try vtepd.show("configuration")
            ) {
                if try vtepd.show("configuration").contains("(gre)") { return true }
                try vtepd.process.requireRunning()
                return false
            }

            // The access veth's own IPv6 chatter (router solicitation, MLD: it had a
            // link-local address before the lab turned address generation off) is not
            // vtepd's forwarding.
            let accessMAC = try lab.interfaceMAC(a.accessInterface, in: a.namespace)
            for input in Self.badInputs() {
                let host = try lab.capture(on: a.hostInterface, in: a.hostNamespace)
                let before = try vtepd.dropCounters()
                try lab.sendGRE(
                    from: b.namespace,
                    source: input.fromUnconfiguredAddress ? stranger : b.tunnelIP,
                    to: a.tunnelIP, packets: Array(repeating: input.packet, count: Self.sent))
                // Sent last: once host A has it, vtepd has counted all of the above.
                try lab.sendGRE(
                    from: b.namespace, source: b.tunnelIP, to: a.tunnelIP,
                    packets: [LabProbe.gre])
                try lab.stop(host, once: 1, match: LabProbe.filter, settle: .zero)
                let after = try vtepd.dropCounters()
                #expect(
                    after.changes(since: before) == input.counts,
                    "\(input.name): counters moved by \(after.changes(since: before))")
                let arrived = try Self.fields(
                    lab, host.file,
                    filter: "!(eth.src == \(a.hostMAC)) && !(eth.src == \(accessMAC))"
                        + " && !(\(LabProbe.filter))",
                    fields: ["eth.src", "eth.dst", "_ws.col.Protocol", "_ws.col.Info"])
                #expect(
                    arrived.count == input.delivered,
                    "\(input.name): \(arrived.count) frames reached host A: \(arrived)")
            }
            try vtepd.process.requireRunning()
        }
    }

    // MARK: The forwarding core, without a lab

    /// A GRE packet whose key is a VXLAN switch's VNI (and the reverse) names no switch: the
    /// encapsulations never cross, even from a VTEP that is a locator of both.
    @Test func encapsulationsNeverCrossInTheCore() throws {
        let peer = IPAddress("192.0.2.2")!
        let configuration = try ForwardingConfiguration(
            switches: [
                LogicalSwitch(
                    name: "vx", vni: VNI(rawValue: 5001)!, replication: .headEnd([Locator(peer)])),
                LogicalSwitch(
                    name: "gr", vni: VNI(rawValue: 6001)!,
                    replication: .headEnd([Locator(peer, .gre)]), encapsulation: .gre),
            ],
            ports: ["p0", "p1"],
            bindings: [
                Binding(port: "p0", vlan: nil, logicalSwitch: "vx"),
                Binding(port: "p1", vlan: nil, logicalSwitch: "gr"),
            ])
        #expect(configuration.encapsulation(carrying: VNI(rawValue: 5001)!) == .vxlan)
        #expect(configuration.encapsulation(carrying: VNI(rawValue: 6001)!) == .gre)
        #expect(configuration.encapsulation(carrying: VNI(rawValue: 7001)!) == nil)
        let engine = ForwardingEngine(configuration: configuration, hashSeed: 1)
        let frame = LabVXLANPayload.broadcastFrame()
        let decisions = frame.withUnsafeBytes { bytes in
            [
                (Encapsulation.gre, 5001), (.vxlan, 6001), (.nvgre, 6001), (.gre, 6001),
                (.vxlan, 5001),
            ].map { encapsulation, vni in
                engine.decide(
                    .tunnel(
                        source: peer, encapsulation: encapsulation, vni: VNI(rawValue: UInt32(vni))!
                    ),
                    frame: bytes, now: 1)
            }
        }
        #expect(decisions[0] == .drop(.unknownVNI))
        #expect(decisions[1] == .drop(.unknownVNI))
        #expect(decisions[2] == .drop(.unknownVNI))
        #expect(decisions[3] != .drop(.unknownVNI))
        #expect(decisions[4] != .drop(.unknownVNI))
        #expect(engine.dropCount(.unknownVNI) == 3)
    }

    // MARK: other_config:encapsulation, without a lab

    /// One Physical_Locator row serves a VXLAN and a GRE switch at once: each switch's
    /// locators carry its own encapsulation, remote MACs included.
    @Test func switchEncapsulationReachesItsLocators() throws {
        var (b, _, p0, p1) = gateway()
        let vx = b.logicalSwitch("vx", key: 5001, mode: "source_node")
        let gr = b.logicalSwitch(
            "gr", key: 6001, mode: "source_node",
            config: ["encapsulation": "gre", "gre-checksum": "true", "gre-sequence": "false"])
        let nv = b.logicalSwitch(
            "nv", key: 7001, mode: "source_node", config: ["encapsulation": "nvgre"])
        b.bind(p0, vlan: 0, to: vx)
        b.bind(p1, vlan: 0, to: gr)
        b.bind(p1, vlan: 10, to: nv)
        b.mcast(["10.0.0.2"], in: vx)
        b.mcast(["10.0.0.2"], in: gr)
        b.mcast(["10.0.0.3"], in: nv)
        b.ucast("00:00:5e:00:53:01", in: gr, at: "10.0.0.2")
        let snapshot = b.snapshot()
        #expect(snapshot.problems == [])
        #expect(
            snapshot.locators == [
                Locator(ip("10.0.0.2"), .vxlan), Locator(ip("10.0.0.2"), .gre),
                Locator(ip("10.0.0.3"), .nvgre),
            ])
        let byName = Dictionary(uniqueKeysWithValues: snapshot.switches.map { ($0.name, $0) })
        #expect(byName["vx"]?.encapsulation == .vxlan)
        #expect(byName["gr"]?.encapsulation == .gre)
        #expect(byName["gr"]?.greOptions == GREOptions(checksum: true, sequence: false))
        #expect(byName["gr"]?.replication == .headEnd([Locator(ip("10.0.0.2"), .gre)]))
        #expect(byName["nv"]?.encapsulation == .nvgre)
        #expect(
            snapshot.remoteMACs == [
                .init(
                    logicalSwitch: "gr", mac: mac("00:00:5e:00:53:01"),
                    locator: Locator(ip("10.0.0.2"), .gre))
            ])
        let configuration = try snapshot.configuration(previous: nil)
        #expect(configuration.encapsulation(carrying: vni(6001)) == .gre)
        #expect(configuration.encapsulation(carrying: vni(7001)) == .nvgre)
    }

    /// Operator input vtepd cannot honour: the switch is left out (or the key ignored) with a
    /// reason, and the other switches keep working.
    @Test func badEncapsulationSettingsAreReported() {
        var (b, _, p0, p1) = gateway()
        let ok = b.logicalSwitch("ok", key: 100, mode: "source_node")
        let geneve = b.logicalSwitch("geneve", key: 101, config: ["encapsulation": "geneve"])
        let yes = b.logicalSwitch(
            "yes", key: 102, config: ["encapsulation": "gre", "gre-checksum": "yes"])
        let nvsum = b.logicalSwitch(
            "nvsum", key: 103, mode: "source_node",
            config: ["encapsulation": "nvgre", "gre-checksum": "true"])
        let group = b.logicalSwitch(
            "group", key: 104, config: ["encapsulation": "gre", "multicast-group": "239.1.1.1"])
        // GRE key 0x10000 = 65536 is NVGRE VSID 256 with FlowID 0.
        let greKey = b.logicalSwitch("grekey", key: 65536, config: ["encapsulation": "gre"])
        let nvVSID = b.logicalSwitch("nvvsid", key: 256, config: ["encapsulation": "nvgre"])
        for (vlan, ls) in [(0, ok), (1, geneve), (2, yes), (3, nvsum), (4, group), (5, greKey)] {
            b.bind(p0, vlan: UInt16(vlan), to: ls)
        }
        b.bind(p1, vlan: 0, to: nvVSID)
        let snapshot = b.snapshot()
        #expect(snapshot.switches.map(\.name) == ["nvsum", "ok"])
        #expect(snapshot.switches.first?.greOptions == GREOptions())
        let problems = snapshot.problems.joined(separator: "\n")
        #expect(
            problems.contains(
                "\"geneve\" is not an encapsulation vtepd speaks (vxlan, gre or nvgre"))
        #expect(problems.contains("gre-checksum=\"yes\" is neither true nor false"))
        #expect(
            problems.contains("nvsum other_config:gre-checksum applies to encapsulation=gre only"))
        #expect(problems.contains("multicast-group is for VXLAN switches only"))
        #expect(
            problems.contains(
                "GRE logical switch grekey (key 65536) and NVGRE logical switch nvvsid (VSID 256"))
    }

    // MARK: Helpers

    /// Two sites: vtepd at site 1 with logical switch ls5001 in GRE, OVS at site 2 with
    /// `gre0` key 5001 towards it; head-end replication; the first ping answered.
    static func greSites(_ lab: Lab, family: LabUnderlayFamily) throws
        -> (LabTopology, LabVTEPD, LabOVS)
    {
        let topology = try lab.topology([.gateway, .gateway], family: family)
        let (a, b) = (topology.sites[0], topology.sites[1])
        let vtepd = try lab.startVTEPD(at: a, vni: 5001)
        // Through the appliance shell, as an operator would (the other tests use vtep-ctl).
        try lab.execute([
            try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c",
            "set logical-switch \(vtepd.logicalSwitch) encapsulation gre",
        ])
        try lab.replicate(from: a, to: [b], vtepd: vtepd)
        let ovs = try lab.startOVS(
            at: b, remote: a.tunnelIP,
            remoteMAC: try lab.interfaceMAC(a.underlayInterface, in: a.namespace), key: 5001)
        try lab.warmUnderlay(topology)
        try waitForPing(lab, from: a, to: b, vtepd: vtepd)
        return (topology, vtepd, ovs)
    }

    static func checkOVSPeer(_ lab: Lab, family: LabUnderlayFamily) throws {
        let (topology, vtepd, ovs) = try greSites(lab, family: family)
        let (a, b) = (topology.sites[0], topology.sites[1])
        // ARP resolved through the tunnel (the hosts' caches were empty before the first
        // ping), then echo both ways.
        let arp = try lab.execute(["ip", "neigh", "show", b.hostIPv4], in: a.hostNamespace)
        #expect(arp.output.contains(b.hostMAC), "\(arp.output)")
        // Every echo answered; a loaded machine (OVS's userspace datapath polls in a thread
        // of its own) may take longer than ping's usual 2 s to answer one.
        #expect(
            try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3, reply: .seconds(10))
                == LabPingResult(transmitted: 3, received: 3))
        #expect(
            try lab.ping(from: b.hostNamespace, to: a.hostIPv4, count: 3, reply: .seconds(10))
                == LabPingResult(transmitted: 3, received: 3))

        // OVS learned host A behind gre0; we learned host B behind OVS's tunnel IP.
        let greOFPort = try ovs.openFlowPort("gre0")
        let learned = try ovs.learnedMACs()
        #expect(
            learned.contains { $0.mac == a.hostMAC && $0.port == greOFPort },
            "OVS fdb (gre0 is port \(greOFPort)): \(learned)")
        let table = try vtepd.show("mac-table")
        #expect(table.contains(b.hostMAC) && table.contains(b.tunnelIP), "\(table)")
        #expect(table.contains(a.hostMAC), "\(table)")

        // With offloads on at vtepd's site, host A hands vtepd TSO super-frames, which it cuts
        // into GRE packets for OVS; OVS's segments toward host A are merged again.
        try lab.transferTCPCuttingAndMerging(a, b, vtepd: vtepd)

        // One broadcast from host A: exactly one GRE copy (key 5001, flags K only) leaves
        // us; one copy reaches host B.
        let out = try lab.capture(
            on: topology.switchPorts[0], in: topology.switchNamespace, filter: gre)
        let hostB = try lab.capture(
            on: b.hostInterface, in: b.hostNamespace, filter: Lab.icmpAndProbes)
        try lab.sendBroadcastPing(from: a.hostNamespace, to: "10.0.0.255")
        let probe = "02:00:00:00:9e:13"
        try lab.injectProbe(probe, from: a)
        #expect(
            try lab.stopAndCount(
                out, matching: broadcastInKey5001 + " && gre.flags_and_version == 0x2000",
                probe: probe) == 1)
        #expect(
            try lab.stopAndCount(hostB, matching: LabSelfTests.broadcastOnHost, probe: probe) == 1)
        let counters = try vtepd.dropCounters()
        #expect(counters.malformed.isEmpty, "\(counters)")
        // The shell's view of the tunnel: OVS's VTEP, in GRE, frames both ways.
        let tunnels = try lab.execute([
            try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c",
            "show switch tunnels",
        ]).output
        let row = tunnels.split(separator: "\n").first { $0.contains(b.tunnelIP) }
        #expect(row?.contains("gre") == true, "\(tunnels)")
        try vtepd.process.requireRunning()
        try ovs.vswitchd.requireRunning()
    }

    /// Two vtepd gateways (sites 1 and 2 of a new topology) on one NVGRE switch, VNI 5001,
    /// head-end to each other, a ping already across.
    static func nvgrePair(_ lab: Lab, family: LabUnderlayFamily = .ipv4) throws
        -> (LabTopology, LabVTEPD, LabVTEPD)
    {
        let topology = try lab.topology([.gateway, .gateway], family: family)
        let (a, b) = (topology.sites[0], topology.sites[1])
        let vtepdA = try lab.startVTEPD(at: a, vni: 5001)
        let vtepdB = try lab.startVTEPD(at: b, vni: 5001)
        for (vtepd, remote) in [(vtepdA, b), (vtepdB, a)] {
            try vtepd.control([
                "set", "Logical_Switch", vtepd.logicalSwitch, "other_config:encapsulation=nvgre",
            ])
            try lab.replicate(from: vtepd.site, to: [remote], vtepd: vtepd)
        }
        try waitForPing(lab, from: a, to: b, vtepd: vtepdA)
        return (topology, vtepdA, vtepdB)
    }

    static func waitForPing(_ lab: Lab, from a: LabSite, to b: LabSite, vtepd: LabVTEPD) throws {
        try waitForPing(lab, fromNamespace: a.hostNamespace, to: b.hostIPv4, vtepd: vtepd)
    }

    /// vtepd and OVS apply their databases asynchronously: waits for one answered echo
    /// request.
    static func waitForPing(
        _ lab: Lab, fromNamespace namespace: String, to address: String, vtepd: LabVTEPD
    ) throws {
        try waitUntil(
            "\(address) to answer from \(namespace) through vtepd",
            lastSeen: try vtepd.show("counters")
        ) {
            if try lab.ping(from: namespace, to: address, count: 1).received == 1 { return true }
            try vtepd.process.requireRunning()
            return false
        }
    }

    /// Three pings from host A to host B, captured on A's underlay switch port.
    static func pingCaptured(_ lab: Lab, _ topology: LabTopology, _ a: LabSite, _ b: LabSite)
        throws -> LabCapture
    {
        let wire = try lab.capture(
            on: topology.switchPorts[0], in: topology.switchNamespace, filter: gre)
        let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
        #expect(ping == LabPingResult(transmitted: 3, received: 3))
        try lab.stop(wire)
        return wire
    }

    /// `tshark -r FILE -Y FILTER -T fields -e F…`, one array of field texts per packet.
    static func fields(_ lab: Lab, _ file: URL, filter: String, fields: [String]) throws
        -> [[String]]
    {
        let result = try lab.execute(
            ["tshark", "-n", "-r", file.path, "-Y", filter, "-T", "fields", "-E", "separator=/t"]
                + fields.flatMap { ["-e", $0] })
        return result.output.split(separator: "\n").map {
            $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        }
    }
}

extension Lab {
    /// Sends each of `packets` (a GRE header and payload) as one IP packet of protocol 47
    /// from `source` (an address in `namespace`) to `destination`, on a thread that enters
    /// `namespace` with setns(2) and ends with the send.
    func sendGRE(from namespace: String, source: String, to destination: String, packets: [[UInt8]])
        throws
    {
        guard let from = IPAddress(source), let to = IPAddress(destination) else {
            throw LabError(description: "\(source) or \(destination) is not an IP address")
        }
        let result = Mutex<Result<Void, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let outcome = Result<Void, any Error> {
                try NetworkNamespace.enterOnCurrentThread(path: "/run/netns/\(namespace)")
                let socket = try RawTunnelSocket(address: from)
                let batch = PacketBatch(capacity: max(1, packets.count))
                for (slot, packet) in packets.enumerated() {
                    packet.withUnsafeBytes { batch.copyFrame($0, into: slot) }
                    batch.setDestination(UDPEndpoint(address: to, port: 0), for: slot)
                }
                let sent = try socket.send(batch, count: packets.count)
                guard sent.sent == packets.count else {
                    throw LabError(description: "sent \(sent.sent) of \(packets.count) GRE packets")
                }
            }
            result.withLock { $0 = outcome }
            done.signal()
        }
        thread.start()
        guard done.wait(timeout: .now() + 20) == .success else {
            throw LabError(description: "sending GRE in \(namespace) did not finish in 20 s")
        }
        try result.withLock { $0 }?.get()
    }
}
