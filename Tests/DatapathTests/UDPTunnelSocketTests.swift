import Datapath
import Foundation
import NamespaceLab
import Packet
import TestSupport
import Testing

private func datagram(_ index: Int, length: Int = 64) -> [UInt8] {
    (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ index) }
}

/// Sent after the datagrams under test, from the same socket: it arrives after any of them
/// that arrives at all, so what came before it is all that came.
private let probe: [UInt8] = [0xFE, 0xED]

/// Receives until `probe` arrives; returns the datagrams before it.
private func receiveAll(on socket: UDPTunnelSocket, batch: PacketBatch) throws
    -> [(UDPEndpoint, [UInt8])]
{
    var received: [(UDPEndpoint, [UInt8])] = []
    try waitUntil("the probe datagram", lastSeen: "\(received.count) datagrams before it") {
        let count = try socket.receive(into: batch)
        if count == 0 { waitReadable(socket.descriptor, milliseconds: 10) }
        for slot in 0..<count {
            if batch.frame(slot).elementsEqual(probe) { return true }
            #expect(!batch.isTruncated(slot))
            received.append((try #require(batch.source(slot)), Array(batch.frame(slot))))
        }
        return false
    }
    return received
}

/// Sends `probe` from `socket` to each of `destinations`.
private func sendProbe(from socket: UDPTunnelSocket, to destinations: [UDPEndpoint]) throws {
    let batch = PacketBatch(capacity: destinations.count)
    for (slot, destination) in destinations.enumerated() {
        probe.withUnsafeBytes { batch.copyFrame($0, into: slot) }
        batch.setDestination(destination, for: slot)
    }
    #expect(try socket.send(batch, count: destinations.count).sent == destinations.count)
}

@Suite("UDPTunnelSocket: batched UDP in a namespace")
struct UDPTunnelSocketTests {
    @Test(arguments: ["127.0.0.1", "::1"])
    func batchArrivesWithSourcesAtPerSlotDestinations(_ loopback: String) async throws {
        let address = try #require(IPAddress(loopback))
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("u")
            let results = try lab.inNamespace(namespace) {
                let sender = try UDPTunnelSocket(address: address, port: 40000)
                let first = try UDPTunnelSocket(address: address)
                let second = try UDPTunnelSocket(address: address, port: 0)
                #expect(first.localEndpoint == UDPEndpoint(address: address, port: 4789))
                #expect(second.localEndpoint.port != 0)
                let batch = PacketBatch(capacity: 32)
                for slot in 0..<20 {
                    datagram(slot).withUnsafeBytes { batch.copyFrame($0, into: slot) }
                    let target = slot.isMultiple(of: 2) ? first : second
                    batch.setDestination(target.localEndpoint, for: slot)
                }
                #expect(try sender.send(batch, count: 20) == SendResult(processed: 20))
                try sendProbe(from: sender, to: [first.localEndpoint, second.localEndpoint])
                let atFirst = try receiveAll(on: first, batch: batch)
                let atSecond = try receiveAll(on: second, batch: batch)
                return Handed(value: (sender.localEndpoint, atFirst, atSecond))
            }
            let (source, atFirst, atSecond) = results.value
            #expect(atFirst.map(\.0) == Array(repeating: source, count: 10))
            #expect(atSecond.map(\.0) == Array(repeating: source, count: 10))
            #expect(atFirst.map(\.1) == stride(from: 0, to: 20, by: 2).map { datagram($0) })
            #expect(atSecond.map(\.1) == stride(from: 1, to: 20, by: 2).map { datagram($0) })
        }
    }

    /// RFC 7348 §4.3: never fragment. A datagram bigger than the link's MTU is refused
    /// (counted as too big) and the others in the batch still go.
    @Test(arguments: [
        ("10.77.0.1", "10.77.0.2", "24", 600, 1000),
        ("fd00:77::1", "fd00:77::2", "64", 1280, 1400),
    ])
    func oversizeDatagramIsRefusedNotFragmented(
        _ local: String, _ remote: String, _ prefixLength: String, _ mtu: Int, _ big: Int
    ) async throws {
        let localAddress = try #require(IPAddress(local))
        let remoteAddress = try #require(IPAddress(remote))
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let near = try lab.namespace("n")
            let far = try lab.namespace("f")
            let (nearLink, farLink) = try lab.veth("n", in: near, "f", in: far, mtu: mtu)
            try lab.ip(
                "-n", near, "addr", "add", "\(local)/\(prefixLength)", "dev", nearLink, "nodad")
            try lab.ip(
                "-n", far, "addr", "add", "\(remote)/\(prefixLength)", "dev", farLink, "nodad")
            let receiver = try lab.inNamespace(far) {
                Handed(value: try UDPTunnelSocket(address: remoteAddress))
            }.value
            let destination = receiver.localEndpoint
            let result = try lab.inNamespace(near) {
                let sender = try UDPTunnelSocket(address: localAddress)
                let batch = PacketBatch(capacity: 4)
                for (slot, length) in [100, big, 200].enumerated() {
                    datagram(slot, length: length).withUnsafeBytes {
                        batch.copyFrame($0, into: slot)
                    }
                    batch.setDestination(destination, for: slot)
                }
                let result = try sender.send(batch, count: 3)
                try sendProbe(from: sender, to: [destination])
                return result
            }
            #expect(result == SendResult(processed: 3, tooBig: 1))
            #expect(result.sent == 2)
            let received = try receiveAll(on: receiver, batch: PacketBatch(capacity: 8))
            #expect(received.map(\.1) == [datagram(0, length: 100), datagram(2, length: 200)])
        }
    }

    /// A datagram longer than the slot keeps its start and is marked, never silently cut.
    @Test func oversizeDatagramIsMarkedTruncated() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("t")
            let (truncated, length) = try lab.inNamespace(namespace) {
                let address = IPAddress("127.0.0.1")!
                let receiver = try UDPTunnelSocket(address: address)
                let sender = try UDPTunnelSocket(address: address, port: 0)
                let outgoing = PacketBatch(capacity: 1)
                datagram(1, length: 500).withUnsafeBytes { outgoing.copyFrame($0, into: 0) }
                outgoing.setDestination(receiver.localEndpoint, for: 0)
                #expect(try sender.send(outgoing, count: 1).sent == 1)
                let small = PacketBatch(capacity: 1, bufferSize: 256, headroom: 64)
                waitReadable(receiver.descriptor, milliseconds: 1000)
                #expect(try receiver.receive(into: small) == 1)
                return (small.isTruncated(0), small.frameLength(0))
            }
            #expect(truncated)
            #expect(length == 192)
        }
    }

    @Test func bindErrorsNameTheAddress() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("b")
            let errors = try lab.inNamespace(namespace) { () -> [Handed<SystemError?>] in
                var errors: [Handed<SystemError?>] = []
                do {
                    _ = try UDPTunnelSocket(address: IPAddress("10.123.0.1")!)
                    errors.append(Handed(value: nil))
                } catch let error as SystemError {
                    errors.append(Handed(value: error))
                }
                let first = try UDPTunnelSocket(address: IPAddress("127.0.0.1")!)
                do {
                    _ = try UDPTunnelSocket(address: IPAddress("127.0.0.1")!)
                    errors.append(Handed(value: nil))
                } catch let error as SystemError {
                    errors.append(Handed(value: error))
                }
                // Nothing queued: a receive is "would block", reported as 0.
                #expect(try first.receive(into: PacketBatch(capacity: 2)) == 0)
                return errors
            }
            let notConfigured = try #require(errors[0].value)
            #expect(notConfigured.errno == EADDRNOTAVAIL)
            #expect(
                notConfigured.description
                    == "address 10.123.0.1:4789 is not configured on any interface")
            let inUse = try #require(errors[1].value)
            #expect(inUse.errno == EADDRINUSE)
            #expect(
                inUse.description == "address 127.0.0.1:4789 is already in use by another socket")
        }
    }
}

@Suite("System: the one syscall door")
struct SystemCallTests {
    @Test func retriesEINTRAndReportsWouldBlock() throws {
        var attempts = 0
        let retried = try System.call("test") { () -> Int32 in
            attempts += 1
            if attempts < 3 {
                errno = EINTR
                return -1
            }
            return 7
        }
        #expect(retried == .processed(7))
        #expect(attempts == 3)
        let blocked = try System.call("test") { () -> Int32 in
            errno = EWOULDBLOCK
            return -1
        }
        #expect(blocked == .wouldBlock)
    }

    @Test func otherErrnoBecomesATypedErrorNamingTheCall() {
        #expect {
            _ = try System.call("bind", subject: .other("the test")) { () -> Int32 in
                errno = EBADF
                return -1
            }
        } throws: { error in
            guard let error = error as? SystemError else { return false }
            return error.errno == EBADF && "\(error.call)" == "bind"
                && error.description == "bind for the test failed: Bad file descriptor (errno 9)"
        }
    }
}
