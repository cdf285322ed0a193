/// EtherType values this gateway dispatches on (IEEE Registration Authority).
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let ipv6: UInt16 = 0x86DD
    /// IEEE 802.1Q customer VLAN tag (C-tag).
    public static let vlan: UInt16 = 0x8100
    /// IEEE 802.1ad service VLAN tag (S-tag), the outer tag of QinQ.
    public static let serviceVLAN: UInt16 = 0x88A8
    /// Pre-standard QinQ outer tag still sent by older switches.
    public static let legacyServiceVLAN: UInt16 = 0x9100
    /// RFC 1701 / RFC 7637 transparent Ethernet bridging: the GRE payload is a whole frame.
    public static let transparentEthernetBridging: UInt16 = 0x6558

    /// True for the three tag protocol identifiers a tag can start with.
    @inlinable
    public static func isVLANTag(_ type: UInt16) -> Bool {
        type == vlan || type == serviceVLAN || type == legacyServiceVLAN
    }
}

/// One IEEE 802.1Q tag: a tag protocol identifier and the tag control information
/// (PCP, DEI, VID).
@frozen
public struct VLANTag: Hashable, Sendable {
    /// 0x8100 (802.1Q), 0x88A8 (802.1ad S-tag); 0x9100 is accepted on receipt.
    public var tpid: UInt16
    /// Priority code point, 0–7.
    public var pcp: UInt8
    /// Drop eligible indicator.
    public var dei: Bool
    /// VLAN identifier, 0–4095; 0 is a priority tag that carries no VLAN (802.1Q §9.6).
    public var vid: UInt16

    /// Out-of-range PCP and VID are masked to their 3 and 12 bits.
    @inlinable
    public init(tpid: UInt16 = EtherType.vlan, pcp: UInt8 = 0, dei: Bool = false, vid: UInt16) {
        self.tpid = tpid
        self.pcp = pcp & 0x7
        self.dei = dei
        self.vid = vid & 0xFFF
    }

    @inlinable
    public init(tpid: UInt16, tci: UInt16) {
        self.init(tpid: tpid, pcp: UInt8(tci >> 13), dei: tci & 0x1000 != 0, vid: tci)
    }

    /// The 16-bit tag control information as it appears on the wire.
    @inlinable
    public var tci: UInt16 {
        UInt16(pcp & 0x7) << 13 | (dei ? 0x1000 : 0) | vid & 0xFFF
    }

    /// Writes TPID and TCI (4 bytes). The caller has checked bounds.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.storeBigEndian(UInt32(tpid) << 16 | UInt32(tci), at: offset)
    }

    /// Pushes `tag` as the new outermost tag of the frame at
    /// `buffer[frameStart ..< frameStart + frameLength]`, moving only the 12 MAC bytes 4 bytes
    /// toward the front. Returns the new frame start; the frame grows by 4 bytes.
    ///
    /// Throws `.ethernetTruncated` when the frame is under 14 bytes or runs past the buffer,
    /// and `.noHeadroom` when `frameStart < 4`.
    @inlinable
    public static func insert(
        _ tag: VLANTag, into buffer: UnsafeMutableRawBufferPointer, frameStart: Int,
        frameLength: Int
    ) throws(Malformed) -> Int {
        guard frameLength >= 14, buffer.contains(frameLength, at: frameStart) else {
            throw .ethernetTruncated
        }
        guard frameStart >= 4 else { throw .noHeadroom }
        let macs = UnsafeRawBufferPointer(buffer)
        let first = macs.loadUnaligned(fromByteOffset: frameStart, as: UInt64.self)
        let last = macs.loadUnaligned(fromByteOffset: frameStart + 8, as: UInt32.self)
        let newStart = frameStart - 4
        buffer.storeBytes(of: first, toByteOffset: newStart, as: UInt64.self)
        buffer.storeBytes(of: last, toByteOffset: newStart + 8, as: UInt32.self)
        tag.store(into: buffer, at: newStart + 12)
        return newStart
    }

    /// Pops the outermost tag of the frame at `buffer[frameStart ..< frameStart + frameLength]`
    /// by moving the 12 MAC bytes 4 bytes toward the end. Returns the new frame start (the
    /// frame shrinks by 4 bytes), or `frameStart` unchanged when the frame is untagged.
    ///
    /// Throws `.ethernetTruncated` when the frame is under 14 bytes or runs past the buffer,
    /// and `.vlanTruncated` when a tag starts but the frame ends before the next EtherType.
    @inlinable
    public static func strip(
        from buffer: UnsafeMutableRawBufferPointer, frameStart: Int, frameLength: Int
    ) throws(Malformed) -> Int {
        guard frameLength >= 14, buffer.contains(frameLength, at: frameStart) else {
            throw .ethernetTruncated
        }
        let frame = UnsafeRawBufferPointer(buffer)
        guard EtherType.isVLANTag(frame.loadBigEndianUInt16(at: frameStart + 12)) else {
            return frameStart
        }
        guard frameLength >= 18 else { throw .vlanTruncated }
        let first = frame.loadUnaligned(fromByteOffset: frameStart, as: UInt64.self)
        let last = frame.loadUnaligned(fromByteOffset: frameStart + 8, as: UInt32.self)
        let newStart = frameStart + 4
        buffer.storeBytes(of: first, toByteOffset: newStart, as: UInt64.self)
        buffer.storeBytes(of: last, toByteOffset: newStart + 8, as: UInt32.self)
        return newStart
    }
}

/// An Ethernet II header with up to two VLAN tags (802.1Q, or 802.1ad QinQ).
@frozen
public struct EthernetHeader: Hashable, Sendable {
    public var destination: MACAddress
    public var source: MACAddress
    /// The first tag on the wire (the S-tag in QinQ).
    public var outerTag: VLANTag?
    /// The second tag on the wire (the C-tag in QinQ).
    public var innerTag: VLANTag?
    /// The EtherType after all tags.
    public var etherType: UInt16
    /// Byte offset of the L3 header from the start of the frame: 14, 18 or 22.
    public var payloadOffset: Int

    /// A header to build; `innerTag` without `outerTag` becomes the only tag.
    @inlinable
    public init(
        destination: MACAddress, source: MACAddress, outerTag: VLANTag? = nil,
        innerTag: VLANTag? = nil, etherType: UInt16
    ) {
        self.destination = destination
        self.source = source
        self.outerTag = outerTag ?? innerTag
        self.innerTag = outerTag == nil ? nil : innerTag
        self.etherType = etherType
        self.payloadOffset = 14 + (self.outerTag == nil ? 0 : 4) + (self.innerTag == nil ? 0 : 4)
    }

    /// Parses the Ethernet II header and up to two VLAN tags. A third tag throws
    /// `.tooManyVLANTags`; an EtherType below 0x0600 (an 802.3 length) is returned as-is for
    /// the caller to drop or count.
    @inlinable
    public static func parse(_ frame: UnsafeRawBufferPointer) throws(Malformed) -> EthernetHeader {
        guard frame.count >= 14 else { throw .ethernetTruncated }
        let destination = MACAddress(loadingFrom: frame, at: 0)
        let source = MACAddress(loadingFrom: frame, at: 6)
        let first = frame.loadBigEndianUInt16(at: 12)
        guard EtherType.isVLANTag(first) else {
            return EthernetHeader(
                destination: destination, source: source, outerTag: nil, innerTag: nil,
                etherType: first, payloadOffset: 14)
        }
        guard frame.count >= 18 else { throw .vlanTruncated }
        let outerTag = VLANTag(tpid: first, tci: frame.loadBigEndianUInt16(at: 14))
        let second = frame.loadBigEndianUInt16(at: 16)
        guard EtherType.isVLANTag(second) else {
            return EthernetHeader(
                destination: destination, source: source, outerTag: outerTag, innerTag: nil,
                etherType: second, payloadOffset: 18)
        }
        guard frame.count >= 22 else { throw .vlanTruncated }
        let innerTag = VLANTag(tpid: second, tci: frame.loadBigEndianUInt16(at: 18))
        let third = frame.loadBigEndianUInt16(at: 20)
        guard !EtherType.isVLANTag(third) else { throw .tooManyVLANTags }
        return EthernetHeader(
            destination: destination, source: source, outerTag: outerTag, innerTag: innerTag,
            etherType: third, payloadOffset: 22)
    }

    @inlinable
    init(
        destination: MACAddress, source: MACAddress, outerTag: VLANTag?, innerTag: VLANTag?,
        etherType: UInt16, payloadOffset: Int
    ) {
        self.destination = destination
        self.source = source
        self.outerTag = outerTag
        self.innerTag = innerTag
        self.etherType = etherType
        self.payloadOffset = payloadOffset
    }

    /// The VLAN a frame belongs to: the innermost tag's VID for 802.1Q, nil when untagged or
    /// priority-tagged (VID 0).
    @inlinable
    public var vlanID: UInt16? {
        guard let tag = innerTag ?? outerTag, tag.vid != 0 else { return nil }
        return tag.vid
    }

    /// Writes the header with its tags; returns the offset just past it (where L3 begins).
    /// Throws `.noHeadroom` when the buffer is too short.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(Malformed) -> Int
    {
        let length = 14 + (outerTag == nil ? 0 : 4) + (innerTag == nil ? 0 : 4)
        guard buffer.contains(length, at: offset) else { throw .noHeadroom }
        destination.store(into: buffer, at: offset)
        source.store(into: buffer, at: offset + 6)
        var at = offset + 12
        if let outerTag {
            outerTag.store(into: buffer, at: at)
            at += 4
            if let innerTag {
                innerTag.store(into: buffer, at: at)
                at += 4
            }
        }
        buffer.storeBigEndian(etherType, at: at)
        return at + 2
    }
}
