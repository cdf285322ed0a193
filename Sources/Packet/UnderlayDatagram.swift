/// A UDP datagram in an Ethernet frame read from the underlay beneath the kernel's IP input
/// (vtepd's VXLAN receive ring): checked as the kernel's IPv4, IPv6 and UDP input check a
/// datagram before a UDP socket may read it, since here nothing else did.
@frozen
public struct UnderlayDatagram {
    /// The outer source address: the VTEP that sent it.
    public var source: IPAddress
    /// The UDP payload (a VXLAN header and its frame, or a GRO train of them).
    public var payload: UnsafeRawBufferPointer

    /// An untagged Ethernet II header.
    public static let ethernetLength = 14

    /// Parses `frame` (Ethernet II, untagged) as UDP to `port` in IPv4 (not a fragment) or in
    /// IPv6 (next header UDP). Checks the IPv4 header's lengths and checksum, the IPv6 payload
    /// length, the UDP length, and the UDP checksum unless `offload` says the receiving NIC
    /// verified it (`dataValid`) or a sender on this host left it to offload (`needsChecksum`:
    /// the bytes never crossed a wire). A zero UDP checksum is accepted over IPv4 (RFC 768)
    /// and refused over IPv6, as a UDP socket without UDP_NO_CHECK6_RX refuses it (RFC 8200
    /// §8.1). Ethernet padding after the IP packet is ignored.
    @inlinable
    public static func parse(
        _ frame: UnsafeRawBufferPointer, port: UInt16, offload: VirtioNetHeader
    ) throws(Malformed) -> UnderlayDatagram {
        guard frame.count >= ethernetLength else { throw .ethernetTruncated }
        let verified =
            offload.flags & (VirtioNetHeader.dataValid | VirtioNetHeader.needsChecksum) != 0
        let udp: UDPHeader
        let source: IPAddress
        var sum = InternetChecksum()
        switch frame.loadBigEndianUInt16(at: 12) {
        case EtherType.ipv4:
            let ip = try IPv4Header.parse(frame, at: ethernetLength)
            guard ip.protocol == IPProtocol.udp, !ip.isFragment else {
                throw .underlayNotVXLAN
            }
            udp = try UDPHeader.parse(frame, at: ip.payloadOffset, end: ip.payloadEnd)
            source = .v4(ip.source)
            if udp.checksum != 0 && !verified {
                sum.addIPv4PseudoHeader(
                    source: ip.source, destination: ip.destination, protocol: IPProtocol.udp,
                    length: udp.length)
            }
        case EtherType.ipv6:
            let ip = try IPv6Header.parse(frame, at: ethernetLength)
            guard ip.nextHeader == IPProtocol.udp else { throw .underlayNotVXLAN }
            udp = try UDPHeader.parse(frame, at: ip.payloadOffset, end: ip.payloadEnd)
            source = .v6(ip.source)
            if udp.checksum == 0 { throw .udpZeroChecksumOverIPv6 }
            if !verified {
                sum.addIPv6PseudoHeader(
                    source: ip.source, destination: ip.destination, nextHeader: IPProtocol.udp,
                    length: UInt32(udp.length))
            }
        default:
            throw .underlayNotVXLAN
        }
        guard udp.destinationPort == port else { throw .underlayNotVXLAN }
        let end = udp.offset + Int(udp.length)
        if udp.checksum != 0 && !verified {
            sum.add(UnsafeRawBufferPointer(rebasing: frame[udp.offset..<end]))
            guard sum.folded == 0xFFFF else { throw .udpBadChecksum }
        }
        return UnderlayDatagram(
            source: source,
            payload: UnsafeRawBufferPointer(rebasing: frame[udp.payloadOffset..<end]))
    }

    @inlinable
    init(source: IPAddress, payload: UnsafeRawBufferPointer) {
        self.source = source
        self.payload = payload
    }
}
