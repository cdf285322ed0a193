import Datapath
import Foundation
import NamespaceLab
import Packet
import TestSupport
import Testing

/// A GRE packet (RFC 2890 header with key `key`, then `length` bytes of payload).
private func grePacket(key: UInt32, length: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 8 + length)
    for i in 0..<length { bytes[8 + i] = UInt8(truncatingIfNeeded: i &* 7 &+ Int(key)) }
    bytes.withUnsafeMutableBytes {
        _ = try! GREHeader(key: key).store(into: $0, at: 0, payloadLength: length)
    }
    return bytes
}

/// Receives until `last` arrives; returns the packets before it. Sent after the packets under
/// test, from the same socket, `last` arrives after any of them that arrives at all, so what
/// came before it is all that came.
private func receiveAll(on socket: RawTunnelSocket, before last: [UInt8], batch: PacketBatch)
    throws -> [(IPAddress, [UInt8])]
{
    var received: [(IPAddress, [UInt8])] = []
    try waitUntil("the last GRE packet", lastSeen: "\(received.count) packets before it") {
        let count = try socket.receive(into: batch)
        if count == 0 { waitReadable(socket.descriptor, milliseconds: 10) }
        for slot in 0..<count {
            if batch.frame(slot).elementsEqual(last) { return true }
            #expect(!batch.isTruncated(slot))
            received.append((try #require(batch.source(slot)).address, Array(batch.frame(slot))))
        }
        return false
    }
    return received
}

@Suite("RawTunnelSocket: raw IP protocol 47 in namespaces")
struct RawTunnelSocketTests {
    /// Two namespaces over a veth: a batch of GRE packets sent on one raw socket arrives on
    /// the other starting at the GRE header (the IPv4 header skipped, IPv6 never delivered),
    /// with the sender's address; one larger than the link's MTU is refused, not fragmented.
    @Test(arguments: [
        ("10.78.0.1", "10.78.0.2", "24", 600, 1000),
        ("fd00:78::1", "fd00:78::2", "64", 1280, 1400),
    ])
    func batchArrivesAtGREHeaderWithSourceAndDFHolds(
        _ local: String, _ remote: String, _ prefixLength: String, _ mtu: Int, _ big: Int
    ) async throws {
        let localAddress = try #require(IPAddress(local))
        let remoteAddress = try #require(IPAddress(remote))
        try await NamespaceLab.runOnOwnThread(tag: "vggr") { lab in
            let near = try lab.namespace("n")
            let far = try lab.namespace("f")
            let (nearLink, farLink) = try lab.veth("n", in: near, "f", in: far, mtu: mtu)
            try lab.ip(
                "-n", near, "addr", "add", "\(local)/\(prefixLength)", "dev", nearLink, "nodad")
            try lab.ip(
                "-n", far, "addr", "add", "\(remote)/\(prefixLength)", "dev", farLink, "nodad")
            let receiver = try lab.inNamespace(far) {
                Handed(value: try RawTunnelSocket(address: remoteAddress, receiveBuffer: 1 << 20))
            }.value
            #expect(receiver.receiveDrops == 0)
            let sizes = [64, 100, big, 200, 500]
            let last = grePacket(key: 99, length: 10)
            let result = try lab.inNamespace(near) {
                let sender = try RawTunnelSocket(address: localAddress)
                let batch = PacketBatch(capacity: 8)
                for (slot, length) in sizes.enumerated() {
                    grePacket(key: UInt32(slot), length: length).withUnsafeBytes {
                        batch.copyFrame($0, into: slot)
                    }
                    batch.setDestination(UDPEndpoint(address: remoteAddress, port: 0), for: slot)
                }
                let result = try sender.send(batch, count: sizes.count)
                last.withUnsafeBytes { batch.copyFrame($0, into: 0) }
                #expect(try sender.send(batch, count: 1).sent == 1)
                return result
            }
            #expect(result == SendResult(processed: 5, tooBig: 1))
            let received = try receiveAll(
                on: receiver, before: last, batch: PacketBatch(capacity: 8))
            #expect(received.map(\.0) == Array(repeating: localAddress, count: 4))
            #expect(
                received.map(\.1)
                    == [0, 1, 3, 4].map { grePacket(key: UInt32($0), length: sizes[$0]) })
            for (_, bytes) in received {
                let header = try bytes.withUnsafeBytes { try GREHeader.parse($0, at: 0) }
                #expect(header.protocolType == EtherType.transparentEthernetBridging)
            }
        }
    }

    /// A packet of another IP protocol (UDP) to the same address never reaches the GRE
    /// socket.
    @Test func otherProtocolsAreNotReceived() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vggr") { lab in
            let namespace = try lab.namespace("o")
            let count = try lab.inNamespace(namespace) {
                let loopback = IPAddress("127.0.0.1")!
                let gre = try RawTunnelSocket(address: loopback)
                let udp = try UDPTunnelSocket(address: loopback)
                let batch = PacketBatch(capacity: 2)
                grePacket(key: 9, length: 50).withUnsafeBytes { batch.copyFrame($0, into: 0) }
                batch.setDestination(udp.localEndpoint, for: 0)
                #expect(try udp.send(batch, count: 1).sent == 1)
                // A GRE packet after it: once that one is in, the UDP one would be too.
                let raw = PacketBatch(capacity: 1)
                let last = grePacket(key: 7, length: 60)
                last.withUnsafeBytes { raw.copyFrame($0, into: 0) }
                raw.setDestination(UDPEndpoint(address: loopback, port: 0), for: 0)
                #expect(try gre.send(raw, count: 1).sent == 1)
                let received = try receiveAll(
                    on: gre, before: last, batch: PacketBatch(capacity: 4))
                return received.map(\.1)
            }
            #expect(count == [])
        }
    }

    /// VXLAN's slow path: whole UDP datagrams written on a raw UDP socket arrive on the far
    /// side's VXLAN socket from the source port we chose (the kernel accepts them, so the
    /// IPv6 checksum the kernel computed is right; IPv4 goes without one, RFC 7348 §5), and
    /// the raw socket itself never reads a datagram (not even those to it).
    @Test(arguments: [
        ("10.79.0.1", "10.79.0.2", "24"), ("fd00:79::1", "fd00:79::2", "64"),
    ])
    func rawUDPCarriesOurSourcePortAndReadsNothing(
        _ local: String, _ remote: String, _ prefixLength: String
    ) async throws {
        let localAddress = try #require(IPAddress(local))
        let remoteAddress = try #require(IPAddress(remote))
        try await NamespaceLab.runOnOwnThread(tag: "vgru") { lab in
            let near = try lab.namespace("n")
            let far = try lab.namespace("f")
            let (nearLink, farLink) = try lab.veth("n", in: near, "f", in: far)
            try lab.ip(
                "-n", near, "addr", "add", "\(local)/\(prefixLength)", "dev", nearLink, "nodad")
            try lab.ip(
                "-n", far, "addr", "add", "\(remote)/\(prefixLength)", "dev", farLink, "nodad")
            let receiver = try lab.inNamespace(far) {
                Handed(value: try UDPTunnelSocket(address: remoteAddress))
            }.value
            let ports: [UInt16] = [49_152, 51_000, 65_535]
            let payload = [UInt8](repeating: 0xA5, count: 100)
            let unread = try lab.inNamespace(near) { () -> Int in
                // Bound to the wildcard, as vtepd binds it.
                let wildcard: IPAddress =
                    switch localAddress {
                    case .v4: .v4(IPv4Address(rawValue: 0))
                    case .v6: .v6(IPv6Address(high: 0, low: 0))
                    }
                let sender = try RawTunnelSocket(address: wildcard, carrying: .udp)
                let batch = PacketBatch(capacity: 4)
                for (slot, port) in ports.enumerated() {
                    var datagram = [UInt8](repeating: 0, count: 8)
                    datagram.withUnsafeMutableBytes {
                        _ = try! UDPHeader(
                            sourcePort: port, destinationPort: UDPTunnelSocket.vxlanPort,
                            length: UInt16(8 + payload.count)
                        ).store(into: $0, at: 0)
                    }
                    (datagram + payload).withUnsafeBytes { batch.copyFrame($0, into: slot) }
                    batch.setDestination(UDPEndpoint(address: remoteAddress, port: 0), for: slot)
                }
                #expect(try sender.send(batch, count: ports.count).sent == ports.count)
                // A datagram to the sender's own host: a raw UDP socket without the filter
                // would read a copy of it.
                let local = try UDPTunnelSocket(address: localAddress)
                let probe = PacketBatch(capacity: 1)
                payload.withUnsafeBytes { probe.copyFrame($0, into: 0) }
                probe.setDestination(local.localEndpoint, for: 0)
                #expect(try local.send(probe, count: 1).sent == 1)
                waitReadable(local.descriptor, milliseconds: 1000)
                return try sender.receive(into: PacketBatch(capacity: 4))
            }
            #expect(unread == 0)
            var sources: [UDPEndpoint] = []
            let batch = PacketBatch(capacity: 4)
            try waitUntil("three datagrams", lastSeen: "\(sources)") {
                let count = try receiver.receive(into: batch)
                if count == 0 { waitReadable(receiver.descriptor, milliseconds: 10) }
                for slot in 0..<count {
                    #expect(Array(batch.frame(slot)) == payload)
                    sources.append(try #require(batch.source(slot)))
                }
                return sources.count >= ports.count
            }
            #expect(sources == ports.map { UDPEndpoint(address: localAddress, port: $0) })
        }
    }

    @Test func bindErrorsNameTheAddress() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vggr") { lab in
            let namespace = try lab.namespace("b")
            let message = try lab.inNamespace(namespace) { () -> String in
                do {
                    _ = try RawTunnelSocket(address: IPAddress("10.123.0.1")!)
                    return "no error"
                } catch {
                    return "\(error)"
                }
            }
            #expect(message.contains("10.123.0.1"))
            #expect(message.contains("not configured"), "\(message)")
        }
    }
}
