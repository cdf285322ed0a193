/// `struct virtio_net_hdr` (virtio 1.2 §5.1.6, without `num_buffers`): the 10 bytes that an
/// AF_PACKET socket with PACKET_VNET_HDR puts in front of every frame it reads and expects in
/// front of every frame it writes. It carries what the kernel knows of a frame beyond its
/// bytes: a checksum left for offload to finish (`needsChecksum` with `checksumStart` and
/// `checksumOffset`), and a super-frame that GRO merged or TSO/GSO has yet to split
/// (`gsoType`, with `gsoSize` payload bytes per segment and `headerLength` bytes of headers).
///
/// Packet sockets use the legacy layout in the host's byte order (net/packet `vio_le()`), so
/// the fields are loaded and stored little-endian on the little-endian hosts we run on.
@frozen
public struct VirtioNetHeader: Hashable, Sendable {
    public static let length = 10

    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum at `checksumStart + checksumOffset` holds
    /// only the pseudo-header sum; the rest is to be summed from `checksumStart` to the end.
    public static let needsChecksum: UInt8 = 1
    /// VIRTIO_NET_HDR_F_DATA_VALID: the receiver already verified the checksum.
    public static let dataValid: UInt8 = 2

    /// VIRTIO_NET_HDR_GSO_* values of `gsoType`.
    public enum GSO {
        public static let none: UInt8 = 0
        public static let tcpv4: UInt8 = 1
        /// UFO: IP fragmentation of one large UDP datagram. Never segmented here.
        public static let udp: UInt8 = 3
        public static let tcpv6: UInt8 = 4
        /// UDP segmentation offload (SKB_GSO_UDP_L4, Linux 6.2+ on packet sockets): each
        /// segment its own datagram.
        public static let udpL4: UInt8 = 5
        /// The sender's TCP saw ECN congestion (CWR belongs on the first segment only).
        public static let ecn: UInt8 = 0x80
        /// VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4 (Linux 6.17+, TUN/TAP with the 24-byte header):
        /// the frame is a UDP tunnel packet over IPv4 around a TCP super-frame (`tcpv4` or
        /// `tcpv6` beside it); the inner TCP is what gets cut.
        public static let udpTunnelIPv4: UInt8 = 0x20
        /// VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV6: the same over IPv6.
        public static let udpTunnelIPv6: UInt8 = 0x40
    }

    /// VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM: the outer UDP checksum is to be finished per
    /// segment too (its field holds the pseudo-header sum), as for VXLAN over IPv6.
    public static let udpTunnelChecksum: UInt8 = 8

    /// `struct virtio_net_hdr_v1_hash_tunnel`'s length: this header, `num_buffers`, the hash
    /// report (8 bytes, unused here) and the two offsets of the UDP-tunnel extension.
    public static let tunnelLength = 24

    public var flags: UInt8
    public var gsoType: UInt8
    public var headerLength: UInt16
    public var gsoSize: UInt16
    public var checksumStart: UInt16
    public var checksumOffset: UInt16

    @inlinable
    public init(
        flags: UInt8 = 0, gsoType: UInt8 = GSO.none, headerLength: UInt16 = 0,
        gsoSize: UInt16 = 0, checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// A frame that is exactly as it goes on the wire: no offload asked.
    public static let plain = VirtioNetHeader()

    /// A GSO super-frame: more than one frame on the wire.
    @inlinable
    public var isSuperFrame: Bool { gsoType & ~GSO.ecn != GSO.none }

    @inlinable
    public var needsChecksumCompletion: Bool { flags & Self.needsChecksum != 0 }

    @inlinable
    public static func load(from pointer: UnsafeRawPointer) -> VirtioNetHeader {
        VirtioNetHeader(
            flags: pointer.load(fromByteOffset: 0, as: UInt8.self),
            gsoType: pointer.load(fromByteOffset: 1, as: UInt8.self),
            headerLength: UInt16(
                littleEndian: pointer.loadUnaligned(fromByteOffset: 2, as: UInt16.self)),
            gsoSize: UInt16(
                littleEndian: pointer.loadUnaligned(fromByteOffset: 4, as: UInt16.self)),
            checksumStart: UInt16(
                littleEndian: pointer.loadUnaligned(fromByteOffset: 6, as: UInt16.self)),
            checksumOffset: UInt16(
                littleEndian: pointer.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
    }

    @inlinable
    public func store(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: flags, toByteOffset: 0, as: UInt8.self)
        pointer.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        pointer.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        pointer.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        pointer.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        pointer.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
    }

    /// Stores the header as `struct virtio_net_hdr_v1_hash_tunnel` (24 bytes, little-endian
    /// as TUNSETVNETLE asks): this header, zero `num_buffers` and hash report, then the
    /// offsets of the outer UDP header and of the inner IP header from the frame's start.
    @inlinable
    public func storeTunnel(
        to pointer: UnsafeMutableRawPointer, outerTransportOffset: UInt16,
        innerNetworkOffset: UInt16
    ) {
        store(to: pointer)
        (pointer + Self.length).initializeMemory(as: UInt8.self, repeating: 0, count: 10)
        pointer.storeBytes(
            of: outerTransportOffset.littleEndian, toByteOffset: 20, as: UInt16.self)
        pointer.storeBytes(of: innerNetworkOffset.littleEndian, toByteOffset: 22, as: UInt16.self)
    }

    /// The same header for the frame after `delta` bytes were inserted (positive) or removed
    /// (negative) in front of its network header, as a VLAN tag pushed or popped does.
    @inlinable
    public func shifted(by delta: Int) -> VirtioNetHeader {
        var moved = self
        if flags & Self.needsChecksum != 0 {
            moved.checksumStart = UInt16(truncatingIfNeeded: Int(checksumStart) + delta)
        }
        if headerLength != 0 {
            moved.headerLength = UInt16(truncatingIfNeeded: Int(headerLength) + delta)
        }
        return moved
    }

    /// Finishes the checksum that offload left undone (`needsChecksum`): sums the frame from
    /// `checksumStart` to its end, the field already holding the pseudo-header sum, and stores
    /// the complement, an all-zero result as 0xFFFF (as the kernel's skb_checksum_help; for UDP
    /// a zero means "no checksum", RFC 768). Returns false, changing nothing, when the offsets
    /// lie outside the frame.
    @inlinable
    public func completeChecksum(in frame: UnsafeMutableRawBufferPointer) -> Bool {
        let start = Int(checksumStart)
        let field = start + Int(checksumOffset)
        guard start < frame.count, field + 2 <= frame.count else { return false }
        let covered = UnsafeRawBufferPointer(rebasing: frame[start..<frame.count])
        let sum = ~InternetChecksum.foldedSum(covered)
        frame.storeBigEndian(sum == 0 ? 0xFFFF : sum, at: field)
        return true
    }
}
