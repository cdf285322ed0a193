import Datapath
import Foundation
import NamespaceLab
import Packet
import TestSupport
import Testing

/// Frames of these tests carry a local-experimental EtherType and a fixed source MAC, so
/// anything else on the wire (there should be nothing, IPv6 is off) is told apart.
private let testSource: [UInt8] = [0x02, 0x00, 0x5E, 0x10, 0x00, 0x01]
private let testDestination: [UInt8] = [0x02, 0x00, 0x5E, 0x10, 0x00, 0x02]
private let localExperimental: UInt16 = 0x88B5

/// Frame number `index`: distinct length and payload for each index.
private func testFrame(_ index: Int, tags: [VLANTag] = []) -> [UInt8] {
    var frame = testDestination + testSource
    for tag in tags {
        frame += [UInt8(tag.tpid >> 8), UInt8(tag.tpid & 0xFF), UInt8(tag.tci >> 8)]
        frame.append(UInt8(tag.tci & 0xFF))
    }
    frame += [UInt8(localExperimental >> 8), UInt8(localExperimental & 0xFF)]
    frame += [UInt8(index >> 8), UInt8(index & 0xFF)]
    let payload = 44 + (index % 50) * 23
    for byte in 0..<payload { frame.append(UInt8(truncatingIfNeeded: byte &* 7 &+ index)) }
    return frame
}

private func isTestFrame(_ frame: UnsafeRawBufferPointer) -> Bool {
    frame.count >= 14 && Array(frame[6..<12]) == testSource
}

/// Sends `frames` through `port` in batches of the batch's capacity; all must go.
private func sendAll(_ frames: [[UInt8]], through port: AccessPort, batch: PacketBatch) throws {
    var next = 0
    while next < frames.count {
        let count = min(batch.capacity, frames.count - next)
        for slot in 0..<count {
            frames[next + slot].withUnsafeBytes { batch.copyFrame($0, into: slot) }
        }
        let result = try port.send(batch, count: count)
        #expect(result == SendResult(processed: count, tooBig: 0))
        next += count
    }
}

/// What one port saw: our test frames in order, how many batches they came in, and
/// the VLAN tags `receive` restored.
private struct Received: Sendable {
    var frames: [[UInt8]] = []
    var restored: [VLANTag?] = []
    var batches = 0
    var largestBatch = 0
}

/// A broadcast frame, not a test frame, sent after the frames under test: a veth keeps order,
/// so once a port has it, it has every frame it was going to get before it, duplicates and
/// strays included.
private let probe: [UInt8] =
    [UInt8](repeating: 0xFF, count: 6) + [0x02, 0x00, 0x5E, 0x10, 0x00, 0xFF, 0x88, 0xB5]
    + [UInt8](repeating: 0xEE, count: 46)

/// Receives until `probe` arrives; returns the test frames before it.
private func receive(on port: AccessPort, batch: PacketBatch) throws -> Received {
    var received = Received()
    try waitUntil("the probe frame", lastSeen: "\(received.frames.count) test frames before it") {
        let count = try port.receive(into: batch)
        if count == 0 {
            waitReadable(port.descriptor, milliseconds: 10)
            return false
        }
        received.batches += 1
        received.largestBatch = max(received.largestBatch, count)
        for slot in 0..<count {
            if batch.frame(slot).elementsEqual(probe) { return true }
            guard isTestFrame(batch.frame(slot)) else { continue }
            #expect(!batch.isTruncated(slot))
            received.frames.append(Array(batch.frame(slot)))
            received.restored.append(batch.restoredVLAN(slot))
        }
        return false
    }
    return received
}

@Suite("AccessPort: AF_PACKET on a veth pair in a namespace")
struct AccessPortTests {
    @Test func receivesExactlyWhatThePeerSentInBatchesAndNotItsOwn() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("a", ipv6: false)
            let (left, right) = try lab.veth("l", in: namespace, "r", in: namespace)
            let frames = (0..<100).map { testFrame($0) }
            let (atRight, atLeft, atBystander) = try lab.inNamespace(namespace) {
                let sender = try AccessPort(interface: left)
                // A second port on the sending interface (another worker, or the port
                // reopened): AF_PACKET never loops a frame back to the socket that sent it,
                // but every other socket on the interface sees it as outgoing traffic
                // unless PACKET_IGNORE_OUTGOING is set.
                let bystander = try AccessPort(interface: left)
                let receiver = try AccessPort(interface: right)
                let batch = PacketBatch(capacity: 64)
                try sendAll(frames + [probe], through: sender, batch: batch)
                let atRight = try receive(on: receiver, batch: batch)
                // A probe back from the right: the left ports see it, so they would have seen
                // the test frames, sent before, had they taken them.
                try sendAll([probe], through: receiver, batch: batch)
                let atLeft = try receive(on: sender, batch: batch)
                let atBystander = try receive(on: bystander, batch: batch)
                return (atRight, atLeft, atBystander)
            }
            #expect(atRight.frames.count == 100)
            #expect(atRight.frames == frames)
            #expect(atRight.batches < 100, "recvmmsg returned more than one frame per call")
            #expect(atRight.restored.allSatisfy { $0 == nil })
            #expect(atLeft.frames.isEmpty)
            #expect(atBystander.frames.isEmpty)
            print(
                "100 frames arrived in \(atRight.batches) recvmmsg batches, largest",
                atRight.largestBatch)
        }
    }

    @Test(arguments: [
        [VLANTag(pcp: 3, vid: 100)],
        [VLANTag(vid: 0)],
        [VLANTag(tpid: EtherType.serviceVLAN, vid: 10), VLANTag(pcp: 5, dei: true, vid: 20)],
    ])
    func vlanTagsReachTheForwardingCoreAsOnTheWire(_ tags: [VLANTag]) async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("v", ipv6: false)
            let (left, right) = try lab.veth("l", in: namespace, "r", in: namespace)
            let frames = (0..<3).map { testFrame($0, tags: tags) }
            let received = try lab.inNamespace(namespace) {
                let sender = try AccessPort(interface: left)
                let receiver = try AccessPort(interface: right)
                let batch = PacketBatch(capacity: 8, headroom: 64)
                try sendAll(frames + [probe], through: sender, batch: batch)
                return try receive(on: receiver, batch: batch)
            }
            #expect(received.frames == frames)
            // veth's receive path (like any NIC's) moves the outer tag into metadata;
            // receive must have put exactly that tag back. Should a kernel ever leave it in
            // the bytes, restoredVLAN is nil and the frame still matches.
            for restored in received.restored {
                if let restored { #expect(restored == tags[0]) }
            }
            print(
                "VLAN \(tags.map(\.tci)): kernel stripped outer tag:",
                received.restored.map { $0 != nil })
        }
    }

    @Test func openingAMissingInterfaceNamesIt() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("m", ipv6: false)
            let missing = lab.prefix + "nope"
            let failure = try lab.inNamespace(namespace) { () -> SystemError? in
                do {
                    _ = try AccessPort(interface: missing)
                    return nil
                } catch let error as SystemError {
                    return error
                }
            }
            let error = try #require(failure)
            #expect(error.errno == ENODEV)
            #expect(error.description == "interface \(missing) does not exist")
            #expect(error.subject == .interface(missing))
        }
    }
}
