/// Why a frame was not parsed, or could not be encapsulated. Every parser and builder throws
/// exactly one of these; the datapath counts drops by raw value, so the enum is dense from 0,
/// `CaseIterable`, and new cases go at the end of their layer's group only before a release.
public enum Malformed: UInt8, Error, CaseIterable, Sendable, CustomStringConvertible {
    // Ethernet and IEEE 802.1Q / 802.1ad tags
    case ethernetTruncated
    case vlanTruncated
    case tooManyVLANTags
    // ARP (RFC 826)
    case arpTruncated
    case arpUnsupportedFormat
    // IPv4 (RFC 791)
    case ipv4Truncated
    case ipv4BadVersion
    case ipv4BadHeaderLength
    case ipv4BadTotalLength
    case ipv4BadChecksum
    // IPv6 (RFC 8200)
    case ipv6Truncated
    case ipv6BadVersion
    case ipv6BadPayloadLength
    case ipv6ExtensionHeaderTruncated
    case ipv6TooManyExtensionHeaders
    case ipv6HopByHopMisplaced
    // ICMP (RFC 792) and ICMPv6 (RFC 4443)
    case icmpTruncated
    case icmpv6Truncated
    // UDP (RFC 768) and TCP (RFC 9293)
    case udpTruncated
    case udpBadLength
    case tcpTruncated
    case tcpBadDataOffset
    // VXLAN (RFC 7348)
    case vxlanTruncated
    case vxlanIFlagClear
    case vxlanReservedFlagsSet
    case vxlanReservedBitsSet
    // GRE (RFC 2784, RFC 2890) and NVGRE (RFC 7637)
    case greTruncated
    case greBadVersion
    case greRoutingPresent
    case greReservedBitsSet
    case greBadChecksum
    case greWrongProtocol
    case greKeyMissing
    case nvgreChecksumPresent
    case nvgreSequencePresent
    // Building: tag insertion and encapsulation
    case noHeadroom
    case innerFrameTooLarge
    // GSO super-frames and partial checksums (virtio_net_hdr, from the kernel)
    case offloadHeaderInvalid
    case offloadUnsupported
    // Outer headers read from the underlay's receive ring (`vxlan-receive ring`), which the
    // kernel's UDP input never checked
    case udpBadChecksum
    case udpZeroChecksumOverIPv6
    case underlayNotVXLAN

    /// What an operator reads in `show statistics` or a packet trace.
    public var description: String {
        switch self {
        case .ethernetTruncated: "Ethernet header truncated (under 14 bytes)"
        case .vlanTruncated: "VLAN tag truncated"
        case .tooManyVLANTags: "more than two VLAN tags"
        case .arpTruncated: "ARP packet truncated"
        case .arpUnsupportedFormat: "ARP packet is not Ethernet/IPv4"
        case .ipv4Truncated: "IPv4 header truncated"
        case .ipv4BadVersion: "IPv4 version field is not 4"
        case .ipv4BadHeaderLength: "IPv4 header length under 20 bytes or past the frame"
        case .ipv4BadTotalLength: "IPv4 total length disagrees with header or frame length"
        case .ipv4BadChecksum: "IPv4 header checksum wrong"
        case .ipv6Truncated: "IPv6 header truncated"
        case .ipv6BadVersion: "IPv6 version field is not 6"
        case .ipv6BadPayloadLength: "IPv6 payload length runs past the frame"
        case .ipv6ExtensionHeaderTruncated: "IPv6 extension header truncated"
        case .ipv6TooManyExtensionHeaders: "too many IPv6 extension headers"
        case .ipv6HopByHopMisplaced: "IPv6 Hop-by-Hop Options header not first"
        case .icmpTruncated: "ICMP header truncated"
        case .icmpv6Truncated: "ICMPv6 header truncated"
        case .udpTruncated: "UDP header truncated"
        case .udpBadLength: "UDP length under 8 or past the IP payload"
        case .tcpTruncated: "TCP header truncated"
        case .tcpBadDataOffset: "TCP data offset under 5 words or past the IP payload"
        case .vxlanTruncated: "VXLAN header truncated"
        case .vxlanIFlagClear: "VXLAN I flag clear"
        case .vxlanReservedFlagsSet: "VXLAN flag other than I set"
        case .vxlanReservedBitsSet: "VXLAN reserved bits set"
        case .greTruncated: "GRE header truncated"
        case .greBadVersion: "GRE version is not 0"
        case .greRoutingPresent: "GRE routing present (RFC 1701 source routing)"
        case .greReservedBitsSet: "GRE reserved bits 4-5 set"
        case .greBadChecksum: "GRE checksum wrong"
        case .greWrongProtocol: "GRE protocol is not transparent Ethernet bridging (0x6558)"
        case .greKeyMissing: "GRE key missing"
        case .nvgreChecksumPresent: "NVGRE checksum present"
        case .nvgreSequencePresent: "NVGRE sequence number present"
        case .noHeadroom: "no headroom in the buffer for the added header"
        case .innerFrameTooLarge: "inner frame too large to encapsulate"
        case .offloadHeaderInvalid:
            "super-frame or partial checksum whose offload header disagrees with its headers"
        case .offloadUnsupported:
            "super-frame of a kind that is not segmented (UFO, QinQ, IP fragments, BIG TCP)"
        case .udpBadChecksum: "UDP checksum wrong"
        case .udpZeroChecksumOverIPv6: "UDP over IPv6 without a checksum (zero)"
        case .underlayNotVXLAN:
            "frame from the underlay's VXLAN ring that is not unicast VXLAN to a tunnel address"
        }
    }

    /// The snake_case name under which the datapath exports the drop counter.
    public var counterName: String {
        switch self {
        case .ethernetTruncated: "ethernet_truncated"
        case .vlanTruncated: "vlan_truncated"
        case .tooManyVLANTags: "too_many_vlan_tags"
        case .arpTruncated: "arp_truncated"
        case .arpUnsupportedFormat: "arp_unsupported_format"
        case .ipv4Truncated: "ipv4_truncated"
        case .ipv4BadVersion: "ipv4_bad_version"
        case .ipv4BadHeaderLength: "ipv4_bad_header_length"
        case .ipv4BadTotalLength: "ipv4_bad_total_length"
        case .ipv4BadChecksum: "ipv4_bad_checksum"
        case .ipv6Truncated: "ipv6_truncated"
        case .ipv6BadVersion: "ipv6_bad_version"
        case .ipv6BadPayloadLength: "ipv6_bad_payload_length"
        case .ipv6ExtensionHeaderTruncated: "ipv6_extension_header_truncated"
        case .ipv6TooManyExtensionHeaders: "ipv6_too_many_extension_headers"
        case .ipv6HopByHopMisplaced: "ipv6_hop_by_hop_misplaced"
        case .icmpTruncated: "icmp_truncated"
        case .icmpv6Truncated: "icmpv6_truncated"
        case .udpTruncated: "udp_truncated"
        case .udpBadLength: "udp_bad_length"
        case .tcpTruncated: "tcp_truncated"
        case .tcpBadDataOffset: "tcp_bad_data_offset"
        case .vxlanTruncated: "vxlan_truncated"
        case .vxlanIFlagClear: "vxlan_i_flag_clear"
        case .vxlanReservedFlagsSet: "vxlan_reserved_flags_set"
        case .vxlanReservedBitsSet: "vxlan_reserved_bits_set"
        case .greTruncated: "gre_truncated"
        case .greBadVersion: "gre_bad_version"
        case .greRoutingPresent: "gre_routing_present"
        case .greReservedBitsSet: "gre_reserved_bits_set"
        case .greBadChecksum: "gre_bad_checksum"
        case .greWrongProtocol: "gre_wrong_protocol"
        case .greKeyMissing: "gre_key_missing"
        case .nvgreChecksumPresent: "nvgre_checksum_present"
        case .nvgreSequencePresent: "nvgre_sequence_present"
        case .noHeadroom: "no_headroom"
        case .innerFrameTooLarge: "inner_frame_too_large"
        case .offloadHeaderInvalid: "offload_header_invalid"
        case .offloadUnsupported: "offload_unsupported"
        case .udpBadChecksum: "udp_bad_checksum"
        case .udpZeroChecksumOverIPv6: "udp_zero_checksum_over_ipv6"
        case .underlayNotVXLAN: "underlay_not_vxlan"
        }
    }
}
