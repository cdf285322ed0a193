/// The common first eight bytes of an ICMP (RFC 792) or ICMPv6 (RFC 4443 §2.1) message:
/// type, code, checksum, and the four type-specific bytes (identifier and sequence number of
/// an echo, the MTU of Packet Too Big, …). Every defined message has at least these eight.
@frozen
public struct ICMPHeader: Hashable, Sendable {
    public static let length = 8

    public var offset: Int
    public var type: UInt8
    public var code: UInt8
    public var checksum: UInt16
    /// The four bytes after the checksum.
    public var restOfHeader: UInt32

    @inlinable
    public init(
        offset: Int = 0, type: UInt8, code: UInt8, checksum: UInt16 = 0,
        restOfHeader: UInt32 = 0
    ) {
        self.offset = offset
        self.type = type
        self.code = code
        self.checksum = checksum
        self.restOfHeader = restOfHeader
    }

    /// Parses an ICMP (IPv4) header: `.icmpTruncated` when under eight bytes before `end`.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int, end: Int? = nil)
        throws(Malformed) -> ICMPHeader
    {
        guard let header = load(buffer, at: offset, end: end) else { throw .icmpTruncated }
        return header
    }

    /// Parses an ICMPv6 header: `.icmpv6Truncated` when under eight bytes before `end`.
    @inlinable
    public static func parseV6(_ buffer: UnsafeRawBufferPointer, at offset: Int, end: Int? = nil)
        throws(Malformed) -> ICMPHeader
    {
        guard let header = load(buffer, at: offset, end: end) else { throw .icmpv6Truncated }
        return header
    }

    @inlinable
    static func load(_ buffer: UnsafeRawBufferPointer, at offset: Int, end: Int?) -> ICMPHeader? {
        let limit = min(end ?? buffer.count, buffer.count)
        guard offset >= 0, offset <= limit - length else { return nil }
        return ICMPHeader(
            offset: offset, type: buffer.loadByte(at: offset),
            code: buffer.loadByte(at: offset + 1),
            checksum: buffer.loadBigEndianUInt16(at: offset + 2),
            restOfHeader: buffer.loadBigEndianUInt32(at: offset + 4))
    }
}
