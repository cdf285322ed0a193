/// A VXLAN Network Identifier: the 24-bit segment id carried in the VXLAN header (RFC 7348
/// §5), the NVGRE VSID (RFC 7637 §3.2) or the GRE key (RFC 2890 §2.1) of a logical switch.
@frozen
public struct VNI: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The largest VNI: 2^24 − 1.
    public static let maximum: UInt32 = 0xFF_FFFF

    public let rawValue: UInt32

    /// Nil when `rawValue` does not fit in 24 bits.
    @inlinable
    public init?(rawValue: UInt32) {
        guard rawValue <= VNI.maximum else { return nil }
        self.rawValue = rawValue
    }

    /// Operator input: refuses values outside 0–16777215 with a message naming the value.
    public init(validating value: Int) throws(ConfigurationError) {
        guard value >= 0, value <= Int(VNI.maximum) else {
            throw .vniOutOfRange(value)
        }
        self.rawValue = UInt32(value)
    }

    /// For values already known to fit in 24 bits (a field masked off the wire).
    @inlinable
    public init(masking value: UInt32) {
        self.rawValue = value & VNI.maximum
    }

    @inlinable
    public static func < (lhs: VNI, rhs: VNI) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { String(rawValue) }
}

/// Dense index of a logical switch, assigned by a `ForwardingConfiguration` and stable across
/// configurations built from one another (see `ForwardingConfiguration.init(…previous:)`).
///
/// Sixteen bits because the MAC table packs it with the 48-bit MAC into one 64-bit key; at most
/// 65,535 logical switches per gateway (`0xFFFF` is never assigned: the table's empty-slot key
/// is all ones). hardware_vtep gateways carry a few thousand at most.
@frozen
public struct SwitchIndex: RawRepresentable, Hashable, Comparable, Sendable,
    ExpressibleByIntegerLiteral, CustomStringConvertible
{
    /// The number of assignable indices, 0–65534.
    public static let count = 0xFFFF

    public let rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    @inlinable
    public init(integerLiteral value: UInt16) { self.rawValue = value }

    @inlinable
    public static func < (lhs: SwitchIndex, rhs: SwitchIndex) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    public var description: String { "switch#\(rawValue)" }
}

/// Dense index of a locator (remote VTEP or multicast group): below `dynamicBase`, assigned by
/// a `ForwardingConfiguration` and stable across configurations built from one another; from
/// `dynamicBase` on, a VTEP the engine discovered from its traffic on a multicast switch
/// (`ForwardingEngine.locator(_:)` resolves both). The MAC table keeps 24 bits for it.
@frozen
public struct LocatorIndex: RawRepresentable, Hashable, Comparable, Sendable,
    ExpressibleByIntegerLiteral, CustomStringConvertible
{
    /// The number of indices a configuration may assign, 0 ..< 2^23.
    public static let count = 1 << 23
    /// The first index of a discovered (dynamic) locator; they end at 2^24.
    public static let dynamicBase: UInt32 = 1 << 23

    /// Whether the engine discovered this locator rather than the configuration naming it.
    @inlinable
    public var isDynamic: Bool { rawValue >= LocatorIndex.dynamicBase }

    public let rawValue: UInt32

    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    @inlinable
    public init(integerLiteral value: UInt32) { self.rawValue = value }

    @inlinable
    public static func < (lhs: LocatorIndex, rhs: LocatorIndex) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    public var description: String { "locator#\(rawValue)" }
}

/// Dense index of an access port (a physical port or bond the datapath receives on), assigned
/// by a `ForwardingConfiguration` from the port's name and stable across configurations built
/// from one another. At most 4,096 ports.
@frozen
public struct PortIndex: RawRepresentable, Hashable, Comparable, Sendable,
    ExpressibleByIntegerLiteral, CustomStringConvertible
{
    /// The number of assignable indices.
    public static let count = 4096

    public let rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    @inlinable
    public init(integerLiteral value: UInt16) { self.rawValue = value }

    @inlinable
    public static func < (lhs: PortIndex, rhs: PortIndex) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "port#\(rawValue)" }
}

/// An attachment circuit (RFC 4664 §2.1): one bridge port of a logical switch on the access
/// side, i.e. a VLAN on an access port, or the port's untagged traffic.
@frozen
public struct AttachmentCircuit: Hashable, Sendable, CustomStringConvertible {
    public var port: PortIndex
    /// 1–4094, or nil for untagged (and priority-tagged, VID 0) frames.
    public var vlan: UInt16?

    @inlinable
    public init(port: PortIndex, vlan: UInt16?) {
        self.port = port
        self.vlan = vlan == 0 ? nil : vlan
    }

    public var description: String {
        if let vlan { "\(port) VLAN \(vlan)" } else { "\(port) untagged" }
    }
}
