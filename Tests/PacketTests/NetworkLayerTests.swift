import Packet
import PropertyBased
import PropertyChecks
import Testing

@Suite("ARP, IPv4, IPv6, ICMP, UDP, TCP")
struct NetworkLayerTests {
    /// RFC 826 request: who has 10.0.0.2? tell 10.0.0.1 (02:00:00:00:00:01).
    @Test func arpRequest() throws {
        let bytes = hex("0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002")
        let arp = try bytes.withUnsafeBytes { raw throws(Malformed) in
            try ARPPacket.parse(raw, at: 0)
        }
        #expect(arp.operation == ARPPacket.request)
        #expect(arp.senderHardwareAddress == MACAddress("02:00:00:00:00:01"))
        #expect(arp.senderProtocolAddress == IPv4Address(10, 0, 0, 1))
        #expect(arp.targetHardwareAddress.isZero)
        #expect(arp.targetProtocolAddress == IPv4Address(10, 0, 0, 2))
        let buffer = TestBuffer(count: 28)
        #expect(try arp.store(into: buffer.storage, at: 0) == 28)
        #expect(buffer.bytes(0..<28) == bytes)
    }

    /// The IPv4 header of the checksum example: 192.168.0.1 → 192.168.0.199, UDP, DF, TTL 64.
    @Test func ipv4Example() throws {
        let bytes =
            hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7")
            + [UInt8](repeating: 0, count: 0x73 - 20)
        let ip = try bytes.withUnsafeBytes { raw throws(Malformed) in
            try IPv4Header.parse(raw, at: 0)
        }
        #expect(ip.version == 4 && ip.headerLength == 20 && ip.totalLength == 0x73)
        #expect(ip.dontFragment && !ip.moreFragments && ip.fragmentOffset == 0)
        #expect(!ip.isFragment && ip.hasTransportHeader)
        #expect(ip.ttl == 64 && ip.protocol == IPProtocol.udp && ip.checksum == 0xB861)
        #expect(
            ip.source == IPv4Address(192, 168, 0, 1)
                && ip.destination == IPv4Address(192, 168, 0, 199))
        #expect(ip.payloadOffset == 20 && ip.payloadLength == 0x73 - 20 && ip.payloadEnd == 0x73)
    }

    /// RFC 791 §3.1: IHL 6 with a 4-byte option (NOP NOP NOP EOL), checksum recomputed; and
    /// RFC 791 §2.3 fragments: first (MF, offset 0), middle (MF, offset 185), last (offset 370).
    @Test func ipv4OptionsAndFragments() throws {
        func header(_ flagsAndOffset: UInt16) -> [UInt8] {
            var bytes = hex("4600 0020 abcd 0000 4006 0000 0a000001 0a000002 01010100")
            bytes[6] = UInt8(flagsAndOffset >> 8)
            bytes[7] = UInt8(flagsAndOffset & 0xFF)
            let sum = bytes.withUnsafeBytes { InternetChecksum.checksum($0) }
            bytes[10] = UInt8(sum >> 8)
            bytes[11] = UInt8(sum & 0xFF)
            return bytes + [UInt8](repeating: 0, count: 8)
        }
        let first = try header(0x2000).withUnsafeBytes { raw throws(Malformed) in
            try IPv4Header.parse(raw, at: 0)
        }
        #expect(first.optionsLength == 4 && first.optionsOffset == 20 && first.payloadOffset == 24)
        #expect(first.isFragment && first.isFirstFragment && first.hasTransportHeader)
        let middle = try header(0x2000 | 185).withUnsafeBytes { raw throws(Malformed) in
            try IPv4Header.parse(raw, at: 0)
        }
        #expect(middle.isFragment && !middle.isFirstFragment && !middle.hasTransportHeader)
        #expect(middle.fragmentOffset == 185)
        let last = try header(370).withUnsafeBytes { raw throws(Malformed) in
            try IPv4Header.parse(raw, at: 0)
        }
        #expect(last.isFragment && !last.moreFragments && !last.hasTransportHeader)
    }

    @Test func ipv4BuildParseRoundTripProperty() throws {
        let input = zip(
            Wire.ipv4, Wire.ipv4, Gen.uint8(), Gen.uint8(), Gen.uint16(), Gen.bool(),
            Gen.int(in: 0...100))
        try seededCheck(count: 300, seed: 0x791, input) {
            src, dst, ttl, tos, id, df, payload in
            let header = IPv4Header(
                source: src, destination: dst, protocol: IPProtocol.tcp, payloadLength: payload,
                ttl: ttl, tos: tos, identification: id, dontFragment: df)
            let buffer = TestBuffer(count: 3 + 20 + payload)
            #expect(try header.store(into: buffer.storage, at: 3) == 23)
            var parsed = try IPv4Header.parse(buffer.raw, at: 3)
            #expect(parsed.offset == 3 && parsed.payloadLength == payload)
            parsed.offset = 0
            parsed.checksum = 0
            #expect(parsed == header)
        }
    }

    static let hopByHop = hex("3c00 0104 00000000")  // → Destination Options, PadN
    static let destinationOptions = hex("2b00 0104 00000000")  // → Routing
    static let routing = hex("2c02 0001 00000000 20010db8000000000000000000000009")  // → Fragment
    static let firstFragment = hex("3300 0001 12345678")  // → AH, offset 0, M
    static let authentication = hex("1103 0000 00000100 00000001 aabbccdd 11223344")  // → UDP

    /// RFC 8200 §4 order: Hop-by-Hop, Destination Options, Routing, Fragment, AH (RFC 4302
    /// length in 4-byte units + 2), then UDP; walked to the ports.
    @Test func ipv6ExtensionChain() throws {
        let chain =
            Self.hopByHop + Self.destinationOptions + Self.routing + Self.firstFragment
            + Self.authentication
        let frame = Frames.ipv6UDP(firstNextHeader: 0, extensionHeaders: chain, sourcePort: 5000)
        let ip = try frame.withUnsafeBytes { raw throws(Malformed) in
            try IPv6Header.parse(raw, at: 14)
        }
        #expect(ip.nextHeader == 0)
        #expect(ip.upperLayerProtocol == IPProtocol.udp)
        #expect(ip.upperLayerOffset == 14 + 40 + chain.count)
        #expect(
            ip.fragment
                == IPv6Fragment(
                    headerOffset: 14 + 40 + 8 + 8 + 24, offset: 0, moreFragments: true,
                    identification: 0x1234_5678))
        #expect(ip.isFirstFragment && ip.hasTransportHeader)
        let udp = try frame.withUnsafeBytes { raw throws(Malformed) in
            try UDPHeader.parse(raw, at: ip.upperLayerOffset, end: ip.payloadEnd)
        }
        #expect(udp.sourcePort == 5000 && udp.destinationPort == 80)
    }

    @Test func ipv6NonFirstFragmentStopsAtFragmentHeader() throws {
        let fragment = hex("1100 0b99 00000001")  // → UDP, offset 371, M
        let frame = Frames.ipv6UDP(firstNextHeader: IPProtocol.fragment, extensionHeaders: fragment)
        let ip = try frame.withUnsafeBytes { raw throws(Malformed) in
            try IPv6Header.parse(raw, at: 14)
        }
        #expect(ip.fragment?.offset == 371 && ip.fragment?.moreFragments == true)
        #expect(ip.isFragment && !ip.isFirstFragment && !ip.hasTransportHeader)
        #expect(ip.upperLayerProtocol == IPProtocol.udp && ip.upperLayerOffset == 14 + 48)
    }

    @Test func ipv6BuildParseRoundTripProperty() throws {
        let input = zip(
            Wire.ipv6, Wire.ipv6, Gen.uint8(), Gen.uint8(), Gen.uint32(in: 0...0xFFFFF),
            Gen.int(in: 0...64))
        try seededCheck(count: 300, seed: 0x8200, input) {
            src, dst, hops, tc, label, payload in
            let header = IPv6Header(
                source: src, destination: dst, nextHeader: IPProtocol.icmpv6,
                payloadLength: payload,
                hopLimit: hops, trafficClass: tc, flowLabel: label)
            let buffer = TestBuffer(count: 1 + 40 + payload)
            #expect(try header.store(into: buffer.storage, at: 1) == 41)
            var parsed = try IPv6Header.parse(buffer.raw, at: 1)
            #expect(parsed.upperLayerOffset == 41)
            parsed.offset = 0
            parsed.upperLayerOffset = 40
            #expect(parsed == header)
        }
    }

    @Test func icmpEchoAndIcmpv6NeighborSolicitation() throws {
        let echo = hex("0800 f7fe 0001 0000")
        let icmp = try echo.withUnsafeBytes { raw throws(Malformed) in
            try ICMPHeader.parse(raw, at: 0)
        }
        #expect(
            icmp.type == 8 && icmp.code == 0 && icmp.checksum == 0xF7FE
                && icmp.restOfHeader == 0x0001_0000)
        echo.withUnsafeBytes { #expect(InternetChecksum.isValid($0)) }
        let solicitation = hex("8700 0000 00000000 20010db8000000000000000000000001")
        let nd = try solicitation.withUnsafeBytes { raw throws(Malformed) in
            try ICMPHeader.parseV6(raw, at: 0)
        }
        #expect(nd.type == 135 && nd.code == 0)
    }

    @Test func udpAndTcp() throws {
        let udpBytes = hex("c000 12b5 0010 0000 0102030405060708")
        let udp = try udpBytes.withUnsafeBytes { raw throws(Malformed) in
            try UDPHeader.parse(raw, at: 0)
        }
        #expect(udp.sourcePort == 49152 && udp.destinationPort == 4789 && udp.length == 16)
        #expect(udp.payloadOffset == 8 && udp.payloadLength == 8)
        let buffer = TestBuffer(count: 8)
        _ = try udp.store(into: buffer.storage, at: 0)
        #expect(buffer.bytes(0..<8) == Array(udpBytes[0..<8]))

        // SYN with MSS option: data offset 6 → 24-byte header.
        let tcpBytes = hex("d431 0050 00000001 00000000 6002 ffff 0000 0000 020405b4")
        let tcp = try tcpBytes.withUnsafeBytes { raw throws(Malformed) in
            try TCPHeader.parse(raw, at: 0)
        }
        #expect(tcp.sourcePort == 54321 && tcp.destinationPort == 80 && tcp.sequenceNumber == 1)
        #expect(
            tcp.headerLength == 24 && tcp.flags == 0x02 && tcp.window == 0xFFFF
                && tcp.payloadOffset == 24)
    }

    @Test func udpLengthMustFitTheIPPayload() {
        let bytes = hex("0001 0002 0010 0000 00000000 00000000")
        bytes.withUnsafeBytes { raw in
            #expect((try? UDPHeader.parse(raw, at: 0, end: 16)) != nil)
            #expect(throws: Malformed.udpBadLength) { try UDPHeader.parse(raw, at: 0, end: 15) }
        }
    }
}
