import ControlAPI
import OVSDB
import Packet

/// The controllers the switch connects to: Manager rows in Global.managers, which ovsdb-server
/// itself connects (`--remote=db:hardware_vtep,Global,managers`) and reports on (`is_connected`,
/// `status`). vtepd never speaks to a controller.
///
/// The rows `set switch manager-cluster` makes carry `other_config:vtep-gateway-cluster=true`,
/// so that a later set replaces them (and `clear` removes them) while rows a controller added
/// for its other members are kept, as `vtep-ctl list Manager` shows them.
public struct ManagerCluster: Sendable {
    public let client: OVSDBClient
    static let marker = "vtep-gateway-cluster"

    public init(client: OVSDBClient) { self.client = client }

    /// One Manager row as `show switch manager-cluster` reports it.
    public struct Connection: Hashable, Sendable {
        public var target: String
        public var isConnected: Bool
        /// Manager `status` (ovsdb-server fills it: `state`, `last_error`, `sec_since_connect`,
        /// `sec_since_disconnect`, …).
        public var status: [String: String]
        /// Made by `set switch manager-cluster` (else: added by a controller or vtep-ctl).
        public var ours: Bool
    }

    struct State {
        var global: UUID?
        var managers: [UUID]
        var rows: [UUID: Connection]
    }

    /// The Manager rows referenced from Global, sorted by target.
    public func connections() async throws(ControlFailure) -> [Connection] {
        let state = try await read()
        return state.managers.compactMap { state.rows[$0] }.sorted { $0.target < $1.target }
    }

    /// Replaces our rows by one per target of `command`; keeps a row of the same target made
    /// by someone else (and marks it ours); keeps the controller's other rows.
    public func set(_ command: SetManagerCluster) async throws(ControlFailure) {
        try await write(comment: "vtepsh: \(command.shellLine)") { state in
            let wanted = command.targets
            var operations: [Operation] = []
            var remove: [Atom] = []
            var insert: [Atom] = []
            for uuid in state.managers {
                guard let row = state.rows[uuid] else { continue }
                if wanted.contains(row.target) {
                    if !row.ours {
                        operations.append(
                            .mutate(
                                table: "Manager", where: [Self.uuidIs(uuid)],
                                mutations: [
                                    Mutation(
                                        "other_config", "insert",
                                        .map([.string(Self.marker): .string("true")]))
                                ]))
                    }
                } else if row.ours {
                    remove.append(.uuid(uuid))
                }
            }
            let present = Set(state.managers.compactMap { state.rows[$0]?.target })
            for (index, target) in wanted.enumerated() where !present.contains(target) {
                let name = "manager\(index)"
                operations.append(
                    .insert(
                        table: "Manager",
                        row: Row([
                            "target": .atom(.string(target)),
                            "other_config": .map([.string(Self.marker): .string("true")]),
                        ]), uuidName: name))
                insert.append(.namedUUID(name))
            }
            return (operations, remove, insert)
        }
    }

    /// Removes the rows `set` made; a controller's own rows stay.
    public func clear() async throws(ControlFailure) {
        try await write(comment: "vtepsh: clear switch manager-cluster") { state in
            let ours = state.managers.filter { state.rows[$0]?.ours == true }
            return ([], ours.map { .uuid($0) }, [])
        }
    }

    /// The command that rebuilds our rows; nil when there are none.
    public func command() async throws(ControlFailure) -> SetManagerCluster? {
        let ours = try await connections().filter(\.ours).compactMap { Self.parse($0.target) }
        guard let port = ours.first?.port else { return nil }
        // One port for the whole cluster, as the command sets it.
        return SetManagerCluster(
            addresses: ours.filter { $0.port == port }.map(\.address), port: port)
    }

    /// `ssl:IP:PORT` / `ssl:[IPv6]:PORT` → address and port.
    static func parse(_ target: String) -> (address: IPAddress, port: Int)? {
        guard target.hasPrefix("ssl:"), let colon = target.lastIndex(of: ":"),
            let port = Int(target[target.index(after: colon)...])
        else { return nil }
        var host = target[target.index(target.startIndex, offsetBy: 4)..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return IPAddress(String(host)).map { ($0, port) }
    }

    // MARK: Pieces

    /// Reads, plans (extra operations, Global.managers references to delete and to insert)
    /// and writes in one transaction guarded by Global.managers being as read.
    private func write(
        comment: String,
        _ plan: (State) -> (operations: [Operation], remove: [Atom], insert: [Atom])
    ) async throws(ControlFailure) {
        let state = try await read()
        guard let global = state.global else {
            throw ControlFailure(
                "the hardware_vtep database has no Global row yet (vtepd writes it when it"
                    + " connects); retry")
        }
        let (operations, remove, insert) = plan(state)
        let here = [Self.uuidIs(global)]
        var mutations: [Mutation] = []
        if !remove.isEmpty { mutations.append(Mutation("managers", "delete", .set(remove))) }
        if !insert.isEmpty { mutations.append(Mutation("managers", "insert", .set(insert))) }
        var all = operations
        if !mutations.isEmpty {
            all.append(.mutate(table: "Global", where: here, mutations: mutations))
        }
        guard !all.isEmpty else { return }
        let guardRead = Operation.wait(
            table: "Global", where: here, columns: ["managers"], until: "==",
            rows: [Row(["managers": .set(state.managers.map { .uuid($0) })])], timeout: 0)
        do {
            _ = try await client.transact([guardRead] + all + [.comment(comment)])
        } catch OVSDBError.operationFailed(_, "wait", _, _) {
            throw ControlFailure(
                "the controllers were changed by another writer meanwhile; nothing changed, retry")
        } catch {
            throw ControlFailure("the hardware_vtep database refused it: \(error)")
        }
    }

    private func read() async throws(ControlFailure) -> State {
        let results: [OperationResult]
        do {
            results = try await client.transact([
                .select(table: "Global", where: [], columns: ["_uuid", "managers"]),
                .select(
                    table: "Manager", where: [],
                    columns: ["_uuid", "target", "is_connected", "status", "other_config"]),
            ])
        } catch {
            throw ControlFailure("cannot read the hardware_vtep database: \(error)")
        }
        guard results.count == 2, let globals = results[0].rows, let managers = results[1].rows
        else { throw ControlFailure("the hardware_vtep database's answer has no rows") }
        var state = State(global: nil, managers: [], rows: [:])
        if let global = globals.first {
            state.global = global["_uuid"]?.atoms.first.flatMap(Self.uuid)
            state.managers = global["managers"]?.atoms.compactMap(Self.uuid) ?? []
        }
        for row in managers {
            guard let uuid = row["_uuid"]?.atoms.first.flatMap(Self.uuid),
                case .string(let target)? = row["target"]?.atoms.first
            else { continue }
            let connected: Bool
            if case .boolean(let value)? = row["is_connected"]?.atoms.first {
                connected = value
            } else {
                connected = false
            }
            state.rows[uuid] = Connection(
                target: target, isConnected: connected, status: Self.strings(row["status"]),
                ours: Self.strings(row["other_config"])[Self.marker] == "true")
        }
        return state
    }

    private static func strings(_ datum: Datum?) -> [String: String] {
        guard case .map(let pairs)? = datum else { return [:] }
        var result: [String: String] = [:]
        for (key, value) in pairs {
            if case .string(let k) = key, case .string(let v) = value { result[k] = v }
        }
        return result
    }

    private static func uuid(_ atom: Atom) -> UUID? {
        if case .uuid(let value) = atom { value } else { nil }
    }

    private static func uuidIs(_ uuid: UUID) -> Condition {
        Condition("_uuid", "==", .atom(.uuid(uuid)))
    }
}
