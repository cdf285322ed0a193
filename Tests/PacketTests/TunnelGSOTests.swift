import Packet
import PropertyChecks
import Testing

/// A TCP super-frame handed to the kernel whole inside VXLAN (`vxlan-transmit tunnel-gso`):
/// the outer headers `OuterHeaderTemplate.stampWhole` writes and the virtio_net_hdr with
/// its UDP-tunnel extension `SuperFrame.storeTunnelHeader` gives must describe exactly the
/// segments software segmentation would have sent, and pass the checks of Linux's
/// `virtio_net_hdr_tnl_to_skb`.
@Suite struct TunnelGSOTests {
    static let underlay = OuterHeaderTemplate.Ethernet(
        destination: MACAddress(0x02, 0, 0, 0, 0, 0xAA), source: MACAddress(0x02, 0, 0, 0, 0, 0xBB))
    static let template = try! OuterHeaderTemplate(
        encapsulation: .vxlan, vni: 5001,
        network: .ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2)),
        ethernet: underlay)
    static let template6 = try! OuterHeaderTemplate(
        encapsulation: .vxlan, vni: 5001,
        network: .ipv6(
            source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!),
        ethernet: underlay)

    /// The packet written to the TAP device for `frame`: virtio_net_hdr (24 bytes), outer
    /// headers (over IPv6 with `outerIPv6`), the untagged frame; the segment size fits
    /// `underlayMTU`.
    static func packet(
        _ frame: [UInt8], header: VirtioNetHeader, outerIPv6: Bool = false,
        underlayMTU: Int = 1500
    ) throws -> (bytes: [UInt8], pieces: SuperFrame) {
        let template = outerIPv6 ? Self.template6 : Self.template
        let overhead = outerIPv6 ? 56 : 36
        return try frame.withUnsafeBytes { raw in
            let untagged = try SuperFrame(raw, header: header, maximumSegmentSize: 1)
                .untaggedHeaderLength
            let pieces = try SuperFrame(
                raw, header: header, maximumSegmentSize: underlayMTU - overhead - untagged)
            var out = [UInt8](repeating: 0, count: 24 + 14 + overhead)
            let outer = try out.withUnsafeMutableBytes { b in
                let outer = try template.stampWhole(
                    into: b, at: 24, innerLength: pieces.packetEnd - pieces.tagLength,
                    sourcePort: 0xC123)
                pieces.storeTunnelHeader(behind: template, ecn: false, to: b.baseAddress!)
                return outer
            }
            #expect(outer == 14 + overhead)
            let tag = pieces.tagLength
            out += tag == 0
                ? Array(frame[..<pieces.packetEnd])
                : Array(frame[..<12]) + Array(frame[(12 + tag)..<pieces.packetEnd])
            return (out, pieces)
        }
    }

    @Test(arguments: [false, true])
    func aSuperFrameBecomesOneTunnelPacketDescribingItsSegments(outerIPv6: Bool) throws {
        let outerLength = outerIPv6 ? 70 : 50
        let ip = outerIPv6 ? 40 : 20
        try seededCheck(count: 150, seed: 0x7C6E, OffloadTests.shapes) { shape in
            let data = OffloadTests.payload(shape.payload, seed: shape.seed)
            let frame = OffloadTests.tcpFrame(
                ipv6: shape.ipv6, vlan: shape.vlan, payload: data, timestamps: shape.timestamps)
            let l2 = shape.vlan == nil ? 14 : 18
            let headers = l2 + (shape.ipv6 ? 40 : 20) + (shape.timestamps ? 32 : 20)
            let header = OffloadTests.gsoHeader(
                ipv6: shape.ipv6, size: shape.gsoSize, l2: l2, headers: headers)
            let (bytes, pieces) = try Self.packet(frame, header: header, outerIPv6: outerIPv6)
            try bytes.withUnsafeBytes { raw in
                let v = VirtioNetHeader.load(from: raw.baseAddress!)
                let outerTransport = Int(
                    UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 20, as: UInt16.self)))
                let innerNetwork = Int(
                    UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 22, as: UInt16.self)))
                let p = UnsafeRawBufferPointer(rebasing: raw[24...])
                // What virtio_net_hdr_tnl_to_skb requires.
                let tunnel =
                    outerIPv6 ? VirtioNetHeader.GSO.udpTunnelIPv6 : VirtioNetHeader.GSO.udpTunnelIPv4
                #expect(
                    v.flags == VirtioNetHeader.needsChecksum
                        | (outerIPv6 ? VirtioNetHeader.udpTunnelChecksum : 0))
                #expect(
                    v.gsoType
                        == tunnel | (shape.ipv6 ? VirtioNetHeader.GSO.tcpv6 : VirtioNetHeader.GSO.tcpv4))
                #expect(outerTransport == 14 + ip && innerNetwork == outerLength + 14)
                #expect(Int(v.checksumStart) >= innerNetwork + (shape.ipv6 ? 40 : 20))
                #expect(v.checksumOffset == 16)
                #expect(Int(v.headerLength) == outerLength + headers - l2 + 14)
                #expect(Int(v.gsoSize) == pieces.segmentSize)
                // Each segment, outer headers and all, fits the underlay's 1,500 bytes.
                #expect(ip + 16 + pieces.untaggedHeaderLength + pieces.segmentSize <= 1500)
                for zero in 10..<20 { #expect(raw[zero] == 0) }

                // The outer headers as the underlay sends them: to the next hop from the
                // underlay's MAC, the configured TTL, UDP to 4789 with the flow's source
                // port, VXLAN 5001; over IPv4 no UDP checksum, over IPv6 the pseudo-header
                // sum for the kernel to finish per segment.
                let ethernet = try EthernetHeader.parse(p)
                #expect(ethernet.destination == Self.underlay.destination)
                #expect(ethernet.source == Self.underlay.source)
                let udpLength = p.count - 14 - ip
                var pseudo = InternetChecksum()
                if outerIPv6 {
                    #expect(ethernet.etherType == EtherType.ipv6)
                    let header = try IPv6Header.parse(p, at: 14)
                    #expect(header.hopLimit == 64)
                    #expect(Int(header.payloadLength) == udpLength)
                    pseudo.addIPv6PseudoHeader(
                        source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!,
                        nextHeader: IPProtocol.udp, length: UInt32(udpLength))
                } else {
                    let header = try IPv4Header.parse(p, at: 14)
                    #expect(header.ttl == 64 && header.dontFragment)
                    #expect(Int(header.totalLength) == p.count - 14)
                    #expect(
                        InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: p[14..<34])) == 0)
                }
                let udp = try UDPHeader.parse(p, at: outerTransport)
                #expect(udp.sourcePort == 0xC123 && udp.destinationPort == 4789)
                #expect(Int(udp.length) == udpLength)
                #expect(udp.checksum == (outerIPv6 ? pseudo.folded : 0))
                #expect(try VXLANHeader.parse(p, at: outerLength - 8).vni == 5001)

                // The inner frame, cut as the header says (the kernel's TSO of it), gives the
                // segments of the super-frame as read, each with a full, correct checksum.
                let inner = UnsafeRawBufferPointer(rebasing: p[outerLength...])
                let innerHeader = VirtioNetHeader(
                    flags: VirtioNetHeader.needsChecksum, gsoType: v.gsoType & ~tunnel,
                    headerLength: v.headerLength - UInt16(outerLength), gsoSize: v.gsoSize,
                    checksumStart: v.checksumStart - UInt16(outerLength),
                    checksumOffset: v.checksumOffset)
                let cut = try OffloadTests.segments(
                    of: Array(inner), header: innerHeader, limit: Int(v.gsoSize))
                let expected = try OffloadTests.segments(
                    of: frame, header: header, limit: pieces.segmentSize)
                #expect(cut == expected)
            }
        }
    }

    @Test func aVerifiedChecksumIsReplacedByThePseudoHeaderSumTSOWouldHaveLeft() throws {
        try seededCheck(count: 100, seed: 0x51C3, OffloadTests.shapes) { shape in
            let data = OffloadTests.payload(shape.payload, seed: shape.seed)
            var verified = OffloadTests.tcpFrame(
                ipv6: shape.ipv6, vlan: shape.vlan, payload: data, timestamps: shape.timestamps,
                fullChecksum: true)
            let partial = OffloadTests.tcpFrame(
                ipv6: shape.ipv6, vlan: shape.vlan, payload: data, timestamps: shape.timestamps)
            let l2 = shape.vlan == nil ? 14 : 18
            let header = OffloadTests.gsoHeader(
                ipv6: shape.ipv6, size: shape.gsoSize, l2: l2,
                headers: l2 + (shape.ipv6 ? 40 : 20) + (shape.timestamps ? 32 : 20))
            let pieces = try verified.withUnsafeBytes {
                try SuperFrame($0, header: header, maximumSegmentSize: 1398)
            }
            verified.withUnsafeMutableBytes { pieces.storePseudoHeaderSum(in: $0) }
            #expect(verified == partial)
        }
    }

    @Test func whatGoesWholeAndWhatCannot() throws {
        let template = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 7,
            network: .ipv4(
                source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2), ttl: 255),
            ethernet: Self.underlay)
        var out = [UInt8](repeating: 0, count: 50)
        let written = try out.withUnsafeMutableBytes {
            try template.stampWhole(into: $0, at: 0, innerLength: 100, sourcePort: 1)
        }
        #expect(written == 50)
        #expect(out[22] == 255, "the configured TTL")
        // Too long for one outer IPv4 packet: refused, for the caller to send trains.
        #expect(throws: Malformed.innerFrameTooLarge) {
            try out.withUnsafeMutableBytes {
                try template.stampWhole(
                    into: $0, at: 0, innerLength: template.maximumInnerLength + 1, sourcePort: 1)
            }
        }
        #expect(Self.template6.goesWhole && template.goesWhole)
        // Without an Ethernet header, or behind a tagged one, a packet cannot leave the
        // underlay as written: trains.
        let bare = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 7,
            network: .ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2)))
        #expect(bare.isVXLANToUnicast && !bare.goesWhole)
        var tagged = Self.underlay
        tagged.vlan = VLANTag(vid: 7)
        let behindTag = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 7,
            network: .ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2)),
            ethernet: tagged)
        #expect(!behindTag.goesWhole)
        #expect(Self.template6.wholeUDPChecksum && !template.wholeUDPChecksum)
        let zero = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 7,
            network: .ipv6(
                source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!,
                zeroUDPChecksum: true))
        #expect(!zero.wholeUDPChecksum, "RFC 6935: a zero checksum stays zero")
        let group6 = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 7,
            network: .ipv6(
                source: IPv6Address("2001:db8::1")!, destination: IPv6Address("ff05::1:3")!))
        #expect(!group6.isVXLANToUnicast && !group6.goesWhole)
        let group = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 7,
            network: .ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(239, 1, 1, 1)))
        #expect(!group.isVXLANToUnicast, "floods to a group stay trains")
        let gre = try OuterHeaderTemplate(
            encapsulation: .gre, vni: 7,
            network: .ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2)))
        #expect(!gre.isVXLANToUnicast)
    }
}
