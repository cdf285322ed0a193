import Appliance
import Packet

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// vtepd's control protocol: newline-delimited JSON over a `SOCK_STREAM` Unix socket.
///
/// Each line a client sends is one request, a JSON object:
///
///     {"id": 7, "command": "mac-table", "arguments": {"switch": "web"}}
///
/// - `id`: an integer chosen by the client, echoed in the response.
/// - `command`: one of `ControlCommand.names` (`mac-table`, `counters`, `configuration`).
/// - `arguments`: an object, optional when the command takes none. Unknown argument names are
///   refused (a misspelt filter must not silently show everything); unknown top-level fields
///   are ignored, so newer clients can add some.
///
/// Each request gets exactly one response line, in request order (requests may be pipelined):
///
///     {"id":7,"ok":true,"result":...}
///     {"id":7,"ok":false,"error":"unknown command \"mac\"; commands: mac-table, ..."}
///
/// `id` is `null` when the request's id could not be read. A line that is not UTF-8 or not
/// JSON, or that is longer than the server's limit (1 MiB by default), is answered with an error
/// and the connection is closed: the stream can no longer be trusted to be in step. A
/// well-formed request that is refused (unknown command, wrong argument type) leaves the
/// connection open. Results, by command:
///
/// - `mac-table` (arguments `switch`, `mac`, both optional strings): `[MACTableRow]`.
/// - `counters`: `CountersReport`.
/// - `configuration`: `ConfigurationReport`.
///
/// The shell's commands (vtepsh sends them; each change is applied, saved and audited before
/// the response). Arguments are strings unless marked (int) or (strings, a JSON array);
/// `[...]` marks an optional one. Every value is validated again here, whatever the client
/// checked: a request that bypasses the shell's parser gets the same refusals.
///
/// | command | arguments | result |
/// |---|---|---|
/// | `set-hostname` | `name` (RFC 1123, at most 64) | `{}` |
/// | `hostname` | | `[String]`: the host name |
/// | `set-password` | `user`, `password` (hashed by vtepd, never logged) | `{}` |
/// | `interfaces` | [`interface`] | `[InterfaceReport]` |
/// | `set-interface-address` | `interface`, `address` (`192.0.2.10/24`) | `{}` |
/// | `set-interface-dhcp` | `interface` | `{}` |
/// | `set-interface-mtu` | `interface`, `mtu` (int) | `{}` |
/// | `set-interface-state` | `interface`, `state` (`up` or `down`) | `{}` |
/// | `add-route`, `remove-route` | [`destination`] (absent: the default route), `gateway` | `{}` |
/// | `routes` | | `[RouteReport]` |
/// | `clear-routes` | | `{}` |
/// | `add-dns-server`, `remove-dns-server` | `server` (an IP address) | `{}` |
/// | `dns-servers` | | `[String]` |
/// | `clear-dns-servers` | | `{}` |
/// | `add-ntp-server`, `remove-ntp-server` | `server` (an IP address or host name) | `{}` |
/// | `ntp-servers` | | `[String]` |
/// | `add-dns-search-domain`, `remove-dns-search-domain` | `domain` | `{}` |
/// | `dns-search-domains` | | `[String]` |
/// | `clear-dns-search-domains` | | `{}` |
/// | `running-config` | | `[String]`: the commands that rebuild the configuration |
/// | `log` | [`lines`] (int, 1–100000; default 50) | `[String]`: the audit log's last lines |
/// | `add-logical-switch` | `name`, `vni` (int) | `{}` |
/// | `remove-logical-switch` | `name`, [`vni`] (int: only if it has this VNI) | `{}` |
/// | `set-replication` | `switch`, `mode` (`multicast`, `head-end`, `service-node`), `addresses` (strings) | `{}` |
/// | `set-encapsulation` | `switch`, `encapsulation` (`vxlan`, `gre`, `nvgre`) | `{}` |
/// | `bind-port`, `unbind-port` | `port`, `vlan` (int, 0 = untagged), `switch` | `{}` |
/// | `add-remote-mac`, `remove-remote-mac` | `switch`, `mac`, `vtep` (an IP address) | `{}` |
/// | `logical-switches` | | `[LogicalSwitchReport]` |
/// | `tunnels` | | `[TunnelReport]` |
///
/// For example `{"id":3,"command":"bind-port","arguments":{"port":"eth2","switch":"web","vlan":10}}`
/// → `{"id":3,"ok":true,"result":{}}`.
///
/// Field names of every result type are part of the protocol and documented on the type.
public struct ControlRequest: Hashable, Sendable {
    public var id: Int
    public var command: ControlCommand

    public init(id: Int, command: ControlCommand) {
        self.id = id
        self.command = command
    }
}

/// What a client asks vtepd for. New commands (the shell's configuration commands) join as new
/// cases; each case's arguments are parsed in `init(name:arguments:)` and nowhere else.
public enum ControlCommand: Hashable, Sendable {
    /// `mac-table`: the MAC table, optionally only one logical switch's or one MAC's entries.
    case macTable(MACTableQuery)
    /// `counters`: per logical switch, access port, remote VTEP, drop and malformed reason.
    case counters
    /// `configuration`: the effective configuration and the problems found in it.
    case configuration

    // MARK: Appliance settings: vtepd applies, saves and audits each change

    case setHostname(Hostname)
    case hostname
    /// The password travels over the 0660 socket and is hashed (yescrypt) by vtepd.
    case setPassword(user: UserName, password: String)
    /// One interface, or all of them.
    case interfaces(InterfaceName?)
    case setInterfaceAddress(InterfaceName, IPv4InterfaceAddress)
    case setInterfaceDHCP(InterfaceName)
    case setInterfaceMTU(InterfaceName, mtu: Int)
    case setInterfaceState(InterfaceName, up: Bool)
    case addRoute(StaticRoute)
    case removeRoute(StaticRoute)
    case routes
    case clearRoutes
    case addDNSServer(IPAddress)
    case removeDNSServer(IPAddress)
    case dnsServers
    case clearDNSServers
    case addNTPServer(NTPServer)
    case removeNTPServer(NTPServer)
    case ntpServers
    case addSearchDomain(DomainName)
    case removeSearchDomain(DomainName)
    case searchDomains
    case clearSearchDomains
    /// The commands that rebuild the appliance settings and the gateway's database rows.
    case runningConfig
    /// The audit log's last lines; nil: `ControlCommand.defaultLogLines`.
    case log(lines: Int?)

    // MARK: The gateway: one hardware_vtep transaction each, as vtep-ctl writes them

    case addLogicalSwitch(name: String, vni: Int)
    /// With a VNI, only a switch with that VNI is removed.
    case removeLogicalSwitch(name: String, vni: Int?)
    case setReplication(logicalSwitch: String, ReplicationSetting)
    /// Stored in Logical_Switch `other_config:encapsulation`.
    case setEncapsulation(logicalSwitch: String, Encapsulation)
    case bindPort(SwitchBinding)
    case unbindPort(SwitchBinding)
    case addRemoteMAC(RemoteMAC)
    case removeRemoteMAC(RemoteMAC)
    case logicalSwitches
    case tunnels

    /// `log` without `lines`.
    public static let defaultLogLines = 50

    /// Every command's wire name, in the order error messages list them.
    public static let names = [
        "mac-table", "counters", "configuration", "set-hostname", "hostname", "set-password",
        "interfaces", "set-interface-address", "set-interface-dhcp", "set-interface-mtu",
        "set-interface-state", "add-route", "remove-route", "routes", "clear-routes",
        "add-dns-server", "remove-dns-server", "dns-servers", "clear-dns-servers",
        "add-ntp-server", "remove-ntp-server", "ntp-servers", "add-dns-search-domain",
        "remove-dns-search-domain", "dns-search-domains", "clear-dns-search-domains",
        "running-config", "log", "add-logical-switch", "remove-logical-switch",
        "set-replication", "set-encapsulation", "bind-port", "unbind-port", "add-remote-mac",
        "remove-remote-mac", "logical-switches", "tunnels",
    ]

    /// The wire name (`"command"` field).
    public var name: String {
        switch self {
        case .macTable: return "mac-table"
        case .counters: return "counters"
        case .configuration: return "configuration"
        case .setHostname: return "set-hostname"
        case .hostname: return "hostname"
        case .setPassword: return "set-password"
        case .interfaces: return "interfaces"
        case .setInterfaceAddress: return "set-interface-address"
        case .setInterfaceDHCP: return "set-interface-dhcp"
        case .setInterfaceMTU: return "set-interface-mtu"
        case .setInterfaceState: return "set-interface-state"
        case .addRoute: return "add-route"
        case .removeRoute: return "remove-route"
        case .routes: return "routes"
        case .clearRoutes: return "clear-routes"
        case .addDNSServer: return "add-dns-server"
        case .removeDNSServer: return "remove-dns-server"
        case .dnsServers: return "dns-servers"
        case .clearDNSServers: return "clear-dns-servers"
        case .addNTPServer: return "add-ntp-server"
        case .removeNTPServer: return "remove-ntp-server"
        case .ntpServers: return "ntp-servers"
        case .addSearchDomain: return "add-dns-search-domain"
        case .removeSearchDomain: return "remove-dns-search-domain"
        case .searchDomains: return "dns-search-domains"
        case .clearSearchDomains: return "clear-dns-search-domains"
        case .runningConfig: return "running-config"
        case .log: return "log"
        case .addLogicalSwitch: return "add-logical-switch"
        case .removeLogicalSwitch: return "remove-logical-switch"
        case .setReplication: return "set-replication"
        case .setEncapsulation: return "set-encapsulation"
        case .bindPort: return "bind-port"
        case .unbindPort: return "unbind-port"
        case .addRemoteMAC: return "add-remote-mac"
        case .removeRemoteMAC: return "remove-remote-mac"
        case .logicalSwitches: return "logical-switches"
        case .tunnels: return "tunnels"
        }
    }

    /// Whether the command asks for a change (and so is audited).
    public var isChange: Bool {
        switch self {
        case .macTable, .counters, .configuration, .hostname, .interfaces, .routes,
            .dnsServers, .ntpServers, .searchDomains, .runningConfig, .log, .logicalSwitches,
            .tunnels:
            return false
        default:
            return true
        }
    }
}

/// How a logical switch floods broadcast, unknown-unicast and multicast frames, as the shell
/// sets it. Wire: `mode` `multicast` (`addresses`: the group), `head-end` (the VTEPs) or
/// `service-node` (the node).
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
}

/// A port's VLAN bound to a logical switch (Physical_Port `vlan_bindings`).
public struct SwitchBinding: Hashable, Sendable {
    public var port: InterfaceName
    /// 0 = untagged.
    public var vlan: Int
    public var logicalSwitch: String

    public init(port: InterfaceName, vlan: Int, logicalSwitch: String) {
        self.port = port
        self.vlan = vlan
        self.logicalSwitch = logicalSwitch
    }
}

/// A static MAC behind a remote VTEP (Ucast_Macs_Remote).
public struct RemoteMAC: Hashable, Sendable {
    public var logicalSwitch: String
    public var mac: MACAddress
    public var vtep: IPAddress

    public init(logicalSwitch: String, mac: MACAddress, vtep: IPAddress) {
        self.logicalSwitch = logicalSwitch
        self.mac = mac
        self.vtep = vtep
    }
}

/// The arguments of `mac-table`. Wire fields: `switch` (a logical switch name) and `mac`
/// (`aa:bb:cc:dd:ee:ff`; `-` separators and upper case are accepted and normalised).
public struct MACTableQuery: Hashable, Sendable, Codable {
    public var logicalSwitch: String?
    /// Lower case, colon-separated.
    public var mac: String?

    public init(logicalSwitch: String? = nil, mac: String? = nil) {
        self.logicalSwitch = logicalSwitch
        self.mac = mac
    }

    enum CodingKeys: String, CodingKey {
        case logicalSwitch = "switch"
        case mac
    }
}

/// A refusal in words an operator can act on; sent as the response's `error`.
public struct ControlFailure: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// What a command returns. The JSON of each case is the payload itself (the response's
/// `result`), not wrapped: an array of `MACTableRow`, a `CountersReport` object or a
/// `ConfigurationReport` object.
public enum ControlResult: Hashable, Sendable, Encodable {
    case macTable([MACTableRow])
    case counters(CountersReport)
    case configuration(ConfigurationReport)
    /// A change was applied and saved: `{}`.
    case accepted
    /// Lines of text: a host name, a list of servers, the running configuration, the log.
    case lines([String])
    case interfaces([InterfaceReport])
    case routes([RouteReport])
    case logicalSwitches([LogicalSwitchReport])
    case tunnels([TunnelReport])

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .macTable(let rows): try container.encode(rows)
        case .counters(let report): try container.encode(report)
        case .configuration(let report): try container.encode(report)
        case .accepted: try container.encode([String: String]())
        case .lines(let lines): try container.encode(lines)
        case .interfaces(let rows): try container.encode(rows)
        case .routes(let rows): try container.encode(rows)
        case .logicalSwitches(let rows): try container.encode(rows)
        case .tunnels(let rows): try container.encode(rows)
        }
    }
}

/// One response line: the request's id (nil when it could not be read) and its outcome.
public struct ControlResponse: Hashable, Sendable {
    public var id: Int?
    public var outcome: Result<ControlResult, ControlFailure>

    public init(id: Int?, outcome: Result<ControlResult, ControlFailure>) {
        self.id = id
        self.outcome = outcome
    }
}

/// A line that is not an acceptable request, and how to answer it.
public struct ControlRefusal: Error, Hashable, Sendable {
    /// The request's id if it could be read.
    public var id: Int?
    public var message: String
    /// The line was not JSON (or not UTF-8, or too long): the connection is closed after the
    /// error response, since the client and server no longer agree on where requests start.
    public var closesConnection: Bool

    public init(id: Int?, message: String, closesConnection: Bool) {
        self.id = id
        self.message = message
        self.closesConnection = closesConnection
    }
}

// MARK: - Wire encoding and decoding (one place for the server, the client and the tests)

extension ControlRequest {
    /// Parses one request line (without its newline).
    public static func parse(_ line: some Collection<UInt8>) -> Result<
        ControlRequest, ControlRefusal
    > {
        guard String(validating: line, as: UTF8.self) != nil else {
            return .failure(
                ControlRefusal(
                    id: nil, message: "request is not valid UTF-8", closesConnection: true))
        }
        do {
            let envelope = try JSONDecoder().decode(RequestEnvelope.self, from: Data(line))
            return .success(envelope.request)
        } catch let refusal as EnvelopeRefusal {
            return .failure(
                ControlRefusal(id: refusal.id, message: refusal.message, closesConnection: false))
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            return .failure(
                ControlRefusal(
                    id: nil,
                    message: "a request must be a JSON object with \"id\" and \"command\"",
                    closesConnection: false))
        } catch {
            return .failure(
                ControlRefusal(
                    id: nil, message: "request is not valid JSON: \(jsonErrorSummary(error))",
                    closesConnection: true))
        }
    }

    /// The request line, without its newline: `{"id":N,"command":"...","arguments":{...}}`.
    public func encoded() -> [UInt8] {
        var text = "{\"id\":\(id),\"command\":\(jsonText(command.name))"
        switch command {
        case .macTable(let query): text += ",\"arguments\":\(jsonText(query))"
        default:
            let arguments = command.wireArguments
            if !arguments.isEmpty { text += ",\"arguments\":\(jsonText(arguments))" }
        }
        text += "}"
        return Array(text.utf8)
    }
}

extension ControlCommand {
    /// Parses a command's arguments. `arguments` is nil when the request has none.
    init(name: String, arguments: ArgumentReader) throws(ControlFailure) {
        switch name {
        case "mac-table":
            var query = MACTableQuery()
            query.logicalSwitch = try arguments.string("switch")
            if let text = try arguments.string("mac") {
                guard let mac = normalisedMAC(text) else {
                    throw ControlFailure(
                        "argument \"mac\" of mac-table: \"\(text)\" is not a MAC address "
                            + "(use aa:bb:cc:dd:ee:ff)")
                }
                query.mac = mac
            }
            try arguments.refuseOthers(["switch", "mac"])
            self = .macTable(query)
        case "counters":
            try arguments.refuseOthers([])
            self = .counters
        case "configuration":
            try arguments.refuseOthers([])
            self = .configuration
        case _ where ControlCommand.names.contains(name):
            self = try ControlCommand(shellCommand: name, arguments: arguments)
        default:
            throw ControlFailure(
                "unknown command \"\(name)\"; commands: \(ControlCommand.names.joined(separator: ", "))"
            )
        }
    }

    /// Decodes the `result` of a successful response to this command.
    func decodeResult(from line: Data) throws -> ControlResult {
        let decoder = JSONDecoder()
        switch self {
        case .macTable:
            return .macTable(
                try decoder.decode(ResultEnvelope<[MACTableRow]>.self, from: line).result)
        case .counters:
            return .counters(
                try decoder.decode(ResultEnvelope<CountersReport>.self, from: line).result)
        case .configuration:
            return .configuration(
                try decoder.decode(ResultEnvelope<ConfigurationReport>.self, from: line).result)
        case .hostname, .dnsServers, .ntpServers, .searchDomains, .runningConfig, .log:
            return .lines(try decoder.decode(ResultEnvelope<[String]>.self, from: line).result)
        case .interfaces:
            return .interfaces(
                try decoder.decode(ResultEnvelope<[InterfaceReport]>.self, from: line).result)
        case .routes:
            return .routes(
                try decoder.decode(ResultEnvelope<[RouteReport]>.self, from: line).result)
        case .logicalSwitches:
            return .logicalSwitches(
                try decoder.decode(ResultEnvelope<[LogicalSwitchReport]>.self, from: line).result)
        case .tunnels:
            return .tunnels(
                try decoder.decode(ResultEnvelope<[TunnelReport]>.self, from: line).result)
        default:
            _ = try decoder.decode(ResultEnvelope<[String: String]>.self, from: line)
            return .accepted
        }
    }

    /// The shell's commands: their arguments, read and validated with the appliance's own
    /// types, so that a client bypassing vtepsh's parser is held to the same rules.
    private init(shellCommand name: String, arguments: ArgumentReader) throws(ControlFailure) {
        func required(_ key: String) throws(ControlFailure) -> String {
            guard let value = try arguments.string(key) else {
                throw ControlFailure("\(name) needs the string argument \"\(key)\"")
            }
            return value
        }
        func requiredInteger(_ key: String) throws(ControlFailure) -> Int {
            guard let value = try arguments.integer(key) else {
                throw ControlFailure("\(name) needs the integer argument \"\(key)\"")
            }
            return value
        }
        func valid<T>(_ body: () throws(ApplianceSettingsError) -> T) throws(ControlFailure) -> T {
            do {
                return try body()
            } catch {
                throw ControlFailure("\(name): \(error)")
            }
        }
        func address(_ key: String) throws(ControlFailure) -> IPAddress {
            let text = try required(key)
            guard let address = IPAddress(text) else {
                throw ControlFailure(
                    "\(name): \(key) \"\(text)\" is not an IP address (e.g. 192.0.2.10 or 2001:db8::10)"
                )
            }
            return address
        }
        func interface() throws(ControlFailure) -> InterfaceName {
            let text = try required("interface")
            return try valid { () throws(ApplianceSettingsError) in try InterfaceName(text) }
        }
        func switchName(_ key: String) throws(ControlFailure) -> String {
            try ControlCommand.logicalSwitchName(try required(key), command: name)
        }
        func vni(_ value: Int) throws(ControlFailure) -> Int {
            // RFC 7348 §5: 24 bits.
            guard (0...16_777_215).contains(value) else {
                throw ControlFailure("\(name): VNI \(value) is out of range (0–16777215)")
            }
            return value
        }
        func binding() throws(ControlFailure) -> SwitchBinding {
            let portText = try required("port")
            let port = try valid { () throws(ApplianceSettingsError) in
                try InterfaceName(portText)
            }
            let vlan = try requiredInteger("vlan")
            // IEEE 802.1Q: 12 bits, 4095 reserved; 0 is untagged.
            guard (0...4094).contains(vlan) else {
                throw ControlFailure("\(name): VLAN \(vlan) is out of range (0–4094)")
            }
            return SwitchBinding(port: port, vlan: vlan, logicalSwitch: try switchName("switch"))
        }
        func remoteMAC() throws(ControlFailure) -> RemoteMAC {
            let text = try required("mac")
            guard let mac = MACAddress(text) else {
                throw ControlFailure(
                    "\(name): \"\(text)\" is not a MAC address (use aa:bb:cc:dd:ee:ff)")
            }
            return RemoteMAC(
                logicalSwitch: try switchName("switch"), mac: mac, vtep: try address("vtep"))
        }
        func route() throws(ControlFailure) -> StaticRoute {
            let destination = try arguments.string("destination")
            let gateway = try required("gateway")
            return try valid { () throws(ApplianceSettingsError) in
                try StaticRoute(destination: destination, gateway: gateway)
            }
        }

        let known: Set<String>
        switch name {
        case "set-hostname":
            let text = try required("name")
            self = .setHostname(
                try valid { () throws(ApplianceSettingsError) in try Hostname(text) })
            known = ["name"]
        case "hostname": (self, known) = (.hostname, [])
        case "set-password":
            let user = try required("user")
            let password = try required("password")
            self = .setPassword(
                user: try valid { () throws(ApplianceSettingsError) in try UserName(user) },
                password: password)
            known = ["user", "password"]
        case "interfaces":
            let text = try arguments.string("interface")
            self = .interfaces(
                try text.map { text throws(ControlFailure) in
                    try valid { () throws(ApplianceSettingsError) in try InterfaceName(text) }
                })
            known = ["interface"]
        case "set-interface-address":
            let interface = try interface()
            let text = try required("address")
            self = .setInterfaceAddress(
                interface,
                try valid { () throws(ApplianceSettingsError) in try IPv4InterfaceAddress(text) })
            known = ["interface", "address"]
        case "set-interface-dhcp":
            (self, known) = (.setInterfaceDHCP(try interface()), ["interface"])
        case "set-interface-mtu":
            let interface = try interface()
            let mtu = try requiredInteger("mtu")
            guard InterfaceSettings.mtuRange.contains(mtu) else {
                throw ControlFailure("\(name): \(ApplianceSettingsError.invalidMTU(mtu))")
            }
            (self, known) = (.setInterfaceMTU(interface, mtu: mtu), ["interface", "mtu"])
        case "set-interface-state":
            let interface = try interface()
            let state = try required("state")
            guard state == "up" || state == "down" else {
                throw ControlFailure("\(name): state \"\(state)\" must be up or down")
            }
            (self, known) = (
                .setInterfaceState(interface, up: state == "up"), ["interface", "state"]
            )
        case "add-route": (self, known) = (.addRoute(try route()), ["destination", "gateway"])
        case "remove-route":
            (self, known) = (.removeRoute(try route()), ["destination", "gateway"])
        case "routes": (self, known) = (.routes, [])
        case "clear-routes": (self, known) = (.clearRoutes, [])
        case "add-dns-server": (self, known) = (.addDNSServer(try address("server")), ["server"])
        case "remove-dns-server":
            (self, known) = (.removeDNSServer(try address("server")), ["server"])
        case "dns-servers": (self, known) = (.dnsServers, [])
        case "clear-dns-servers": (self, known) = (.clearDNSServers, [])
        case "add-ntp-server", "remove-ntp-server":
            let text = try required("server")
            let server = try valid { () throws(ApplianceSettingsError) in try NTPServer(text) }
            self = name == "add-ntp-server" ? .addNTPServer(server) : .removeNTPServer(server)
            known = ["server"]
        case "ntp-servers": (self, known) = (.ntpServers, [])
        case "add-dns-search-domain", "remove-dns-search-domain":
            let text = try required("domain")
            let domain = try valid { () throws(ApplianceSettingsError) in try DomainName(text) }
            self = name.hasPrefix("add") ? .addSearchDomain(domain) : .removeSearchDomain(domain)
            known = ["domain"]
        case "dns-search-domains": (self, known) = (.searchDomains, [])
        case "clear-dns-search-domains": (self, known) = (.clearSearchDomains, [])
        case "running-config": (self, known) = (.runningConfig, [])
        case "log":
            let lines = try arguments.integer("lines")
            if let lines, !(1...100_000).contains(lines) {
                throw ControlFailure("log: lines \(lines) is out of range (1–100000)")
            }
            (self, known) = (.log(lines: lines), ["lines"])
        case "add-logical-switch":
            let switchName = try switchName("name")
            self = .addLogicalSwitch(name: switchName, vni: try vni(try requiredInteger("vni")))
            known = ["name", "vni"]
        case "remove-logical-switch":
            let switchName = try switchName("name")
            let wanted = try arguments.integer("vni")
            self = .removeLogicalSwitch(
                name: switchName, vni: try wanted.map { v throws(ControlFailure) in try vni(v) })
            known = ["name", "vni"]
        case "set-replication":
            let logicalSwitch = try switchName("switch")
            let mode = try required("mode")
            var addresses: [IPAddress] = []
            for text in try arguments.strings("addresses") ?? [] {
                guard let address = IPAddress(text) else {
                    throw ControlFailure("\(name): \"\(text)\" is not an IP address")
                }
                guard !addresses.contains(address) else {
                    throw ControlFailure("\(name): \(address) is listed twice")
                }
                addresses.append(address)
            }
            let setting: ReplicationSetting
            switch (mode, addresses.count) {
            case ("multicast", 1):
                guard addresses[0].isMulticast else {
                    throw ControlFailure(
                        "\(name): \(addresses[0]) is not a multicast group (224.0.0.0/4 or ff00::/8)"
                    )
                }
                setting = .multicast(addresses[0])
            case ("service-node", 1): setting = .serviceNode(addresses[0])
            case ("head-end", 1...): setting = .headEnd(addresses)
            case ("multicast", _), ("service-node", _), ("head-end", _):
                throw ControlFailure(
                    "\(name): mode \(mode) takes \(mode == "head-end" ? "one or more addresses" : "exactly one address"), got \(addresses.count)"
                )
            default:
                throw ControlFailure(
                    "\(name): mode \"\(mode)\" must be multicast, head-end or service-node")
            }
            (self, known) = (
                .setReplication(logicalSwitch: logicalSwitch, setting),
                ["switch", "mode", "addresses"]
            )
        case "set-encapsulation":
            let logicalSwitch = try switchName("switch")
            let text = try required("encapsulation")
            guard
                let encapsulation = Encapsulation.allCases.first(where: { $0.description == text })
            else {
                throw ControlFailure(
                    "\(name): encapsulation \"\(text)\" must be vxlan, gre or nvgre")
            }
            self = .setEncapsulation(logicalSwitch: logicalSwitch, encapsulation)
            known = ["switch", "encapsulation"]
        case "bind-port": (self, known) = (.bindPort(try binding()), ["port", "vlan", "switch"])
        case "unbind-port":
            (self, known) = (.unbindPort(try binding()), ["port", "vlan", "switch"])
        case "add-remote-mac":
            (self, known) = (.addRemoteMAC(try remoteMAC()), ["switch", "mac", "vtep"])
        case "remove-remote-mac":
            (self, known) = (.removeRemoteMAC(try remoteMAC()), ["switch", "mac", "vtep"])
        case "logical-switches": (self, known) = (.logicalSwitches, [])
        case "tunnels": (self, known) = (.tunnels, [])
        default:
            throw ControlFailure(
                "unknown command \"\(name)\"; commands: \(ControlCommand.names.joined(separator: ", "))"
            )
        }
        try arguments.refuseOthers(known)
    }

    /// A logical switch name as the shell allows it: letters, digits, `.`, `_`, `-`, 1–64
    /// characters, not starting with `-` (it reaches vtep-ctl command lines and logs).
    static func logicalSwitchName(_ text: String, command: String) throws(ControlFailure) -> String
    {
        let allowed = text.utf8.allSatisfy {
            (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0)
                || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
        guard !text.isEmpty, text.utf8.count <= 64, allowed, !text.hasPrefix("-") else {
            throw ControlFailure(
                "\(command): \"\(text)\" is not a logical switch name (1–64 letters, digits, '.', '_'"
                    + " or '-', not starting with '-')")
        }
        return text
    }

    /// The arguments object of the shell's commands, as `init(name:arguments:)` reads it.
    var wireArguments: [String: ControlArgument] {
        func binding(_ b: SwitchBinding) -> [String: ControlArgument] {
            [
                "port": .string(b.port.text), "vlan": .integer(b.vlan),
                "switch": .string(b.logicalSwitch),
            ]
        }
        func mac(_ m: RemoteMAC) -> [String: ControlArgument] {
            [
                "switch": .string(m.logicalSwitch), "mac": .string(m.mac.description),
                "vtep": .string(m.vtep.description),
            ]
        }
        func route(_ r: StaticRoute) -> [String: ControlArgument] {
            var arguments: [String: ControlArgument] = ["gateway": .string(r.gateway.description)]
            if !r.isDefault { arguments["destination"] = .string(r.destination.description) }
            return arguments
        }
        switch self {
        case .macTable, .counters, .configuration, .hostname, .routes, .clearRoutes, .dnsServers,
            .clearDNSServers, .ntpServers, .searchDomains, .clearSearchDomains, .runningConfig,
            .logicalSwitches, .tunnels:
            return [:]
        case .setHostname(let name): return ["name": .string(name.text)]
        case .setPassword(let user, let password):
            return ["user": .string(user.text), "password": .string(password)]
        case .interfaces(let name): return name.map { ["interface": .string($0.text)] } ?? [:]
        case .setInterfaceAddress(let name, let address):
            return ["interface": .string(name.text), "address": .string(address.description)]
        case .setInterfaceDHCP(let name): return ["interface": .string(name.text)]
        case .setInterfaceMTU(let name, let mtu):
            return ["interface": .string(name.text), "mtu": .integer(mtu)]
        case .setInterfaceState(let name, let up):
            return ["interface": .string(name.text), "state": .string(up ? "up" : "down")]
        case .addRoute(let r), .removeRoute(let r): return route(r)
        case .addDNSServer(let server), .removeDNSServer(let server):
            return ["server": .string(server.description)]
        case .addNTPServer(let server), .removeNTPServer(let server):
            return ["server": .string(server.description)]
        case .addSearchDomain(let domain), .removeSearchDomain(let domain):
            return ["domain": .string(domain.text)]
        case .log(let lines): return lines.map { ["lines": .integer($0)] } ?? [:]
        case .addLogicalSwitch(let name, let vni):
            return ["name": .string(name), "vni": .integer(vni)]
        case .removeLogicalSwitch(let name, let vni):
            var arguments: [String: ControlArgument] = ["name": .string(name)]
            if let vni { arguments["vni"] = .integer(vni) }
            return arguments
        case .setReplication(let name, let setting):
            return [
                "switch": .string(name), "mode": .string(setting.mode),
                "addresses": .strings(setting.addresses.map(\.description)),
            ]
        case .setEncapsulation(let name, let encapsulation):
            return ["switch": .string(name), "encapsulation": .string(encapsulation.description)]
        case .bindPort(let b), .unbindPort(let b): return binding(b)
        case .addRemoteMAC(let m), .removeRemoteMAC(let m): return mac(m)
        }
    }
}

/// One value of a request's `arguments` object.
enum ControlArgument: Hashable, Sendable, Encodable {
    case string(String)
    case integer(Int)
    case strings([String])

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let text): try container.encode(text)
        case .integer(let value): try container.encode(value)
        case .strings(let list): try container.encode(list)
        }
    }
}

extension ControlResponse {
    /// The response line, without its newline. Keys in the documented order: id, ok, then
    /// result or error; keys inside results sorted, so output is byte-for-byte repeatable.
    public func encoded() -> [UInt8] {
        var text = "{\"id\":" + (id.map(String.init) ?? "null")
        switch outcome {
        case .success(let result): text += ",\"ok\":true,\"result\":" + jsonText(result)
        case .failure(let failure): text += ",\"ok\":false,\"error\":" + jsonText(failure.message)
        }
        text += "}"
        return Array(text.utf8)
    }

    /// The id of a response line, and whether it is an error (`ok` false) with its message.
    static func head(of line: Data) throws -> (id: Int?, error: String?) {
        let head = try JSONDecoder().decode(ResponseHead.self, from: line)
        if head.ok { return (head.id, nil) }
        return (head.id, head.error ?? "(the server gave no reason)")
    }
}

// MARK: - Internals

/// Reads a request's `arguments` object with messages that name the command and argument.
struct ArgumentReader {
    var command: String
    var container: KeyedDecodingContainer<AnyCodingKey>?

    func string(_ name: String) throws(ControlFailure) -> String? {
        guard let container, container.contains(AnyCodingKey(name)) else { return nil }
        do {
            return try container.decodeIfPresent(String.self, forKey: AnyCodingKey(name))
        } catch {
            throw ControlFailure("argument \"\(name)\" of \(command) must be a string")
        }
    }

    func integer(_ name: String) throws(ControlFailure) -> Int? {
        guard let container, container.contains(AnyCodingKey(name)) else { return nil }
        do {
            return try container.decodeIfPresent(Int.self, forKey: AnyCodingKey(name))
        } catch {
            throw ControlFailure("argument \"\(name)\" of \(command) must be an integer")
        }
    }

    func strings(_ name: String) throws(ControlFailure) -> [String]? {
        guard let container, container.contains(AnyCodingKey(name)) else { return nil }
        do {
            return try container.decodeIfPresent([String].self, forKey: AnyCodingKey(name))
        } catch {
            throw ControlFailure("argument \"\(name)\" of \(command) must be an array of strings")
        }
    }

    func refuseOthers(_ known: Set<String>) throws(ControlFailure) {
        guard let container else { return }
        let unknown = container.allKeys.map(\.stringValue).filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            let accepted =
                known.isEmpty
                ? "takes no arguments" : "takes \(known.sorted().joined(separator: ", "))"
            throw ControlFailure(
                "unknown argument\(unknown.count > 1 ? "s" : "") "
                    + unknown.map { "\"\($0)\"" }.joined(separator: ", ")
                    + " for \(command), which \(accepted)")
        }
    }
}

struct AnyCodingKey: CodingKey, Hashable {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { self.stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// A refusal raised while decoding a request that was valid JSON.
private struct EnvelopeRefusal: Error {
    var id: Int?
    var message: String
}

private struct RequestEnvelope: Decodable {
    var request: ControlRequest

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyCodingKey.self)
        let idKey = AnyCodingKey("id")
        guard container.contains(idKey), (try? container.decodeNil(forKey: idKey)) == false,
            let id = try? container.decode(Int.self, forKey: idKey)
        else {
            throw EnvelopeRefusal(id: nil, message: "request needs an integer \"id\"")
        }
        guard let name = try? container.decode(String.self, forKey: AnyCodingKey("command")) else {
            throw EnvelopeRefusal(
                id: id,
                message: "request needs a string \"command\": one of "
                    + ControlCommand.names.joined(separator: ", "))
        }
        var arguments = ArgumentReader(command: name, container: nil)
        let argumentsKey = AnyCodingKey("arguments")
        if container.contains(argumentsKey),
            (try? container.decodeNil(forKey: argumentsKey)) == false
        {
            guard
                let nested = try? container.nestedContainer(
                    keyedBy: AnyCodingKey.self, forKey: argumentsKey)
            else {
                throw EnvelopeRefusal(id: id, message: "\"arguments\" must be a JSON object")
            }
            arguments.container = nested
        }
        do {
            request = ControlRequest(
                id: id, command: try ControlCommand(name: name, arguments: arguments))
        } catch {
            throw EnvelopeRefusal(id: id, message: error.message)
        }
    }
}

private struct ResponseHead: Decodable {
    var id: Int?
    var ok: Bool
    var error: String?
}

private struct ResultEnvelope<Payload: Decodable>: Decodable {
    var result: Payload
}

/// One JSON text: object keys sorted, `/` not escaped.
func jsonText(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding these plain value types cannot fail (no floats that could be NaN, no custom
    // throwing encoders), so a failure is a programming error.
    let data = try! encoder.encode(value)
    return String(decoding: data, as: UTF8.self)
}

/// JSONDecoder's syntax errors, shortened to the part an operator can use.
private func jsonErrorSummary(_ error: any Error) -> String {
    if case DecodingError.dataCorrupted(let context) = error {
        if let underlying = context.underlyingError {
            return "\(underlying)"
        }
        return context.debugDescription
    }
    return "\(error)"
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`, any case) in lower case with colons; nil if not a MAC.
func normalisedMAC(_ text: String) -> String? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    let groups =
        parts.count == 6 ? parts : text.split(separator: "-", omittingEmptySubsequences: false)
    guard groups.count == 6,
        groups.allSatisfy({
            $0.count == 2 && $0.allSatisfy(\.isHexDigit) && $0.allSatisfy(\.isASCII)
        })
    else { return nil }
    return groups.map { $0.lowercased() }.joined(separator: ":")
}
