import Appliance
import Packet
import Shell

// The gateway's commands: reports of the data plane and the hardware_vtep database, and the
// database writes (one transaction each, as vtep-ctl writes them).

/// The MAC table, optionally only one logical switch's or one MAC's entries, sorted by
/// (switch name, MAC).
///
/// A table of a million entries does not fit one response line, so the API reads it a page at
/// a time: `limit` (1–`maximumRows`) entries after the cursor `afterSwitch` + `afterMAC` (the
/// last row of the previous page; neither for the first page). A page shorter than `limit` is
/// the last. Without `limit` (clients older than paging) the whole table is the answer when it
/// has at most `maximumRows` entries, and a refusal saying to page when it has more. What a
/// listing guarantees while the table changes is `MACTablePage`'s: every entry there from the
/// first page to the last is listed exactly once, none twice, in order.
public struct ShowMACTable: ControlCommand {
    public static let command = "mac-table"
    public static let reply = ControlResult.Kind.macTable
    /// The most rows one response carries: 4096 rows of the longest names fit the client's
    /// 1 MiB line with room to spare.
    public static let maximumRows = 4096
    public var logicalSwitch: String?
    public var mac: MACAddress?
    public var limit: Int?
    public var afterSwitch: String?
    public var afterMAC: MACAddress?
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case logicalSwitch = "switch"
        case mac, limit, afterSwitch, afterMAC
    }
    public init(
        logicalSwitch: String? = nil, mac: MACAddress? = nil, limit: Int? = nil,
        after: (logicalSwitch: String, mac: MACAddress)? = nil
    ) {
        self.logicalSwitch = logicalSwitch
        self.mac = mac
        self.limit = limit
        self.afterSwitch = after?.logicalSwitch
        self.afterMAC = after?.mac
    }
    public func validate() throws(ControlFailure) {
        if let limit, !(1...Self.maximumRows).contains(limit) {
            throw ControlFailure("limit \(limit) is out of range (1–\(Self.maximumRows))")
        }
        if (afterSwitch == nil) != (afterMAC == nil) {
            throw ControlFailure("afterSwitch and afterMAC go together (the last row's)")
        }
        if afterSwitch != nil && limit == nil {
            throw ControlFailure("afterSwitch and afterMAC page: they need limit")
        }
    }
    /// The request for the page after `rows` (a page of this query), nil when `rows` was the
    /// last.
    public func page(after rows: [MACTableRow]) -> ShowMACTable? {
        guard let limit, rows.count >= limit, let last = rows.last,
            let mac = MACAddress(last.mac)
        else { return nil }
        var next = self
        next.afterSwitch = last.logicalSwitch
        next.afterMAC = mac
        return next
    }
    public var shellLine: String {
        "show switch mac-table" + (logicalSwitch.map { " logical-switch \($0)" } ?? "")
            + (mac.map { " mac \($0)" } ?? "")
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show, Word.switchWord,
                .keyword("mac-table", help: "Local and remote MAC addresses"),
                .optional([
                    .keyword("logical-switch", help: "Only this logical switch"),
                    .argument("NAME", .name, help: "Logical switch name"),
                ]),
                .optional([
                    .keyword("mac", help: "Only this MAC address"),
                    .argument("MAC", .mac, help: "MAC address"),
                ]),
            ], summary: "Show local and remote MACs, of one logical switch or MAC if given"
        ) { Self(logicalSwitch: $0.has("NAME") ? $0.text("NAME") : nil, mac: $0.mac("MAC")) }
    ]
}

/// Per logical switch, access port, remote VTEP, drop and malformed reason.
public struct Counters: ControlCommand {
    public static let command = "counters"
    public static let reply = ControlResult.Kind.counters
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show switch statistics" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show, Word.switchWord,
                .keyword("statistics", help: "Frame and drop counters"),
            ], summary: "Show the data plane's frame and drop counters"
        ) { _ in Self() }
    ]
}

/// The switch itself: physical switch, tunnel IPs, underlay, ports, logical switches and
/// bindings in effect, and the problems (the `configuration` report, as the shell shows it).
public struct ShowSwitch: ControlCommand {
    public static let command = "switch"
    public static let reply = ControlResult.Kind.configuration
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show switch" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.switchWord],
            summary: "Show the switch: its name, tunnel IPs, underlay, ports, problems"
        ) { _ in Self() }
    ]
}

/// The effective configuration and the problems found in it (`vtepd show configuration`).
public struct Configuration: ControlCommand {
    public static let command = "configuration"
    public static let reply = ControlResult.Kind.configuration
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show configuration" }
}

/// What vtepd finds wrong and leaves out: rows of the hardware_vtep database it ignores (a
/// controller's or vtep-ctl's), settings it cannot use, what it cannot do now (the
/// `problems` of `configuration`, one per line).
public struct ShowProblems: ControlCommand {
    public static let command = "problems"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show switch problems" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show, Word.switchWord,
                .keyword("problems", help: "What vtepd finds wrong and ignores"),
            ], summary: "Show what vtepd finds wrong in the database and settings, and ignores"
        ) { _ in Self() }
    ]
}

/// The names of things that exist now, for the shell's Tab and `?`: the host's interfaces,
/// the switch's ports, the logical switches, the remote VTEPs.
public struct ShowNames: ControlCommand {
    public enum Kind: String, Codable, Hashable, Sendable, CaseIterable {
        case interfaces, ports
        case logicalSwitches = "logical-switches"
        case vteps
        /// The MAC table's addresses (the first `maximumMACs` in order).
        case macs
    }
    public static let maximumMACs = 512
    public static let command = "names"
    public static let reply = ControlResult.Kind.lines
    public var kind: Kind
    public enum CodingKeys: String, CodingKey, CaseIterable { case kind }
    public init(_ kind: Kind) { self.kind = kind }
    public var shellLine: String { "names \(kind.rawValue)" }
}

/// A logical switch name as the shell allows it: letters, digits, `.`, `_`, `-`, 1–64
/// characters, not starting with `-` (it reaches vtep-ctl command lines and logs).
func checkLogicalSwitchName(_ text: String) throws(ControlFailure) {
    try checkName(text, maximumLength: 64, of: "logical switch")
}

/// A name of ours (`what`: "logical switch"): letters, digits, `.`, `_`, `-`, at most
/// `maximumLength`, not starting with `-`.
func checkName(_ text: String, maximumLength: Int, of what: String) throws(ControlFailure) {
    let allowed = text.utf8.allSatisfy {
        (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0)
            || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
    }
    guard !text.isEmpty, text.utf8.count <= maximumLength, allowed, !text.hasPrefix("-") else {
        throw ControlFailure(
            "\"\(text)\" is not a \(what) name (1–\(maximumLength) letters, digits, '.', '_'"
                + " or '-', not starting with '-')")
    }
}

/// RFC 7348 §5: 24 bits.
func checkVNI(_ vni: Int) throws(ControlFailure) {
    guard (0...16_777_215).contains(vni) else {
        throw ControlFailure("VNI \(vni) is out of range (0–16777215)")
    }
}

public struct AddLogicalSwitch: ControlCommand {
    public static let command = "add-logical-switch"
    public static let reply = ControlResult.Kind.accepted
    public var name: String
    public var vni: Int
    public enum CodingKeys: String, CodingKey, CaseIterable { case name, vni }
    public init(name: String, vni: Int) {
        self.name = name
        self.vni = vni
    }
    public var shellLine: String { "add logical-switch \(name) vni \(vni)" }
    public func validate() throws(ControlFailure) {
        try checkLogicalSwitchName(name)
        try checkVNI(vni)
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.add, Word.logicalSwitch, Slot.switchName, Word.vni, Slot.vni],
            summary: "Create logical switch NAME with VNI N (its tunnel key, 0–16777215)"
        ) { Self(name: $0.text("NAME"), vni: $0.integer("N")!) }
    ]
}

/// With a VNI, only a switch with that VNI is removed.
public struct RemoveLogicalSwitch: ControlCommand {
    public static let command = "remove-logical-switch"
    public static let reply = ControlResult.Kind.accepted
    public var name: String
    public var vni: Int?
    public enum CodingKeys: String, CodingKey, CaseIterable { case name, vni }
    public init(name: String, vni: Int? = nil) {
        self.name = name
        self.vni = vni
    }
    public var shellLine: String {
        "remove logical-switch \(name)" + (vni.map { " vni \($0)" } ?? "")
    }
    public func validate() throws(ControlFailure) {
        try checkLogicalSwitchName(name)
        if let vni { try checkVNI(vni) }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.remove, Word.logicalSwitch, Slot.switchName,
                .optional([
                    .keyword("vni", help: "Remove only if the switch has this VNI"), Slot.vni,
                ]),
            ], summary: "Delete a logical switch with its bindings and MACs (only if VNI is N)"
        ) { Self(name: $0.text("NAME"), vni: $0.integer("N")) }
    ]
}

/// How a logical switch floods broadcast, unknown-unicast and multicast frames. Wire: `mode`
/// `multicast` (`addresses`: the group), `head-end` (the VTEPs) or `service-node` (the node).
public enum ReplicationSetting: Hashable, Sendable {
    /// RFC 7348 §4.2: one copy to an IP multicast group.
    case multicast(IPAddress)
    /// A copy to each VTEP (hardware_vtep `source_node`).
    case headEnd([IPAddress])
    /// One copy to a replicating service node (hardware_vtep `service_node`).
    case serviceNode(IPAddress)

    public var mode: String {
        switch self {
        case .multicast: "multicast"
        case .headEnd: "head-end"
        case .serviceNode: "service-node"
        }
    }

    public var addresses: [IPAddress] {
        switch self {
        case .multicast(let group): [group]
        case .headEnd(let list): list
        case .serviceNode(let node): [node]
        }
    }

    /// The setting for `mode` and `addresses`, or why there is none. Head-end VTEPs and
    /// service nodes must have addresses a VTEP can have, as vtepd's forwarding requires.
    public init(mode: String, addresses: [IPAddress]) throws(ControlFailure) {
        var seen: Set<IPAddress> = []
        for address in addresses where !seen.insert(address).inserted {
            throw ControlFailure("\(address) is listed twice")
        }
        if mode == "head-end" || mode == "service-node" {
            for address in addresses {
                if let reason = address.notAHostAddress {
                    throw ControlFailure("\(address) cannot be a VTEP: \(reason)")
                }
            }
        }
        switch (mode, addresses.count) {
        case ("multicast", 1):
            guard addresses[0].isMulticast else {
                throw ControlFailure(
                    "\(addresses[0]) is not a multicast group (224.0.0.0/4 or ff00::/8)")
            }
            self = .multicast(addresses[0])
        case ("service-node", 1): self = .serviceNode(addresses[0])
        case ("head-end", 1...): self = .headEnd(addresses)
        case ("multicast", _), ("service-node", _), ("head-end", _):
            let takes = mode == "head-end" ? "one or more addresses" : "exactly one address"
            throw ControlFailure("mode \(mode) takes \(takes), got \(addresses.count)")
        default:
            throw ControlFailure("mode \"\(mode)\" must be multicast, head-end or service-node")
        }
    }
}

public struct SetReplication: ControlCommand {
    public static let command = "set-replication"
    public static let reply = ControlResult.Kind.accepted
    public var logicalSwitch: String
    public var replication: ReplicationSetting
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case logicalSwitch = "switch"
        case mode, addresses
    }
    public init(logicalSwitch: String, _ replication: ReplicationSetting) {
        self.logicalSwitch = logicalSwitch
        self.replication = replication
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        logicalSwitch = try container.decode(String.self, forKey: .logicalSwitch)
        let mode = try container.decode(String.self, forKey: .mode)
        let addresses = try container.decodeIfPresent([IPAddress].self, forKey: .addresses) ?? []
        do {
            replication = try ReplicationSetting(mode: mode, addresses: addresses)
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .mode, in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(logicalSwitch, forKey: .logicalSwitch)
        try container.encode(replication.mode, forKey: .mode)
        try container.encode(replication.addresses, forKey: .addresses)
    }

    public var shellLine: String {
        let addresses = replication.addresses.map(\.description).joined(separator: ",")
        return "set logical-switch \(logicalSwitch) replication \(replication.mode) \(addresses)"
    }
    public func validate() throws(ControlFailure) { try checkLogicalSwitchName(logicalSwitch) }

    public static let shell = [
        declaration(
            "multicast", help: "Flood to an IP multicast group",
            .argument("GROUP", .multicastGroup, help: "Multicast group address"),
            summary: "Flood NAME's BUM traffic to multicast GROUP"
        ) { .multicast($0.ip("GROUP")) },
        declaration(
            "head-end", help: "Send a copy to each remote VTEP in a list",
            .argument("IP,IP...", .ipAddressList, help: "Remote VTEP addresses, comma-separated"),
            summary: "Flood NAME's BUM traffic as a copy to each listed VTEP (head-end)"
        ) { .headEnd($0.ipList("IP,IP...")) },
        declaration(
            "service-node", help: "Send one copy to a replicating service node",
            .argument("IP", .ipAddress, help: "Service node address"),
            summary: "Flood NAME's BUM traffic through one replicating service node"
        ) { .serviceNode($0.ip("IP")) },
    ]

    private static func declaration(
        _ mode: String, help: String, _ argument: Syntax, summary: String,
        _ setting: @escaping @Sendable (Arguments) -> ReplicationSetting
    ) -> CommandDeclaration<Self> {
        CommandDeclaration<Self>(
            [
                Word.set, Word.logicalSwitch, Slot.switchName, Word.replication,
                .keyword(mode, help: help), argument,
            ], summary: summary
        ) { arguments throws(CommandRefusal) in
            let wanted = setting(arguments)
            do throws(ControlFailure) {
                // The same rules as the wire's (a head-end list naming a VTEP twice).
                return Self(
                    logicalSwitch: arguments.text("NAME"),
                    try ReplicationSetting(mode: wanted.mode, addresses: wanted.addresses))
            } catch {
                throw CommandRefusal(error.message)
            }
        }
    }
}

/// Stored in Logical_Switch `other_config:encapsulation`.
public struct SetEncapsulation: ControlCommand {
    public static let command = "set-encapsulation"
    public static let reply = ControlResult.Kind.accepted
    public var logicalSwitch: String
    public var encapsulation: Encapsulation
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case logicalSwitch = "switch"
        case encapsulation
    }
    public init(logicalSwitch: String, _ encapsulation: Encapsulation) {
        self.logicalSwitch = logicalSwitch
        self.encapsulation = encapsulation
    }
    public var shellLine: String {
        "set logical-switch \(logicalSwitch) encapsulation \(encapsulation)"
    }
    public func validate() throws(ControlFailure) { try checkLogicalSwitchName(logicalSwitch) }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.set, Word.logicalSwitch, Slot.switchName,
                .keyword("encapsulation", help: "The tunnel encapsulation to remote VTEPs"),
                .choice(
                    "ENCAPSULATION",
                    [
                        Choice("vxlan", "VXLAN, UDP port 4789 (RFC 7348)"),
                        Choice("gre", "GRE with the VNI in the key (RFC 2784, RFC 2890)"),
                        Choice("nvgre", "NVGRE (RFC 7637)"),
                    ]),
            ], summary: "Set NAME's tunnel encapsulation to remote VTEPs: VXLAN, GRE or NVGRE"
        ) { arguments in
            let word = arguments.keyword("ENCAPSULATION")
            return Self(
                logicalSwitch: arguments.text("NAME"),
                Encapsulation.allCases.first { $0.description == word }!)
        }
    ]
}

/// BUM storm control on a logical switch (`other_config:bum-rate-limit` and `bum-burst`):
/// broadcast, unknown-unicast and multicast frames beyond `framesPerSecond` (with `burst` at
/// once, default one second's worth), from ports and tunnels alike, are dropped and counted
/// (`bum_rate_limited`) before replication.
public struct SetBUMRateLimit: ControlCommand {
    public static let command = "set-bum-rate-limit"
    public static let reply = ControlResult.Kind.accepted
    public static let maximum = 100_000_000
    public var logicalSwitch: String
    public var framesPerSecond: Int
    public var burst: Int?
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case logicalSwitch = "switch"
        case framesPerSecond, burst
    }
    public init(logicalSwitch: String, framesPerSecond: Int, burst: Int? = nil) {
        self.logicalSwitch = logicalSwitch
        self.framesPerSecond = framesPerSecond
        self.burst = burst
    }
    public var shellLine: String {
        "set logical-switch \(logicalSwitch) storm-control \(framesPerSecond)"
            + (burst.map { " burst \($0)" } ?? "")
    }
    public func validate() throws(ControlFailure) {
        try checkLogicalSwitchName(logicalSwitch)
        for (what, value) in [("frames per second", framesPerSecond), ("burst", burst ?? 1)]
        where !(1...Self.maximum).contains(value) {
            throw ControlFailure("\(what) \(value) is out of range (1–\(Self.maximum))")
        }
    }
    private static let rate = IntegerRange("frames per second", 1...maximum)
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.set, Word.logicalSwitch, Slot.switchName,
                .keyword(
                    "storm-control", help: "Limit broadcast, unknown and multicast frames a second"),
                .argument("RATE", .integer(rate), help: "Frames per second"),
                .optional([
                    .keyword("burst", help: "Frames at once (default: one second's worth)"),
                    .argument(
                        "BURST", .integer(IntegerRange("burst", 1...maximum)), help: "Frames"),
                ]),
            ], summary: "Drop NAME's broadcast, unknown and multicast frames beyond RATE/s"
        ) { arguments in
            Self(
                logicalSwitch: arguments.text("NAME"),
                framesPerSecond: arguments.integer("RATE") ?? 1, burst: arguments.integer("BURST"))
        }
    ]
}

/// No storm control on a logical switch.
public struct ClearBUMRateLimit: ControlCommand {
    public static let command = "clear-bum-rate-limit"
    public static let reply = ControlResult.Kind.accepted
    public var logicalSwitch: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case logicalSwitch = "switch" }
    public init(logicalSwitch: String) { self.logicalSwitch = logicalSwitch }
    public var shellLine: String { "clear logical-switch \(logicalSwitch) storm-control" }
    public func validate() throws(ControlFailure) { try checkLogicalSwitchName(logicalSwitch) }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.clear, Word.logicalSwitch, Slot.switchName,
                .keyword("storm-control", help: "No limit on broadcast, unknown, multicast"),
            ], summary: "Remove NAME's broadcast, unknown and multicast rate limit"
        ) { arguments in Self(logicalSwitch: arguments.text("NAME")) }
    ]
}

/// ARP and ND suppression on a logical switch (`other_config:arp-suppression=true`): ARP
/// requests and neighbour solicitations from access ports for an address whose MAC is known
/// behind a tunnel are answered by vtepd instead of flooded.
public struct SetARPSuppression: ControlCommand {
    public static let command = "set-arp-suppression"
    public static let reply = ControlResult.Kind.accepted
    public var logicalSwitch: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case logicalSwitch = "switch" }
    public init(logicalSwitch: String) { self.logicalSwitch = logicalSwitch }
    public var shellLine: String { "set logical-switch \(logicalSwitch) arp-suppression" }
    public func validate() throws(ControlFailure) { try checkLogicalSwitchName(logicalSwitch) }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.set, Word.logicalSwitch, Slot.switchName,
                .keyword("arp-suppression", help: "Answer ARP and neighbour solicitations locally"),
            ], summary: "Answer NAME's ARP and ND requests for known remote hosts"
        ) { arguments in Self(logicalSwitch: arguments.text("NAME")) }
    ]
}

/// ARP and ND requests of a logical switch flooded again, as without suppression.
public struct ClearARPSuppression: ControlCommand {
    public static let command = "clear-arp-suppression"
    public static let reply = ControlResult.Kind.accepted
    public var logicalSwitch: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case logicalSwitch = "switch" }
    public init(logicalSwitch: String) { self.logicalSwitch = logicalSwitch }
    public var shellLine: String { "clear logical-switch \(logicalSwitch) arp-suppression" }
    public func validate() throws(ControlFailure) { try checkLogicalSwitchName(logicalSwitch) }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.clear, Word.logicalSwitch, Slot.switchName,
                .keyword("arp-suppression", help: "Flood ARP and neighbour solicitations again"),
            ], summary: "Flood NAME's ARP and ND requests again (no suppression)"
        ) { arguments in Self(logicalSwitch: arguments.text("NAME")) }
    ]
}

/// A port's VLAN bound to a logical switch (Physical_Port `vlan_bindings`).
public struct SwitchBinding: Hashable, Sendable, Codable {
    public var port: InterfaceName
    /// 0 = untagged.
    public var vlan: Int
    public var logicalSwitch: String
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case port, vlan
        case logicalSwitch = "switch"
    }

    public init(port: InterfaceName, vlan: Int, logicalSwitch: String) {
        self.port = port
        self.vlan = vlan
        self.logicalSwitch = logicalSwitch
    }

    func validate() throws(ControlFailure) {
        // IEEE 802.1Q: 12 bits, 4095 reserved; 0 is untagged.
        guard (0...4094).contains(vlan) else {
            throw ControlFailure("VLAN \(vlan) is out of range (0–4094)")
        }
        try checkLogicalSwitchName(logicalSwitch)
    }

    func line(_ verb: String) -> String {
        "\(verb) switch port \(port) vlan \(vlan) logical-switch \(logicalSwitch)"
    }

    static func syntax(_ verb: Syntax) -> [Syntax] {
        [
            verb, Word.switchWord, Word.port, Slot.port, Word.vlan, Slot.vlan,
            Word.logicalSwitch, Slot.switchName,
        ]
    }

    static func parsed(_ arguments: Arguments) throws(CommandRefusal) -> Self {
        Self(
            port: try interfaceName(arguments, "PORT"), vlan: arguments.integer("N")!,
            logicalSwitch: arguments.text("NAME"))
    }
}

/// A command whose arguments are one value (a binding, a remote MAC): its wire form is
/// that value's.
public protocol SingleValueCommand: ControlCommand {
    associatedtype Value: Codable & Hashable & Sendable
    var value: Value { get }
    init(_ value: Value)
}

extension SingleValueCommand {
    public init(from decoder: any Decoder) throws { self.init(try Value(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

public struct BindPort: SingleValueCommand {
    public static let command = "bind-port"
    public static let reply = ControlResult.Kind.accepted
    public typealias CodingKeys = SwitchBinding.CodingKeys
    public var value: SwitchBinding
    public init(_ value: SwitchBinding) { self.value = value }
    public var shellLine: String { value.line("bind") }
    public func validate() throws(ControlFailure) { try value.validate() }
    public static let shell = [
        CommandDeclaration<Self>(
            SwitchBinding.syntax(Word.bind),
            summary: "Bind VLAN N of PORT (0 = untagged) to a logical switch"
        ) { arguments throws(CommandRefusal) in Self(try SwitchBinding.parsed(arguments)) }
    ]
}

public struct UnbindPort: SingleValueCommand {
    public static let command = "unbind-port"
    public static let reply = ControlResult.Kind.accepted
    public typealias CodingKeys = SwitchBinding.CodingKeys
    public var value: SwitchBinding
    public init(_ value: SwitchBinding) { self.value = value }
    public var shellLine: String { value.line("unbind") }
    public func validate() throws(ControlFailure) { try value.validate() }
    public static let shell = [
        CommandDeclaration<Self>(
            SwitchBinding.syntax(Word.unbind),
            summary: "Remove the binding of VLAN N of PORT to a logical switch"
        ) { arguments throws(CommandRefusal) in Self(try SwitchBinding.parsed(arguments)) }
    ]
}

/// A static MAC behind a remote VTEP (Ucast_Macs_Remote), with the IP address of the host that
/// has it when known (`ipaddr`: what ARP and ND suppression answer with).
public struct RemoteMAC: Hashable, Sendable, Codable {
    public var logicalSwitch: String
    public var mac: MACAddress
    public var vtep: IPAddress
    /// The host's IP address (Ucast_Macs_Remote `ipaddr`); nil: not known.
    public var ip: IPAddress?
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case logicalSwitch = "switch"
        case mac, vtep, ip
    }

    public init(logicalSwitch: String, mac: MACAddress, vtep: IPAddress, ip: IPAddress? = nil) {
        self.logicalSwitch = logicalSwitch
        self.mac = mac
        self.vtep = vtep
        self.ip = ip
    }

    /// What vtepd's forwarding takes as a remote MAC: a unicast MAC behind an address a VTEP
    /// can have, and a host address (if given) a neighbour could ask for.
    func validate() throws(ControlFailure) {
        try checkLogicalSwitchName(logicalSwitch)
        guard !mac.isMulticast, !mac.isZero else {
            throw ControlFailure(
                "\(mac) is not a unicast MAC address (broadcast and multicast MACs are flooded"
                    + " by the switch's replication; 00:00:00:00:00:00 is no address)")
        }
        if let reason = vtep.notAHostAddress {
            throw ControlFailure("\(vtep) cannot be a VTEP: \(reason)")
        }
        if let ip, let reason = ip.notAHostAddress {
            throw ControlFailure("\(ip) cannot be the host's address: \(reason)")
        }
    }

    func line(_ verb: String) -> String {
        "\(verb) switch remote-mac \(logicalSwitch) \(mac) \(vtep)" + (ip.map { " ip \($0)" } ?? "")
    }

    static func syntax(_ verb: Syntax) -> [Syntax] {
        [
            verb, Word.switchWord, Word.remoteMAC, Slot.remoteMACSwitch, Slot.remoteMACAddress,
            Slot.remoteVTEP,
        ]
    }

    static func parsed(_ arguments: Arguments) -> Self {
        Self(
            logicalSwitch: arguments.text("LOGICAL-SWITCH"), mac: arguments.mac("MAC")!,
            vtep: arguments.ip("VTEP-IP"),
            ip: arguments.has("HOST-IP") ? arguments.ip("HOST-IP") : nil)
    }
}

public struct AddRemoteMAC: SingleValueCommand {
    public static let command = "add-remote-mac"
    public static let reply = ControlResult.Kind.accepted
    public typealias CodingKeys = RemoteMAC.CodingKeys
    public var value: RemoteMAC
    public init(_ value: RemoteMAC) { self.value = value }
    public var shellLine: String { value.line("add") }
    public func validate() throws(ControlFailure) { try value.validate() }
    public static let shell = [
        CommandDeclaration<Self>(
            RemoteMAC.syntax(Word.add) + [
                .optional([
                    .keyword("ip", help: "The host's IP address, for ARP/ND suppression"),
                    .argument("HOST-IP", .ipAddress, help: "IP address of the host with MAC"),
                ])
            ],
            summary: "Add a static MAC on LOGICAL-SWITCH behind the remote VTEP at VTEP-IP"
        ) { Self(RemoteMAC.parsed($0)) }
    ]
}

public struct RemoveRemoteMAC: SingleValueCommand {
    public static let command = "remove-remote-mac"
    public static let reply = ControlResult.Kind.accepted
    /// The arguments: RemoteMAC's, but the host's address, which names nothing here.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case logicalSwitch = "switch"
        case mac, vtep
    }
    public var value: RemoteMAC
    public init(_ value: RemoteMAC) { self.value = value }
    public var shellLine: String { value.line("remove") }
    public func validate() throws(ControlFailure) {
        try checkLogicalSwitchName(value.logicalSwitch)
    }
    public static let shell = [
        CommandDeclaration<Self>(
            RemoteMAC.syntax(Word.remove), summary: "Remove a static remote MAC from LOGICAL-SWITCH"
        ) { Self(RemoteMAC.parsed($0)) }
    ]
}

public struct ShowLogicalSwitches: ControlCommand {
    public static let command = "logical-switches"
    public static let reply = ControlResult.Kind.logicalSwitches
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show switch logical-switches" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show, Word.switchWord,
                .keyword(
                    "logical-switches", help: "Logical switches with their VNI and replication"),
            ], summary: "List logical switches: VNI, replication, encapsulation, bindings"
        ) { _ in Self() }
    ]
}

public struct ShowTunnels: ControlCommand {
    public static let command = "tunnels"
    public static let reply = ControlResult.Kind.tunnels
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show switch tunnels" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show, Word.switchWord,
                .keyword("tunnels", help: "Remote VTEPs and their tunnels"),
            ], summary: "Show remote VTEPs, the switches that reach them, frames sent/received"
        ) { _ in Self() }
    ]
}

/// Everything support asks for, in one text to attach to a ticket: versions, the running
/// configuration, the switch, its logical switches, tunnels and counters, a summary of the
/// MAC table, the problems, interfaces and routes, the last audit entries and log lines. No
/// secret is in any of them (no password or hash, no private key).
public struct ShowTechSupport: ControlCommand {
    public static let command = "tech-support"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show tech-support" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, .keyword("tech-support", help: "Everything support asks for, at once")],
            summary: "Show versions, configuration, state, counters and recent logs at once"
        ) { _ in Self() }
    ]
}
