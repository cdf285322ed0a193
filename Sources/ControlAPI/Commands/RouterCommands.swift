import Packet
import Shell

// Logical routers of the L3 gateway (docs/routers.md): hardware_vtep Logical_Router rows,
// their interfaces (`switch_binding`), static routes and NAT rules (`other_config`). vtepd
// checks each change against the whole router (overlapping interfaces, a next hop off every
// interface, a NAT address off every subnet) and refuses it, writing nothing.

extension Word {
    public static let logicalRouter = Syntax.keyword(
        "logical-router", help: "A logical router between logical switches, with NAT")
    public static let nat = Syntax.keyword("nat", help: "A NAT rule of the router")
}

extension Slot {
    public static let routerName = Syntax.argument("NAME", .name, help: "Logical router name")
    public static let routerSwitch = Syntax.argument(
        "LOGICAL-SWITCH", .name, help: "Logical switch the interface is on")
    public static let routerAddress = Syntax.argument(
        "IP/PREFIX", .interfaceAddress, help: "The interface's address and prefix length")
    public static let routePrefix = Syntax.argument(
        "PREFIX", .prefix, help: "Destination network, ADDRESS/LENGTH")
    public static let nextHop = Syntax.argument(
        "NEXT-HOP", .ipAddress, help: "Next-hop address, on one of the router's interfaces")
}

/// Router names: 1–32 letters, digits, `.`, `_`, `-`, not starting with `-`; they name a
/// network namespace.
func checkRouterName(_ text: String) throws(ControlFailure) {
    try checkName(text, maximumLength: 32, of: "logical router")
    guard text != ".", text != ".." else {
        throw ControlFailure("\"\(text)\" is not a logical router name")
    }
}

public struct AddLogicalRouter: ControlCommand {
    public static let command = "add-logical-router"
    public static let reply = ControlResult.Kind.accepted
    public var name: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case name }
    public init(name: String) { self.name = name }
    public var shellLine: String { "add logical-router \(name)" }
    public func validate() throws(ControlFailure) { try checkRouterName(name) }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.add, Word.logicalRouter, Slot.routerName],
            summary: "Create logical router NAME (a network namespace of its own)"
        ) { Self(name: $0.text("NAME")) }
    ]
}

public struct RemoveLogicalRouter: ControlCommand {
    public static let command = "remove-logical-router"
    public static let reply = ControlResult.Kind.accepted
    public var name: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case name }
    public init(name: String) { self.name = name }
    public var shellLine: String { "remove logical-router \(name)" }
    public func validate() throws(ControlFailure) { try checkRouterName(name) }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.remove, Word.logicalRouter, Slot.routerName],
            summary: "Delete a logical router with its interfaces, routes and NAT rules"
        ) { Self(name: $0.text("NAME")) }
    ]
}

/// An interface's address with its prefix length, as `switch_binding` keys it.
func checkInterfaceAddress(_ text: String) throws(ControlFailure) {
    guard case .success = ArgumentKind.interfaceAddress.parse(text) else {
        throw ControlFailure("\"\(text)\" is not an interface address (e.g. 10.0.0.1/24)")
    }
}

/// Gives the router an interface on a logical switch, or moves its address there.
public struct SetRouterInterface: ControlCommand {
    public static let command = "set-router-interface"
    public static let reply = ControlResult.Kind.accepted
    public var router: String
    public var logicalSwitch: String
    public var address: String
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case router
        case logicalSwitch = "switch"
        case address
    }
    public init(router: String, logicalSwitch: String, address: String) {
        self.router = router
        self.logicalSwitch = logicalSwitch
        self.address = address
    }
    public var shellLine: String {
        "set logical-router \(router) interface \(logicalSwitch) \(address)"
    }
    public func validate() throws(ControlFailure) {
        try checkRouterName(router)
        try checkLogicalSwitchName(logicalSwitch)
        try checkInterfaceAddress(address)
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.set, Word.logicalRouter, Slot.routerName, Word.interface, Slot.routerSwitch,
                Slot.routerAddress,
            ],
            summary: "Give router NAME an interface with an address on a logical switch"
        ) {
            Self(
                router: $0.text("NAME"), logicalSwitch: $0.text("LOGICAL-SWITCH"),
                address: $0.text("IP/PREFIX"))
        }
    ]
}

/// With an address, only an interface with that address is removed.
public struct RemoveRouterInterface: ControlCommand {
    public static let command = "remove-router-interface"
    public static let reply = ControlResult.Kind.accepted
    public var router: String
    public var logicalSwitch: String
    public var address: String?
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case router
        case logicalSwitch = "switch"
        case address
    }
    public init(router: String, logicalSwitch: String, address: String? = nil) {
        self.router = router
        self.logicalSwitch = logicalSwitch
        self.address = address
    }
    public var shellLine: String {
        "remove logical-router \(router) interface \(logicalSwitch)"
            + (address.map { " \($0)" } ?? "")
    }
    public func validate() throws(ControlFailure) {
        try checkRouterName(router)
        try checkLogicalSwitchName(logicalSwitch)
        if let address { try checkInterfaceAddress(address) }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.remove, Word.logicalRouter, Slot.routerName, Word.interface, Slot.routerSwitch,
                .optional([Slot.routerAddress]),
            ], summary: "Remove router NAME's interface on a logical switch"
        ) {
            Self(
                router: $0.text("NAME"), logicalSwitch: $0.text("LOGICAL-SWITCH"),
                address: $0.has("IP/PREFIX") ? $0.text("IP/PREFIX") : nil)
        }
    ]
}

/// A static route of a router, as the route commands carry it.
public struct RouterRoute: Hashable, Sendable, Codable {
    public var router: String
    /// `ADDRESS/LENGTH`, host bits clear.
    public var prefix: String
    public var nextHop: String
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case router, prefix
        case nextHop = "next-hop"
    }

    public init(router: String, prefix: String, nextHop: String) {
        self.router = router
        self.prefix = prefix
        self.nextHop = nextHop
    }
}

/// `add` and `remove` of a router's route differ only in their names.
public protocol RouterRouteCommand: ControlCommand where CodingKeys == RouterRoute.CodingKeys {
    var route: RouterRoute { get }
    init(_ route: RouterRoute)
    /// "add" or "remove".
    static var verb: String { get }
    static var summary: String { get }
}

extension RouterRouteCommand {
    public init(from decoder: any Decoder) throws { self.init(try RouterRoute(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try route.encode(to: encoder) }

    public var shellLine: String {
        "\(Self.verb) logical-router \(route.router) route \(route.prefix) \(route.nextHop)"
    }

    public func validate() throws(ControlFailure) {
        try checkRouterName(route.router)
        guard case .success(.prefix(let prefix)) = ArgumentKind.prefix.parse(route.prefix) else {
            throw ControlFailure("\"\(route.prefix)\" is not a prefix (e.g. 10.1.0.0/16)")
        }
        guard let nextHop = IPAddress(route.nextHop) else {
            throw ControlFailure("next hop \"\(route.nextHop)\" is not an IP address")
        }
        switch (prefix.address, nextHop) {
        case (.v4, .v4), (.v6, .v6): break
        default:
            throw ControlFailure("next hop \(nextHop) is not of the family of \(prefix)")
        }
    }

    public static var shell: [CommandDeclaration<Self>] {
        [
            CommandDeclaration<Self>(
                [
                    verb == "add" ? Word.add : Word.remove, Word.logicalRouter, Slot.routerName,
                    Word.route, Slot.routePrefix, Slot.nextHop,
                ], summary: summary
            ) {
                Self(
                    RouterRoute(
                        router: $0.text("NAME"), prefix: $0.prefix("PREFIX")!.description,
                        nextHop: $0.ip("NEXT-HOP").description))
            }
        ]
    }
}

public struct AddRouterRoute: RouterRouteCommand {
    public static let command = "add-router-route"
    public static let reply = ControlResult.Kind.accepted
    public static let verb = "add"
    public static let summary = "Route PREFIX through NEXT-HOP in router NAME"
    public var route: RouterRoute
    public init(_ route: RouterRoute) { self.route = route }
}

public struct RemoveRouterRoute: RouterRouteCommand {
    public static let command = "remove-router-route"
    public static let reply = ControlResult.Kind.accepted
    public static let verb = "remove"
    public static let summary = "Remove router NAME's route to PREFIX via NEXT-HOP"
    public var route: RouterRoute
    public init(_ route: RouterRoute) { self.route = route }
}

/// A NAT rule as the shell types it (OVN NB `NAT` types: `snat`, `dnat`, and `dnat_and_snat`
/// as `floating-ip`). `internal` is a prefix for SNAT, an address (with a port for a port
/// forward) otherwise; `external` an address, with a port for a port forward.
public struct NATSetting: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
        case snat, dnat
        case floatingIP = "floating-ip"
    }
    public enum Transport: String, Hashable, Sendable, Codable, CaseIterable { case tcp, udp }

    public var kind: Kind
    public var external: String
    public var `internal`: String
    public var transport: Transport?

    public init(_ kind: Kind, external: String, internal: String, transport: Transport? = nil) {
        self.kind = kind
        self.external = external
        self.internal = `internal`
        self.transport = transport
    }

    /// "snat 10.0.0.0/24 192.0.2.10", as the shell types it after `nat`.
    public var shellWords: String {
        switch kind {
        case .snat: "snat \(`internal`) \(external)"
        case .floatingIP: "floating-ip \(external) \(`internal`)"
        case .dnat:
            "dnat \(external) \(`internal`)" + (transport.map { " \($0.rawValue)" } ?? "")
        }
    }

    /// The `other_config` key and value of the Logical_Router row that hold the rule
    /// (docs/routers.md).
    public var key: String {
        switch kind {
        case .snat: "snat:\(`internal`)"
        case .floatingIP: "floating-ip:\(external)"
        case .dnat:
            "dnat:\(external)"
                + (external.contains(":") ? "/\((transport ?? .tcp).rawValue)" : "")
        }
    }
    public var value: String { kind == .snat ? external : `internal` }

    public func validate() throws(ControlFailure) {
        func address(_ text: String, port allowed: Bool, _ side: String) throws(ControlFailure)
            -> Bool
        {
            guard case .success = ArgumentKind.natAddress.parse(text),
                allowed || !text.contains(":")
            else {
                throw ControlFailure(
                    "the \(side) side \"\(text)\" must be an IPv4 address"
                        + (allowed ? " with an optional port" : ""))
            }
            return text.contains(":")
        }
        switch kind {
        case .snat:
            guard case .success(.prefix(let prefix)) = ArgumentKind.prefix.parse(`internal`),
                case .v4 = prefix.address
            else {
                throw ControlFailure("the internal side \"\(`internal`)\" must be an IPv4 prefix")
            }
            _ = try address(external, port: false, "external")
        case .floatingIP:
            _ = try address(external, port: false, "external")
            _ = try address(`internal`, port: false, "internal")
        case .dnat:
            let externalPort = try address(external, port: true, "external")
            let internalPort = try address(`internal`, port: true, "internal")
            if !externalPort && (internalPort || transport != nil) {
                throw ControlFailure("a protocol or an internal port needs an external port")
            }
            return
        }
        if transport != nil { throw ControlFailure("only dnat takes a protocol") }
    }

    /// The three ways of typing a rule after `VERB logical-router NAME nat`.
    static var syntaxes:
        [(words: [Syntax], summary: String, build: @Sendable (Arguments) -> NATSetting)]
    {
        [
            (
                [
                    .keyword("snat", help: "Sources in a prefix leave as one address"),
                    .argument(
                        "INTERNAL-PREFIX", .prefix, help: "The inside sources, ADDRESS/LENGTH"),
                    .argument("EXTERNAL-IP", .ipv4Address, help: "The address they leave as"),
                ], "SNAT: sources in INTERNAL-PREFIX leave as EXTERNAL-IP",
                {
                    NATSetting(
                        .snat, external: $0.ipv4("EXTERNAL-IP").description,
                        internal: $0.prefix("INTERNAL-PREFIX")!.description)
                }
            ),
            (
                [
                    .keyword("dnat", help: "Connections to an address (and port) go inside"),
                    .argument(
                        "EXTERNAL", .natAddress,
                        help: "The outside address, with a port to forward one"),
                    .argument("INTERNAL", .natAddress, help: "The inside address, with its port"),
                    .optional([
                        .choice(
                            "PROTOCOL",
                            [Choice("tcp", "TCP (the default)"), Choice("udp", "UDP datagrams")])
                    ]),
                ], "Port forward: EXTERNAL[:PORT] to INTERNAL[:PORT], TCP or UDP",
                {
                    NATSetting(
                        .dnat, external: $0.text("EXTERNAL"), internal: $0.text("INTERNAL"),
                        transport: $0.has("PROTOCOL")
                            ? Transport(rawValue: $0.keyword("PROTOCOL")) : nil)
                }
            ),
            (
                [
                    .keyword("floating-ip", help: "An outside address standing for an inside host"),
                    .argument("EXTERNAL-IP", .ipv4Address, help: "The outside address"),
                    .argument("INTERNAL-IP", .ipv4Address, help: "The inside host"),
                ], "Floating IP: EXTERNAL-IP stands for INTERNAL-IP both ways",
                {
                    NATSetting(
                        .floatingIP, external: $0.ipv4("EXTERNAL-IP").description,
                        internal: $0.ipv4("INTERNAL-IP").description)
                }
            ),
        ]
    }
}

/// A NAT rule of a router; `add` and `remove` differ only in their names. Wire: flat
/// arguments `router`, `type`, `external`, `internal`, `protocol`.
public protocol RouterNATCommand: ControlCommand where CodingKeys == RouterNATCodingKeys {
    var router: String { get }
    var rule: NATSetting { get }
    init(router: String, rule: NATSetting)
    /// "add" or "remove".
    static var verb: String { get }
    static var summaryPrefix: String { get }
}

public enum RouterNATCodingKeys: String, CodingKey, CaseIterable {
    case router
    case kind = "type"
    case external
    case `internal`
    case transport = "protocol"
}

extension RouterNATCommand {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: RouterNATCodingKeys.self)
        self.init(
            router: try container.decode(String.self, forKey: .router),
            rule: NATSetting(
                try container.decode(NATSetting.Kind.self, forKey: .kind),
                external: try container.decode(String.self, forKey: .external),
                internal: try container.decode(String.self, forKey: .internal),
                transport: try container.decodeIfPresent(
                    NATSetting.Transport.self, forKey: .transport)))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: RouterNATCodingKeys.self)
        try container.encode(router, forKey: .router)
        try container.encode(rule.kind, forKey: .kind)
        try container.encode(rule.external, forKey: .external)
        try container.encode(rule.internal, forKey: .internal)
        try container.encodeIfPresent(rule.transport, forKey: .transport)
    }

    public var shellLine: String {
        "\(Self.verb) logical-router \(router) nat \(rule.shellWords)"
    }

    public func validate() throws(ControlFailure) {
        try checkRouterName(router)
        try rule.validate()
    }

    public static var shell: [CommandDeclaration<Self>] {
        NATSetting.syntaxes.map { syntax in
            let build = syntax.build
            return CommandDeclaration<Self>(
                [
                    verb == "add" ? Word.add : Word.remove, Word.logicalRouter, Slot.routerName,
                    Word.nat,
                ]
                    + syntax.words,
                summary: summaryPrefix + syntax.summary
            ) { Self(router: $0.text("NAME"), rule: build($0)) }
        }
    }
}

public struct AddRouterNAT: RouterNATCommand {
    public static let command = "add-router-nat"
    public static let reply = ControlResult.Kind.accepted
    public static let verb = "add"
    public static let summaryPrefix = ""
    public var router: String
    public var rule: NATSetting
    public init(router: String, rule: NATSetting) {
        self.router = router
        self.rule = rule
    }
}

public struct RemoveRouterNAT: RouterNATCommand {
    public static let command = "remove-router-nat"
    public static let reply = ControlResult.Kind.accepted
    public static let verb = "remove"
    public static let summaryPrefix = "Remove: "
    public var router: String
    public var rule: NATSetting
    public init(router: String, rule: NATSetting) {
        self.router = router
        self.rule = rule
    }
}

public struct ShowLogicalRouters: ControlCommand {
    public static let command = "logical-routers"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show logical-routers" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show,
                .keyword("logical-routers", help: "The logical routers and their state"),
            ], summary: "List the logical routers: interfaces, routes, NAT rules, state"
        ) { _ in Self() }
    ]
}

public struct ShowLogicalRouter: ControlCommand {
    public static let command = "logical-router"
    public static let reply = ControlResult.Kind.lines
    public var name: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case name }
    public init(name: String) { self.name = name }
    public var shellLine: String { "show logical-router \(name)" }
    public func validate() throws(ControlFailure) { try checkRouterName(name) }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.logicalRouter, Slot.routerName],
            summary: "Show one router: interfaces, routes, NAT rules with their hits"
        ) { Self(name: $0.text("NAME")) }
    ]
}

public struct ShowLogicalRouterSessions: ControlCommand {
    public static let command = "logical-router-sessions"
    public static let reply = ControlResult.Kind.lines
    /// Sessions listed at most; the shell's default.
    public static let defaultLimit = 100
    public static let limitRange = IntegerRange("session count", 1...100_000)
    public var name: String
    public var limit: Int?
    public enum CodingKeys: String, CodingKey, CaseIterable { case name, limit }
    public init(name: String, limit: Int? = nil) {
        self.name = name
        self.limit = limit
    }
    public var shellLine: String {
        "show logical-router \(name) sessions" + (limit.map { " limit \($0)" } ?? "")
    }
    public func validate() throws(ControlFailure) {
        try checkRouterName(name)
        if let limit, !Self.limitRange.bounds.contains(limit) {
            throw ControlFailure("session count \(limit) is out of range (1–100000)")
        }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show, Word.logicalRouter, Slot.routerName,
                .keyword("sessions", help: "The connections conntrack tracks in the router"),
                .optional([
                    .keyword("limit", help: "List at most N sessions (default 100)"),
                    .argument("N", .integer(limitRange), help: "Sessions listed at most"),
                ]),
            ], summary: "List router NAME's sessions: both directions, as NAT made them"
        ) { Self(name: $0.text("NAME"), limit: $0.integer("N")) }
    ]
}

/// Removes the connections conntrack tracks in the router now (their NAT bindings with
/// them): a change, audited, that answers how many were removed.
public struct ClearLogicalRouterSessions: ControlCommand {
    public static let command = "clear-logical-router-sessions"
    public static let reply = ControlResult.Kind.lines
    public static let changesState = true
    public var name: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case name }
    public init(name: String) { self.name = name }
    public var shellLine: String { "clear logical-router \(name) sessions" }
    public func validate() throws(ControlFailure) { try checkRouterName(name) }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.clear, Word.logicalRouter, Slot.routerName,
                .keyword("sessions", help: "The connections conntrack tracks in the router"),
            ], summary: "Remove router NAME's sessions (conntrack entries, NAT bindings)"
        ) { Self(name: $0.text("NAME")) }
    ]
}

/// 0 removes the limit.
public struct SetRouterSessionLimit: ControlCommand {
    public static let command = "set-router-session-limit"
    public static let reply = ControlResult.Kind.accepted
    public static let range = IntegerRange("session limit", 0...10_000_000)
    public var router: String
    public var limit: Int
    public enum CodingKeys: String, CodingKey, CaseIterable { case router, limit }
    public init(router: String, limit: Int) {
        self.router = router
        self.limit = limit
    }
    public var shellLine: String { "set logical-router \(router) session-limit \(limit)" }
    public func validate() throws(ControlFailure) {
        try checkRouterName(router)
        guard Self.range.bounds.contains(limit) else {
            throw ControlFailure("session limit \(limit) is out of range (0–10000000)")
        }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.set, Word.logicalRouter, Slot.routerName,
                .keyword("session-limit", help: "The most sessions routed through the router"),
                .argument("N", .integer(range), help: "Sessions at most; 0 for no limit"),
            ], summary: "Refuse (and count) new sessions of router NAME beyond N; 0: no limit"
        ) { Self(router: $0.text("NAME"), limit: $0.integer("N")!) }
    ]
}
