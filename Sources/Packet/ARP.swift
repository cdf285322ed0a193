/// An ARP packet for IPv4 over Ethernet (RFC 826), the only kind a VTEP answers or learns
/// from.
@frozen
public struct ARPPacket: Hashable, Sendable {
    public static let request: UInt16 = 1
    public static let reply: UInt16 = 2
    /// Hardware type 1, protocol 0x0800, address lengths 6 and 4: 28 bytes.
    public static let length = 28

    public var operation: UInt16
    public var senderHardwareAddress: MACAddress
    public var senderProtocolAddress: IPv4Address
    public var targetHardwareAddress: MACAddress
    public var targetProtocolAddress: IPv4Address

    @inlinable
    public init(
        operation: UInt16, senderHardwareAddress: MACAddress,
        senderProtocolAddress: IPv4Address, targetHardwareAddress: MACAddress,
        targetProtocolAddress: IPv4Address
    ) {
        self.operation = operation
        self.senderHardwareAddress = senderHardwareAddress
        self.senderProtocolAddress = senderProtocolAddress
        self.targetHardwareAddress = targetHardwareAddress
        self.targetProtocolAddress = targetProtocolAddress
    }

    /// Parses the packet at `offset`; anything but Ethernet (1) / IPv4 (0x0800) with lengths
    /// 6 and 4 is `.arpUnsupportedFormat`.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int) throws(Malformed)
        -> ARPPacket
    {
        guard buffer.contains(length, at: offset) else { throw .arpTruncated }
        guard buffer.loadBigEndianUInt32(at: offset) == 0x0001_0800,
            buffer.loadBigEndianUInt16(at: offset + 4) == 0x0604
        else { throw .arpUnsupportedFormat }
        return ARPPacket(
            operation: buffer.loadBigEndianUInt16(at: offset + 6),
            senderHardwareAddress: MACAddress(loadingFrom: buffer, at: offset + 8),
            senderProtocolAddress: IPv4Address(
                rawValue: buffer.loadBigEndianUInt32(at: offset + 14)),
            targetHardwareAddress: MACAddress(loadingFrom: buffer, at: offset + 18),
            targetProtocolAddress: IPv4Address(
                rawValue: buffer.loadBigEndianUInt32(at: offset + 24)))
    }

    /// Writes the 28-byte packet; returns the offset just past it.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(Malformed) -> Int
    {
        guard buffer.contains(ARPPacket.length, at: offset) else { throw .noHeadroom }
        buffer.storeBigEndian(UInt32(0x0001_0800), at: offset)
        buffer.storeBigEndian(UInt16(0x0604), at: offset + 4)
        buffer.storeBigEndian(operation, at: offset + 6)
        senderHardwareAddress.store(into: buffer, at: offset + 8)
        buffer.storeBigEndian(senderProtocolAddress.rawValue, at: offset + 14)
        targetHardwareAddress.store(into: buffer, at: offset + 18)
        buffer.storeBigEndian(targetProtocolAddress.rawValue, at: offset + 24)
        return offset + ARPPacket.length
    }
}
