import Packet
import PropertyBased
import PropertyChecks
import Testing

@Suite("Malformed frames: a named reason, never a trap")
struct MalformedTests {
    typealias Attempt = @Sendable (UnsafeRawBufferPointer) throws -> Void

    static let validIPv6 =
        "6000 0000 0000 3b40 20010db8000000000000000000000001 20010db8000000000000000000000002"

    static func ipv6(nextHeader: UInt8, payload: [UInt8]) -> [UInt8] {
        var bytes = hex(validIPv6) + payload
        bytes[4] = UInt8(payload.count >> 8)
        bytes[5] = UInt8(payload.count & 0xFF)
        bytes[6] = nextHeader
        return bytes
    }

    /// `count` Destination Options headers, each 8 bytes, the last saying No Next Header.
    static func destinationOptionsChain(_ count: Int) -> [UInt8] {
        (0..<count).flatMap { i in hex(i == count - 1 ? "3b00 0104 00000000" : "3c00 0104 00000000")
        }
    }

    static func template() -> OuterHeaderTemplate {
        try! OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 1,
            network: .ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2)))
    }

    /// One crafted input per reason. A new `Malformed` case without a row here fails
    /// `everyReasonHasAnInputThatProducesExactlyIt`.
    static let table: [Malformed: (bytes: [UInt8], attempt: Attempt)] = [
        .ethernetTruncated: (
            hex("ffffffffffff 020000000001 08"), { _ = try EthernetHeader.parse($0) }
        ),
        .vlanTruncated: (
            hex("ffffffffffff 020000000001 8100 0064 08"), { _ = try EthernetHeader.parse($0) }
        ),
        .tooManyVLANTags: (
            hex("ffffffffffff 020000000001 88a8 0001 8100 0002 8100 0003 0800"),
            { _ = try EthernetHeader.parse($0) }
        ),
        .arpTruncated: (
            hex("0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a0000"),
            {
                _ = try ARPPacket.parse($0, at: 0)
            }
        ),
        .arpUnsupportedFormat: (
            hex("0006 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002"),
            {
                _ = try ARPPacket.parse($0, at: 0)
            }
        ),
        .ipv4Truncated: (
            hex("4500 0014 0000 4000 4011 26d7 0a000001 0a0000"),
            { _ = try IPv4Header.parse($0, at: 0) }
        ),
        .ipv4BadVersion: (
            hex("6500 0014 0000 4000 4011 26d7 0a000001 0a000002"),
            { _ = try IPv4Header.parse($0, at: 0) }
        ),
        .ipv4BadHeaderLength: (
            hex("4400 0014 0000 4000 4011 26d7 0a000001 0a000002"),
            {
                _ = try IPv4Header.parse($0, at: 0)
            }
        ),
        .ipv4BadTotalLength: (
            hex("4500 0015 0000 4000 4011 26d6 0a000001 0a000002"),
            {
                _ = try IPv4Header.parse($0, at: 0)
            }
        ),
        .ipv4BadChecksum: (
            hex("4500 0014 0000 4000 4011 0000 0a000001 0a000002"),
            { _ = try IPv4Header.parse($0, at: 0) }
        ),
        .ipv6Truncated: (Array(hex(validIPv6).dropLast()), { _ = try IPv6Header.parse($0, at: 0) }),
        .ipv6BadVersion: (
            [0x40] + hex(validIPv6).dropFirst(), { _ = try IPv6Header.parse($0, at: 0) }
        ),
        .ipv6BadPayloadLength: (
            ipv6(nextHeader: 59, payload: [0, 0]).dropLast(),
            { _ = try IPv6Header.parse($0, at: 0) }
        ),
        .ipv6ExtensionHeaderTruncated: (
            ipv6(nextHeader: 0, payload: hex("3b00 0000")),
            {
                _ = try IPv6Header.parse($0, at: 0)
            }
        ),
        .ipv6TooManyExtensionHeaders: (
            ipv6(nextHeader: 60, payload: destinationOptionsChain(9)),
            {
                _ = try IPv6Header.parse($0, at: 0)
            }
        ),
        .ipv6HopByHopMisplaced: (
            ipv6(nextHeader: 60, payload: hex("0000 0104 00000000 3b00 0104 00000000")),
            {
                _ = try IPv6Header.parse($0, at: 0)
            }
        ),
        .icmpTruncated: (hex("0800 f7fe 0001 00"), { _ = try ICMPHeader.parse($0, at: 0) }),
        .icmpv6Truncated: (hex("8000 0000 0001 00"), { _ = try ICMPHeader.parseV6($0, at: 0) }),
        .udpTruncated: (hex("0001 0002 0008 00"), { _ = try UDPHeader.parse($0, at: 0) }),
        .udpBadLength: (hex("0001 0002 0007 0000"), { _ = try UDPHeader.parse($0, at: 0) }),
        .tcpTruncated: (
            hex("0001 0002 00000000 00000000 5000 ffff 0000 00"),
            { _ = try TCPHeader.parse($0, at: 0) }
        ),
        .tcpBadDataOffset: (
            hex("0001 0002 00000000 00000000 4000 ffff 0000 0000"),
            {
                _ = try TCPHeader.parse($0, at: 0)
            }
        ),
        .vxlanTruncated: (hex("08 000000 00007b"), { _ = try VXLANHeader.parse($0, at: 0) }),
        .vxlanIFlagClear: (hex("00 000000 00007b 00"), { _ = try VXLANHeader.parse($0, at: 0) }),
        .vxlanReservedFlagsSet: (
            hex("48 000000 00007b 00"), { _ = try VXLANHeader.parse($0, at: 0) }
        ),
        .vxlanReservedBitsSet: (
            hex("08 000000 00007b ff"), { _ = try VXLANHeader.parse($0, at: 0) }
        ),
        .greTruncated: (hex("2000 65"), { _ = try GREHeader.parse($0, at: 0) }),
        .greBadVersion: (hex("0001 6558"), { _ = try GREHeader.parse($0, at: 0) }),
        .greRoutingPresent: (hex("4000 6558 0000 0000"), { _ = try GREHeader.parse($0, at: 0) }),
        .greReservedBitsSet: (hex("0800 6558"), { _ = try GREHeader.parse($0, at: 0) }),
        .greBadChecksum: (hex("8000 6558 1234 0000"), { _ = try GREHeader.parse($0, at: 0) }),
        .greWrongProtocol: (hex("0000 0800"), { _ = try GREHeader.parse($0, at: 0) }),
        .greKeyMissing: (hex("0000 6558"), { _ = try GREHeader.parse($0, at: 0).requiredKey() }),
        .nvgreChecksumPresent: (
            hex("a000 6558 00000100"), { _ = try NVGREHeader.parse($0, at: 0) }
        ),
        .nvgreSequencePresent: (
            hex("3000 6558 00000100"), { _ = try NVGREHeader.parse($0, at: 0) }
        ),
        .noHeadroom: (
            hex("ffffffffffff 020000000001 0800"),
            { frame in
                let buffer = TestBuffer(Array(frame))
                _ = try VLANTag.insert(
                    VLANTag(vid: 1), into: buffer.storage, frameStart: 0, frameLength: frame.count)
            }
        ),
        .innerFrameTooLarge: (
            [],
            { _ in
                let buffer = TestBuffer(count: 70_000)
                _ = try template().stamp(into: buffer.storage, at: 0, innerLength: 65_500)
            }
        ),
        // TCPv4 GSO named for a frame that carries UDP.
        .offloadHeaderInvalid: (
            hex(
                "020000000002 020000000001 0800 4500001c 00004000 40110000 0a000001 0a000002"
                    + " 1f901f90 00080000"),
            { frame in
                _ = try SuperFrame(
                    frame,
                    header: VirtioNetHeader(gsoType: VirtioNetHeader.GSO.tcpv4, gsoSize: 1000),
                    maximumSegmentSize: 1400)
            }
        ),
        // UFO (IP fragmentation of one datagram) is never segmented here.
        .offloadUnsupported: (
            hex(
                "020000000002 020000000001 0800 4500001c 00004000 40110000 0a000001 0a000002"
                    + " 1f901f90 00080000"),
            { frame in
                _ = try SuperFrame(
                    frame,
                    header: VirtioNetHeader(gsoType: VirtioNetHeader.GSO.udp, gsoSize: 1000),
                    maximumSegmentSize: 1400)
            }
        ),
        // VXLAN from the underlay's ring: a wrong UDP checksum nobody vouched for, no checksum
        // over IPv6, UDP to another port.
        .udpBadChecksum: (
            UnderlayDatagramTests.frame(checksum: 0x1234),
            { _ = try UnderlayDatagram.parse($0, port: 4789, offload: .plain) }
        ),
        .udpZeroChecksumOverIPv6: (
            UnderlayDatagramTests.frame(ipv6: true, checksum: 0),
            { _ = try UnderlayDatagram.parse($0, port: 4789, offload: .plain) }
        ),
        .underlayNotVXLAN: (
            UnderlayDatagramTests.frame(port: 4790),
            { _ = try UnderlayDatagram.parse($0, port: 4789, offload: .plain) }
        ),
    ]

    @Test func everyReasonHasAnInputThatProducesExactlyIt() {
        for reason in Malformed.allCases {
            guard let row = Self.table[reason] else {
                Issue.record("no crafted input for Malformed.\(reason.counterName)")
                continue
            }
            row.bytes.withUnsafeBytes { raw in
                do {
                    try row.attempt(raw)
                    Issue.record("\(reason.counterName): input parsed without error")
                } catch let error as Malformed {
                    #expect(
                        error == reason,
                        "input for \(reason.counterName) threw \(error.counterName)")
                } catch {
                    Issue.record("\(reason.counterName): unexpected error \(error)")
                }
            }
        }
    }

    @Test func eightExtensionHeadersAreAllowed() throws {
        let bytes = Self.ipv6(nextHeader: 60, payload: Self.destinationOptionsChain(8))
        let ip = try bytes.withUnsafeBytes { raw throws(Malformed) in
            try IPv6Header.parse(raw, at: 0)
        }
        #expect(ip.upperLayerProtocol == IPProtocol.noNextHeader && ip.upperLayerOffset == 40 + 64)
    }

    @Test func reasonsAreDenseAndNamedUniquely() {
        #expect(Malformed.allCases.map(\.rawValue) == Array(0..<UInt8(Malformed.allCases.count)))
        #expect(Set(Malformed.allCases.map(\.counterName)).count == Malformed.allCases.count)
        #expect(Set(Malformed.allCases.map(\.description)).count == Malformed.allCases.count)
        for reason in Malformed.allCases {
            let name = reason.counterName
            #expect(name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(name)")
        }
        #expect(Malformed.vxlanIFlagClear.counterName == "vxlan_i_flag_clear")
        #expect(Malformed.vxlanIFlagClear.description == "VXLAN I flag clear")
        #expect(Malformed.tooManyVLANTags.counterName == "too_many_vlan_tags")
    }

    /// Valid encapsulated frames, each parsed through every layer by `parseStack`.
    static func validFrames() throws -> [[UInt8]] {
        let v4 = OuterHeaderTemplate.Network.ipv4(
            source: IPv4Address(192, 0, 2, 1), destination: IPv4Address(192, 0, 2, 2))
        let v6 = OuterHeaderTemplate.Network.ipv6(
            source: IPv6Address("2001:db8::a")!, destination: IPv6Address("2001:db8::b")!)
        let ethernet = OuterHeaderTemplate.Ethernet(
            destination: MACAddress(rawValue: 0x0200_0000_00AA),
            source: MACAddress(rawValue: 0x0200_0000_00BB),
            vlan: VLANTag(vid: 100))
        let chain = hex("2b00 0104 00000000") + hex("1100 0400 12345678")
        let inners = [
            Frames.ipv4UDP(tags: [VLANTag(vid: 5)]),
            Frames.ipv6UDP(firstNextHeader: 0, extensionHeaders: chain),
            hex(
                """
                ffffffffffff 020000000001 0806
                0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002
                """
            ),
        ]
        var frames: [[UInt8]] = []
        let templates = [
            try OuterHeaderTemplate(
                encapsulation: .vxlan, vni: 10, network: v4, ethernet: ethernet),
            try OuterHeaderTemplate(
                encapsulation: .vxlan, vni: 11, network: v6, ethernet: ethernet),
            try OuterHeaderTemplate(
                encapsulation: .gre, vni: 12, network: v4, ethernet: ethernet, greChecksum: true,
                greSequence: true),
            try OuterHeaderTemplate(
                encapsulation: .nvgre, vni: 0x1000, network: v6, ethernet: ethernet),
        ]
        for (template, inner) in zip(templates, inners + [inners[0]]) {
            let buffer = TestBuffer(inner, at: template.headerLength)
            let end = try template.stamp(
                into: buffer.storage, at: 0, innerLength: inner.count, sourcePort: 55555,
                sequence: 9)
            frames.append(buffer.bytes(0..<end))
        }
        return frames
    }

    /// Every strict prefix of a valid frame throws a reason (each layer checks its length
    /// against what is there), the whole frame parses, and nothing traps.
    @Test func everyPrefixThrowsOrParsesProperty() throws {
        for frame in try Self.validFrames() {
            let layers = try frame.withUnsafeBytes { raw in try parseStack(raw) }
            #expect(layers >= 5)  // outer Ethernet, IP, tunnel, inner Ethernet, inner L3
            for length in 0..<frame.count {
                let prefix = Array(frame[..<length])
                _ = prefix.withUnsafeBytes { raw in
                    #expect(throws: Malformed.self, "prefix \(length) of \(frame.count)") {
                        try parseStack(raw)
                    }
                }
            }
        }
    }

    /// Random corruption of valid frames and random bytes never trap any parser.
    @Test func corruptedFramesNeverTrapProperty() throws {
        let frames = try Self.validFrames()
        let input = zip(
            Gen.int(in: 0...(frames.count - 1)), Gen.int(in: 0...200).array(of: 1...6),
            Gen.uint8().array(of: 6))
        var outcomes = [0, 0]
        seededCheck(count: 3000, seed: 0xF022, input) { which, positions, values in
            var frame = frames[which]
            for (p, v) in zip(positions, values) where p < frame.count { frame[p] = v }
            frame.withUnsafeBytes { raw in
                outcomes[(try? parseStack(raw)) == nil ? 0 : 1] += 1
            }
        }
        #expect(outcomes[0] > 0 && outcomes[1] > 0, "\(outcomes)")
        seededCheck(count: 3000, seed: 0x6A5B, Gen.uint8().array(of: 0...128)) { bytes in
            bytes.withUnsafeBytes { raw in
                _ = try? parseStack(raw)
                for offset in [0, 1, 14, 40] {
                    _ = try? IPv4Header.parse(raw, at: offset)
                    _ = try? IPv6Header.parse(raw, at: offset)
                    _ = try? ARPPacket.parse(raw, at: offset)
                    _ = try? UDPHeader.parse(raw, at: offset, end: 200)
                    _ = try? TCPHeader.parse(raw, at: offset, end: 200)
                    _ = try? ICMPHeader.parse(raw, at: offset)
                    _ = try? VXLANHeader.parse(raw, at: offset)
                    _ = try? GREHeader.parse(raw, at: offset, end: 500)
                    _ = try? NVGREHeader.parse(raw, at: offset)
                }
            }
        }
    }
}
