import ControlAPI
import Forwarding
import OVSDB

/// What a controller reads back from the switch's own rows, as vtep(5) defines them:
/// Physical_Switch `switch_fault_status`, `management_ips` and `tunnel_ips`, and each of our
/// ports' Physical_Port `port_fault_status`.
public struct SwitchStatus: Hashable, Sendable {
    /// vtep(5) Physical_Switch `switch_fault_status` values vtepd raises.
    public enum SwitchFault: String, Hashable, Sendable, CaseIterable {
        /// A MAC table (the gateway's, or a logical switch's `mac-limit`) refuses learning.
        case macTableExhaustion = "mac_table_exhaustion"
        /// No further VTEP can be discovered on multicast switches (the discovered-VTEP limit).
        case tunnelExhaustion = "tunnel_exhaustion"
    }

    /// vtep(5) Physical_Port `port_fault_status`: a VLAN binding of the port vtepd refused.
    public static let invalidVLANMap = "invalid_vlan_map"

    /// vtep(5) Logical_Binding_Stats: one binding's packets and bytes to and from the local
    /// (physical) side.
    public struct BindingStats: Hashable, Sendable {
        public var packetsFromLocal: Int
        public var bytesFromLocal: Int
        public var packetsToLocal: Int
        public var bytesToLocal: Int

        public init(
            packetsFromLocal: Int, bytesFromLocal: Int, packetsToLocal: Int, bytesToLocal: Int
        ) {
            self.packetsFromLocal = packetsFromLocal
            self.bytesFromLocal = bytesFromLocal
            self.packetsToLocal = packetsToLocal
            self.bytesToLocal = bytesToLocal
        }

        var row: Row {
            Row([
                "packets_from_local": .atom(.integer(packetsFromLocal)),
                "bytes_from_local": .atom(.integer(bytesFromLocal)),
                "packets_to_local": .atom(.integer(packetsToLocal)),
                "bytes_to_local": .atom(.integer(bytesToLocal)),
            ])
        }
    }

    public var switchFaults: Set<SwitchFault>
    /// By port name, then VLAN (0 = untagged): written to each binding's Logical_Binding_Stats
    /// row (Physical_Port `vlan_stats`); nil: not known, left alone.
    public var bindingStats: [String: [Int: BindingStats]]?
    /// The switch's management addresses; nil: unknown, the column is left as it is.
    public var managementIPs: [String]?
    /// Our tunnel IPs (the command line's): kept in `tunnel_ips` whatever else is there.
    public var tunnelIPs: [String]

    public init(
        switchFaults: Set<SwitchFault> = [], managementIPs: [String]? = nil, tunnelIPs: [String],
        bindingStats: [String: [Int: BindingStats]]? = nil
    ) {
        self.bindingStats = bindingStats
        self.switchFaults = switchFaults
        self.managementIPs = managementIPs
        self.tunnelIPs = tunnelIPs
    }
}

/// Writes `SwitchStatus` into our Physical_Switch and its ports, only where a value differs
/// from the row (a controller monitoring the rows sees an update when something changed, and
/// only then). A binding is refused, and its port gets `invalid_vlan_map`, for the reasons
/// the snapshot ignores a binding for: a reserved VLAN (4095 and above), a Logical_Switch row
/// that is missing, or a port vtepd cannot use (a name it refuses, or two ports of that name).
public struct SwitchStatusWriter: Sendable {
    public let client: OVSDBClient
    public let physicalSwitch: String

    public init(client: OVSDBClient, physicalSwitch: String) {
        self.client = client
        self.physicalSwitch = physicalSwitch
    }

    /// The rows the plan needs.
    struct Rows: Hashable, Sendable {
        struct Port: Hashable, Sendable {
            var uuid: UUID
            var name: String
            var bindings: [Int: UUID]
            var faults: Set<String>
            /// `vlan_stats`: VLAN → Logical_Binding_Stats row.
            var stats: [Int: UUID] = [:]
        }
        var switchRow: UUID
        var switchFaults: Set<String>
        var managementIPs: Set<String>
        var tunnelIPs: Set<String>
        var ports: [Port]
        var logicalSwitches: Set<UUID>
        /// Logical_Binding_Stats rows by UUID.
        var bindingStats: [UUID: SwitchStatus.BindingStats] = [:]
    }

    /// Writes what differs; returns the names of the columns written (empty: nothing to do, or
    /// our Physical_Switch is not there yet).
    @discardableResult
    public func write(_ status: SwitchStatus) async throws(ControlFailure) -> [String] {
        guard let rows = try await read() else { return [] }
        let (operations, written) = Self.plan(status, rows)
        guard !operations.isEmpty else { return [] }
        do {
            _ = try await client.transact(operations)
        } catch {
            throw ControlFailure("writing the switch's status failed: \(error)")
        }
        return written
    }

    static func plan(_ status: SwitchStatus, _ rows: Rows) -> ([Operation], [String]) {
        var operations: [Operation] = []
        var written: [String] = []
        let here = [Condition("_uuid", "==", .atom(.uuid(rows.switchRow)))]
        var update: [String: Datum] = [:]
        let faults = Set(status.switchFaults.map(\.rawValue))
        if faults != rows.switchFaults {
            update["switch_fault_status"] = .set(faults.sorted().map { .string($0) })
            written.append("switch_fault_status")
        }
        if let management = status.managementIPs, Set(management) != rows.managementIPs {
            update["management_ips"] = .set(Set(management).sorted().map { .string($0) })
            written.append("management_ips")
        }
        if !update.isEmpty {
            operations.append(.update(table: "Physical_Switch", where: here, row: Row(update)))
        }
        let missing = Set(status.tunnelIPs).subtracting(rows.tunnelIPs)
        if !missing.isEmpty {
            operations.append(
                .mutate(
                    table: "Physical_Switch", where: here,
                    mutations: [
                        Mutation("tunnel_ips", "insert", .set(missing.sorted().map { .string($0) }))
                    ]))
            written.append("tunnel_ips")
        }
        let names = Dictionary(grouping: rows.ports, by: \.name)
        for port in rows.ports.sorted(by: { $0.name < $1.name }) {
            let usable =
                names[port.name]?.count == 1
                && (try? ForwardingConfiguration(ports: [port.name])) != nil
            let refused = port.bindings.contains { vlan, ls in
                !usable || !(0...4094).contains(vlan) || !rows.logicalSwitches.contains(ls)
            }
            // Other faults someone else set stay; only ours is raised and lowered.
            var faults = port.faults
            if refused {
                faults.insert(SwitchStatus.invalidVLANMap)
            } else {
                faults.remove(SwitchStatus.invalidVLANMap)
            }
            if let stats = status.bindingStats?[port.name] {
                for (vlan, counters) in stats.sorted(by: { $0.key < $1.key })
                where port.bindings[vlan] != nil {
                    if let row = port.stats[vlan] {
                        // Rewritten only when a counter moved.
                        guard rows.bindingStats[row] != counters else { continue }
                        operations.append(
                            .update(
                                table: "Logical_Binding_Stats",
                                where: [Condition("_uuid", "==", .atom(.uuid(row)))],
                                row: counters.row))
                    } else {
                        let name =
                            "stats_\(port.name.filter { $0.isLetter || $0.isNumber })_\(vlan)"
                        operations.append(
                            .insert(
                                table: "Logical_Binding_Stats", row: counters.row, uuidName: name))
                        operations.append(
                            .mutate(
                                table: "Physical_Port",
                                where: [Condition("_uuid", "==", .atom(.uuid(port.uuid)))],
                                mutations: [
                                    Mutation(
                                        "vlan_stats", "insert",
                                        .map([.integer(vlan): .namedUUID(name)]))
                                ]))
                    }
                    written.append("Logical_Binding_Stats of \(port.name) vlan \(vlan)")
                }
            }
            guard faults != port.faults else { continue }
            operations.append(
                .update(
                    table: "Physical_Port",
                    where: [Condition("_uuid", "==", .atom(.uuid(port.uuid)))],
                    row: Row(["port_fault_status": .set(faults.sorted().map { .string($0) })])))
            written.append("port_fault_status of \(port.name)")
        }
        return (operations, written)
    }

    private func read() async throws(ControlFailure) -> Rows? {
        let results: [OperationResult]
        do {
            results = try await client.transact([
                .select(
                    table: "Physical_Switch",
                    where: [Condition("name", "==", .atom(.string(physicalSwitch)))],
                    columns: [
                        "_uuid", "ports", "switch_fault_status", "management_ips", "tunnel_ips",
                    ]),
                .select(
                    table: "Physical_Port", where: [],
                    columns: ["_uuid", "name", "vlan_bindings", "port_fault_status", "vlan_stats"]),
                .select(table: "Logical_Switch", where: [], columns: ["_uuid"]),
                .select(
                    table: "Logical_Binding_Stats", where: [],
                    columns: [
                        "_uuid", "packets_from_local", "bytes_from_local", "packets_to_local",
                        "bytes_to_local",
                    ]),
            ])
        } catch {
            throw ControlFailure("cannot read the switch's rows: \(error)")
        }
        guard results.count == 4, let switches = results[0].rows, let ports = results[1].rows,
            let logicalSwitches = results[2].rows, let stats = results[3].rows
        else { throw ControlFailure("the hardware_vtep database's answer has no rows") }
        guard let row = switches.first, let uuid = Self.uuid(row["_uuid"]) else { return nil }
        let ours = Set(row["ports"]?.atoms.compactMap { Self.uuid(.atom($0)) } ?? [])
        var result = Rows(
            switchRow: uuid, switchFaults: Self.strings(row["switch_fault_status"]),
            managementIPs: Self.strings(row["management_ips"]),
            tunnelIPs: Self.strings(row["tunnel_ips"]), ports: [],
            logicalSwitches: Set(logicalSwitches.compactMap { Self.uuid($0["_uuid"]) }))
        for port in ports {
            guard let id = Self.uuid(port["_uuid"]), ours.contains(id),
                case .string(let name)? = port["name"]?.atoms.first
            else { continue }
            var bindings: [Int: UUID] = [:]
            if case .map(let pairs)? = port["vlan_bindings"] {
                for (key, value) in pairs {
                    if case .integer(let vlan) = key, case .uuid(let ls) = value {
                        bindings[vlan] = ls
                    }
                }
            }
            var vlanStats: [Int: UUID] = [:]
            if case .map(let pairs)? = port["vlan_stats"] {
                for (key, value) in pairs {
                    if case .integer(let vlan) = key, case .uuid(let row) = value {
                        vlanStats[vlan] = row
                    }
                }
            }
            result.ports.append(
                .init(
                    uuid: id, name: name, bindings: bindings,
                    faults: Self.strings(port["port_fault_status"]), stats: vlanStats))
        }
        for row in stats {
            guard let id = Self.uuid(row["_uuid"]) else { continue }
            func integer(_ column: String) -> Int {
                if case .integer(let value)? = row[column]?.atoms.first { value } else { 0 }
            }
            result.bindingStats[id] = SwitchStatus.BindingStats(
                packetsFromLocal: integer("packets_from_local"),
                bytesFromLocal: integer("bytes_from_local"),
                packetsToLocal: integer("packets_to_local"), bytesToLocal: integer("bytes_to_local")
            )
        }
        return result
    }

    private static func strings(_ datum: Datum?) -> Set<String> {
        Set(
            datum?.atoms.compactMap {
                if case .string(let value) = $0 { value } else { nil }
            } ?? [])
    }

    private static func uuid(_ datum: Datum?) -> UUID? {
        if case .uuid(let value)? = datum?.atoms.first { value } else { nil }
    }
}
