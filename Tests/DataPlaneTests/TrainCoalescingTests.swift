import DataPlane
import Forwarding
import Packet
import TestSupport
import Testing

/// Plain frames gathered into UDP GSO trains (`DataPlaneSettings.coalesceTrains`): frames of
/// one flow to one VTEP that follow one another leave as one train; every flow keeps its
/// order; nothing is lost or duplicated.
@Suite struct TrainCoalescingTests {
    /// A UDP frame from host A to the remote host in flow `flow` (its UDP source port),
    /// `payload` bytes long, the first two payload bytes numbering it (`mark`).
    static func frame(flow: UInt16, mark: Int, payload: Int = 1_000) -> [UInt8] {
        var bytes = Frames.udp(
            from: Rig.hostA, to: Rig.remoteHost, sourcePort: flow, payload: payload)
        bytes[42] = UInt8(mark >> 8)
        bytes[43] = UInt8(mark & 0xFF)
        return bytes
    }

    static func flow(of frame: [UInt8]) -> UInt16 { UInt16(frame[34]) << 8 | UInt16(frame[35]) }
    static func mark(of frame: [UInt8]) -> Int { Int(frame[42]) << 8 | Int(frame[43]) }

    /// A rig with the remote host behind the VTEP and its next hop resolved.
    static func rig(coalesce: Bool = true) throws -> Rig {
        let rig = try Rig(coalesceTrains: coalesce)
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        return rig
    }

    /// Injects `frames` on eth0 and serves the worker until eth0 is drained.
    static func forward(_ frames: [[UInt8]], through rig: Rig) {
        for f in frames { rig.port(0).inject(MemoryFrame(f)) }
        for _ in 0...(frames.count / 16 + 1) { rig.worker.serviceAll(now: 1) }
    }

    /// The inner frames of `datagrams` with each datagram's outer UDP source port.
    static func inner(_ datagrams: [MemoryFrame]) throws -> [(port: UInt16, frame: [UInt8])] {
        try datagrams.map {
            let outer = try Frames.OuterIPv4($0.bytes)
            #expect(outer.vni == 5000 && outer.udpDestinationPort == 4789)
            return (outer.udpSourcePort, outer.inner)
        }
    }

    /// Trains through a pool of UDP sockets (`UDPTrainSockets`, kernels before 6.2): every
    /// datagram leaves from one of the pool's ports, the one its flow's hash picks, whether
    /// it left in a train or alone, so a flow keeps one path through the underlay.
    @Test func withAPoolOfSocketsAFlowKeepsThePoolPortItsHashPicks() throws {
        let pool: [UInt16] = [50001, 50002, 50003, 50004]
        let table = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: pool.count)
        defer { table.deallocate() }
        _ = table.initialize(from: pool)
        let rig = try Rig(trainSourcePorts: UnsafeBufferPointer(table))
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        // Flows 1-12: three frames in a row (a train), then one alone after the others.
        var frames: [[UInt8]] = []
        for flow in UInt16(1)...12 {
            frames += (0..<3).map { Self.frame(flow: flow, mark: $0) }
        }
        frames += (UInt16(1)...12).map { Self.frame(flow: $0, mark: 3, payload: 200) }
        Self.forward(frames, through: rig)
        let sent = rig.io.underlay.log
        #expect(sent.contains { $0.offload.gsoType == VirtioNetHeader.GSO.udpL4 }, "no train")
        #expect(sent.contains { $0.offload.gsoType == VirtioNetHeader.GSO.none }, "no lone frame")
        let cut = try Self.inner(rig.io.underlay.takeDatagrams())
        #expect(cut.count == frames.count)
        var portOfFlow: [UInt16: UInt16] = [:]
        for (port, frame) in cut {
            #expect(pool.contains(port), "\(port) is not a pool port")
            let flow = Self.flow(of: frame)
            #expect(portOfFlow[flow, default: port] == port, "flow \(flow) changed port")
            portOfFlow[flow] = port
        }
        #expect(Set(portOfFlow.values).count > 1, "12 flows on one port: \(portOfFlow)")
    }

    @Test func framesOfOneFlowInARowLeaveAsOneTrain() throws {
        let rig = try Self.rig()
        let frames = (0..<6).map { Self.frame(flow: 7, mark: $0, payload: $0 == 5 ? 300 : 1_000) }
        Self.forward(frames, through: rig)

        let sent = rig.io.underlay.takeSent()
        #expect(sent.frames.count == 0)
        try #require(sent.trains.count == 1)
        let train = sent.trains[0]
        // Outer Ethernet, IPv4 and UDP ahead of the datagrams; each datagram a VXLAN header
        // and one full frame; the shorter frame last.
        #expect(train.offload.gsoType == VirtioNetHeader.GSO.udpL4)
        #expect(train.offload.headerLength == 42)
        #expect(Int(train.offload.gsoSize) == 8 + frames[0].count)
        #expect(train.bytes.count == 42 + 5 * (8 + frames[0].count) + 8 + frames[5].count)
        let ipLength = Int(train.bytes[16]) << 8 | Int(train.bytes[17])
        #expect(ipLength == train.bytes.count - 14)
        let counters = rig.worker.counters()
        #expect(counters.trainsCoalesced == 1 && counters.trainsOut == 1)
        #expect(counters.vteps.first { $0.locator == Rig.vtep }?.txFrames == 6)

        for f in frames { rig.port(0).inject(MemoryFrame(f)) }
        rig.worker.serviceAll(now: 1)
        let cut = try Self.inner(rig.io.underlay.takeDatagrams())
        let identical = cut.map(\.frame) == frames
        #expect(identical)
        #expect(Set(cut.map(\.port)).count == 1)
    }

    @Test func aLongerFrameOrAFullTrainStartsTheNextTrain() throws {
        let rig = try Self.rig()
        // 100 full frames: trains of as many as one 64 KB packet holds; then a short frame
        // that closes a train, and a full one after it.
        var frames = (0..<100).map { Self.frame(flow: 9, mark: $0, payload: 1_400) }
        frames.append(Self.frame(flow: 9, mark: 100, payload: 100))
        frames.append(Self.frame(flow: 9, mark: 101, payload: 1_400))
        Self.forward(frames, through: rig)
        let log = rig.io.underlay.log
        #expect(log.allSatisfy { $0.bytes.count <= 14 + 65_535 })
        #expect(log.count >= 3)
        let cut = try Self.inner(rig.io.underlay.takeDatagrams())
        #expect(cut.map { Self.mark(of: $0.frame) } == Array(0...101))
        let identical = cut.map(\.frame) == frames
        #expect(identical)
    }

    /// Random interleavings of 2 to 12 flows (enough for their source ports to share bits
    /// of `trainPorts`) with random lengths, in batches larger than the receive batch and the
    /// train batch: each flow's frames leave in the order they came, each once, each flow
    /// from one source port. The worker's flow-hash key is random, so each run also tries
    /// other source ports.
    @Test(arguments: 0..<100) func everyFlowKeepsItsOrder(seed: Int) throws {
        let rig = try Self.rig()
        var random = SplitMix64(seed: UInt64(seed))
        let count = 20 + Int(random.next() % 180)
        let flows = 2 + UInt16(random.next() % 11)
        var frames: [[UInt8]] = []
        var flow = UInt16(random.next() % UInt64(flows))
        for i in 0..<count {
            // Runs: mostly the same flow again.
            if random.next() % 4 == 0 { flow = UInt16(random.next() % UInt64(flows)) }
            let payload = random.next() % 5 == 0 ? 100 + Int(random.next() % 1_300) : 1_400
            frames.append(Self.frame(flow: 1_000 + flow, mark: i, payload: payload))
        }
        Self.forward(frames, through: rig)
        let cut = try Self.inner(rig.io.underlay.takeDatagrams())
        #expect(cut.count == frames.count)
        // Each frame whole (compared without printing them), then each flow's in order.
        let identical = Set(cut.map(\.frame)) == Set(frames)
        #expect(identical, "seed \(seed)")
        for f in 0..<flows {
            let sent = frames.filter { Self.flow(of: $0) == 1_000 + f }.map(Self.mark(of:))
            let cutOfFlow = cut.filter { Self.flow(of: $0.frame) == 1_000 + f }
            #expect(cutOfFlow.map { Self.mark(of: $0.frame) } == sent, "flow \(f), seed \(seed)")
            #expect(Set(cutOfFlow.map(\.port)).count <= 1)
        }
        let statistics = rig.worker.statistics()
        #expect(DropReason.allCases.allSatisfy { statistics.drops($0) == 0 })
    }

    @Test func offOrWithoutTrainsFramesLeaveOneByOne() throws {
        let frames = (0..<6).map { Self.frame(flow: 7, mark: $0) }
        let off = try Self.rig(coalesce: false)
        Self.forward(frames, through: off)
        var sent = off.io.underlay.takeSent()
        #expect(sent.frames.count == 6 && sent.trains.count == 0)

        let refused = try Self.rig()
        refused.io.underlay.supportsTrains = false
        Self.forward(frames, through: refused)
        sent = refused.io.underlay.takeSent()
        #expect(sent.frames.count == 6 && sent.trains.count == 0)
        #expect(refused.worker.counters().trainsCoalesced == 0)
    }

    @Test func differentFlowsInTurnLeaveAsTheyCame() throws {
        let rig = try Self.rig()
        let frames = (0..<8).map { Self.frame(flow: UInt16(10 + $0 % 2), mark: $0) }
        Self.forward(frames, through: rig)
        let sent = rig.io.underlay.takeSent()
        #expect(sent.frames.count == 8 && sent.trains.count == 0)
    }
}
