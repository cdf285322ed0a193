/// Bits of the first 16-bit word of a GRE header, numbered as in RFC 2784 §2 (bit 0 is the
/// most significant).
@usableFromInline
enum GREFlags {
    /// Bit 0: Checksum Present (RFC 2784 §2.2).
    @usableFromInline static let checksum: UInt16 = 0x8000
    /// Bit 1: RFC 1701 Routing Present; RFC 2784 §2.3 requires discarding it.
    @usableFromInline static let routing: UInt16 = 0x4000
    /// Bit 2: Key Present (RFC 2890 §2).
    @usableFromInline static let key: UInt16 = 0x2000
    /// Bit 3: Sequence Number Present (RFC 2890 §2).
    @usableFromInline static let sequence: UInt16 = 0x1000
    /// Bits 4–5: RFC 1701 strict source route and the top recursion bit. RFC 2784 §2.3: "A
    /// receiver MUST discard a packet where any of bits 1-5 are non-zero"; bits 6–12 "MUST
    /// be ignored on receipt".
    @usableFromInline static let reservedMustBeZero: UInt16 = 0x0C00
    /// Bits 13–15: Version, 0 for GRE (1 is PPTP's enhanced GRE, RFC 2637).
    @usableFromInline static let version: UInt16 = 0x0007

    /// The checks GRE and NVGRE share, in the order that names the most specific reason.
    @inlinable
    static func validate(_ flags: UInt16) throws(Malformed) {
        guard flags & version == 0 else { throw .greBadVersion }
        guard flags & routing == 0 else { throw .greRoutingPresent }
        guard flags & reservedMustBeZero == 0 else { throw .greReservedBitsSet }
    }
}

/// A GRE header (RFC 2784) with the RFC 2890 key and sequence number extensions, carrying
/// transparent Ethernet bridging (protocol type 0x6558).
///
///     |C| |K|S| Reserved0       | Ver |         Protocol Type         |
///     |      Checksum (optional)      |       Reserved1 (optional)    |
///     |                         Key (optional)                        |
///     |                 Sequence Number (optional)                    |
@frozen
public struct GREHeader: Hashable, Sendable {
    public var offset: Int
    public var protocolType: UInt16
    /// Present when the C bit is set; as received (parse) or ignored (store computes it).
    public var checksum: UInt16?
    /// Present when the K bit is set.
    public var key: UInt32?
    /// Present when the S bit is set.
    public var sequence: UInt32?

    @inlinable public var checksumPresent: Bool { checksum != nil }
    /// 4 bytes, plus 4 for each of checksum, key and sequence number.
    @inlinable
    public var headerLength: Int {
        4 + (checksum == nil ? 0 : 4) + (key == nil ? 0 : 4) + (sequence == nil ? 0 : 4)
    }
    @inlinable public var payloadOffset: Int { offset + headerLength }

    /// A header to build.
    @inlinable
    public init(
        offset: Int = 0, protocolType: UInt16 = EtherType.transparentEthernetBridging,
        checksumPresent: Bool = false, key: UInt32? = nil, sequence: UInt32? = nil
    ) {
        self.offset = offset
        self.protocolType = protocolType
        self.checksum = checksumPresent ? 0 : nil
        self.key = key
        self.sequence = sequence
    }

    /// Parses the header at `offset` of a GRE packet ending at `end` (default: the buffer's
    /// end): version 0, no routing, bits 4–5 clear, protocol 0x6558, and, when C is set, a
    /// checksum that verifies over the GRE header and payload (RFC 2784 §2.5). Whether a key
    /// is required is the caller's policy: see `requiredKey()`.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int, end: Int? = nil)
        throws(Malformed) -> GREHeader
    {
        let limit = min(end ?? buffer.count, buffer.count)
        guard offset >= 0, offset <= limit - 4 else { throw .greTruncated }
        let flags = buffer.loadBigEndianUInt16(at: offset)
        try GREFlags.validate(flags)
        var header = GREHeader(
            offset: offset, protocolType: buffer.loadBigEndianUInt16(at: offset + 2))
        let length =
            4 + (flags & GREFlags.checksum != 0 ? 4 : 0) + (flags & GREFlags.key != 0 ? 4 : 0)
            + (flags & GREFlags.sequence != 0 ? 4 : 0)
        guard offset <= limit - length else { throw .greTruncated }
        guard header.protocolType == EtherType.transparentEthernetBridging else {
            throw .greWrongProtocol
        }
        var at = offset + 4
        if flags & GREFlags.checksum != 0 {
            header.checksum = buffer.loadBigEndianUInt16(at: at)
            at += 4
            let packet = UnsafeRawBufferPointer(rebasing: buffer[offset..<limit])
            guard InternetChecksum.isValid(packet) else { throw .greBadChecksum }
        }
        if flags & GREFlags.key != 0 {
            header.key = buffer.loadBigEndianUInt32(at: at)
            at += 4
        }
        if flags & GREFlags.sequence != 0 {
            header.sequence = buffer.loadBigEndianUInt32(at: at)
        }
        return header
    }

    /// The key, for a tunnel whose policy requires one (a VNI-keyed GRE locator).
    @inlinable
    public func requiredKey() throws(Malformed) -> UInt32 {
        guard let key else { throw .greKeyMissing }
        return key
    }

    /// Writes the header at `offset`, followed in the buffer by `payloadLength` bytes of
    /// payload already in place. With a checksum, computes it over the header and payload
    /// (RFC 2784 §2.5). Returns the offset just past the header.
    @inlinable
    public func store(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, payloadLength: Int
    ) throws(Malformed) -> Int {
        let length = headerLength
        guard payloadLength >= 0, buffer.contains(length + payloadLength, at: offset) else {
            throw .noHeadroom
        }
        var flags: UInt16 = 0
        if checksum != nil { flags |= GREFlags.checksum }
        if key != nil { flags |= GREFlags.key }
        if sequence != nil { flags |= GREFlags.sequence }
        buffer.storeBigEndian(UInt32(flags) << 16 | UInt32(protocolType), at: offset)
        var at = offset + 4
        if checksum != nil {
            buffer.storeBigEndian(UInt32(0), at: at)
            at += 4
        }
        if let key {
            buffer.storeBigEndian(key, at: at)
            at += 4
        }
        if let sequence {
            buffer.storeBigEndian(sequence, at: at)
            at += 4
        }
        if checksum != nil {
            let packet = UnsafeRawBufferPointer(
                rebasing: buffer[offset..<offset + length + payloadLength])
            buffer.storeBigEndian(InternetChecksum.checksum(packet), at: offset + 4)
        }
        return at
    }
}
