/// An NVGRE header (RFC 7637 §3.2): GRE with the K bit set, C and S clear, protocol 0x6558,
/// and the key split into a 24-bit Virtual Subnet ID and an 8-bit FlowID.
///
///     |0| |1|0|   Reserved0     | Ver |   Protocol Type 0x6558        |
///     |          Virtual Subnet ID (VSID)             |    FlowID     |
@frozen
public struct NVGREHeader: Hashable, Sendable {
    public static let length = 8
    public static let maximumVSID: UInt32 = 0xFF_FFFF

    /// The 24-bit Virtual Subnet ID.
    public var vsid: UInt32
    /// Per-flow entropy for the underlay (RFC 7637 §3.2); receivers must not rely on it.
    public var flowID: UInt8

    /// The GRE key on the wire: VSID << 8 | FlowID.
    @inlinable public var key: UInt32 { vsid << 8 | UInt32(flowID) }

    /// Keeps the low 24 bits of `vsid`.
    @inlinable
    public init(vsid: UInt32, flowID: UInt8 = 0) {
        self.vsid = vsid & NVGREHeader.maximumVSID
        self.flowID = flowID
    }

    /// Parses the header at `offset`. RFC 7637 §3.2: the C bit "MUST be zero", the S bit
    /// "MUST be zero", the K bit "MUST be set", the protocol type is 0x6558.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int) throws(Malformed)
        -> NVGREHeader
    {
        guard offset >= 0, buffer.contains(4, at: offset) else { throw .greTruncated }
        let flags = buffer.loadBigEndianUInt16(at: offset)
        try GREFlags.validate(flags)
        guard flags & GREFlags.checksum == 0 else { throw .nvgreChecksumPresent }
        guard flags & GREFlags.sequence == 0 else { throw .nvgreSequencePresent }
        guard flags & GREFlags.key != 0 else { throw .greKeyMissing }
        guard buffer.contains(length, at: offset) else { throw .greTruncated }
        guard buffer.loadBigEndianUInt16(at: offset + 2) == EtherType.transparentEthernetBridging
        else { throw .greWrongProtocol }
        let key = buffer.loadBigEndianUInt32(at: offset + 4)
        return NVGREHeader(vsid: key >> 8, flowID: UInt8(truncatingIfNeeded: key))
    }

    /// Writes the 8-byte header; returns the offset just past it.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(Malformed) -> Int
    {
        guard buffer.contains(NVGREHeader.length, at: offset) else { throw .noHeadroom }
        let first = UInt32(GREFlags.key) << 16 | UInt32(EtherType.transparentEthernetBridging)
        buffer.storeBigEndian(UInt64(first) << 32 | UInt64(key), at: offset)
        return offset + NVGREHeader.length
    }
}
