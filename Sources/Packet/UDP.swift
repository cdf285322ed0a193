/// A UDP header (RFC 768).
@frozen
public struct UDPHeader: Hashable, Sendable {
    public static let length = 8
    /// IANA-assigned VXLAN port (RFC 7348 §5).
    public static let vxlanPort: UInt16 = 4789

    public var offset: Int
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// Header plus data, in bytes.
    public var length: UInt16
    /// 0 means "not computed", allowed over IPv4 (RFC 768) and, for tunnels, over IPv6 only
    /// under RFC 6935 / RFC 6936.
    public var checksum: UInt16

    @inlinable public var payloadOffset: Int { offset + 8 }
    @inlinable public var payloadLength: Int { Int(length) - 8 }

    @inlinable
    public init(
        offset: Int = 0, sourcePort: UInt16, destinationPort: UInt16, length: UInt16,
        checksum: UInt16 = 0
    ) {
        self.offset = offset
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
        self.checksum = checksum
    }

    /// Parses the header at `offset` of an IP payload ending at `end` (default: the buffer's
    /// end). The Length field must cover the header and fit before `end`.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int, end: Int? = nil)
        throws(Malformed) -> UDPHeader
    {
        let limit = min(end ?? buffer.count, buffer.count)
        guard offset >= 0, offset <= limit - 8 else { throw .udpTruncated }
        let length = buffer.loadBigEndianUInt16(at: offset + 4)
        guard length >= 8, Int(length) <= limit - offset else { throw .udpBadLength }
        return UDPHeader(
            offset: offset, sourcePort: buffer.loadBigEndianUInt16(at: offset),
            destinationPort: buffer.loadBigEndianUInt16(at: offset + 2), length: length,
            checksum: buffer.loadBigEndianUInt16(at: offset + 6))
    }

    /// Writes the 8-byte header as is; returns the offset just past it.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(Malformed) -> Int
    {
        guard buffer.contains(8, at: offset) else { throw .noHeadroom }
        buffer.storeBigEndian(UInt32(sourcePort) << 16 | UInt32(destinationPort), at: offset)
        buffer.storeBigEndian(UInt32(length) << 16 | UInt32(checksum), at: offset + 4)
        return offset + 8
    }

    /// The value for the checksum field from a finished sum over pseudo-header, header (with
    /// a zero checksum field) and data: a computed 0 is sent as 0xFFFF, since 0 means "no
    /// checksum" (RFC 768, RFC 8200 §8.1).
    @inlinable
    public static func checksumField(_ sum: InternetChecksum) -> UInt16 {
        let value = sum.checksum
        return value == 0 ? 0xFFFF : value
    }
}
