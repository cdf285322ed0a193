import Appliance
import ControlAPI
import OVSDB
import Packet

/// The shell's gateway commands as hardware_vtep transactions, written as `vtep-ctl` writes
/// them (the same tables, columns and values), so that `vtep-ctl list` shows what the shell
/// did and the shell shows what vtep-ctl did. Each command reads the rows it needs, checks
/// the operator's request against them (refusing with the reason before anything is
/// written), then writes in one transaction.
///
/// What the schema cannot say goes into Logical_Switch `other_config`: `multicast-group`
/// (multicast replication) and `encapsulation` (`vxlan`, `gre`, `nvgre`; the data plane
/// reads it when it speaks GRE).
public struct SwitchDatabase: Sendable {
    public let client: OVSDBClient
    /// Our Physical_Switch: bindings are made on its ports.
    public let physicalSwitch: String

    /// hardware_vtep has one encapsulation type; an IPv6 `dst_ip` under it means VXLAN over
    /// IPv6 (see docs/database.md).
    static let locatorEncapsulation = "vxlan_over_ipv4"

    public init(client: OVSDBClient, physicalSwitch: String) {
        self.client = client
        self.physicalSwitch = physicalSwitch
    }

    // MARK: Reading

    /// The rows as they are now: one select per table, in one transaction (a consistent
    /// view, and fresher than the monitor's replica right after a write).
    public func read() async throws(ControlFailure) -> HardwareVTEP.Database {
        try await Self.read(client)
    }

    /// `read()` through `client`, of the tables named in `tables` (nil: the followed ones).
    static func read(_ client: OVSDBClient, tables: [String]? = nil)
        async throws(ControlFailure) -> HardwareVTEP.Database
    {
        // Ucast_Macs_Local only when asked for by name: it can hold a million rows.
        let requests =
            tables.map { names in HardwareVTEP.monitorRequests.filter { names.contains($0.table) } }
            ?? HardwareVTEP.followedRequests
        let operations = requests.map {
            Operation.select(
                table: $0.table, where: [], columns: $0.columns.map { ["_uuid"] + $0 })
        }
        let results: [OperationResult]
        do {
            results = try await client.transact(operations)
        } catch {
            throw ControlFailure("cannot read the hardware_vtep database: \(error)")
        }
        var tables: [String: [UUID: Row]] = [:]
        for (request, result) in zip(requests, results) {
            var rows: [UUID: Row] = [:]
            for row in result.rows ?? [] {
                guard case .atom(.uuid(let uuid))? = row["_uuid"] else { continue }
                var columns = row.columns
                columns["_uuid"] = nil
                rows[uuid] = Row(columns)
            }
            tables[request.table] = rows
        }
        return HardwareVTEP.Database(Replica(tables))
    }

    /// `show switch logical-switches`.
    public func logicalSwitches() async throws(ControlFailure) -> [LogicalSwitchReport] {
        let db = try await read()
        let ports = ourPorts(db)
        return db.logicalSwitches.values.sorted { $0.name < $1.name }.map { ls in
            let (mode, locators) = replication(of: ls, db)
            var bindings: [String] = []
            for port in ports.sorted(by: { $0.name < $1.name }) {
                for (vlan, target) in port.vlanBindings.sorted(by: { $0.key < $1.key })
                where target == ls.uuid {
                    bindings.append("\(port.name) vlan \(vlan)")
                }
            }
            return LogicalSwitchReport(
                name: ls.name, vni: ls.tunnelKey, replication: mode, locators: locators,
                encapsulation: ls.otherConfig["encapsulation"] ?? "vxlan", bindings: bindings,
                remoteMACs: db.ucastMacsRemote.values.filter { $0.logicalSwitch == ls.uuid }.count)
        }
    }

    /// The commands that rebuild the logical switches, their replication, encapsulation,
    /// bindings on our ports and static remote MACs.
    public func commands() async throws(ControlFailure) -> [any ControlCommand] {
        let db = try await read()
        var commands: [any ControlCommand] = []
        let ports = ourPorts(db).sorted { $0.name < $1.name }
        for ls in db.logicalSwitches.values.sorted(by: { $0.name < $1.name }) {
            guard let vni = ls.tunnelKey else { continue }
            commands.append(AddLogicalSwitch(name: ls.name, vni: vni))
            let (mode, locators) = replication(of: ls, db)
            let addresses = locators.compactMap(IPAddress.init)
            if !addresses.isEmpty {
                switch mode {
                case "multicast":
                    commands.append(
                        SetReplication(logicalSwitch: ls.name, .multicast(addresses[0])))
                case "head-end":
                    commands.append(SetReplication(logicalSwitch: ls.name, .headEnd(addresses)))
                default:
                    commands.append(
                        SetReplication(logicalSwitch: ls.name, .serviceNode(addresses[0])))
                }
            }
            if let text = ls.otherConfig["encapsulation"],
                let encapsulation = Encapsulation.allCases.first(where: { $0.description == text })
            {
                commands.append(SetEncapsulation(logicalSwitch: ls.name, encapsulation))
            }
            if let rate = ls.otherConfig["bum-rate-limit"].flatMap({ Int($0) }) {
                commands.append(
                    SetBUMRateLimit(
                        logicalSwitch: ls.name, framesPerSecond: rate,
                        burst: ls.otherConfig["bum-burst"].flatMap { Int($0) }))
            }
            if ls.otherConfig["arp-suppression"] == "true" {
                commands.append(SetARPSuppression(logicalSwitch: ls.name))
            }
            for port in ports {
                guard let name = try? InterfaceName(port.name) else { continue }
                for (vlan, target) in port.vlanBindings.sorted(by: { $0.key < $1.key })
                where target == ls.uuid {
                    commands.append(
                        BindPort(
                            SwitchBinding(port: name, vlan: Int(vlan), logicalSwitch: ls.name)))
                }
            }
            for mac in db.ucastMacsRemote.values.filter({ $0.logicalSwitch == ls.uuid })
                .sorted(by: { $0.mac < $1.mac })
            {
                guard let address = MACAddress(mac.mac),
                    let ip = db.physicalLocators[mac.locator].flatMap({ IPAddress($0.dstIP) })
                else { continue }
                commands.append(
                    AddRemoteMAC(
                        RemoteMAC(
                            logicalSwitch: ls.name, mac: address, vtep: ip,
                            ip: mac.ipaddr.isEmpty ? nil : IPAddress(mac.ipaddr))))
            }
        }
        return commands + routerCommands(db)
    }

    /// Remote VTEP address → the logical switches that reach it (remote MACs, replication)
    /// and the encapsulation they speak to it (`other_config:encapsulation`, VXLAN unset).
    public func locatorUse() async throws(ControlFailure) -> [String: (
        switches: Set<String>, encapsulation: String
    )] {
        let db = try await read()
        var use: [String: (switches: Set<String>, encapsulation: String)] = [:]
        func note(_ ip: String, _ ls: HardwareVTEP.LogicalSwitch) {
            var entry = use[ip] ?? ([], ls.otherConfig["encapsulation"] ?? "vxlan")
            entry.switches.insert(ls.name)
            use[ip] = entry
        }
        for ls in db.logicalSwitches.values where ls.otherConfig["multicast-group"] == nil {
            for ip in replication(of: ls, db).locators { note(ip, ls) }
        }
        for mac in db.ucastMacsRemote.values {
            guard let ls = db.logicalSwitches[mac.logicalSwitch],
                let locator = db.physicalLocators[mac.locator]
            else { continue }
            note(Self.canonical(locator.dstIP), ls)
        }
        return use
    }

    // MARK: Writing

    /// Runs one of the gateway's change commands; returns false for any other command.
    public func execute(_ command: any ControlCommand) async throws(ControlFailure) -> Bool {
        let db = try await read()
        let operations: [Operation]
        switch command {
        case let c as AddLogicalSwitch:
            let (name, vni) = (c.name, c.vni)
            if let existing = db.logicalSwitches.values.first(where: { $0.name == name }) {
                throw ControlFailure(
                    "logical switch \(name) exists already"
                        + (existing.tunnelKey.map { " (VNI \($0))" } ?? ""))
            }
            if let other = db.logicalSwitches.values.first(where: { $0.tunnelKey == vni }) {
                throw ControlFailure("VNI \(vni) is already used by logical switch \(other.name)")
            }
            operations = [
                .insert(
                    table: "Logical_Switch",
                    row: Row(["name": .atom(.string(name)), "tunnel_key": .atom(.integer(vni))]))
            ]
        case let c as RemoveLogicalSwitch:
            let (name, vni) = (c.name, c.vni)
            let ls = try logicalSwitch(name, db)
            if let vni, ls.tunnelKey != vni {
                throw ControlFailure(
                    "logical switch \(name) has VNI \(ls.tunnelKey.map(String.init) ?? "none"),"
                        + " not \(vni); nothing removed")
            }
            operations = removal(of: ls, db)
        case let c as SetReplication:
            operations = try replicationOperations(
                try logicalSwitch(c.logicalSwitch, db), c.replication, db)
        case let c as SetEncapsulation:
            let (ls, encapsulation) = (try logicalSwitch(c.logicalSwitch, db), c.encapsulation)
            operations = [
                .mutate(
                    table: "Logical_Switch", where: [uuidIs(ls.uuid)],
                    mutations: [
                        Mutation("other_config", "delete", .set([.string("encapsulation")])),
                        Mutation(
                            "other_config", "insert",
                            .map([.string("encapsulation"): .string(encapsulation.description)])),
                    ])
            ]
        case let c as SetBUMRateLimit:
            var values: [Atom: Atom] = [
                .string("bum-rate-limit"): .string(String(c.framesPerSecond))
            ]
            if let burst = c.burst { values[.string("bum-burst")] = .string(String(burst)) }
            operations = try replaceOtherConfig(of: c.logicalSwitch, Self.stormKeys, values, db)
        case let c as ClearBUMRateLimit:
            operations = try replaceOtherConfig(of: c.logicalSwitch, Self.stormKeys, [:], db)
        case let c as SetARPSuppression:
            operations = try replaceOtherConfig(
                of: c.logicalSwitch, ["arp-suppression"],
                [.string("arp-suppression"): .string("true")], db)
        case let c as ClearARPSuppression:
            operations = try replaceOtherConfig(of: c.logicalSwitch, ["arp-suppression"], [:], db)
        case let c as BindPort:
            let binding = c.value
            let ls = try logicalSwitch(binding.logicalSwitch, db)
            let port = try ourPort(binding.port.text, db)
            if let bound = port.vlanBindings[UInt16(binding.vlan)] {
                let other = db.logicalSwitches[bound]?.name ?? "\(bound)"
                throw ControlFailure(
                    bound == ls.uuid
                        ? "port \(port.name) vlan \(binding.vlan) is already bound to \(other)"
                        : "port \(port.name) vlan \(binding.vlan) is bound to logical switch"
                            + " \(other); unbind it first")
            }
            operations = [
                .mutate(
                    table: "Physical_Port", where: [uuidIs(port.uuid)],
                    mutations: [
                        Mutation(
                            "vlan_bindings", "insert",
                            .map([.integer(binding.vlan): .uuid(ls.uuid)]))
                    ])
            ]
        case let c as UnbindPort:
            let binding = c.value
            let ls = try logicalSwitch(binding.logicalSwitch, db)
            let port = try ourPort(binding.port.text, db)
            guard port.vlanBindings[UInt16(binding.vlan)] == ls.uuid else {
                throw ControlFailure(
                    "port \(port.name) vlan \(binding.vlan) is not bound to logical switch"
                        + " \(ls.name); nothing removed")
            }
            operations = [
                .mutate(
                    table: "Physical_Port", where: [uuidIs(port.uuid)],
                    mutations: [
                        Mutation("vlan_bindings", "delete", .set([.integer(binding.vlan)]))
                    ])
            ]
        case let c as AddRemoteMAC:
            let remote = c.value
            let ls = try logicalSwitch(remote.logicalSwitch, db)
            let mac = remote.mac.description
            if let existing = db.ucastMacsRemote.values.first(where: {
                $0.logicalSwitch == ls.uuid && $0.mac.lowercased() == mac
            }) {
                let location = db.physicalLocators[existing.locator]?.dstIP ?? "?"
                throw ControlFailure(
                    Self.canonical(location) == remote.vtep.description
                        ? "remote MAC \(mac) is already behind \(location) in \(ls.name)"
                        : "remote MAC \(mac) in \(ls.name) is behind \(location); remove it first")
            }
            var writes: [Operation] = []
            let locator = Self.locatorReference(remote.vtep, db, name: "locator", into: &writes)
            var row: [String: Datum] = [
                "MAC": .atom(.string(mac)), "logical_switch": .atom(.uuid(ls.uuid)),
                "locator": .atom(locator),
            ]
            if let ip = remote.ip { row["ipaddr"] = .atom(.string(ip.description)) }
            writes.append(.insert(table: "Ucast_Macs_Remote", row: Row(row)))
            operations = writes
        case let c as RemoveRemoteMAC:
            let remote = c.value
            let ls = try logicalSwitch(remote.logicalSwitch, db)
            let mac = remote.mac.description
            guard
                let row = db.ucastMacsRemote.values.first(where: {
                    $0.logicalSwitch == ls.uuid && $0.mac.lowercased() == mac
                        && db.physicalLocators[$0.locator].map { Self.canonical($0.dstIP) }
                            == remote.vtep.description
                })
            else {
                throw ControlFailure(
                    "no remote MAC \(mac) behind \(remote.vtep) in logical switch \(ls.name)")
            }
            operations = [.delete(table: "Ucast_Macs_Remote", where: [uuidIs(row.uuid)])]
        default:
            guard let writes = try routerOperations(command, db) else { return false }
            operations = writes
        }
        do {
            _ = try await client.transact(
                operations + [.comment("vtepsh: \(command.shellLine)")])
        } catch OVSDBError.operationFailed(_, _, "constraint violation", let details) {
            throw ControlFailure(
                "the hardware_vtep database refused it (another writer got there first?):"
                    + " \(details ?? "constraint violation")")
        } catch {
            throw ControlFailure("the hardware_vtep database refused it: \(error)")
        }
        return true
    }

    // MARK: Pieces

    /// Replaces a logical switch's storm-control keys (`bum-rate-limit`, `bum-burst`) with
    /// `values` (none: no limit).
    private static let stormKeys = ["bum-rate-limit", "bum-burst"]

    /// Logical switch `name`'s `other_config` with `keys` removed, then `values` inserted.
    private func replaceOtherConfig(
        of name: String, _ keys: [String], _ values: [Atom: Atom], _ db: HardwareVTEP.Database
    ) throws(ControlFailure) -> [Operation] {
        let ls = try logicalSwitch(name, db)
        var mutations = [
            Mutation("other_config", "delete", .set(keys.map { .string($0) }))
        ]
        if !values.isEmpty { mutations.append(Mutation("other_config", "insert", .map(values))) }
        return [.mutate(table: "Logical_Switch", where: [uuidIs(ls.uuid)], mutations: mutations)]
    }

    private func replicationOperations(
        _ ls: HardwareVTEP.LogicalSwitch, _ setting: ReplicationSetting,
        _ db: HardwareVTEP.Database
    ) throws(ControlFailure) -> [Operation] {
        let here = [uuidIs(ls.uuid)]
        let dropGroup = Mutation("other_config", "delete", .set([.string("multicast-group")]))
        if case .multicast(let group) = setting {
            return [
                .mutate(
                    table: "Logical_Switch", where: here,
                    mutations: [
                        dropGroup,
                        Mutation(
                            "other_config", "insert",
                            .map([.string("multicast-group"): .string(group.description)])),
                    ])
            ]
        }
        var writes: [Operation] = [
            .update(
                table: "Logical_Switch", where: here,
                row: Row([
                    "replication_mode": .atom(
                        .string(setting.mode == "head-end" ? "source_node" : "service_node"))
                ])),
            .mutate(table: "Logical_Switch", where: here, mutations: [dropGroup]),
        ]
        // vtep-ctl add-mcast-remote: the switch's unknown-dst row names a locator set; sets
        // are immutable, so a new set replaces the row.
        for row in db.mcastMacsRemote.values
        where row.logicalSwitch == ls.uuid && row.mac == "unknown-dst" {
            writes.append(.delete(table: "Mcast_Macs_Remote", where: [uuidIs(row.uuid)]))
        }
        var members: [Atom] = []
        for (index, address) in setting.addresses.enumerated() {
            members.append(
                Self.locatorReference(address, db, name: "locator\(index)", into: &writes))
        }
        writes.append(
            .insert(
                table: "Physical_Locator_Set", row: Row(["locators": .set(members)]),
                uuidName: "replication"))
        writes.append(
            .insert(
                table: "Mcast_Macs_Remote",
                row: Row([
                    "MAC": .atom(.string("unknown-dst")), "logical_switch": .atom(.uuid(ls.uuid)),
                    "locator_set": .atom(.namedUUID("replication")),
                ])))
        return writes
    }

    /// vtep-ctl del-ls, made safe: the switch's bindings, remote and local MACs go with it
    /// (they refer to it strongly, so the database would refuse the delete otherwise).
    private func removal(of ls: HardwareVTEP.LogicalSwitch, _ db: HardwareVTEP.Database)
        -> [Operation]
    {
        var writes: [Operation] = []
        for port in db.physicalPorts.values {
            let vlans = port.vlanBindings.filter { $0.value == ls.uuid }.keys.sorted()
            guard !vlans.isEmpty else { continue }
            writes.append(
                .mutate(
                    table: "Physical_Port", where: [uuidIs(port.uuid)],
                    mutations: [
                        Mutation("vlan_bindings", "delete", .set(vlans.map { .integer(Int($0)) }))
                    ]))
        }
        for table in [
            "Ucast_Macs_Remote", "Mcast_Macs_Remote", "Ucast_Macs_Local", "Mcast_Macs_Local",
        ] {
            writes.append(
                .delete(
                    table: table, where: [Condition("logical_switch", "==", .atom(.uuid(ls.uuid)))])
            )
        }
        writes.append(.delete(table: "Logical_Switch", where: [uuidIs(ls.uuid)]))
        return writes
    }

    /// The Physical_Locator row for `address` (VXLAN), or an insert of one named `name`.
    static func locatorReference(
        _ address: IPAddress, _ db: HardwareVTEP.Database, name: String,
        into writes: inout [Operation]
    ) -> Atom {
        if let row = db.physicalLocators.values.sorted(by: { $0.uuid < $1.uuid }).first(where: {
            $0.encapsulationType == Self.locatorEncapsulation
                && Self.canonical($0.dstIP) == address.description
        }) {
            return .uuid(row.uuid)
        }
        writes.append(
            .insert(
                table: "Physical_Locator",
                row: Row([
                    "dst_ip": .atom(.string(address.description)),
                    "encapsulation_type": .atom(.string(Self.locatorEncapsulation)),
                ]), uuidName: name))
        return .namedUUID(name)
    }

    private func replication(of ls: HardwareVTEP.LogicalSwitch, _ db: HardwareVTEP.Database)
        -> (mode: String, locators: [String])
    {
        if let group = ls.otherConfig["multicast-group"] { return ("multicast", [group]) }
        let mode = ls.replicationMode == "source_node" ? "head-end" : "service-node"
        var locators: [String] = []
        for row in db.mcastMacsRemote.values
        where row.logicalSwitch == ls.uuid && row.mac == "unknown-dst" {
            for locator in db.physicalLocatorSets[row.locatorSet]?.locators ?? [] {
                if let ip = db.physicalLocators[locator]?.dstIP {
                    locators.append(Self.canonical(ip))
                }
            }
        }
        return (mode, locators.sorted())
    }

    func logicalSwitch(_ name: String, _ db: HardwareVTEP.Database)
        throws(ControlFailure) -> HardwareVTEP.LogicalSwitch
    {
        guard let ls = db.logicalSwitches.values.first(where: { $0.name == name }) else {
            let known = db.logicalSwitches.values.map(\.name).sorted()
            throw ControlFailure(
                "no logical switch named \(name)"
                    + (known.isEmpty
                        ? " (there are none)" : " (there are: \(known.joined(separator: ", ")))"))
        }
        return ls
    }

    private func ourPorts(_ db: HardwareVTEP.Database) -> [HardwareVTEP.PhysicalPort] {
        guard let ps = db.physicalSwitches.values.first(where: { $0.name == physicalSwitch })
        else { return [] }
        return ps.ports.compactMap { db.physicalPorts[$0] }
    }

    private func ourPort(_ name: String, _ db: HardwareVTEP.Database)
        throws(ControlFailure) -> HardwareVTEP.PhysicalPort
    {
        let ports = ourPorts(db)
        guard let port = ports.first(where: { $0.name == name }) else {
            throw ControlFailure(
                "\(name) is not a port of physical switch \(physicalSwitch) (ports: "
                    + "\(ports.map(\.name).sorted().joined(separator: ", ")))")
        }
        return port
    }

    func uuidIs(_ uuid: UUID) -> Condition { Condition("_uuid", "==", .atom(.uuid(uuid))) }

    /// An address as we print it, so `2001:DB8::1` in a row matches `2001:db8::1` typed.
    static func canonical(_ text: String) -> String { IPAddress(text)?.description ?? text }
}
