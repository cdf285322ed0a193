import ControlAPI
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

/// What Ucast_Macs_Local holds of ours (rows on one of our locators), as a publisher last
/// wrote or read it: per (logical switch, MAC) its row. Compact, so a million rows cost tens
/// of megabytes, not the gigabyte their rows as JSON would: a key is the switch's ordinal
/// (into `switches`) shifted left 48, or'ed with the MAC.
public struct LocalMACMirror: Hashable, Sendable {
    /// Logical_Switch rows by ordinal; an ordinal never changes meaning.
    public private(set) var switches: [UUID] = []
    private var ordinals: [UUID: UInt64] = [:]
    /// (switch ordinal, MAC) → its row.
    public internal(set) var rows: [UInt64: Row128] = [:]
    /// Rows of ours that must go whatever is learned: a second row for one (switch, MAC), a
    /// MAC that is not one.
    public internal(set) var extra: [UUID] = []

    public init() {}

    /// Rows of ours the database holds, by this mirror.
    public var count: Int { rows.count + extra.count }

    public mutating func key(_ sw: UUID, _ mac: MACAddress) -> UInt64 {
        if let ordinal = ordinals[sw] { return ordinal << 48 | mac.rawValue }
        let ordinal = UInt64(switches.count)
        switches.append(sw)
        ordinals[sw] = ordinal
        return ordinal << 48 | mac.rawValue
    }

    public func split(_ key: UInt64) -> (sw: UUID, mac: MACAddress) {
        (switches[Int(key >> 48)], MACAddress(rawValue: key & 0xFFFF_FFFF_FFFF))
    }

    /// A row read from the database: the first for its (switch, MAC) is kept (the lowest
    /// UUID when read sorted), others are extra.
    public mutating func add(_ uuid: UUID, logicalSwitch: UUID, mac: String) {
        guard let address = MACAddress(mac) else {
            extra.append(uuid)
            return
        }
        let k = key(logicalSwitch, address)
        if rows[k] == nil, let row = Row128(uuid) { rows[k] = row } else { extra.append(uuid) }
    }

    /// A row's UUID in 16 bytes, not the 36 characters of its text (a heap allocation each).
    public struct Row128: Hashable, Sendable {
        var high: UInt64
        var low: UInt64

        public init?(_ uuid: UUID) {
            let hex = uuid.string.utf8.filter { $0 != UInt8(ascii: "-") }
            guard hex.count == 32 else { return nil }
            var words: [UInt64] = [0, 0]
            for (i, byte) in hex.enumerated() {
                let digit = byte <= UInt8(ascii: "9") ? byte - 0x30 : (byte | 0x20) - 0x61 + 10
                words[i / 16] = words[i / 16] << 4 | UInt64(digit)
            }
            (high, low) = (words[0], words[1])
        }

        public var uuid: UUID {
            func hex(_ value: UInt64, _ digits: Int) -> String {
                let text = String(value, radix: 16)
                return String(repeating: "0", count: digits - text.count) + text
            }
            let text =
                hex(high >> 32, 8) + "-" + hex(high >> 16 & 0xFFFF, 4) + "-"
                + hex(high & 0xFFFF, 4) + "-" + hex(low >> 48, 4) + "-"
                + hex(low & 0xFFFF_FFFF_FFFF, 12)
            return UUID(text)!
        }
    }
}

/// The unicast writes that bring a mirror to what is learned: what `LocalMACPlan` does for
/// Ucast_Macs_Local, computed from the mirror instead of rows read fresh, so its cost is one
/// pass over the learned set and the mirror and nothing is read from the database. Removals
/// come first (rows that must go whatever is learned, then by switch name and MAC), then
/// insertions by switch name and MAC; a publisher writes them `limit` at a time.
public struct LocalMACDelta: Sendable {
    /// Rows to delete, with their mirror key (nil: an extra row).
    public var deletions: [(key: UInt64?, row: UUID)] = []
    /// Mirror keys to insert.
    public var insertions: [UInt64] = []

    public var count: Int { deletions.count + insertions.count }

    /// - Parameters:
    ///   - wanted: per Logical_Switch row, the MACs learned behind our ports in it.
    ///   - names: each switch's name, for the order (a switch without one sorts first).
    public init(
        mirror: inout LocalMACMirror, wanted: [UUID: Set<MACAddress>], names: [UUID: String]
    ) {
        for (sw, macs) in wanted {
            for mac in macs {
                let k = mirror.key(sw, mac)
                if mirror.rows[k] == nil { insertions.append(k) }
            }
        }
        // Order keys: the switch's rank by name in place of its ordinal.
        let byName = mirror.switches.indices.sorted {
            (names[mirror.switches[$0]] ?? "", mirror.switches[$0])
                < (names[mirror.switches[$1]] ?? "", mirror.switches[$1])
        }
        var rank = [UInt64](repeating: 0, count: mirror.switches.count)
        for (r, ordinal) in byName.enumerated() { rank[ordinal] = UInt64(r) }
        func order(_ k: UInt64) -> UInt64 { rank[Int(k >> 48)] << 48 | k & 0xFFFF_FFFF_FFFF }
        var removing: [(order: UInt64, key: UInt64, row: UUID)] = []
        for (k, row) in mirror.rows {
            let (sw, mac) = mirror.split(k)
            if wanted[sw]?.contains(mac) != true { removing.append((order(k), k, row.uuid)) }
        }
        removing.sort { ($0.order, $0.row) < ($1.order, $1.row) }
        deletions =
            mirror.extra.sorted().map { (key: UInt64?.none, row: $0) }
            + removing.map { (key: Optional($0.key), row: $0.row) }
        // In place: a million keys sorted without a second array.
        insertions.sort { order($0) < order($1) }
    }
}

/// Keeps hardware_vtep's Ucast_Macs_Local and Mcast_Macs_Local true to the data plane (see
/// `LocalMACPlan`), in batches: one transaction of at most `Settings.batchLimit` unicast rows
/// per round, rounds back to back while changes are waiting, one per `Settings.interval`
/// otherwise.
///
/// Incremental: the publisher keeps what the database holds of ours (`LocalMACMirror`, from
/// its own writes) and writes the difference between it and what the data plane learned
/// (`LocalMACDelta`); it does not read Ucast_Macs_Local back each round (a million rows are
/// more than one OVSDB message may carry). It checks the mirror against the database by
/// counting our rows (an update that changes nothing answers its count) when the database changed
/// (the control plane's count of replica updates), after a failure, and every
/// `Settings.recheck`; when they differ (an operator's `vtep-ctl clear-local-macs`, a
/// predecessor's rows after a restart, a transaction whose outcome was lost) it reads our rows
/// again, or, beyond `Settings.readLimit` of them, withdraws them all in one delete and
/// publishes afresh. So a controller or operator who deletes our rows sees them come back
/// within a round of the change being seen, and a restarted vtepd, which has learned nothing
/// yet, first withdraws what its predecessor published. A failed transaction (database
/// unreachable, a switch deleted meanwhile) is retried at the next round.
public actor LocalMACPublisher {
    public struct Settings: Sendable {
        public var interval: Duration = .seconds(1)
        /// Unicast rows inserted or deleted by one transaction.
        public var batchLimit = 5000
        /// Changes worked out are written until none wait, the database changes, or they are
        /// this old; only then is the data plane asked again (a million MACs take a while to
        /// gather and compare, more than writing a batch).
        public var drainFor: Duration = .seconds(10)
        /// Even when nothing seems to have changed, our rows are counted this often.
        public var recheck: Duration = .seconds(30)
        /// The most rows of ours read back to mend the mirror; beyond, they are withdrawn and
        /// published afresh (a select of 100,000 rows is about 13 MB of JSON).
        public var readLimit = 100_000
        public init() {}
    }

    /// Rows inserted and deleted, and transactions written, since start.
    public private(set) var published = 0
    public private(set) var withdrawn = 0
    public private(set) var transactions = 0
    /// Why the last round failed; nil once one succeeds.
    public private(set) var lastError: String?
    /// Unicast changes waiting for a batch after the last round.
    public private(set) var waiting = 0

    private let client: OVSDBClient
    private let tunnelIPs: [IPAddress]
    private let settings: Settings
    private let learned: @Sendable () async -> [String: Set<MACAddress>]
    private let databaseVersion: @Sendable () async -> Int
    private var settled:
        (learned: [String: Set<MACAddress>], version: Int, at: ContinuousClock.Instant)?
    /// The small tables (switches, locators, flood rows), and the version they were read at.
    private var small: (database: HardwareVTEP.Database, version: Int)?
    private var mirror: LocalMACMirror?
    private var counted: ContinuousClock.Instant?
    /// The changes worked out last, how many of them are written, and when and at which
    /// database version they were worked out.
    private var queue:
        (
            delta: LocalMACDelta, next: Int, version: Int, at: ContinuousClock.Instant,
            learned: [String: Set<MACAddress>]
        )?

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
            if waiting > 0 && lastError == nil {
                await Task.yield()
            } else {
                try? await Task.sleep(for: settings.interval)
            }
        }
    }

    /// One round: reads and writes only when something may differ.
    public func round() async {
        // While changes worked out less than `drainFor` ago wait, the data plane is not asked
        // again.
        let draining = queue.flatMap { queue in
            waiting > 0 && lastError == nil && ContinuousClock.now - queue.at < settings.drainFor
                ? queue.learned : nil
        }
        let macs: [String: Set<MACAddress>]
        if let draining { macs = draining } else { macs = await learned() }
        let version = await databaseVersion()
        let now = ContinuousClock.now
        if let settled, settled.learned == macs, settled.version == version,
            now - settled.at < settings.recheck
        {
            return
        }
        do throws(ControlFailure) {
            // Small: read every round that may write, so an unreachable database shows.
            let changed = small?.version != version
            small = (try await SwitchDatabase.read(client, tables: Self.tables), version)
            if changed { counted = nil }
            let db = small!.database
            let addresses = Set(tunnelIPs.map(\.description))
            let ours = db.physicalLocators.values.filter {
                addresses.contains(SwitchDatabase.canonical($0.dstIP))
            }.map(\.uuid).sorted()
            if mirror == nil || counted.map({ now - $0 >= settings.recheck }) ?? true {
                try await check(ours)
                counted = now
            }
            try await write(macs, db: db, version: version, now: now)
        } catch {
            lastError = error.message
            settled = nil
            small = nil
            return
        }
        lastError = nil
        settled = waiting == 0 ? (macs, version, now) : nil
    }

    /// Counts our rows; when the mirror says otherwise, mends it (see the type's comment).
    private func check(_ ours: [UUID]) async throws(ControlFailure) {
        let count = try await count(ours)
        if let mirror, mirror.count == count { return }
        var mended = LocalMACMirror()
        if count <= settings.readLimit {
            // Sorted by row, so the row kept of duplicates is the one `LocalMACPlan` keeps.
            let read = try await select(ours, columns: ["_uuid", "MAC", "logical_switch"])
                .compactMap { row in row.uuid.map { (uuid: $0, row: row.row) } }
                .sorted { $0.uuid < $1.uuid }
            for row in read {
                let uuid = row.uuid
                guard case .atom(.uuid(let sw))? = row.row["logical_switch"],
                    case .atom(.string(let mac))? = row.row["MAC"]
                else {
                    mended.extra.append(uuid)
                    continue
                }
                mended.add(uuid, logicalSwitch: sw, mac: mac)
            }
        } else {
            let operations = ours.map {
                Operation.delete(
                    table: "Ucast_Macs_Local", where: [Condition("locator", "==", .atom(.uuid($0)))]
                )
            }
            do {
                let results = try await client.transact(
                    operations + [.comment("vtepd: local MACs withdrawn to publish afresh")])
                transactions += 1
                withdrawn += results.reduce(0) { $0 + ($1.count ?? 0) }
            } catch {
                throw ControlFailure("the hardware_vtep database refused it: \(error)")
            }
        }
        mirror = mended
        queue = nil
    }

    /// How many rows of ours there are: the count of an update that changes nothing (a
    /// select would answer distinct rows: one, of no columns; a million, with their UUIDs).
    private func count(_ ours: [UUID]) async throws(ControlFailure) -> Int {
        guard !ours.isEmpty else { return 0 }
        let operations = ours.map {
            Operation.update(
                table: "Ucast_Macs_Local", where: [Condition("locator", "==", .atom(.uuid($0)))],
                row: Row([:]))
        }
        do {
            return try await client.transact(operations).reduce(0) { $0 + ($1.count ?? 0) }
        } catch {
            throw ControlFailure("cannot read the hardware_vtep database: \(error)")
        }
    }

    /// Our rows (on any of `ours`), with `columns`.
    private func select(_ ours: [UUID], columns: [String]) async throws(ControlFailure)
        -> [(uuid: UUID?, row: Row)]
    {
        guard !ours.isEmpty else { return [] }
        let operations = ours.map {
            Operation.select(
                table: "Ucast_Macs_Local", where: [Condition("locator", "==", .atom(.uuid($0)))],
                columns: columns)
        }
        let results: [OperationResult]
        do {
            results = try await client.transact(operations)
        } catch {
            throw ControlFailure("cannot read the hardware_vtep database: \(error)")
        }
        return results.flatMap { $0.rows ?? [] }.map { row in
            guard case .atom(.uuid(let uuid))? = row["_uuid"] else { return (nil, row) }
            return (uuid, row)
        }
    }

    /// One batch of the changes waiting (worked out afresh from `macs` when none wait, or
    /// when they were worked out `Settings.drainFor` ago or before another database
    /// version), with the flood rows.
    private func write(
        _ macs: [String: Set<MACAddress>], db: HardwareVTEP.Database, version: Int,
        now: ContinuousClock.Instant
    ) async throws(ControlFailure) {
        guard let publishAs = tunnelIPs.first, self.mirror != nil else { return }
        // Owned here while it changes, so a million rows are not copied on write.
        var mirror = self.mirror!
        self.mirror = nil
        defer { self.mirror = mirror }
        if queue == nil || queue!.delta.count == queue!.next || queue!.version != version
            || now - queue!.at >= settings.drainFor
        {
            // Switches by name; a name two switches share names neither.
            let byName = Dictionary(grouping: db.logicalSwitches.values, by: \.name)
            var wanted: [UUID: Set<MACAddress>] = [:]
            for (name, learned) in macs {
                guard let matches = byName[name], matches.count == 1, let ls = matches.first
                else { continue }
                wanted[ls.uuid] = learned
            }
            let names = Dictionary(
                db.logicalSwitches.values.map { ($0.uuid, $0.name) },
                uniquingKeysWith: { a, _ in a })
            let previous = queue?.delta.count ?? 0
            queue = (
                LocalMACDelta(mirror: &mirror, wanted: wanted, names: names), 0, version, now, macs
            )
            // The sets of a large round are freed now: give their pages back to the system
            // (glibc keeps them in the arena otherwise).
            if wanted.values.reduce(0, { $0 + $1.count }) + previous > Self.trimAbove {
                Allocator.trim()
            }
        }
        let delta = queue!.delta
        let start = queue!.next
        let end = min(delta.count, start + settings.batchLimit)
        let deleting = delta.deletions[
            min(start, delta.deletions.count)..<min(end, delta.deletions.count)]
        let inserting = delta.insertions[
            max(0, start - delta.deletions.count)..<max(0, end - delta.deletions.count)]
        // The flood rows: `LocalMACPlan` over the small tables, which hold no unicast row.
        let flooding = LocalMACPlan(
            database: db, learned: macs.mapValues { _ in [] }, tunnelIPs: tunnelIPs, limit: 0)
        var operations = deleting.map {
            Operation.delete(
                table: "Ucast_Macs_Local", where: [Condition("_uuid", "==", .atom(.uuid($0.row)))])
        }
        operations += flooding.operations
        if !inserting.isEmpty {
            // The flood rows' new locator, if they made one, is the unicast rows' too.
            let named = flooding.operations.contains {
                if case .insert("Physical_Locator", _, "local"?) = $0 { return true }
                return false
            }
            let locator: Atom =
                named
                ? .namedUUID("local")
                : SwitchDatabase.locatorReference(publishAs, db, name: "local", into: &operations)
            if case .namedUUID = locator { small = nil }
            for k in inserting {
                let (sw, mac) = mirror.split(k)
                operations.append(
                    .insert(
                        table: "Ucast_Macs_Local",
                        row: Row([
                            "MAC": .atom(.string(mac.description)),
                            "logical_switch": .atom(.uuid(sw)),
                            "locator": .atom(locator),
                        ])))
            }
        }
        waiting = delta.count - end
        guard !operations.isEmpty else { return }
        let results: [OperationResult]
        do {
            results = try await client.transact(operations + [.comment("vtepd: local MACs")])
        } catch {
            // Whether it was committed is not known when the connection broke: count again.
            counted = nil
            queue = nil
            throw ControlFailure("the hardware_vtep database refused it: \(error)")
        }
        transactions += 1
        queue!.next = end
        let extra = Set(deleting.filter { $0.key == nil }.map(\.row))
        if !extra.isEmpty { mirror.extra.removeAll { extra.contains($0) } }
        for deletion in deleting { if let k = deletion.key { mirror.rows[k] = nil } }
        for (k, result) in zip(inserting, results.suffix(from: operations.count - inserting.count))
        {
            if let uuid = result.uuid, let row = LocalMACMirror.Row128(uuid) {
                mirror.rows[k] = row
            }
        }
        // When the flood rows changed, so did the small tables.
        if !flooding.operations.isEmpty { small = nil }
        published += inserting.count
        withdrawn += deleting.count
    }

    /// Learned MACs beyond which working out a delta is followed by `malloc_trim`.
    static let trimAbove = 100_000

    /// What a round reads of the database: everything but Ucast_Macs_Local, which is large.
    static let tables = [
        "Logical_Switch", "Physical_Locator", "Physical_Locator_Set", "Mcast_Macs_Local",
    ]
}
