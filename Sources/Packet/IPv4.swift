/// An IPv4 header (RFC 791 §3.1) located in a frame.
@frozen
public struct IPv4Header: Hashable, Sendable {
    /// Where the header starts in the parsed buffer.
    public var offset: Int
    /// IHL × 4: 20 to 60 bytes.
    public var headerLength: Int
    /// The former type-of-service octet: DSCP (RFC 2474) and ECN (RFC 3168).
    public var tos: UInt8
    public var totalLength: UInt16
    public var identification: UInt16
    public var dontFragment: Bool
    public var moreFragments: Bool
    /// In 8-byte units, as on the wire.
    public var fragmentOffset: UInt16
    public var ttl: UInt8
    public var `protocol`: UInt8
    public var checksum: UInt16
    public var source: IPv4Address
    public var destination: IPv4Address

    @inlinable public var version: UInt8 { 4 }
    @inlinable public var dscp: UInt8 { tos >> 2 }
    @inlinable public var ecn: UInt8 { tos & 0x3 }
    @inlinable public var optionsOffset: Int { offset + 20 }
    @inlinable public var optionsLength: Int { headerLength - 20 }
    @inlinable public var payloadOffset: Int { offset + headerLength }
    @inlinable public var payloadLength: Int { Int(totalLength) - headerLength }
    /// One past the last byte of the datagram; Ethernet padding may follow.
    @inlinable public var payloadEnd: Int { offset + Int(totalLength) }
    /// Part of a fragmented datagram (RFC 791 §2.3): more to come, or not the first piece.
    @inlinable public var isFragment: Bool { moreFragments || fragmentOffset != 0 }
    /// The first fragment: the only one that carries the transport header.
    @inlinable public var isFirstFragment: Bool { moreFragments && fragmentOffset == 0 }
    /// Whether the payload starts with the transport header (false for non-first fragments).
    @inlinable public var hasTransportHeader: Bool { fragmentOffset == 0 }

    /// A header to build. `totalLength` is 20 + `payloadLength`; the checksum is computed by
    /// `store`.
    @inlinable
    public init(
        source: IPv4Address, destination: IPv4Address, protocol: UInt8, payloadLength: Int,
        ttl: UInt8 = 64, tos: UInt8 = 0, identification: UInt16 = 0, dontFragment: Bool = true
    ) {
        offset = 0
        headerLength = 20
        self.tos = tos
        totalLength = UInt16(truncatingIfNeeded: 20 + payloadLength)
        self.identification = identification
        self.dontFragment = dontFragment
        moreFragments = false
        fragmentOffset = 0
        self.ttl = ttl
        self.protocol = `protocol`
        checksum = 0
        self.source = source
        self.destination = destination
    }

    /// Parses and validates the header at `offset`: version 4, IHL at least 5, total length
    /// covering the header and inside the buffer, and the header checksum (RFC 791 §3.1,
    /// RFC 1122 §3.2.1.2 "MUST verify"). Options are located, not interpreted.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int) throws(Malformed)
        -> IPv4Header
    {
        guard buffer.contains(20, at: offset) else { throw .ipv4Truncated }
        let versionAndLength = buffer.loadByte(at: offset)
        guard versionAndLength >> 4 == 4 else { throw .ipv4BadVersion }
        let headerLength = Int(versionAndLength & 0xF) &* 4
        guard headerLength >= 20, buffer.contains(headerLength, at: offset) else {
            throw .ipv4BadHeaderLength
        }
        let totalLength = buffer.loadBigEndianUInt16(at: offset + 2)
        guard Int(totalLength) >= headerLength, buffer.contains(Int(totalLength), at: offset)
        else { throw .ipv4BadTotalLength }
        guard headerChecksumIsValid(buffer, at: offset, length: headerLength) else {
            throw .ipv4BadChecksum
        }
        let flagsAndOffset = buffer.loadBigEndianUInt16(at: offset + 6)
        return IPv4Header(
            offset: offset, headerLength: headerLength, tos: buffer.loadByte(at: offset + 1),
            totalLength: totalLength, identification: buffer.loadBigEndianUInt16(at: offset + 4),
            dontFragment: flagsAndOffset & 0x4000 != 0,
            moreFragments: flagsAndOffset & 0x2000 != 0,
            fragmentOffset: flagsAndOffset & 0x1FFF, ttl: buffer.loadByte(at: offset + 8),
            protocol: buffer.loadByte(at: offset + 9),
            checksum: buffer.loadBigEndianUInt16(at: offset + 10),
            source: IPv4Address(rawValue: buffer.loadBigEndianUInt32(at: offset + 12)),
            destination: IPv4Address(rawValue: buffer.loadBigEndianUInt32(at: offset + 16)))
    }

    /// The header checksum check, with a straight-line path for the common 20-byte header:
    /// five native 32-bit words summed and folded (RFC 1071 §2(B) lets the byte order wait
    /// until the end; an all-ones sum is all-ones either way).
    @inlinable @inline(__always)
    static func headerChecksumIsValid(
        _ buffer: UnsafeRawBufferPointer, at offset: Int, length: Int
    ) -> Bool {
        guard length == 20 else {
            let header = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + length])
            return InternetChecksum.isValid(header)
        }
        var sum = UInt64(buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        sum &+= UInt64(buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        sum &+= UInt64(buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
        sum &+= UInt64(buffer.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
        sum &+= UInt64(buffer.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
        sum = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        return sum == 0xFFFF
    }

    @inlinable
    init(
        offset: Int, headerLength: Int, tos: UInt8, totalLength: UInt16, identification: UInt16,
        dontFragment: Bool, moreFragments: Bool, fragmentOffset: UInt16, ttl: UInt8,
        protocol: UInt8, checksum: UInt16, source: IPv4Address, destination: IPv4Address
    ) {
        self.offset = offset
        self.headerLength = headerLength
        self.tos = tos
        self.totalLength = totalLength
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
        self.ttl = ttl
        self.protocol = `protocol`
        self.checksum = checksum
        self.source = source
        self.destination = destination
    }

    /// Writes a 20-byte header without options (IHL 5) and its checksum at `offset`; returns
    /// the offset just past it. `headerLength`, `offset` and `checksum` of `self` are ignored.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(Malformed) -> Int
    {
        guard buffer.contains(20, at: offset) else { throw .noHeadroom }
        var flags: UInt16 = dontFragment ? 0x4000 : 0
        if moreFragments { flags |= 0x2000 }
        buffer.storeBigEndian(UInt16(0x4500) | UInt16(tos), at: offset)
        buffer.storeBigEndian(totalLength, at: offset + 2)
        buffer.storeBigEndian(identification, at: offset + 4)
        buffer.storeBigEndian(flags | fragmentOffset & 0x1FFF, at: offset + 6)
        buffer.storeBigEndian(UInt16(ttl) << 8 | UInt16(`protocol`), at: offset + 8)
        buffer.storeBigEndian(UInt16(0), at: offset + 10)
        buffer.storeBigEndian(source.rawValue, at: offset + 12)
        buffer.storeBigEndian(destination.rawValue, at: offset + 16)
        let header = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + 20])
        buffer.storeBigEndian(InternetChecksum.checksum(header), at: offset + 10)
        return offset + 20
    }
}
