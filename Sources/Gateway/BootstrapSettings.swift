import DataPlane
import Forwarding
import Logging
import OVSDB
import Packet

/// vtepd's bootstrap settings, from `/etc/vtep-gateway/vtepd.conf` and the command line: each
/// setting has one name, the same in the file (`tunnel-ip = 192.0.2.1`) and on the command
/// line (`--tunnel-ip 192.0.2.1`), and one parser, so both sources are checked alike. A value
/// the command line gives replaces the file's (a list as a whole).
public struct BootstrapSettings: Equatable, Sendable {
    public enum Key: String, CaseIterable, Sendable {
        case stateRoot = "state-root"
        case physicalSwitch = "physical-switch"
        case tunnelIP = "tunnel-ip"
        case underlay
        case port
        case database
        case databaseRemote = "database-remote"
        case control
        case vxlanPort = "vxlan-port"
        case ttl
        case multicastTTL = "multicast-ttl"
        case logLevel = "log-level"
        case applianceRoot = "appliance-root"
        case metricsListen = "metrics-listen"
        case macTableLimit = "mac-table-limit"
        case busyPollUS = "busy-poll-us"
        case datapathPriority = "datapath-priority"
        case vxlanReceive = "vxlan-receive"
        case vxlanTransmit = "vxlan-transmit"
        case vxlanTrains = "vxlan-trains"
        case routerNamespacePrefix = "router-namespace-prefix"

        /// Keys that take several values: repeated, or separated by blanks on one line.
        public var isList: Bool { [.tunnelIP, .port, .databaseRemote].contains(self) }
    }

    public static let defaultPath = "/etc/vtep-gateway/vtepd.conf"
    public static let defaultStateRoot = "/var/lib/vtep-gateway"

    public var stateRoot: String?
    public var physicalSwitch: String?
    public var tunnelIPs: [IPAddress]?
    public var underlay: String?
    public var ports: [String]?
    public var database: Remote?
    public var databaseRemotes: [String]?
    public var control: String?
    public var vxlanPort: UInt16?
    public var ttl: UInt8?
    public var multicastTTL: UInt8?
    public var logLevel: Logger.Level?
    public var applianceRoot: String?
    /// Where Prometheus metrics are served unless the shell's saved setting says otherwise.
    public var metricsListen: IPEndpoint?
    /// Learned MAC entries across every logical switch (default 1,048,576).
    public var macTableLimit: Int?
    /// Microseconds the worker keeps polling after a frame before it sleeps (default 50).
    public var busyPollMicroseconds: Int?
    /// The data-plane worker's SCHED_FIFO priority, 0 to leave it under the scheduler vtepd was
    /// started with (the default).
    public var datapathPriority: Int?
    /// How VXLAN to the tunnel addresses is read: the UDP sockets (the default) or a ring.
    public var vxlanReceive: VXLANReceive?
    /// How TCP super-frames leave toward VXLAN tunnels: UDP GSO trains (the default) or
    /// whole, through the kernel's forwarding with UDP-tunnel GSO.
    public var vxlanTransmit: VXLANTransmit?
    /// Where UDP GSO trains are handed to the kernel: its packet socket or UDP sockets
    /// (default: by the kernel's version).
    public var vxlanTrains: VXLANTrains?
    /// What the logical routers' network namespaces are named with: prefix + router name.
    public var routerNamespacePrefix: String?

    public init() {}

    /// One of the named choices a setting takes (`vxlan-receive socket`), or the refusal that
    /// lists them.
    private static func choice<Choice: CaseIterable & RawRepresentable>(
        _ key: Key, _ value: String
    ) throws(BootstrapSettingsError) -> Choice where Choice.RawValue == String {
        guard let choice = Choice(rawValue: value) else {
            let names = Choice.allCases.map(\.rawValue)
            throw .init(
                "\(key.rawValue) \(value) is not "
                    + names.dropLast().joined(separator: ", ") + " or " + names.last!)
        }
        return choice
    }

    /// Sets `key` from its text form; throws the reason a value is refused and changes nothing.
    public mutating func set(_ key: Key, _ values: [String]) throws(BootstrapSettingsError) {
        guard !values.isEmpty, values.allSatisfy({ !$0.isEmpty }) else {
            throw .init("\(key.rawValue) needs a value")
        }
        guard key.isList || values.count == 1 else {
            throw .init("\(key.rawValue) takes one value, not \(values.count)")
        }
        let value = values[0]
        switch key {
        case .stateRoot: stateRoot = try Self.absolutePath(key, value)
        case .physicalSwitch: physicalSwitch = value
        case .tunnelIP:
            tunnelIPs = try values.map { (text) throws(BootstrapSettingsError) in
                switch IPAddress(text) {
                case .v4(let a)? where !a.isMulticast && a.rawValue != 0: return .v4(a)
                case .v6(let a)? where !a.isMulticast && !(a.high == 0 && a.low == 0):
                    return .v6(a)
                default:
                    throw .init("tunnel-ip \(text) is not a unicast IPv4 or IPv6 address")
                }
            }
        case .underlay: underlay = try Self.interface(key, value)
        case .port:
            ports = try values.map { (v) throws(BootstrapSettingsError) in
                try Self.interface(key, v)
            }
        case .database:
            do { database = try Remote(value) } catch {
                throw .init("database \(value): \(error)")
            }
        case .databaseRemote: databaseRemotes = values
        case .control: control = try Self.absolutePath(key, value)
        case .vxlanPort:
            guard let port = UInt16(value), port != 0 else {
                throw .init("vxlan-port \(value) is not a UDP port (1–65535)")
            }
            vxlanPort = port
        case .ttl: ttl = try Self.ttl(key, value)
        case .multicastTTL: multicastTTL = try Self.ttl(key, value)
        case .logLevel:
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw .init(
                    "log-level \(value) is not one of "
                        + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
            }
            logLevel = level
        case .applianceRoot: applianceRoot = try Self.absolutePath(key, value)
        case .metricsListen:
            guard let endpoint = IPEndpoint(value) else {
                throw .init("metrics-listen \(value) is not IP:PORT (e.g. 192.0.2.10:9100)")
            }
            metricsListen = endpoint
        case .macTableLimit:
            guard let limit = Int(value), MACTable.totalLimitRange.contains(limit) else {
                throw .init(
                    "mac-table-limit \(value) is not a whole number from "
                        + "\(MACTable.totalLimitRange.lowerBound) to "
                        + "\(MACTable.totalLimitRange.upperBound)")
            }
            macTableLimit = limit
        case .busyPollUS:
            let range = DataPlaneSettings.busyPollMicrosecondsRange
            guard let us = Int(value), range.contains(us) else {
                throw .init(
                    "busy-poll-us \(value) is not a whole number of microseconds from "
                        + "\(range.lowerBound) to \(range.upperBound)")
            }
            busyPollMicroseconds = us
        case .datapathPriority:
            let range = DataPlaneSettings.realtimePriorityRange
            guard let priority = Int(value), range.contains(priority) else {
                throw .init(
                    "datapath-priority \(value) is not a real-time priority from "
                        + "\(range.lowerBound) to \(range.upperBound) (0: the normal scheduler)")
            }
            datapathPriority = priority
        case .vxlanReceive: vxlanReceive = try Self.choice(key, value)
        case .vxlanTransmit: vxlanTransmit = try Self.choice(key, value)
        case .vxlanTrains: vxlanTrains = try Self.choice(key, value)
        case .routerNamespacePrefix:
            let allowed = value.utf8.allSatisfy {
                (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0)
                    || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
            }
            guard (1...32).contains(value.utf8.count), allowed else {
                throw .init(
                    "router-namespace-prefix \(value) must be 1 to 32 letters, digits, '-' or '_'")
            }
            routerNamespacePrefix = value
        }
    }

    /// Parses a configuration file: `KEY = VALUE` lines, `#` comments and blank lines; a list
    /// key may repeat or give several values separated by blanks. The first bad line refuses
    /// the whole file, with its number and the reason.
    public init(file text: String, path: String) throws(ConfigurationFileError) {
        var seen: [Key: Int] = [:]
        var lists: [Key: [String]] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated()
        {
            let number = index + 1
            func refuse(_ reason: String) -> ConfigurationFileError {
                ConfigurationFileError(path: path, line: number, reason: reason)
            }
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingBlanks
            if trimmed.isEmpty { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw refuse("expected KEY = VALUE, found \"\(trimmed)\"")
            }
            let name = String(trimmed[..<equals].trimmingBlanks)
            guard let key = Key(rawValue: name) else {
                throw refuse(
                    "unknown setting \"\(name)\" (known: "
                        + Key.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            let values = trimmed[trimmed.index(after: equals)...]
                .split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if key.isList {
                lists[key, default: []] += values
            } else if let first = seen[key] {
                throw refuse("\(name) is set twice (first on line \(first))")
            }
            seen[key] = seen[key] ?? number
            do {
                try set(key, key.isList ? lists[key]! : values)
            } catch {
                throw refuse(error.reason)
            }
        }
    }

    /// These settings with `other`'s wherever it has one: the command line over the file.
    public func overridden(by other: BootstrapSettings) -> BootstrapSettings {
        var merged = self
        merged.stateRoot = other.stateRoot ?? stateRoot
        merged.physicalSwitch = other.physicalSwitch ?? physicalSwitch
        merged.tunnelIPs = other.tunnelIPs ?? tunnelIPs
        merged.underlay = other.underlay ?? underlay
        merged.ports = other.ports ?? ports
        merged.database = other.database ?? database
        merged.databaseRemotes = other.databaseRemotes ?? databaseRemotes
        merged.control = other.control ?? control
        merged.vxlanPort = other.vxlanPort ?? vxlanPort
        merged.ttl = other.ttl ?? ttl
        merged.multicastTTL = other.multicastTTL ?? multicastTTL
        merged.logLevel = other.logLevel ?? logLevel
        merged.applianceRoot = other.applianceRoot ?? applianceRoot
        merged.metricsListen = other.metricsListen ?? metricsListen
        merged.macTableLimit = other.macTableLimit ?? macTableLimit
        merged.busyPollMicroseconds = other.busyPollMicroseconds ?? busyPollMicroseconds
        merged.datapathPriority = other.datapathPriority ?? datapathPriority
        merged.vxlanReceive = other.vxlanReceive ?? vxlanReceive
        merged.vxlanTransmit = other.vxlanTransmit ?? vxlanTransmit
        merged.vxlanTrains = other.vxlanTrains ?? vxlanTrains
        merged.routerNamespacePrefix = other.routerNamespacePrefix ?? routerNamespacePrefix
        return merged
    }

    /// The settings complete and consistent, as the gateway starts with them; what is missing
    /// or contradicts itself is refused with the setting's name.
    public func gatewayOptions(hostName: String, dhcpHook: String) throws(BootstrapSettingsError)
        -> GatewayOptions
    {
        guard let underlay else {
            throw .init("no underlay: set underlay (the interface tunnels leave on)")
        }
        let addresses = tunnelIPs ?? []
        guard !addresses.isEmpty else { throw .init("no tunnel-ip: give at least one") }
        let v4 = addresses.compactMap { if case .v4(let a) = $0 { a } else { nil } }
        let v6 = addresses.compactMap { if case .v6(let a) = $0 { a } else { nil } }
        guard v4.count <= 1, v6.count <= 1 else {
            throw .init("give at most one IPv4 and one IPv6 tunnel-ip")
        }
        let ports = self.ports ?? []
        if let twice = ports.first(where: { p in ports.count(where: { $0 == p }) > 1 }) {
            throw .init("access port \(twice) is named twice")
        }
        guard !ports.contains(underlay) else {
            throw .init("\(underlay) cannot be both the underlay and an access port")
        }
        if let metricsListen, addresses.contains(metricsListen.address) {
            throw .init(
                "metrics-listen \(metricsListen) is a tunnel address; give a management address")
        }
        var dataPlane = DataPlaneSettings(
            underlay: underlay, localIPv4: v4.first, localIPv6: v6.first)
        if let vxlanPort { dataPlane.vxlanPort = vxlanPort }
        if let ttl { dataPlane.unicastTTL = ttl }
        if let multicastTTL { dataPlane.multicastTTL = multicastTTL }
        if let macTableLimit { dataPlane.macTableLimit = macTableLimit }
        if let busyPollMicroseconds { dataPlane.busyPollMicroseconds = busyPollMicroseconds }
        if let datapathPriority { dataPlane.realtimePriority = datapathPriority }
        if let vxlanReceive { dataPlane.vxlanReceive = vxlanReceive }
        if let vxlanTransmit { dataPlane.vxlanTransmit = vxlanTransmit }
        if let vxlanTrains { dataPlane.vxlanTrains = vxlanTrains }
        let root = stateRoot ?? Self.defaultStateRoot
        var options = GatewayOptions(
            stateRoot: root, physicalSwitch: physicalSwitch ?? hostName, tunnelIPs: addresses,
            ports: ports, dataPlane: dataPlane, controlSocket: control ?? root + "/vtepd.ctl",
            dhcpHook: dhcpHook)
        options.database = database
        options.databaseRemotes = databaseRemotes ?? []
        options.applianceRoot = applianceRoot ?? "/"
        options.metricsListen = metricsListen
        options.routerNamespacePrefix = routerNamespacePrefix ?? options.routerNamespacePrefix
        return options
    }

    private static func absolutePath(_ key: Key, _ value: String) throws(BootstrapSettingsError)
        -> String
    {
        guard value.hasPrefix("/") else {
            throw .init("\(key.rawValue) \(value) is not an absolute path")
        }
        return value
    }

    private static func interface(_ key: Key, _ value: String) throws(BootstrapSettingsError)
        -> String
    {
        // IFNAMSIZ is 16 with the terminating NUL; "/" and blanks cannot be in a link name.
        guard value.utf8.count < 16, !value.contains("/"), value != ".", value != ".." else {
            throw .init("\(key.rawValue) \(value) is not an interface name")
        }
        return value
    }

    private static func ttl(_ key: Key, _ value: String) throws(BootstrapSettingsError) -> UInt8 {
        guard let ttl = UInt8(value), ttl != 0 else {
            throw .init("\(key.rawValue) \(value) is not a TTL (1–255)")
        }
        return ttl
    }
}

/// A bootstrap setting refused, by the reason an operator can act on.
public struct BootstrapSettingsError: Error, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A configuration file refused: where, and why.
public struct ConfigurationFileError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int
    public var reason: String
    public var description: String { "\(path):\(line): \(reason)" }
}

extension Substring {
    fileprivate var trimmingBlanks: Substring {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isBlank($0) }) else { return self[endIndex...] }
        let last = lastIndex(where: { !isBlank($0) })!
        return self[first...last]
    }
}
