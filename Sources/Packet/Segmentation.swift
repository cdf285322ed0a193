/// A GSO super-frame (TCP over IPv4 or IPv6, or UDP with UDP segmentation offload) read
/// with its `VirtioNetHeader`, and the frames it stands for on the wire: what TSO/USO would
/// have sent, done in software.
///
/// Each segment is the super-frame's headers (Ethernet, IP, TCP or UDP) followed by the next
/// `segmentSize` bytes of its payload, with, per segment (RFC 9293 §3.1, RFC 791, RFC 8200,
/// as the kernel's tcp_gso_segment and __udp_gso_segment do):
/// - IPv4 total length, identification (the super-frame's plus the segment's index) and
///   header checksum; IPv6 payload length;
/// - TCP: sequence number advanced by the payload before it; FIN and PSH on the last segment
///   only, CWR on the first only; UDP: its length;
/// - the transport checksum computed in full over the pseudo-header and the segment.
///
/// The headers are parsed from the bytes, never taken on trust from the vnet header, whose
/// type must agree with them. Nothing is allocated; `write` copies one segment into a buffer
/// the caller owns (a transmit slot), untagged or with one 802.1Q tag.
@frozen
public struct SuperFrame: Sendable {
    /// Ethernet header length in the super-frame (14, or 18 with one tag).
    @usableFromInline let networkOffset: Int
    @usableFromInline let isIPv6: Bool
    @usableFromInline let isTCP: Bool
    /// Start of the TCP or UDP header.
    @usableFromInline let transportOffset: Int
    /// End of all headers: where the payload starts.
    @usableFromInline let payloadOffset: Int
    /// End of the IP packet (Ethernet padding excluded).
    @usableFromInline let end: Int
    /// Payload bytes per segment (all but the last, which may be shorter).
    public let segmentSize: Int
    /// How many frames it stands for.
    public let count: Int

    /// Reads the super-frame `frame` (from its destination MAC) described by `header`, to be
    /// cut into segments of at most `maximumSegmentSize` payload bytes (the smaller of that and
    /// the header's `gsoSize` is used, so segments also fit a path narrower than the one the
    /// sender assumed). Throws `.offloadUnsupported` for a kind not segmented here (UFO, QinQ,
    /// IPv4 fragments, BIG TCP's zero length) and `.offloadHeaderInvalid` when the headers or
    /// sizes do not hold together.
    @inlinable
    public init(
        _ frame: UnsafeRawBufferPointer, header: VirtioNetHeader, maximumSegmentSize: Int
    ) throws(Malformed) {
        guard frame.count >= 14 else { throw .offloadHeaderInvalid }
        var type = frame.loadBigEndianUInt16(at: 12)
        var l3 = 14
        if EtherType.isVLANTag(type) {
            guard frame.count >= 18 else { throw .offloadHeaderInvalid }
            type = frame.loadBigEndianUInt16(at: 16)
            l3 = 18
            if EtherType.isVLANTag(type) { throw .offloadUnsupported }
        }
        let gso = header.gsoType & ~VirtioNetHeader.GSO.ecn
        let transportProtocol: UInt8
        let l4: Int
        let end: Int
        switch type {
        case EtherType.ipv4:
            guard gso == VirtioNetHeader.GSO.tcpv4 || gso == VirtioNetHeader.GSO.udpL4 else {
                throw .offloadUnsupported
            }
            guard frame.count >= l3 + 20, frame.loadByte(at: l3) >> 4 == 4 else {
                throw .offloadHeaderInvalid
            }
            let ihl = Int(frame.loadByte(at: l3) & 0xF) * 4
            let total = Int(frame.loadBigEndianUInt16(at: l3 + 2))
            // A zero total length is BIG TCP (over 64 KB), which needs a hop-by-hop jumbo
            // option on IPv6 and is never sent by a packet socket reader's MTU; refuse it.
            guard total != 0 else { throw .offloadUnsupported }
            guard ihl >= 20, total >= ihl, l3 + total <= frame.count else {
                throw .offloadHeaderInvalid
            }
            if frame.loadBigEndianUInt16(at: l3 + 6) & 0x3FFF != 0 { throw .offloadUnsupported }
            transportProtocol = frame.loadByte(at: l3 + 9)
            l4 = l3 + ihl
            end = l3 + total
            isIPv6 = false
        case EtherType.ipv6:
            guard gso == VirtioNetHeader.GSO.tcpv6 || gso == VirtioNetHeader.GSO.udpL4 else {
                throw .offloadUnsupported
            }
            let ip: IPv6Header
            do { ip = try IPv6Header.parse(frame, at: l3) } catch {
                throw .offloadHeaderInvalid
            }
            guard ip.payloadLength != 0 else { throw .offloadUnsupported }
            if ip.fragment != nil { throw .offloadUnsupported }
            transportProtocol = ip.upperLayerProtocol
            l4 = ip.upperLayerOffset
            end = ip.payloadEnd
            isIPv6 = true
        default:
            throw .offloadUnsupported
        }
        let tcp = transportProtocol == IPProtocol.tcp
        guard tcp || transportProtocol == IPProtocol.udp else { throw .offloadUnsupported }
        guard tcp == (gso != VirtioNetHeader.GSO.udpL4) else { throw .offloadHeaderInvalid }
        let headers: Int
        if tcp {
            guard l4 + 20 <= end else { throw .offloadHeaderInvalid }
            headers = Int(frame.loadByte(at: l4 + 12) >> 4) * 4
            guard headers >= 20, l4 + headers <= end else { throw .offloadHeaderInvalid }
        } else {
            headers = UDPHeader.length
            guard l4 + headers <= end else { throw .offloadHeaderInvalid }
        }
        let size = min(Int(header.gsoSize), maximumSegmentSize)
        guard size > 0 else { throw .offloadHeaderInvalid }
        networkOffset = l3
        isTCP = tcp
        transportOffset = l4
        payloadOffset = l4 + headers
        self.end = end
        segmentSize = size
        let payload = end - payloadOffset
        count = max(1, (payload + size - 1) / size)
    }

    /// Bytes of headers in front of each segment's payload, the super-frame's Ethernet header
    /// replaced by an untagged one.
    @inlinable
    public var untaggedHeaderLength: Int { payloadOffset - networkOffset + 14 }

    /// Where its TCP or UDP header starts in the frame as read (tag included).
    @inlinable
    public var transportStart: Int { transportOffset }

    /// Whether the super-frame is TCP (UDP segmentation offload otherwise).
    @inlinable
    public var carriesTCP: Bool { isTCP }

    /// Bytes of its VLAN tag (0 or 4): what an untagged copy leaves out after the MAC
    /// addresses.
    @inlinable
    public var tagLength: Int { networkOffset - 14 }

    /// Where its IP packet ends: the bytes to carry (Ethernet padding left out).
    @inlinable
    public var packetEnd: Int { end }

    /// Stores at `pointer` the 24-byte virtio_net_hdr, with its UDP-tunnel extension, of this
    /// TCP super-frame sent untagged and whole behind `template`'s forwarded outer headers
    /// (`OuterHeaderTemplate.stampWhole`: Ethernet, IPv4 or IPv6, UDP, VXLAN): the kernel
    /// cuts the inner TCP into segments of `segmentSize` and completes each one's checksum,
    /// the field holding the pseudo-header sum as the sender's own TSO left it (or as
    /// `storePseudoHeaderSum` puts it), and each segment's outer UDP checksum where the
    /// template has one. `ecn` keeps the sender's ECN flag.
    @inlinable
    public func storeTunnelHeader(
        behind template: OuterHeaderTemplate, ecn: Bool, to pointer: UnsafeMutableRawPointer
    ) {
        let outer = template.wholeHeaderLength
        let header = VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum
                | (template.wholeUDPChecksum ? VirtioNetHeader.udpTunnelChecksum : 0),
            gsoType: (template.isOverIPv6
                ? VirtioNetHeader.GSO.udpTunnelIPv6 : VirtioNetHeader.GSO.udpTunnelIPv4)
                | (isIPv6 ? VirtioNetHeader.GSO.tcpv6 : VirtioNetHeader.GSO.tcpv4)
                | (ecn ? VirtioNetHeader.GSO.ecn : 0),
            headerLength: UInt16(truncatingIfNeeded: outer + untaggedHeaderLength),
            gsoSize: UInt16(truncatingIfNeeded: segmentSize),
            checksumStart: UInt16(
                truncatingIfNeeded: outer + transportOffset - networkOffset + 14),
            checksumOffset: 16)
        // The outer UDP header sits in front of UDP's 8 bytes and VXLAN's 8; the inner IP
        // header behind the inner (untagged) Ethernet header.
        header.storeTunnel(
            to: pointer, outerTransportOffset: UInt16(truncatingIfNeeded: outer - 16),
            innerNetworkOffset: UInt16(truncatingIfNeeded: outer + 14))
    }

    /// Stores in its TCP checksum field the pseudo-header sum over the whole super-frame
    /// (addresses, protocol, transport length; not complemented), as a sender's TSO leaves
    /// it: for a super-frame whose checksum was verified rather than left to offload (what
    /// GRO merged on a NIC), so that whoever cuts it can finish each segment's checksum.
    /// `frame` is the super-frame as read (tag included).
    @inlinable
    public func storePseudoHeaderSum(in frame: UnsafeMutableRawBufferPointer) {
        let sum = InternetChecksum.pseudoHeader(
            in: UnsafeRawBufferPointer(frame), network: networkOffset, isIPv6: isIPv6,
            protocol: isTCP ? IPProtocol.tcp : IPProtocol.udp, length: end - transportOffset)
        frame.storeBigEndian(sum.folded, at: transportOffset + (isTCP ? 16 : 6))
    }

    /// Writes segment `index` at `buffer[offset...]`, its Ethernet header untagged (`vlan`
    /// nil) or with one 802.1Q tag of `vlan`, and returns its length; 0 when it does not fit.
    @inlinable
    public func write(
        _ index: Int, of frame: UnsafeRawBufferPointer, vlan: UInt16?,
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int
    ) -> Int {
        let first = payloadOffset + index * segmentSize
        let size = min(segmentSize, end - first)
        let l2 = vlan == nil ? 14 : 18
        let l3 = offset + l2
        let headerBytes = payloadOffset - networkOffset
        let length = l2 + headerBytes + max(0, size)
        guard index >= 0, index < count, offset >= 0, offset + length <= buffer.count else {
            return 0
        }
        let out = buffer.baseAddress! + offset
        out.copyMemory(from: frame.baseAddress!, byteCount: 12)
        if let vlan {
            out.storeBytes(of: EtherType.vlan.bigEndian, toByteOffset: 12, as: UInt16.self)
            out.storeBytes(of: (vlan & 0xFFF).bigEndian, toByteOffset: 14, as: UInt16.self)
        }
        // The EtherType, then IP and transport headers, then this segment's payload.
        (out + l2 - 2).copyMemory(
            from: frame.baseAddress! + networkOffset - 2, byteCount: headerBytes + 2)
        if size > 0 {
            (out + l2 + headerBytes).copyMemory(from: frame.baseAddress! + first, byteCount: size)
        }
        let l4 = l3 + (transportOffset - networkOffset)
        let transportLength = length - (l4 - offset)
        let last = index == count - 1
        if isIPv6 {
            buffer.storeBigEndian(UInt16(truncatingIfNeeded: length - l2 - 40), at: l3 + 4)
        } else {
            let ihl = transportOffset - networkOffset
            buffer.storeBigEndian(UInt16(truncatingIfNeeded: length - l2), at: l3 + 2)
            let id = UnsafeRawBufferPointer(buffer).loadBigEndianUInt16(at: l3 + 4)
            buffer.storeBigEndian(id &+ UInt16(truncatingIfNeeded: index), at: l3 + 4)
            buffer.storeBigEndian(UInt16(0), at: l3 + 10)
            let ipHeader = UnsafeRawBufferPointer(rebasing: buffer[l3..<l3 + ihl])
            buffer.storeBigEndian(InternetChecksum.checksum(ipHeader), at: l3 + 10)
        }
        var sum = InternetChecksum.pseudoHeader(
            in: UnsafeRawBufferPointer(buffer), network: l3, isIPv6: isIPv6,
            protocol: isTCP ? IPProtocol.tcp : IPProtocol.udp, length: transportLength)
        let field: Int
        if isTCP {
            let sequence = UnsafeRawBufferPointer(buffer).loadBigEndianUInt32(at: l4 + 4)
            buffer.storeBigEndian(
                sequence &+ UInt32(truncatingIfNeeded: index * segmentSize), at: l4 + 4)
            var flags = buffer.load(fromByteOffset: l4 + 13, as: UInt8.self)
            if !last { flags &= ~(TCPFlags.fin | TCPFlags.psh) }
            if index != 0 { flags &= ~TCPFlags.cwr }
            buffer.storeBytes(of: flags, toByteOffset: l4 + 13, as: UInt8.self)
            field = l4 + 16
        } else {
            buffer.storeBigEndian(UInt16(truncatingIfNeeded: transportLength), at: l4 + 4)
            field = l4 + 6
        }
        buffer.storeBigEndian(UInt16(0), at: field)
        sum.add(UnsafeRawBufferPointer(rebasing: buffer[l4..<offset + length]))
        let checksum = sum.checksum
        // RFC 768: a computed UDP checksum of zero is sent as all ones.
        buffer.storeBigEndian(!isTCP && checksum == 0 ? 0xFFFF : checksum, at: field)
        return length
    }
}

/// TCP control bits (RFC 9293 §3.1, RFC 3168 §6.1 for CWR and ECE).
public enum TCPFlags {
    public static let fin: UInt8 = 0x01
    public static let syn: UInt8 = 0x02
    public static let rst: UInt8 = 0x04
    public static let psh: UInt8 = 0x08
    public static let ack: UInt8 = 0x10
    public static let urg: UInt8 = 0x20
    public static let ece: UInt8 = 0x40
    public static let cwr: UInt8 = 0x80
}
