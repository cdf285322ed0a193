/// What ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861 §4.3, §4.4) messages say about
/// who has an address, for a gateway that answers them on behalf of remote hosts (ARP and ND
/// suppression, as the Linux bridge's `neigh_suppress` and VPP's `arp-term`), and the
/// answers it sends. Reads and writes the caller's buffers only: no allocation.
public enum NeighbourDiscovery {
    /// A question or an answer about one address.
    @frozen
    public enum Message: Hashable, Sendable {
        /// Who has `target`? An ARP request, or a neighbour solicitation, from a host that has
        /// an address of its own (not an ARP probe, not duplicate address detection), about a
        /// unicast address other than the sender's own.
        case request(target: IPAddress)
        /// `address` is at `mac`: an ARP reply, a gratuitous ARP (request or reply with the
        /// sender's address as target), or a neighbour advertisement (its target link-layer
        /// address option, else the Ethernet source).
        case advertisement(address: IPAddress, mac: MACAddress)
    }

    /// ICMPv6 types (RFC 4861 §4.3, §4.4).
    public static let neighbourSolicitation: UInt8 = 135
    public static let neighbourAdvertisement: UInt8 = 136
    /// Option types (RFC 4861 §4.6.1).
    static let sourceLinkLayerAddress: UInt8 = 1
    static let targetLinkLayerAddress: UInt8 = 2

    /// The largest reply `reply(to:…)` writes: an untagged neighbour advertisement with the
    /// target link-layer address option (14 + 40 + 32 bytes).
    public static let maximumReplyLength = 86
    /// An ARP reply, padded to the Ethernet minimum (without the frame check sequence).
    static let arpReplyLength = 60

    /// The message in `frame` (whose Ethernet header is `header`), or nil when it is none of
    /// the above or malformed: every check RFC 4861 §7.1.1 and §7.1.2 asks of a receiver
    /// (hop limit 255, code 0, length, checksum, no multicast target, options of non-zero
    /// length) is made, so a forged or broken message is never answered or learned from.
    public static func message(in frame: UnsafeRawBufferPointer, header: EthernetHeader)
        -> Message?
    {
        switch header.etherType {
        case EtherType.arp:
            return arpMessage(frame, at: header.payloadOffset)
        case EtherType.ipv6:
            return ndMessage(frame, header)
        default:
            return nil
        }
    }

    /// A cheap first look, before `message(in:header:)`: whether the frame is ARP or IPv6
    /// whose next header (without extension headers, as RFC 4861 messages are sent) is ICMPv6.
    @inline(__always)
    public static func mayBeNeighbourMessage(
        _ frame: UnsafeRawBufferPointer, header: EthernetHeader
    ) -> Bool {
        if header.etherType == EtherType.arp { return true }
        return header.etherType == EtherType.ipv6 && frame.count > header.payloadOffset + 6
            && frame[header.payloadOffset + 6] == IPProtocol.icmpv6
    }

    private static func arpMessage(_ frame: UnsafeRawBufferPointer, at offset: Int) -> Message? {
        guard let arp = try? ARPPacket.parse(frame, at: offset) else { return nil }
        let sender = arp.senderProtocolAddress
        let mac = arp.senderHardwareAddress
        guard !mac.isMulticast, !mac.isZero else { return nil }
        switch arp.operation {
        case ARPPacket.request:
            // A probe (sender 0.0.0.0, RFC 5227 §2.1.1) is the host's own business.
            guard sender.rawValue != 0 else { return nil }
            if sender == arp.targetProtocolAddress {
                return .advertisement(address: .v4(sender), mac: mac)
            }
            guard isUnicast(arp.targetProtocolAddress) else { return nil }
            return .request(target: .v4(arp.targetProtocolAddress))
        case ARPPacket.reply:
            guard sender.rawValue != 0 else { return nil }
            return .advertisement(address: .v4(sender), mac: mac)
        default:
            return nil
        }
    }

    private static func isUnicast(_ a: IPv4Address) -> Bool {
        let first = a.rawValue >> 24
        return a.rawValue != 0 && first != 127 && first < 224
    }

    private static func ndMessage(_ frame: UnsafeRawBufferPointer, _ header: EthernetHeader)
        -> Message?
    {
        guard let ip = try? IPv6Header.parse(frame, at: header.payloadOffset),
            ip.upperLayerProtocol == IPProtocol.icmpv6, ip.upperLayerOffset == ip.payloadOffset,
            ip.hopLimit == 255, ip.payloadEnd <= frame.count
        else { return nil }
        let start = ip.upperLayerOffset
        let length = ip.upperLayerLength
        // Type, code, checksum, reserved/flags, target: 24 bytes (§4.3, §4.4).
        guard length >= 24, frame[start + 1] == 0 else { return nil }
        var sum = InternetChecksum()
        sum.addIPv6PseudoHeader(
            source: ip.source, destination: ip.destination, nextHeader: IPProtocol.icmpv6,
            length: UInt32(length))
        sum.add(UnsafeRawBufferPointer(rebasing: frame[start..<start + length]))
        guard sum.folded == 0xFFFF else { return nil }
        let target = IPv6Address(loadingFrom: frame, at: start + 8)
        guard target.high >> 56 != 0xFF, target != IPv6Address(high: 0, low: 0) else {
            return nil
        }
        // The options: (type, length in 8-byte units); a zero length is invalid (§4.6).
        var linkLayer: MACAddress?
        var option = start + 24
        let end = start + length
        while option + 2 <= end {
            let units = Int(frame[option + 1])
            guard units > 0, option + units * 8 <= end else { return nil }
            if units == 1,
                frame[option]
                    == (frame[start] == neighbourSolicitation
                        ? sourceLinkLayerAddress : targetLinkLayerAddress)
            {
                linkLayer = MACAddress(loadingFrom: frame, at: option + 2)
            }
            option += units * 8
        }
        switch frame[start] {
        case neighbourSolicitation:
            // Duplicate address detection (source ::) is the host's own business (§7.2.2).
            guard ip.source != IPv6Address(high: 0, low: 0), ip.source != target else {
                return nil
            }
            return .request(target: .v6(target))
        case neighbourAdvertisement:
            let mac = linkLayer ?? header.source
            guard !mac.isMulticast, !mac.isZero else { return nil }
            return .advertisement(address: .v6(target), mac: mac)
        default:
            return nil
        }
    }

    /// Writes, untagged at the start of `buffer`, the answer to `request` (an ARP request or
    /// neighbour solicitation that `message(in:header:)` read as `.request`): `mac` has the
    /// address asked for. ARP: a reply to the sender's hardware address (RFC 826), padded to
    /// 60 bytes. ND: a solicited advertisement with the override flag and the target
    /// link-layer address option, to the solicitation's source (RFC 4861 §7.2.4). Returns its
    /// length, or 0 if `buffer` is shorter than `maximumReplyLength` or `request` is not a
    /// request.
    public static func reply(
        to request: UnsafeRawBufferPointer, header: EthernetHeader, answering mac: MACAddress,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        guard buffer.count >= maximumReplyLength else { return 0 }
        switch header.etherType {
        case EtherType.arp:
            guard let arp = try? ARPPacket.parse(request, at: header.payloadOffset) else {
                return 0
            }
            arp.senderHardwareAddress.store(into: buffer, at: 0)
            mac.store(into: buffer, at: 6)
            buffer.storeBigEndian(EtherType.arp, at: 12)
            let answer = ARPPacket(
                operation: ARPPacket.reply, senderHardwareAddress: mac,
                senderProtocolAddress: arp.targetProtocolAddress,
                targetHardwareAddress: arp.senderHardwareAddress,
                targetProtocolAddress: arp.senderProtocolAddress)
            guard let end = try? answer.store(into: buffer, at: 14) else { return 0 }
            for i in end..<arpReplyLength { buffer[i] = 0 }
            return arpReplyLength
        case EtherType.ipv6:
            guard let ip = try? IPv6Header.parse(request, at: header.payloadOffset),
                ip.upperLayerLength >= 24
            else { return 0 }
            let target = IPv6Address(loadingFrom: request, at: ip.upperLayerOffset + 8)
            header.source.store(into: buffer, at: 0)
            mac.store(into: buffer, at: 6)
            buffer.storeBigEndian(EtherType.ipv6, at: 12)
            // Version 6, no traffic class or flow label; 32 bytes of ICMPv6; hop limit 255.
            buffer.storeBigEndian(UInt32(0x6000_0000), at: 14)
            buffer.storeBigEndian(UInt16(32), at: 18)
            buffer[20] = IPProtocol.icmpv6
            buffer[21] = 255
            target.store(into: buffer, at: 22)
            ip.source.store(into: buffer, at: 38)
            let icmp = 54
            buffer[icmp] = neighbourAdvertisement
            buffer[icmp + 1] = 0
            buffer.storeBigEndian(UInt16(0), at: icmp + 2)
            // Solicited and override (§4.4): the answer stands for the host itself.
            buffer.storeBigEndian(UInt32(0x6000_0000), at: icmp + 4)
            target.store(into: buffer, at: icmp + 8)
            buffer[icmp + 24] = targetLinkLayerAddress
            buffer[icmp + 25] = 1
            mac.store(into: buffer, at: icmp + 26)
            var sum = InternetChecksum()
            sum.addIPv6PseudoHeader(
                source: target, destination: ip.source, nextHeader: IPProtocol.icmpv6,
                length: 32)
            sum.add(UnsafeRawBufferPointer(rebasing: buffer[icmp..<icmp + 32]))
            buffer.storeBigEndian(sum.checksum, at: icmp + 2)
            return maximumReplyLength
        default:
            return 0
        }
    }
}
