import Packet

/// A NAT rule of a logical router, modelled on OVN's Northbound `NAT` table (`snat`, `dnat`,
/// `dnat_and_snat`) and kept as one `other_config` key of the router's Logical_Router row
/// (docs/routers.md says why there and not in a table of its own):
///
/// | key | value | rule |
/// |---|---|---|
/// | `snat:10.0.0.0/24` | `192.0.2.10` | SNAT: sources in the prefix leave as the address |
/// | `dnat:192.0.2.10:8080/tcp` | `10.0.0.5:80` | port forward (`/tcp` or `/udp`) |
/// | `dnat:192.0.2.12` | `10.0.0.6` | every protocol and port to the address |
/// | `floating-ip:192.0.2.11` | `10.0.0.5` | OVN's `dnat_and_snat`: both directions |
///
/// IPv4 only (the issue rules out NAT66).
public struct NATRule: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// Sources in `inside` leave as `external`.
        case snat(inside: IPPrefix)
        /// Traffic to `external` (and `externalPort` of `transport`, when given) is sent to
        /// `inside` (`insidePort`, or the same port).
        case dnat(
            externalPort: UInt16?, transport: Transport?, inside: IPv4Address,
            insidePort: UInt16?)
        /// `external` stands for `inside` both ways.
        case floatingIP(inside: IPv4Address)
    }

    public enum Transport: String, Hashable, Sendable { case tcp, udp }

    public var kind: Kind
    /// The address the outside sees.
    public var external: IPv4Address

    public init(kind: Kind, external: IPv4Address) {
        self.kind = kind
        self.external = external
    }

    /// The rule one `other_config` entry holds; nil when the key is not a NAT key. Throws
    /// when it is one but does not parse.
    public init?(key: String, value: String) throws(RouterError) {
        func bad(_ why: String) -> RouterError {
            RouterError("NAT rule \(key)=\(value): \(why)")
        }
        if key.hasPrefix("snat:") {
            guard let prefix = IPPrefix(String(key.dropFirst(5))),
                case .v4 = prefix.address
            else { throw bad("the inside side is not an IPv4 prefix (e.g. 10.0.0.0/24)") }
            guard let external = IPv4Address(value) else {
                throw bad("the external side is not an IPv4 address")
            }
            self.init(kind: .snat(inside: prefix), external: external)
        } else if key.hasPrefix("floating-ip:") {
            guard let external = IPv4Address(String(key.dropFirst(12))),
                let inside = IPv4Address(value)
            else { throw bad("both sides must be IPv4 addresses") }
            self.init(kind: .floatingIP(inside: inside), external: external)
        } else if key.hasPrefix("dnat:") {
            var outside = Substring(key.dropFirst(5))
            var transport: Transport?
            if let slash = outside.firstIndex(of: "/") {
                guard let t = Transport(rawValue: String(outside[outside.index(after: slash)...]))
                else { throw bad("the protocol must be tcp or udp") }
                transport = t
                outside = outside[..<slash]
            }
            guard let (external, externalPort) = Self.endpoint(outside),
                let (inside, insidePort) = Self.endpoint(Substring(value))
            else { throw bad("each side is IPv4-ADDRESS[:PORT]") }
            if externalPort == nil && (insidePort != nil || transport != nil) {
                throw bad("a protocol or an inside port needs an external port")
            }
            if externalPort != nil && transport == nil { transport = .tcp }
            self.init(
                kind: .dnat(
                    externalPort: externalPort, transport: transport, inside: inside,
                    insidePort: insidePort),
                external: external)
        } else {
            return nil
        }
    }

    /// "10.0.0.5" or "10.0.0.5:80" (port 1–65535).
    private static func endpoint(_ text: Substring) -> (IPv4Address, UInt16?)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPv4Address(String(parts[0])) else {
            return nil
        }
        guard parts.count == 2 else { return (address, nil) }
        guard let port = UInt16(parts[1]), port > 0 else { return nil }
        return (address, port)
    }

    /// The `other_config` entry that holds the rule.
    public var key: String {
        switch kind {
        case .snat(let prefix): "snat:\(prefix)"
        case .floatingIP: "floating-ip:\(external)"
        case .dnat(let port, let transport, _, _):
            "dnat:\(external)" + (port.map { ":\($0)" } ?? "")
                + (transport.map { "/\($0.rawValue)" } ?? "")
        }
    }

    public var value: String {
        switch kind {
        case .snat: "\(external)"
        case .floatingIP(let inside): "\(inside)"
        case .dnat(_, _, let inside, let port): "\(inside)" + (port.map { ":\($0)" } ?? "")
        }
    }

    /// "snat 10.0.0.0/24 → 192.0.2.10", as `show logical-router` lists it.
    public var description: String {
        switch kind {
        case .snat(let prefix): "snat \(prefix) → \(external)"
        case .floatingIP(let inside): "floating-ip \(external) ↔ \(inside)"
        case .dnat(let port, let transport, let inside, let insidePort):
            "dnat \(external)" + (port.map { ":\($0)" } ?? "")
                + (transport.map { " \($0.rawValue)" } ?? "") + " → \(inside)"
                + (insidePort.map { ":\($0)" } ?? "")
        }
    }

    /// Floating IPs first (a host's own address beats its subnet's), then port forwards,
    /// then SNAT by longest prefix; ties by key.
    var matchOrder: MatchOrder {
        switch kind {
        case .floatingIP: MatchOrder(rank: 0, length: 0, key: key)
        case .dnat: MatchOrder(rank: 1, length: 0, key: key)
        case .snat(let prefix): MatchOrder(rank: 2, length: 32 - prefix.length, key: key)
        }
    }

    struct MatchOrder: Comparable {
        var rank: Int
        var length: Int
        var key: String

        static func < (a: MatchOrder, b: MatchOrder) -> Bool {
            (a.rank, a.length, a.key) < (b.rank, b.length, b.key)
        }
    }
}
