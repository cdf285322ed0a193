import Packet

/// One logical router of the L3 gateway, as vtepd builds it: a network namespace whose
/// interfaces are veth pairs into the data plane, kernel routes, and an nftables NAT ruleset.
///
/// Read from a hardware_vtep `Logical_Router` row (`switch_binding`, `static_routes`, NAT
/// rules in `other_config`, docs/routers.md) by `init(name:bindings:staticRoutes:otherConfig:)`,
/// which refuses what the router could not carry out, with the reason. Pure and a value: the
/// same row always gives an equal router, so the runtime can tell what changed.
public struct LogicalRouter: Hashable, Sendable {
    /// The Logical_Router `name`: 1 to 32 of letters, digits, `-`, `_` and `.`, so it can
    /// name a network namespace.
    public var name: String
    /// One per address, sorted by logical switch, IPv4 first: a switch has at most one
    /// address of each family, both on the same veth (`links`).
    public var interfaces: [Interface]
    /// Sorted by prefix.
    public var routes: [StaticRoute]
    /// In the order they are matched: floating IPs, then port forwards, then SNAT by longest
    /// internal prefix.
    public var nat: [NATRule]
    /// New sessions routed through the router beyond this many are refused (and counted);
    /// nil: no limit. `other_config:session-limit`.
    public var sessionLimit: Int?

    /// The `other_config` key of the session limit.
    public static let sessionLimitKey = "session-limit"

    /// A router interface: its address on a logical switch. The veth's outer end (`port`) is
    /// an internal port of the data plane bound untagged to `logicalSwitch`; its inner end
    /// (`inside`) holds `address` in the router's namespace.
    public struct Interface: Hashable, Sendable {
        public var logicalSwitch: String
        public var address: IPAddress
        public var prefixLength: Int
        /// The veth end in vtepd's namespace (the data plane's port).
        public var port: String
        /// The veth end in the router's namespace.
        public var inside: String

        /// The interface's subnet.
        public var subnet: IPPrefix { IPPrefix(address: address, length: prefixLength)! }

        /// "10.0.0.1/24".
        public var addressText: String { "\(address)/\(prefixLength)" }

        public var isIPv6: Bool { address.isIPv6 }

        /// The inner veth end's MAC address: locally administered, unicast, from the same
        /// hash as the names, so a rebuilt router answers with the MAC the hosts' ARP and
        /// neighbour caches (and vtepd's MAC table) already hold.
        public var mac: String {
            let hex = Array(port.dropFirst(2).prefix(10))
            return "02:"
                + stride(from: 0, to: 10, by: 2).map { String(hex[$0...$0 + 1]) }
                .joined(separator: ":")
        }
    }

    /// One interface per logical switch (its IPv4 and IPv6 addresses share one veth pair):
    /// the veths and data-plane ports to make.
    public var links: [Interface] {
        var seen: Set<String> = []
        return interfaces.filter { seen.insert($0.port).inserted }
    }

    public struct StaticRoute: Hashable, Sendable, CustomStringConvertible {
        public var prefix: IPPrefix
        public var nextHop: IPAddress

        public var description: String { "\(prefix) via \(nextHop)" }
    }

    /// Interface names are at most 15 bytes (IFNAMSIZ 16 with its NUL).
    public static let interfaceNameLimit = 15

    /// Reads a router. `bindings` maps each interface address (`IP/PREFIX`, as
    /// `switch_binding`'s keys) to the name of its logical switch; `staticRoutes` maps
    /// prefixes to next hops; `otherConfig` holds the NAT rules (`NATRule.init(key:value:)`).
    /// Throws the first reason the router cannot be built as given.
    public init(
        name: String, bindings: [String: String], staticRoutes: [String: String],
        otherConfig: [String: String]
    ) throws(RouterError) {
        try Self.validate(name: name)
        self.name = name
        var interfaces: [Interface] = []
        for (text, logicalSwitch) in bindings.sorted(by: { $0.key < $1.key }) {
            let parts = text.split(separator: "/", maxSplits: 1)
            guard parts.count == 2, let address = IPAddress(String(parts[0])),
                let length = Int(parts[1]), IPPrefix(address: address, length: length) != nil
            else {
                throw RouterError(
                    "interface address \"\(text)\" is not IP/PREFIX (e.g. 10.0.0.1/24)")
            }
            if let twice = interfaces.first(where: {
                $0.logicalSwitch == logicalSwitch && $0.isIPv6 == address.isIPv6
            }) {
                throw RouterError(
                    "logical switch \(logicalSwitch) has two interfaces of one family,"
                        + " \(twice.addressText) and \(text); a router has one IPv4 and one IPv6"
                        + " address per switch")
            }
            let tag = Self.tag(router: name, logicalSwitch: logicalSwitch)
            interfaces.append(
                Interface(
                    logicalSwitch: logicalSwitch, address: address, prefixLength: length,
                    port: "lr" + tag, inside: "ri" + tag))
        }
        for (i, a) in interfaces.enumerated() {
            for b in interfaces[(i + 1)...]
            where a.subnet.contains(b.address) || b.subnet.contains(a.address) {
                throw RouterError(
                    "interfaces \(a.addressText) (\(a.logicalSwitch)) and \(b.addressText)"
                        + " (\(b.logicalSwitch)) overlap")
            }
        }
        self.interfaces = interfaces.sorted {
            ($0.logicalSwitch, $0.isIPv6 ? 1 : 0) < ($1.logicalSwitch, $1.isIPv6 ? 1 : 0)
        }

        var routes: [StaticRoute] = []
        for (prefixText, hopText) in staticRoutes {
            guard let prefix = IPPrefix(prefixText) else {
                throw RouterError("route \"\(prefixText)\" is not a prefix (e.g. 0.0.0.0/0)")
            }
            guard let hop = IPAddress(hopText) else {
                throw RouterError("route \(prefixText): next hop \"\(hopText)\" is not an address")
            }
            guard interfaces.contains(where: { $0.subnet.contains(hop) && $0.address != hop })
            else {
                throw RouterError(
                    "route \(prefixText): next hop \(hopText) is on none of the router's"
                        + " interfaces")
            }
            routes.append(StaticRoute(prefix: prefix, nextHop: hop))
        }
        self.routes = routes.sorted { $0.prefix.description < $1.prefix.description }

        var nat: [NATRule] = []
        for (key, value) in otherConfig.sorted(by: { $0.key < $1.key }) {
            guard let rule = try NATRule(key: key, value: value) else { continue }
            guard self.interfaces.contains(where: { $0.subnet.contains(.v4(rule.external)) })
            else {
                throw RouterError(
                    "NAT rule \(rule): external address \(rule.external) is on none of the"
                        + " router's interfaces (it must be on the uplink's subnet)")
            }
            nat.append(rule)
        }
        self.nat = nat.sorted { $0.matchOrder < $1.matchOrder }
        if let text = otherConfig[Self.sessionLimitKey] {
            guard let limit = Int(text), (1...10_000_000).contains(limit) else {
                throw RouterError(
                    "session-limit \"\(text)\" is not a number of sessions (1–10000000)")
            }
            sessionLimit = limit
        }
    }

    /// Refuses a name that could not name a namespace or a shell argument.
    public static func validate(name: String) throws(RouterError) {
        let allowed = name.utf8.allSatisfy {
            (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0)
                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
        }
        guard (1...32).contains(name.utf8.count), allowed, name != ".", name != ".." else {
            throw RouterError(
                "router name \"\(name)\" must be 1 to 32 letters, digits, '-', '_' or '.'")
        }
    }

    /// The interface a packet to `address` leaves by (the one whose subnet holds it).
    public func interface(reaching address: IPAddress) -> Interface? {
        interfaces.first { $0.subnet.contains(address) }
    }

    /// The NAT rules' external addresses that are not an interface's own: each is added to
    /// its interface as a /32, so the router answers ARP for it.
    public var natAddresses: [(address: IPv4Address, interface: Interface)] {
        var seen: Set<IPv4Address> = []
        var result: [(IPv4Address, Interface)] = []
        for rule in nat {
            guard let i = interface(reaching: .v4(rule.external)), i.address != .v4(rule.external),
                seen.insert(rule.external).inserted
            else { continue }
            result.append((rule.external, i))
        }
        return result.sorted { $0.0 < $1.0 }
    }

    /// 11 hex digits of a 64-bit FNV-1a hash of router and switch names: with the two-letter
    /// kind, 13 bytes, within IFNAMSIZ, and the same in every run (a restarted vtepd finds its
    /// own interfaces by name).
    static func tag(router: String, logicalSwitch: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in router.utf8 + [0] + logicalSwitch.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String((String(repeating: "0", count: 16 - hex.count) + hex).prefix(11))
    }

    /// Whether `name` is the data plane port of some router interface (`lr` + 11 hex digits):
    /// how a restarted vtepd recognizes what an earlier one left behind.
    public static func isRouterPort(_ name: String) -> Bool {
        name.utf8.count == 13 && name.hasPrefix("lr")
            && name.utf8.dropFirst(2).allSatisfy {
                (48...57).contains($0) || (97...102).contains($0)
            }
    }
}

/// Why a router's configuration cannot be carried out, in words an operator can act on.
public struct RouterError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

extension IPAddress {
    var isIPv6: Bool {
        if case .v6 = self { true } else { false }
    }
}
