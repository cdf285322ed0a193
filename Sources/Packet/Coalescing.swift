/// Consecutive segments of one TCP flow merged into one super-frame in a transmit buffer:
/// GRO in software, so a host behind the gateway receives 64 KB at a time through a
/// `VirtioNetHeader` (gso TCPv4/TCPv6) and the kernel or its NIC segments it again.
///
/// The rules are the kernel's (net/ipv4/tcp_offload.c `tcp_gro_receive`, inet/ipv6 GRO): a
/// segment joins only when it continues the frame being built exactly — same Ethernet
/// addresses, same IP header but for the length (IPv4 without options or fragments; IPv6
/// without extension headers), same ports, acknowledgment number, header length and options,
/// its sequence number the next expected, ACK (with PSH at most) its only flags, a payload no
/// larger than the first segment's, and a transport checksum that verifies, so a corrupt
/// segment is never given a valid checksum. A segment shorter than the first, or with PSH,
/// ends the frame. Merged frames carry the pseudo-header sum in the checksum field and
/// `needsChecksum`, as the kernel's own GSO frames do.
///
/// A segment whose checksum field holds only the pseudo-header sum (`PartialChecksum`: a
/// kernel neighbour's offload left it, or its GRO merged it) joins without a pass over its
/// payload, as the kernel trusts CHECKSUM_PARTIAL; such a frame that stays alone has its
/// checksum finished by `finish`. A frame that is already a super-frame (a namespace
/// neighbour's TSO or GRO train, delivered whole through the UDP socket) starts as one, cut
/// for `maximumIPLength`.
///
/// One instance follows one transmit slot; it holds offsets and counts only, the bytes stay in
/// the caller's buffer.
@frozen
public struct TCPCoalescer: Sendable {
    /// Whether a frame is being built and can still grow.
    @inlinable public var isOpen: Bool { open }
    @usableFromInline var open = false
    @usableFromInline var isIPv6 = false
    /// Offsets in the built frame, from its first byte.
    @usableFromInline var network = 0
    @usableFromInline var transport = 0
    @usableFromInline var payload = 0
    @usableFromInline var segmentSize = 0
    @usableFromInline var nextSequence: UInt32 = 0
    /// The first segment's checksum is a partial one, to finish if it stays alone.
    @usableFromInline var firstPartial = false
    /// Segments merged so far (1 after `start`).
    @inlinable public var segments: Int { merged }
    @usableFromInline var merged = 0

    /// The largest frame's IP packet: IPv4 total length and IPv6 payload length are 16 bits.
    @usableFromInline static let maximumIPLength = 65_535

    @inlinable
    public init() {}

    /// Starts a frame with the one at `frame` (as written into its transmit slot), whose
    /// segments on the way out are IP packets of at most `maximumIPLength` bytes (the port's
    /// MTU). Returns false, and stays closed, when it is not a TCP segment that others could
    /// join nor a super-frame already, or when bytes follow its IP packet; the caller then
    /// sends it as it is (finishing a partial checksum). A super-frame (a kernel neighbour's
    /// TSO frame, carried whole in one tunnel datagram) is taken whatever its flags, since it
    /// must leave with a GSO header: the kernel's segmentation puts FIN and PSH on its last
    /// segment only. Only ACK and PSH segments are ever joined.
    @inlinable
    public mutating func start(_ frame: UnsafeRawBufferPointer, maximumIPLength: Int) -> Bool {
        open = false
        merged = 0
        // Bytes after the IP packet (Ethernet padding) would sit between its payload and the
        // next segment's, and count in the lengths `finish` writes: such a frame goes as it is.
        guard let headers = Self.headers(frame), headers.payloadLength > 0,
            headers.end == frame.count
        else { return false }
        let joinable = headers.flags & ~TCPFlags.psh == TCPFlags.ack
        let partial = Self.checksumIsPartial(frame, headers)
        let limit = maximumIPLength - (headers.payload - headers.network)
        let length = headers.payloadLength
        guard limit > 0,
            joinable || (length > limit && headers.flags & (TCPFlags.syn | TCPFlags.rst) == 0),
            partial || Self.checksumIsValid(frame, headers)
        else { return false }
        isIPv6 = headers.isIPv6
        network = headers.network
        transport = headers.transport
        payload = headers.payload
        firstPartial = partial
        nextSequence = frame.loadBigEndianUInt32(at: transport + 4) &+ UInt32(length)
        open = joinable && headers.flags & TCPFlags.psh == 0
        if length > limit {
            // Already a super-frame: it stands for its segments at the port's size.
            segmentSize = limit
            merged = (length + limit - 1) / limit
            if length % limit != 0 { open = false }
        } else {
            segmentSize = length
            merged = 1
        }
        return true
    }

    /// Appends `candidate`'s payload to the frame at `buffer[frameStart ..< frameStart +
    /// frameLength]` when it continues it, and grows `frameLength`; returns false, changing
    /// nothing, when it does not (the caller then finishes this frame and starts another).
    @inlinable
    public mutating func append(
        _ candidate: UnsafeRawBufferPointer, to buffer: UnsafeMutableRawBufferPointer,
        frameStart: Int, frameLength: inout Int
    ) -> Bool {
        guard open, let c = Self.headers(candidate), c.isIPv6 == isIPv6,
            c.payload - c.network == payload - network,
            c.transport - c.network == transport - network
        else { return false }
        let size = c.payloadLength
        guard size > 0, size <= segmentSize,
            frameLength + size <= Self.maximumIPLength + network,
            frameStart + frameLength + size <= buffer.count,
            c.flags & ~TCPFlags.psh == TCPFlags.ack,
            candidate.loadBigEndianUInt32(at: c.transport + 4) == nextSequence
        else { return false }
        let built = UnsafeRawBufferPointer(
            rebasing: UnsafeRawBufferPointer(buffer)[frameStart..<frameStart + frameLength])
        // Ethernet addresses.
        guard
            built.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
                == candidate.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
            built.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
                == candidate.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        else { return false }
        // IP: everything but the lengths, the IPv4 identification and header checksum.
        if isIPv6 {
            guard
                Self.equal(built, network, candidate, c.network, 4)
                    && Self.equal(built, network + 6, candidate, c.network + 6, 34)
            else { return false }
        } else {
            guard
                Self.equal(built, network, candidate, c.network, 2)
                    && Self.equal(built, network + 6, candidate, c.network + 6, 4)
                    && Self.equal(built, network + 12, candidate, c.network + 12, 8)
            else { return false }
        }
        // TCP: ports, acknowledgment, data offset, options; the window may differ (the
        // kernel keeps the first one's too).
        let headerLength = payload - transport
        guard
            Self.equal(built, transport, candidate, c.transport, 4)
                && Self.equal(built, transport + 8, candidate, c.transport + 8, 5)
                && Self.equal(
                    built, transport + 20, candidate, c.transport + 20, headerLength - 20),
            Self.checksumIsPartial(candidate, c) || Self.checksumIsValid(candidate, c)
        else { return false }
        (buffer.baseAddress! + frameStart + frameLength).copyMemory(
            from: candidate.baseAddress! + c.payload, byteCount: size)
        frameLength += size
        merged += 1
        nextSequence &+= UInt32(size)
        if c.flags & TCPFlags.psh != 0 {
            let flags = buffer.load(fromByteOffset: frameStart + transport + 13, as: UInt8.self)
            buffer.storeBytes(
                of: flags | TCPFlags.psh, toByteOffset: frameStart + transport + 13,
                as: UInt8.self)
            open = false
        }
        if size < segmentSize { open = false }
        return true
    }

    /// Closes the frame at `buffer[frameStart ..< frameStart + frameLength]` and returns the
    /// header to send it with: `.plain` for a lone segment (left exactly as received), else
    /// lengths, the IPv4 header checksum and the TCP pseudo-header sum rewritten for the whole
    /// and a TCPv4/TCPv6 GSO header.
    @inlinable
    public mutating func finish(
        _ buffer: UnsafeMutableRawBufferPointer, frameStart: Int, frameLength: Int
    ) -> VirtioNetHeader {
        open = false
        defer { merged = 0 }
        guard merged > 1 else {
            if merged == 1 && firstPartial {
                let l4 = frameStart + transport
                let end = frameStart + frameLength
                let covered = UnsafeRawBufferPointer(
                    rebasing: UnsafeRawBufferPointer(buffer)[l4..<end])
                buffer.storeBigEndian(~InternetChecksum.foldedSum(covered), at: l4 + 16)
            }
            return .plain
        }
        let l3 = frameStart + network
        let l4 = frameStart + transport
        let transportLength = frameLength - transport
        let view = UnsafeRawBufferPointer(buffer)
        if isIPv6 {
            buffer.storeBigEndian(
                UInt16(truncatingIfNeeded: frameLength - network - 40), at: l3 + 4)
        } else {
            buffer.storeBigEndian(UInt16(truncatingIfNeeded: frameLength - network), at: l3 + 2)
            buffer.storeBigEndian(UInt16(0), at: l3 + 10)
            let header = UnsafeRawBufferPointer(rebasing: view[l3..<l3 + 20])
            buffer.storeBigEndian(InternetChecksum.checksum(header), at: l3 + 10)
        }
        let sum = InternetChecksum.pseudoHeader(
            in: view, network: l3, isIPv6: isIPv6, protocol: IPProtocol.tcp,
            length: transportLength)
        buffer.storeBigEndian(sum.folded, at: l4 + 16)
        return VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum,
            gsoType: isIPv6 ? VirtioNetHeader.GSO.tcpv6 : VirtioNetHeader.GSO.tcpv4,
            headerLength: UInt16(payload), gsoSize: UInt16(segmentSize),
            checksumStart: UInt16(transport), checksumOffset: 16)
    }

    // MARK: Parsing

    @usableFromInline
    struct Headers {
        @usableFromInline var isIPv6: Bool
        @usableFromInline var network: Int
        @usableFromInline var transport: Int
        @usableFromInline var payload: Int
        @usableFromInline var end: Int
        @usableFromInline var flags: UInt8
        @usableFromInline var payloadLength: Int { end - payload }

        @inlinable
        init(isIPv6: Bool, network: Int, transport: Int, payload: Int, end: Int, flags: UInt8) {
            self.isIPv6 = isIPv6
            self.network = network
            self.transport = transport
            self.payload = payload
            self.end = end
            self.flags = flags
        }
    }

    /// The offsets of a TCP segment that could be merged: IPv4 without options or fragments,
    /// or IPv6 whose next header is TCP; nil for anything else.
    @inlinable
    static func headers(_ frame: UnsafeRawBufferPointer) -> Headers? {
        guard frame.count >= 14 else { return nil }
        var type = frame.loadBigEndianUInt16(at: 12)
        var l3 = 14
        if EtherType.isVLANTag(type) {
            guard frame.count >= 18 else { return nil }
            type = frame.loadBigEndianUInt16(at: 16)
            l3 = 18
        }
        let l4: Int
        let end: Int
        let v6: Bool
        switch type {
        case EtherType.ipv4:
            guard frame.count >= l3 + 40, frame.loadByte(at: l3) == 0x45,
                frame.loadByte(at: l3 + 9) == IPProtocol.tcp,
                frame.loadBigEndianUInt16(at: l3 + 6) & 0x3FFF == 0
            else { return nil }
            let total = Int(frame.loadBigEndianUInt16(at: l3 + 2))
            guard total >= 40, l3 + total <= frame.count else { return nil }
            l4 = l3 + 20
            end = l3 + total
            v6 = false
        case EtherType.ipv6:
            guard frame.count >= l3 + 60, frame.loadByte(at: l3) >> 4 == 6,
                frame.loadByte(at: l3 + 6) == IPProtocol.tcp
            else { return nil }
            let length = Int(frame.loadBigEndianUInt16(at: l3 + 4))
            guard length >= 20, l3 + 40 + length <= frame.count else { return nil }
            l4 = l3 + 40
            end = l3 + 40 + length
            v6 = true
        default:
            return nil
        }
        let tcpLength = Int(frame.loadByte(at: l4 + 12) >> 4) * 4
        guard tcpLength >= 20, l4 + tcpLength <= end else { return nil }
        return Headers(
            isIPv6: v6, network: l3, transport: l4, payload: l4 + tcpLength, end: end,
            flags: frame.loadByte(at: l4 + 13))
    }

    @inlinable
    static func pseudoHeaderSum(_ frame: UnsafeRawBufferPointer, _ h: Headers)
        -> InternetChecksum
    {
        InternetChecksum.pseudoHeader(
            in: frame, network: h.network, isIPv6: h.isIPv6, protocol: IPProtocol.tcp,
            length: h.end - h.transport)
    }

    @inlinable
    static func checksumIsValid(_ frame: UnsafeRawBufferPointer, _ h: Headers) -> Bool {
        var sum = pseudoHeaderSum(frame, h)
        sum.add(UnsafeRawBufferPointer(rebasing: frame[h.transport..<h.end]))
        return sum.folded == 0xFFFF
    }

    /// The checksum field holds the pseudo-header sum alone: offload's unfinished form.
    @inlinable
    static func checksumIsPartial(_ frame: UnsafeRawBufferPointer, _ h: Headers) -> Bool {
        frame.loadBigEndianUInt16(at: h.transport + 16) == pseudoHeaderSum(frame, h).folded
    }

    @inlinable
    static func equal(
        _ a: UnsafeRawBufferPointer, _ i: Int, _ b: UnsafeRawBufferPointer, _ j: Int, _ count: Int
    ) -> Bool {
        var k = 0
        while count - k >= 8 {
            if a.loadUnaligned(fromByteOffset: i + k, as: UInt64.self)
                != b.loadUnaligned(fromByteOffset: j + k, as: UInt64.self)
            {
                return false
            }
            k += 8
        }
        while k < count {
            if a.loadByte(at: i + k) != b.loadByte(at: j + k) { return false }
            k += 1
        }
        return true
    }
}

/// Transport checksums that a sender's offload left unfinished, met in frames that never
/// crossed a wire: a kernel VTEP beside us (another network namespace, a container, a VM's
/// tap) hands over the inner TCP or UDP segment of a VXLAN datagram with its checksum field
/// holding only the pseudo-header sum (the socket API carries no CHECKSUM_PARTIAL flag for
/// it), which no receiver accepts.
public enum PartialChecksum {
    /// Finishes the TCP or UDP checksum of `frame` (an Ethernet frame, one tag at most)
    /// when its field holds exactly the pseudo-header sum, as offload leaves it; returns true
    /// when that changed the field. Safe on a frame whose checksum is complete: should its
    /// field equal that sum by chance (2^-16), finishing it gives the same value again, and
    /// the answer is false.
    @inlinable
    public static func complete(in frame: UnsafeMutableRawBufferPointer) -> Bool {
        let view = UnsafeRawBufferPointer(frame)
        guard view.count >= 34 else { return false }
        var type = view.loadBigEndianUInt16(at: 12)
        var l3 = 14
        if EtherType.isVLANTag(type) {
            type = view.loadBigEndianUInt16(at: 16)
            l3 = 18
        }
        let l4: Int
        let end: Int
        let proto: UInt8
        switch type {
        case EtherType.ipv4:
            guard view.count >= l3 + 20 else { return false }
            let ihl = Int(view.loadByte(at: l3) & 0xF) * 4
            let total = Int(view.loadBigEndianUInt16(at: l3 + 2))
            proto = view.loadByte(at: l3 + 9)
            guard view.loadByte(at: l3) >> 4 == 4, ihl >= 20, total >= ihl,
                l3 + total <= view.count,
                view.loadBigEndianUInt16(at: l3 + 6) & 0x3FFF == 0
            else { return false }
            l4 = l3 + ihl
            end = l3 + total
        case EtherType.ipv6:
            guard view.count >= l3 + 40, view.loadByte(at: l3) >> 4 == 6 else { return false }
            proto = view.loadByte(at: l3 + 6)
            l4 = l3 + 40
            end = l4 + Int(view.loadBigEndianUInt16(at: l3 + 4))
            guard end <= view.count else { return false }
        default:
            return false
        }
        let sum = InternetChecksum.pseudoHeader(
            in: view, network: l3, isIPv6: type == EtherType.ipv6, protocol: proto,
            length: end - l4)
        let field: Int
        switch proto {
        case IPProtocol.tcp: field = l4 + 16
        case IPProtocol.udp: field = l4 + 6
        default: return false
        }
        guard field + 2 <= end, view.loadBigEndianUInt16(at: field) == sum.folded else {
            return false
        }
        let covered = UnsafeRawBufferPointer(rebasing: view[l4..<end])
        let finished = ~InternetChecksum.foldedSum(covered)
        let checksum = finished == 0 ? 0xFFFF : finished
        guard checksum != view.loadBigEndianUInt16(at: field) else { return false }
        frame.storeBigEndian(checksum, at: field)
        return true
    }
}
