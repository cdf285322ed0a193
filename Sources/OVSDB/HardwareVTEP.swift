/// Typed rows of the `hardware_vtep` schema (Open vSwitch `vtep.ovsschema`, vtep(5)) that a
/// gateway forwards by. Decoded from a monitor `Replica`; a row that does not fit its table's
/// columns is left out and described in `Database.problems`, never trusted half-read.
public enum HardwareVTEP {
    /// The database name in `vtep.ovsschema`.
    public static let databaseName = "hardware_vtep"

    /// The tables and columns `Database` reads, for `OVSDBClient(monitoring:)`.
    public static let monitorRequests: [MonitorRequest] = [
        MonitorRequest(
            table: "Physical_Switch", columns: ["name", "description", "tunnel_ips", "ports"]),
        MonitorRequest(table: "Physical_Port", columns: ["name", "description", "vlan_bindings"]),
        MonitorRequest(
            table: "Logical_Switch",
            columns: ["name", "description", "tunnel_key", "replication_mode", "other_config"]),
        MonitorRequest(table: "Physical_Locator", columns: ["dst_ip", "encapsulation_type"]),
        MonitorRequest(table: "Physical_Locator_Set", columns: ["locators"]),
        MonitorRequest(
            table: "Ucast_Macs_Remote", columns: ["MAC", "logical_switch", "locator", "ipaddr"]),
        MonitorRequest(
            table: "Mcast_Macs_Remote",
            columns: ["MAC", "logical_switch", "locator_set", "ipaddr"]),
        MonitorRequest(
            table: "Ucast_Macs_Local", columns: ["MAC", "logical_switch", "locator", "ipaddr"]),
        MonitorRequest(
            table: "Mcast_Macs_Local", columns: ["MAC", "logical_switch", "locator_set", "ipaddr"]),
        MonitorRequest(table: "Tunnel", columns: ["local", "remote", "bfd_params"]),
        MonitorRequest(
            table: "Logical_Router",
            columns: ["name", "description", "switch_binding", "static_routes", "other_config"]),
    ]

    /// What vtepd follows and reads for its reports: every table of `monitorRequests` but
    /// Ucast_Macs_Local, which holds a row per MAC learned behind a gateway's ports (a million
    /// of ours at the MAC table's default limit: more than one OVSDB message carries, and a
    /// gigabyte as rows in memory). vtepd writes our rows (`LocalMACPublisher`) and needs
    /// no one's for forwarding.
    public static let followedRequests = monitorRequests.filter { $0.table != "Ucast_Macs_Local" }

    /// A gateway (vtep(5) Physical_Switch): the addresses its tunnels end on, its ports.
    public struct PhysicalSwitch: Hashable, Sendable {
        public var uuid: UUID
        public var name: String
        public var description: String
        public var tunnelIPs: [String]
        public var ports: [UUID]
    }

    /// A port of a physical switch; `vlanBindings` maps VLAN id (0 = untagged) to the
    /// Logical_Switch its frames belong to.
    public struct PhysicalPort: Hashable, Sendable {
        public var uuid: UUID
        public var name: String
        public var description: String
        public var vlanBindings: [UInt16: UUID]
    }

    /// A layer-2 overlay: `tunnelKey` is the VNI (none until a controller or operator sets it).
    public struct LogicalSwitch: Hashable, Sendable {
        public var uuid: UUID
        public var name: String
        public var description: String
        public var tunnelKey: Int?
        /// `service_node` or `source_node`; none means service_node (vtep(5)).
        public var replicationMode: String?
        public var otherConfig: [String: String]
    }

    /// A tunnel destination: a remote VTEP's address and the encapsulation spoken to it.
    public struct PhysicalLocator: Hashable, Sendable {
        public var uuid: UUID
        public var dstIP: String
        public var encapsulationType: String
    }

    /// The locators a multicast MAC is replicated to.
    public struct PhysicalLocatorSet: Hashable, Sendable {
        public var uuid: UUID
        public var locators: [UUID]
    }

    /// A unicast MAC reached through one locator: Ucast_Macs_Remote (behind a remote VTEP) or
    /// Ucast_Macs_Local (behind one of our ports, published by us).
    public struct UcastMAC: Hashable, Sendable {
        public var uuid: UUID
        public var mac: String
        public var logicalSwitch: UUID
        public var locator: UUID
        public var ipaddr: String
    }

    /// Mcast_Macs_Remote: a multicast MAC, or `unknown-dst` for all BUM traffic, replicated to
    /// a locator set; Mcast_Macs_Local: where the gateway itself takes such traffic in (our
    /// own tunnel address, published by us).
    public struct McastMAC: Hashable, Sendable {
        public var uuid: UUID
        public var mac: String
        public var logicalSwitch: UUID
        public var locatorSet: UUID
        public var ipaddr: String
    }

    /// A tunnel between two locators (vtep(5) Tunnel, referenced from Physical_Switch
    /// `tunnels`): the controller's `bfd_params` for the BFD session over it.
    public struct Tunnel: Hashable, Sendable {
        public var uuid: UUID
        public var local: UUID
        public var remote: UUID
        public var bfdParams: [String: String]
    }

    /// A logical router (vtep(5) Logical_Router): its interfaces (`switch_binding`: address
    /// with prefix length → Logical_Switch), its `static_routes` (prefix → next hop) and its
    /// `other_config`, where vtepd reads the NAT rules.
    public struct LogicalRouter: Hashable, Sendable {
        public var uuid: UUID
        public var name: String
        public var description: String
        public var switchBinding: [String: UUID]
        public var staticRoutes: [String: String]
        public var otherConfig: [String: String]
    }

    /// A row that could not be read as its table's type.
    public struct RowError: Error, Hashable, Sendable, CustomStringConvertible {
        public var table: String
        public var uuid: UUID
        public var reason: String

        public var description: String { "hardware_vtep \(table) row \(uuid): \(reason)" }
    }

    /// The typed contents of a replica.
    public struct Database: Hashable, Sendable {
        public var physicalSwitches: [UUID: PhysicalSwitch] = [:]
        public var physicalPorts: [UUID: PhysicalPort] = [:]
        public var logicalSwitches: [UUID: LogicalSwitch] = [:]
        public var physicalLocators: [UUID: PhysicalLocator] = [:]
        public var physicalLocatorSets: [UUID: PhysicalLocatorSet] = [:]
        public var ucastMacsRemote: [UUID: UcastMAC] = [:]
        public var mcastMacsRemote: [UUID: McastMAC] = [:]
        public var ucastMacsLocal: [UUID: UcastMAC] = [:]
        public var mcastMacsLocal: [UUID: McastMAC] = [:]
        public var tunnels: [UUID: Tunnel] = [:]
        public var logicalRouters: [UUID: LogicalRouter] = [:]
        /// Rows left out, one per row.
        public var problems: [RowError] = []

        public init() {}

        public init(_ replica: Replica) {
            physicalSwitches = Self.decode("Physical_Switch", replica, &problems) { uuid, row in
                PhysicalSwitch(
                    uuid: uuid, name: try row.string("name"),
                    description: try row.string("description", default: ""),
                    tunnelIPs: try row.strings("tunnel_ips"), ports: try row.uuids("ports"))
            }
            physicalPorts = Self.decode("Physical_Port", replica, &problems) { uuid, row in
                PhysicalPort(
                    uuid: uuid, name: try row.string("name"),
                    description: try row.string("description", default: ""),
                    vlanBindings: try row.vlanBindings("vlan_bindings"))
            }
            logicalSwitches = Self.decode("Logical_Switch", replica, &problems) { uuid, row in
                LogicalSwitch(
                    uuid: uuid, name: try row.string("name"),
                    description: try row.string("description", default: ""),
                    tunnelKey: try row.optionalInteger("tunnel_key"),
                    replicationMode: try row.optionalString("replication_mode"),
                    otherConfig: try row.stringMap("other_config"))
            }
            physicalLocators = Self.decode("Physical_Locator", replica, &problems) { uuid, row in
                PhysicalLocator(
                    uuid: uuid, dstIP: try row.string("dst_ip"),
                    encapsulationType: try row.string("encapsulation_type"))
            }
            physicalLocatorSets = Self.decode("Physical_Locator_Set", replica, &problems) {
                uuid, row in
                PhysicalLocatorSet(uuid: uuid, locators: try row.uuids("locators"))
            }
            ucastMacsRemote = Self.decode("Ucast_Macs_Remote", replica, &problems) { uuid, row in
                try UcastMAC(uuid: uuid, row)
            }
            mcastMacsRemote = Self.decode("Mcast_Macs_Remote", replica, &problems) { uuid, row in
                try McastMAC(uuid: uuid, row)
            }
            ucastMacsLocal = Self.decode("Ucast_Macs_Local", replica, &problems) { uuid, row in
                try UcastMAC(uuid: uuid, row)
            }
            mcastMacsLocal = Self.decode("Mcast_Macs_Local", replica, &problems) { uuid, row in
                try McastMAC(uuid: uuid, row)
            }
            tunnels = Self.decode("Tunnel", replica, &problems) { uuid, row in
                Tunnel(
                    uuid: uuid, local: try row.uuid("local"), remote: try row.uuid("remote"),
                    bfdParams: try row.stringMap("bfd_params"))
            }
            logicalRouters = Self.decode("Logical_Router", replica, &problems) { uuid, row in
                LogicalRouter(
                    uuid: uuid, name: try row.string("name"),
                    description: try row.string("description", default: ""),
                    switchBinding: try row.uuidMap("switch_binding"),
                    staticRoutes: try row.stringMap("static_routes"),
                    otherConfig: try row.stringMap("other_config"))
            }
        }

        /// The logical switch called `name`, if there is exactly one.
        public func logicalSwitch(named name: String) -> LogicalSwitch? {
            let matches = logicalSwitches.values.filter { $0.name == name }
            return matches.count == 1 ? matches.first : nil
        }

        private static func decode<Value>(
            _ table: String, _ replica: Replica, _ problems: inout [RowError],
            _ make: (UUID, RowReader) throws -> Value
        ) -> [UUID: Value] {
            var values: [UUID: Value] = [:]
            for (uuid, row) in replica[table].sorted(by: { $0.key < $1.key }) {
                do {
                    values[uuid] = try make(uuid, RowReader(row: row))
                } catch let error as MalformedData {
                    problems.append(RowError(table: table, uuid: uuid, reason: error.reason))
                } catch {
                    problems.append(RowError(table: table, uuid: uuid, reason: "\(error)"))
                }
            }
            return values
        }
    }
}

extension HardwareVTEP.UcastMAC {
    fileprivate init(uuid: UUID, _ row: RowReader) throws(MalformedData) {
        self.init(
            uuid: uuid, mac: try row.string("MAC"), logicalSwitch: try row.uuid("logical_switch"),
            locator: try row.uuid("locator"), ipaddr: try row.string("ipaddr", default: ""))
    }
}

extension HardwareVTEP.McastMAC {
    fileprivate init(uuid: UUID, _ row: RowReader) throws(MalformedData) {
        self.init(
            uuid: uuid, mac: try row.string("MAC"), logicalSwitch: try row.uuid("logical_switch"),
            locatorSet: try row.uuid("locator_set"), ipaddr: try row.string("ipaddr", default: ""))
    }
}

/// Reads a row's columns as the types the schema gives them, saying which column is wrong.
private struct RowReader {
    var row: Row

    func datum(_ column: String) throws(MalformedData) -> Datum {
        guard let datum = row[column] else { throw MalformedData("column \(column) is missing") }
        return datum
    }

    func string(_ column: String, default fallback: String? = nil) throws(MalformedData) -> String {
        guard let datum = row[column] else {
            if let fallback { return fallback }
            throw MalformedData("column \(column) is missing")
        }
        guard case .atom(.string(let value)) = datum else {
            throw MalformedData("column \(column) should be a string, is \(datum)")
        }
        return value
    }

    func uuid(_ column: String) throws(MalformedData) -> UUID {
        let datum = try datum(column)
        guard case .atom(.uuid(let value)) = datum else {
            throw MalformedData("column \(column) should be a UUID, is \(datum)")
        }
        return value
    }

    /// A column with min 0, max 1: an empty set or one atom.
    func optionalAtom(_ column: String) throws(MalformedData) -> Atom? {
        guard let datum = row[column] else { return nil }
        let atoms = datum.atoms
        guard atoms.count <= 1, datum.pairs == nil || datum == .empty else {
            throw MalformedData("column \(column) should hold at most one value, is \(datum)")
        }
        return atoms.first
    }

    func optionalInteger(_ column: String) throws(MalformedData) -> Int? {
        switch try optionalAtom(column) {
        case nil: return nil
        case .integer(let value): return value
        case let other?: throw MalformedData("column \(column) should be an integer, is \(other)")
        }
    }

    func optionalString(_ column: String) throws(MalformedData) -> String? {
        switch try optionalAtom(column) {
        case nil: return nil
        case .string(let value): return value
        case let other?: throw MalformedData("column \(column) should be a string, is \(other)")
        }
    }

    func strings(_ column: String) throws(MalformedData) -> [String] {
        guard let datum = row[column] else { return [] }
        var values: [String] = []
        for atom in try setAtoms(column, datum) {
            guard case .string(let value) = atom else {
                throw MalformedData("column \(column) should hold strings, has \(atom)")
            }
            values.append(value)
        }
        return values
    }

    func uuids(_ column: String) throws(MalformedData) -> [UUID] {
        guard let datum = row[column] else { return [] }
        var values: [UUID] = []
        for atom in try setAtoms(column, datum) {
            guard case .uuid(let value) = atom else {
                throw MalformedData("column \(column) should hold UUIDs, has \(atom)")
            }
            values.append(value)
        }
        return values
    }

    func setAtoms(_ column: String, _ datum: Datum) throws(MalformedData) -> [Atom] {
        if case .map = datum, datum.pairs?.isEmpty == false {
            throw MalformedData("column \(column) should be a set, is a map")
        }
        return datum.atoms
    }

    func map(_ column: String) throws(MalformedData) -> [Atom: Atom] {
        guard let datum = row[column] else { return [:] }
        guard let pairs = datum.pairs else {
            throw MalformedData("column \(column) should be a map, is \(datum)")
        }
        return pairs
    }

    func stringMap(_ column: String) throws(MalformedData) -> [String: String] {
        try stringKeyedMap(column, of: "strings") {
            if case .string(let v) = $0 { v } else { nil }
        }
    }

    func uuidMap(_ column: String) throws(MalformedData) -> [String: UUID] {
        try stringKeyedMap(column, of: "UUIDs") {
            if case .uuid(let v) = $0 { v } else { nil }
        }
    }

    /// A map column with string keys whose values `value` reads (nil: not of its type).
    private func stringKeyedMap<Value>(
        _ column: String, of kind: String, _ value: (Atom) -> Value?
    ) throws(MalformedData) -> [String: Value] {
        var values: [String: Value] = [:]
        for (key, atom) in try map(column) {
            guard case .string(let k) = key, let v = value(atom) else {
                throw MalformedData(
                    "column \(column) should map strings to \(kind), has \(key)→\(atom)")
            }
            values[k] = v
        }
        return values
    }

    func vlanBindings(_ column: String) throws(MalformedData) -> [UInt16: UUID] {
        var values: [UInt16: UUID] = [:]
        for (key, value) in try map(column) {
            guard case .integer(let vlan) = key, (0...4095).contains(vlan) else {
                throw MalformedData("column \(column): \(key) is not a VLAN id (0–4095)")
            }
            guard case .uuid(let uuid) = value else {
                throw MalformedData("column \(column): VLAN \(vlan) maps to \(value), not a UUID")
            }
            values[UInt16(vlan)] = uuid
        }
        return values
    }
}
