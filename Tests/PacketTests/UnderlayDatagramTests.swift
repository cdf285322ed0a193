import Packet
import Testing

/// `UnderlayDatagram`: VXLAN read from the underlay's ring, beneath the kernel's IP and UDP
/// input, checked as that input would check it.
@Suite struct UnderlayDatagramTests {
    static let vtep4 = IPv4Address("192.0.2.2")!
    static let local4 = IPv4Address("192.0.2.1")!
    static let vtep6 = IPv6Address("2001:db8::2")!
    static let local6 = IPv6Address("2001:db8::1")!
    static let payload: [UInt8] = [0x08, 0, 0, 0, 0, 0x13, 0x89, 0] + Array(0..<60)

    /// Ethernet, IPv4 or IPv6, UDP 40000 → `port` with `payload`; the UDP checksum right
    /// (nil), or `checksum` as given; `padding` zero bytes after the IP packet.
    static func frame(
        ipv6: Bool = false, port: UInt16 = 4789, payload: [UInt8] = payload,
        checksum: UInt16? = nil, fragment: UInt16 = 0x4000, nextHeader: UInt8 = 17,
        padding: Int = 0
    ) -> [UInt8] {
        let udpLength = 8 + payload.count
        var udp: [UInt8] = [0x9C, 0x40, UInt8(port >> 8), UInt8(port & 0xFF)]
        udp += [UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0] + payload
        var sum = InternetChecksum()
        var ip: [UInt8]
        if ipv6 {
            sum.addIPv6PseudoHeader(
                source: vtep6, destination: local6, nextHeader: 17, length: UInt32(udpLength))
            ip = [0x60, 0, 0, 0, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), nextHeader, 64]
            ip += bytes(vtep6) + bytes(local6)
        } else {
            sum.addIPv4PseudoHeader(
                source: vtep4, destination: local4, protocol: 17, length: UInt16(udpLength))
            let total = 20 + udpLength
            ip = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1]
            ip += [UInt8(fragment >> 8), UInt8(fragment & 0xFF), 64, 17, 0, 0]
            ip += bytes(vtep4) + bytes(local4)
            let header = ip.withUnsafeBytes { InternetChecksum.checksum($0) }
            ip[10] = UInt8(header >> 8)
            ip[11] = UInt8(header & 0xFF)
        }
        udp.withUnsafeBytes { sum.add($0) }
        let value = checksum ?? UDPHeader.checksumField(sum)
        udp[6] = UInt8(value >> 8)
        udp[7] = UInt8(value & 0xFF)
        let ethernet: [UInt8] =
            [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2] + (ipv6 ? [0x86, 0xDD] : [0x08, 0x00])
        return ethernet + ip + udp + [UInt8](repeating: 0, count: padding)
    }

    static func bytes(_ a: IPv4Address) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: a.rawValue >> UInt32(24 - 8 * $0)) }
    }

    static func bytes(_ a: IPv6Address) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: a.high >> UInt64(56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: a.low >> UInt64(56 - 8 * $0)) }
    }

    static func parse(_ frame: [UInt8], offload: VirtioNetHeader = .plain) throws
        -> (IPAddress, [UInt8])
    {
        try frame.withUnsafeBytes { buffer in
            let datagram = try UnderlayDatagram.parse(buffer, port: 4789, offload: offload)
            return (datagram.source, Array(datagram.payload))
        }
    }

    @Test func checkedDatagramsGiveTheirSourceAndPayload() throws {
        for ipv6 in [false, true] {
            let (source, payload) = try Self.parse(Self.frame(ipv6: ipv6, padding: 6))
            #expect(source == (ipv6 ? .v6(Self.vtep6) : .v4(Self.vtep4)))
            #expect(payload == Self.payload, "Ethernet padding is not payload")
        }
        // No checksum over IPv4 (RFC 768).
        #expect(try Self.parse(Self.frame(checksum: 0)).1 == Self.payload)
    }

    @Test func aWrongUDPChecksumIsRefusedUnlessTheReceiverOrASenderHereVouchedForIt() throws {
        for ipv6 in [false, true] {
            let wrong = Self.frame(ipv6: ipv6, checksum: 0x1234)
            #expect(throws: Malformed.udpBadChecksum) { try Self.parse(wrong) }
            // A payload byte changed after the checksum was computed.
            var changed = Self.frame(ipv6: ipv6)
            changed[changed.count - 1] ^= 0x40
            #expect(throws: Malformed.udpBadChecksum) { try Self.parse(changed) }
            for flags in [VirtioNetHeader.dataValid, VirtioNetHeader.needsChecksum] {
                #expect(
                    try Self.parse(wrong, offload: VirtioNetHeader(flags: flags)).1
                        == Self.payload)
            }
        }
    }

    @Test func zeroChecksumOverIPv6IsRefusedAsTheUDPSocketRefusesIt() {
        #expect(throws: Malformed.udpZeroChecksumOverIPv6) {
            try Self.parse(Self.frame(ipv6: true, checksum: 0))
        }
        #expect(throws: Malformed.udpZeroChecksumOverIPv6) {
            try Self.parse(
                Self.frame(ipv6: true, checksum: 0),
                offload: VirtioNetHeader(flags: VirtioNetHeader.dataValid))
        }
    }

    @Test func whatTheRingsFilterKeepsOutIsRefusedHereToo() {
        // Another port, a fragment (first or later), IPv6 carrying TCP.
        #expect(throws: Malformed.underlayNotVXLAN) { try Self.parse(Self.frame(port: 4790)) }
        #expect(throws: Malformed.underlayNotVXLAN) { try Self.parse(Self.frame(fragment: 0x2000)) }
        #expect(throws: Malformed.underlayNotVXLAN) { try Self.parse(Self.frame(fragment: 0x0010)) }
        #expect(throws: Malformed.underlayNotVXLAN) {
            try Self.parse(Self.frame(ipv6: true, nextHeader: 6))
        }
        // ARP, not IP.
        var arp = Self.frame()
        arp[12] = 0x08
        arp[13] = 0x06
        #expect(throws: Malformed.underlayNotVXLAN) { try Self.parse(arp) }
    }

    @Test func brokenOuterHeadersAreRefusedWithTheirReason() {
        var header = Self.frame()
        header[14 + 8] = 1  // TTL changed: the IPv4 header checksum no longer holds
        #expect(throws: Malformed.ipv4BadChecksum) { try Self.parse(header) }
        let short = Array(Self.frame().prefix(40))
        #expect(throws: Malformed.ipv4BadTotalLength) { try Self.parse(short) }
        #expect(throws: Malformed.ethernetTruncated) { try Self.parse([1, 2, 3]) }
        var udpLength = Self.frame()
        udpLength[14 + 20 + 5] &+= 1  // UDP length past the IP packet
        #expect(throws: Malformed.udpBadLength) { try Self.parse(udpLength) }
        var v6Length = Self.frame(ipv6: true)
        v6Length[14 + 5] &+= 1  // payload length past the frame
        #expect(throws: Malformed.ipv6BadPayloadLength) { try Self.parse(v6Length) }
    }

    /// Arbitrary bytes: a refusal or a payload inside the frame, never a crash.
    @Test func arbitraryFramesNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        let valid = Self.frame()
        for _ in 0..<20_000 {
            var frame = valid
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                frame[Int.random(in: 0..<frame.count, using: &generator)] = UInt8.random(
                    in: 0...255, using: &generator)
            }
            frame = Array(frame.prefix(Int.random(in: 0...frame.count, using: &generator)))
            if let (_, payload) = try? Self.parse(frame) { #expect(payload.count <= frame.count) }
        }
    }
}
