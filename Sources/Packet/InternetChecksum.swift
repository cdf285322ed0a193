/// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum
/// of the data taken as big-endian 16-bit words. Used by IPv4 headers, UDP, TCP, ICMP,
/// ICMPv6 and GRE.
///
/// An accumulator, so that a pseudo-header, a few header fields and a payload can be summed
/// piecewise without copying them together. Byte buffers may have odd lengths and start at
/// any alignment; a buffer added after an odd-length one is byte-swapped into place
/// (RFC 1071 §2(B), byte order independence).
@frozen
public struct InternetChecksum: Sendable {
    /// Sum of big-endian 16-bit values, not yet folded.
    @usableFromInline var sum: UInt64
    /// Whether an odd number of bytes has been added so far.
    @usableFromInline var odd: Bool

    @inlinable
    public init() {
        sum = 0
        odd = false
    }

    /// Adds bytes as if they followed everything added so far.
    @inlinable
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        let part = InternetChecksum.foldedSum(bytes)
        sum &+= UInt64(odd ? part.byteSwapped : part)
        if bytes.count & 1 == 1 { odd.toggle() }
    }

    /// Adds one 16-bit field value. Use only at an even position (before any odd-length bytes).
    @inlinable
    public mutating func add(_ word: UInt16) { sum &+= UInt64(word) }

    /// Adds a 32-bit field value as two 16-bit words.
    @inlinable
    public mutating func add(_ word: UInt32) { sum &+= UInt64(word >> 16) &+ UInt64(word & 0xFFFF) }

    @inlinable
    public mutating func add(_ address: IPv4Address) { add(address.rawValue) }

    @inlinable
    public mutating func add(_ address: IPv6Address) {
        add(UInt32(truncatingIfNeeded: address.high >> 32))
        add(UInt32(truncatingIfNeeded: address.high))
        add(UInt32(truncatingIfNeeded: address.low >> 32))
        add(UInt32(truncatingIfNeeded: address.low))
    }

    /// The IPv4 pseudo-header of UDP and TCP (RFC 768, RFC 9293 §3.1).
    @inlinable
    public mutating func addIPv4PseudoHeader(
        source: IPv4Address, destination: IPv4Address, protocol: UInt8, length: UInt16
    ) {
        add(source)
        add(destination)
        add(UInt16(`protocol`))
        add(length)
    }

    /// The IPv6 pseudo-header of UDP, TCP and ICMPv6 (RFC 8200 §8.1): `length` is the
    /// upper-layer packet length, `nextHeader` the upper-layer protocol (not an extension).
    @inlinable
    public mutating func addIPv6PseudoHeader(
        source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, length: UInt32
    ) {
        add(source)
        add(destination)
        add(length)
        add(UInt16(nextHeader))
    }

    /// The pseudo-header of the IPv4 or IPv6 packet whose header starts at `network` in
    /// `packet`, its addresses read from there, for `length` bytes of `protocol`: what TSO
    /// leaves in a TCP or UDP checksum field, and where a full checksum starts.
    @inlinable
    public static func pseudoHeader(
        in packet: UnsafeRawBufferPointer, network: Int, isIPv6: Bool, protocol: UInt8,
        length: Int
    ) -> InternetChecksum {
        var sum = InternetChecksum()
        if isIPv6 {
            sum.addIPv6PseudoHeader(
                source: IPv6Address(loadingFrom: packet, at: network + 8),
                destination: IPv6Address(loadingFrom: packet, at: network + 24),
                nextHeader: `protocol`, length: UInt32(truncatingIfNeeded: length))
        } else {
            sum.addIPv4PseudoHeader(
                source: IPv4Address(rawValue: packet.loadBigEndianUInt32(at: network + 12)),
                destination: IPv4Address(rawValue: packet.loadBigEndianUInt32(at: network + 16)),
                protocol: `protocol`, length: UInt16(truncatingIfNeeded: length))
        }
        return sum
    }

    /// The one's complement sum folded to 16 bits (not complemented).
    @inlinable
    public var folded: UInt16 {
        var value = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        value = (value & 0xFFFF_FFFF) &+ (value >> 32)
        value = (value & 0xFFFF) &+ (value >> 16)
        value = (value & 0xFFFF) &+ (value >> 16)
        return UInt16(truncatingIfNeeded: value)
    }

    /// The value to write into a checksum field: the complement of the folded sum.
    @inlinable
    public var checksum: UInt16 { ~folded }

    /// The checksum of `bytes` alone.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        ~foldedSum(bytes)
    }

    /// True when data that includes its own checksum field sums to all ones (RFC 1071 §1(3)).
    @inlinable
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        foldedSum(bytes) == 0xFFFF
    }

    /// RFC 1624 eqn. 3 incremental update: the checksum after one 16-bit field changes from
    /// `old` to `new`, `HC' = ~(~HC + ~m + m')`. Unlike eqn. 2 it never produces 0x0000 from a
    /// sum that is not all zeros (RFC 1624 §3).
    @inlinable
    public static func update(_ checksum: UInt16, replacing old: UInt16, with new: UInt16)
        -> UInt16
    {
        var value = UInt32(~checksum) &+ UInt32(~old) &+ UInt32(new)
        value = (value & 0xFFFF) &+ (value >> 16)
        value = (value & 0xFFFF) &+ (value >> 16)
        return ~UInt16(truncatingIfNeeded: value)
    }

    /// RFC 1624 eqn. 3 for an IPv4 address (NAT, or a pseudo-header address): two 16-bit
    /// updates at once.
    @inlinable
    public static func update(
        _ checksum: UInt16, replacing old: IPv4Address, with new: IPv4Address
    ) -> UInt16 {
        let (o, n) = (old.rawValue, new.rawValue)
        var value = UInt64(~checksum)
        value &+= UInt64(~o >> 16) &+ UInt64(~o & 0xFFFF)
        value &+= UInt64(n >> 16) &+ UInt64(n & 0xFFFF)
        value = (value & 0xFFFF) &+ (value >> 16)
        value = (value & 0xFFFF) &+ (value >> 16)
        return ~UInt16(truncatingIfNeeded: value)
    }

    /// The folded one's complement sum of `bytes` as big-endian words, taken from its first
    /// byte. Sums native-order 64-bit words split into 32-bit halves in a 64-bit accumulator,
    /// four words per round, so there is no carry to propagate until the final fold (good to
    /// 2^35 bytes), then swaps the result into network order (RFC 1071 §2(B)).
    @inlinable
    public static func foldedSum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        let count = bytes.count
        var accumulator: UInt64 = 0
        var index = 0
        @inline(__always) func split(_ word: UInt64) -> UInt64 {
            (word & 0xFFFF_FFFF) &+ (word >> 32)
        }
        while count - index >= 32 {
            let a = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let b = bytes.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
            let c = bytes.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
            let d = bytes.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
            accumulator &+= split(a) &+ split(b) &+ split(c) &+ split(d)
            index += 32
        }
        while count - index >= 8 {
            accumulator &+= split(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            index += 8
        }
        if count - index >= 4 {
            accumulator &+= UInt64(bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self))
            index += 4
        }
        if count - index >= 2 {
            accumulator &+= UInt64(bytes.loadUnaligned(fromByteOffset: index, as: UInt16.self))
            index += 2
        }
        if count - index == 1 {
            // A trailing odd byte is the high byte of a big-endian word padded with zero.
            let word = UInt16(bytes.load(fromByteOffset: index, as: UInt8.self)) << 8
            accumulator &+= UInt64(UInt16(bigEndian: word))
        }
        accumulator = (accumulator & 0xFFFF_FFFF) &+ (accumulator >> 32)
        accumulator = (accumulator & 0xFFFF_FFFF) &+ (accumulator >> 32)
        accumulator = (accumulator & 0xFFFF) &+ (accumulator >> 16)
        accumulator = (accumulator & 0xFFFF) &+ (accumulator >> 16)
        return UInt16(bigEndian: UInt16(truncatingIfNeeded: accumulator))
    }
}
