import ControlAPI
import OVSDB
import Packet
import Routing

/// The shell's logical-router commands as hardware_vtep writes: Logical_Router rows, their
/// `switch_binding` (interface address → Logical_Switch), `static_routes` and the NAT rules
/// in `other_config` (docs/routers.md). Each change is checked against the whole router it
/// makes (`LogicalRouter`'s rules: overlapping interfaces, next hops and NAT addresses off
/// every interface) and refused with the reason before anything is written.
extension SwitchDatabase {
    /// The writes of a router command; nil for any other command.
    func routerOperations(_ command: any ControlCommand, _ db: HardwareVTEP.Database)
        throws(ControlFailure) -> [Operation]?
    {
        switch command {
        case let c as AddLogicalRouter:
            if db.logicalRouters.values.contains(where: { $0.name == c.name }) {
                throw ControlFailure("logical router \(c.name) exists already")
            }
            return [.insert(table: "Logical_Router", row: Row(["name": .atom(.string(c.name))]))]
        case let c as RemoveLogicalRouter:
            let row = try router(c.name, db)
            return [.delete(table: "Logical_Router", where: [uuidIs(row.uuid)])]
        case let c as SetRouterInterface:
            var row = try router(c.router, db)
            let ls = try logicalSwitch(c.logicalSwitch, db)
            if row.switchBinding[c.address] == ls.uuid {
                throw ControlFailure(
                    "router \(row.name) already has \(c.address) on \(c.logicalSwitch)")
            }
            // It replaces the switch's address of the same family (a switch's interface has
            // at most one IPv4 and one IPv6 address).
            let isIPv6 = c.address.contains(":")
            row.switchBinding = row.switchBinding.filter {
                $0.value != ls.uuid || $0.key.contains(":") != isIPv6
            }
            row.switchBinding[c.address] = ls.uuid
            return try rewrite(row, db)
        case let c as RemoveRouterInterface:
            var row = try router(c.router, db)
            let ls = try logicalSwitch(c.logicalSwitch, db)
            // Without an address, the interface goes with all its addresses.
            let addresses = row.switchBinding.filter {
                $0.value == ls.uuid && (c.address == nil || c.address == $0.key)
            }
            guard !addresses.isEmpty else {
                throw ControlFailure(
                    "router \(row.name) has no interface on \(c.logicalSwitch)"
                        + (c.address.map { " with address \($0)" } ?? "") + "; nothing removed")
            }
            for address in addresses.keys { row.switchBinding[address] = nil }
            return try rewrite(row, db)
        case let c as AddRouterRoute:
            let c = c.route
            var row = try router(c.router, db)
            if let via = row.staticRoutes[c.prefix] {
                throw ControlFailure(
                    "router \(row.name) already routes \(c.prefix) via \(via); remove it first")
            }
            row.staticRoutes[c.prefix] = c.nextHop
            return try rewrite(row, db)
        case let c as RemoveRouterRoute:
            let c = c.route
            var row = try router(c.router, db)
            guard row.staticRoutes[c.prefix].map(Self.canonical) == Self.canonical(c.nextHop) else {
                throw ControlFailure(
                    "router \(row.name) has no route to \(c.prefix) via \(c.nextHop);"
                        + " nothing removed")
            }
            row.staticRoutes[c.prefix] = nil
            return try rewrite(row, db)
        case let c as AddRouterNAT:
            var row = try router(c.router, db)
            let rule = c.rule
            if let value = row.otherConfig[rule.key] {
                throw ControlFailure(
                    "router \(row.name) already has NAT rule \(rule.key) → \(value);"
                        + " remove it first")
            }
            row.otherConfig[rule.key] = rule.value
            return try rewrite(row, db)
        case let c as RemoveRouterNAT:
            var row = try router(c.router, db)
            let rule = c.rule
            guard row.otherConfig[rule.key] == rule.value else {
                throw ControlFailure(
                    "router \(row.name) has no NAT rule \(rule.shellWords); nothing removed")
            }
            row.otherConfig[rule.key] = nil
            return try rewrite(row, db)
        case let c as SetRouterSessionLimit:
            var row = try router(c.router, db)
            row.otherConfig[LogicalRouter.sessionLimitKey] = c.limit == 0 ? nil : String(c.limit)
            return try rewrite(row, db)
        default:
            return nil
        }
    }

    /// The router `row` describes, as vtepd would build it; refuses with the reason it could
    /// not be built.
    static func check(_ row: HardwareVTEP.LogicalRouter, _ db: HardwareVTEP.Database)
        throws(ControlFailure) -> LogicalRouter
    {
        var bindings: [String: String] = [:]
        for (address, uuid) in row.switchBinding {
            bindings[address] = db.logicalSwitches[uuid]?.name ?? uuid.description
        }
        do {
            return try LogicalRouter(
                name: row.name, bindings: bindings, staticRoutes: row.staticRoutes,
                otherConfig: row.otherConfig)
        } catch {
            throw ControlFailure("logical router \(row.name): \(error); nothing changed")
        }
    }

    /// Writes `row`'s three columns whole, once it passes `check`.
    private func rewrite(_ row: HardwareVTEP.LogicalRouter, _ db: HardwareVTEP.Database)
        throws(ControlFailure) -> [Operation]
    {
        _ = try Self.check(row, db)
        func map(_ values: [String: Atom]) -> Datum {
            .map(Dictionary(uniqueKeysWithValues: values.map { (Atom.string($0.key), $0.value) }))
        }
        return [
            .update(
                table: "Logical_Router", where: [uuidIs(row.uuid)],
                row: Row([
                    "switch_binding": map(row.switchBinding.mapValues { .uuid($0) }),
                    "static_routes": map(row.staticRoutes.mapValues { .string($0) }),
                    "other_config": map(row.otherConfig.mapValues { .string($0) }),
                ]))
        ]
    }

    func router(_ name: String, _ db: HardwareVTEP.Database) throws(ControlFailure)
        -> HardwareVTEP.LogicalRouter
    {
        guard let row = db.logicalRouters.values.first(where: { $0.name == name }) else {
            let known = db.logicalRouters.values.map(\.name).sorted()
            throw ControlFailure(
                "no logical router named \(name)"
                    + (known.isEmpty ? "" : " (routers: \(known.joined(separator: ", ")))"))
        }
        return row
    }

    /// The commands that rebuild every router: after the logical switches they bind.
    func routerCommands(_ db: HardwareVTEP.Database) -> [any ControlCommand] {
        var commands: [any ControlCommand] = []
        for row in db.logicalRouters.values.sorted(by: { $0.name < $1.name }) {
            commands.append(AddLogicalRouter(name: row.name))
            for (address, uuid) in row.switchBinding.sorted(by: { $0.key < $1.key }) {
                guard let ls = db.logicalSwitches[uuid] else { continue }
                commands.append(
                    SetRouterInterface(router: row.name, logicalSwitch: ls.name, address: address))
            }
            for (prefix, hop) in row.staticRoutes.sorted(by: { $0.key < $1.key }) {
                commands.append(
                    AddRouterRoute(RouterRoute(router: row.name, prefix: prefix, nextHop: hop)))
            }
            if let limit = row.otherConfig[LogicalRouter.sessionLimitKey].flatMap({ Int($0) }) {
                commands.append(SetRouterSessionLimit(router: row.name, limit: limit))
            }
            for (key, value) in row.otherConfig.sorted(by: { $0.key < $1.key }) {
                guard let rule = try? NATRule(key: key, value: value) else { continue }
                commands.append(AddRouterNAT(router: row.name, rule: Self.setting(rule)))
            }
        }
        return commands
    }

    /// A rule as the shell types it.
    static func setting(_ rule: NATRule) -> NATSetting {
        switch rule.kind {
        case .snat(let prefix):
            NATSetting(.snat, external: "\(rule.external)", internal: "\(prefix)")
        case .floatingIP(let inside):
            NATSetting(.floatingIP, external: "\(rule.external)", internal: "\(inside)")
        case .dnat(let port, let transport, let inside, let insidePort):
            NATSetting(
                .dnat, external: "\(rule.external)" + (port.map { ":\($0)" } ?? ""),
                internal: "\(inside)" + (insidePort.map { ":\($0)" } ?? ""),
                transport: transport.flatMap { NATSetting.Transport(rawValue: $0.rawValue) })
        }
    }

    /// The routers as the database has them, each with what vtepd makes of it (nil and the
    /// reason when it cannot be built), sorted by name.
    public func routers() async throws(ControlFailure) -> [(
        row: HardwareVTEP.LogicalRouter, router: LogicalRouter?, problem: String?
    )] {
        let db = try await read()
        return db.logicalRouters.values.sorted { $0.name < $1.name }.map { row in
            do throws(ControlFailure) {
                return (row, try Self.check(row, db), nil)
            } catch {
                return (row, nil, error.message)
            }
        }
    }
}
