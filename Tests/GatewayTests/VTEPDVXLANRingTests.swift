import Foundation
import Packet
import TestSupport
import Testing

/// `vxlan-receive ring`: vtepd reads unicast VXLAN to its tunnel address from a receive ring on
/// the underlay and drops the kernel's copy at ingress (netdev table `vtepd_vxlan`), so the
/// kernel's IP and UDP input never see it. Checked against the kernel's vxlan with offloads
/// on (content-checked TCP both ways, the kernel's UDP counters, the table's counters), with
/// crafted outer headers on the wire, and across vtepd's stop and a crash's leftovers.
@Suite("vtepd reading VXLAN from the underlay's ring", .serialized)
struct VTEPDVXLANRingTests {
    static let table = "vtepd_vxlan"

    /// Packets the table's rules dropped so far in `namespace` (their counters summed).
    static func ingressDrops(_ lab: Lab, in namespace: String) throws -> Int {
        let listing = try lab.execute(
            ["nft", "list", "table", "netdev", table], in: namespace
        ).output
        return listing.split(separator: "\n").reduce(0) { sum, line in
            guard let range = line.range(of: "counter packets ") else { return sum }
            return sum + (Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0)
        }
    }

    static func tableExists(_ lab: Lab, in namespace: String) throws -> Bool {
        try lab.attempt(["nft", "list", "table", "netdev", table], in: namespace).status == 0
    }

    /// An IPv4 packet with UDP from `source` to `destination`:4789 holding VXLAN VNI 5001 and
    /// a broadcast frame, its IP header checksum right and its UDP checksum `checksum`.
    static func vxlanPacket(from source: String, to destination: String, checksum: UInt16)
        -> [UInt8]
    {
        func address(_ text: String) -> [UInt8] { text.split(separator: ".").map { UInt8($0)! } }
        let inner = LabFrame(destination: "ff:ff:ff:ff:ff:ff", source: "02:00:0b:ad:00:07").bytes
        let payload = LabVXLANPayload(vni: 5001, inner: inner).bytes
        let udpLength = 8 + payload.count
        var ip: [UInt8] = [0x45, 0, UInt8((20 + udpLength) >> 8), UInt8((20 + udpLength) & 0xFF)]
        ip += [0, 1, 0x40, 0, 64, 17, 0, 0] + address(source) + address(destination)
        let sum = ip.withUnsafeBytes { InternetChecksum.checksum($0) }
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xFF)
        let udp: [UInt8] = [
            0xC0, 0x00, 0x12, 0xB5, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF),
            UInt8(checksum >> 8), UInt8(checksum & 0xFF),
        ]
        return ip + udp + payload
    }

    @Test(
        "kernel vxlan peer, offloads on: ping through the ring alone (the kernel's copies dropped at ingress, its UDP input untouched), 4 MiB TCP both ways; a wrong outer UDP checksum is counted; SIGTERM removes the table"
    )
    func ringWithKernelPeer() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            #expect(topology.offloads == .on)
            let (a, b) = (topology.sites[0], topology.sites[1])
            let vtepd = try lab.startVTEPD(
                at: a, vni: 5001, extraArguments: ["--vxlan-receive", "ring"])
            try vtepd.process.waitForLog(
                "unicast VXLAN to the tunnel addresses is read from a receive ring on "
                    + a.underlayInterface)
            let listing = try lab.execute(
                ["nft", "list", "table", "netdev", Self.table], in: a.namespace
            ).output
            #expect(listing.contains("ip daddr \(a.tunnelIP)"), "\(listing)")
            #expect(listing.contains("hook ingress device \"\(a.underlayInterface)\""))
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try lab.replicate(from: b, to: [a])
            try VTEPDGRETests.waitForPing(lab, from: a, to: b, vtepd: vtepd)
            let settled = try vtepd.dropCounters()

            // Host B's echo replies, small datagrams, reach vtepd through the ring alone: the
            // kernel drops its own copy of each at ingress and its UDP input sees none.
            let udpBefore = try VTEPDOffloadTests.snmp(lab, in: a.namespace)
            let dropsBefore = try Self.ingressDrops(lab, in: a.namespace)
            let pings = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 20)
            let udpAfter = try VTEPDOffloadTests.snmp(lab, in: a.namespace)
            let drops = try Self.ingressDrops(lab, in: a.namespace) - dropsBefore
            #expect(pings.received >= 18, "\(pings)")
            #expect(
                drops >= pings.received,
                "\(drops) of the kernel's copies dropped at ingress, \(pings.received) replies")
            #expect(
                udpAfter["Udp.InDatagrams"] == udpBefore["Udp.InDatagrams"],
                "the kernel's UDP input took \(udpAfter["Udp.InDatagrams"]! - udpBefore["Udp.InDatagrams"]!)"
            )
            // TCP, content checked, both ways: host B's segments come through the ring, and
            // its GSO super-packets, which a veth hands over whole, longer than a ring frame,
            // through the socket (on a NIC every datagram arrives on the wire's scale).
            try lab.transferTCPCuttingAndMerging(a, b, vtepd: vtepd)
            #expect(try Self.ingressDrops(lab, in: a.namespace) > dropsBefore + drops)
            try VTEPDOffloadTests.expectNoDrops(vtepd, since: settled)

            // Outer headers nobody checked before vtepd: a wrong UDP checksum, sent from site
            // B's underlay as a wire would carry it, is counted under its reason.
            let before = try vtepd.dropCounters()
            let wrong = LabFrame(
                destination: try lab.interfaceMAC(a.underlayInterface, in: a.namespace),
                source: try lab.interfaceMAC(b.underlayInterface, in: b.namespace),
                etherType: 0x0800,
                payload: Self.vxlanPacket(from: b.tunnelIP, to: a.tunnelIP, checksum: 0x1234))
            try lab.inject(wrong, count: 3, on: b.underlayInterface, in: b.namespace)
            try waitUntil(
                "3 datagrams counted with a wrong UDP checksum",
                lastSeen: "\(try vtepd.dropCounters().changes(since: before))"
            ) {
                try vtepd.dropCounters().changes(since: before) == [
                    "malformed": 3, "malformed/udp_bad_checksum": 3,
                ]
            }

            #expect(vtepd.process.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)
            #expect(try !Self.tableExists(lab, in: a.namespace), "the table outlived vtepd")
        }
    }

    @Test(
        "a table a crashed vtepd left is replaced by a vtepd reading from the ring and removed by one reading through the sockets, which then forwards"
    )
    func leftoverTableIsReconciled() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            // What a vtepd killed while reading from the ring leaves: its table, dropping
            // VXLAN to the tunnel address that nobody reads any more.
            func leaveTable() throws {
                try lab.execute(
                    [
                        "nft",
                        "add table netdev \(Self.table); add chain netdev \(Self.table) ingress"
                            + " { type filter hook ingress device \"\(a.underlayInterface)\""
                            + " priority -500; policy accept; }; add rule netdev \(Self.table)"
                            + " ingress ip daddr \(a.tunnelIP) udp dport 4789 counter drop",
                    ], in: a.namespace)
            }
            try leaveTable()
            let ring = try lab.startVTEPD(
                at: a, vni: 5001, extraArguments: ["--vxlan-receive", "ring"],
                stateRoot: lab.file("vtepd-ring"))
            try ring.process.waitForLog("is read from a receive ring on")
            let chains = try lab.execute(
                ["nft", "list", "table", "netdev", Self.table], in: a.namespace
            ).output
            // Replaced whole, not added to: every rule is vtepd's (frames to this host only).
            let rules = chains.split(separator: "\n").filter { $0.contains("udp dport 4789") }
            #expect(
                !rules.isEmpty && rules.allSatisfy { $0.contains("pkttype host") },
                "\(chains)")
            #expect(ring.process.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)

            try leaveTable()
            let sockets = try lab.startVTEPD(
                at: a, vni: 5001, stateRoot: lab.file("vtepd-sockets"))
            try sockets.process.waitForLog("removed netdev table \(Self.table)")
            #expect(try !Self.tableExists(lab, in: a.namespace))
            try lab.replicate(from: a, to: [b], vtepd: sockets)
            try lab.replicate(from: b, to: [a])
            try VTEPDGRETests.waitForPing(lab, from: a, to: b, vtepd: sockets)
            #expect(sockets.process.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)
        }
    }
}
