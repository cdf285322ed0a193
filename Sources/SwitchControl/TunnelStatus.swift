import ControlAPI
import Forwarding
import OVSDB
import Packet

/// One remote VTEP's tunnel as vtepd keeps its Tunnel row.
public struct TunnelStatus: Hashable, Sendable {
    /// The remote VTEP's address, as its Physical_Locator `dst_ip`.
    public var remote: String
    /// Tunnel `bfd_params:enable`.
    public var enabled: Bool
    /// The session's status; nil while BFD is not running toward this VTEP.
    public var bfd: BFDStatus?

    public init(remote: String, enabled: Bool, bfd: BFDStatus?) {
        self.remote = remote
        self.enabled = enabled
        self.bfd = bfd
    }

    /// The `bfd_status` map ovs-vtep writes (vtep/ovs-vtep `run_bfd`): `enabled`, and while a
    /// session runs the state, forwarding, diagnostic and the remote's state and diagnostic.
    public var bfdStatus: [String: String] {
        var map = ["enabled": enabled ? "true" : "false"]
        if let bfd {
            map["state"] = bfd.state.description
            map["forwarding"] = bfd.forwarding ? "true" : "false"
            map["diagnostic"] = bfd.diagnostic.description
            map["remote_state"] = bfd.remoteState.description
            map["remote_diagnostic"] = bfd.remoteDiagnostic.description
        }
        return map
    }

    /// vtep(5) `bfd_config_local`: what a peer must send us BFD packets to (ovs-vtep writes
    /// the defaults explicitly).
    public static let bfdConfigLocal = [
        "bfd_dst_mac": "\(BFDTunnelFrame.defaultDestinationMAC)",
        "bfd_dst_ip": "\(BFDTunnelFrame.defaultLocalIP)",
    ]
}

/// Keeps one Tunnel row per remote VTEP in our Physical_Switch's `tunnels`, as ovs-vtep
/// creates them (`local` our locator, `remote` theirs, `bfd_config_local` written,
/// `bfd_status` kept current), writing only rows that differ; tunnels to VTEPs no longer
/// named are removed from `tunnels` (the rows go with them: Tunnel is not a root table).
public struct TunnelStatusWriter: Sendable {
    public let client: OVSDBClient
    public let physicalSwitch: String
    /// Our VTEP address: the `local` locator's `dst_ip`.
    public let localIP: String

    public init(client: OVSDBClient, physicalSwitch: String, localIP: String) {
        self.client = client
        self.physicalSwitch = physicalSwitch
        self.localIP = localIP
    }

    struct Rows: Hashable, Sendable {
        struct Tunnel: Hashable, Sendable {
            var uuid: UUID
            var local: UUID?
            var remote: UUID?
            var configLocal: [String: String]
            var status: [String: String]
        }
        var switchRow: UUID
        var tunnels: [Tunnel]
        /// Physical_Locator `dst_ip` by row (VXLAN locators).
        var locators: [UUID: String]
    }

    /// Writes what differs; returns what was written (empty: nothing to do, or our
    /// Physical_Switch is not there yet).
    @discardableResult
    public func write(_ tunnels: [TunnelStatus]) async throws(ControlFailure) -> [String] {
        guard let rows = try await read() else { return [] }
        let (operations, written) = Self.plan(tunnels, rows, localIP: localIP)
        guard !operations.isEmpty else { return [] }
        do {
            _ = try await client.transact(operations)
        } catch {
            throw ControlFailure("writing the tunnels' BFD status failed: \(error)")
        }
        return written
    }

    static func plan(_ wanted: [TunnelStatus], _ rows: Rows, localIP: String) -> (
        [Operation], [String]
    ) {
        var operations: [Operation] = []
        var written: [String] = []
        let here = [Condition("_uuid", "==", .atom(.uuid(rows.switchRow)))]
        func byIP(_ ip: String) -> UUID? {
            rows.locators.filter { $0.value == ip }.keys.sorted().first
        }
        let local: Atom
        if let uuid = byIP(localIP) {
            local = .uuid(uuid)
        } else {
            operations.append(
                .insert(
                    table: "Physical_Locator",
                    row: Row([
                        "dst_ip": .atom(.string(localIP)),
                        "encapsulation_type": .atom(.string("vxlan_over_ipv4")),
                    ]), uuidName: "local_locator"))
            local = .namedUUID("local_locator")
        }
        var kept: Set<UUID> = []
        for tunnel in wanted.sorted(by: { $0.remote < $1.remote }) {
            // As ovs-vtep: a tunnel needs the remote's locator row, which the controller made.
            guard let remote = byIP(tunnel.remote) else { continue }
            let status = tunnel.bfdStatus
            let config = TunnelStatus.bfdConfigLocal
            if let row = rows.tunnels.first(where: {
                $0.remote == remote && $0.local.map { Atom.uuid($0) } == local
            }) {
                kept.insert(row.uuid)
                var update: [String: Datum] = [:]
                if row.status != status { update["bfd_status"] = Self.map(status) }
                if row.configLocal != config { update["bfd_config_local"] = Self.map(config) }
                guard !update.isEmpty else { continue }
                operations.append(
                    .update(
                        table: "Tunnel", where: [Condition("_uuid", "==", .atom(.uuid(row.uuid)))],
                        row: Row(update)))
                written.append(
                    "Tunnel to \(tunnel.remote): \(update.keys.sorted().joined(separator: ", "))")
            } else {
                let name = "tunnel_" + tunnel.remote.filter { $0.isLetter || $0.isNumber }
                operations.append(
                    .insert(
                        table: "Tunnel",
                        row: Row([
                            "local": .atom(local), "remote": .atom(.uuid(remote)),
                            "bfd_config_local": Self.map(config), "bfd_status": Self.map(status),
                        ]), uuidName: name))
                operations.append(
                    .mutate(
                        table: "Physical_Switch", where: here,
                        mutations: [Mutation("tunnels", "insert", .set([.namedUUID(name)]))]))
                written.append("Tunnel to \(tunnel.remote) created")
            }
        }
        let gone = rows.tunnels.map(\.uuid).filter { !kept.contains($0) }.sorted()
        if !gone.isEmpty {
            operations.append(
                .mutate(
                    table: "Physical_Switch", where: here,
                    mutations: [Mutation("tunnels", "delete", .set(gone.map { .uuid($0) }))]))
            written.append("\(gone.count) tunnel(s) removed")
        }
        // A local locator inserted for no tunnel would be an orphan the server refuses.
        if written.isEmpty { return ([], []) }
        return (operations, written)
    }

    private static func map(_ pairs: [String: String]) -> Datum {
        .map(
            Dictionary(
                uniqueKeysWithValues: pairs.map { (Atom.string($0.key), Atom.string($0.value)) }))
    }

    private func read() async throws(ControlFailure) -> Rows? {
        let results: [OperationResult]
        do {
            results = try await client.transact([
                .select(
                    table: "Physical_Switch",
                    where: [Condition("name", "==", .atom(.string(physicalSwitch)))],
                    columns: ["_uuid", "tunnels"]),
                .select(
                    table: "Tunnel", where: [],
                    columns: ["_uuid", "local", "remote", "bfd_config_local", "bfd_status"]),
                .select(table: "Physical_Locator", where: [], columns: ["_uuid", "dst_ip"]),
            ])
        } catch {
            throw ControlFailure("cannot read the tunnels' rows: \(error)")
        }
        guard results.count == 3, let switches = results[0].rows, let tunnels = results[1].rows,
            let locators = results[2].rows
        else { throw ControlFailure("the hardware_vtep database's answer has no rows") }
        guard let row = switches.first, let uuid = Self.uuid(row["_uuid"]) else { return nil }
        let ours = Set(row["tunnels"]?.atoms.compactMap { Self.uuid(.atom($0)) } ?? [])
        var result = Rows(switchRow: uuid, tunnels: [], locators: [:])
        for tunnel in tunnels {
            guard let id = Self.uuid(tunnel["_uuid"]), ours.contains(id) else { continue }
            result.tunnels.append(
                .init(
                    uuid: id, local: Self.uuid(tunnel["local"]),
                    remote: Self.uuid(tunnel["remote"]),
                    configLocal: Self.strings(tunnel["bfd_config_local"]),
                    status: Self.strings(tunnel["bfd_status"])))
        }
        for locator in locators {
            guard let id = Self.uuid(locator["_uuid"]),
                case .string(let ip)? = locator["dst_ip"]?.atoms.first
            else { continue }
            result.locators[id] = ip
        }
        return result
    }

    private static func strings(_ datum: Datum?) -> [String: String] {
        guard case .map(let pairs)? = datum else { return [:] }
        var result: [String: String] = [:]
        for (key, value) in pairs {
            if case .string(let k) = key, case .string(let v) = value { result[k] = v }
        }
        return result
    }

    private static func uuid(_ datum: Datum?) -> UUID? {
        if case .uuid(let value)? = datum?.atoms.first { value } else { nil }
    }
}
