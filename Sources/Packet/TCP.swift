/// The fixed part of a TCP header (RFC 9293 §3.1): enough for flow hashing, ACLs and NAT.
@frozen
public struct TCPHeader: Hashable, Sendable {
    public var offset: Int
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    /// Data Offset × 4: 20 to 60 bytes.
    public var headerLength: Int
    /// The eight control bits CWR ECE URG ACK PSH RST SYN FIN.
    public var flags: UInt8
    public var window: UInt16
    public var checksum: UInt16

    @inlinable public var payloadOffset: Int { offset + headerLength }

    @inlinable
    public init(
        offset: Int = 0, sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: UInt32 = 0,
        acknowledgmentNumber: UInt32 = 0, headerLength: Int = 20, flags: UInt8 = 0,
        window: UInt16 = 0, checksum: UInt16 = 0
    ) {
        self.offset = offset
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.headerLength = headerLength
        self.flags = flags
        self.window = window
        self.checksum = checksum
    }

    /// Parses the header at `offset` of an IP payload ending at `end` (default: the buffer's
    /// end). The Data Offset must be at least 5 words and the header must fit before `end`.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int, end: Int? = nil)
        throws(Malformed) -> TCPHeader
    {
        let limit = min(end ?? buffer.count, buffer.count)
        guard offset >= 0, offset <= limit - 20 else { throw .tcpTruncated }
        let headerLength = Int(buffer.loadByte(at: offset + 12) >> 4) * 4
        guard headerLength >= 20, headerLength <= limit - offset else {
            throw .tcpBadDataOffset
        }
        return TCPHeader(
            offset: offset, sourcePort: buffer.loadBigEndianUInt16(at: offset),
            destinationPort: buffer.loadBigEndianUInt16(at: offset + 2),
            sequenceNumber: buffer.loadBigEndianUInt32(at: offset + 4),
            acknowledgmentNumber: buffer.loadBigEndianUInt32(at: offset + 8),
            headerLength: headerLength, flags: buffer.loadByte(at: offset + 13),
            window: buffer.loadBigEndianUInt16(at: offset + 14),
            checksum: buffer.loadBigEndianUInt16(at: offset + 16))
    }
}
