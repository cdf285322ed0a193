import Datapath
import Foundation
import NamespaceLab
import Packet
import TestSupport
import Testing

/// `UDPTrainSockets`: UDP GSO trains through the kernel's UDP sockets (UDP_SEGMENT), as
/// vtepd sends them where packet sockets take no UDP GSO (Linux before 6.2).
@Suite("UDPTrainSockets: trains through UDP sockets")
struct UDPTrainSocketsTests {
    /// Inner frame `index` of train `train`: distinct bytes, `length` long.
    static func inner(_ train: Int, _ index: Int, length: Int) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index &* 31 &+ train &* 101) }
    }

    /// A tunnel address the host does not have yet (DHCP, or the admin, puts it on the
    /// underlay later): the pool binds all the same (IP_FREEBIND), for both families.
    @Test func aTunnelAddressNotYetOnTheHostTakesThePool() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgut") { lab in
            let namespace = try lab.namespace("e")
            let ports = try lab.inNamespace(namespace) {
                Handed(
                    value: try UDPTrainSockets(
                        localIPv4: IPv4Address(192, 0, 2, 77),
                        localIPv6: IPv6Address("2001:db8::77")!,
                        range: SourcePortRange.rfc7348Default, count: 4
                    ).ports)
            }.value
            #expect(ports == [49152, 53248, 57344, 61440], "\(ports)")
        }
    }

    /// Two namespaces over a veth: two trains of five VXLAN datagrams (the last one shorter)
    /// and a single datagram leave the pool's sockets; the far side's kernel takes each
    /// datagram of each train, in order, from the port the train's header names, with the
    /// template's TTL (hop limit) and TOS (traffic class), unfragmented. Ports a socket
    /// already holds are skipped when the pool binds.
    @Test(arguments: [
        ("10.204.0.1", "10.204.0.2", "24"),
        ("fd00:204::1", "fd00:204::2", "64"),
    ])
    func trainsArriveCutFromThePoolsPorts(_ local: String, _ remote: String, _ prefix: String)
        async throws
    {
        let localAddress = try #require(IPAddress(local))
        let remoteAddress = try #require(IPAddress(remote))
        let (v4, v6): (IPv4Address?, IPv6Address?) =
            switch localAddress {
            case .v4(let a): (a, nil)
            case .v6(let a): (nil, a)
            }
        try await NamespaceLab.runOnOwnThread(tag: "vgut") { lab in
            let near = try lab.namespace("n")
            let far = try lab.namespace("f")
            let (nearLink, farLink) = try lab.veth("n", in: near, "f", in: far)
            try lab.ip("-n", near, "addr", "add", "\(local)/\(prefix)", "dev", nearLink, "nodad")
            try lab.ip("-n", far, "addr", "add", "\(remote)/\(prefix)", "dev", farLink, "nodad")
            let receiver = try lab.inNamespace(far) {
                Handed(value: try UDPTunnelSocket(address: remoteAddress, receiveBuffer: 1 << 20))
            }.value
            let capture = try lab.inNamespace(far) {
                Handed(value: try AccessPort(interface: farLink))
            }.value
            let range = try SourcePortRange(lowerBound: 50000, upperBound: 50003)
            let (pool, taken) = try lab.inNamespace(near) {
                // Someone else holds 50000 on the address: the pool skips it.
                let taken = try UDPTunnelSocket(address: localAddress, port: 50000)
                let pool = try UDPTrainSockets(
                    localIPv4: v4, localIPv6: v6, range: range,
                    count: 3)
                return Handed(value: (pool, taken))
            }.value
            #expect(pool.ports == [50001, 50002, 50003], "\(pool.ports)")
            #expect(pool.port(for: 0) == 50001 && pool.port(for: .max) == 50003)
            _ = taken

            let network: OuterHeaderTemplate.Network =
                switch (localAddress, remoteAddress) {
                case (.v4(let s), .v4(let d)): .ipv4(source: s, destination: d, ttl: 33, tos: 0xB8)
                case (.v6(let s), .v6(let d)):
                    .ipv6(source: s, destination: d, hopLimit: 33, trafficClass: 0xB8)
                default: throw LabError(description: "mixed families")
                }
            let template = try OuterHeaderTemplate(
                encapsulation: .vxlan, vni: 5000, network: network,
                ethernet: .init(
                    destination: MACAddress(0x02, 0, 0, 0, 0, 2),
                    source: MACAddress(0x02, 0, 0, 0, 0, 1)))
            let batch = PacketBatch(capacity: 4, bufferSize: 65_536 + 256, headroom: 128)
            let (segment, last) = (600, 300)
            var expected: [(port: UInt16, payload: [UInt8])] = []
            for train in 0..<2 {
                let port = pool.port(for: train == 0 ? 0 : .max)
                let buffer = batch.buffer(train)
                let start = batch.headroom
                for i in 0..<5 {
                    let bytes = Self.inner(train, i, length: i == 4 ? last : segment)
                    let at = start + template.headerLength + i * (segment + 8)
                    bytes.withUnsafeBytes {
                        buffer.baseAddress!.advanced(by: at).copyMemory(
                            from: $0.baseAddress!, byteCount: $0.count)
                    }
                    expected.append((port, [0x08, 0, 0, 0, 0, 0x13, 0x88, 0] + bytes))
                }
                let header = try template.stampTrain(
                    into: buffer, at: start, segmentLength: segment, count: 5, lastLength: last,
                    sourcePort: port)
                batch.setFrame(
                    train, start: start, length: template.headerLength + 4 * (segment + 8) + last)
                batch.setOffload(header, for: train)
            }
            // A single datagram, as a train of one leaves (no offload).
            let single = Self.inner(2, 0, length: 100)
            single.withUnsafeBytes { batch.copyFrame($0, into: 2) }
            let start = batch.frameStart(2) - template.headerLength
            _ = try template.stamp(
                into: batch.buffer(2), at: start, innerLength: 100, sourcePort: pool.port(for: 0))
            batch.setFrame(2, start: start, length: template.headerLength + 100)
            batch.setOffload(.plain, for: 2)
            expected.append((pool.port(for: 0), [0x08, 0, 0, 0, 0, 0x13, 0x88, 0] + single))

            #expect(try pool.send(batch, count: 3) == SendResult(processed: 3))

            let datagrams = PacketBatch(capacity: 32)
            var received: [(port: UInt16, payload: [UInt8])] = []
            try waitUntil("11 datagrams", lastSeen: "\(received.count) received") {
                let n = try receiver.receive(into: datagrams)
                if n == 0 { waitReadable(receiver.descriptor, milliseconds: 10) }
                for slot in 0..<n {
                    let from = try #require(datagrams.source(slot))
                    #expect(from.address == localAddress)
                    received.append((from.port, Array(datagrams.frame(slot))))
                }
                return received.count >= 11
            }
            #expect(received.map(\.port) == expected.map(\.port))
            #expect(received.map(\.payload) == expected.map(\.payload))

            // On the far veth (which hands a train over whole; the far side's UDP input
            // cuts it): every UDP packet to 4789 from us carries the template's TTL (hop
            // limit) and TOS (traffic class), and IPv4 DF without fragmenting.
            let frames = PacketBatch(capacity: 32, bufferSize: 65_536 + 256, headroom: 128)
            let headers = 14 + (v4 != nil ? 20 : 40) + 8
            let total = expected.reduce(0) { $0 + $1.payload.count }
            var wire: [[UInt8]] = []
            var carried = 0
            try waitUntil("\(total) bytes of VXLAN on the wire", lastSeen: "\(carried) seen") {
                let n = try capture.receive(into: frames)
                if n == 0 { waitReadable(capture.descriptor, milliseconds: 10) }
                for slot in 0..<n {
                    let frame = Array(frames.frame(slot))
                    guard frame.count > headers,
                        frame[headers - 6] == 0x12 && frame[headers - 5] == 0xB5,
                        v4 != nil
                            ? frame[12] == 0x08 && frame[23] == 17
                            : frame[12] == 0x86 && frame[20] == 17
                    else { continue }
                    wire.append(frame)
                    carried += frame.count - headers
                }
                return carried >= total
            }
            #expect(carried == total)
            for frame in wire {
                if v4 != nil {
                    #expect(frame[15] == 0xB8 && frame[22] == 33, "TOS \(frame[15]), TTL \(frame[22])")
                    #expect(frame[20] & 0x40 != 0 && frame[20] & 0x3F == 0 && frame[21] == 0)
                } else {
                    let trafficClass = (frame[14] & 0x0F) << 4 | frame[15] >> 4
                    #expect(trafficClass == 0xB8 && frame[21] == 33)
                }
            }
        }
    }
}
