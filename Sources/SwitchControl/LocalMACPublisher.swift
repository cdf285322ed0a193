import OVSDB
import Packet

/// The writes that make hardware_vtep's local tables say what vtepd knows of its own side,
/// as Open vSwitch's VTEP emulator (ovs-vtep) keeps them for a controller:
///
/// - Ucast_Macs_Local: one row per MAC learned behind one of our ports, in its logical switch,
///   with our tunnel address as the locator: the controller sends traffic for it to us;
/// - Mcast_Macs_Local: one `unknown-dst` row per logical switch bound on our ports, with a
///   locator set of our tunnel address: where the controller sends that switch's floods.
///
/// Rows are ours when their locator (every locator of their set) is one of our tunnel
/// addresses; rows of other gateways sharing the database are never touched. A MAC no longer
/// learned (aged out, moved behind a remote VTEP, its switch unbound) loses its row; duplicate
/// rows are removed. At most `limit` unicast rows change per plan (removals first); what is
/// left over is `remaining`, for the next batch.
public struct LocalMACPlan: Hashable, Sendable {
    /// The writes, in order; empty when the database already says it all.
    public var operations: [Operation] = []
    /// Ucast_Macs_Local rows the operations insert and delete.
    public var inserted = 0
    public var deleted = 0
    /// Unicast changes beyond `limit`, left for the next plan.
    public var remaining = 0

    private struct Key: Hashable, Comparable {
        var logicalSwitch: String
        var mac: String
        var switchUUID: UUID
        static func < (a: Key, b: Key) -> Bool {
            (a.logicalSwitch, a.mac) < (b.logicalSwitch, b.mac)
        }
    }

    /// - Parameters:
    ///   - database: the rows as they are now.
    ///   - learned: per logical switch bound on our ports (by name), the MACs learned behind
    ///     our ports; a switch with no MAC still gets its `unknown-dst` row.
    ///   - tunnelIPs: our tunnel addresses; new rows name the first.
    ///   - limit: the most unicast rows inserted or deleted by one plan.
    public init(
        database db: HardwareVTEP.Database, learned: [String: Set<MACAddress>],
        tunnelIPs: [IPAddress], limit: Int
    ) {
        guard let publishAs = tunnelIPs.first else { return }
        let addresses = Set(tunnelIPs.map(\.description))
        let ourLocators = Set(
            db.physicalLocators.values.filter {
                addresses.contains(SwitchDatabase.canonical($0.dstIP))
            }
            .map(\.uuid))
        // Switches by name; a name two switches share names neither.
        let byName = Dictionary(grouping: db.logicalSwitches.values, by: \.name)
        let names: [UUID: String] = Dictionary(
            db.logicalSwitches.values.map { ($0.uuid, $0.name) }, uniquingKeysWith: { a, _ in a })
        var bound: [UUID: String] = [:]
        var wanted: Set<Key> = []
        for (name, macs) in learned {
            guard let matches = byName[name], matches.count == 1, let ls = matches.first else {
                continue
            }
            bound[ls.uuid] = name
            for mac in macs {
                wanted.insert(Key(logicalSwitch: name, mac: mac.description, switchUUID: ls.uuid))
            }
        }

        // Unicast: what is there of ours, and what should be.
        var present: [Key: [UUID]] = [:]
        for row in db.ucastMacsLocal.values where ourLocators.contains(row.locator) {
            let key = Key(
                logicalSwitch: names[row.logicalSwitch] ?? "", mac: row.mac.lowercased(),
                switchUUID: row.logicalSwitch)
            present[key, default: []].append(row.uuid)
        }
        var deletions: [(Key, UUID)] = []
        for (key, rows) in present {
            let extra = wanted.contains(key) ? Array(rows.sorted().dropFirst()) : rows
            deletions += extra.map { (key, $0) }
        }
        deletions.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        let insertions = wanted.subtracting(present.keys).sorted()
        let deleting = deletions.prefix(limit)
        let inserting = insertions.prefix(max(0, limit - deleting.count))
        remaining = deletions.count + insertions.count - deleting.count - inserting.count

        // Multicast: one unknown-dst row per bound switch, whose set is our locators only.
        var flooding: Set<UUID> = []
        var mcastDeletions: [UUID] = []
        for row in db.mcastMacsLocal.values.sorted(by: { $0.uuid < $1.uuid }) {
            let members = db.physicalLocatorSets[row.locatorSet]?.locators ?? []
            guard !members.isEmpty, members.allSatisfy(ourLocators.contains) else { continue }
            if row.mac == "unknown-dst" && bound[row.logicalSwitch] != nil
                && flooding.insert(row.logicalSwitch).inserted
            {
                continue
            }
            mcastDeletions.append(row.uuid)
        }
        let mcastInsertions = bound.filter { !flooding.contains($0.key) }.sorted {
            $0.value < $1.value
        }

        for (_, uuid) in deleting {
            operations.append(.delete(table: "Ucast_Macs_Local", where: [Self.uuidIs(uuid)]))
        }
        for uuid in mcastDeletions {
            operations.append(.delete(table: "Mcast_Macs_Local", where: [Self.uuidIs(uuid)]))
        }
        if !inserting.isEmpty || !mcastInsertions.isEmpty {
            let locator = SwitchDatabase.locatorReference(
                publishAs, db, name: "local", into: &operations)
            for key in inserting {
                operations.append(
                    .insert(
                        table: "Ucast_Macs_Local",
                        row: Row([
                            "MAC": .atom(.string(key.mac)),
                            "logical_switch": .atom(.uuid(key.switchUUID)),
                            "locator": .atom(locator),
                        ])))
            }
            if !mcastInsertions.isEmpty {
                operations.append(
                    .insert(
                        table: "Physical_Locator_Set", row: Row(["locators": .set([locator])]),
                        uuidName: "localset"))
                for (uuid, _) in mcastInsertions {
                    operations.append(
                        .insert(
                            table: "Mcast_Macs_Local",
                            row: Row([
                                "MAC": .atom(.string("unknown-dst")),
                                "logical_switch": .atom(.uuid(uuid)),
                                "locator_set": .atom(.namedUUID("localset")),
                            ])))
                }
            }
        }
        inserted = inserting.count
        deleted = deleting.count
    }

    private static func uuidIs(_ uuid: UUID) -> Condition {
        Condition("_uuid", "==", .atom(.uuid(uuid)))
    }
}

/// Keeps hardware_vtep's Ucast_Macs_Local and Mcast_Macs_Local true to the data plane (see
/// `LocalMACPlan`), in rate-limited batches: at most one transaction of at most
/// `Settings.batchLimit` unicast rows per `Settings.interval`.
///
/// Each round asks the data plane what it learned. When that, and the database, are as they
/// were at the last round that left nothing to do, nothing is read or written; otherwise the
/// local tables are read fresh and the difference written in one transaction. So a controller
/// or operator who deletes our rows (`vtep-ctl clear-local-macs`) sees them come back within
/// a round, and a restarted vtepd, which has learned nothing yet, first withdraws what its
/// predecessor published. A failed transaction (database unreachable, a switch deleted
/// meanwhile) is retried at the next round.
public actor LocalMACPublisher {
    public struct Settings: Sendable {
        public var interval: Duration = .seconds(1)
        public var batchLimit = 1000
        /// Even when nothing seems to have changed, the tables are read this often.
        public var recheck: Duration = .seconds(30)
        public init() {}
    }

    /// Rows inserted and deleted, and transactions written, since start.
    public private(set) var published = 0
    public private(set) var withdrawn = 0
    public private(set) var transactions = 0
    /// Why the last round failed; nil once one succeeds.
    public private(set) var lastError: String?

    private let client: OVSDBClient
    private let tunnelIPs: [IPAddress]
    private let settings: Settings
    private let learned: @Sendable () async -> [String: Set<MACAddress>]
    private let databaseVersion: @Sendable () async -> Int
    private var settled:
        (learned: [String: Set<MACAddress>], version: Int, at: ContinuousClock.Instant)?

    /// - Parameters:
    ///   - learned: the data plane's local MACs per bound logical switch.
    ///   - databaseVersion: a number that changes whenever the database does (the control
    ///     plane's count of replica updates).
    public init(
        client: OVSDBClient, tunnelIPs: [IPAddress], settings: Settings = Settings(),
        learned: @escaping @Sendable () async -> [String: Set<MACAddress>],
        databaseVersion: @escaping @Sendable () async -> Int
    ) {
        self.client = client
        self.tunnelIPs = tunnelIPs
        self.settings = settings
        self.learned = learned
        self.databaseVersion = databaseVersion
    }

    /// Rounds until the task is cancelled; `problem` hears when publishing starts failing
    /// (why: the first failure's reason, not each different one after it) and when it works
    /// again (nil).
    public func run(problem: @escaping @Sendable (String?) -> Void) async {
        while !Task.isCancelled {
            let before = lastError
            await round()
            if (lastError == nil) != (before == nil) && !Task.isCancelled { problem(lastError) }
            try? await Task.sleep(for: settings.interval)
        }
    }

    /// One round: reads and writes only when something may differ.
    public func round() async {
        let macs = await learned()
        let version = await databaseVersion()
        let now = ContinuousClock.now
        if let settled, settled.learned == macs, settled.version == version,
            now - settled.at < settings.recheck
        {
            return
        }
        let database: HardwareVTEP.Database
        do {
            database = try await SwitchDatabase.read(client, tables: Self.tables)
        } catch {
            lastError = error.message
            return
        }
        let plan = LocalMACPlan(
            database: database, learned: macs, tunnelIPs: tunnelIPs, limit: settings.batchLimit)
        if !plan.operations.isEmpty {
            do {
                _ = try await client.transact(plan.operations + [.comment("vtepd: local MACs")])
            } catch {
                lastError = "the hardware_vtep database refused it: \(error)"
                settled = nil
                return
            }
            transactions += 1
            published += plan.inserted
            withdrawn += plan.deleted
        }
        lastError = nil
        settled = plan.remaining == 0 ? (macs, version, now) : nil
    }

    /// What a plan reads.
    static let tables = [
        "Logical_Switch", "Physical_Locator", "Physical_Locator_Set", "Ucast_Macs_Local",
        "Mcast_Macs_Local",
    ]
}
