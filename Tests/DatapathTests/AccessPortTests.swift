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
    /// Each test runs with recvmmsg (0) and with a receive ring large enough for what it sends.
    @Test(arguments: [0, 128])
    func receivesExactlyWhatThePeerSentInBatchesAndNotItsOwn(ringFrames: Int) async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("a", ipv6: false)
            let (left, right) = try lab.veth("l", in: namespace, "r", in: namespace)
            let frames = (0..<100).map { testFrame($0) }
            let (atRight, atLeft, atBystander) = try lab.inNamespace(namespace) {
                let sender = try AccessPort(interface: left, ringFrames: ringFrames)
                // A second port on the sending interface (another worker, or the port
                // reopened): AF_PACKET never loops a frame back to the socket that sent it,
                // but every other socket on the interface sees it as outgoing traffic
                // unless PACKET_IGNORE_OUTGOING is set.
                let bystander = try AccessPort(interface: left, ringFrames: ringFrames)
                let receiver = try AccessPort(interface: right, ringFrames: ringFrames)
                #expect(receiver.hasReceiveRing == (ringFrames > 0))
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

    @Test(
        arguments: [
            [VLANTag(pcp: 3, vid: 100)],
            [VLANTag(vid: 0)],
            [VLANTag(tpid: EtherType.serviceVLAN, vid: 10), VLANTag(pcp: 5, dei: true, vid: 20)],
        ], [0, 64])
    func vlanTagsReachTheForwardingCoreAsOnTheWire(_ tags: [VLANTag], ringFrames: Int)
        async throws
    {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("v", ipv6: false)
            let (left, right) = try lab.veth("l", in: namespace, "r", in: namespace)
            let frames = (0..<3).map { testFrame($0, tags: tags) }
            let received = try lab.inNamespace(namespace) {
                let sender = try AccessPort(interface: left)
                let receiver = try AccessPort(interface: right, ringFrames: ringFrames)
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

    /// The ring wraps round many times, and a frame too long for a ring frame (here, of a
    /// 4000-byte MTU) comes whole, through the socket's queue, in its place among the others;
    /// with a vnet header as the data plane opens its ports.
    /// LRO off at start (`disableLRO`, as the kernel's bridge does): on a device without LRO
    /// it reports nothing turned off and changes nothing; a missing device is an error that
    /// names it. The other half, a device whose LRO is on being turned off (and vtepd's
    /// notice saying so), cannot run on this machine: veth, TAP and the appliance VM's
    /// virtio-net (Linux 6.1 reports its guest offloads as rx-gro-hw) all have LRO fixed off,
    /// and this kernel has no netdevsim.
    @Test func lroIsLeftAloneWhereTheDeviceHasNone() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vglr") { lab in
            let namespace = try lab.namespace("l", ipv6: false)
            let (left, _) = try lab.veth("l", in: namespace, "r", in: namespace)
            let features = try lab.ip("netns", "exec", namespace, "ethtool", "-k", left)
            #expect(features.contains("large-receive-offload: off [fixed]"), "\(features)")
            let turnedOff = try lab.inNamespace(namespace) {
                Handed(value: try AccessPort.disableLRO(on: left))
            }.value
            #expect(!turnedOff)
            #expect(
                try lab.ip("netns", "exec", namespace, "ethtool", "-k", left) == features)
            let missing = try lab.inNamespace(namespace) { () -> Handed<String> in
                do {
                    _ = try AccessPort.disableLRO(on: "vglr-none")
                    return Handed(value: "no error")
                } catch { return Handed(value: "\(error)") }
            }.value
            #expect(missing.contains("vglr-none"), "\(missing)")
        }
    }

    @Test func theRingWrapsAndLongFramesComeWholeInOrder() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("w", ipv6: false)
            let (left, right) = try lab.veth(
                "l", in: namespace, "r", in: namespace, mtu: 4000)
            /// Frame `index`, every fifth one longer than a ring frame holds.
            func frame(_ index: Int) -> [UInt8] {
                var bytes = testFrame(index)
                if index % 5 == 0 {
                    bytes += (0..<(2500 + index)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
                }
                return bytes
            }
            let rounds = (0..<6).map { round in (0..<40).map { frame(round * 40 + $0) } }
            let received = try lab.inNamespace(namespace) {
                let sender = try AccessPort(interface: left, vnetHeader: true)
                let receiver = try AccessPort(interface: right, vnetHeader: true, ringFrames: 64)
                #expect(receiver.hasReceiveRing)
                let batch = PacketBatch(capacity: 16, bufferSize: 8192)
                // Rounds of 40 into a ring of 64: each round is taken before the next is sent.
                return try rounds.map { frames in
                    try sendAll(frames + [probe], through: sender, batch: batch)
                    return try receive(on: receiver, batch: batch)
                }
            }
            for (round, got) in received.enumerated() {
                #expect(got.frames == rounds[round], "round \(round)")
            }
        }
    }

    /// Frames that find every ring frame still the worker's are dropped by the kernel and
    /// counted in the socket's packet statistics, not its sk_drops: `receiveDrops` counts
    /// them, exactly, and keeps them after they were read once.
    @Test func framesAFullRingDropsAreCounted() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("f", ipv6: false)
            let (left, right) = try lab.veth("l", in: namespace, "r", in: namespace)
            let frames = (0..<200).map { testFrame($0) }
            let (taken, drops, again) = try lab.inNamespace(namespace) {
                let sender = try AccessPort(interface: left)
                // 64 ring frames (two blocks); nothing is taken while the 200 arrive.
                let receiver = try AccessPort(interface: right, ringFrames: 64)
                #expect(receiver.receiveDrops == 0)
                let batch = PacketBatch(capacity: 64)
                try sendAll(frames, through: sender, batch: batch)
                let drops = receiver.receiveDrops
                var taken = 0
                while case let n = try receiver.receive(into: batch), n > 0 { taken += n }
                return (taken, drops, receiver.receiveDrops)
            }
            #expect(taken == 64)
            #expect(drops == 136)
            #expect(again == 136)
        }
    }

    /// A TCP transfer between two namespaces over a veth with its default offloads: the port,
    /// a tap on the receiving end, sees the sender's TSO super-frames whole, with their vnet
    /// header, and never one cut short (one the full queue could not take is counted lost).
    @Test(arguments: [0, 256])
    func superFramesArriveWholeWithTheirOffload(ringFrames: Int) async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let (a, b) = (
                try lab.namespace("ta", ipv6: false), try lab.namespace("tb", ipv6: false)
            )
            let (left, right) = try lab.veth("l", in: a, "r", in: b)
            try lab.ip("-n", a, "addr", "add", "10.9.0.1/24", "dev", left)
            try lab.ip("-n", b, "addr", "add", "10.9.0.2/24", "dev", right)
            let seen = try lab.inNamespace(b) { () -> (superFrames: Int, truncated: Int) in
                let port = try AccessPort(
                    interface: right, vnetHeader: true, ringFrames: ringFrames)
                let batch = PacketBatch(capacity: 64, bufferSize: 65_536 + 256)
                let server = Process()
                server.executableURL = URL(fileURLWithPath: NamespaceLab.ipCommand!)
                server.arguments = [
                    "netns", "exec", b, "python3", "-c",
                    "import socket\ns=socket.create_server(('10.9.0.2',5301))\nc,_=s.accept()\n"
                        + "while c.recv(65536): pass",
                ]
                try server.run()
                defer { server.terminate() }
                let client = Process()
                client.executableURL = URL(fileURLWithPath: NamespaceLab.ipCommand!)
                client.arguments = [
                    "netns", "exec", a, "python3", "-c",
                    "import socket,time\nfor _ in range(100):\n"
                        + "  try: c=socket.create_connection(('10.9.0.2',5301)); break\n"
                        + "  except OSError: time.sleep(0.05)\n"
                        + "c.sendall(bytes(4<<20)); c.close()",
                ]
                try client.run()
                var superFrames = 0
                var truncated = 0
                var quiet = 0
                while client.isRunning || quiet < 20 {
                    let count = try port.receive(into: batch)
                    if count == 0 {
                        if !client.isRunning { quiet += 1 }
                        waitReadable(port.descriptor, milliseconds: 10)
                        continue
                    }
                    for slot in 0..<count {
                        if batch.isTruncated(slot) { truncated += 1 }
                        if batch.offload(slot).gsoType != VirtioNetHeader.GSO.none
                            && batch.frameLength(slot) > 1514
                        {
                            superFrames += 1
                        }
                    }
                }
                #expect(client.terminationStatus == 0, "the TCP client failed")
                // On a loaded machine the queue can fill: those frames are counted, not cut.
                print("ring frames \(ringFrames): \(port.receiveDrops) frames lost to a full queue")
                return (superFrames, truncated)
            }
            #expect(seen.superFrames > 0)
            #expect(seen.truncated == 0)
            print("ring frames \(ringFrames): \(seen.superFrames) super-frames seen, none cut")
        }
    }

    /// The transmit ring wraps round many times; frames longer than a ring frame holds (of a
    /// 4000-byte MTU) go through the socket in their place among the ring's, and frames
    /// tagged or not arrive as sent; with a vnet header, as the data plane opens its ports.
    @Test(arguments: [0, 64])
    func theTransmitRingWrapsAndKeepsOrderWithLongFrames(receiveRing: Int) async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("x", ipv6: false)
            let (left, right) = try lab.veth(
                "l", in: namespace, "r", in: namespace, mtu: 4000)
            /// Frame `index`: every fifth one longer than a ring frame holds, every third
            /// one tagged.
            func frame(_ index: Int) -> [UInt8] {
                var bytes = testFrame(
                    index, tags: index % 3 == 0 ? [VLANTag(pcp: 1, vid: UInt16(100 + index))] : [])
                if index % 5 == 0 {
                    bytes += (0..<(2100 + index)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
                }
                return bytes
            }
            let rounds = (0..<8).map { round in (0..<50).map { frame(round * 50 + $0) } }
            let received = try lab.inNamespace(namespace) {
                let sender = try AccessPort(
                    interface: left, vnetHeader: true, transmitRingFrames: 64)
                #expect(sender.hasTransmitRing)
                let receiver = try AccessPort(
                    interface: right, vnetHeader: true, ringFrames: receiveRing)
                let batch = PacketBatch(capacity: 16, bufferSize: 8192)
                let into = PacketBatch(capacity: 64, bufferSize: 8192)
                // 400 frames through a ring of 64: it wraps six times.
                return try rounds.map { frames in
                    try sendAll(frames + [probe], through: sender, batch: batch)
                    return try receive(on: receiver, batch: into)
                }
            }
            for (round, got) in received.enumerated() {
                #expect(got.frames == rounds[round], "round \(round)")
            }
        }
    }

    /// A frame over the MTU is refused as too big, as without a ring (the ring never takes
    /// it); a tagged frame 4 bytes over, which the kernel allows, goes.
    @Test func theTransmitRingLeavesFramesOverTheMTUToTheSocket() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("o", ipv6: false)
            let (left, right) = try lab.veth("l", in: namespace, "r", in: namespace)
            func sized(_ index: Int, _ length: Int, tagged: Bool) -> [UInt8] {
                let bytes = testFrame(index, tags: tagged ? [VLANTag(vid: 7)] : [])
                return bytes + [UInt8](repeating: 0x5A, count: length - bytes.count)
            }
            let fits = [sized(1, 1514, tagged: false), sized(2, 1518, tagged: true)]
            let over = sized(3, 1515, tagged: false)
            let (result, received) = try lab.inNamespace(namespace) {
                let sender = try AccessPort(
                    interface: left, vnetHeader: true, transmitRingFrames: 32)
                let receiver = try AccessPort(interface: right, vnetHeader: true)
                let batch = PacketBatch(capacity: 8)
                for (slot, frame) in ([fits[0], over, fits[1], probe]).enumerated() {
                    frame.withUnsafeBytes { batch.copyFrame($0, into: slot) }
                }
                let result = try sender.send(batch, count: 4)
                return (result, try receive(on: receiver, batch: batch))
            }
            #expect(result == SendResult(processed: 4, tooBig: 1))
            #expect(received.frames == fits)
        }
    }

    /// A ring the kernel cannot empty (the interface's queue, a token bucket of 8 kbit/s,
    /// holds every frame it took) fills: `send` then reports the frames it could not place
    /// as not sent, at once (a blocked send would wait out the bucket: minutes); once the
    /// queue drains, exactly the frames it reported sent arrive, in order, and the ring takes
    /// frames again.
    @Test func aFullTransmitRingRefusesTheRestAndLosesNothingItTook() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("f", ipv6: false)
            let (left, right) = try lab.veth("l", in: namespace, "r", in: namespace)
            try trafficControl(
                "-n", namespace, "qdisc", "add", "dev", left, "root", "tbf", "rate", "8kbit",
                "burst", "1600", "limit", "10000000")
            let frames = (0..<200).map { testFrame($0) }
            let (accepted, received) = try lab.inNamespace(namespace) {
                let sender = try AccessPort(interface: left, transmitRingFrames: 64)
                let receiver = try AccessPort(interface: right)
                let batch = PacketBatch(capacity: 32)
                var accepted: [[UInt8]] = []
                var next = 0
                var refused = 0
                while next < frames.count {
                    let count = min(batch.capacity, frames.count - next)
                    for slot in 0..<count {
                        frames[next + slot].withUnsafeBytes { batch.copyFrame($0, into: slot) }
                    }
                    let clock = ContinuousClock.now
                    let result = try sender.send(batch, count: count)
                    #expect(ContinuousClock.now - clock < .seconds(2), "send blocked")
                    #expect(result.tooBig == 0)
                    accepted += frames[next..<(next + result.processed)]
                    refused += count - result.processed
                    next += count
                }
                #expect(refused > 0, "the ring never filled")
                // The token bucket lets its burst through: the ring holds the rest of 64.
                // At least the ring's 64 frames (more as the bucket lets some through).
                #expect(accepted.count >= 64)
                try trafficControl(
                    "-n", namespace, "qdisc", "change", "dev", left, "root", "tbf", "rate",
                    "10gbit", "burst", "1000000", "limit", "10000000")
                // The queue drains at the new rate from its next dequeue on, and the ring
                // frames it held come free.
                probe.withUnsafeBytes { batch.copyFrame($0, into: 0) }
                try waitUntil("the transmit ring takes a frame again") {
                    try sender.send(batch, count: 1).processed == 1
                }
                return (accepted, try receive(on: receiver, batch: batch))
            }
            #expect(received.frames == accepted)
            print("full ring: \(accepted.count) of 200 frames taken, all arrived in order")
        }
    }

    /// Frames the device queue refuses (a token bucket whose queue holds 3,000 bytes) are not
    /// lost: the kernel keeps them in the ring, and `sendWaiting`, once the queue has room,
    /// hands them over without a new frame; all arrive, in order.
    @Test func framesTheQueueRefusedWaitInTheRingAndGoOnSendWaiting() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("q", ipv6: false)
            let (left, right) = try lab.veth("l", in: namespace, "r", in: namespace)
            try trafficControl(
                "-n", namespace, "qdisc", "add", "dev", left, "root", "tbf", "rate", "8kbit",
                "burst", "1600", "limit", "3000")
            let frames = (0..<20).map { testFrame($0) }
            let (waiting, received) = try lab.inNamespace(namespace) {
                let sender = try AccessPort(interface: left, transmitRingFrames: 64)
                let receiver = try AccessPort(interface: right)
                let batch = PacketBatch(capacity: 32)
                for (slot, frame) in frames.enumerated() {
                    frame.withUnsafeBytes { batch.copyFrame($0, into: slot) }
                }
                #expect(try sender.send(batch, count: frames.count).processed == frames.count)
                let waiting = sender.waitingFrames
                try trafficControl(
                    "-n", namespace, "qdisc", "change", "dev", left, "root", "tbf", "rate",
                    "10gbit", "burst", "1000000", "limit", "10000000")
                try waitUntil("the ring's waiting frames are taken") {
                    sender.sendWaiting()
                    return sender.waitingFrames == 0
                }
                try sendAll([probe], through: sender, batch: batch)
                return (waiting, try receive(on: receiver, batch: batch))
            }
            #expect(waiting > 0, "the queue never refused a frame")
            #expect(received.frames == frames)
            print("queue full: \(waiting) of 20 frames waited in the ring, all arrived in order")
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

/// Runs tc(8) with `arguments`; throws with its output when it fails.
private func trafficControl(_ arguments: String...) throws {
    guard
        let path = ["/usr/sbin/tc", "/sbin/tc"].first(where: FileManager.default.isExecutableFile)
    else { throw LabError(description: "tc(8) is not installed (Debian package iproute2)") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw LabError(description: "tc \(arguments.joined(separator: " ")): \(text)")
    }
}
