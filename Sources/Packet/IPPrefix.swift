/// An address prefix (CIDR block), IPv4 or IPv6: `10.0.0.0/24`, `fd00::/64`, or a bare address
/// meaning the one host. Used for the accepted-source lists of logical switches.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address, host bits cleared.
    public let address: IPAddress
    /// Leading bits that must match: 0–32 for IPv4, 0–128 for IPv6.
    public let length: Int

    /// Clears the host bits of `address`; nil if `length` is out of range for its family.
    public init?(address: IPAddress, length: Int) {
        switch address {
        case .v4(let a):
            guard (0...32).contains(length) else { return nil }
            self.address = .v4(IPv4Address(rawValue: a.rawValue & Self.mask32(length)))
        case .v6(let a):
            guard (0...128).contains(length) else { return nil }
            let (high, low) = Self.mask128(length)
            self.address = .v6(IPv6Address(high: a.high & high, low: a.low & low))
        }
        self.length = length
    }

    /// Parses `ADDRESS/LENGTH` or a bare `ADDRESS` (a host prefix). Host bits set in the
    /// address are refused rather than silently cleared: `10.0.0.1/24` is more likely a typo
    /// than a network.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let full: Int
        switch address {
        case .v4: full = 32
        case .v6: full = 128
        }
        var length = full
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].utf8.allSatisfy({ (48...57).contains($0) }),
                let n = Int(parts[1]), n <= full
            else { return nil }
            length = n
        }
        guard let prefix = IPPrefix(address: address, length: length), prefix.address == address
        else { return nil }
        self = prefix
    }

    /// Whether `ip` lies in the prefix; an address of the other family never does.
    @inlinable
    public func contains(_ ip: IPAddress) -> Bool {
        switch (address, ip) {
        case (.v4(let network), .v4(let a)):
            return a.rawValue & Self.mask32(length) == network.rawValue
        case (.v6(let network), .v6(let a)):
            let (high, low) = Self.mask128(length)
            return a.high & high == network.high && a.low & low == network.low
        default:
            return false
        }
    }

    public var description: String { "\(address)/\(length)" }

    @inlinable
    static func mask32(_ length: Int) -> UInt32 {
        length == 0 ? 0 : UInt32.max << UInt32(32 - length)
    }

    @inlinable
    static func mask128(_ length: Int) -> (UInt64, UInt64) {
        if length == 0 { return (0, 0) }
        if length <= 64 { return (UInt64.max << UInt64(64 - length), 0) }
        if length == 128 { return (UInt64.max, UInt64.max) }
        return (UInt64.max, UInt64.max << UInt64(128 - length))
    }
}
