import DataPlane
import Datapath
import Forwarding
import Packet
import Testing

/// The worker driven frame by frame on in-memory ports (`MemoryIO`): what it sends where, and
/// what it counts, for each path a frame can take.
@Suite struct WorkerTests {
    @Test func aFrameToAnUnresolvedVTEPLeavesFromItsFlowHashAsTheFastPathWould() throws {
        let rig = try Rig()
        let first = Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1000)
        let second = Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 2000)
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        rig.port(0).inject(first)
        rig.port(0).inject(second)
        rig.worker.serviceAll(now: 1)

        // No next hop yet: both leave through the raw UDP socket, whole datagrams.
        let slow = rig.io.udp4!.takeSent()
        try #require(slow.count == 2)
        #expect(rig.io.underlay.takeSent().frames.isEmpty)
        var slowPorts: [UInt16] = []
        for (datagram, inner) in zip(slow, [first, second]) {
            #expect(datagram.peer == UDPEndpoint(address: Rig.vtep.ip, port: 0))
            let udp = try datagram.bytes.withUnsafeBytes { try UDPHeader.parse($0, at: 0) }
            #expect(udp.destinationPort == 4789)
            #expect(Int(udp.length) == datagram.bytes.count)
            #expect(udp.sourcePort >= SourcePortRange.rfc7348Default.lowerBound)
            #expect(Array(datagram.bytes[8..<16]) == Frames.vxlan(vni: 5000))
            #expect(Array(datagram.bytes[16...]) == inner)
            slowPorts.append(udp.sourcePort)
        }
        #expect(slowPorts[0] != slowPorts[1], "two flows, two source ports")
        #expect(rig.worker.counters().slowPath == 2)
        #expect(rig.worker.slowPathOpen)

        // Resolved: the same frames on the fast path get the same source ports.
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        // Every VTEP resolved: the raw UDP socket, handed a copy of every UDP packet the host
        // receives, is closed.
        #expect(!rig.worker.slowPathOpen)
        rig.port(0).inject(first)
        rig.port(0).inject(second)
        rig.worker.serviceAll(now: 2)
        let fast = rig.io.underlay.takeSent().frames
        try #require(fast.count == 2)
        #expect(rig.io.udp4!.takeSent().isEmpty)
        for (frame, (inner, port)) in zip(fast, zip([first, second], slowPorts)) {
            let outer = try Frames.OuterIPv4(frame.bytes)
            #expect(outer.ethernetDestination == Rig.gatewayMAC)
            #expect(outer.source == IPv4Address("10.0.0.1")!)
            #expect(outer.destination == IPv4Address("10.0.0.2")!)
            #expect(outer.udpDestinationPort == 4789)
            #expect(outer.udpSourcePort == port)
            #expect(outer.vni == 5000)
            #expect(outer.inner == inner)
        }
    }

    @Test func aFrameFromATunnelIsDeliveredLearnedAndAnsweredByUnicast() throws {
        let rig = try Rig()
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        let request = Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 7)
        rig.fromVTEP(request)
        rig.worker.serviceAll(now: 1)
        #expect(rig.port(0).takeSent().map(\.bytes) == [request])

        let reply = Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 9)
        rig.port(0).inject(reply)
        rig.worker.serviceAll(now: 1)
        let out = rig.io.underlay.takeSent().frames
        try #require(out.count == 1, "learned: one unicast copy, not a flood")
        #expect(try Frames.OuterIPv4(out[0].bytes).inner == reply)
        let counters = rig.worker.counters()
        #expect(counters.vteps.first { $0.locator == Rig.vtep }?.rxFrames == 1)
        #expect(counters.vteps.first { $0.locator == Rig.vtep }?.txFrames == 1)
    }

    /// The metrics' `vtep_worker_batches_total`: one per receive batch that brought frames,
    /// however many frames it held; an empty read is not a batch.
    @Test func batchesAreCountedPerReceiveNotPerFrame() throws {
        let rig = try Rig()
        #expect(rig.worker.load.batches == 0)
        rig.worker.serviceAll(now: 1)
        #expect(rig.worker.load.batches == 0)
        for port in [1000, 2000, 3000] {
            rig.port(0).inject(
                Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: UInt16(port)))
        }
        rig.worker.serviceAll(now: 1)
        #expect(rig.worker.load.batches == 1)
        rig.fromVTEP(Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 7))
        rig.worker.serviceAll(now: 1)
        #expect(rig.worker.load.batches == 2)
        // Busy time is measured in the worker's own loop (poll to poll), which serviceAll skips.
        #expect(rig.worker.load.busyNanoseconds == 0)
    }

    /// `vxlan-receive ring`: whole underlay frames from the ring, outer headers checked here,
    /// a GRO train split into its datagrams; each failure counted under its reason.
    @Test func vxlanFromTheUnderlaysRingIsCheckedAndDecapsulated() throws {
        let rig = try Rig(vxlanReceive: .ring)
        let ring = try #require(rig.io.vxlanRing)
        func outer(_ payloads: [[UInt8]], checksum: Bool = true) -> [UInt8] {
            let udpLength = 8 + payloads.reduce(0) { $0 + $1.count }
            var udp: [UInt8] = [0x9C, 0x40, 0x12, 0xB5]
            udp += [UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0] + payloads.reduce([], +)
            var sum = InternetChecksum()
            sum.addIPv4PseudoHeader(
                source: IPv4Address("10.0.0.2")!, destination: rig.local, protocol: 17,
                length: UInt16(udpLength))
            udp.withUnsafeBytes { sum.add($0) }
            let value = checksum ? UDPHeader.checksumField(sum) : 0x1234
            udp[6] = UInt8(value >> 8)
            udp[7] = UInt8(value & 0xFF)
            let total = 20 + udpLength
            var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0]
            ip += [64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]
            let header = ip.withUnsafeBytes { InternetChecksum.checksum($0) }
            ip[10] = UInt8(header >> 8)
            ip[11] = UInt8(header & 0xFF)
            return Frames.mac(Rig.underlayMAC) + Frames.mac(Rig.gatewayMAC) + [0x08, 0x00] + ip
                + udp
        }
        let first = Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 7)
        let second = Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 8)
        let datagram = Frames.vxlan(vni: 5000) + first
        ring.inject(MemoryFrame(outer([datagram])))
        rig.worker.serviceAll(now: 1)
        #expect(rig.port(0).takeSent().map(\.bytes) == [first])
        #expect(
            rig.worker.counters().vteps.first { $0.locator == Rig.vtep }?.rxFrames == 1,
            "counted against the VTEP the outer source names")

        // A GRO train: two datagrams of equal length behind one header, checksum verified by
        // the receiving side (DATA_VALID), as the kernel hands a coalesced read.
        let train = outer([datagram, Frames.vxlan(vni: 5000) + second], checksum: false)
        ring.inject(
            MemoryFrame(
                train,
                offload: VirtioNetHeader(
                    flags: VirtioNetHeader.dataValid, gsoType: VirtioNetHeader.GSO.udpL4,
                    gsoSize: UInt16(datagram.count))))
        rig.worker.serviceAll(now: 1)
        #expect(rig.port(0).takeSent().map(\.bytes) == [first, second])

        // Nobody vouched for the wrong checksum: counted, not delivered.
        ring.inject(MemoryFrame(outer([datagram], checksum: false)))
        var broken = outer([datagram])
        broken[14 + 8] = 1  // the IPv4 header checksum no longer holds
        ring.inject(MemoryFrame(broken))
        rig.worker.serviceAll(now: 1)
        #expect(rig.port(0).takeSent().isEmpty)
        let statistics = rig.worker.statistics()
        #expect(statistics.malformed(.udpBadChecksum) == 1)
        #expect(statistics.malformed(.ipv4BadChecksum) == 1)
        #expect(statistics.drops(.malformed) == 2)
    }

    /// Every frame the worker drops is counted under a reason of the one `DropReason` set,
    /// beside the forwarding core's; nothing vanishes.
    @Test func eachDropOfTheWorkerIsCountedUnderItsReason() throws {
        let v6VTEP = Locator(IPAddress("fd00::2")!)
        let rig = try Rig(
            switches: [
                LogicalSwitch(
                    name: "web", vni: try VNI(validating: 5000), replication: .headEnd([Rig.vtep])),
                LogicalSwitch(
                    name: "six", vni: try VNI(validating: 6000), replication: .headEnd([v6VTEP])),
            ],
            bindings: [
                Binding(port: "eth0", vlan: nil, logicalSwitch: "web"),
                Binding(port: "eth1", vlan: nil, logicalSwitch: "six"),
            ])
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        let frame = Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1)
        func drops() -> [DropReason: UInt64] {
            let statistics = rig.worker.statistics()
            var nonzero: [DropReason: UInt64] = [:]
            for reason in DropReason.allCases where statistics.drops(reason) > 0 {
                nonzero[reason] = statistics.drops(reason)
            }
            return nonzero
        }

        // Longer than a receive buffer (64 KB and a header): cut short, dropped.
        rig.port(0).inject(frame + [UInt8](repeating: 0, count: 70_000))
        // From our own address, on the VXLAN socket.
        rig.io.vxlan4!.inject(
            Frames.vxlan(vni: 5000) + frame, from: UDPEndpoint(address: .v4(rig.local), port: 9))
        // To a VTEP of a family we have no address of (switch "six" floods to fd00::2).
        rig.port(1).inject(frame)
        rig.worker.serviceAll(now: 1)
        #expect(drops() == [.truncated: 1, .ownSource: 1, .noLocalAddress: 1])

        // Too big for the underlay once encapsulated: a 1,500-byte IP packet plus VXLAN.
        rig.port(0).inject(
            Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1, payload: 1472))
        rig.worker.serviceAll(now: 1)
        #expect(drops()[.underlayTooBig] == 1)
        #expect(rig.io.underlay.takeSent().frames.isEmpty)

        // A full send queue on an access port: the rest of the batch is counted, not lost.
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        rig.port(0).sendQueueRoom = 1
        for port in 1...3 {
            rig.fromVTEP(Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: UInt16(port)))
        }
        rig.worker.serviceAll(now: 1)
        #expect(rig.port(0).takeSent().count == 1)
        #expect(drops()[.transmitQueueFull] == 2)
        #expect(rig.worker.counters().ports[0].drops == 2)
        rig.port(0).sendQueueRoom = nil

        // Too big for the port it leaves by (EMSGSIZE), and a send that fails outright.
        rig.port(0).sendQueueRoom = nil
        rig.port(0).pathMTU = 60
        rig.fromVTEP(Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 4))
        rig.worker.serviceAll(now: 1)
        #expect(drops()[.tooBigForPort] == 1)
        rig.port(0).pathMTU = nil
        rig.port(0).failNextSend = 105  // ENOBUFS
        rig.fromVTEP(Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 5))
        rig.worker.serviceAll(now: 1)
        #expect(drops()[.sendFailed] == 1)
        #expect(rig.worker.ioErrorState.count == 1)
        #expect(rig.worker.ioErrorState.last?.operation == .accessSend)

        // The kernel's receive-queue overruns are read from the sockets.
        rig.port(1).receiveDrops = 3
        rig.io.vxlan4!.receiveDrops = 2
        #expect(drops()[.accessReceiveOverrun] == 3)
        #expect(drops()[.underlayReceiveOverrun] == 2)

        // The configuration forgets eth0: what arrives there is counted, not decided.
        rig.worker.apply(
            try ForwardingConfiguration(switches: [], ports: ["eth1"], bindings: []), [])
        rig.port(0).inject(frame)
        rig.worker.serviceAll(now: 1)
        #expect(drops()[.portNotConfigured] == 1)
        #expect(
            drops()
                == [
                    .truncated: 1, .ownSource: 1, .noLocalAddress: 1, .underlayTooBig: 1,
                    .transmitQueueFull: 2, .tooBigForPort: 1, .sendFailed: 1,
                    .accessReceiveOverrun: 3, .underlayReceiveOverrun: 2, .portNotConfigured: 1,
                ])
    }

    /// `debug packet-trace`: each traced frame names its branch (deliver, encapsulate, flood,
    /// drop and its reason), on the ports and count asked for, and nothing more once the
    /// count is used up.
    @Test func aTracedFrameNamesItsBranch() throws {
        let rig = try Rig()
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        #expect(
            rig.worker.startTrace(.port("eth0"), count: 3)
                == "tracing the next 3 frames from port eth0")
        // Unknown destination: flooded (to VTEP 10.0.0.2; eth0 is the only port in "web").
        rig.port(0).inject(Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1))
        // Not traced: from the tunnel.
        rig.fromVTEP(Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 2))
        rig.worker.serviceAll(now: 1)
        // Now known behind the VTEP: encapsulated; and a frame with a multicast source.
        rig.port(0).inject(Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 3))
        rig.port(0).inject(
            Frames.udp(from: MACAddress(0x01, 0, 0x5E, 0, 0, 1), to: Rig.remoteHost, sourcePort: 4))
        rig.port(0).inject(Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 5))
        rig.worker.serviceAll(now: 1)
        let (frames, waiting) = rig.worker.traces
        #expect(waiting == 0)
        try #require(frames.count == 3)
        #expect(frames.map(\.number) == [1, 2, 3])
        #expect(frames[0].steps[0] == "received on port eth0")
        #expect(frames[0].steps[1].contains("02:00:00:00:00:0a → 02:00:00:00:00:0b"))
        #expect(frames[0].steps[1].contains("IPv4 10.1.0.1 → 10.1.0.2 UDP 1 → 53"))
        #expect(frames[0].steps.contains("logical switch web (VNI 5000, vxlan)"))
        #expect(frames[0].steps.contains("destination 02:00:00:00:00:0b is unknown: flood"))
        #expect(frames[0].steps.contains("decision: flood in VNI 5000 to VTEP 10.0.0.2 (vxlan)"))
        #expect(
            frames[1].steps.contains(
                "destination 02:00:00:00:00:0b is known: behind VTEP 10.0.0.2 (vxlan)"))
        #expect(
            frames[1].steps.contains("decision: encapsulate to VTEP 10.0.0.2 (vxlan), VNI 5000"))
        #expect(
            frames[1].steps.last == "sent through prebuilt headers to next hop 02:00:00:00:00:99")
        #expect(
            frames[2].steps.last
                == "decision: drop, multicast_source_mac (multicast or broadcast source MAC)")

        // From the tunnel: delivered to eth0.
        _ = rig.worker.startTrace(.tunnel, count: 1)
        rig.port(0).inject(Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 6))
        rig.fromVTEP(Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 7))
        rig.worker.serviceAll(now: 2)
        let tunnel = rig.worker.traces.frames
        try #require(tunnel.count == 1)
        #expect(tunnel[0].steps[0] == "received from VTEP 10.0.0.2 over vxlan, VNI 5000")
        #expect(tunnel[0].steps.last == "decision: deliver to port eth0 untagged")
        #expect(
            rig.worker.startTrace(.port("eth9"), count: 1)
                == "port eth9 is not one of vtepd's access ports")
        rig.worker.clearTrace()
        #expect(rig.worker.traces.frames.isEmpty)
    }

    /// Logical_Binding_Stats: frames and bytes from the port into its binding, and from the
    /// switch out to it, per (port, VLAN) of the configuration in force.
    @Test func bindingStatisticsCountEachWay() throws {
        let rig = try Rig()
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        let out = Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1)
        let back = Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 2)
        rig.port(0).inject(out)
        rig.port(0).inject(out)
        rig.worker.serviceAll(now: 1)
        rig.fromVTEP(back)
        rig.worker.serviceAll(now: 1)
        let stats = try #require(rig.worker.bindingStatistics()["eth0"]?[0])
        #expect(stats.fromLocalFrames == 2 && stats.fromLocalBytes == UInt64(2 * out.count))
        #expect(stats.toLocalFrames == 1 && stats.toLocalBytes == UInt64(back.count))
        #expect(rig.worker.bindingStatistics()["eth1"] == nil, "eth1 has no binding")
    }

    /// An admin raises the underlay's MTU while vtepd runs: a frame that did not fit before
    /// is sent once the worker has read the MTU again (it does once a second).
    @Test func anUnderlayMTURaisedWhileRunningIsFollowed() throws {
        let rig = try Rig()
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        let big = Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1, payload: 1472)
        rig.port(0).inject(big)
        rig.worker.serviceAll(now: 1)
        #expect(rig.io.underlay.takeSent().frames.isEmpty)
        #expect(rig.worker.statistics().drops(.underlayTooBig) == 1)
        rig.io.underlay.configuredMTU = 1600
        rig.worker.refreshUnderlayMTU()
        rig.port(0).inject(big)
        rig.worker.serviceAll(now: 2)
        #expect(rig.io.underlay.takeSent().frames.count == 1)
        #expect(rig.worker.statistics().drops(.underlayTooBig) == 1)
    }

    /// A capture asks the ports it taps to send through the qdisc, and gives them back.
    @Test func aCaptureTapsThePortItNames() throws {
        let rig = try Rig()
        #expect(rig.worker.setTapped(port: "eth1", true) == nil)
        #expect(rig.port(1).tapped && !rig.port(0).tapped && !rig.io.underlay.tapped)
        #expect(rig.worker.setTapped(port: nil, true) == nil)
        #expect(rig.io.underlay.tapped)
        #expect(rig.worker.setTapped(port: "eth1", false) == nil)
        #expect(!rig.port(1).tapped)
        #expect(
            rig.worker.setTapped(port: "eth9", true)
                == "port eth9 is not one of vtepd's access ports")
        #expect(rig.worker.underlayName == "underlay0")
    }

    /// Each drop reason the decision gives for frames from a port or a tunnel is named, with
    /// its counter, by the frame's trace.
    @Test func theTraceNamesEachDropReason() throws {
        let rig = try Rig()
        let vxlan = { (frame: [UInt8], vni: UInt32, from: IPAddress) in
            rig.io.vxlan4!.inject(
                Frames.vxlan(vni: vni) + frame, from: UDPEndpoint(address: from, port: 40000))
        }
        let good = Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1)
        func tagged(_ frame: [UInt8], _ tags: [UInt16]) -> [UInt8] {
            Array(frame[0..<12]) + tags.flatMap { [0x81, 0x00, UInt8($0 >> 8), UInt8($0 & 0xFF)] }
                + Array(frame[12...])
        }
        var sourced = good
        var cases: [(DropReason, () -> Void)] = []
        cases.append((.malformed, { rig.port(0).inject(Array(good.prefix(10))) }))
        cases.append((.noBinding, { rig.port(1).inject(good) }))
        cases.append((.qinqOnAccessPort, { rig.port(0).inject(tagged(good, [10, 20])) }))
        cases.append(
            (
                .multicastSourceMAC,
                {
                    sourced.replaceSubrange(6..<12, with: [0x01, 0, 0x5E, 0, 0, 1])
                    rig.port(0).inject(sourced)
                }
            ))
        cases.append(
            (
                .zeroSourceMAC,
                {
                    var frame = good
                    frame.replaceSubrange(6..<12, with: [0, 0, 0, 0, 0, 0])
                    rig.port(0).inject(frame)
                }
            ))
        cases.append(
            (
                .reservedDestination,
                {
                    var frame = good
                    frame.replaceSubrange(0..<6, with: [0x01, 0x80, 0xC2, 0, 0, 0x0E])
                    rig.port(0).inject(frame)
                }
            ))
        cases.append((.unknownVNI, { vxlan(good, 7777, Rig.vtep.ip) }))
        cases.append((.unknownSourceVTEP, { vxlan(good, 5000, IPAddress("10.0.0.99")!) }))
        cases.append((.taggedInnerFrame, { vxlan(tagged(good, [5]), 5000, Rig.vtep.ip) }))
        cases.append((.ownSource, { vxlan(good, 5000, .v4(rig.local)) }))
        cases.append(
            (
                .sameInterface,
                {
                    // hostA is learned on eth0 by the frames before; one to it from eth0 is filtered.
                    rig.port(0).inject(
                        Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 3))
                }
            ))
        rig.port(0).inject(good)  // learns hostA on eth0
        rig.worker.serviceAll(now: 1)
        for (reason, send) in cases {
            _ = rig.worker.startTrace(.any, count: 1)
            send()
            rig.worker.serviceAll(now: 1)
            let steps = rig.worker.traces.frames.first?.steps ?? []
            #expect(
                steps.last?.hasPrefix("decision: drop, \(reason.counterName) (\(reason)") == true,
                "\(reason.counterName): \(steps)")
        }
    }

    /// `trace port …`: what the worker would do, with nothing learned, counted or sent.
    @Test func aHypotheticalFrameIsExplainedWithoutSideEffects() throws {
        let rig = try Rig()
        let before = rig.worker.statistics()
        let frame = Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1)
        let steps = try #require(rig.worker.explain(frame, onPort: "eth0"))
        #expect(steps.last == "decision: flood in VNI 5000 to VTEP 10.0.0.2 (vxlan)")
        #expect(rig.worker.statistics() == before)
        #expect(rig.worker.macEntries(from: 0, count: 1 << 20).entries.isEmpty, "nothing learned")
        #expect(rig.io.underlay.takeSent().frames.isEmpty && rig.io.udp4!.takeSent().isEmpty)
        // A source MAC that is a static entry behind a VTEP: refused, as the decision would.
        rig.worker.installRemote(Rig.hostA, behind: Rig.vtep)
        #expect(
            rig.worker.explain(frame, onPort: "eth0")?.last
                == "decision: drop, static_mac_conflict (source MAC belongs to a static entry elsewhere)"
        )
        #expect(rig.worker.explain(frame, onPort: "eth7") == nil)
    }
}

/// One worker on in-memory ports: access ports eth0 and eth1 (eth0 untagged in switch
/// "web", VNI 5000, flooded head-end to VTEP 10.0.0.2), underlay with our address 10.0.0.1.
struct Rig {
    static let vtep = Locator(IPAddress("10.0.0.2")!)
    static let hostA = MACAddress(0x02, 0, 0, 0, 0, 0x0A)
    static let remoteHost = MACAddress(0x02, 0, 0, 0, 0, 0x0B)
    static let gatewayMAC = MACAddress(0x02, 0, 0, 0, 0, 0x99)
    static let underlayMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)

    let worker: DataPlaneWorker<MemoryIO>
    let io: DataPlanePorts<MemoryIO>
    let local = IPv4Address("10.0.0.1")!

    init(
        switches: [LogicalSwitch] = [
            LogicalSwitch(
                name: "web", vni: try! VNI(validating: 5000), replication: .headEnd([vtep]))
        ],
        bindings: [Binding] = [Binding(port: "eth0", vlan: nil, logicalSwitch: "web")],
        vxlanReceive: VXLANReceive = .socket, vxlanTransmit: VXLANTransmit = .trains,
        coalesceTrains: Bool = true, trainSourcePorts: UnsafeBufferPointer<UInt16>? = nil
    ) throws {
        var settings = DataPlaneSettings(
            underlay: "mem0", localIPv4: IPv4Address("10.0.0.1")!, localIPv6: nil)
        settings.vxlanReceive = vxlanReceive
        settings.vxlanTransmit = vxlanTransmit
        settings.coalesceTrains = coalesceTrains
        io = .inMemory(settings: settings, access: ["eth0", "eth1"], underlayMAC: Self.underlayMAC)
        if let trainSourcePorts { io.underlay.trainSourcePorts = trainSourcePorts }
        worker = try DataPlaneWorker(settings: settings, io: io)
        worker.apply(
            try ForwardingConfiguration(
                switches: switches, ports: ["eth0", "eth1"], bindings: bindings), [])
    }

    func port(_ i: Int) -> MemoryPort { io.access[i] }

    /// Queues `frame` on the VXLAN socket, in VNI 5000 from the remote VTEP.
    func fromVTEP(_ frame: [UInt8]) {
        io.vxlan4!.inject(
            Frames.vxlan(vni: 5000) + frame, from: UDPEndpoint(address: Self.vtep.ip, port: 40000))
    }
}

extension DataPlaneWorker {
    /// A static MAC of switch "web" behind `locator`, as the controller would install it.
    func installRemote(_ mac: MACAddress, behind locator: Locator) {
        apply(
            currentConfiguration,
            [StaticRemoteMAC(logicalSwitch: "web", mac: mac, locator: locator)])
    }
}

enum Frames {
    /// Ethernet, IPv4 (10.1.0.1 → 10.1.0.2) and UDP to port 53 from `sourcePort`, 32 bytes of
    /// payload; valid checksums are not needed by the worker.
    static func udp(
        from source: MACAddress, to destination: MACAddress, sourcePort: UInt16,
        payload length: Int = 32
    ) -> [UInt8] {
        var bytes = mac(destination) + mac(source) + [0x08, 0x00]
        let payload = [UInt8](repeating: 0x5A, count: length)
        let ipLength = 20 + 8 + payload.count
        bytes += [
            0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0,
        ]
        bytes += [10, 1, 0, 1, 10, 1, 0, 2]
        // The IPv4 header checksum (RFC 791), so the header parses.
        var sum: UInt32 = 0
        for i in stride(from: 14, to: 34, by: 2) {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
        }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        bytes[24] = UInt8(~sum >> 8 & 0xFF)
        bytes[25] = UInt8(~sum & 0xFF)
        bytes += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), 0, 53]
        bytes += [UInt8((8 + payload.count) >> 8), UInt8((8 + payload.count) & 0xFF), 0, 0]
        return bytes + payload
    }

    static func mac(_ m: MACAddress) -> [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: m.rawValue >> UInt64(40 - 8 * $0)) }
    }

    static func vxlan(vni: UInt32) -> [UInt8] {
        [0x08, 0, 0, 0, UInt8(vni >> 16), UInt8((vni >> 8) & 0xFF), UInt8(vni & 0xFF), 0]
    }

    /// A VXLAN-over-IPv4 frame as the underlay carries it.
    struct OuterIPv4 {
        var ethernetDestination: MACAddress
        var source: IPv4Address
        var destination: IPv4Address
        var udpSourcePort: UInt16
        var udpDestinationPort: UInt16
        var vni: UInt32
        var inner: [UInt8]

        init(_ bytes: [UInt8]) throws {
            try #require(bytes.count >= 50 && bytes[12] == 0x08 && bytes[13] == 0x00)
            func word(_ at: Int) -> UInt32 {
                bytes[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) }
            }
            ethernetDestination = MACAddress(
                rawValue: bytes[0..<6].reduce(0) { $0 << 8 | UInt64($1) })
            source = IPv4Address(rawValue: word(26))
            destination = IPv4Address(rawValue: word(30))
            udpSourcePort = UInt16(bytes[34]) << 8 | UInt16(bytes[35])
            udpDestinationPort = UInt16(bytes[36]) << 8 | UInt16(bytes[37])
            vni = word(46) >> 8
            inner = Array(bytes[50...])
        }
    }
}
