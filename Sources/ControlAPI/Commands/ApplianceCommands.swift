import Appliance
import Packet
import Shell

// The appliance's settings commands: vtepd applies, saves and audits each change.

public struct SetHostname: ControlCommand {
    public static let command = "set-hostname"
    public static let reply = ControlResult.Kind.accepted
    public var name: Hostname
    public enum CodingKeys: String, CodingKey, CaseIterable { case name }
    public init(_ name: Hostname) { self.name = name }
    public var shellLine: String { "set hostname \(name)" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.set, Word.hostname,
                .argument("NAME", .hostname, help: "New host name (RFC 1123)"),
            ], summary: "Set the host name at once; /etc/hostname and /etc/hosts follow"
        ) { arguments throws(CommandRefusal) in
            Self(
                try refusing { () throws(ApplianceSettingsError) in
                    try Hostname(arguments.text("NAME"))
                })
        }
    ]
}

public struct ShowHostname: ControlCommand {
    public static let command = "hostname"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show hostname" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.hostname], summary: "Show the appliance's host name"
        ) { _ in
            Self()
        }
    ]
}

/// The password travels over the 0660 socket and is hashed (yescrypt) by vtepd. The shell
/// types `set user admin password` and asks for it twice without echo (a dialogue of its
/// own), so this command has no grammar here.
public struct SetPassword: ControlCommand {
    public static let command = "set-password"
    public static let reply = ControlResult.Kind.accepted
    public var user: UserName
    public var password: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case user, password }
    public init(user: UserName, password: String) {
        self.user = user
        self.password = password
    }
    public var shellLine: String { "set user \(user) password" }
}

/// One interface, or all of them.
public struct ShowInterfaces: ControlCommand {
    public static let command = "interfaces"
    public static let reply = ControlResult.Kind.interfaces
    public var interface: InterfaceName?
    public enum CodingKeys: String, CodingKey, CaseIterable { case interface }
    public init(_ interface: InterfaceName? = nil) { self.interface = interface }
    public var shellLine: String {
        interface.map { "show network interface \($0)" } ?? "show network interfaces"
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.network, .keyword("interfaces", help: "All network interfaces")],
            summary: "List all interfaces: admin and link state, MTU, MAC, addresses"
        ) { _ in Self() },
        CommandDeclaration<Self>(
            [Word.show, Word.network, Word.interface, Slot.interface],
            summary: "Show one interface: state, configured addressing and counters"
        ) { arguments throws(CommandRefusal) in Self(try interfaceName(arguments)) },
    ]
}

/// The IF slot as an interface name.
func interfaceName(_ arguments: Arguments, _ slot: String = "IF") throws(CommandRefusal)
    -> InterfaceName
{
    try refusing { () throws(ApplianceSettingsError) in try InterfaceName(arguments.text(slot)) }
}

private let setInterface = [Word.set, Word.network, Word.interface, Slot.interface]

private func interfaceLine(_ name: InterfaceName) -> String { "set network interface \(name)" }

public struct SetInterfaceAddress: ControlCommand {
    public static let command = "set-interface-address"
    public static let reply = ControlResult.Kind.accepted
    public var interface: InterfaceName
    public var address: IPv4InterfaceAddress
    public enum CodingKeys: String, CodingKey, CaseIterable { case interface, address }
    public init(_ interface: InterfaceName, _ address: IPv4InterfaceAddress) {
        self.interface = interface
        self.address = address
    }
    public var shellLine: String {
        "\(interfaceLine(interface)) ip config static \(address.address) \(address.netmask)"
    }
    public static let shell = [
        CommandDeclaration<Self>(
            setInterface + [
                .keyword("ip", help: "IPv4 addressing"),
                .keyword("config", help: "How the interface gets its address"),
                .keyword("static", help: "A fixed address"),
                .argument("IP", .ipv4Address, help: "IPv4 address"),
                .argument("NETMASK", .ipv4Netmask, help: "Netmask, e.g. 255.255.255.0"),
            ], summary: "Give IF a fixed IPv4 address and netmask (replaces DHCP)"
        ) { arguments throws(CommandRefusal) in
            Self(
                try interfaceName(arguments),
                try refusing { () throws(ApplianceSettingsError) in
                    try IPv4InterfaceAddress(
                        address: arguments.ipv4("IP"),
                        prefixLength: arguments.prefixLength("NETMASK"))
                })
        }
    ]
}

public struct SetInterfaceDHCP: ControlCommand {
    public static let command = "set-interface-dhcp"
    public static let reply = ControlResult.Kind.accepted
    public var interface: InterfaceName
    public enum CodingKeys: String, CodingKey, CaseIterable { case interface }
    public init(_ interface: InterfaceName) { self.interface = interface }
    public var shellLine: String { "\(interfaceLine(interface)) ip config dhcp" }
    public static let shell = [
        CommandDeclaration<Self>(
            setInterface + [
                .keyword("ip", help: "IPv4 addressing"),
                .keyword("config", help: "How the interface gets its address"),
                .keyword("dhcp", help: "An address from a DHCP server"),
            ], summary: "Take IF's IPv4 address from DHCP (its static address is removed)"
        ) { arguments throws(CommandRefusal) in Self(try interfaceName(arguments)) }
    ]
}

public struct SetInterfaceMTU: ControlCommand {
    public static let command = "set-interface-mtu"
    public static let reply = ControlResult.Kind.accepted
    public var interface: InterfaceName
    public var mtu: Int
    public enum CodingKeys: String, CodingKey, CaseIterable { case interface, mtu }
    public init(_ interface: InterfaceName, mtu: Int) {
        self.interface = interface
        self.mtu = mtu
    }
    public var shellLine: String { "\(interfaceLine(interface)) mtu \(mtu)" }
    public func validate() throws(ControlFailure) {
        guard InterfaceSettings.mtuRange.contains(mtu) else {
            throw ControlFailure("\(ApplianceSettingsError.invalidMTU(mtu))")
        }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            setInterface + [
                .keyword("mtu", help: "Maximum transmission unit"),
                .argument("N", .integer(.mtu), help: "MTU in bytes"),
            ], summary: "Set IF's MTU in bytes (68–65535)"
        ) { arguments throws(CommandRefusal) in
            Self(try interfaceName(arguments), mtu: arguments.integer("N")!)
        }
    ]
}

/// Stops managing an interface's IPv4 address, as IOS's `no ip address`: the static address
/// the appliance configured is removed, a DHCP client releases its lease and stops; other
/// addresses on the interface are left alone.
public struct ClearInterfaceAddressing: ControlCommand {
    public static let command = "clear-interface-ip-config"
    public static let reply = ControlResult.Kind.accepted
    public var interface: InterfaceName
    public enum CodingKeys: String, CodingKey, CaseIterable { case interface }
    public init(_ interface: InterfaceName) { self.interface = interface }
    public var shellLine: String { "clear network interface \(interface) ip config" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.clear, Word.network, Word.interface, Slot.interface,
                .keyword("ip", help: "IPv4 addressing"),
                .keyword("config", help: "How the interface gets its address"),
            ], summary: "Stop managing IF's IPv4 address: remove it, or release the DHCP lease"
        ) { arguments throws(CommandRefusal) in Self(try interfaceName(arguments)) }
    ]
}

/// vtepd's version, uptime, the clock, load and memory (`show system`; the shell adds its
/// own version).
public struct ShowSystem: ControlCommand {
    public static let command = "system"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show system" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, .keyword("system", help: "Versions, uptime, clock, load and memory")],
            summary: "Show vtepsh and vtepd versions, vtepd's uptime, clock, load, memory"
        ) { _ in Self() }
    ]
}

/// An interface's administrative state.
public enum LinkState: String, Hashable, Sendable, Codable, CaseIterable {
    case up
    case down

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let state = LinkState(rawValue: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "state \"\(text)\" must be up or down")
        }
        self = state
    }
}

public struct SetInterfaceState: ControlCommand {
    public static let command = "set-interface-state"
    public static let reply = ControlResult.Kind.accepted
    public var interface: InterfaceName
    public var state: LinkState
    public enum CodingKeys: String, CodingKey, CaseIterable { case interface, state }
    public init(_ interface: InterfaceName, _ state: LinkState) {
        self.interface = interface
        self.state = state
    }
    public var shellLine: String { "\(interfaceLine(interface)) \(state.rawValue)" }
    public static let shell = [
        CommandDeclaration<Self>(
            setInterface + [
                .choice(
                    "STATE",
                    [Choice("up", "Bring the link up"), Choice("down", "Take the link down")])
            ], summary: "Set IF's administrative state: bring it up or take it down"
        ) { arguments throws(CommandRefusal) in
            Self(try interfaceName(arguments), LinkState(rawValue: arguments.keyword("STATE"))!)
        }
    ]
}

// MARK: Routes

/// A static route's wire form: `destination` (absent: the default route) and `gateway`.
public protocol RouteCommand: ControlCommand where CodingKeys == RouteCodingKeys {
    var route: StaticRoute { get }
    init(_ route: StaticRoute)
    static var verb: String { get }
}

public enum RouteCodingKeys: String, CodingKey, CaseIterable { case destination, gateway }

extension RouteCommand {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: RouteCodingKeys.self)
        let destination = try container.decodeIfPresent(String.self, forKey: .destination)
        let gateway = try container.decode(String.self, forKey: .gateway)
        do {
            self.init(try StaticRoute(destination: destination, gateway: gateway))
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .gateway, in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: RouteCodingKeys.self)
        if !route.isDefault {
            try container.encode(route.destination.description, forKey: .destination)
        }
        try container.encode(route.gateway.description, forKey: .gateway)
    }

    public var shellLine: String {
        "\(Self.verb) network route "
            + (route.isDefault ? "\(route.gateway)" : "\(route.destination) \(route.gateway)")
    }

    static func declarations(_ word: Syntax, summary: String, defaultSummary: String)
        -> [CommandDeclaration<Self>]
    {
        [
            CommandDeclaration<Self>(
                [word, Word.network, Word.route, Slot.destination, Slot.gateway], summary: summary
            ) { arguments throws(CommandRefusal) in
                Self(
                    try refusing { () throws(ApplianceSettingsError) in
                        try StaticRoute(
                            destination: arguments.prefix("PREFIX")?.description,
                            gateway: arguments.ip("GATEWAY").description)
                    })
            },
            CommandDeclaration<Self>(
                [word, Word.network, Word.route, Slot.gateway], summary: defaultSummary
            ) { arguments throws(CommandRefusal) in
                Self(
                    try refusing { () throws(ApplianceSettingsError) in
                        try StaticRoute(
                            destination: nil, gateway: arguments.ip("GATEWAY").description)
                    })
            },
        ]
    }
}

public struct AddRoute: RouteCommand {
    public typealias CodingKeys = RouteCodingKeys
    public static let command = "add-route"
    public static let reply = ControlResult.Kind.accepted
    public static let verb = "add"
    public var route: StaticRoute
    public init(_ route: StaticRoute) { self.route = route }
    public static let shell = declarations(
        Word.add, summary: "Add a static route to PREFIX via GATEWAY",
        defaultSummary: "Add the default route via GATEWAY (IPv4 or IPv6, by its family)")
}

public struct RemoveRoute: RouteCommand {
    public typealias CodingKeys = RouteCodingKeys
    public static let command = "remove-route"
    public static let reply = ControlResult.Kind.accepted
    public static let verb = "remove"
    public var route: StaticRoute
    public init(_ route: StaticRoute) { self.route = route }
    public static let shell = declarations(
        Word.remove, summary: "Remove the static route to PREFIX via GATEWAY",
        defaultSummary: "Remove the default route via GATEWAY")
}

public struct ShowRoutes: ControlCommand {
    public static let command = "routes"
    public static let reply = ControlResult.Kind.routes
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show network routes" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.network, Word.routes],
            summary: "Show the main routing table; CONFIGURED marks the appliance's routes"
        ) { _ in Self() }
    ]
}

public struct ClearRoutes: ControlCommand {
    public static let command = "clear-routes"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "clear network routes" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.clear, Word.network, Word.routes],
            summary: "Remove every static route the appliance configured"
        ) { _ in Self() }
    ]
}

// MARK: DNS and NTP

public struct AddDNSServer: ControlCommand {
    public static let command = "add-dns-server"
    public static let reply = ControlResult.Kind.accepted
    public var server: IPAddress
    public enum CodingKeys: String, CodingKey, CaseIterable { case server }
    public init(_ server: IPAddress) { self.server = server }
    public var shellLine: String { "add network dns-server \(server)" }
    public func validate() throws(ControlFailure) {
        do {
            try ApplianceSettings.checkDNSServer(server)
        } catch {
            throw ControlFailure(error.description)
        }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.add, Word.network, Word.dnsServer, Slot.server],
            summary: "Add a DNS resolver to /etc/resolv.conf (at most 3)"
        ) { Self($0.ip("IP")) }
    ]
}

public struct RemoveDNSServer: ControlCommand {
    public static let command = "remove-dns-server"
    public static let reply = ControlResult.Kind.accepted
    public var server: IPAddress
    public enum CodingKeys: String, CodingKey, CaseIterable { case server }
    public init(_ server: IPAddress) { self.server = server }
    public var shellLine: String { "remove network dns-server \(server)" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.remove, Word.network, Word.dnsServer, Slot.server],
            summary: "Remove a DNS resolver from /etc/resolv.conf"
        ) { Self($0.ip("IP")) }
    ]
}

public struct ShowDNSServers: ControlCommand {
    public static let command = "dns-servers"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show network dns-servers" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.network, Word.dnsServers], summary: "List the configured DNS resolvers"
        ) { _ in Self() }
    ]
}

public struct ClearDNSServers: ControlCommand {
    public static let command = "clear-dns-servers"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "clear network dns-servers" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.clear, Word.network, Word.dnsServers],
            summary: "Remove every configured DNS resolver"
        ) { _ in Self() }
    ]
}

/// The HOST slot as an NTP server.
private func ntpServer(_ arguments: Arguments) throws(CommandRefusal) -> NTPServer {
    try refusing { () throws(ApplianceSettingsError) in
        try NTPServer(arguments.host("HOST").description)
    }
}

public struct AddNTPServer: ControlCommand {
    public static let command = "add-ntp-server"
    public static let reply = ControlResult.Kind.accepted
    public var server: NTPServer
    public enum CodingKeys: String, CodingKey, CaseIterable { case server }
    public init(_ server: NTPServer) { self.server = server }
    public var shellLine: String { "add network ntp-server \(server)" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.add, Word.network, Word.ntpServer, Slot.ntpHost],
            summary: "Add an NTP server (name or address) for chronyd"
        ) { arguments throws(CommandRefusal) in Self(try ntpServer(arguments)) }
    ]
}

public struct RemoveNTPServer: ControlCommand {
    public static let command = "remove-ntp-server"
    public static let reply = ControlResult.Kind.accepted
    public var server: NTPServer
    public enum CodingKeys: String, CodingKey, CaseIterable { case server }
    public init(_ server: NTPServer) { self.server = server }
    public var shellLine: String { "remove network ntp-server \(server)" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.remove, Word.network, Word.ntpServer, Slot.ntpHost],
            summary: "Remove an NTP server from chronyd's sources"
        ) { arguments throws(CommandRefusal) in Self(try ntpServer(arguments)) }
    ]
}

public struct ClearNTPServers: ControlCommand {
    public static let command = "clear-ntp-servers"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "clear network ntp-servers" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.clear, Word.network, Word.ntpServers],
            summary: "Remove every configured NTP server"
        ) { _ in Self() }
    ]
}

public struct ShowNTPServers: ControlCommand {
    public static let command = "ntp-servers"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show network ntp-servers" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.network, Word.ntpServers], summary: "List the configured NTP servers"
        ) { _ in Self() }
    ]
}

/// The DOMAIN slot as a domain name.
private func domainName(_ arguments: Arguments) throws(CommandRefusal) -> DomainName {
    try refusing { () throws(ApplianceSettingsError) in try DomainName(arguments.text("DOMAIN")) }
}

public struct AddSearchDomain: ControlCommand {
    public static let command = "add-dns-search-domain"
    public static let reply = ControlResult.Kind.accepted
    public var domain: DomainName
    public enum CodingKeys: String, CodingKey, CaseIterable { case domain }
    public init(_ domain: DomainName) { self.domain = domain }
    public var shellLine: String { "add network dns-search-domain \(domain)" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.add, Word.network, Word.searchDomain, Slot.domain],
            summary: "Add a DNS search domain to /etc/resolv.conf (at most 6)"
        ) { arguments throws(CommandRefusal) in Self(try domainName(arguments)) }
    ]
}

public struct RemoveSearchDomain: ControlCommand {
    public static let command = "remove-dns-search-domain"
    public static let reply = ControlResult.Kind.accepted
    public var domain: DomainName
    public enum CodingKeys: String, CodingKey, CaseIterable { case domain }
    public init(_ domain: DomainName) { self.domain = domain }
    public var shellLine: String { "remove network dns-search-domain \(domain)" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.remove, Word.network, Word.searchDomain, Slot.domain],
            summary: "Remove a DNS search domain from /etc/resolv.conf"
        ) { arguments throws(CommandRefusal) in Self(try domainName(arguments)) }
    ]
}

public struct ShowSearchDomains: ControlCommand {
    public static let command = "dns-search-domains"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show network dns-search-domains" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.network, Word.searchDomains],
            summary: "List the configured DNS search domains"
        ) { _ in Self() }
    ]
}

public struct ClearSearchDomains: ControlCommand {
    public static let command = "clear-dns-search-domains"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "clear network dns-search-domains" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.clear, Word.network, Word.searchDomains],
            summary: "Remove every configured DNS search domain"
        ) { _ in Self() }
    ]
}

// MARK: Configuration and log

/// The commands that rebuild the appliance settings and the gateway's database rows.
public struct ShowRunningConfig: ControlCommand {
    public static let command = "running-config"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show running-config" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show,
                .keyword(
                    "running-config", help: "The commands that rebuild the current configuration"),
            ], summary: "Show the commands that rebuild the current configuration"
        ) { _ in Self() }
    ]
}

/// A line the shell refused itself (its grammar or a value's type), for the audit log: what
/// was typed (cut to `maximumLength`) and why it was refused. Not a change: it answers `[]`.
public struct AuditRefusedInput: ControlCommand {
    public static let command = "audit-refused-input"
    public static let reply = ControlResult.Kind.lines
    public static let maximumLength = 200
    public var line: String
    public var reason: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case line, reason }
    public init(line: String, reason: String) {
        self.line = String(line.prefix(Self.maximumLength))
        self.reason = String(reason.prefix(Self.maximumLength))
    }
    public var shellLine: String { line }
    public func validate() throws(ControlFailure) {
        guard line.count <= Self.maximumLength, reason.count <= Self.maximumLength else {
            throw ControlFailure("line and reason are cut to \(Self.maximumLength) characters")
        }
    }
}

/// The audit log's last lines; nil: `defaultLines`.
public struct ShowLog: ControlCommand {
    public static let command = "log"
    public static let reply = ControlResult.Kind.lines
    public static let defaultLines = 50
    public var lines: Int?
    public enum CodingKeys: String, CodingKey, CaseIterable { case lines }
    public init(lines: Int? = nil) { self.lines = lines }
    public var shellLine: String { "show log" + (lines.map { " lines \($0)" } ?? "") }
    public func validate() throws(ControlFailure) {
        if let lines, !(1...100_000).contains(lines) {
            throw ControlFailure("lines \(lines) is out of range (1–100000)")
        }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show, .keyword("log", help: "The appliance's log"),
                .optional([
                    .keyword("lines", help: "Show only the last lines"),
                    .argument("N", .integer(.lines), help: "Number of lines"),
                ]),
            ], summary: "Show the audit log (changes, refused lines): the last N, default 50"
        ) { Self(lines: $0.integer("N")) }
    ]
}
