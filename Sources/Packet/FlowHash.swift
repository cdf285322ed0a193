/// Hashes an inner Ethernet frame's flow to 32 bits, for the VXLAN UDP source port (RFC 7348
/// §5), the NVGRE FlowID (RFC 7637 §3.2) and the IPv6 flow label (RFC 6438), so that underlay
/// ECMP and LAG spread tunnelled flows while keeping each flow on one path.
///
/// The flow is the inner destination and source MAC and EtherType, seen through up to two
/// VLAN tags, and for IPv4 and IPv6 the addresses and protocol, plus the ports of TCP, UDP,
/// UDP-Lite, SCTP and DCCP unless the packet is a non-first fragment (which has no ports; all
/// fragments of a datagram must take one path). IPv6 extension headers are walked to the
/// transport header. The hash never fails: a truncated or malformed frame hashes whatever
/// could be read.
///
/// The mixer is wyhash's (Wang Yi, public domain): each pair of 64-bit words is XORed with
/// key material and multiplied to 128 bits, and the halves are XORed. It passes SMHasher,
/// costs one multiply per 16 bytes of flow, and with a per-process key an outsider cannot
/// steer many flows onto one underlay path without seeing the key. It is not a MAC: the key
/// only decorrelates this process's choices from any other's. SipHash-1-3 would buy
/// cryptographic strength the job does not need at roughly three times the cost.
@frozen
public struct FlowHasher: Sendable {
    @usableFromInline let k0: UInt64
    @usableFromInline let k1: UInt64
    @usableFromInline let k2: UInt64
    @usableFromInline let k3: UInt64

    /// `key` is per process, random at startup; the four mixing constants are expanded from
    /// it with SplitMix64 so that related keys give unrelated hashes.
    public init(key: UInt64) {
        var state = key
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        k0 = next()
        k1 = next()
        k2 = next()
        k3 = next()
    }

    @inlinable @inline(__always)
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    /// The 32-bit flow hash of the Ethernet frame `frame`.
    @inlinable
    public func hash(_ frame: UnsafeRawBufferPointer) -> UInt32 {
        let count = frame.count
        guard count >= 14 else { return hashRunt(frame) }
        // Destination MAC and the first two bytes of the source MAC; then the rest of the
        // source MAC with the EtherType after the tags.
        let macs = frame.loadBigEndianUInt64(at: 0)
        var etherType = frame.loadBigEndianUInt16(at: 12)
        var l3 = 14
        if EtherType.isVLANTag(etherType) && count >= 18 {
            etherType = frame.loadBigEndianUInt16(at: 16)
            l3 = 18
            if EtherType.isVLANTag(etherType) && count >= 22 {
                etherType = frame.loadBigEndianUInt16(at: 20)
                l3 = 22
            }
        }
        let second = UInt64(frame.loadBigEndianUInt32(at: 8)) << 32 | UInt64(etherType) << 16
        var seed = FlowHasher.mix(macs ^ k1, second ^ k0)

        if etherType == EtherType.ipv4 && l3 <= count - 20
            && frame.loadByte(at: l3) >> 4 == 4
        {
            let proto = frame.loadByte(at: l3 + 9)
            let addresses = frame.loadBigEndianUInt64(at: l3 + 12)
            let headerLength = Int(frame.loadByte(at: l3) & 0xF) * 4
            let notLaterFragment = frame.loadBigEndianUInt16(at: l3 + 6) & 0x1FFF == 0
            var ports: UInt32 = 0
            if IPProtocol.hasPorts(proto) && notLaterFragment && headerLength >= 20
                && l3 + headerLength <= count - 4
            {
                ports = frame.loadBigEndianUInt32(at: l3 + headerLength)
            }
            seed = FlowHasher.mix(addresses ^ k2, (UInt64(proto) << 32 | UInt64(ports)) ^ seed)
        } else if etherType == EtherType.ipv6 && l3 <= count - 40
            && frame.loadByte(at: l3) >> 4 == 6
        {
            let payloadEnd = l3 + 40 + Int(frame.loadBigEndianUInt16(at: l3 + 4))
            let walk = IPv6ExtensionWalk(
                frame, nextHeader: frame.loadByte(at: l3 + 6), from: l3 + 40, end: payloadEnd)
            let proto = walk.upperLayerProtocol
            var ports: UInt32 = 0
            if walk.failure == nil && IPProtocol.hasPorts(proto)
                && (walk.fragment?.offset ?? 0) == 0 && walk.upperLayerOffset <= count - 4
            {
                ports = frame.loadBigEndianUInt32(at: walk.upperLayerOffset)
            }
            seed = FlowHasher.mix(
                frame.loadBigEndianUInt64(at: l3 + 8) ^ k2,
                frame.loadBigEndianUInt64(at: l3 + 16) ^ seed)
            seed = FlowHasher.mix(
                frame.loadBigEndianUInt64(at: l3 + 24) ^ k3,
                frame.loadBigEndianUInt64(at: l3 + 32) ^ seed)
            seed = FlowHasher.mix(
                (UInt64(proto) << 32 | UInt64(ports)) ^ k2, seed ^ k1)
        }
        return FlowHasher.finish(seed ^ k3, k0)
    }

    /// wyhash's final round, folded to 32 bits; every input bit reaches both halves.
    @inlinable @inline(__always)
    static func finish(_ seed: UInt64, _ k: UInt64) -> UInt32 {
        let value = mix(seed, k ^ 0xE703_7ED1_A0B4_28DB)
        return UInt32(truncatingIfNeeded: value >> 32) ^ UInt32(truncatingIfNeeded: value)
    }

    /// A frame shorter than an Ethernet header: hash its bytes, zero-padded to 16.
    @usableFromInline
    func hashRunt(_ frame: UnsafeRawBufferPointer) -> UInt32 {
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { padded in
            padded.copyMemory(from: frame)
        }
        let seed = FlowHasher.mix(words.0 ^ k1, words.1 ^ k0)
        return FlowHasher.finish(seed ^ k3 ^ UInt64(frame.count), k0)
    }
}

/// The UDP source ports a VXLAN sender picks from. RFC 7348 §5 recommends the dynamic range
/// 49152–65535; operators narrow or move it to fit their firewall rules.
@frozen
public struct SourcePortRange: Hashable, Sendable, CustomStringConvertible {
    public let lowerBound: UInt16
    public let upperBound: UInt16

    /// 49152–65535, the IANA dynamic/private range (RFC 7348 §5, RFC 6335 §6).
    public static let rfc7348Default = SourcePortRange(
        uncheckedLowerBound: 49152, upperBound: 65535)

    /// Refuses an empty range (`upperBound < lowerBound`) and one that includes port 0, which
    /// UDP reserves for "no source port" (RFC 768).
    public init(lowerBound: UInt16, upperBound: UInt16) throws(InvalidSourcePortRange) {
        guard lowerBound <= upperBound else {
            throw .empty(lowerBound: lowerBound, upperBound: upperBound)
        }
        guard lowerBound > 0 else { throw .includesPortZero(upperBound: upperBound) }
        self.lowerBound = lowerBound
        self.upperBound = upperBound
    }

    public init(_ range: ClosedRange<UInt16>) throws(InvalidSourcePortRange) {
        try self.init(lowerBound: range.lowerBound, upperBound: range.upperBound)
    }

    /// Parses the operator's `LOW-HIGH` (e.g. `49152-65535`) or a single port.
    public init(parsing text: String) throws(InvalidSourcePortRange) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
            let low = UInt16(parts[0]), let high = UInt16(parts[parts.count - 1])
        else { throw .unparsable(text) }
        try self.init(lowerBound: low, upperBound: high)
    }

    @usableFromInline
    init(uncheckedLowerBound: UInt16, upperBound: UInt16) {
        lowerBound = uncheckedLowerBound
        self.upperBound = upperBound
    }

    /// How many ports the range holds, 1 to 65535.
    @inlinable public var count: UInt32 { UInt32(upperBound) - UInt32(lowerBound) + 1 }

    /// Maps a 32-bit hash onto the range by multiply-shift (Lemire): `hash × count / 2^32`.
    /// Unlike `hash % count` it uses the hash's high bits and has no modulo bias beyond one
    /// part in 2^32 / count, and it costs a multiply instead of a division.
    @inlinable
    public func port(for hash: UInt32) -> UInt16 {
        let index = (UInt64(hash) &* UInt64(count)) >> 32
        return lowerBound &+ UInt16(truncatingIfNeeded: index)
    }

    public var description: String { "\(lowerBound)-\(upperBound)" }
}

/// Why a source port range from the operator was refused.
public enum InvalidSourcePortRange: Error, Hashable, Sendable, CustomStringConvertible {
    case empty(lowerBound: UInt16, upperBound: UInt16)
    case includesPortZero(upperBound: UInt16)
    case unparsable(String)

    public var description: String {
        switch self {
        case .empty(let low, let high):
            "source port range \(low)-\(high) is empty"
        case .includesPortZero(let high):
            "source port range 0-\(high) includes port 0, which means no source port; "
                + "start at 1 or above (49152-65535 is the RFC 7348 default)"
        case .unparsable(let text):
            "source port range \"\(text)\" is not LOW-HIGH, e.g. 49152-65535"
        }
    }
}
