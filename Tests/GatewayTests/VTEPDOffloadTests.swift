import Foundation
import Packet
import TestSupport
import Testing

/// vtepd with every offload on (Linux's veth defaults: transmit checksum offload, TSO and GSO
/// on): hosts hand it TSO super-frames with partial checksums, it cuts them into tunnel
/// packets that fit the underlay, and merges tunnel segments into super-frames toward its
/// hosts. Checked against real peers (the kernel's vxlan, a second vtepd, OVS tagging a
/// trunk) with content-checked TCP, vtepd's offload counters and the wire.
@Suite("vtepd with offloads on", .serialized)
struct VTEPDOffloadTests {
    @Test(
        "kernel vxlan over IPv4: 4 MiB TCP both ways; super-frames cut into VXLAN packets within the MTU, DF, unfragmented; trains through the packet socket and through UDP sockets (UDP_SEGMENT, for kernels before 6.2)",
        arguments: ["packet-socket", "udp-socket"]
    )
    func kernelPeerSegmentation(trainPath: String) async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd) = try Self.kernelPair(lab, trains: trainPath)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let mtu = try Self.mtu(of: a.underlayInterface, in: a.namespace, lab)
            let settled = try vtepd.dropCounters()

            let before = try vtepd.offloadCounters()
            let txBefore = try Self.txFrames(of: vtepd, to: b.tunnelIP)
            let wire = try Self.segmentedCapture(lab, topology, toward: b)
            // What vtepd hands its underlay veth, before the switch cuts it.
            let trains = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace,
                filter: "src host \(a.tunnelIP) and udp port 4789",
                bufferKiB: Self.captureBufferKiB)
            try lab.transferTCP(from: a.hostNamespace, to: b.hostNamespace, address: b.hostIPv4)
            // The connection's last packets (host A's answer to B's FIN) may still be on their
            // way when the transfer is done: what vtepd counts and what the capture holds are
            // compared once it has sent nothing to site 2 for half a second (a full CI run
            // once counted one datagram more than a 300 ms settle had captured).
            var quiet = -1
            try waitUntil("vtepd quiet toward \(b.tunnelIP)") {
                let now = try Self.txFrames(of: vtepd, to: b.tunnelIP)
                defer { quiet = now }
                if now == quiet { return true }
                Thread.sleep(forTimeInterval: 0.5)
                return false
            }
            try lab.stop(trains)
            #expect(try lab.droppedByKernel(trains) == 0, "the capture must hold every packet")
            try lab.stop(wire)
            #expect(try lab.droppedByKernel(wire) == 0, "the capture must hold every packet")
            let sent = try vtepd.offloadCounters()
            let txAfter = try Self.txFrames(of: vtepd, to: b.tunnelIP)
            #expect(txAfter == quiet, "vtepd sent more to site 2 after it fell quiet")
            #expect(sent["super_frames_in"]! > before["super_frames_in"]!, "\(sent)")
            #expect(sent["segments_out"]! > before["segments_out"]!, "\(sent)")

            // Every VXLAN packet vtepd sent during the transfer, as a wire carries it: within
            // the underlay MTU, DF set, no fragment (in the outer IP header, `#1`: a bare
            // `ip.len` filter holds when the inner header's does); the full-size ones exactly
            // at the MTU (a 1,398-byte segment of the 1,450-byte inner MTU + 50 of VXLAN).
            let ours = "ip.src#1 == \(a.tunnelIP) && udp.dstport#1 == 4789 && vxlan"
            let all = try lab.count(in: wire.file, matching: ours)
            let fitting = try lab.count(
                in: wire.file,
                matching: "\(ours) && ip.len#1 <= \(mtu) && ip.flags.df#1 == 1"
                    + " && ip.flags.mf#1 == 0 && ip.frag_offset#1 == 0")
            #expect(all > (4 << 20) / 1_398, "\(all) VXLAN packets for 4 MiB")
            #expect(fitting == all, "\(all - fitting) of \(all) VXLAN packets do not fit")
            #expect(try lab.count(in: wire.file, matching: "\(ours) && ip.len#1 == \(mtu)") > 0)
            #expect(
                try lab.count(in: wire.file, matching: "ip.flags.mf == 1 || ip.frag_offset > 0")
                    == 0)
            // Each of them is one frame vtepd counts as sent to site 2.
            #expect(all == txAfter - txBefore, "\(all) on the wire, \(txAfter - txBefore) counted")
            // vtepd handed them over as UDP GSO trains: packets longer than the MTU on its
            // own veth (a NIC with UDP segmentation, or the switch here, cuts them).
            let long = try lab.count(in: trains.file, matching: "\(ours) && ip.len#1 > \(mtu)")
            #expect(long > 0, "no train among what vtepd sent")
            // Every datagram's source port is in the operator's range (49152–65535); through
            // UDP sockets, one of the pool's 32, trains and single datagrams alike.
            let ports = Set(
                try Self.firstOccurrence(lab, wire.file, field: "udp.srcport", filter: ours))
            #expect(ports.allSatisfy { (49152...65535).contains(Int($0) ?? 0) }, "\(ports)")
            if trainPath == "udp-socket" {
                try vtepd.process.waitForLog(
                    "notice vtepd.dataplane: vxlan-trains udp-socket: UDP GSO trains leave through the kernel's UDP sockets (UDP_SEGMENT), VXLAN source ports 32 of 49152-65535"
                )
                let all = try Self.firstOccurrence(
                    lab, trains.file, field: "udp.srcport", filter: ours)
                #expect(Set(all).count <= 32, "\(Set(all).count) source ports from a pool of 32")
            }

            // Back: the kernel's segments are merged into super-frames toward host A.
            try lab.transferTCP(from: b.hostNamespace, to: a.hostNamespace, address: a.hostIPv4)
            let received = try vtepd.offloadCounters()
            #expect(
                received["coalesced_frames_out"]! > sent["coalesced_frames_out"]!, "\(received)")
            #expect(
                received["coalesced_segments"]! > received["coalesced_frames_out"]!,
                "\(received)")
            try Self.expectNoDrops(vtepd, since: settled)
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "partial checksums: host A's UDP and TCP leave vtepd with every inner checksum good, and host B's stack takes them; a wrong checksum stays wrong"
    )
    func partialChecksumsAreFinished() async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepd) = try Self.kernelPair(lab)
            let (a, b) = (topology.sites[0], topology.sites[1])
            // Host A's veth keeps transmit checksum offload (the default): its stack leaves
            // UDP and TCP checksums for the "NIC" to finish, so vtepd reads them NEEDS_CSUM.
            let features = try lab.execute(["ethtool", "-k", a.hostInterface], in: a.hostNamespace)
            #expect(features.output.contains("tx-checksumming: on"), "\(features.output)")

            let port = 9999
            let received = lab.file("udp-received.bin")
            let server = try lab.start(
                "nc-udp", ["nc", "-n", "-u", "-l", b.hostIPv4, "\(port)"], in: b.hostNamespace,
                output: received)
            defer { server.stop() }
            try Self.waitForUDPListener(lab, port: port, in: b.hostNamespace, process: server)

            // 24 datagrams of 1 to 1,422 bytes (the most host A's 1,450-byte MTU carries
            // unfragmented), each of its own bytes.
            let sizes = [1, 18, 100, 555, 1_000, 1_422]
            var random = SplitMix64(seed: 0xC5)
            let payloads = (0..<24).map { i in
                (0..<sizes[i % sizes.count]).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
            // The control: 5 datagrams to port 9998 whose UDP checksum is complete and wrong,
            // put on host A's wire as they are (no offload to finish them): vtepd must carry
            // them unchanged, tshark must call them bad and host B must refuse them.
            let wrong = LabFrame(
                destination: b.hostMAC, source: a.hostMAC, etherType: 0x0800,
                payload: Self.udpWithWrongChecksum(from: a.hostIPv4, to: b.hostIPv4, port: 9998))
            let stackBefore = try Self.snmp(lab, in: b.hostNamespace)
            let before = try vtepd.offloadCounters()
            let wire = try Self.segmentedCapture(lab, topology, toward: b)
            // From one socket: nc answers only the source of the first datagram.
            try lab.sendUDP(
                from: a.hostNamespace, source: a.hostIPv4, to: b.hostIPv4, port: UInt16(port),
                payloads: payloads)
            try lab.inject(wrong, count: 5, on: a.hostInterface, in: a.hostNamespace)
            let expected = payloads.reduce([], +)
            try waitUntil("host B took the \(expected.count) bytes and refused the 5") {
                let stack = try Self.snmp(lab, in: b.hostNamespace)
                return ((try? Data(contentsOf: received))?.count ?? 0) >= expected.count
                    && stack["Udp.InCsumErrors"]! >= stackBefore["Udp.InCsumErrors"]! + 5
            }
            let afterUDP = try vtepd.offloadCounters()
            try lab.transferTCP(
                from: a.hostNamespace, to: b.hostNamespace, address: b.hostIPv4, size: 1 << 20)
            try lab.stop(wire)
            #expect(try lab.droppedByKernel(wire) == 0, "the capture must hold every packet")

            // Host B's stack checks what it is handed (a wrong checksum counts under
            // InCsumErrors): every datagram delivered, in order, and none refused but the 5.
            let stack = try Self.snmp(lab, in: b.hostNamespace)
            #expect(try Data(contentsOf: received) == Data(expected))
            #expect(stack["Udp.InDatagrams"]! - stackBefore["Udp.InDatagrams"]! == payloads.count)
            #expect(stack["Udp.InCsumErrors"]! - stackBefore["Udp.InCsumErrors"]! == 5)
            #expect(stack["Tcp.InCsumErrors"]! == stackBefore["Tcp.InCsumErrors"]!)
            // Each of the 24 came with its checksum unfinished, and vtepd finished it.
            #expect(
                afterUDP["checksums_completed"]! - before["checksums_completed"]!
                    >= UInt64(payloads.count), "\(afterUDP)")

            // On the wire, checksums checked by tshark: the inner UDP layer is the last one
            // (the outer is VXLAN's, which a veth capture may see unfinished: the kernel
            // completes it on the way).
            let inner = "ip.src#1 == \(a.tunnelIP) && vxlan"
            let udp = try Self.lastOccurrence(
                lab, wire.file, field: "udp.checksum.status",
                filter: "\(inner) && udp.dstport#2 == \(port)")
            #expect(udp.count == payloads.count, "\(udp)")
            #expect(udp.allSatisfy { $0 == Self.good }, "\(udp)")
            let control = try Self.lastOccurrence(
                lab, wire.file, field: "udp.checksum.status",
                filter: "\(inner) && udp.dstport#2 == 9998")
            #expect(control == Array(repeating: Self.bad, count: 5), "\(control)")
            let tcp = try Self.lastOccurrence(
                lab, wire.file, field: "tcp.checksum.status", filter: "\(inner) && tcp")
            #expect(tcp.count > (1 << 20) / 1_398, "\(tcp.count) TCP segments")
            #expect(
                tcp.filter { $0 == Self.good }.count == tcp.count,
                "\(tcp.filter { $0 != Self.good }.count) of \(tcp.count) TCP checksums not good")
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "VXLAN between two vtepd gateways: 4 MiB TCP both ways, trains sent, read whole and merged; or, with vxlan-transmit tunnel-gso, super-packets sent whole and read whole",
        arguments: ["trains", "tunnel-gso"]
    )
    func vxlanBetweenGateways(transmit: String) async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .gateway])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let options = ["--vxlan-transmit", transmit]
            let vtepdA = try lab.startVTEPD(at: a, vni: 5001, extraArguments: options)
            let vtepdB = try lab.startVTEPD(at: b, vni: 5001, extraArguments: options)
            for (vtepd, remote) in [(vtepdA, b), (vtepdB, a)] {
                try lab.replicate(from: vtepd.site, to: [remote], vtepd: vtepd)
            }
            try VTEPDGRETests.waitForPing(lab, from: a, to: b, vtepd: vtepdA)
            try Self.waitForFastPath(lab, topology, from: a, to: b, vtepd: vtepdA)
            try Self.waitForFastPath(lab, topology, from: b, to: a, vtepd: vtepdB)
            // Drops while the pair was being set up (a frame from a VTEP the other side did
            // not list yet: unknown_source_vtep) are not the transfers'.
            let settled = [try vtepdA.dropCounters(), try vtepdB.dropCounters()]
            for (from, to, sender, receiver) in [
                (a, b, vtepdA, vtepdB), (b, a, vtepdB, vtepdA),
            ] {
                let sending = try sender.offloadCounters()
                let receiving = try receiver.offloadCounters()
                try lab.transferTCP(
                    from: from.hostNamespace, to: to.hostNamespace, address: to.hostIPv4)
                let sent = try sender.offloadCounters()
                let got = try receiver.offloadCounters()
                let direction = "site \(from.index) → site \(to.index)"
                if transmit == "tunnel-gso" {
                    // The sender wrote its host's super-frames whole; the kernel forwarded
                    // each as one UDP-tunnel GSO packet, which the veths carried whole and
                    // the receiver's socket read whole, one inner super-frame per read.
                    #expect(
                        sent["tunnel_gso_out"]! > sending["tunnel_gso_out"]!,
                        "\(direction): \(sent)")
                    #expect(sent["tunnel_gso_refused"] == 0, "\(direction): \(sent)")
                    continue
                }
                // The sender cut its host's super-frames into UDP GSO trains; the veths
                // carried each train whole, the receiver's UDP_GRO socket read it in one
                // piece, split it into datagrams and merged their TCP segments again.
                #expect(sent["trains_out"]! > sending["trains_out"]!, "\(direction): \(sent)")
                #expect(got["trains_in"]! > receiving["trains_in"]!, "\(direction): \(got)")
                let frames = got["coalesced_frames_out"]! - receiving["coalesced_frames_out"]!
                let segments = got["coalesced_segments"]! - receiving["coalesced_segments"]!
                #expect(frames > 0 && segments >= 4 * frames, "\(direction): \(got)")
            }
            for (vtepd, before) in zip([vtepdA, vtepdB], settled) {
                try Self.expectNoDrops(vtepd, since: before)
                try vtepd.process.requireRunning()
            }
        }
    }

    @Test(
        "NVGRE between two vtepd gateways over IPv4 and IPv6: 4 MiB TCP both ways, each cutting and merging, GRE within the MTU, unfragmented",
        arguments: [LabUnderlayFamily.ipv4, .ipv6]
    )
    func nvgreBetweenGateways(family: LabUnderlayFamily) async throws {
        try await Lab.runOnOwnThread { lab in
            let (topology, vtepdA, vtepdB) = try VTEPDGRETests.nvgrePair(lab, family: family)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let mtu = try Self.mtu(of: a.underlayInterface, in: a.namespace, lab)
            // Drops while the pair was being set up (a frame from a VTEP the other side did
            // not list yet: unknown_source_vtep) are not the transfers'.
            let settled = [try vtepdA.dropCounters(), try vtepdB.dropCounters()]

            for (from, to, sender, receiver) in [
                (a, b, vtepdA, vtepdB), (b, a, vtepdB, vtepdA),
            ] {
                let sending = try sender.offloadCounters()
                let receiving = try receiver.offloadCounters()
                let wire = try lab.capture(
                    on: topology.switchPorts[from.index - 1], in: topology.switchNamespace,
                    filter: VTEPDGRETests.gre, bufferKiB: Self.captureBufferKiB)
                try lab.transferTCP(
                    from: from.hostNamespace, to: to.hostNamespace, address: to.hostIPv4)
                try lab.stop(wire)
                #expect(try lab.droppedByKernel(wire) == 0, "the capture must hold every packet")
                let sent = try sender.offloadCounters()
                let merged = try receiver.offloadCounters()
                let direction = "site \(from.index) → site \(to.index)"
                #expect(
                    sent["super_frames_in"]! > sending["super_frames_in"]!, "\(direction): \(sent)")
                #expect(sent["segments_out"]! > sending["segments_out"]!, "\(direction): \(sent)")
                #expect(
                    merged["coalesced_frames_out"]! > receiving["coalesced_frames_out"]!,
                    "\(direction): \(merged)")
                // The outer header's length within the MTU and no fragment: IPv4's flags and
                // offset, IPv6's missing fragment header (and its payload length + 40).
                let (ours, fits) =
                    family == .ipv4
                    ? (
                        "ip.src#1 == \(from.tunnelIP) && gre.key",
                        "ip.len#1 <= \(mtu) && ip.flags.mf#1 == 0 && ip.frag_offset#1 == 0"
                    )
                    : (
                        "ipv6.src#1 == \(from.tunnelIP) && gre.key",
                        "ipv6.plen#1 <= \(mtu - 40) && !ipv6.fragment"
                    )
                let all = try lab.count(in: wire.file, matching: ours)
                let fitting = try lab.count(in: wire.file, matching: "\(ours) && \(fits)")
                #expect(all > (4 << 20) / 1_398, "\(direction): \(all) GRE packets")
                #expect(fitting == all, "\(direction): \(all - fitting) of \(all) do not fit")
            }
            for (vtepd, before) in zip([vtepdA, vtepdB], settled) {
                try Self.expectNoDrops(vtepd, since: before)
                try vtepd.process.requireRunning()
            }
        }
    }

    @Test(
        "802.1Q trunk: host A on VLAN 100 behind OVS, 4 MiB TCP both ways to the kernel's host, tagged super-frames in and out (cut into trains, or written whole untagged with vxlan-transmit tunnel-gso)",
        arguments: ["trains", "tunnel-gso"]
    )
    func trunkVLAN(transmit: String) async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let (tagger, hostPort) = try lab.startVLANHost(
                a, vlan: 100, mtu: topology.family.innerMTU)
            let vtepd = try lab.startVTEPD(
                at: a, vni: 5001, extraArguments: ["--vxlan-transmit", transmit])
            let trunk = a.accessInterface
            try vtepd.control(["bind-ls", vtepd.physicalSwitch, trunk, "100", "ls5001"])
            try vtepd.control(["unbind-ls", vtepd.physicalSwitch, trunk, "0"])
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try lab.replicate(from: b, to: [a])
            let wanted = [LabBinding(port: trunk, vlan: 100, logicalSwitch: "ls5001")]
            try waitUntil("vtepd forwards by the trunk's binding \(wanted)") {
                try vtepd.bindings() == wanted
            }
            try VTEPDGRETests.waitForPing(lab, from: a, to: b, vtepd: vtepd)
            try Self.waitForFastPath(lab, topology, from: a, to: b, vtepd: vtepd)
            let settled = try vtepd.dropCounters()
            // The host's stack sees an interface with TSO and checksum offload.
            let features = try lab.execute(["ethtool", "-k", hostPort], in: a.hostNamespace)
            #expect(features.output.contains("tcp-segmentation-offload: on"), "\(features.output)")

            // Host A's frames cross the trunk tagged 100, the kernel site's come back tagged.
            // Seen from the host's end of the trunk: vtepd's own transmissions bypass the
            // qdisc, where a capture on its end would not see them.
            let onTrunk = try lab.capture(
                on: a.hostInterface, in: a.hostNamespace, filter: "icmp or vlan")
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3).received == 3)
            let echo = "icmp && ip.addr == \(b.hostIPv4)"
            // The last reply, once captured, comes after every other echo frame.
            try lab.stop(onTrunk, once: 6, match: echo, settle: .zero)
            #expect(try lab.count(in: onTrunk.file, matching: "\(echo) && vlan.id == 100") == 6)
            #expect(try lab.count(in: onTrunk.file, matching: "\(echo) && !vlan") == 0)

            let before = try vtepd.offloadCounters()
            try lab.transferTCPCuttingAndMerging(a, b, vtepd: vtepd)
            let after = try vtepd.offloadCounters()
            let whole = after["tunnel_gso_out"]! - before["tunnel_gso_out"]!
            #expect(transmit == "tunnel-gso" ? whole > 0 : whole == 0, "\(after)")
            let entry = try vtepd.macEntry(a.hostMAC)
            #expect(
                entry?.vlan == 100 && entry?.logicalSwitch == "ls5001",
                "\(String(describing: entry))")
            try Self.expectNoDrops(vtepd, since: settled)
            try vtepd.process.requireRunning()
            try tagger.vswitchd.requireRunning()
        }
    }

    // MARK: Helpers

    /// No frame dropped or found malformed, for any reason: a super-frame cut wrong, or one
    /// too big for a buffer, would show here.
    /// No frame dropped since `before`, taken once the topology was set up: while two
    /// sides are configured one after the other, a host's first broadcast may find no flood
    /// target yet (no_flood_targets) or a VTEP not listed yet (unknown_source_vtep), which
    /// says nothing of the traffic a test then sends.
    static func expectNoDrops(
        _ vtepd: LabVTEPD, since before: LabDropCounters,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let changes = try vtepd.dropCounters().changes(since: before)
        #expect(changes == [:], "\(changes)", sourceLocation: sourceLocation)
    }

    /// tcpdump's buffer for a capture that takes a 4 MiB transfer: 64 MiB.
    static let captureBufferKiB = 65_536

    /// Wireshark's checksum status "Good" and "Bad" (2 is unverified, 3 not present).
    static let good = "1"
    static let bad = "0"

    /// An IPv4 packet holding a UDP datagram from `source` port 1234 to `destination`:`port`
    /// with 4 bytes of payload, its IP header checksum right and its UDP checksum wrong
    /// (0x1234; the test's tshark check confirms it is not the right one by chance).
    static func udpWithWrongChecksum(from source: String, to destination: String, port: Int)
        -> [UInt8]
    {
        func address(_ text: String) -> [UInt8] { text.split(separator: ".").map { UInt8($0)! } }
        var ip: [UInt8] = [0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0]
        ip += address(source) + address(destination)
        let sum = ip.withUnsafeBytes { InternetChecksum.checksum($0) }
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xFF)
        let udp: [UInt8] = [0x04, 0xD2, UInt8(port >> 8), UInt8(port & 0xFF), 0, 12, 0x12, 0x34]
        return ip + udp + [1, 2, 3, 4]
    }

    /// The Udp and Tcp counters of /proc/net/snmp in `namespace`, as "Udp.InCsumErrors" etc.
    static func snmp(_ lab: Lab, in namespace: String) throws -> [String: Int] {
        let text = try lab.execute(["cat", "/proc/net/snmp"], in: namespace).output
        let lines = text.split(separator: "\n")
        var counters: [String: Int] = [:]
        for (names, values) in zip(lines, lines.dropFirst())
        where names.hasPrefix("Udp: ") || names.hasPrefix("Tcp: ") {
            let keys = names.split(separator: " ")
            let numbers = values.split(separator: " ")
            guard keys.count == numbers.count, keys[0] == numbers[0] else { continue }
            let section = keys[0].dropLast()
            for (key, value) in zip(keys.dropFirst(), numbers.dropFirst()) {
                counters["\(section).\(key)"] = Int(value)
            }
        }
        for key in ["Udp.InDatagrams", "Udp.InCsumErrors", "Tcp.InCsumErrors"]
        where counters[key] == nil {
            throw LabError(description: "/proc/net/snmp in \(namespace) has no \(key):\n\(text)")
        }
        return counters
    }

    /// vtepd at site 1 and the kernel's vxlan at site 2 on VNI 5001, head-end replication both
    /// ways, offloads on; returns once host A's ping is answered. With `vxlan-transmit trains`:
    /// the tests on this pair check vtepd's own cutting of super-frames on the wire, which the
    /// default (`auto`) leaves to the kernel on a kernel with UDP-tunnel GSO for TAP devices,
    /// as this one has (that path: `VTEPDTunnelGSOTests`).
    static func kernelPair(_ lab: Lab, trains: String = "auto") throws -> (LabTopology, LabVTEPD) {
        let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
        #expect(topology.offloads == .on)
        let (a, b) = (topology.sites[0], topology.sites[1])
        let vtepd = try lab.startVTEPD(
            at: a, vni: 5001,
            extraArguments: ["--vxlan-transmit", "trains", "--vxlan-trains", trains])
        try lab.replicate(from: a, to: [b], vtepd: vtepd)
        try lab.replicate(from: b, to: [a])
        try VTEPDGRETests.waitForPing(lab, from: a, to: b, vtepd: vtepd)
        try waitForFastPath(lab, topology, from: a, to: b, vtepd: vtepd)
        return (topology, vtepd)
    }

    /// Until its resolver has the next hop to a VTEP (up to a second after a configuration),
    /// vtepd sends VXLAN to it through the kernel's IP output one segment at a time; then
    /// through prebuilt headers, with super-frames as UDP GSO trains. Waits for the latter
    /// (the VTEP counted as resolved), then for an echo request from host A leaving with a
    /// source port from the inner flow's hash (49152–65535), as on either path.
    static func waitForFastPath(
        _ lab: Lab, _ topology: LabTopology, from a: LabSite, to b: LabSite, vtepd: LabVTEPD
    ) throws {
        try waitUntil("vtepd has the next hop to \(b.tunnelIP)") {
            try vtepd.countersReport().vteps.contains { $0.ip == b.tunnelIP && $0.resolved == true }
        }
        let request = "ip.src == \(a.tunnelIP) && icmp.type == 8"
        try waitUntil("vtepd sends to \(b.tunnelIP) with a hashed source port") {
            let wire = try lab.capture(
                on: topology.switchPorts[a.index - 1], in: topology.switchNamespace,
                filter: "udp port 4789")
            _ = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 1)
            try lab.stop(wire, once: 1, match: request)
            return try lab.count(in: wire.file, matching: "\(request) && udp.srcport >= 49152")
                == 1
        }
    }

    /// A capture of what the underlay switch sends toward `site`, as a physical wire would
    /// carry it. vtepd sends VXLAN as UDP GSO trains (up to 64 KB, one `sendmsg`), and a veth
    /// hands such a train to its peer whole, so a capture on any veth sees the train, not
    /// its datagrams. With UDP segmentation off on this one switch port, the kernel cuts each
    /// train at the port's transmit, by the segment size vtepd chose, and tcpdump there sees
    /// each datagram. vtepd's and the peer's offloads are untouched. (No `outbound` in the
    /// filter: libpcap then misses the first packet after it starts listening.)
    static func segmentedCapture(_ lab: Lab, _ topology: LabTopology, toward site: LabSite)
        throws -> LabCapture
    {
        let port = topology.switchPorts[site.index - 1]
        try lab.execute(
            ["ethtool", "-K", port, "tx-udp-segmentation", "off"], in: topology.switchNamespace)
        return try lab.capture(
            on: port, in: topology.switchNamespace, filter: "udp port 4789",
            bufferKiB: captureBufferKiB)
    }

    static func mtu(of interface: String, in namespace: String, _ lab: Lab) throws -> Int {
        let text = try lab.execute(["cat", "/sys/class/net/\(interface)/mtu"], in: namespace)
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let mtu = Int(text) else {
            throw LabError(description: "MTU of \(interface) is '\(text)'")
        }
        return mtu
    }

    /// vtepd's count of frames sent to the remote VTEP `ip`.
    static func txFrames(of vtepd: LabVTEPD, to ip: String) throws -> Int {
        guard let vtep = try vtepd.countersReport().vteps.first(where: { $0.ip == ip }) else {
            throw LabError(description: "vtepd counts no VTEP \(ip)")
        }
        return Int(vtep.txFrames)
    }

    /// The last occurrence of `field` in each packet of `file` matching `filter` (the inner
    /// layer's, in a tunnel packet).
    static func lastOccurrence(_ lab: Lab, _ file: URL, field: String, filter: String) throws
        -> [String]
    {
        try occurrences(lab, file, field: field, filter: filter, which: "l")
    }

    /// The same with the first occurrence of `field` in each packet (the outer layer's).
    static func firstOccurrence(_ lab: Lab, _ file: URL, field: String, filter: String) throws
        -> [String]
    {
        try occurrences(lab, file, field: field, filter: filter, which: "f")
    }

    private static func occurrences(
        _ lab: Lab, _ file: URL, field: String, filter: String, which: String
    ) throws -> [String] {
        let result = try lab.execute([
            "tshark", "-n", "-r", file.path, "-o", "udp.check_checksum:TRUE", "-o",
            "tcp.check_checksum:TRUE", "-Y", filter, "-T", "fields", "-E", "occurrence=\(which)",
            "-e", field,
        ])
        return result.output.split(separator: "\n").map(String.init)
    }

    /// Waits until a UDP socket is bound to `port` in `namespace`.
    static func waitForUDPListener(
        _ lab: Lab, port: Int, in namespace: String, process: LabProcess
    ) throws {
        try waitUntil("something listens on UDP port \(port) in \(namespace)") {
            try process.requireRunning()
            let listening = try lab.execute(
                ["ss", "-Hlun", "sport", "=", ":\(port)"], in: namespace)
            return !listening.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
    }
}

extension Lab {
    /// 4 MiB over TCP from host A to host B and back, content checked, through `vtepd` at
    /// site A with offloads on: host A's super-frames must have been cut on the way out
    /// (`super_frames_in`, `segments_out`) and the far side's segments merged on the way in
    /// (`coalesced_frames_out`).
    func transferTCPCuttingAndMerging(
        _ a: LabSite, _ b: LabSite, vtepd: LabVTEPD,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let before = try vtepd.offloadCounters()
        try transferTCP(from: a.hostNamespace, to: b.hostNamespace, address: b.hostIPv4)
        let sent = try vtepd.offloadCounters()
        #expect(
            sent["super_frames_in"]! > before["super_frames_in"]!, "\(sent)",
            sourceLocation: sourceLocation)
        #expect(
            sent["segments_out"]! > before["segments_out"]!, "\(sent)",
            sourceLocation: sourceLocation)
        try transferTCP(from: b.hostNamespace, to: a.hostNamespace, address: a.hostIPv4)
        let received = try vtepd.offloadCounters()
        #expect(
            received["coalesced_frames_out"]! > sent["coalesced_frames_out"]!, "\(received)",
            sourceLocation: sourceLocation)
    }
}
