import Datapath
import Foundation
import NamespaceLab
import Packet
import TestSupport
import Testing

private let underlayMAC = MACAddress(0x02, 0x00, 0x5E, 0x30, 0x00, 0x01)
private let peerMAC = MACAddress(0x02, 0x00, 0x5E, 0x30, 0x00, 0x02)

/// Inner frame number `index`: an Ethernet frame of a distinct length and payload.
private func innerFrame(_ index: Int) -> [UInt8] {
    var frame: [UInt8] = [0x02, 0, 0x5E, 0x31, 0, 2, 0x02, 0, 0x5E, 0x31, 0, 1, 0x88, 0xB5]
    frame += [UInt8(index >> 8), UInt8(index & 0xFF)]
    for byte in 0..<(46 + index * 17) {
        frame.append(UInt8(truncatingIfNeeded: byte &* 5 &+ index))
    }
    return frame
}

/// A last frame from `source` to `destination`: a veth keeps order, so once it has arrived,
/// every frame sent before it has too, and what came before it is all that came.
private func probe(from source: MACAddress, to destination: MACAddress) -> [UInt8] {
    var frame = [UInt8](repeating: 0, count: 60)
    frame.withUnsafeMutableBytes {
        destination.store(into: $0, at: 0)
        source.store(into: $0, at: 6)
    }
    frame[12] = 0x88
    frame[13] = 0xB5
    frame[14] = 0xFE
    frame[15] = 0xED
    return frame
}

/// Sends `frame` alone on `port`.
private func send(_ frame: [UInt8], on port: UnderlayPort) throws {
    let batch = PacketBatch(capacity: 1)
    frame.withUnsafeBytes { batch.copyFrame($0, into: 0) }
    #expect(try port.send(batch, count: 1) == SendResult(processed: 1))
}

/// Receives on `port` until `last` arrives; returns the frames whose source MAC is `source`
/// that came before it.
private func frames(from source: MACAddress, on port: AccessPort, before last: [UInt8]) throws
    -> [[UInt8]]
{
    let batch = PacketBatch(capacity: 32)
    var found: [[UInt8]] = []
    try waitUntil("the last frame", lastSeen: "\(found.count) frames before it") {
        let count = try port.receive(into: batch)
        if count == 0 { waitReadable(port.descriptor, milliseconds: 10) }
        for slot in 0..<count {
            let frame = batch.frame(slot)
            if frame.elementsEqual(last) { return true }
            if frame.count >= 14 && MACAddress(loadingFrom: frame, at: 6) == source {
                found.append(Array(frame))
            }
        }
        return false
    }
    return found
}

/// True when a read on `descriptor` finds nothing queued (EAGAIN), as for a socket that
/// never receives.
private func nothingQueued(_ descriptor: Int32) -> Bool {
    var byte: UInt8 = 0
    return recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT)) == -1 && errno == EAGAIN
}

@Suite("UnderlayPort: AF_PACKET transmit of whole frames")
struct UnderlayPortTests {
    /// VXLAN frames built with `OuterHeaderTemplate` (outer Ethernet to the peer's MAC,
    /// from the port's own) leave in one sendmmsg, arrive on the peer byte for byte, and are
    /// accepted by the peer's kernel as UDP to port 4789. Frames the peer sends back are
    /// never read on the underlay socket.
    @Test func vxlanFramesArriveByteExactAndNothingIsEverReceived() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let near = try lab.namespace("a", ipv6: false)
            let far = try lab.namespace("b", ipv6: false)
            let (underlayLink, peerLink) = try lab.veth("u", in: near, "p", in: far)
            try lab.ip("-n", near, "link", "set", underlayLink, "address", "\(underlayMAC)")
            try lab.ip("-n", far, "link", "set", peerLink, "address", "\(peerMAC)")
            try lab.ip("-n", far, "addr", "add", "10.203.0.2/24", "dev", peerLink)
            let capture = try lab.inNamespace(far) {
                Handed(value: try AccessPort(interface: peerLink))
            }.value
            let vtep = try lab.inNamespace(far) {
                Handed(value: try UDPTunnelSocket(address: IPAddress("10.203.0.2")!))
            }.value
            let port = try lab.inNamespace(near) {
                Handed(value: try UnderlayPort(interface: underlayLink))
            }.value
            #expect(try port.hardwareAddress == underlayMAC)
            // PACKET_QDISC_BYPASS (20) at SOL_PACKET (263), linux/if_packet.h.
            var bypass: Int32 = 0
            var length = socklen_t(4)
            #expect(getsockopt(port.descriptor, 263, 20, &bypass, &length) == 0 && bypass == 1)

            let template = try OuterHeaderTemplate(
                encapsulation: .vxlan, vni: 5000,
                network: .ipv4(
                    source: IPv4Address(10, 203, 0, 1), destination: IPv4Address(10, 203, 0, 2)),
                ethernet: .init(destination: peerMAC, source: try port.hardwareAddress))
            let batch = PacketBatch(capacity: 32)
            for slot in 0..<20 {
                innerFrame(slot).withUnsafeBytes { batch.copyFrame($0, into: slot) }
                let start = batch.frameStart(slot) - template.headerLength
                _ = try template.stamp(
                    into: batch.buffer(slot), at: start, innerLength: batch.frameLength(slot),
                    sourcePort: UInt16(49152 + slot))
                batch.setFrame(
                    slot, start: start, length: batch.frameLength(slot) + template.headerLength)
            }
            let sentFrames = (0..<20).map { Array(batch.frame($0)) }
            #expect(try port.send(batch, count: 20) == SendResult(processed: 20))
            let last = probe(from: underlayMAC, to: peerMAC)
            try send(last, on: port)

            #expect(try frames(from: underlayMAC, on: capture, before: last) == sentFrames)
            // The peer's kernel took them as valid IPv4/UDP (checksums, lengths) for 4789.
            let datagrams = PacketBatch(capacity: 32)
            var payloads: [[UInt8]] = []
            try waitUntil("20 datagrams on port 4789", lastSeen: "\(payloads.count) received") {
                let count = try vtep.receive(into: datagrams)
                if count == 0 { waitReadable(vtep.descriptor, milliseconds: 10) }
                for slot in 0..<count { payloads.append(Array(datagrams.frame(slot))) }
                return payloads.count >= 20
            }
            #expect(
                payloads == (0..<20).map { [0x08, 0, 0, 0, 0x00, 0x13, 0x88, 0] + innerFrame($0) })

            // Traffic toward the underlay interface: broadcast and to its own MAC. A socket
            // that does receive, on the same interface, sees it: once that one has the last
            // frame, the underlay socket has been offered all of them.
            let witness = try lab.inNamespace(near) {
                Handed(value: try AccessPort(interface: underlayLink))
            }.value
            let peerPort = capture
            for slot in 0..<8 {
                var frame = innerFrame(slot)
                let destination = slot.isMultiple(of: 2) ? MACAddress.broadcast : underlayMAC
                frame.withUnsafeMutableBytes { destination.store(into: $0, at: 0) }
                frame.withUnsafeBytes { batch.copyFrame($0, into: slot) }
            }
            #expect(try peerPort.send(batch, count: 8) == SendResult(processed: 8))
            let inner = MACAddress(0x02, 0, 0x5E, 0x31, 0, 1)
            #expect(try frames(from: inner, on: witness, before: Array(batch.frame(7))).count == 7)
            #expect(nothingQueued(port.descriptor), "the underlay socket received a frame")
            var entry = pollfd(fd: port.descriptor, events: Int16(POLLIN), revents: 0)
            #expect(poll(&entry, 1, 0) == 0)
        }
    }

    /// The interface MTU is readable (and follows changes); a frame longer than MTU plus
    /// its Ethernet header is refused and counted, the rest of the batch still goes.
    @Test func mtuIsReadAndOversizeFramesAreCountedNotSent() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("m", ipv6: false)
            let (underlayLink, peerLink) = try lab.veth(
                "u", in: namespace, "p", in: namespace, mtu: 1400)
            try lab.ip("-n", namespace, "link", "set", underlayLink, "address", "\(underlayMAC)")
            let (port, capture) = try lab.inNamespace(namespace) {
                Handed(
                    value: (
                        try UnderlayPort(interface: underlayLink),
                        try AccessPort(interface: peerLink)
                    ))
            }.value
            #expect(try port.mtu == 1400)
            // Ethernet header (14) + 1400 bytes of IP fits; one byte more does not.
            let lengths = [100, 14 + 1400, 14 + 1400 + 1, 200]
            let batch = PacketBatch(capacity: 8)
            let built = lengths.enumerated().map { index, length in
                var frame = Array(innerFrame(index + 100).prefix(14))
                frame.withUnsafeMutableBytes {
                    peerMAC.store(into: $0, at: 0)
                    underlayMAC.store(into: $0, at: 6)
                }
                while frame.count < length { frame.append(UInt8(truncatingIfNeeded: frame.count)) }
                return frame
            }
            for (slot, frame) in built.enumerated() {
                frame.withUnsafeBytes { batch.copyFrame($0, into: slot) }
            }
            #expect(try port.send(batch, count: 4) == SendResult(processed: 4, tooBig: 1))
            let last = probe(from: underlayMAC, to: peerMAC)
            try send(last, on: port)
            #expect(
                try frames(from: underlayMAC, on: capture, before: last)
                    == [built[0], built[1], built[3]])

            try lab.ip("-n", namespace, "link", "set", underlayLink, "mtu", "1300")
            #expect(try port.mtu == 1300)
        }
    }

    @Test func missingAndNonEthernetInterfacesAreRefusedByName() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("e", ipv6: false)
            let missing = lab.prefix + "nope"
            let errors = try lab.inNamespace(namespace) { () -> [SystemError?] in
                [missing, "lo"].map { (name: String) -> SystemError? in
                    do {
                        _ = try UnderlayPort(interface: name)
                        return nil
                    } catch let error as SystemError {
                        return error
                    } catch {
                        return nil
                    }
                }
            }
            #expect(errors[0]?.description == "interface \(missing) does not exist")
            // Loopback has no Ethernet address to send from: refused, not opened.
            #expect(errors[1]?.errno == EAFNOSUPPORT)
            #expect(errors[1]?.subject == .interface("lo"))
        }
    }
}
