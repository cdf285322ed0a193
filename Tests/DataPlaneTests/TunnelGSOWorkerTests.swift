import DataPlane
import Datapath
import Forwarding
import Glibc
import Packet
import Testing

/// `vxlan-transmit tunnel-gso` in the worker: which super-frames are written whole to the TAP
/// device, and which still leave as UDP GSO trains.
@Suite struct TunnelGSOWorkerTests {
    /// A TCP/IPv4 super-frame from host A to the remote host with `payload` bytes, as a
    /// host's TSO hands it over: the TCP checksum field holds the pseudo-header sum.
    static func superFrame(payload: Int, partial: Bool = true) -> MemoryFrame {
        let tcpLength = 20 + payload
        var frame = [UInt8](repeating: 0, count: 14 + 20 + tcpLength)
        frame.withUnsafeMutableBytes { b in
            let ethernet = EthernetHeader(
                destination: Rig.remoteHost, source: Rig.hostA, etherType: EtherType.ipv4)
            var at = try! ethernet.store(into: b, at: 0)
            at = try! IPv4Header(
                source: IPv4Address(10, 1, 0, 1), destination: IPv4Address(10, 1, 0, 2),
                protocol: IPProtocol.tcp, payloadLength: tcpLength
            ).store(into: b, at: at)
            let tcp: [UInt8] = [0x9C, 0x40, 0x14, 0x51, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, 0x10, 0xFF, 0xFF]
            for (i, byte) in tcp.enumerated() { b[at + i] = byte }
            for i in 0..<payload { b[at + 20 + i] = UInt8(truncatingIfNeeded: i &* 7) }
            var sum = InternetChecksum()
            sum.addIPv4PseudoHeader(
                source: IPv4Address(10, 1, 0, 1), destination: IPv4Address(10, 1, 0, 2),
                protocol: IPProtocol.tcp, length: UInt16(tcpLength))
            if !partial { sum.add(UnsafeRawBufferPointer(rebasing: b[at..<b.count])) }
            b.storeBytes(
                of: (partial ? sum.folded : sum.checksum).bigEndian, toByteOffset: at + 16,
                as: UInt16.self)
        }
        return MemoryFrame(
            frame,
            offload: VirtioNetHeader(
                flags: partial ? VirtioNetHeader.needsChecksum : VirtioNetHeader.dataValid,
                gsoType: VirtioNetHeader.GSO.tcpv4, headerLength: 54, gsoSize: 1398,
                checksumStart: 34, checksumOffset: 16))
    }

    /// A host's super-frame to a port whose MTU is smaller than the sender's segments fit
    /// (a jumbo host bridged to standard ones) leaves whole with its segment size cut to the
    /// port's MTU, counted as the segments that cut makes; a port with no room past the
    /// headers gets nothing, counted too big. Found by the `worker` fuzz target (a host's
    /// 60-byte TCP header and 1,448-byte segments flooded whole to a 1,500-byte port).
    @Test func aSuperFrameToASmallerPortIsCutToItsMTU() throws {
        let rig = try Rig(
            bindings: [
                Binding(port: "eth0", vlan: nil, logicalSwitch: "web"),
                Binding(port: "eth1", vlan: 100, logicalSwitch: "web"),
            ])
        rig.port(1).configuredMTU = 1000
        rig.worker.apply(rig.worker.currentConfiguration, [])
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        // Unknown to the MAC table as a local host: flooded to eth1 (and the VTEP).
        var frame = Self.superFrame(payload: 10_000)
        frame.bytes.replaceSubrange(0..<6, with: [0x02, 0, 0, 0, 0, 0x0C])
        rig.port(0).inject(frame)
        rig.worker.serviceAll(now: 1)

        let sent = rig.port(1).takeSent()
        try #require(sent.count == 1)
        #expect(sent[0].offload.gsoSize == 1000 - 40, "1,000 less IPv4 and TCP headers")
        #expect(sent[0].offload.checksumStart == 34 + 4, "moved with the tag")
        let whole = try sent[0].bytes.withUnsafeBytes {
            try SuperFrame($0, header: sent[0].offload, maximumSegmentSize: 65_535)
        }
        #expect(whole.count == (10_000 + 959) / 960)
        let port = try #require(rig.worker.counters().ports.first { $0.name == "eth1" })
        #expect(port.txFrames == UInt64(whole.count))

        // No room at all: 40 bytes of MTU are the headers alone.
        rig.port(1).configuredMTU = 40
        rig.worker.apply(rig.worker.currentConfiguration, [])
        rig.port(0).inject(frame)
        rig.worker.serviceAll(now: 2)
        #expect(rig.port(1).takeSent().isEmpty)
        #expect(rig.worker.statistics().drops(.tooBigForPort) == 1)
    }

    @Test func aTCPSuperFrameIsWrittenWholeAndCountedAsItsSegments() throws {
        let rig = try Rig(vxlanTransmit: .tunnelGSO)
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        let device = try #require(rig.io.tunnelGSO)
        let frame = Self.superFrame(payload: 10_000)
        rig.port(0).inject(frame)
        rig.worker.serviceAll(now: 1)

        let written = device.take()
        try #require(written.count == 1)
        let sent = rig.io.underlay.takeSent()
        #expect(sent.frames.isEmpty && sent.trains.isEmpty, "nothing cut, nothing on the packet socket")
        let packet = written[0]
        let vnet = packet.withUnsafeBytes { VirtioNetHeader.load(from: $0.baseAddress!) }
        #expect(vnet.gsoType == VirtioNetHeader.GSO.udpTunnelIPv4 | VirtioNetHeader.GSO.tcpv4)
        #expect(vnet.flags == VirtioNetHeader.needsChecksum)
        // The sender's segment size: 1,398 fits 1,500 - 20 (IPv4) - 8 (UDP) - 8 (VXLAN) - 54
        // (inner headers) = 1,410.
        #expect(vnet.gsoSize == 1398)
        #expect(vnet.checksumStart == 50 + 34 && vnet.checksumOffset == 16)
        let outer = try Frames.OuterIPv4(Array(packet[24...]))
        #expect(outer.ethernetDestination == Rig.gatewayMAC, "to the next hop, as sent")
        #expect(outer.source == IPv4Address("10.0.0.1")! && outer.destination == IPv4Address("10.0.0.2")!)
        #expect(outer.udpDestinationPort == 4789 && outer.vni == 5000)
        #expect(outer.inner == frame.bytes)
        #expect(packet[24 + 22] == 64, "the configured TTL: nothing forwards it")

        let segments: UInt64 = (10_000 + 1397) / 1398
        let counters = rig.worker.counters()
        #expect(counters.tunnelGSOOut == 1 && counters.trainsOut == 0)
        #expect(counters.segmentsOut == segments)
        let vtep = try #require(counters.vteps.first { $0.locator == Rig.vtep })
        #expect(vtep.txFrames == segments)
        #expect(vtep.txBytes == UInt64(frame.bytes.count) + (segments - 1) * 54)
    }

    @Test func aSuperFrameGROVerifiedGetsThePseudoHeaderSumForTheKernel() throws {
        let rig = try Rig(vxlanTransmit: .tunnelGSO)
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        let device = try #require(rig.io.tunnelGSO)
        let verified = Self.superFrame(payload: 5_000, partial: false)
        let partial = Self.superFrame(payload: 5_000, partial: true)
        #expect(verified.bytes != partial.bytes, "a full checksum differs from the pseudo-header sum")
        rig.port(0).inject(verified)
        rig.worker.serviceAll(now: 1)
        let written = device.take()
        try #require(written.count == 1)
        // As a sender's TSO would have handed it over: the pseudo-header sum in the field.
        #expect(Array(written[0][(24 + 50)...]) == partial.bytes)
        let vnet = written[0].withUnsafeBytes { VirtioNetHeader.load(from: $0.baseAddress!) }
        #expect(vnet.flags == VirtioNetHeader.needsChecksum)
        #expect(rig.io.underlay.takeSent().trains.isEmpty)
    }

    @Test func whatTheTAPCannotTakeLeavesAsTrains() throws {
        let rig = try Rig(vxlanTransmit: .tunnelGSO)
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        let device = try #require(rig.io.tunnelGSO)

        // Too long for one outer IPv4 packet (a 65,535-byte inner IP packet and its Ethernet
        // header behind 36 bytes of IPv4, UDP and VXLAN): cut here.
        rig.port(0).inject(Self.superFrame(payload: 65_535 - 40))
        rig.worker.serviceAll(now: 1)
        #expect(device.take().count == 0)
        #expect(rig.io.underlay.takeSent().trains.count > 1)
        #expect(rig.worker.counters().trainsOut > 1)
        let trainsBefore = rig.worker.counters().trainsOut

        // The kernel refuses the header: the frame still leaves, as a train, and is counted.
        device.failure = EINVAL
        rig.port(0).inject(Self.superFrame(payload: 5_000))
        rig.worker.serviceAll(now: 2)
        #expect(rig.io.underlay.takeSent().trains.count == 1)
        let counters = rig.worker.counters()
        #expect(counters.tunnelGSORefused == 1 && counters.tunnelGSOOut == 0)
        #expect(counters.trainsOut == trainsBefore + 1)
        #expect(rig.worker.statistics().drops(.sendFailed) == 0)

        // Any other failure drops the frame's segments, counted, with the error kept for the log.
        device.failure = EIO
        rig.port(0).inject(Self.superFrame(payload: 5_000))
        rig.worker.serviceAll(now: 3)
        #expect(rig.io.underlay.takeSent().trains.isEmpty)
        #expect(rig.worker.statistics().drops(.sendFailed) == 4)
        #expect(rig.worker.counters().lastIOError?.operation == .underlaySend)
    }

    @Test func aSuperFrameFloodedToAMulticastGroupLeavesAsTrains() throws {
        // The kernel forwards nothing it receives to a group (no multicast routing), so a
        // flood to a group never goes through the TAP.
        let group = Locator(IPAddress("239.1.1.1")!)
        let rig = try Rig(
            switches: [
                LogicalSwitch(
                    name: "web", vni: try VNI(validating: 5000), replication: .multicast(group))
            ],
            vxlanTransmit: .tunnelGSO)
        let device = try #require(rig.io.tunnelGSO)
        rig.port(0).inject(Self.superFrame(payload: 5_000))
        rig.worker.serviceAll(now: 1)
        #expect(device.take().count == 0)
        let trains = rig.io.underlay.takeSent().trains
        try #require(trains.count == 1)
        #expect(try Frames.OuterIPv4(trains[0].bytes).destination == IPv4Address("239.1.1.1")!)
    }

    /// A switch that floods through service nodes sends one copy of a flood, to one node,
    /// whether the flood is a frame or a super-frame. Before, a super-frame went to every
    /// service node (the super-frame flood walked the replication list itself).
    @Test func aSuperFrameFloodedThroughServiceNodesGoesToOneNode() throws {
        let nodes = [Locator(IPAddress("10.0.0.5")!), Locator(IPAddress("10.0.0.6")!)]
        let rig = try Rig(switches: [
            LogicalSwitch(
                name: "web", vni: try VNI(validating: 5000), replication: .serviceNode(nodes))
        ])
        rig.worker.setNextHops([
            nodes[0]: NextHop(destination: Rig.gatewayMAC),
            nodes[1]: NextHop(destination: Rig.gatewayMAC),
        ])
        for (i, frame) in [Self.superFrame(payload: 5_000), Self.superFrame(payload: 1_000)]
            .enumerated()
        {
            rig.port(0).inject(frame)
            rig.worker.serviceAll(now: UInt32(i + 1))
            let datagrams = rig.io.underlay.takeDatagrams()
            let segments = frame.bytes.count > 1_500 ? (5_000 + 1397) / 1398 : 1
            try #require(datagrams.count == segments, "one copy, cut to \(segments) datagrams")
            for datagram in datagrams {
                #expect(try Frames.OuterIPv4(datagram.bytes).destination == IPv4Address("10.0.0.5")!)
            }
        }
    }

    /// Decapsulated segments of one TCP flow merge into one super-frame toward the host only
    /// while they come by one tunnel: the same segments from two VTEPs in turn (a host that
    /// moved, two paths) leave as they came.
    @Test func segmentsMergeOnlyWhenTheyCameByOneTunnel() throws {
        let other = Locator(IPAddress("10.0.0.3")!)
        let rig = try Rig(switches: [
            LogicalSwitch(
                name: "web", vni: try VNI(validating: 5000), replication: .headEnd([Rig.vtep, other]))
        ])
        // Host A speaks first, so the worker knows it is behind eth0.
        rig.port(0).inject(
            MemoryFrame(Frames.udp(from: Rig.hostA, to: Rig.remoteHost, sourcePort: 1000)))
        rig.worker.serviceAll(now: 1)
        _ = rig.io.underlay.takeSent()

        // Three segments of 1,398 bytes from the remote host to host A, checksums complete.
        var whole = Self.superFrame(payload: 3 * 1398, partial: false)
        whole.bytes.replaceSubrange(0..<12, with: Frames.mac(Rig.hostA) + Frames.mac(Rig.remoteHost))
        let segments: [[UInt8]] = try whole.bytes.withUnsafeBytes { bytes in
            let cut = try SuperFrame(bytes, header: whole.offload, maximumSegmentSize: 1398)
            return (0..<cut.count).map { i in
                var segment = [UInt8](repeating: 0, count: 1_600)
                let length = segment.withUnsafeMutableBytes {
                    cut.write(i, of: bytes, vlan: nil, into: $0, at: 0)
                }
                return Array(segment[0..<length])
            }
        }
        try #require(segments.count == 3)
        for (round, sources) in [[Rig.vtep, Rig.vtep, Rig.vtep], [Rig.vtep, other, Rig.vtep]]
            .enumerated()
        {
            for (segment, source) in zip(segments, sources) {
                rig.io.vxlan4!.inject(
                    Frames.vxlan(vni: 5000) + segment,
                    from: UDPEndpoint(address: source.ip, port: 40000))
            }
            rig.worker.serviceAll(now: UInt32(round + 2))
            let sent = rig.port(0).takeSent()
            if round == 0 {
                try #require(sent.count == 1, "one tunnel: merged")
                #expect(sent[0].bytes.count == whole.bytes.count)
                #expect(sent[0].bytes[54...] == whole.bytes[54...], "the payload in order")
                #expect(sent[0].offload.gsoSize == 1398)
            } else {
                #expect(sent.count == 3, "two tunnels in turn: as they came")
                let asTheyCame = sent.map(\.bytes) == segments
                #expect(asTheyCame)
            }
        }
    }

    @Test func withoutTheSettingNoTAPIsOpened() throws {
        let rig = try Rig()
        #expect(rig.io.tunnelGSO == nil)
        rig.worker.installRemote(Rig.remoteHost, behind: Rig.vtep)
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        rig.port(0).inject(Self.superFrame(payload: 5_000))
        rig.worker.serviceAll(now: 1)
        #expect(rig.io.underlay.takeSent().trains.count == 1)
    }
}
