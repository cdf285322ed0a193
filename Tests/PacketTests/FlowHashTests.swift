import Packet
import PropertyBased
import PropertyChecks
import TestSupport
import Testing

@Suite("Inner-flow hash and UDP source port (RFC 7348 §5)")
struct FlowHashTests {
    static let hasher = FlowHasher(key: 0x0123_4567_89AB_CDEF)

    static func hash(_ frame: [UInt8], _ hasher: FlowHasher = hasher) -> UInt32 {
        frame.withUnsafeBytes { hasher.hash($0) }
    }

    /// Writes a random flow into a reusable IPv4/UDP or IPv6/TCP frame in place.
    struct RandomFlows {
        var rng: SplitMix64
        var v4 = Frames.ipv4UDP()
        var v6 = Frames.ipv6UDP()

        mutating func next() -> [UInt8] {
            let word = rng.next()
            var frame = word & 1 == 0 ? v4 : v6
            let isV4 = word & 1 == 0
            frame.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: rng.next(), toByteOffset: 0, as: UInt64.self)  // MACs
                raw.storeBytes(
                    of: UInt32(truncatingIfNeeded: rng.next()), toByteOffset: 8, as: UInt32.self)
                if isV4 {
                    raw.storeBytes(of: rng.next(), toByteOffset: 26, as: UInt64.self)  // addresses
                    raw.storeBytes(
                        of: UInt32(truncatingIfNeeded: rng.next()), toByteOffset: 34,
                        as: UInt32.self)
                } else {
                    for at in stride(from: 22, to: 54, by: 8) {
                        raw.storeBytes(of: rng.next(), toByteOffset: at, as: UInt64.self)
                    }
                    raw.storeBytes(
                        of: UInt32(truncatingIfNeeded: rng.next()), toByteOffset: 54,
                        as: UInt32.self)
                }
            }
            if isV4 { v4 = frame } else { v6 = frame }
            return frame
        }
    }

    /// Pearson's chi-square statistic of bucket counts against a uniform expectation.
    static func chiSquare(_ buckets: [Int]) -> Double {
        let total = buckets.reduce(0, +)
        let expected = Double(total) / Double(buckets.count)
        return buckets.reduce(0.0) {
            $0 + (Double($1) - expected) * (Double($1) - expected) / expected
        }
    }

    /// The stated bound: 100,000 random flows over 64 equal buckets of the default range.
    /// With 63 degrees of freedom the chi-square statistic must stay below 103.4, the
    /// p = 0.001 critical value, and every bucket within ±10% of 1562.5 (about ±4σ).
    @Test func spreadOfRandomFlowsIsUniform() {
        var flows = RandomFlows(rng: SplitMix64(seed: 0xC0FF_EE00))
        var buckets = [Int](repeating: 0, count: 64)
        let range = SourcePortRange.rfc7348Default
        for _ in 0..<100_000 {
            let port = range.port(for: Self.hash(flows.next()))
            #expect(port >= 49152)
            buckets[Int(port - 49152) / 256] += 1
        }
        let statistic = Self.chiSquare(buckets)
        #expect(statistic < 103.4, "chi-square \(statistic) over \(buckets)")
        for (index, count) in buckets.enumerated() {
            #expect(abs(Double(count) - 1562.5) <= 156.25, "bucket \(index) holds \(count)")
        }
    }

    /// A harder, structured input: one host pair and every source port, as a single client
    /// opening connections produces. Same bound, 65,536 flows.
    @Test func spreadOfSequentialSourcePortsIsUniform() {
        var frame = Frames.ipv4UDP()
        var buckets = [Int](repeating: 0, count: 64)
        for port in 0...UInt16.max {
            frame[34] = UInt8(port >> 8)
            frame[35] = UInt8(port & 0xFF)
            let sourcePort = SourcePortRange.rfc7348Default.port(for: Self.hash(frame))
            buckets[Int(sourcePort - 49152) / 256] += 1
        }
        let statistic = Self.chiSquare(buckets)
        #expect(statistic < 103.4, "chi-square \(statistic) over \(buckets)")
    }

    @Test func sameFlowSamePortAcrossHashersWithTheSameKey() {
        var flows = RandomFlows(rng: SplitMix64(seed: 1))
        let twin = FlowHasher(key: 0x0123_4567_89AB_CDEF)
        for _ in 0..<1000 {
            let frame = flows.next()
            #expect(Self.hash(frame) == Self.hash(frame, twin))
            #expect(Self.hash(frame) == Self.hash(frame))
        }
    }

    /// Per-process keys decorrelate: under another key, ports collide only by chance
    /// (1 in 16,384 per flow); allow 1%.
    @Test func differentKeyGivesDifferentPorts() {
        var flows = RandomFlows(rng: SplitMix64(seed: 2))
        let other = FlowHasher(key: 0x0123_4567_89AB_CDEE)  // one bit apart
        let range = SourcePortRange.rfc7348Default
        var same = 0
        for _ in 0..<10_000 {
            let frame = flows.next()
            if range.port(for: Self.hash(frame)) == range.port(for: Self.hash(frame, other)) {
                same += 1
            }
        }
        #expect(same < 100, "\(same) of 10000 flows kept their port under another key")
    }

    /// Changing only the L4 destination port moves the flow, for IPv4 and IPv6, untagged,
    /// 802.1Q and QinQ, and through IPv6 extension headers.
    @Test func changingOnlyTheL4PortChangesThePort() {
        let range = SourcePortRange.rfc7348Default
        // Hop-by-Hop → Destination Options → UDP
        let chain = hex("3c00 0104 00000000") + hex("1100 0104 00000000")
        let variants: [(String, (UInt16) -> [UInt8])] = [
            ("IPv4", { Frames.ipv4UDP(destinationPort: $0) }),
            ("IPv4 802.1Q", { Frames.ipv4UDP(tags: [VLANTag(vid: 7)], destinationPort: $0) }),
            (
                "IPv4 QinQ",
                {
                    Frames.ipv4UDP(
                        tags: [VLANTag(tpid: EtherType.serviceVLAN, vid: 7), VLANTag(vid: 8)],
                        destinationPort: $0)
                }
            ),
            ("IPv6", { Frames.ipv6UDP(destinationPort: $0) }),
            (
                "IPv6 extension headers",
                {
                    Frames.ipv6UDP(firstNextHeader: 0, extensionHeaders: chain, destinationPort: $0)
                }
            ),
        ]
        for (name, make) in variants {
            var changed = 0
            for port in UInt16(1000)..<1200 {
                let a = range.port(for: Self.hash(make(port)))
                let b = range.port(for: Self.hash(make(port &+ 1)))
                if a != b { changed += 1 }
            }
            #expect(changed >= 198, "\(name): only \(changed) of 200 port changes moved the flow")
        }
    }

    /// A non-first fragment has no ports (RFC 791 §2.3, RFC 8200 §4.5): whatever bytes sit
    /// where ports would be, all fragments of a datagram hash alike and take one path.
    @Test func nonFirstFragmentsIgnorePortBytes() {
        var a = Frames.ipv4UDP(sourcePort: 1, destinationPort: 2)
        var b = Frames.ipv4UDP(sourcePort: 3, destinationPort: 4)
        a[20] = 0x00
        a[21] = 0x10  // fragment offset 16
        b[20] = 0x00
        b[21] = 0x10
        #expect(Self.hash(a) == Self.hash(b))
        let fragment = hex("1100 0b98 00000001")  // → UDP, offset 371
        let c = Frames.ipv6UDP(
            firstNextHeader: IPProtocol.fragment, extensionHeaders: fragment, sourcePort: 1)
        let d = Frames.ipv6UDP(
            firstNextHeader: IPProtocol.fragment, extensionHeaders: fragment, sourcePort: 2)
        #expect(Self.hash(c) == Self.hash(d))
    }

    @Test func nonIPHashesMACsAndEtherType() {
        let arp = hex("ffffffffffff 020000000001 0806") + [UInt8](repeating: 0, count: 28)
        var otherSource = arp
        otherSource[11] = 2
        var otherType = arp
        otherType[13] = 0x35  // RARP
        #expect(Self.hash(arp) != Self.hash(otherSource))
        #expect(Self.hash(arp) != Self.hash(otherType))
    }

    /// Never traps, never throws: every prefix of valid frames, and random bytes, hash.
    @Test func truncatedAndGarbageFramesHashProperty() {
        // Hop-by-Hop → Routing → UDP
        let chain = hex("2b00 0104 00000000") + hex("1100 0400 12345678")
        let frames = [
            Frames.ipv4UDP(tags: [VLANTag(tpid: EtherType.serviceVLAN, vid: 1), VLANTag(vid: 2)]),
            Frames.ipv6UDP(firstNextHeader: 0, extensionHeaders: chain),
        ]
        // Past the last hashed field (ports), more bytes change nothing; before it, any
        // prefix still hashes.
        for (frame, fieldsEnd) in zip(frames, [22 + 20 + 4, 14 + 40 + 16 + 4]) {
            let full = Self.hash(frame)
            for length in 0...frame.count {
                let prefix = Self.hash(Array(frame[..<length]))
                if length >= fieldsEnd { #expect(prefix == full, "prefix \(length)") }
            }
        }
        seededCheck(count: 2000, seed: 0xBAD, Gen.uint8().array(of: 0...120)) { bytes in
            _ = Self.hash(bytes)
        }
    }

    @Test func sourcePortRangeMapping() throws {
        let range = SourcePortRange.rfc7348Default
        #expect(range.lowerBound == 49152 && range.upperBound == 65535 && range.count == 16384)
        #expect(range.port(for: 0) == 49152)
        #expect(range.port(for: .max) == 65535)
        #expect(range.port(for: 0x8000_0000) == 49152 + 8192)
        let one = try SourcePortRange(lowerBound: 4789, upperBound: 4789)
        #expect(one.port(for: 0) == 4789 && one.port(for: .max) == 4789)
        let whole = try SourcePortRange(1...65535)
        #expect(whole.count == 65535 && whole.port(for: .max) == 65535 && whole.port(for: 0) == 1)
        #expect(try SourcePortRange(parsing: "50000-60000") == SourcePortRange(50000...60000))
        #expect(try SourcePortRange(parsing: "4789").count == 1)
        #expect(range.description == "49152-65535")
    }

    @Test func sourcePortRangeRefusalsReadWell() {
        #expect(throws: InvalidSourcePortRange.empty(lowerBound: 60000, upperBound: 50000)) {
            try SourcePortRange(lowerBound: 60000, upperBound: 50000)
        }
        #expect(
            InvalidSourcePortRange.empty(lowerBound: 60000, upperBound: 50000).description
                == "source port range 60000-50000 is empty")
        #expect(throws: InvalidSourcePortRange.empty(lowerBound: 60000, upperBound: 50000)) {
            try SourcePortRange(parsing: "60000-50000")
        }
        #expect(throws: InvalidSourcePortRange.includesPortZero(upperBound: 100)) {
            try SourcePortRange(parsing: "0-100")
        }
        for text in ["", "abc", "1-2-3", "-5", "70000", "49152-"] {
            #expect(throws: InvalidSourcePortRange.unparsable(text)) {
                try SourcePortRange(parsing: text)
            }
        }
    }

    /// Multiply-shift spreads evenly: over all 2^32 hashes each port gets ⌊2^32/n⌋ or
    /// ⌈2^32/n⌉; sampled here on a stride through the hash space.
    @Test func multiplyShiftIsEvenOverTheHashSpace() throws {
        let range = try SourcePortRange(lowerBound: 1000, upperBound: 1006)  // 7 ports
        var counts = [Int](repeating: 0, count: 7)
        for k in 0..<(1 << 20) {
            counts[Int(range.port(for: UInt32(k) << 12) - 1000)] += 1
        }
        #expect(counts.max()! - counts.min()! <= 1)
    }
}
