/// An IPv6 header (RFC 8200 §3) with its extension-header chain walked to the upper-layer
/// protocol.
@frozen
public struct IPv6Header: Hashable, Sendable {
    /// Where the fixed header starts in the parsed buffer.
    public var offset: Int
    public var trafficClass: UInt8
    /// 20 bits (RFC 6437).
    public var flowLabel: UInt32
    public var payloadLength: UInt16
    /// The Next Header of the fixed header: the first extension header or the upper layer.
    public var nextHeader: UInt8
    public var hopLimit: UInt8
    public var source: IPv6Address
    public var destination: IPv6Address
    /// The protocol after the last extension header (TCP, UDP, ICMPv6, ESP, No Next Header…).
    public var upperLayerProtocol: UInt8
    /// Where the upper-layer header starts; for a non-first fragment, where its data starts.
    public var upperLayerOffset: Int
    /// The Fragment header (RFC 8200 §4.5), when there is one.
    public var fragment: IPv6Fragment?

    /// The most extension headers walked before giving up with
    /// `.ipv6TooManyExtensionHeaders`. RFC 8200 §4.1 recommends each type appear at most once
    /// (Destination Options twice), so a legitimate chain is at most about six long; the bound
    /// keeps a hostile chain from costing more than a few cache lines (RFC 7112, RFC 9098).
    public static let maximumExtensionHeaders = 8

    @inlinable public var version: UInt8 { 6 }
    @inlinable public var payloadOffset: Int { offset + 40 }
    /// One past the last byte of the packet; Ethernet padding may follow.
    @inlinable public var payloadEnd: Int { offset + 40 + Int(payloadLength) }
    @inlinable public var upperLayerLength: Int { payloadEnd - upperLayerOffset }
    @inlinable public var isFragment: Bool { fragment != nil }
    @inlinable public var isFirstFragment: Bool { fragment?.offset == 0 }
    /// Whether the upper-layer header is present (false for non-first fragments).
    @inlinable public var hasTransportHeader: Bool { (fragment?.offset ?? 0) == 0 }

    /// A header without extension headers to build; `store` writes it.
    @inlinable
    public init(
        source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, payloadLength: Int,
        hopLimit: UInt8 = 64, trafficClass: UInt8 = 0, flowLabel: UInt32 = 0
    ) {
        offset = 0
        self.trafficClass = trafficClass
        self.flowLabel = flowLabel & 0xF_FFFF
        self.payloadLength = UInt16(truncatingIfNeeded: payloadLength)
        self.nextHeader = nextHeader
        self.hopLimit = hopLimit
        self.source = source
        self.destination = destination
        upperLayerProtocol = nextHeader
        upperLayerOffset = 40
        fragment = nil
    }

    /// Parses the fixed header at `offset` and walks Hop-by-Hop, Routing, Fragment,
    /// Destination Options, Authentication, Mobility, HIP and Shim6 headers (RFC 8200 §4,
    /// RFC 7045) to the upper layer. Stops at a non-first fragment, whose upper-layer header
    /// is in another packet. Jumbograms (RFC 2675) are not supported.
    @inlinable
    public static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int) throws(Malformed)
        -> IPv6Header
    {
        guard buffer.contains(40, at: offset) else { throw .ipv6Truncated }
        let first = buffer.loadBigEndianUInt32(at: offset)
        guard first >> 28 == 6 else { throw .ipv6BadVersion }
        let payloadLength = buffer.loadBigEndianUInt16(at: offset + 4)
        guard buffer.contains(40 + Int(payloadLength), at: offset) else {
            throw .ipv6BadPayloadLength
        }
        var header = IPv6Header(
            source: IPv6Address(loadingFrom: buffer, at: offset + 8),
            destination: IPv6Address(loadingFrom: buffer, at: offset + 24),
            nextHeader: buffer.loadByte(at: offset + 6), payloadLength: Int(payloadLength),
            hopLimit: buffer.loadByte(at: offset + 7),
            trafficClass: UInt8(truncatingIfNeeded: first >> 20), flowLabel: first)
        header.offset = offset
        let walk = IPv6ExtensionWalk(
            buffer, nextHeader: header.nextHeader, from: offset + 40, end: header.payloadEnd)
        if let reason = walk.failure { throw reason }
        header.upperLayerProtocol = walk.upperLayerProtocol
        header.upperLayerOffset = walk.upperLayerOffset
        header.fragment = walk.fragment
        return header
    }

    /// Writes the 40-byte fixed header at `offset`; returns the offset just past it.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(Malformed) -> Int
    {
        guard buffer.contains(40, at: offset) else { throw .noHeadroom }
        let first = UInt32(6) << 28 | UInt32(trafficClass) << 20 | flowLabel & 0xF_FFFF
        buffer.storeBigEndian(first, at: offset)
        buffer.storeBigEndian(payloadLength, at: offset + 4)
        buffer.storeBigEndian(UInt16(nextHeader) << 8 | UInt16(hopLimit), at: offset + 6)
        source.store(into: buffer, at: offset + 8)
        destination.store(into: buffer, at: offset + 24)
        return offset + 40
    }
}

/// The fields of an IPv6 Fragment header (RFC 8200 §4.5).
@frozen
public struct IPv6Fragment: Hashable, Sendable {
    /// Where the Fragment header starts in the buffer.
    public var headerOffset: Int
    /// In 8-byte units, as on the wire.
    public var offset: UInt16
    public var moreFragments: Bool
    public var identification: UInt32

    @inlinable
    public init(headerOffset: Int, offset: UInt16, moreFragments: Bool, identification: UInt32) {
        self.headerOffset = headerOffset
        self.offset = offset
        self.moreFragments = moreFragments
        self.identification = identification
    }
}

/// The extension-header walk, shared by `IPv6Header.parse` (which throws `failure`) and the
/// flow hash (which uses whatever was reached before a failure).
@usableFromInline
struct IPv6ExtensionWalk {
    @usableFromInline var upperLayerProtocol: UInt8
    @usableFromInline var upperLayerOffset: Int
    @usableFromInline var fragment: IPv6Fragment?
    @usableFromInline var failure: Malformed?

    /// Walks from the Next Header value `nextHeader` of the fixed header, with the first
    /// extension header at `from` and the packet ending at `end` (clamped to the buffer).
    @inlinable
    init(_ buffer: UnsafeRawBufferPointer, nextHeader: UInt8, from: Int, end: Int) {
        upperLayerProtocol = nextHeader
        upperLayerOffset = from
        fragment = nil
        failure = nil
        let limit = min(end, buffer.count)
        var walked = 0
        while true {
            let next = upperLayerProtocol
            let at = upperLayerOffset
            let length: Int
            switch next {
            case IPProtocol.hopByHopOptions, IPProtocol.routing, IPProtocol.destinationOptions,
                IPProtocol.mobility, IPProtocol.hostIdentity, IPProtocol.shim6:
                // RFC 8200 §4.3: Hop-by-Hop Options only immediately after the fixed header.
                if next == IPProtocol.hopByHopOptions && walked > 0 {
                    failure = .ipv6HopByHopMisplaced
                    return
                }
                guard at <= limit - 2 else {
                    failure = .ipv6ExtensionHeaderTruncated
                    return
                }
                // Hdr Ext Len counts 8-octet units beyond the first 8 (RFC 8200 §4.3).
                length = (Int(buffer.loadByte(at: at + 1)) + 1) * 8
            case IPProtocol.authenticationHeader:
                // Payload Len counts 4-octet units minus 2 (RFC 4302 §2.2).
                guard at <= limit - 2 else {
                    failure = .ipv6ExtensionHeaderTruncated
                    return
                }
                length = (Int(buffer.loadByte(at: at + 1)) + 2) * 4
            case IPProtocol.fragment:
                length = 8
            default:
                return
            }
            guard walked < IPv6Header.maximumExtensionHeaders else {
                failure = .ipv6TooManyExtensionHeaders
                return
            }
            guard at <= limit - length else {
                failure = .ipv6ExtensionHeaderTruncated
                return
            }
            walked += 1
            upperLayerProtocol = buffer.loadByte(at: at)
            upperLayerOffset = at + length
            if next == IPProtocol.fragment {
                let offsetAndFlags = buffer.loadBigEndianUInt16(at: at + 2)
                let piece = IPv6Fragment(
                    headerOffset: at, offset: offsetAndFlags >> 3,
                    moreFragments: offsetAndFlags & 1 != 0,
                    identification: buffer.loadBigEndianUInt32(at: at + 4))
                fragment = piece
                // A non-first fragment's remaining headers are in the first fragment.
                if piece.offset != 0 { return }
            }
        }
    }
}
