import Packet
import PropertyBased
import Testing

/// Bytes from hex text; spaces, newlines and `|` separators are ignored.
func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var high: UInt8? = nil
    for c in text.unicodeScalars {
        guard let digit = UInt8(String(c), radix: 16) else { continue }
        if let h = high {
            bytes.append(h << 4 | digit)
            high = nil
        } else {
            high = digit
        }
    }
    precondition(high == nil, "odd number of hex digits")
    return bytes
}

/// Hex text of bytes, for failure messages.
func hexString(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

// MARK: - Generators for wire values

enum Wire {
    static let mac = Gen.uint64().map { MACAddress(rawValue: $0) }
    static let ipv4 = Gen.uint32().map { IPv4Address(rawValue: $0) }
    static let ipv6 = zip(Gen.uint64(), Gen.uint64()).map { IPv6Address(high: $0, low: $1) }
    /// IPv6 addresses with runs of zero groups, the cases RFC 5952 compression cares about.
    static let sparseIPv6 = zip(Gen.uint16().array(of: 8), Gen.uint8()).map { groups, mask in
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in 0..<8 {
            let g = UInt64(mask & (1 << i) != 0 ? groups[i] : 0)
            if i < 4 { high = high << 16 | g } else { low = low << 16 | g }
        }
        return IPv6Address(high: high, low: low)
    }
}

// MARK: - Frames

/// Owns a zeroed, 8-byte-aligned buffer and hands out raw views, so tests can place frames
/// at odd offsets and check that nothing outside the expected bytes is touched.
final class TestBuffer {
    let storage: UnsafeMutableRawBufferPointer
    init(count: Int) {
        storage = .allocate(byteCount: count, alignment: 8)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
    }
    convenience init(_ bytes: [UInt8], at offset: Int = 0, capacity: Int? = nil) {
        self.init(count: capacity ?? bytes.count + offset)
        for (i, b) in bytes.enumerated() { storage[offset + i] = b }
    }
    deinit { storage.deallocate() }
    var raw: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }
    func bytes(_ range: Range<Int>) -> [UInt8] { Array(storage[range]) }
}

/// Builds test frames with the module's own builders plus the few fields they do not cover.
enum Frames {
    /// An Ethernet II / IPv4 / UDP frame with the given ports and payload length.
    static func ipv4UDP(
        destinationMAC: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 1),
        sourceMAC: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 2),
        tags: [VLANTag] = [],
        source: IPv4Address = IPv4Address(10, 0, 0, 1),
        destination: IPv4Address = IPv4Address(10, 0, 0, 2),
        protocol: UInt8 = IPProtocol.udp,
        sourcePort: UInt16 = 1234, destinationPort: UInt16 = 80, payloadLength: Int = 10
    ) -> [UInt8] {
        let ethernet = EthernetHeader(
            destination: destinationMAC, source: sourceMAC, outerTag: tags.first,
            innerTag: tags.count > 1 ? tags[1] : nil, etherType: EtherType.ipv4)
        let l4Length = 8 + payloadLength
        let buffer = TestBuffer(count: 22 + 20 + l4Length)
        var at = try! ethernet.store(into: buffer.storage, at: 0)
        let ip = IPv4Header(
            source: source, destination: destination, protocol: `protocol`,
            payloadLength: l4Length)
        at = try! ip.store(into: buffer.storage, at: at)
        let udp = UDPHeader(
            sourcePort: sourcePort, destinationPort: destinationPort, length: UInt16(l4Length))
        at = try! udp.store(into: buffer.storage, at: at)
        for i in 0..<payloadLength { buffer.storage[at + i] = UInt8(truncatingIfNeeded: i) }
        return buffer.bytes(0..<at + payloadLength)
    }

    /// An Ethernet II / IPv6 / UDP frame, optionally behind extension headers given as raw
    /// bytes whose Next Header fields the caller has set (the last one must say UDP).
    static func ipv6UDP(
        destinationMAC: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 1),
        sourceMAC: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 2),
        source: IPv6Address = IPv6Address("2001:db8::1")!,
        destination: IPv6Address = IPv6Address("2001:db8::2")!,
        firstNextHeader: UInt8 = IPProtocol.udp, extensionHeaders: [UInt8] = [],
        sourcePort: UInt16 = 1234, destinationPort: UInt16 = 80, payloadLength: Int = 10
    ) -> [UInt8] {
        let ethernet = EthernetHeader(
            destination: destinationMAC, source: sourceMAC, etherType: EtherType.ipv6)
        let l4Length = 8 + payloadLength
        let buffer = TestBuffer(count: 14 + 40 + extensionHeaders.count + l4Length)
        var at = try! ethernet.store(into: buffer.storage, at: 0)
        let ip = IPv6Header(
            source: source, destination: destination, nextHeader: firstNextHeader,
            payloadLength: extensionHeaders.count + l4Length)
        at = try! ip.store(into: buffer.storage, at: at)
        for b in extensionHeaders {
            buffer.storage[at] = b
            at += 1
        }
        let udp = UDPHeader(
            sourcePort: sourcePort, destinationPort: destinationPort, length: UInt16(l4Length))
        at = try! udp.store(into: buffer.storage, at: at)
        for i in 0..<payloadLength { buffer.storage[at + i] = UInt8(truncatingIfNeeded: i) }
        return buffer.bytes(0..<at + payloadLength)
    }
}

/// Parses a whole frame the way the datapath would, layer by layer, to exercise every parser
/// on one input: Ethernet, then ARP / IPv4 / IPv6, then ICMP / UDP / TCP / GRE, then VXLAN on
/// port 4789 and the inner Ethernet header. Returns how many layers parsed.
@discardableResult
func parseStack(_ frame: UnsafeRawBufferPointer) throws(Malformed) -> Int {
    let ethernet = try EthernetHeader.parse(frame)
    var layers = 1
    let l3 = ethernet.payloadOffset
    var proto: UInt8
    var l4: Int
    var end: Int
    switch ethernet.etherType {
    case EtherType.arp:
        _ = try ARPPacket.parse(frame, at: l3)
        return 2
    case EtherType.ipv4:
        let ip = try IPv4Header.parse(frame, at: l3)
        guard ip.hasTransportHeader else { return 2 }
        (proto, l4, end) = (ip.protocol, ip.payloadOffset, ip.payloadEnd)
    case EtherType.ipv6:
        let ip = try IPv6Header.parse(frame, at: l3)
        guard ip.hasTransportHeader else { return 2 }
        (proto, l4, end) = (ip.upperLayerProtocol, ip.upperLayerOffset, ip.payloadEnd)
    default:
        return 1
    }
    layers += 1
    switch proto {
    case IPProtocol.icmp: _ = try ICMPHeader.parse(frame, at: l4, end: end)
    case IPProtocol.icmpv6: _ = try ICMPHeader.parseV6(frame, at: l4, end: end)
    case IPProtocol.tcp: _ = try TCPHeader.parse(frame, at: l4, end: end)
    case IPProtocol.udp:
        let udp = try UDPHeader.parse(frame, at: l4, end: end)
        layers += 1
        guard udp.destinationPort == UDPHeader.vxlanPort else { return layers }
        _ = try VXLANHeader.parse(frame, at: udp.payloadOffset)
        let innerEnd = udp.offset + Int(udp.length)
        let inner = UnsafeRawBufferPointer(rebasing: frame[udp.payloadOffset + 8..<innerEnd])
        return layers + 1 + (try parseStack(inner))
    case IPProtocol.gre:
        let gre = try GREHeader.parse(frame, at: l4, end: end)
        let inner = UnsafeRawBufferPointer(rebasing: frame[gre.payloadOffset..<end])
        return layers + 1 + (try parseStack(inner))
    default: return layers
    }
    return layers + 1
}
