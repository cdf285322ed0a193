/// The 8-byte VXLAN header (RFC 7348 §5):
///
///     |R|R|R|R|I|R|R|R|            Reserved                           |
///     |                VXLAN Network Identifier (VNI) |   Reserved    |
@frozen
public struct VXLANHeader: Hashable, Sendable {
    public static let length = 8
    /// The I flag: the VNI is valid. RFC 7348 §5: "MUST be set to 1 for a valid VNI".
    public static let validVNIFlag: UInt8 = 0x08
    /// The largest 24-bit VNI.
    public static let maximumVNI: UInt32 = 0xFF_FFFF

    /// The 24-bit VXLAN network identifier.
    public var vni: UInt32

    /// Keeps the low 24 bits of `vni`.
    @inlinable
    public init(vni: UInt32) { self.vni = vni & VXLANHeader.maximumVNI }

    /// Parses the header at `offset`. RFC 7348 §5 says receivers ignore the reserved fields;
    /// a gateway that must never put a frame in the wrong VNI is stricter on purpose: any
    /// other flag (a VXLAN-GBP or VXLAN-GPE sender, say) is `.vxlanReservedFlagsSet`, and
    /// nonzero reserved fields are `.vxlanReservedBitsSet`, so such peers are counted rather
    /// than misread.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int) throws(Malformed)
        -> VXLANHeader
    {
        guard buffer.contains(length, at: offset) else { throw .vxlanTruncated }
        let word = buffer.loadBigEndianUInt64(at: offset)
        let flags = UInt8(truncatingIfNeeded: word >> 56)
        guard flags & validVNIFlag != 0 else { throw .vxlanIFlagClear }
        guard flags == validVNIFlag else { throw .vxlanReservedFlagsSet }
        guard word & 0x00FF_FFFF_0000_00FF == 0 else { throw .vxlanReservedBitsSet }
        return VXLANHeader(vni: UInt32(truncatingIfNeeded: word >> 8))
    }

    /// Writes the header: I flag, zero reserved fields, the VNI. Returns the end offset.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(Malformed) -> Int
    {
        guard buffer.contains(VXLANHeader.length, at: offset) else { throw .noHeadroom }
        buffer.storeBigEndian(wireValue, at: offset)
        return offset + VXLANHeader.length
    }

    /// The header as one big-endian 64-bit word.
    @inlinable
    public var wireValue: UInt64 { UInt64(VXLANHeader.validVNIFlag) << 56 | UInt64(vni) << 8 }
}
