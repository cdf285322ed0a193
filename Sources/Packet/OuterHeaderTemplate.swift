/// The outer headers of one tunnel — (locator, VNI, encapsulation) — prebuilt once, so that
/// encapsulating a frame on the hot path is a copy of at most 74 bytes and a few patched
/// fields: lengths, the IPv4 header checksum by RFC 1624 incremental update, the UDP source
/// port, and the checksums that cover the payload (IPv6 UDP, GRE with C).
///
/// Layout: [Ethernet (+ 802.1Q tag)] IPv4 or IPv6, then UDP + VXLAN (RFC 7348 §5), GRE with
/// the VNI as key (RFC 2890), or NVGRE (RFC 7637). The optional Ethernet header is for
/// AF_PACKET transmit; with a UDP or raw IP socket, start the template without it.
@frozen
public struct OuterHeaderTemplate: Sendable {
    /// The outer Ethernet header: next hop's MAC, our underlay MAC, optional underlay VLAN.
    public struct Ethernet: Hashable, Sendable {
        public var destination: MACAddress
        public var source: MACAddress
        public var vlan: VLANTag?

        public init(destination: MACAddress, source: MACAddress, vlan: VLANTag? = nil) {
            self.destination = destination
            self.source = source
            self.vlan = vlan
        }
    }

    /// The outer network header.
    public enum Network: Hashable, Sendable {
        /// Don't Fragment is set by default: RFC 7348 §4.3 asks VTEPs not to fragment VXLAN
        /// packets, and with DF set an identification of 0 is allowed (RFC 6864 §4.1).
        case ipv4(
            source: IPv4Address, destination: IPv4Address, ttl: UInt8 = 64, tos: UInt8 = 0,
            dontFragment: Bool = true)
        /// The UDP checksum over IPv6 is computed unless `zeroUDPChecksum`: a zero checksum
        /// for a tunnel is only allowed under RFC 6935 / RFC 6936, which the receiver must
        /// have been configured to accept.
        case ipv6(
            source: IPv6Address, destination: IPv6Address, hopLimit: UInt8 = 64,
            trafficClass: UInt8 = 0, flowLabel: UInt32 = 0, zeroUDPChecksum: Bool = false)
    }

    public let encapsulation: Encapsulation
    /// The VNI: the VXLAN VNI, the GRE key, or the NVGRE VSID.
    public let vni: UInt32
    /// Bytes `stamp` writes in front of the inner frame.
    public let headerLength: Int
    /// The largest inner frame whose outer IP length field still fits in 16 bits.
    public let maximumInnerLength: Int

    @usableFromInline let bytes: InlineArray<80, UInt8>
    @usableFromInline let networkOffset: Int
    @usableFromInline let tunnelOffset: Int
    @usableFromInline let isIPv6: Bool
    /// IPv4: the header checksum of the template as built (inner length 0, identification 0).
    @usableFromInline let ipv4Checksum: UInt16
    /// IPv6: the first word (version, traffic class, flow label) as built.
    @usableFromInline let ipv6FirstWord: UInt32
    /// Whether `stamp` fills in a checksum over the payload: IPv6 UDP, or GRE with C.
    @usableFromInline let computesChecksum: Bool
    @usableFromInline let greSequence: Bool
    /// Whether the template has GRE's S bit: `stamp` then writes the caller's `sequence`.
    @inlinable public var carriesGRESequence: Bool { greSequence }
    /// The constant part of that checksum: pseudo-header addresses and protocol, UDP
    /// destination port and VXLAN header; or GRE flags, protocol and key.
    @usableFromInline let constantSum: InternetChecksum

    /// Builds the template. `vni` must fit 24 bits (the VXLAN VNI and NVGRE VSID are 24
    /// bits; GRE carries it in its key). For GRE, `greChecksum` adds the C bit and
    /// `greSequence` the S bit; both cost per packet (a checksum over the whole frame, and a
    /// caller-kept counter) and most peers use neither.
    public init(
        encapsulation: Encapsulation, vni: UInt32, network: Network, ethernet: Ethernet? = nil,
        udpDestinationPort: UInt16 = UDPHeader.vxlanPort, greChecksum: Bool = false,
        greSequence: Bool = false
    ) throws(InvalidOuterHeaderTemplate) {
        guard vni <= VXLANHeader.maximumVNI else { throw .vniOutOfRange(vni) }
        guard udpDestinationPort != 0 || encapsulation != .vxlan else {
            throw .udpDestinationPortZero
        }
        self.encapsulation = encapsulation
        self.vni = vni
        let useGRESequence = encapsulation == .gre && greSequence
        let useGREChecksum = encapsulation == .gre && greChecksum
        self.greSequence = useGRESequence

        var isIPv6 = false
        var networkLength = 20
        var zeroUDPChecksum = true
        if case .ipv6(_, _, _, _, _, let zero) = network {
            isIPv6 = true
            networkLength = 40
            zeroUDPChecksum = zero
        }
        let networkOffset = ethernet == nil ? 0 : (ethernet?.vlan == nil ? 14 : 18)
        let tunnelOffset = networkOffset + networkLength
        let tunnelLength: Int
        switch encapsulation {
        case .vxlan: tunnelLength = UDPHeader.length + VXLANHeader.length
        case .gre: tunnelLength = 8 + (useGREChecksum ? 4 : 0) + (useGRESequence ? 4 : 0)
        case .nvgre: tunnelLength = NVGREHeader.length
        }
        let headerLength = tunnelOffset + tunnelLength
        self.isIPv6 = isIPv6
        self.networkOffset = networkOffset
        self.tunnelOffset = tunnelOffset
        self.headerLength = headerLength
        // IPv4 Total Length counts the IP header; IPv6 Payload Length does not.
        maximumInnerLength = 65535 - (headerLength - (isIPv6 ? tunnelOffset : networkOffset))
        computesChecksum = encapsulation == .vxlan ? isIPv6 && !zeroUDPChecksum : useGREChecksum

        let ipProtocol = encapsulation == .vxlan ? IPProtocol.udp : IPProtocol.gre
        var storage = InlineArray<80, UInt8>(repeating: 0)
        var sum = InternetChecksum()
        var builtChecksum: UInt16 = 0
        var firstWord: UInt32 = 0
        withUnsafeMutableBytes(of: &storage) { raw in
            // Every store below fits: the layout was sized above and is at most 74 bytes.
            if let ethernet {
                let header = EthernetHeader(
                    destination: ethernet.destination, source: ethernet.source,
                    outerTag: ethernet.vlan,
                    etherType: isIPv6 ? EtherType.ipv6 : EtherType.ipv4)
                _ = try? header.store(into: raw, at: 0)
            }
            switch network {
            case .ipv4(let source, let destination, let ttl, let tos, let dontFragment):
                let header = IPv4Header(
                    source: source, destination: destination, protocol: ipProtocol,
                    payloadLength: tunnelLength, ttl: ttl, tos: tos,
                    dontFragment: dontFragment)
                _ = try? header.store(into: raw, at: networkOffset)
                builtChecksum = UnsafeRawBufferPointer(raw).loadBigEndianUInt16(
                    at: networkOffset + 10)
            case .ipv6(let source, let destination, let hopLimit, let trafficClass, let label, _):
                let header = IPv6Header(
                    source: source, destination: destination, nextHeader: ipProtocol,
                    payloadLength: tunnelLength, hopLimit: hopLimit, trafficClass: trafficClass,
                    flowLabel: label)
                _ = try? header.store(into: raw, at: networkOffset)
                firstWord = UnsafeRawBufferPointer(raw).loadBigEndianUInt32(at: networkOffset)
                sum.add(source)
                sum.add(destination)
                sum.add(UInt16(ipProtocol))
            }
            switch encapsulation {
            case .vxlan:
                let udp = UDPHeader(
                    sourcePort: 0, destinationPort: udpDestinationPort,
                    length: UInt16(tunnelLength))
                _ = try? udp.store(into: raw, at: tunnelOffset)
                let vxlan = VXLANHeader(vni: vni)
                _ = try? vxlan.store(into: raw, at: tunnelOffset + UDPHeader.length)
                sum.add(udpDestinationPort)
                sum.add(UInt32(truncatingIfNeeded: vxlan.wireValue >> 32))
                sum.add(UInt32(truncatingIfNeeded: vxlan.wireValue))
            case .gre:
                let gre = GREHeader(
                    checksumPresent: useGREChecksum, key: vni,
                    sequence: useGRESequence ? 0 : nil)
                _ = try? gre.store(into: raw, at: tunnelOffset, payloadLength: 0)
                // The checksum is per packet: zero it here, and keep the sum of the rest of
                // the header (flags, protocol, key; the sequence number is added per packet).
                if useGREChecksum { raw.storeBigEndian(UInt16(0), at: tunnelOffset + 4) }
                sum = InternetChecksum()
                sum.add(UnsafeRawBufferPointer(rebasing: raw[tunnelOffset..<headerLength]))
            case .nvgre:
                _ = try? NVGREHeader(vsid: vni).store(into: raw, at: tunnelOffset)
            }
        }
        bytes = storage
        ipv4Checksum = builtChecksum
        ipv6FirstWord = firstWord
        constantSum = sum
    }

    /// Writes the outer headers at `buffer[offset...]` in front of an inner frame of
    /// `innerLength` bytes already in place at `offset + headerLength`, and returns the offset
    /// just past the inner frame.
    ///
    /// - `sourcePort`: VXLAN's UDP source port (`SourcePortRange.port(for:)` of the flow hash).
    /// - `flowID`: NVGRE's FlowID (RFC 7637 §3.2 entropy).
    /// - `sequence`: GRE's sequence number when the template has S; the caller keeps the
    ///   per-tunnel counter.
    /// - `identification`: IPv4 Identification; leave 0 with DF set, else pass a counter.
    /// - `flowLabel`: IPv6 flow label for this packet (RFC 6438 entropy); nil keeps the
    ///   template's.
    ///
    /// Throws `.innerFrameTooLarge` past `maximumInnerLength`, `.noHeadroom` when the buffer
    /// does not hold `headerLength + innerLength` bytes from `offset`.
    @inlinable
    public func stamp(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, innerLength: Int,
        sourcePort: UInt16 = 0, flowID: UInt8 = 0, sequence: UInt32 = 0,
        identification: UInt16 = 0, flowLabel: UInt32? = nil
    ) throws(Malformed) -> Int {
        guard innerLength >= 0, innerLength <= maximumInnerLength else {
            throw .innerFrameTooLarge
        }
        let headerLength = self.headerLength
        guard buffer.contains(headerLength + innerLength, at: offset) else { throw .noHeadroom }
        bytes.span.withUnsafeBytes { template in
            (buffer.baseAddress! + offset).copyMemory(
                from: template.baseAddress!, byteCount: headerLength)
        }
        let network = offset + networkOffset
        let tunnel = offset + tunnelOffset
        // Everything after the IP header: UDP or GRE header and the inner frame.
        let upperLength = UInt16(truncatingIfNeeded: headerLength - tunnelOffset + innerLength)
        if isIPv6 {
            buffer.storeBigEndian(upperLength, at: network + 4)
            if let flowLabel {
                let word = ipv6FirstWord & 0xFFF0_0000 | flowLabel & 0xF_FFFF
                buffer.storeBigEndian(word, at: network)
            }
        } else {
            let builtTotal = UInt16(truncatingIfNeeded: headerLength - tunnelOffset + 20)
            let total = upperLength &+ 20
            buffer.storeBigEndian(total, at: network + 2)
            var checksum = InternetChecksum.update(ipv4Checksum, replacing: builtTotal, with: total)
            if identification != 0 {
                buffer.storeBigEndian(identification, at: network + 4)
                checksum = InternetChecksum.update(checksum, replacing: 0, with: identification)
            }
            buffer.storeBigEndian(checksum, at: network + 10)
        }
        let inner = UnsafeRawBufferPointer(
            rebasing: buffer[offset + headerLength..<offset + headerLength + innerLength])
        switch encapsulation {
        case .vxlan:
            buffer.storeBigEndian(sourcePort, at: tunnel)
            buffer.storeBigEndian(upperLength, at: tunnel + 4)
            if computesChecksum {
                // RFC 8200 §8.1: pseudo-header (addresses, upper-layer length, next header),
                // then the UDP header with its own length, then the data.
                var sum = constantSum
                sum.add(sourcePort)
                sum.add(upperLength)
                sum.add(upperLength)
                sum.add(inner)
                buffer.storeBigEndian(UDPHeader.checksumField(sum), at: tunnel + 6)
            }
        case .gre:
            if greSequence {
                buffer.storeBigEndian(sequence, at: tunnel + headerLength - tunnelOffset - 4)
            }
            if computesChecksum {
                // RFC 2784 §2.5: over the GRE header (checksum field zero) and payload.
                var sum = constantSum
                if greSequence { sum.add(sequence) }
                sum.add(inner)
                buffer.storeBigEndian(sum.checksum, at: tunnel + 4)
            }
        case .nvgre:
            buffer.storeByte(flowID, at: tunnel + 7)
        }
        return offset + headerLength + innerLength
    }
}

extension OuterHeaderTemplate {
    /// VXLAN to a unicast address, IPv4 or IPv6.
    @inlinable
    public var isVXLANToUnicast: Bool {
        guard encapsulation == .vxlan else { return false }
        if isIPv6 { return bytes[networkOffset + 24] != 0xFF }
        return bytes[networkOffset + 16] & 0xF0 != 0xE0
    }

    /// Whether `stampWhole` can write this template: VXLAN to a unicast address behind an
    /// untagged Ethernet header (what the TAP device's redirect sends out of the underlay as
    /// it is). Floods to a multicast group stay UDP GSO trains.
    @inlinable
    public var goesWhole: Bool { isVXLANToUnicast && networkOffset == 14 }

    /// Whether the outer network is IPv6.
    @inlinable
    public var isOverIPv6: Bool { isIPv6 }

    /// Whether `stampWhole` leaves a UDP checksum for the kernel to finish per segment
    /// (VXLAN over IPv6 unless the template has a zero checksum): the virtio_net_hdr must
    /// then say so (`VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM`).
    @inlinable
    public var wholeUDPChecksum: Bool { encapsulation == .vxlan && computesChecksum }

    /// Bytes `stampWhole` writes: the Ethernet header (untagged), IPv4 or IPv6, UDP and
    /// VXLAN (50 or 70).
    @inlinable
    public var wholeHeaderLength: Int { 14 + headerLength - networkOffset }

    /// The outer headers of one packet handed to the kernel whole (`VXLANTransmit.tunnelGSO`),
    /// at `buffer[offset...]`, for an inner frame of `innerLength` bytes that follows them:
    /// the template's Ethernet header (next hop, underlay), IP, UDP and VXLAN headers, with
    /// their lengths, the IPv4 header checksum and the UDP source port; the packet leaves the
    /// underlay as written (no forwarding: TTL and hop limit as configured). The UDP checksum
    /// is zero over IPv4 (RFC 7348 §5) and where the
    /// template has a zero checksum over IPv6 (RFC 6935); otherwise it holds the
    /// pseudo-header sum over the whole datagram (not complemented), as the kernel's own
    /// UDP-tunnel GSO leaves it for each segment's to be finished (`wholeUDPChecksum`).
    /// Returns the bytes written. Throws `.innerFrameTooLarge` past `maximumInnerLength`,
    /// `.noHeadroom` when `buffer` is too short. Only for a template that `goesWhole`.
    @inlinable
    public func stampWhole(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, innerLength: Int,
        sourcePort: UInt16
    ) throws(Malformed) -> Int {
        precondition(goesWhole)
        guard innerLength >= 0, innerLength <= maximumInnerLength else {
            throw .innerFrameTooLarge
        }
        let length = wholeHeaderLength
        guard buffer.contains(length, at: offset) else { throw .noHeadroom }
        let network = offset + 14
        bytes.span.withUnsafeBytes { template in
            (buffer.baseAddress! + offset).copyMemory(
                from: template.baseAddress!, byteCount: headerLength)
        }
        let udpLength = UInt16(truncatingIfNeeded: headerLength - tunnelOffset + innerLength)
        let view = UnsafeRawBufferPointer(buffer)
        let udp: Int
        var checksum: UInt16 = 0
        if isIPv6 {
            buffer.storeBigEndian(EtherType.ipv6, at: offset + 12)
            buffer.storeBigEndian(udpLength, at: network + 4)
            udp = network + 40
            if computesChecksum {
                checksum =
                    InternetChecksum.pseudoHeader(
                        in: view, network: network, isIPv6: true, protocol: IPProtocol.udp,
                        length: Int(udpLength)
                    ).folded
            }
        } else {
            buffer.storeBigEndian(EtherType.ipv4, at: offset + 12)
            buffer.storeBigEndian(udpLength &+ 20, at: network + 2)
            buffer.storeBigEndian(UInt16(0), at: network + 10)
            let header = UnsafeRawBufferPointer(rebasing: buffer[network..<network + 20])
            buffer.storeBigEndian(InternetChecksum.checksum(header), at: network + 10)
            udp = network + 20
        }
        buffer.storeBigEndian(sourcePort, at: udp)
        buffer.storeBigEndian(udpLength, at: udp + 4)
        buffer.storeBigEndian(checksum, at: udp + 6)
        return length
    }
}

/// Why an outer-header template was refused (an operator or controller configuration error).
public enum InvalidOuterHeaderTemplate: Error, Hashable, Sendable, CustomStringConvertible {
    case vniOutOfRange(UInt32)
    case udpDestinationPortZero

    public var description: String {
        switch self {
        case .vniOutOfRange(let vni): "VNI \(vni) is out of range (0–16777215)"
        case .udpDestinationPortZero: "VXLAN UDP destination port 0 is not a port (use 4789)"
        }
    }
}

extension OuterHeaderTemplate {
    /// Outer headers for a UDP GSO train (UDP segmentation offload, `VirtioNetHeader.GSO
    /// .udpL4`): `count` VXLAN datagrams laid out back to back behind one outer Ethernet, IP
    /// and UDP header, each datagram a VXLAN header and an inner frame of `segmentLength`
    /// bytes (the last `lastLength`). The caller has written inner frame i at `offset +
    /// headerLength + i × (segmentLength + 8)`. This writes the outer headers with lengths
    /// covering the whole train and the UDP checksum field holding the pseudo-header sum,
    /// copies the VXLAN header in front of every later inner frame, and returns the header
    /// to send the train with: the kernel (or the NIC) cuts it into datagrams of
    /// `segmentLength + 8` bytes, each with its own lengths, IPv4 identification and
    /// checksums, as it does for a UDP socket's UDP_SEGMENT.
    ///
    /// VXLAN only; throws `.innerFrameTooLarge` when the train exceeds an IP packet's 64 KB.
    @inlinable
    public func stampTrain(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, segmentLength: Int,
        count: Int, lastLength: Int, sourcePort: UInt16
    ) throws(Malformed) -> VirtioNetHeader {
        precondition(encapsulation == .vxlan && count >= 1 && lastLength <= segmentLength)
        let stride = segmentLength + VXLANHeader.length
        let innerLength = (count - 1) * stride + lastLength
        // One datagram's worth of checksum work is skipped below: the template's own
        // checksum (IPv6) would sum the whole train, and is replaced anyway.
        _ = try stamp(into: buffer, at: offset, innerLength: 0, sourcePort: sourcePort)
        guard innerLength <= maximumInnerLength,
            buffer.contains(headerLength + innerLength, at: offset)
        else { throw .innerFrameTooLarge }
        let network = offset + networkOffset
        let udp = offset + tunnelOffset
        let udpLength = UInt16(truncatingIfNeeded: headerLength - tunnelOffset + innerLength)
        let view = UnsafeRawBufferPointer(buffer)
        if isIPv6 {
            buffer.storeBigEndian(udpLength, at: network + 4)
        } else {
            let totalLength = udpLength &+ 20
            buffer.storeBigEndian(totalLength, at: network + 2)
            buffer.storeBigEndian(UInt16(0), at: network + 10)
            let header = UnsafeRawBufferPointer(rebasing: view[network..<network + 20])
            buffer.storeBigEndian(InternetChecksum.checksum(header), at: network + 10)
        }
        let sum = InternetChecksum.pseudoHeader(
            in: view, network: network, isIPv6: isIPv6, protocol: IPProtocol.udp,
            length: Int(udpLength))
        buffer.storeBigEndian(udpLength, at: udp + 4)
        buffer.storeBigEndian(sum.folded, at: udp + 6)
        let vxlan = buffer.baseAddress! + offset + headerLength - VXLANHeader.length
        for i in 1..<max(1, count) {
            (vxlan + i * stride).copyMemory(from: vxlan, byteCount: VXLANHeader.length)
        }
        return VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.GSO.udpL4,
            headerLength: UInt16(headerLength - VXLANHeader.length),
            gsoSize: UInt16(stride),
            checksumStart: UInt16(tunnelOffset), checksumOffset: 6)
    }
}
