import Packet

/// ARP and IPv6 neighbour discovery frames as hosts send them, for the tests of ARP and ND
/// suppression: exact fields, valid checksums, an optional 802.1Q tag.
public enum NeighbourFrames {
    static func ethernet(
        _ destination: MACAddress, _ source: MACAddress, _ type: UInt16, vlan: UInt16?
    ) -> [UInt8] {
        var bytes = bytes(destination) + bytes(source)
        if let vlan { bytes += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] }
        return bytes + [UInt8(type >> 8), UInt8(type & 0xFF)]
    }

    public static func bytes(_ mac: MACAddress) -> [UInt8] {
        stride(from: 40, through: 0, by: -8).map {
            UInt8(truncatingIfNeeded: mac.rawValue >> UInt64($0))
        }
    }

    static func bytes(_ a: IPv4Address) -> [UInt8] {
        stride(from: 24, through: 0, by: -8).map {
            UInt8(truncatingIfNeeded: a.rawValue >> UInt32($0))
        }
    }

    public static func bytes(_ a: IPv6Address) -> [UInt8] {
        (stride(from: 56, through: 0, by: -8).map {
            UInt8(truncatingIfNeeded: a.high >> UInt64($0))
        })
            + (stride(from: 56, through: 0, by: -8).map {
                UInt8(truncatingIfNeeded: a.low >> UInt64($0))
            })
    }

    /// An ARP packet (RFC 826) in an Ethernet frame, broadcast unless `to` says otherwise.
    public static func arp(
        _ operation: UInt16, sender: (MACAddress, IPv4Address), target: (MACAddress, IPv4Address),
        to destination: MACAddress = .broadcast, vlan: UInt16? = nil
    ) -> [UInt8] {
        ethernet(destination, sender.0, EtherType.arp, vlan: vlan)
            + [0, 1, 8, 0, 6, 4, 0, UInt8(operation)]
            + bytes(sender.0) + bytes(sender.1) + bytes(target.0) + bytes(target.1)
    }

    /// Who has `target`? from `mac` at `ip`.
    public static func arpRequest(
        from mac: MACAddress, _ ip: IPv4Address, for target: IPv4Address, vlan: UInt16? = nil
    ) -> [UInt8] {
        arp(
            ARPPacket.request, sender: (mac, ip), target: (MACAddress(rawValue: 0), target),
            vlan: vlan)
    }

    /// The solicited-node multicast address of `a` (RFC 4291 §2.7.1) and its MAC (RFC 2464 §7).
    public static func solicitedNode(_ a: IPv6Address) -> (IPv6Address, MACAddress) {
        let low = 0x0000_0001_FF00_0000 | (a.low & 0xFF_FFFF)
        let ip = IPv6Address(high: 0xFF02_0000_0000_0000, low: low)
        return (ip, MACAddress(rawValue: 0x3333_0000_0000 | (low & 0xFFFF_FFFF)))
    }

    /// An ICMPv6 neighbour message (RFC 4861 §4.3, §4.4) with one link-layer address option.
    static func icmpv6(
        from mac: MACAddress, to destinationMAC: MACAddress, source: IPv6Address,
        destination: IPv6Address, type: UInt8, flags: UInt32, target: IPv6Address,
        option: (UInt8, MACAddress)?, hopLimit: UInt8, vlan: UInt16?
    ) -> [UInt8] {
        var icmp: [UInt8] = [type, 0, 0, 0]
        icmp += [UInt8(flags >> 24), UInt8((flags >> 16) & 0xFF), 0, 0]
        icmp += bytes(target)
        if let (kind, address) = option { icmp += [kind, 1] + bytes(address) }
        var sum = InternetChecksum()
        sum.addIPv6PseudoHeader(
            source: source, destination: destination, nextHeader: IPProtocol.icmpv6,
            length: UInt32(icmp.count))
        icmp.withUnsafeBytes { sum.add($0) }
        let checksum = sum.checksum
        icmp[2] = UInt8(checksum >> 8)
        icmp[3] = UInt8(checksum & 0xFF)
        let ip: [UInt8] =
            [0x60, 0, 0, 0, 0, UInt8(icmp.count), IPProtocol.icmpv6, hopLimit]
            + bytes(source) + bytes(destination)
        return ethernet(destinationMAC, mac, EtherType.ipv6, vlan: vlan) + ip + icmp
    }

    /// Who has `target`? from `mac` at `source`, to the target's solicited-node group, with
    /// the source link-layer address option.
    public static func neighbourSolicitation(
        from mac: MACAddress, _ source: IPv6Address, for target: IPv6Address,
        vlan: UInt16? = nil, hopLimit: UInt8 = 255
    ) -> [UInt8] {
        let (group, groupMAC) = solicitedNode(target)
        return icmpv6(
            from: mac, to: groupMAC, source: source, destination: group, type: 135, flags: 0,
            target: target, option: source == IPv6Address(high: 0, low: 0) ? nil : (1, mac),
            hopLimit: hopLimit, vlan: vlan)
    }

    /// `target` is at `mac`: an unsolicited advertisement with the override flag to all
    /// nodes (ff02::1), as a host announces a new or moved address.
    public static func neighbourAdvertisement(
        from mac: MACAddress, for target: IPv6Address, vlan: UInt16? = nil
    ) -> [UInt8] {
        icmpv6(
            from: mac, to: MACAddress(rawValue: 0x3333_0000_0001), source: target,
            destination: IPv6Address(high: 0xFF02_0000_0000_0000, low: 1), type: 136,
            flags: 0x2000_0000, target: target, option: (2, mac), hopLimit: 255, vlan: vlan)
    }
}
