/// One row of `mac-table`. Wire fields: `switch` (logical switch name), `vni`, `mac`
/// (`aa:bb:cc:dd:ee:ff`), `type` (`"local"` behind an access port, `"remote"` behind a VTEP),
/// `static` (installed by the controller or operator, never aged or moved), and where it is:
/// `port` and `vlan` (absent when untagged) for a local entry, `vtep` (underlay IP) for a
/// remote one; `age` (seconds since the MAC was last seen, absent for static entries).
public struct MACTableRow: Hashable, Sendable, Codable {
    public enum EntryType: String, Hashable, Sendable, Codable {
        case local
        case remote
    }

    public var logicalSwitch: String
    public var vni: UInt32
    public var mac: String
    public var type: EntryType
    public var isStatic: Bool
    public var port: String?
    public var vlan: UInt16?
    public var vtep: String?
    public var age: UInt32?

    public init(
        logicalSwitch: String, vni: UInt32, mac: String, type: EntryType, isStatic: Bool,
        port: String? = nil, vlan: UInt16? = nil, vtep: String? = nil, age: UInt32? = nil
    ) {
        self.logicalSwitch = logicalSwitch
        self.vni = vni
        self.mac = mac
        self.type = type
        self.isStatic = isStatic
        self.port = port
        self.vlan = vlan
        self.vtep = vtep
        self.age = age
    }

    enum CodingKeys: String, CodingKey {
        case logicalSwitch = "switch"
        case vni, mac, type
        case isStatic = "static"
        case port, vlan, vtep, age
    }
}

/// The result of `counters`. Wire fields: `switches`, `ports`, `vteps`, `drops`, `malformed`;
/// all counts are frames since vtepd started.
public struct CountersReport: Hashable, Sendable, Codable {
    /// Per logical switch. Wire fields: `name`, `vni`, `fromAccess`, `fromTunnel`, `toAccess`,
    /// `encapsulated`, `flooded`, `drops`, `learned`, `moves`, `learningRefused`.
    public struct LogicalSwitch: Hashable, Sendable, Codable {
        public var name: String
        public var vni: UInt32
        public var fromAccess: UInt64
        public var fromTunnel: UInt64
        public var toAccess: UInt64
        public var encapsulated: UInt64
        public var flooded: UInt64
        public var drops: UInt64
        /// New MAC entries learned.
        public var learned: UInt64
        /// Learned MACs that moved to another port, VLAN or VTEP.
        public var moves: UInt64
        /// Source MACs not learned because a MAC limit was reached.
        public var learningRefused: UInt64
        /// Bytes of the frames counted in `fromAccess` and `fromTunnel` (a super-frame's own
        /// length); absent from older servers.
        public var bytesIn: UInt64?
        public var rateIn: TrafficRate?
        /// ARP and ND suppression: requests from access ports answered, and those flooded
        /// because the address was unknown; present only while the switch suppresses.
        public var neighbourAnswered: UInt64?
        public var neighbourFlooded: UInt64?

        public init(
            name: String, vni: UInt32, fromAccess: UInt64 = 0, fromTunnel: UInt64 = 0,
            toAccess: UInt64 = 0, encapsulated: UInt64 = 0, flooded: UInt64 = 0,
            drops: UInt64 = 0, learned: UInt64 = 0, moves: UInt64 = 0, learningRefused: UInt64 = 0
        ) {
            self.name = name
            self.vni = vni
            self.fromAccess = fromAccess
            self.fromTunnel = fromTunnel
            self.toAccess = toAccess
            self.encapsulated = encapsulated
            self.flooded = flooded
            self.drops = drops
            self.learned = learned
            self.moves = moves
            self.learningRefused = learningRefused
        }
    }

    /// Per access port. Wire fields: `name`, `rxFrames`, `txFrames`, `drops`.
    public struct Port: Hashable, Sendable, Codable {
        public var name: String
        public var rxFrames: UInt64
        public var txFrames: UInt64
        public var drops: UInt64
        public var rxBytes: UInt64?
        public var txBytes: UInt64?
        public var rxRate: TrafficRate?
        public var txRate: TrafficRate?

        public init(name: String, rxFrames: UInt64 = 0, txFrames: UInt64 = 0, drops: UInt64 = 0) {
            self.name = name
            self.rxFrames = rxFrames
            self.txFrames = txFrames
            self.drops = drops
        }
    }

    /// Per remote VTEP. Wire fields: `ip`, `encapsulation` (`vxlan`, `gre`, `nvgre`),
    /// `txFrames`, `rxFrames`, `resolved` (its next hop is known, so frames to it leave
    /// through prebuilt headers rather than the kernel's IP output; absent from older
    /// servers).
    public struct VTEP: Hashable, Sendable, Codable {
        public var ip: String
        public var encapsulation: String
        public var txFrames: UInt64
        public var rxFrames: UInt64
        public var resolved: Bool?
        /// Bytes of the inner frames sent and received.
        public var txBytes: UInt64?
        public var rxBytes: UInt64?
        public var txRate: TrafficRate?
        public var rxRate: TrafficRate?

        public init(
            ip: String, encapsulation: String, txFrames: UInt64 = 0, rxFrames: UInt64 = 0,
            resolved: Bool? = nil
        ) {
            self.ip = ip
            self.encapsulation = encapsulation
            self.txFrames = txFrames
            self.rxFrames = rxFrames
            self.resolved = resolved
        }
    }

    /// A drop or malformed-frame reason and its count. Wire fields: `reason` (the counter
    /// name, e.g. `unknown_vni`, `vxlan_i_flag_clear`), `count`.
    public struct ReasonCount: Hashable, Sendable, Codable {
        public var reason: String
        public var count: UInt64

        public init(reason: String, count: UInt64) {
            self.reason = reason
            self.count = count
        }
    }

    public var switches: [LogicalSwitch]
    public var ports: [Port]
    public var vteps: [VTEP]
    public var drops: [ReasonCount]
    /// Frames dropped as malformed, by reason; their sum is the `malformed` drop reason's count.
    public var malformed: [ReasonCount]
    /// What the data plane did for offloads, by counter name (`super_frames_in`,
    /// `segments_out`, `trains_out`, `trains_coalesced`, `tunnel_gso_out`,
    /// `tunnel_gso_refused`, `trains_in`, `coalesced_frames_out`, `coalesced_segments`,
    /// `checksums_completed`).
    /// Absent on the wire from servers older than it: read as empty.
    public var offloads: [ReasonCount]

    public init(
        switches: [LogicalSwitch] = [], ports: [Port] = [], vteps: [VTEP] = [],
        drops: [ReasonCount] = [], malformed: [ReasonCount] = [], offloads: [ReasonCount] = []
    ) {
        self.switches = switches
        self.ports = ports
        self.vteps = vteps
        self.drops = drops
        self.malformed = malformed
        self.offloads = offloads
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switches = try c.decode([LogicalSwitch].self, forKey: .switches)
        ports = try c.decode([Port].self, forKey: .ports)
        vteps = try c.decode([VTEP].self, forKey: .vteps)
        drops = try c.decode([ReasonCount].self, forKey: .drops)
        malformed = try c.decode([ReasonCount].self, forKey: .malformed)
        offloads = try c.decodeIfPresent([ReasonCount].self, forKey: .offloads) ?? []
    }
}

/// The result of `configuration`: what vtepd is forwarding with now. Wire fields:
/// `physicalSwitch` (hardware_vtep Physical_Switch name), `tunnelIPs`, `underlay` (interface,
/// absent if not chosen), `ports` (access port names), `switches`, `bindings`, `problems`
/// (why a part of the database could not be applied, in words an operator can act on).
public struct ConfigurationReport: Hashable, Sendable, Codable {
    /// A VTEP address and the encapsulation spoken to it. Wire fields: `ip`, `encapsulation`.
    public struct Locator: Hashable, Sendable, Codable {
        public var ip: String
        public var encapsulation: String

        public init(ip: String, encapsulation: String = "vxlan") {
            self.ip = ip
            self.encapsulation = encapsulation
        }
    }

    /// How a switch replicates broadcast, unknown-unicast and multicast frames. Wire fields:
    /// `mode` (`multicast`, `head-end`, `service-node`), `locators` (the group, the VTEPs or
    /// the service node).
    public struct Replication: Hashable, Sendable, Codable {
        public enum Mode: String, Hashable, Sendable, Codable {
            case multicast
            case headEnd = "head-end"
            case serviceNode = "service-node"
        }

        public var mode: Mode
        public var locators: [Locator]

        public init(mode: Mode, locators: [Locator]) {
            self.mode = mode
            self.locators = locators
        }
    }

    /// Wire fields: `name`, `vni`, `replication`, `macAgeing` (seconds, 0 = never),
    /// `macLimit` (absent = only the gateway's total limit), `allowedSources` (underlay
    /// prefixes; absent = any the replication mode accepts).
    public struct LogicalSwitch: Hashable, Sendable, Codable {
        public var name: String
        public var vni: UInt32
        public var replication: Replication
        public var macAgeing: UInt32
        public var macLimit: Int?
        public var allowedSources: [String]?

        public init(
            name: String, vni: UInt32, replication: Replication, macAgeing: UInt32,
            macLimit: Int? = nil, allowedSources: [String]? = nil
        ) {
            self.name = name
            self.vni = vni
            self.replication = replication
            self.macAgeing = macAgeing
            self.macLimit = macLimit
            self.allowedSources = allowedSources
        }
    }

    /// A Physical_Port `vlan_bindings` entry. Wire fields: `port`, `vlan` (absent = untagged),
    /// `switch`.
    public struct Binding: Hashable, Sendable, Codable {
        public var port: String
        public var vlan: UInt16?
        public var logicalSwitch: String

        public init(port: String, vlan: UInt16?, logicalSwitch: String) {
            self.port = port
            self.vlan = vlan
            self.logicalSwitch = logicalSwitch
        }

        enum CodingKeys: String, CodingKey {
            case port, vlan
            case logicalSwitch = "switch"
        }
    }

    public var physicalSwitch: String
    public var tunnelIPs: [String]
    public var underlay: String?
    /// The UDP port VXLAN is received on and sent to.
    public var vxlanPort: Int?
    /// The hardware_vtep database: `connected to unix:…`, `connecting to …`, `unreachable
    /// since …`.
    public var database: String?
    public var ports: [String]
    public var switches: [LogicalSwitch]
    public var bindings: [Binding]
    public var problems: [String]

    public init(
        physicalSwitch: String, tunnelIPs: [String] = [], underlay: String? = nil,
        vxlanPort: Int? = nil, database: String? = nil,
        ports: [String] = [], switches: [LogicalSwitch] = [], bindings: [Binding] = [],
        problems: [String] = []
    ) {
        self.physicalSwitch = physicalSwitch
        self.tunnelIPs = tunnelIPs
        self.underlay = underlay
        self.vxlanPort = vxlanPort
        self.database = database
        self.ports = ports
        self.switches = switches
        self.bindings = bindings
        self.problems = problems
    }
}

/// Traffic per second over the last 5 seconds and the last minute, as routers' CLIs show it
/// ("5 second input rate"): vtepd samples its counters once a second; over less history than
/// a window, the rate covers what there is. Wire fields: `framesPerSecond5s`,
/// `bitsPerSecond5s`, `framesPerSecond1m`, `bitsPerSecond1m`.
public struct TrafficRate: Hashable, Sendable, Codable {
    public var framesPerSecond5s: Double
    public var bitsPerSecond5s: Double
    public var framesPerSecond1m: Double
    public var bitsPerSecond1m: Double

    public init(
        framesPerSecond5s: Double, bitsPerSecond5s: Double, framesPerSecond1m: Double,
        bitsPerSecond1m: Double
    ) {
        self.framesPerSecond5s = framesPerSecond5s
        self.bitsPerSecond5s = bitsPerSecond5s
        self.framesPerSecond1m = framesPerSecond1m
        self.bitsPerSecond1m = bitsPerSecond1m
    }

    /// `12 frames/s 96.0 kbit/s (5 s), 10 frames/s 80.0 kbit/s (1 min)`.
    public var text: String {
        "\(Self.frames(framesPerSecond5s)) \(Self.bits(bitsPerSecond5s)) (5 s), "
            + "\(Self.frames(framesPerSecond1m)) \(Self.bits(bitsPerSecond1m)) (1 min)"
    }

    static func frames(_ value: Double) -> String { "\(Int(value.rounded())) frames/s" }

    static func bits(_ value: Double) -> String {
        for (limit, unit) in [(1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")]
        where value >= limit {
            return String(Int((value / limit * 10).rounded())).inserting(".", beforeLast: 1) + " "
                + unit
        }
        return "\(Int(value.rounded())) bit/s"
    }
}

extension String {
    /// `"123".inserting(".", beforeLast: 1)` is `"12.3"`.
    fileprivate func inserting(_ mark: Character, beforeLast count: Int) -> String {
        var text = self
        while text.count <= count { text = "0" + text }
        text.insert(mark, at: text.index(text.endIndex, offsetBy: -count))
        return text
    }
}

/// One interface, for `interfaces`. Wire fields: `name`, `adminState` (`up`/`down`, the
/// administrator's choice), `operationalState` (RFC 2863, as `ip link` prints it), `mtu`,
/// `mac` (absent without one), `addresses` (`ADDRESS/LENGTH`), `configured` (the appliance
/// setting: `static 192.0.2.10/24`, `dhcp`; absent when not set), and the kernel's counters
/// `rxPackets`, `rxBytes`, `rxErrors`, `rxDropped`, `txPackets`, `txBytes`, `txErrors`,
/// `txDropped`.
public struct InterfaceReport: Hashable, Sendable, Codable {
    public var name: String
    public var adminState: String
    public var operationalState: String
    public var mtu: Int
    public var mac: String?
    public var addresses: [String]
    public var configured: String?
    public var rxPackets: UInt64
    public var rxBytes: UInt64
    public var rxErrors: UInt64
    public var rxDropped: UInt64
    public var txPackets: UInt64
    public var txBytes: UInt64
    public var txErrors: UInt64
    public var txDropped: UInt64
    /// Absent until vtepd has sampled the interface twice.
    public var rxRate: TrafficRate?
    public var txRate: TrafficRate?

    public init(
        name: String, adminState: String, operationalState: String, mtu: Int, mac: String?,
        addresses: [String], configured: String? = nil, rxPackets: UInt64 = 0,
        rxBytes: UInt64 = 0, rxErrors: UInt64 = 0, rxDropped: UInt64 = 0, txPackets: UInt64 = 0,
        txBytes: UInt64 = 0, txErrors: UInt64 = 0, txDropped: UInt64 = 0
    ) {
        self.name = name
        self.adminState = adminState
        self.operationalState = operationalState
        self.mtu = mtu
        self.mac = mac
        self.addresses = addresses
        self.configured = configured
        self.rxPackets = rxPackets
        self.rxBytes = rxBytes
        self.rxErrors = rxErrors
        self.rxDropped = rxDropped
        self.txPackets = txPackets
        self.txBytes = txBytes
        self.txErrors = txErrors
        self.txDropped = txDropped
    }
}

/// One route of the main table, for `routes`. Wire fields: `destination` (`default` or a
/// prefix), `gateway` (absent for on-link routes), `interface`, `origin` (`kernel`,
/// `static`, `boot`, `dhcp`…), `configured` (true for the appliance's own static routes).
public struct RouteReport: Hashable, Sendable, Codable {
    public var destination: String
    public var gateway: String?
    public var interface: String?
    public var origin: String
    public var configured: Bool

    public init(
        destination: String, gateway: String? = nil, interface: String? = nil,
        origin: String, configured: Bool
    ) {
        self.destination = destination
        self.gateway = gateway
        self.interface = interface
        self.origin = origin
        self.configured = configured
    }
}

/// One hardware_vtep Logical_Switch, for `logical-switches`. Wire fields: `name`, `vni`
/// (absent without a tunnel_key), `replication` (`multicast`, `head-end`, `service-node`),
/// `locators` (the group, the VTEPs or the node), `encapsulation` (`other_config:
/// encapsulation`, `vxlan` when unset), `bindings` (`PORT vlan N` of our physical switch),
/// `remoteMACs` (how many static remote MACs).
public struct LogicalSwitchReport: Hashable, Sendable, Codable {
    public var name: String
    public var vni: Int?
    public var replication: String
    public var locators: [String]
    public var encapsulation: String
    public var bindings: [String]
    public var remoteMACs: Int

    public init(
        name: String, vni: Int?, replication: String, locators: [String],
        encapsulation: String, bindings: [String], remoteMACs: Int
    ) {
        self.name = name
        self.vni = vni
        self.replication = replication
        self.locators = locators
        self.encapsulation = encapsulation
        self.bindings = bindings
        self.remoteMACs = remoteMACs
    }
}

/// One remote VTEP, for `tunnels`. Wire fields: `ip`, `encapsulation`, `switches` (the
/// logical switches that reach it: remote MACs, replication), `txFrames`, `rxFrames` (since
/// vtepd started), and `bfd` while a BFD session runs toward it.
public struct TunnelReport: Hashable, Sendable, Codable {
    public var ip: String
    public var encapsulation: String
    public var switches: [String]
    public var txFrames: UInt64
    public var rxFrames: UInt64
    public var txRate: TrafficRate?
    public var rxRate: TrafficRate?
    public var bfd: BFD?

    /// The BFD session with the VTEP, as its Tunnel row's `bfd_status` shows it.
    public struct BFD: Hashable, Sendable, Codable {
        public var state: String
        public var remoteState: String
        public var forwarding: Bool
        public var diagnostic: String
        public var flaps: UInt64

        public init(
            state: String, remoteState: String, forwarding: Bool, diagnostic: String,
            flaps: UInt64
        ) {
            self.state = state
            self.remoteState = remoteState
            self.forwarding = forwarding
            self.diagnostic = diagnostic
            self.flaps = flaps
        }

        /// `up`, or `down (Control Detection Time Expired)`; `, not forwarding` when up
        /// without forwarding.
        var text: String {
            var text = state
            if diagnostic != "No Diagnostic" { text += " (\(diagnostic))" }
            if state == "up" && !forwarding { text += ", not forwarding" }
            return text
        }
    }

    public init(
        ip: String, encapsulation: String, switches: [String], txFrames: UInt64 = 0,
        rxFrames: UInt64 = 0
    ) {
        self.ip = ip
        self.encapsulation = encapsulation
        self.switches = switches
        self.txFrames = txFrames
        self.rxFrames = rxFrames
    }
}

extension TextReport {
    /// The shell's results as text; `render(_:)` sends them here.
    static func renderShellResult(_ result: ControlResult) -> String {
        switch result {
        case .macTable(let rows): return macTable(rows)
        case .counters(let report): return counters(report)
        case .configuration(let report): return configuration(report)
        case .accepted: return ""
        case .lines(let lines): return lines.map { $0 + "\n" }.joined()
        case .interfaces(let rows): return interfaces(rows)
        case .routes(let rows): return routes(rows)
        case .logicalSwitches(let rows): return logicalSwitches(rows)
        case .tunnels(let rows): return tunnels(rows)
        }
    }

    /// One table row per interface; with one interface, its details and counters.
    public static func interfaces(_ rows: [InterfaceReport]) -> String {
        if rows.count == 1, let only = rows.first {
            let details: [(String, String)] = [
                ("Interface", only.name),
                ("Admin state", only.adminState),
                ("Link state", only.operationalState),
                ("MTU", String(only.mtu)),
                ("MAC", only.mac ?? "-"),
                (
                    "Addresses",
                    only.addresses.isEmpty ? "none" : only.addresses.joined(separator: ", ")
                ),
                ("Configured", only.configured ?? "not set"),
                (
                    "RX packets",
                    "\(only.rxPackets)  bytes \(only.rxBytes)  errors \(only.rxErrors)  dropped \(only.rxDropped)"
                ),
                (
                    "TX packets",
                    "\(only.txPackets)  bytes \(only.txBytes)  errors \(only.txErrors)  dropped \(only.txDropped)"
                ),
                ("Input rate", only.rxRate?.text ?? "not sampled yet"),
                ("Output rate", only.txRate?.text ?? "not sampled yet"),
            ]
            let width = details.map(\.0.count).max() ?? 0
            return details.map { label, value in
                label + ":" + String(repeating: " ", count: width - label.count + 1) + value + "\n"
            }.joined()
        }
        var table = TextTable(columns: [
            .init("INTERFACE"), .init("ADMIN"), .init("LINK"), .init("MTU", .right), .init("MAC"),
            .init("ADDRESSES"),
        ])
        for row in rows {
            table.append([
                row.name, row.adminState, row.operationalState, String(row.mtu), row.mac ?? "-",
                row.addresses.joined(separator: " "),
            ])
        }
        return table.rendered()
    }

    public static func routes(_ rows: [RouteReport]) -> String {
        var table = TextTable(columns: [
            .init("DESTINATION"), .init("GATEWAY"), .init("INTERFACE"), .init("ORIGIN"),
            .init("CONFIGURED"),
        ])
        for row in rows {
            table.append([
                row.destination, row.gateway ?? "-", row.interface ?? "-", row.origin,
                row.configured ? "yes" : "no",
            ])
        }
        return table.rendered()
    }

    public static func logicalSwitches(_ rows: [LogicalSwitchReport]) -> String {
        var table = TextTable(columns: [
            .init("SWITCH"), .init("VNI", .right), .init("REPLICATION"), .init("ENCAPSULATION"),
            .init("BINDINGS"), .init("REMOTE MACS", .right),
        ])
        for row in rows {
            table.append([
                row.name, row.vni.map(String.init) ?? "-",
                ([row.replication] + row.locators).joined(separator: " "), row.encapsulation,
                row.bindings.isEmpty ? "-" : row.bindings.joined(separator: ", "),
                String(row.remoteMACs),
            ])
        }
        return table.rendered()
    }

    public static func tunnels(_ rows: [TunnelReport]) -> String {
        var table = TextTable(columns: [
            .init("VTEP"), .init("ENCAPSULATION"), .init("SWITCHES"), .init("TX FRAMES", .right),
            .init("RX FRAMES", .right), .init("BFD"),
        ])
        var rates = ""
        for row in rows {
            table.append([
                row.ip, row.encapsulation, row.switches.joined(separator: ", "),
                String(row.txFrames), String(row.rxFrames), row.bfd?.text ?? "-",
            ])
            if let rate = row.txRate { rates += "\(row.ip) tx: \(rate.text)\n" }
            if let rate = row.rxRate { rates += "\(row.ip) rx: \(rate.text)\n" }
        }
        return table.rendered() + (rates.isEmpty ? "" : "\nRates\n" + rates)
    }
}
