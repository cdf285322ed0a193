import Forwarding
import OVSDB
import Packet

/// Why `Bootstrap` could not bring the database in line with vtepd's command line.
public enum BootstrapError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Operator input: refused before anything is written.
    case invalidSettings(String)
    /// Every attempt found the rows changed between reading and writing them.
    case contended(attempts: Int)
    /// The server refused or the connection failed; the server's words.
    case database(String)

    public var description: String {
        switch self {
        case .invalidSettings(let reason):
            return reason
        case .contended(let attempts):
            return "Physical_Switch rows kept changing while vtepd wrote them (\(attempts)"
                + " attempts); is another vtepd writing the same database?"
        case .database(let reason):
            return "bootstrapping the hardware_vtep database failed: \(reason)"
        }
    }
}

/// vtepd's own rows in hardware_vtep, from its command line: our Physical_Switch with its
/// tunnel_ips (and description, if given), and one Physical_Port per access port in its
/// `ports`. Run on every (re)connection; idempotent.
///
/// It reads the rows, then writes what is missing in one transaction guarded by `wait`
/// operations (RFC 7047 §5.2.6, timeout 0) that assert the rows are still as read: if another
/// writer got in between, the transaction fails as a whole and is redone from a fresh read,
/// so two runs never create duplicates. It never touches vlan_bindings, other switches, or
/// ports no longer on the command line (those are reported, for the operator to delete).
public struct Bootstrap: Hashable, Sendable {
    public var physicalSwitch: String
    public var tunnelIPs: [IPAddress]
    public var ports: [String]
    /// Physical_Switch `description`; nil leaves whatever is there.
    public var description: String?

    /// What one run found and did.
    public struct Outcome: Hashable, Sendable {
        public var createdSwitch = false
        public var updatedTunnelIPs = false
        public var updatedDescription = false
        /// Ports added to the switch, sorted.
        public var addedPorts: [String] = []
        /// Ports of our switch in the database that the command line does not name: left in
        /// place (with their bindings), reported; sorted.
        public var portsNotConfigured: [String] = []

        public init() {}

        /// Whether the run wrote anything.
        public var changed: Bool {
            createdSwitch || updatedTunnelIPs || updatedDescription || !addedPorts.isEmpty
        }

        /// One sentence per port left behind, for the control socket.
        public func problems(physicalSwitch: String) -> [String] {
            portsNotConfigured.map {
                "Physical_Port \($0) of Physical_Switch \(physicalSwitch) is in the database but"
                    + " not on vtepd's command line; it is left as is (vtep-ctl del-port"
                    + " \(physicalSwitch) \($0) removes it)"
            }
        }
    }

    /// Checks operator input; throws `.invalidSettings` naming the bad value.
    public init(
        physicalSwitch: String, tunnelIPs: [IPAddress], ports: [String],
        description: String? = nil
    ) throws(BootstrapError) {
        guard !physicalSwitch.isEmpty,
            physicalSwitch.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F })
        else {
            throw .invalidSettings(
                "physical switch name \"\(physicalSwitch)\" is invalid: it must be printable"
                    + " characters without spaces")
        }
        guard !tunnelIPs.isEmpty else {
            throw .invalidSettings("no tunnel IP given: vtepd needs at least one VTEP address")
        }
        do {
            // The forwarding core's own rules for port names (and duplicates).
            _ = try ForwardingConfiguration(ports: ports)
            _ = try ForwardingConfiguration(locators: tunnelIPs.map { Locator($0) })
        } catch {
            throw .invalidSettings("\(error)")
        }
        self.physicalSwitch = physicalSwitch
        self.tunnelIPs = tunnelIPs
        self.ports = ports
        self.description = description
    }

    /// Reads, plans and writes, redoing the whole on a lost race, up to `attempts` times.
    public func run(on client: OVSDBClient, attempts: Int = 5) async throws(BootstrapError)
        -> Outcome
    {
        for _ in 0..<max(1, attempts) {
            let state = try await read(client)
            let (operations, outcome) = plan(state)
            guard !operations.isEmpty else { return outcome }
            do {
                _ = try await client.transact(operations)
                return outcome
            } catch OVSDBError.operationFailed(_, "wait", _, _) {
                continue  // The rows changed since `read`; read again.
            } catch OVSDBError.operationFailed(_, _, "constraint violation", _) {
                continue  // Another writer inserted our switch's name first.
            } catch {
                throw .database("\(error)")
            }
        }
        throw .contended(attempts: max(1, attempts))
    }

    /// The rows `plan` needs.
    struct State: Hashable, Sendable {
        struct Switch: Hashable, Sendable {
            var uuid: UUID
            var tunnelIPs: [String]
            var description: String
            var ports: [UUID]
        }
        /// The Global row (vtep(5): the root that keeps Physical_Switch rows alive), if any.
        var global: UUID?
        var ourSwitch: Switch?
        /// Every Physical_Port's name.
        var portNames: [UUID: String]
    }

    func read(_ client: OVSDBClient) async throws(BootstrapError) -> State {
        let results: [OperationResult]
        do {
            results = try await client.transact([
                .select(table: "Global", where: [], columns: ["_uuid"]),
                .select(
                    table: "Physical_Switch",
                    where: [Condition("name", "==", .atom(.string(physicalSwitch)))],
                    columns: ["_uuid", "tunnel_ips", "description", "ports"]),
                .select(table: "Physical_Port", where: [], columns: ["_uuid", "name"]),
            ])
        } catch {
            throw .database("\(error)")
        }
        guard results.count == 3, let globals = results[0].rows, let switches = results[1].rows,
            let ports = results[2].rows
        else { throw .database("the server's answer to our select has no rows") }
        var state = State(global: nil, ourSwitch: nil, portNames: [:])
        state.global = globals.compactMap { $0.uuidColumn("_uuid") }.min()
        if let row = switches.first, let uuid = row.uuidColumn("_uuid") {
            state.ourSwitch = State.Switch(
                uuid: uuid, tunnelIPs: row["tunnel_ips"]?.atoms.compactMap(\.string) ?? [],
                description: row["description"]?.atoms.first?.string ?? "",
                ports: row["ports"]?.atoms.compactMap(\.uuid) ?? [])
        }
        for row in ports {
            if let uuid = row.uuidColumn("_uuid"), let name = row["name"]?.atoms.first?.string {
                state.portNames[uuid] = name
            }
        }
        return state
    }

    /// The guarded operations that bring `state` in line, and what they do. Empty when
    /// nothing needs writing.
    func plan(_ state: State) -> ([Operation], Outcome) {
        var outcome = Outcome()
        var writes: [Operation] = []
        var guards: [Operation] = []
        let ipSet = Datum.set(tunnelIPs.map { .string($0.description) })

        let existing = Set(state.ourSwitch?.ports.compactMap { state.portNames[$0] } ?? [])
        let missing = ports.filter { !existing.contains($0) }
        outcome.portsNotConfigured = existing.subtracting(ports).sorted()
        outcome.addedPorts = missing.sorted()
        let portNames = missing.indices.map { "port\($0)" }
        for (name, uuidName) in zip(missing, portNames) {
            writes.append(
                .insert(
                    table: "Physical_Port", row: Row(["name": .atom(.string(name))]),
                    uuidName: uuidName))
        }
        let newPorts = Datum.set(portNames.map { .namedUUID($0) })

        if let ours = state.ourSwitch {
            let here = Condition("_uuid", "==", .atom(.uuid(ours.uuid)))
            // Still there, with the ports we read: else our port inserts could duplicate.
            guards.append(
                .wait(
                    table: "Physical_Switch", where: [here], columns: ["ports"], until: "==",
                    rows: [Row(["ports": .set(ours.ports.map { .uuid($0) })])], timeout: 0))
            var update: [String: Datum] = [:]
            let current = Set(ours.tunnelIPs.map { IPAddress($0)?.description ?? $0 })
            if current != Set(tunnelIPs.map(\.description)) {
                update["tunnel_ips"] = ipSet
                outcome.updatedTunnelIPs = true
            }
            if let description, description != ours.description {
                update["description"] = .atom(.string(description))
                outcome.updatedDescription = true
            }
            if !update.isEmpty {
                writes.append(.update(table: "Physical_Switch", where: [here], row: Row(update)))
            }
            if !missing.isEmpty {
                writes.append(
                    .mutate(
                        table: "Physical_Switch", where: [here],
                        mutations: [Mutation("ports", "insert", newPorts)]))
            }
        } else {
            outcome.createdSwitch = true
            guards.append(
                .wait(
                    table: "Physical_Switch",
                    where: [Condition("name", "==", .atom(.string(physicalSwitch)))],
                    columns: ["name"], until: "==", rows: [], timeout: 0))
            var row: [String: Datum] = [
                "name": .atom(.string(physicalSwitch)), "tunnel_ips": ipSet, "ports": newPorts,
            ]
            if let description { row["description"] = .atom(.string(description)) }
            writes.append(.insert(table: "Physical_Switch", row: Row(row), uuidName: "ps"))
            // Physical_Switch is not a root table: only Global's `switches` keeps it alive.
            if let global = state.global {
                writes.append(
                    .mutate(
                        table: "Global", where: [Condition("_uuid", "==", .atom(.uuid(global)))],
                        mutations: [Mutation("switches", "insert", .set([.namedUUID("ps")]))]))
            } else {
                guards.append(
                    .wait(
                        table: "Global", where: [], columns: ["switches"], until: "==",
                        rows: [], timeout: 0))
                writes.append(
                    .insert(table: "Global", row: Row(["switches": .set([.namedUUID("ps")])])))
            }
        }
        guard !writes.isEmpty else { return ([], outcome) }
        let comment = Operation.comment(
            "vtepd: bootstrap Physical_Switch \(physicalSwitch)")
        return (guards + writes + [comment], outcome)
    }
}

extension Row {
    fileprivate func uuidColumn(_ column: String) -> UUID? {
        self[column]?.atoms.first?.uuid
    }
}

extension Atom {
    fileprivate var string: String? {
        if case .string(let value) = self { value } else { nil }
    }
    fileprivate var uuid: UUID? {
        if case .uuid(let value) = self { value } else { nil }
    }
}
