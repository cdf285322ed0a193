import Foundation
import Testing

@testable import Packet

// Golden bytes from real peers: Linux kernel vxlan and Open vSwitch's userspace GRE, captured
// on the underlay between two network namespaces by Fixtures/capture-kernel-vxlan.sh and
// Fixtures/capture-ovs-gre.sh (Fixtures/README.md lists every pcap). Every captured frame is
// parsed outer Ethernet → IP → UDP+VXLAN or GRE → inner Ethernet → ARP / IPv4 / IPv6 →
// ICMP / ICMPv6 / TCP with our parsers, and every field the scripts fixed is checked. The
// values that change with each capture run (ICMP identifiers, IP IDs, TCP sequence numbers,
// the kernel's UDP source ports) are checked by relation, never as remembered constants.

// MARK: - The topology the capture scripts built

/// One side of a capture: its underlay and inner addresses, as set by the script.
private struct GoldenPeer {
    var underlayMAC: MACAddress
    var underlayIPv4: IPv4Address
    var underlayIPv6: IPv6Address
    var innerMAC: MACAddress
    var innerIPv4: IPv4Address
    var innerIPv6: IPv6Address?
}

private enum GoldenTopology {
    /// capture-kernel-vxlan.sh: vxlan id 5001 dstport 4789, inner addresses on the vxlan device.
    static let kernelA = GoldenPeer(
        underlayMAC: MACAddress("02:00:00:00:88:01")!, underlayIPv4: IPv4Address("10.88.0.1")!,
        underlayIPv6: IPv6Address("fd88::1")!, innerMAC: MACAddress("02:00:00:00:51:01")!,
        innerIPv4: IPv4Address("192.168.51.1")!, innerIPv6: IPv6Address("fd51::1")!)
    static let kernelB = GoldenPeer(
        underlayMAC: MACAddress("02:00:00:00:88:02")!, underlayIPv4: IPv4Address("10.88.0.2")!,
        underlayIPv6: IPv6Address("fd88::2")!, innerMAC: MACAddress("02:00:00:00:51:02")!,
        innerIPv4: IPv4Address("192.168.51.2")!, innerIPv6: IPv6Address("fd51::2")!)
    /// capture-ovs-gre.sh: br-phy carries the underlay address, `vm` is the inner host.
    static let ovsA = GoldenPeer(
        underlayMAC: MACAddress("02:00:00:00:89:01")!, underlayIPv4: IPv4Address("10.89.0.1")!,
        underlayIPv6: IPv6Address("fd89::1")!, innerMAC: MACAddress("02:00:00:00:52:01")!,
        innerIPv4: IPv4Address("192.168.52.1")!, innerIPv6: nil)
    static let ovsB = GoldenPeer(
        underlayMAC: MACAddress("02:00:00:00:89:02")!, underlayIPv4: IPv4Address("10.89.0.2")!,
        underlayIPv6: IPv6Address("fd89::2")!, innerMAC: MACAddress("02:00:00:00:52:02")!,
        innerIPv4: IPv4Address("192.168.52.2")!, innerIPv6: nil)

    static let vni: UInt32 = 5001
    /// Where the kernel picks VXLAN source ports when `srcport` is not given:
    /// net.ipv4.ip_local_port_range of the capturing namespace (the default).
    static let kernelSourcePorts: ClosedRange<UInt16> = 32768...60999
}

// MARK: - Fixtures

private enum GoldenFixtures {
    /// Tests/PacketTests/Fixtures, beside this file. The directory is excluded from the test
    /// target rather than bundled, so it is found from the source path.
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static let kernelVXLAN = [
        "kernel-vxlan-ipv4.pcap", "kernel-vxlan-inner-ipv6.pcap", "kernel-vxlan-inner-tcp.pcap",
        "kernel-vxlan-ipv6.pcap",
    ]
    /// The OVS GRE captures whose every packet is valid.
    static let ovsGRE = [
        "ovs-gre-ipv4.pcap", "ovs-gre-csum-ipv4.pcap", "ovs-gre-seq-ipv4.pcap", "ovs-gre-ipv6.pcap",
    ]
    /// OVS 3.1 userspace with csum=true and seq=true: wrong GRE checksums when seq ≠ 0.
    static let ovsGREChecksumWithSequence = "ovs-gre-csum-seq-ipv4.pcap"
    static let all = kernelVXLAN + ovsGRE + [ovsGREChecksumWithSequence]

    static func load(_ name: String) throws -> PcapFile {
        try PcapFile(contentsOf: directory.appendingPathComponent(name))
    }
}

// MARK: - One decoded underlay frame

/// Everything our parsers read from one captured underlay frame.
private struct GoldenFrame {
    enum Network {
        case ipv4(IPv4Header)
        case ipv6(IPv6Header)
    }
    enum Tunnel {
        case vxlan(UDPHeader, VXLANHeader)
        case gre(GREHeader)
    }
    enum Transport {
        case icmp(ICMPHeader)
        case icmpv6(ICMPHeader)
        case tcp(TCPHeader)
        case udp(UDPHeader)
        case other(UInt8)
    }
    enum InnerPayload {
        case arp(ARPPacket)
        case ipv4(IPv4Header, Transport)
        case ipv6(IPv6Header, Transport)
    }

    var bytes: [UInt8]
    var outerEthernet: EthernetHeader
    var outer: Network
    var tunnel: Tunnel
    /// Where the inner Ethernet frame starts: the length of the outer headers.
    var innerOffset: Int
    var innerEthernet: EthernetHeader
    var inner: InnerPayload

    var innerFrame: ArraySlice<UInt8> { bytes[innerOffset...] }

    /// Parses the whole stack with Packet's parsers; throws the first `Malformed` reason.
    static func decode(_ bytes: [UInt8]) throws(Malformed) -> GoldenFrame {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(Malformed) -> GoldenFrame in try decodeStack(raw, bytes) }
        }
        return try result.get()
    }

    private static func decodeStack(_ raw: UnsafeRawBufferPointer, _ bytes: [UInt8])
        throws(Malformed)
        -> GoldenFrame
    {
        let outerEthernet = try EthernetHeader.parse(raw)
        let outer: Network
        let tunnelProtocol: UInt8
        let tunnelOffset: Int
        let tunnelEnd: Int
        switch outerEthernet.etherType {
        case EtherType.ipv4:
            let ip = try IPv4Header.parse(raw, at: outerEthernet.payloadOffset)
            (outer, tunnelProtocol) = (.ipv4(ip), ip.protocol)
            (tunnelOffset, tunnelEnd) = (ip.payloadOffset, ip.payloadEnd)
        case EtherType.ipv6:
            let ip = try IPv6Header.parse(raw, at: outerEthernet.payloadOffset)
            (outer, tunnelProtocol) = (.ipv6(ip), ip.upperLayerProtocol)
            (tunnelOffset, tunnelEnd) = (ip.upperLayerOffset, ip.payloadEnd)
        default:
            throw .ethernetTruncated  // not reached with these fixtures; checked by the tests
        }
        let tunnel: Tunnel
        let innerOffset: Int
        if tunnelProtocol == IPProtocol.udp {
            let udp = try UDPHeader.parse(raw, at: tunnelOffset, end: tunnelEnd)
            let vxlan = try VXLANHeader.parse(raw, at: udp.payloadOffset)
            tunnel = .vxlan(udp, vxlan)
            innerOffset = udp.payloadOffset + VXLANHeader.length
        } else {
            let gre = try GREHeader.parse(raw, at: tunnelOffset, end: tunnelEnd)
            tunnel = .gre(gre)
            innerOffset = gre.payloadOffset
        }
        let innerRaw = UnsafeRawBufferPointer(rebasing: raw[innerOffset...])
        let innerEthernet = try EthernetHeader.parse(innerRaw)
        let l3 = innerEthernet.payloadOffset
        let inner: InnerPayload
        switch innerEthernet.etherType {
        case EtherType.arp:
            inner = .arp(try ARPPacket.parse(innerRaw, at: l3))
        case EtherType.ipv4:
            let ip = try IPv4Header.parse(innerRaw, at: l3)
            inner = .ipv4(
                ip, try transport(innerRaw, ip.protocol, at: ip.payloadOffset, end: ip.payloadEnd))
        case EtherType.ipv6:
            let ip = try IPv6Header.parse(innerRaw, at: l3)
            inner = .ipv6(
                ip,
                try transport(
                    innerRaw, ip.upperLayerProtocol, at: ip.upperLayerOffset, end: ip.payloadEnd))
        default:
            throw .ethernetTruncated  // not reached with these fixtures; checked by the tests
        }
        return GoldenFrame(
            bytes: bytes, outerEthernet: outerEthernet, outer: outer, tunnel: tunnel,
            innerOffset: innerOffset, innerEthernet: innerEthernet, inner: inner)
    }

    private static func transport(
        _ raw: UnsafeRawBufferPointer, _ proto: UInt8, at offset: Int, end: Int
    ) throws(Malformed) -> Transport {
        switch proto {
        case IPProtocol.icmp: .icmp(try ICMPHeader.parse(raw, at: offset, end: end))
        case IPProtocol.icmpv6: .icmpv6(try ICMPHeader.parseV6(raw, at: offset, end: end))
        case IPProtocol.tcp: .tcp(try TCPHeader.parse(raw, at: offset, end: end))
        case IPProtocol.udp: .udp(try UDPHeader.parse(raw, at: offset, end: end))
        default: .other(proto)
        }
    }

    // MARK: Convenience views for the assertions

    var outerSourceMAC: MACAddress { outerEthernet.source }
    var vxlan: (udp: UDPHeader, vxlan: VXLANHeader)? {
        if case .vxlan(let udp, let vxlan) = tunnel { (udp, vxlan) } else { nil }
    }
    var gre: GREHeader? {
        if case .gre(let gre) = tunnel { gre } else { nil }
    }
    var outerIPv4: IPv4Header? {
        if case .ipv4(let ip) = outer { ip } else { nil }
    }
    var outerIPv6: IPv6Header? {
        if case .ipv6(let ip) = outer { ip } else { nil }
    }
    var arp: ARPPacket? {
        if case .arp(let arp) = inner { arp } else { nil }
    }
    var innerIPv4: (ip: IPv4Header, transport: Transport)? {
        if case .ipv4(let ip, let transport) = inner { (ip, transport) } else { nil }
    }
    var innerIPv6: (ip: IPv6Header, transport: Transport)? {
        if case .ipv6(let ip, let transport) = inner { (ip, transport) } else { nil }
    }
    var icmp: ICMPHeader? {
        if case .icmp(let icmp)? = innerIPv4?.transport { icmp } else { nil }
    }
    var icmpv6: ICMPHeader? {
        if case .icmpv6(let icmp)? = innerIPv6?.transport { icmp } else { nil }
    }
    var tcp: TCPHeader? {
        if case .tcp(let tcp)? = innerIPv4?.transport { tcp } else { nil }
    }

    /// The outer UDP checksum verifies over the pseudo-header, header and data (RFC 768,
    /// RFC 8200 §8.1). False when the checksum field is 0.
    var outerUDPChecksumVerifies: Bool {
        guard let (udp, _) = vxlan, udp.checksum != 0 else { return false }
        return bytes.withUnsafeBytes { raw in
            var sum = InternetChecksum()
            switch outer {
            case .ipv4(let ip):
                sum.addIPv4PseudoHeader(
                    source: ip.source, destination: ip.destination, protocol: IPProtocol.udp,
                    length: udp.length)
            case .ipv6(let ip):
                sum.addIPv6PseudoHeader(
                    source: ip.source, destination: ip.destination, nextHeader: IPProtocol.udp,
                    length: UInt32(udp.length))
            }
            sum.add(
                UnsafeRawBufferPointer(rebasing: raw[udp.offset..<udp.offset + Int(udp.length)]))
            return sum.folded == 0xFFFF
        }
    }

    /// The inner ICMP, ICMPv6 or TCP checksum verifies (RFC 792; RFC 4443 §2.3 and RFC 9293
    /// §3.1 with the pseudo-header).
    var innerTransportChecksumVerifies: Bool {
        bytes.withUnsafeBytes { whole in
            let raw = UnsafeRawBufferPointer(rebasing: whole[innerOffset...])
            switch inner {
            case .arp:
                return false
            case .ipv4(let ip, let transport):
                let segment = UnsafeRawBufferPointer(
                    rebasing: raw[ip.payloadOffset..<ip.payloadEnd])
                switch transport {
                case .icmp: return InternetChecksum.isValid(segment)
                case .tcp, .udp:
                    var sum = InternetChecksum()
                    sum.addIPv4PseudoHeader(
                        source: ip.source, destination: ip.destination, protocol: ip.protocol,
                        length: UInt16(segment.count))
                    sum.add(segment)
                    return sum.folded == 0xFFFF
                case .icmpv6, .other: return false
                }
            case .ipv6(let ip, _):
                let segment = UnsafeRawBufferPointer(
                    rebasing: raw[ip.upperLayerOffset..<ip.payloadEnd])
                var sum = InternetChecksum()
                sum.addIPv6PseudoHeader(
                    source: ip.source, destination: ip.destination,
                    nextHeader: ip.upperLayerProtocol, length: UInt32(segment.count))
                sum.add(segment)
                return sum.folded == 0xFFFF
            }
        }
    }

    /// The identifier and sequence number of an ICMP or ICMPv6 echo request or reply.
    var echo: (identifier: UInt16, sequence: UInt16)? {
        let header: ICMPHeader
        if let icmp, icmp.type == 8 || icmp.type == 0 {
            header = icmp
        } else if let icmpv6, icmpv6.type == 128 || icmpv6.type == 129 {
            header = icmpv6
        } else {
            return nil
        }
        return (
            UInt16(truncatingIfNeeded: header.restOfHeader >> 16),
            UInt16(truncatingIfNeeded: header.restOfHeader)
        )
    }
}

// MARK: - Raw wire reads, independent of Packet

private func goldenBE16(_ bytes: some Collection<UInt8>, _ at: Int) -> UInt16 {
    let start = bytes.index(bytes.startIndex, offsetBy: at)
    return UInt16(bytes[start]) << 8 | UInt16(bytes[bytes.index(after: start)])
}

private func goldenBE32(_ bytes: some Collection<UInt8>, _ at: Int) -> UInt32 {
    UInt32(goldenBE16(bytes, at)) << 16 | UInt32(goldenBE16(bytes, at + 2))
}

private func goldenHex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// The IPv6 solicited-node multicast address of `address` (RFC 4291 §2.7.1).
private func goldenSolicitedNode(_ address: IPv6Address) -> IPv6Address {
    IPv6Address(high: 0xFF02_0000_0000_0000, low: 0x0000_0001_FF00_0000 | address.low & 0xFF_FFFF)
}

// MARK: - Expectations shared by every capture

/// Which way a frame went: A is the capturing, pinging, connecting side.
private enum GoldenDirection: Equatable {
    case aToB, bToA
}

/// Checks the outer Ethernet and IP headers against the topology and returns the direction.
private func checkOuter(
    _ frame: GoldenFrame, a: GoldenPeer, b: GoldenPeer, ipv6Underlay: Bool,
    sourceLocation: SourceLocation = #_sourceLocation
) -> GoldenDirection {
    let direction: GoldenDirection = frame.outerSourceMAC == a.underlayMAC ? .aToB : .bToA
    let (from, to) = direction == .aToB ? (a, b) : (b, a)
    #expect(frame.outerEthernet.source == from.underlayMAC, sourceLocation: sourceLocation)
    #expect(frame.outerEthernet.destination == to.underlayMAC, sourceLocation: sourceLocation)
    #expect(frame.outerEthernet.outerTag == nil, sourceLocation: sourceLocation)
    #expect(frame.outerEthernet.payloadOffset == 14, sourceLocation: sourceLocation)
    if ipv6Underlay {
        #expect(frame.outerEthernet.etherType == EtherType.ipv6, sourceLocation: sourceLocation)
        let ip = frame.outerIPv6
        #expect(ip != nil, sourceLocation: sourceLocation)
        #expect(ip?.source == from.underlayIPv6, sourceLocation: sourceLocation)
        #expect(ip?.destination == to.underlayIPv6, sourceLocation: sourceLocation)
        #expect(ip?.hopLimit == 64, sourceLocation: sourceLocation)
        #expect(ip?.trafficClass == 0, sourceLocation: sourceLocation)
        #expect(ip?.flowLabel == 0, sourceLocation: sourceLocation)
        #expect(ip?.fragment == nil, sourceLocation: sourceLocation)
        #expect(ip?.upperLayerOffset == 14 + 40, sourceLocation: sourceLocation)
        #expect(
            ip.map { 14 + 40 + Int($0.payloadLength) } == frame.bytes.count,
            sourceLocation: sourceLocation)
    } else {
        #expect(frame.outerEthernet.etherType == EtherType.ipv4, sourceLocation: sourceLocation)
        let ip = frame.outerIPv4
        #expect(ip != nil, sourceLocation: sourceLocation)
        #expect(ip?.source == from.underlayIPv4, sourceLocation: sourceLocation)
        #expect(ip?.destination == to.underlayIPv4, sourceLocation: sourceLocation)
        #expect(ip?.ttl == 64, sourceLocation: sourceLocation)
        #expect(ip?.tos == 0, sourceLocation: sourceLocation)
        #expect(ip?.headerLength == 20, sourceLocation: sourceLocation)
        #expect(ip?.isFragment == false, sourceLocation: sourceLocation)
        #expect(
            ip.map { 14 + Int($0.totalLength) } == frame.bytes.count,
            sourceLocation: sourceLocation)
    }
    return direction
}

/// What one captured frame is, in capture order.
private enum GoldenKind: Equatable {
    case arpRequest, arpReply
    case echoRequest(sequence: UInt16)
    case echoReply(sequence: UInt16)
    case neighborSolicitation, neighborAdvertisement
    case echo6Request(sequence: UInt16)
    case echo6Reply(sequence: UInt16)
    case tcp(GoldenDirection, flags: UInt8)

    var direction: GoldenDirection {
        switch self {
        case .arpRequest, .echoRequest, .neighborSolicitation, .echo6Request: .aToB
        case .arpReply, .echoReply, .neighborAdvertisement, .echo6Reply: .bToA
        case .tcp(let direction, _): direction
        }
    }
}

/// ARP resolution then three pings: what capture-*.sh records for a `ping -c 3`.
private let goldenARPAndThreePings: [GoldenKind] = [
    .arpRequest, .arpReply,
    .echoRequest(sequence: 1), .echoReply(sequence: 1),
    .echoRequest(sequence: 2), .echoReply(sequence: 2),
    .echoRequest(sequence: 3), .echoReply(sequence: 3),
]

/// Checks the inner frame against the kind expected at its position.
private func checkInner(
    _ frame: GoldenFrame, _ kind: GoldenKind, a: GoldenPeer, b: GoldenPeer,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let (from, to) = kind.direction == .aToB ? (a, b) : (b, a)
    let ethernet = frame.innerEthernet
    #expect(ethernet.source == from.innerMAC, sourceLocation: sourceLocation)
    #expect(ethernet.outerTag == nil, sourceLocation: sourceLocation)
    switch kind {
    case .arpRequest, .arpReply:
        let request = kind == .arpRequest
        #expect(ethernet.etherType == EtherType.arp, sourceLocation: sourceLocation)
        #expect(
            ethernet.destination == (request ? .broadcast : to.innerMAC),
            sourceLocation: sourceLocation)
        #expect(frame.innerFrame.count == 14 + ARPPacket.length, sourceLocation: sourceLocation)
        let expected = ARPPacket(
            operation: request ? ARPPacket.request : ARPPacket.reply,
            senderHardwareAddress: from.innerMAC, senderProtocolAddress: from.innerIPv4,
            targetHardwareAddress: request ? MACAddress(rawValue: 0) : to.innerMAC,
            targetProtocolAddress: to.innerIPv4)
        #expect(frame.arp == expected, sourceLocation: sourceLocation)

    case .echoRequest(let sequence), .echoReply(let sequence):
        #expect(ethernet.destination == to.innerMAC, sourceLocation: sourceLocation)
        #expect(ethernet.etherType == EtherType.ipv4, sourceLocation: sourceLocation)
        let ip = frame.innerIPv4?.ip
        #expect(ip?.source == from.innerIPv4, sourceLocation: sourceLocation)
        #expect(ip?.destination == to.innerIPv4, sourceLocation: sourceLocation)
        #expect(ip?.protocol == IPProtocol.icmp, sourceLocation: sourceLocation)
        #expect(ip?.ttl == 64, sourceLocation: sourceLocation)
        // iputils ping sets DF (path MTU discovery); Linux's echo reply does not.
        #expect(ip?.dontFragment == (kind.direction == .aToB), sourceLocation: sourceLocation)
        #expect(ip?.totalLength == 84, sourceLocation: sourceLocation)  // ping -s 56
        #expect(
            ip.map { 14 + Int($0.totalLength) } == frame.innerFrame.count,
            sourceLocation: sourceLocation)
        #expect(
            frame.icmp?.type == (kind.direction == .aToB ? 8 : 0), sourceLocation: sourceLocation)
        #expect(frame.icmp?.code == 0, sourceLocation: sourceLocation)
        #expect(frame.echo?.sequence == sequence, sourceLocation: sourceLocation)
        #expect(frame.innerTransportChecksumVerifies, sourceLocation: sourceLocation)

    case .neighborSolicitation, .neighborAdvertisement:
        let solicitation = kind == .neighborSolicitation
        let target = b.innerIPv6
        #expect(target != nil, sourceLocation: sourceLocation)
        #expect(ethernet.etherType == EtherType.ipv6, sourceLocation: sourceLocation)
        let ip = frame.innerIPv6?.ip
        #expect(ip?.source == from.innerIPv6, sourceLocation: sourceLocation)
        if let target, solicitation {
            // RFC 4861 §7.2.2: to the target's solicited-node group, whose MAC is 33:33 and
            // the group's low 32 bits (RFC 2464 §7).
            let group = goldenSolicitedNode(target)
            #expect(ip?.destination == group, sourceLocation: sourceLocation)
            #expect(
                ethernet.destination
                    == MACAddress(rawValue: 0x3333_0000_0000 | group.low & 0xFFFF_FFFF),
                sourceLocation: sourceLocation)
        } else {
            #expect(ip?.destination == to.innerIPv6, sourceLocation: sourceLocation)
            #expect(ethernet.destination == to.innerMAC, sourceLocation: sourceLocation)
        }
        // RFC 4861 §7.1: neighbour discovery is only accepted with hop limit 255.
        #expect(ip?.hopLimit == 255, sourceLocation: sourceLocation)
        #expect(ip?.upperLayerProtocol == IPProtocol.icmpv6, sourceLocation: sourceLocation)
        let icmp = frame.icmpv6
        #expect(icmp?.type == (solicitation ? 135 : 136), sourceLocation: sourceLocation)
        #expect(icmp?.code == 0, sourceLocation: sourceLocation)
        // NA flags: Solicited and Override, not Router (RFC 4861 §4.4).
        #expect(
            icmp?.restOfHeader == (solicitation ? 0 : 0x6000_0000), sourceLocation: sourceLocation)
        #expect(frame.innerTransportChecksumVerifies, sourceLocation: sourceLocation)
        if let ip, let target {
            let message = frame.innerFrame.dropFirst(ip.upperLayerOffset)
            #expect(message.count == 32, sourceLocation: sourceLocation)  // 24 + one option
            let targetAddress = IPv6Address(
                high: UInt64(goldenBE32(message, 8)) << 32 | UInt64(goldenBE32(message, 12)),
                low: UInt64(goldenBE32(message, 16)) << 32 | UInt64(goldenBE32(message, 20)))
            #expect(targetAddress == target, sourceLocation: sourceLocation)
            // Source (1) or Target (2) Link-Layer Address option, length 1 × 8 bytes, with
            // the sender's MAC (RFC 4861 §4.6.1).
            #expect(
                goldenBE16(message, 24) == (solicitation ? 0x0101 : 0x0201),
                sourceLocation: sourceLocation)
            let optionMAC = MACAddress(
                rawValue: UInt64(goldenBE16(message, 26)) << 32 | UInt64(goldenBE32(message, 28)))
            #expect(optionMAC == from.innerMAC, sourceLocation: sourceLocation)
        }

    case .echo6Request(let sequence), .echo6Reply(let sequence):
        #expect(ethernet.destination == to.innerMAC, sourceLocation: sourceLocation)
        #expect(ethernet.etherType == EtherType.ipv6, sourceLocation: sourceLocation)
        let ip = frame.innerIPv6?.ip
        #expect(ip?.source == from.innerIPv6, sourceLocation: sourceLocation)
        #expect(ip?.destination == to.innerIPv6, sourceLocation: sourceLocation)
        #expect(ip?.hopLimit == 64, sourceLocation: sourceLocation)
        #expect(ip?.nextHeader == IPProtocol.icmpv6, sourceLocation: sourceLocation)
        #expect(ip?.payloadLength == 64, sourceLocation: sourceLocation)
        #expect(
            frame.icmpv6?.type == (kind.direction == .aToB ? 128 : 129),
            sourceLocation: sourceLocation)
        #expect(frame.echo?.sequence == sequence, sourceLocation: sourceLocation)
        #expect(frame.innerTransportChecksumVerifies, sourceLocation: sourceLocation)

    case .tcp(let direction, let flags):
        #expect(ethernet.destination == to.innerMAC, sourceLocation: sourceLocation)
        let ip = frame.innerIPv4?.ip
        #expect(ip?.source == from.innerIPv4, sourceLocation: sourceLocation)
        #expect(ip?.destination == to.innerIPv4, sourceLocation: sourceLocation)
        #expect(ip?.protocol == IPProtocol.tcp, sourceLocation: sourceLocation)
        #expect(ip?.dontFragment == true, sourceLocation: sourceLocation)
        let tcp = frame.tcp
        let (client, server): (UInt16, UInt16) = (40000, 7000)
        #expect(
            tcp?.sourcePort == (direction == .aToB ? client : server),
            sourceLocation: sourceLocation)
        #expect(
            tcp?.destinationPort == (direction == .aToB ? server : client),
            sourceLocation: sourceLocation)
        #expect(tcp?.flags == flags, sourceLocation: sourceLocation)
        // SYNs carry MSS, SACK-permitted, timestamps and window scale (40 bytes); the rest
        // timestamps only (32).
        #expect(tcp?.headerLength == (flags & 0x02 != 0 ? 40 : 32), sourceLocation: sourceLocation)
        #expect(frame.innerTransportChecksumVerifies, sourceLocation: sourceLocation)
    }
}

/// Checks the VXLAN layer of a kernel frame.
private func checkKernelVXLAN(
    _ frame: GoldenFrame, sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let (udp, vxlan) = frame.vxlan else {
        Issue.record("not VXLAN", sourceLocation: sourceLocation)
        return
    }
    #expect(udp.destinationPort == UDPHeader.vxlanPort, sourceLocation: sourceLocation)
    #expect(
        GoldenTopology.kernelSourcePorts.contains(udp.sourcePort), sourceLocation: sourceLocation)
    #expect(Int(udp.length) == frame.bytes.count - udp.offset, sourceLocation: sourceLocation)
    #expect(udp.offset == (frame.outerIPv6 == nil ? 34 : 54), sourceLocation: sourceLocation)
    // `ip -d link` showed "udpcsum": the kernel fills in the outer UDP checksum over IPv4
    // too, and it is mandatory over IPv6 (noudp6zerocsumtx).
    #expect(udp.checksum != 0, sourceLocation: sourceLocation)
    #expect(frame.outerUDPChecksumVerifies, sourceLocation: sourceLocation)
    #expect(vxlan.vni == GoldenTopology.vni, sourceLocation: sourceLocation)
    #expect(frame.innerOffset == udp.offset + 16, sourceLocation: sourceLocation)
    // Flags 0x08 (I) and every reserved bit zero, as RFC 7348 §5 says to send.
    #expect(
        Array(frame.bytes[udp.payloadOffset..<udp.payloadOffset + 8])
            == [0x08, 0, 0, 0, 0x00, 0x13, 0x89, 0], sourceLocation: sourceLocation)
}

/// Checks the GRE layer of an OVS frame: K always, C and S as configured.
private func checkOVSGRE(
    _ frame: GoldenFrame, checksum: Bool, sequence: UInt32?,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let gre = frame.gre else {
        Issue.record("not GRE", sourceLocation: sourceLocation)
        return
    }
    let greOffset = frame.outerIPv6 == nil ? 34 : 54
    #expect(gre.offset == greOffset, sourceLocation: sourceLocation)
    #expect(
        gre.protocolType == EtherType.transparentEthernetBridging, sourceLocation: sourceLocation)
    #expect(gre.key == GoldenTopology.vni, sourceLocation: sourceLocation)
    #expect((try? gre.requiredKey()) == 5001, sourceLocation: sourceLocation)
    #expect(gre.checksumPresent == checksum, sourceLocation: sourceLocation)
    #expect(gre.sequence == sequence, sourceLocation: sourceLocation)
    #expect(frame.innerOffset == greOffset + gre.headerLength, sourceLocation: sourceLocation)
    let flags: UInt16 = 0x2000 | (checksum ? 0x8000 : 0) | (sequence == nil ? 0 : 0x1000)
    #expect(goldenBE16(frame.bytes, greOffset) == flags, sourceLocation: sourceLocation)
    #expect(goldenBE16(frame.bytes, greOffset + 2) == 0x6558, sourceLocation: sourceLocation)
    if let ip = frame.outerIPv4 {
        #expect(ip.protocol == IPProtocol.gre, sourceLocation: sourceLocation)
        // OVS sets DF (df_default=true) and leaves the identification 0 (RFC 6864 §4.1).
        #expect(ip.dontFragment, sourceLocation: sourceLocation)
        #expect(ip.identification == 0, sourceLocation: sourceLocation)
    }
    if let ip = frame.outerIPv6 {
        #expect(ip.nextHeader == IPProtocol.gre, sourceLocation: sourceLocation)
    }
}

// MARK: - Building the same outer headers

/// Encapsulates `inner` with `template` into a fresh buffer.
private func goldenStamp(
    _ template: OuterHeaderTemplate, _ inner: ArraySlice<UInt8>, sourcePort: UInt16 = 0,
    sequence: UInt32 = 0, identification: UInt16 = 0
) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: template.headerLength + inner.count)
    out.replaceSubrange(template.headerLength..., with: inner)
    let end = try out.withUnsafeMutableBytes { buffer in
        try template.stamp(
            into: buffer, at: 0, innerLength: inner.count, sourcePort: sourcePort,
            sequence: sequence, identification: identification)
    }
    #expect(end == out.count)
    return out
}

/// The template for the tunnel `frame` travelled through, with the peers' outer addresses.
private func goldenTemplate(
    for frame: GoldenFrame, encapsulation: Encapsulation, dontFragment: Bool,
    greChecksum: Bool = false, greSequence: Bool = false
) throws -> OuterHeaderTemplate {
    let network: OuterHeaderTemplate.Network =
        switch frame.outer {
        case .ipv4(let ip):
            .ipv4(
                source: ip.source, destination: ip.destination, ttl: 64, tos: 0,
                dontFragment: dontFragment)
        case .ipv6(let ip):
            .ipv6(source: ip.source, destination: ip.destination, hopLimit: 64)
        }
    return try OuterHeaderTemplate(
        encapsulation: encapsulation, vni: GoldenTopology.vni, network: network,
        ethernet: .init(
            destination: frame.outerEthernet.destination, source: frame.outerEthernet.source),
        greChecksum: greChecksum, greSequence: greSequence)
}

// MARK: - The tests

@Suite("Golden captures from Linux vxlan and Open vSwitch GRE")
struct GoldenCaptureTests {
    @Test("every fixture is a classic Ethernet pcap of whole frames", arguments: GoldenFixtures.all)
    func fixtureIsWholeEthernetFrames(_ name: String) throws {
        let file = try GoldenFixtures.load(name)
        #expect(file.linkType == .ethernet)
        #expect(file.snapshotLength == 256)
        #expect(!file.records.isEmpty && file.records.count <= 30)
        // kernel-vxlan-ipv6.pcap was written with --time-stamp-precision=nano.
        #expect(file.nanosecondResolution == (name == "kernel-vxlan-ipv6.pcap"))
        for record in file.records {
            #expect(!record.isTruncated)
            #expect(record.data.count < 256)
            #expect(record.nanoseconds < 1_000_000_000)
        }
        let times = file.records.map { UInt64($0.seconds) * 1_000_000_000 + UInt64($0.nanoseconds) }
        #expect(times == times.sorted())
        if file.nanosecondResolution {
            #expect(file.records.contains { $0.nanoseconds % 1000 != 0 })
        } else {
            #expect(file.records.allSatisfy { $0.nanoseconds % 1000 == 0 })
        }
        let network = try file.networkPackets()
        #expect(network.count == file.records.count)
        #expect(
            network.allSatisfy {
                $0.protocolType == EtherType.ipv4 || $0.protocolType == EtherType.ipv6
            })
    }

    @Test("our parsers accept every captured frame a peer got right", arguments: GoldenFixtures.all)
    func parsingNeverThrows(_ name: String) throws {
        for (index, packet) in try GoldenFixtures.load(name).packets.enumerated() {
            if name == GoldenFixtures.ovsGREChecksumWithSequence && index >= 2 {
                // OVS's checksum is wrong on these (see ovsChecksumWithSequenceIsWrong).
                #expect(throws: Malformed.greBadChecksum, "frame \(index)") {
                    try GoldenFrame.decode(packet)
                }
            } else {
                #expect(throws: Never.self, "frame \(index)") { try GoldenFrame.decode(packet) }
            }
        }
    }

    @Test("Linux vxlan over IPv4: ARP and ICMP echo in VNI 5001")
    func kernelVXLANOverIPv4() throws {
        let frames = try GoldenFixtures.load("kernel-vxlan-ipv4.pcap").packets.map(
            GoldenFrame.decode)
        try #require(frames.count == goldenARPAndThreePings.count)
        for (frame, kind) in zip(frames, goldenARPAndThreePings) {
            let direction = checkOuter(
                frame, a: GoldenTopology.kernelA, b: GoldenTopology.kernelB, ipv6Underlay: false)
            #expect(direction == kind.direction)
            // The kernel's outer IPv4: DF clear, a per-packet identification.
            #expect(frame.outerIPv4?.dontFragment == false)
            #expect(frame.outerIPv4?.protocol == IPProtocol.udp)
            checkKernelVXLAN(frame)
            checkInner(frame, kind, a: GoldenTopology.kernelA, b: GoldenTopology.kernelB)
        }
        checkEchoIdentifiers(frames)
    }

    @Test("Linux vxlan over IPv6: ARP and ICMP echo in VNI 5001")
    func kernelVXLANOverIPv6() throws {
        let frames = try GoldenFixtures.load("kernel-vxlan-ipv6.pcap").packets.map(
            GoldenFrame.decode)
        try #require(frames.count == goldenARPAndThreePings.count)
        for (frame, kind) in zip(frames, goldenARPAndThreePings) {
            let direction = checkOuter(
                frame, a: GoldenTopology.kernelA, b: GoldenTopology.kernelB, ipv6Underlay: true)
            #expect(direction == kind.direction)
            #expect(frame.outerIPv6?.nextHeader == IPProtocol.udp)
            checkKernelVXLAN(frame)
            checkInner(frame, kind, a: GoldenTopology.kernelA, b: GoldenTopology.kernelB)
        }
        checkEchoIdentifiers(frames)
    }

    @Test("Linux vxlan: inner IPv6 neighbour discovery and ICMPv6 echo")
    func kernelVXLANInnerIPv6() throws {
        let frames = try GoldenFixtures.load("kernel-vxlan-inner-ipv6.pcap").packets.map(
            GoldenFrame.decode)
        let kinds: [GoldenKind] = [
            .neighborSolicitation, .neighborAdvertisement,
            .echo6Request(sequence: 1), .echo6Reply(sequence: 1),
            .echo6Request(sequence: 2), .echo6Reply(sequence: 2),
        ]
        try #require(frames.count == kinds.count)
        for (frame, kind) in zip(frames, kinds) {
            let direction = checkOuter(
                frame, a: GoldenTopology.kernelA, b: GoldenTopology.kernelB, ipv6Underlay: false)
            #expect(direction == kind.direction)
            checkKernelVXLAN(frame)
            checkInner(frame, kind, a: GoldenTopology.kernelA, b: GoldenTopology.kernelB)
        }
        checkEchoIdentifiers(frames)
        // Linux gives each direction of the echo flow its own IPv6 flow label (RFC 6437).
        let labels = frames[2...].map { $0.innerIPv6?.ip.flowLabel }
        #expect(labels[0] != 0 && labels[0] == labels[2])
        #expect(labels[1] != 0 && labels[1] == labels[3])
    }

    @Test("Linux vxlan: a whole inner TCP connection")
    func kernelVXLANInnerTCP() throws {
        let frames = try GoldenFixtures.load("kernel-vxlan-inner-tcp.pcap").packets.map(
            GoldenFrame.decode)
        let kinds: [GoldenKind] = [
            .arpRequest, .arpReply,
            .tcp(.aToB, flags: 0x02),  // SYN
            .tcp(.bToA, flags: 0x12),  // SYN, ACK
            .tcp(.aToB, flags: 0x10),  // ACK
            .tcp(.aToB, flags: 0x18),  // PSH, ACK: "hello vtep\n"
            .tcp(.bToA, flags: 0x10),  // ACK
            .tcp(.aToB, flags: 0x11),  // FIN, ACK
            .tcp(.bToA, flags: 0x11),  // FIN, ACK
            .tcp(.aToB, flags: 0x10),  // ACK
        ]
        try #require(frames.count == kinds.count)
        for (frame, kind) in zip(frames, kinds) {
            let direction = checkOuter(
                frame, a: GoldenTopology.kernelA, b: GoldenTopology.kernelB, ipv6Underlay: false)
            #expect(direction == kind.direction)
            checkKernelVXLAN(frame)
            checkInner(frame, kind, a: GoldenTopology.kernelA, b: GoldenTopology.kernelB)
        }
        let tcp = frames[2...].compactMap(\.tcp)
        try #require(tcp.count == 8)
        let (client, server) = (tcp[0].sequenceNumber, tcp[1].sequenceNumber)
        // The handshake and the byte counting of RFC 9293 §3.4: SYN and FIN take one number.
        #expect(tcp[1].acknowledgmentNumber == client &+ 1)
        #expect(tcp[2].sequenceNumber == client &+ 1 && tcp[2].acknowledgmentNumber == server &+ 1)
        #expect(tcp[3].sequenceNumber == client &+ 1)
        #expect(tcp[4].acknowledgmentNumber == client &+ 12)
        #expect(tcp[5].sequenceNumber == client &+ 12)
        #expect(tcp[6].acknowledgmentNumber == client &+ 13)
        #expect(tcp[7].acknowledgmentNumber == server &+ 2)
        let data = frames[5]
        let payloadStart = try #require(data.tcp).payloadOffset
        #expect(Array(data.innerFrame.dropFirst(payloadStart)) == Array("hello vtep\n".utf8))
    }

    @Test(
        "Open vSwitch GRE: key 5001, TEB, with checksum, sequence numbers, IPv6",
        arguments: GoldenFixtures.ovsGRE)
    func ovsGRE(_ name: String) throws {
        let frames = try GoldenFixtures.load(name).packets.map(GoldenFrame.decode)
        try #require(frames.count == goldenARPAndThreePings.count)
        let withChecksum = name.contains("csum")
        let withSequence = name.contains("seq")
        var nextSequence: [GoldenDirection: UInt32] = [.aToB: 0, .bToA: 0]
        for (frame, kind) in zip(frames, goldenARPAndThreePings) {
            let direction = checkOuter(
                frame, a: GoldenTopology.ovsA, b: GoldenTopology.ovsB,
                ipv6Underlay: name.contains("ipv6"))
            #expect(direction == kind.direction)
            // OVS counts sequence numbers per tunnel port from 0 (RFC 2890 §2.2).
            let sequence = withSequence ? nextSequence[direction] : nil
            nextSequence[direction]! += 1
            checkOVSGRE(frame, checksum: withChecksum, sequence: sequence)
            checkInner(frame, kind, a: GoldenTopology.ovsA, b: GoldenTopology.ovsB)
        }
        checkEchoIdentifiers(frames)
    }

    @Test("OVS 3.1 csum+seq: the GRE checksum is computed before the sequence number is written")
    func ovsChecksumWithSequenceIsWrong() throws {
        let packets = try GoldenFixtures.load(GoldenFixtures.ovsGREChecksumWithSequence).packets
        try #require(packets.count == 5)
        // The seq-0 frames (ARP request and reply) are right and parse whole.
        for (packet, kind) in zip(packets[..<2], [GoldenKind.arpRequest, .arpReply]) {
            let frame = try GoldenFrame.decode(packet)
            _ = checkOuter(
                frame, a: GoldenTopology.ovsA, b: GoldenTopology.ovsB, ipv6Underlay: false)
            checkOVSGRE(frame, checksum: true, sequence: 0)
            checkInner(frame, kind, a: GoldenTopology.ovsA, b: GoldenTopology.ovsB)
        }
        // The three echo requests carry sequence numbers 1–3 and a checksum that is the one
        // for sequence number 0: our template, stamping the same frame with sequence 0, writes
        // exactly OVS's checksum; with the real sequence number it writes a correct one.
        for (index, packet) in packets.enumerated().dropFirst(2) {
            #expect(throws: Malformed.greBadChecksum) { try GoldenFrame.decode(packet) }
            let sequence = UInt32(index - 1)
            #expect(goldenBE16(packet, 34) == 0xB000)  // C K S
            #expect(goldenBE32(packet, 42) == 5001)
            #expect(goldenBE32(packet, 46) == sequence)
            let template = try OuterHeaderTemplate(
                encapsulation: .gre, vni: 5001,
                network: .ipv4(
                    source: GoldenTopology.ovsA.underlayIPv4,
                    destination: GoldenTopology.ovsB.underlayIPv4),
                ethernet: .init(
                    destination: GoldenTopology.ovsB.underlayMAC,
                    source: GoldenTopology.ovsA.underlayMAC),
                greChecksum: true, greSequence: true)
            #expect(template.headerLength == 50)
            let inner = packet[50...]
            let asOVS = try goldenStamp(template, inner, sequence: 0)
            #expect(goldenBE16(asOVS, 38) == goldenBE16(packet, 38))
            let correct = try goldenStamp(template, inner, sequence: sequence)
            #expect(Array(correct[..<38]) == Array(packet[..<38]))
            #expect(Array(correct[40...]) == Array(packet[40...]))
            #expect(goldenBE16(correct, 38) != goldenBE16(packet, 38))
            let reparsed = try GoldenFrame.decode(correct)
            #expect(reparsed.gre?.sequence == sequence)
            #expect(reparsed.icmp?.type == 8)
        }
    }

    @Test(
        "our VXLAN template builds the kernel's outer headers",
        arguments: GoldenFixtures.kernelVXLAN)
    func vxlanTemplateMatchesKernel(_ name: String) throws {
        for (index, packet) in try GoldenFixtures.load(name).packets.enumerated() {
            let frame = try GoldenFrame.decode(packet)
            let (udp, _) = try #require(frame.vxlan)
            // The kernel leaves DF clear and numbers its IPv4 packets; our template is told
            // the same, and the identification and source port (a different hash of the
            // same flow) are taken from the capture.
            let template = try goldenTemplate(
                for: frame, encapsulation: .vxlan, dontFragment: false)
            #expect(template.headerLength == frame.innerOffset, "frame \(index)")
            var built = try goldenStamp(
                template, frame.innerFrame, sourcePort: udp.sourcePort,
                identification: frame.outerIPv4?.identification ?? 0)
            if frame.outerIPv4 != nil {
                // RFC 7348 §5: our IPv4 UDP checksum is 0 ("SHOULD be transmitted as zero");
                // the kernel (udpcsum) fills it in. Compare with the correct checksum put in.
                #expect(goldenBE16(built, udp.offset + 6) == 0, "frame \(index)")
                var sum = InternetChecksum()
                sum.addIPv4PseudoHeader(
                    source: frame.outerIPv4!.source, destination: frame.outerIPv4!.destination,
                    protocol: IPProtocol.udp, length: udp.length)
                built.withUnsafeBytes {
                    sum.add(UnsafeRawBufferPointer(rebasing: $0[udp.offset...]))
                }
                let field = UDPHeader.checksumField(sum)
                built[udp.offset + 6] = UInt8(field >> 8)
                built[udp.offset + 7] = UInt8(field & 0xFF)
            }
            let ours = Array(built[..<template.headerLength])
            let theirs = Array(packet[..<frame.innerOffset])
            #expect(
                ours == theirs,
                "frame \(index): ours \(goldenHex(ours)) kernel \(goldenHex(theirs))")
            #expect(built == packet, "frame \(index)")
        }
    }

    @Test(
        "our GRE template builds OVS's outer headers byte for byte",
        arguments: GoldenFixtures.ovsGRE)
    func greTemplateMatchesOVS(_ name: String) throws {
        for (index, packet) in try GoldenFixtures.load(name).packets.enumerated() {
            let frame = try GoldenFrame.decode(packet)
            let gre = try #require(frame.gre)
            let template = try goldenTemplate(
                for: frame, encapsulation: .gre, dontFragment: true,
                greChecksum: gre.checksumPresent, greSequence: gre.sequence != nil)
            #expect(template.headerLength == frame.innerOffset, "frame \(index)")
            // Nothing legitimately differs: OVS sends IPv4 ID 0 with DF, no flow label, and
            // the GRE checksum covers only what both sides put there.
            let built = try goldenStamp(template, frame.innerFrame, sequence: gre.sequence ?? 0)
            let ours = Array(built[..<template.headerLength])
            let theirs = Array(packet[..<frame.innerOffset])
            #expect(
                ours == theirs, "frame \(index): ours \(goldenHex(ours)) OVS \(goldenHex(theirs))")
            #expect(built == packet, "frame \(index)")
        }
    }

    @Test(
        "flow hash: one source port per flow direction, in 49152–65535",
        arguments: GoldenFixtures.kernelVXLAN + GoldenFixtures.ovsGRE)
    func flowHashIsStablePerFlowDirection(_ name: String) throws {
        let hasher = FlowHasher(key: 0x7654_3210_FEDC_BA98)
        let frames = try GoldenFixtures.load(name).packets.map(GoldenFrame.decode)
        var hashes: [String: Set<UInt32>] = [:]
        var kernelPorts: [String: Set<UInt16>] = [:]
        for frame in frames {
            let flow = goldenFlowKey(frame)
            let hash = frame.innerFrame.withUnsafeBytes { hasher.hash($0) }
            hashes[flow, default: []].insert(hash)
            let port = SourcePortRange.rfc7348Default.port(for: hash)
            #expect((49152...65535).contains(port))
            if let (udp, _) = frame.vxlan {
                // Linux's flow dissector also hashes the IPv6 flow label (RFC 6438), which it
                // sets per socket: its NA and its echo replies are two flows to it, one to us.
                let label = frame.innerIPv6.map { " label \($0.ip.flowLabel)" } ?? ""
                kernelPorts[flow + label, default: []].insert(udp.sourcePort)
            }
        }
        for (flow, values) in hashes {
            #expect(values.count == 1, "flow \(flow) hashed to \(values)")
        }
        // The kernel keeps one port per flow direction too (it hashes the same fields).
        for (flow, ports) in kernelPorts {
            #expect(ports.count == 1, "kernel used ports \(ports) for flow \(flow)")
        }
        if name == "kernel-vxlan-inner-tcp.pcap" {
            let forward = try #require(
                hashes[
                    "02:00:00:00:51:01>02:00:00:00:51:02 800 192.168.51.1>192.168.51.2 6 40000>7000"
                ])
            let reverse = try #require(
                hashes[
                    "02:00:00:00:51:02>02:00:00:00:51:01 800 192.168.51.2>192.168.51.1 6 7000>40000"
                ])
            #expect(forward != reverse)
        }
    }

    // MARK: Helpers

    /// Every echo request and reply of a capture carries one identifier.
    private func checkEchoIdentifiers(
        _ frames: [GoldenFrame], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let identifiers = Set(frames.compactMap { $0.echo?.identifier })
        #expect(
            identifiers.count == 1, "echo identifiers \(identifiers)",
            sourceLocation: sourceLocation)
    }
}

/// The inner flow as text: MACs, EtherType, and for IP the addresses, protocol and ports.
private func goldenFlowKey(_ frame: GoldenFrame) -> String {
    let ethernet = frame.innerEthernet
    var key =
        "\(ethernet.source)>\(ethernet.destination) \(String(ethernet.etherType, radix: 16))"
    func ports(_ transport: GoldenFrame.Transport) -> String {
        switch transport {
        case .tcp(let tcp): " \(tcp.sourcePort)>\(tcp.destinationPort)"
        case .udp(let udp): " \(udp.sourcePort)>\(udp.destinationPort)"
        default: ""
        }
    }
    if let (ip, transport) = frame.innerIPv4 {
        key += " \(ip.source)>\(ip.destination) \(ip.protocol)" + ports(transport)
    } else if let (ip, transport) = frame.innerIPv6 {
        key += " \(ip.source)>\(ip.destination) \(ip.upperLayerProtocol)" + ports(transport)
    }
    return key
}

@Suite("PcapFile reads classic libpcap files")
struct PcapFileTests {
    /// A big-endian, microsecond file with one 14-byte record, as a SPARC would write it.
    private static let bigEndianFile: [UInt8] =
        [0xA1, 0xB2, 0xC3, 0xD4, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 1]
        + [0, 0, 0, 10, 0, 0, 0, 7, 0, 0, 0, 14, 0, 0, 0, 60]
        + [UInt8](repeating: 0xFF, count: 6) + [2, 0, 0, 0, 0, 1, 0x08, 0x06]

    @Test func readsBigEndianMicroseconds() throws {
        let file = try PcapFile(bytes: Self.bigEndianFile)
        #expect(file.linkType == .ethernet)
        #expect(!file.nanosecondResolution)
        #expect(file.snapshotLength == 65535)
        #expect(file.records.count == 1)
        #expect(file.records[0].seconds == 10)
        #expect(file.records[0].nanoseconds == 7000)
        #expect(file.records[0].originalLength == 60)
        #expect(file.records[0].isTruncated)
        #expect(try file.networkPackets()[0].protocolType == EtherType.arp)
    }

    @Test func refusesTruncatedRecordsAndPcapng() {
        #expect(throws: PcapFile.ReadError.truncatedRecord(index: 0)) {
            try PcapFile(bytes: Array(Self.bigEndianFile.dropLast()))
        }
        #expect(throws: PcapFile.ReadError.pcapng) {
            try PcapFile(bytes: [0x0A, 0x0D, 0x0D, 0x0A] + [UInt8](repeating: 0, count: 24))
        }
        #expect(throws: PcapFile.ReadError.tooShort) { try PcapFile(bytes: [0xD4, 0xC3]) }
    }

    @Test func stripsLinuxCookedHeaders() throws {
        // LINUX_SLL2 (276), little-endian nanoseconds, one IPv4 packet of 1 byte.
        var file: [UInt8] = [0x4D, 0x3C, 0xB2, 0xA1, 2, 0, 4, 0] + [UInt8](repeating: 0, count: 8)
        file += [0, 1, 0, 0, 0x14, 0x01, 0, 0]
        file += [1, 0, 0, 0, 5, 0, 0, 0, 21, 0, 0, 0, 21, 0, 0, 0]
        file +=
            [0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6] + [UInt8](repeating: 0, count: 8) + [0x45]
        let pcap = try PcapFile(bytes: file)
        #expect(pcap.linkType == .linuxSLL2)
        #expect(pcap.nanosecondResolution)
        #expect(pcap.records[0].nanoseconds == 5)
        let network = try pcap.networkPackets()
        #expect(network[0].protocolType == EtherType.ipv4)
        #expect(Array(network[0].bytes) == [0x45])
    }
}
