/// An IEEE 802 48-bit MAC address, packed into the low 48 bits of a word so that a MAC table
/// can key on (VNI, MAC) in one 64-bit word and compare without touching memory.
@frozen
public struct MACAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Octets packed high to low: `00:11:22:33:44:55` is `0x0000_0011_2233_4455`.
    public var rawValue: UInt64

    /// Keeps only the low 48 bits.
    @inlinable
    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xFFFF_FFFF_FFFF
    }

    @inlinable
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        let high = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
        rawValue = high | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }

    /// Reads six octets. The caller has checked that `offset + 6 <= buffer.count`.
    @inlinable
    public init(loadingFrom buffer: UnsafeRawBufferPointer, at offset: Int) {
        let high = UInt64(buffer.loadBigEndianUInt16(at: offset))
        let low = UInt64(buffer.loadBigEndianUInt32(at: offset + 2))
        rawValue = high << 32 | low
    }

    /// Writes six octets. The caller has checked that `offset + 6 <= buffer.count`.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.storeBigEndian(UInt16(truncatingIfNeeded: rawValue >> 32), at: offset)
        buffer.storeBigEndian(UInt32(truncatingIfNeeded: rawValue), at: offset + 2)
    }

    /// Parses `00:11:22:33:44:55` or `00-11-22-33-44-55`, either case, two hex digits per octet.
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 17 else { return nil }
        let separator = utf8[2]
        guard separator == UInt8(ascii: ":") || separator == UInt8(ascii: "-") else { return nil }
        var value: UInt64 = 0
        for octet in 0..<6 {
            let at = octet * 3
            if octet < 5 && utf8[at + 2] != separator { return nil }
            guard let high = hexDigitValue(utf8[at]), let low = hexDigitValue(utf8[at + 1]) else {
                return nil
            }
            value = value << 8 | UInt64(high << 4 | low)
        }
        rawValue = value
    }

    /// The individual/group bit (IEEE 802 §8.2): set for multicast, including broadcast.
    @inlinable public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }
    @inlinable public var isBroadcast: Bool { rawValue == 0xFFFF_FFFF_FFFF }
    @inlinable public var isZero: Bool { rawValue == 0 }

    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)

    @inlinable
    public static func < (lhs: MACAddress, rhs: MACAddress) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Lowercase, colon-separated, as `ip link` and Open vSwitch print it.
    public var description: String {
        var text = ""
        text.reserveCapacity(17)
        for octet in 0..<6 {
            if octet > 0 { text.append(":") }
            let byte = UInt8(truncatingIfNeeded: rawValue >> UInt64(40 - 8 * octet))
            appendHexByte(byte, to: &text)
        }
        return text
    }
}

/// An IPv4 address held in host order, so that prefixes compare and mask as integers.
@frozen
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Host order: `10.0.0.1` is `0x0A00_0001`.
    public var rawValue: UInt32

    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    @inlinable
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad text. Like `inet_pton`, it refuses leading zeros ("010" could be
    /// octal to some tools) and anything but four decimal octets.
    public init?(_ text: String) {
        guard let value = parseDottedQuad(Array(text.utf8)[...]) else { return nil }
        rawValue = value
    }

    @inlinable
    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    public var isMulticast: Bool { rawValue >> 28 == 0xE }

    public var description: String {
        "\(rawValue >> 24).\(rawValue >> 16 & 0xFF).\(rawValue >> 8 & 0xFF).\(rawValue & 0xFF)"
    }
}

/// An IPv6 address as two host-order halves, so that it hashes and compares in two words.
@frozen
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Reads sixteen octets. The caller has checked that `offset + 16 <= buffer.count`.
    @inlinable
    public init(loadingFrom buffer: UnsafeRawBufferPointer, at offset: Int) {
        high = buffer.loadBigEndianUInt64(at: offset)
        low = buffer.loadBigEndianUInt64(at: offset + 8)
    }

    /// Writes sixteen octets. The caller has checked that `offset + 16 <= buffer.count`.
    @inlinable
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.storeBigEndian(high, at: offset)
        buffer.storeBigEndian(low, at: offset + 8)
    }

    /// Parses RFC 4291 §2.2 text: eight hex groups, one `::` for a run of zero groups, and an
    /// optional trailing dotted quad. Zone indices (`%eth0`) are not addresses and are refused.
    public init?(_ text: String) {
        guard let (high, low) = parseIPv6(Array(text.utf8)) else { return nil }
        self.high = high
        self.low = low
    }

    @inlinable
    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    public var isMulticast: Bool { high >> 56 == 0xFF }

    /// The sixteen-bit group `index` (0–7), host order.
    @inlinable
    public func group(_ index: Int) -> UInt16 {
        let word = index < 4 ? high : low
        return UInt16(truncatingIfNeeded: word >> UInt64(48 - 16 * (index & 3)))
    }

    /// RFC 5952 canonical text: lowercase, no leading zeros, the longest run of two or more
    /// zero groups (the first on a tie) shortened to `::`, and IPv4-mapped addresses in mixed
    /// notation (§5).
    public var description: String {
        if high == 0 && low >> 32 == 0xFFFF {
            return "::ffff:" + IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)).description
        }
        var bestStart = -1
        var bestLength = 1
        var runStart = -1
        for index in 0...8 {
            if index < 8 && group(index) == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength {
                    bestStart = runStart
                    bestLength = index - runStart
                }
                runStart = -1
            }
        }
        var text = ""
        var index = 0
        while index < 8 {
            if index == bestStart {
                text.append("::")
                index += bestLength
                continue
            }
            if !text.isEmpty && !text.hasSuffix(":") { text.append(":") }
            text.append(String(group(index), radix: 16))
            index += 1
        }
        return text
    }
}

/// Either family, for configuration and locators; the datapath uses the concrete types.
@frozen
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses either family; text with a colon is IPv6.
    public init?(_ text: String) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let address = IPv6Address(text) else { return nil }
            self = .v6(address)
        } else {
            guard let address = IPv4Address(text) else { return nil }
            self = .v4(address)
        }
    }

    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }

    /// An IP multicast group: 224.0.0.0/4 or ff00::/8.
    public var isMulticast: Bool {
        switch self {
        case .v4(let address): address.isMulticast
        case .v6(let address): address.isMulticast
        }
    }

    /// Why no host can have this address as its own (unspecified, limited broadcast,
    /// multicast, loopback), in words; nil when one can. A VTEP, a DNS server or a next hop
    /// must have such an address.
    public var notAHostAddress: String? {
        switch self {
        case .v4(let a) where a.rawValue == 0: "it is the unspecified address"
        case .v4(let a) where a.rawValue == 0xFFFF_FFFF: "it is the broadcast address"
        case .v4(let a) where a.isMulticast: "it is a multicast group"
        case .v4(let a) where a.rawValue >> 24 == 127: "it is a loopback address"
        case .v6(let a) where a.high == 0 && a.low == 0: "it is the unspecified address"
        case .v6(let a) where a.high == 0 && a.low == 1: "it is the loopback address"
        case .v6(let a) where a.isMulticast: "it is a multicast group"
        default: nil
        }
    }
}

// MARK: - Text parsing shared by the address types

private func hexDigitValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
    default: nil
    }
}

private func appendHexByte(_ byte: UInt8, to text: inout String) {
    let digits: StaticString = "0123456789abcdef"
    digits.withUTF8Buffer { table in
        text.unicodeScalars.append(Unicode.Scalar(table[Int(byte >> 4)]))
        text.unicodeScalars.append(Unicode.Scalar(table[Int(byte & 0xF)]))
    }
}

private func parseDottedQuad(_ utf8: ArraySlice<UInt8>) -> UInt32? {
    var value: UInt32 = 0
    var octets = 0
    var current: UInt32 = 0
    var digits = 0
    for c in utf8 {
        if c == UInt8(ascii: ".") {
            guard digits > 0, octets < 3 else { return nil }
            value = value << 8 | current
            octets += 1
            current = 0
            digits = 0
        } else if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
            if digits > 0 && current == 0 { return nil }  // leading zero
            current = current * 10 + UInt32(c - UInt8(ascii: "0"))
            digits += 1
            guard current <= 255 else { return nil }
        } else {
            return nil
        }
    }
    guard digits > 0, octets == 3 else { return nil }
    return value << 8 | current
}

private func parseIPv6(_ utf8: [UInt8]) -> (UInt64, UInt64)? {
    guard utf8.count >= 2, utf8.count <= 45 else { return nil }
    var groups: [UInt16] = []
    groups.reserveCapacity(8)
    var compressAt: Int? = nil
    var index = 0
    if utf8[0] == UInt8(ascii: ":") {
        guard utf8[1] == UInt8(ascii: ":") else { return nil }
        compressAt = 0
        index = 2
    }
    while index < utf8.count {
        // A group is up to four hex digits; a dotted quad may end the address.
        var end = index
        var value: UInt32 = 0
        while end < utf8.count, end - index < 5, let digit = hexDigitValue(utf8[end]) {
            value = value << 4 | UInt32(digit)
            end += 1
        }
        if end < utf8.count && utf8[end] == UInt8(ascii: ".") {
            guard groups.count <= 6, let v4 = parseDottedQuad(utf8[index...]) else { return nil }
            groups.append(UInt16(v4 >> 16))
            groups.append(UInt16(v4 & 0xFFFF))
            index = utf8.count
            break
        }
        guard end > index, end - index <= 4 else { return nil }
        groups.append(UInt16(value))
        index = end
        if index == utf8.count { break }
        guard utf8[index] == UInt8(ascii: ":") else { return nil }
        index += 1
        if index < utf8.count && utf8[index] == UInt8(ascii: ":") {
            guard compressAt == nil else { return nil }
            compressAt = groups.count
            index += 1
        } else if index == utf8.count {
            return nil  // trailing single colon
        }
    }
    if let at = compressAt {
        guard groups.count < 8 else { return nil }
        groups.insert(contentsOf: repeatElement(0, count: 8 - groups.count), at: at)
    }
    guard groups.count == 8 else { return nil }
    var high: UInt64 = 0
    var low: UInt64 = 0
    for i in 0..<4 { high = high << 16 | UInt64(groups[i]) }
    for i in 4..<8 { low = low << 16 | UInt64(groups[i]) }
    return (high, low)
}
