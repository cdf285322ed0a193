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
/// wrote or read it: per (logical switch, MAC) its row. Compact, so a million rows cost 24 MiB,
/// not the gigabyte their rows as JSON would: a key is the switch's ordinal (into `switches`)
/// shifted left 48, or'ed with the MAC, and the keys are one ascending array beside their rows
/// (a dictionary of them took twice that, and three times while it grew).
public struct LocalMACMirror: Hashable, Sendable {
    /// Logical_Switch rows by ordinal; an ordinal never changes meaning.
    public private(set) var switches: [UUID] = []
    private var ordinals: [UUID: UInt64] = [:]
    /// (switch ordinal, MAC) keys, ascending, each once; `rows[i]` is the row of `keys[i]`.
    public private(set) var keys: [UInt64] = []
    private var rows: [Row128] = []
    /// Rows of ours that must go whatever is learned: a second row for one (switch, MAC), a
    /// MAC that is not one.
    public internal(set) var extra: [UUID] = []

    public init() {}

    /// The rows of ours read from the database, each with its switch and MAC (nil: the row
    /// lacks them): for each (switch, MAC), the row of the lowest UUID is kept (the one
    /// `LocalMACPlan` keeps); the others, and rows whose MAC is not one, are extra.
    public init(read: [(uuid: UUID, logicalSwitch: UUID?, mac: String?)]) {
        var found: [(key: UInt64, row: Row128)] = []
        for row in read {
            guard let sw = row.logicalSwitch, let text = row.mac, let mac = MACAddress(text),
                let row128 = Row128(row.uuid)
            else {
                extra.append(row.uuid)
                continue
            }
            found.append((key(sw, mac), row128))
        }
        found.sort { ($0.key, $0.row) < ($1.key, $1.row) }
        keys.reserveCapacity(found.count)
        rows.reserveCapacity(found.count)
        for (key, row) in found {
            if keys.last == key {
                extra.append(row.uuid)
            } else {
                keys.append(key)
                rows.append(row)
            }
        }
    }

    /// Rows of ours the database holds, by this mirror.
    public var count: Int { keys.count + extra.count }

    /// The key of (`sw`, `mac`), giving `sw` an ordinal if it has none.
    public mutating func key(_ sw: UUID, _ mac: MACAddress) -> UInt64 {
        ordinal(sw) << 48 | mac.rawValue
    }

    public mutating func ordinal(_ sw: UUID) -> UInt64 {
        if let ordinal = ordinals[sw] { return ordinal }
        let ordinal = UInt64(switches.count)
        switches.append(sw)
        ordinals[sw] = ordinal
        return ordinal
    }

    public func split(_ key: UInt64) -> (sw: UUID, mac: MACAddress) {
        (switches[Int(key >> 48)], MACAddress(rawValue: key & 0xFFFF_FFFF_FFFF))
    }

    /// The row of `key`, if the database holds one.
    public func row(_ key: UInt64) -> Row128? {
        let i = Self.lowerBound(key, in: keys)
        return i < keys.count && keys[i] == key ? rows[i] : nil
    }

    func row(at index: Int) -> Row128 { rows[index] }

    /// Where the keys of switch `ordinal` are in `keys`.
    func range(of ordinal: Int) -> Range<Int> {
        Self.lowerBound(
            UInt64(ordinal) << 48, in: keys)..<Self.lowerBound(UInt64(ordinal + 1) << 48, in: keys)
    }

    /// True when the database holds exactly `wanted` of ours, by this mirror: a row per
    /// (switch, MAC) it names and no other (no extra row, no row of another switch). One pass,
    /// nothing allocated.
    public func holds(_ wanted: [UUID: SortedMACs]) -> Bool {
        guard extra.isEmpty else { return false }
        var matched = 0
        for (sw, macs) in wanted {
            guard let ordinal = ordinals[sw] else {
                if macs.isEmpty { continue } else { return false }
            }
            let range = self.range(of: Int(ordinal))
            guard range.count == macs.count else { return false }
            for (i, mac) in zip(range, macs) where keys[i] & 0xFFFF_FFFF_FFFF != mac.rawValue {
                return false
            }
            matched += range.count
        }
        return matched == keys.count
    }

    /// Rows the database now holds too. A key the mirror already has keeps its row, and of
    /// rows for one new key the lowest is kept; the others are extra (the database holds two).
    public mutating func insert(_ added: [(key: UInt64, row: Row128)]) {
        var added = added.sorted { ($0.key, $0.row) < ($1.key, $1.row) }
        var kept = 0
        for i in added.indices {
            if (kept > 0 && added[kept - 1].key == added[i].key) || row(added[i].key) != nil {
                extra.append(added[i].row.uuid)
            } else {
                added[kept] = added[i]
                kept += 1
            }
        }
        guard kept > 0 else { return }
        let old = keys.count
        if keys.capacity < old + kept {
            // Geometric, or a batch at a time would copy the whole mirror each time.
            reserve(max(old + kept, old + old / 4))
        }
        // Merged from the back, in place (moved out of `self` meanwhile, not copied).
        var (k, r) = (keys, rows)
        (keys, rows) = ([], [])
        defer { (keys, rows) = (k, r) }
        k.append(contentsOf: repeatElement(0, count: kept))
        r.append(contentsOf: repeatElement(Row128(high: 0, low: 0), count: kept))
        k.withUnsafeMutableBufferPointer { k in
            r.withUnsafeMutableBufferPointer { r in
                var i = old - 1
                var j = kept - 1
                var w = old + kept - 1
                while j >= 0 {
                    if i >= 0 && k[i] > added[j].key {
                        (k[w], r[w]) = (k[i], r[i])
                        i -= 1
                    } else {
                        (k[w], r[w]) = (added[j].key, added[j].row)
                        j -= 1
                    }
                    w -= 1
                }
            }
        }
    }

    /// Rows the database no longer holds.
    public mutating func remove(_ removed: [UInt64]) {
        guard !removed.isEmpty else { return }
        let gone = removed.sorted()
        let start = Self.lowerBound(gone[0], in: keys)
        var kept = start
        var (k, r) = (keys, rows)
        (keys, rows) = ([], [])
        defer { (keys, rows) = (k, r) }
        k.withUnsafeMutableBufferPointer { k in
            r.withUnsafeMutableBufferPointer { r in
                var j = 0
                for i in start..<k.count {
                    while j < gone.count && gone[j] < k[i] { j += 1 }
                    if j < gone.count && gone[j] == k[i] { continue }
                    (k[kept], r[kept]) = (k[i], r[i])
                    kept += 1
                }
            }
        }
        k.removeLast(k.count - kept)
        r.removeLast(r.count - kept)
    }

    /// Room for `count` rows, so the batches of a large round do not grow the arrays again
    /// and again.
    public mutating func reserve(_ count: Int) {
        keys.reserveCapacity(count)
        rows.reserveCapacity(count)
    }

    static func lowerBound(_ key: UInt64, in keys: [UInt64]) -> Int {
        var (low, high) = (0, keys.count)
        while low < high {
            let middle = (low + high) / 2
            if keys[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// A row's UUID in 16 bytes, not the 36 characters of its text (a heap allocation each);
    /// ordered as the UUIDs' (lower case) text is.
    public struct Row128: Hashable, Comparable, Sendable {
        var high: UInt64
        var low: UInt64

        init(high: UInt64, low: UInt64) { (self.high, self.low) = (high, low) }

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

        public static func < (a: Row128, b: Row128) -> Bool { (a.high, a.low) < (b.high, b.low) }
    }
}

/// The unicast writes that bring a mirror to what is learned: what `LocalMACPlan` does for
/// Ucast_Macs_Local, computed from the mirror instead of rows read fresh, so its cost is one
/// merging pass over the learned MACs and the mirror's keys (both ascending), and nothing is
/// read from the database. Removals come first (rows that must go whatever is learned, then by
/// switch name and MAC), then insertions by switch name and MAC; a publisher writes them
/// `limit` at a time.
public struct LocalMACDelta: Sendable {
    /// Extra rows to delete (`LocalMACMirror.extra`), sorted.
    public var extra: [UUID] = []
    /// Rows to delete, with their mirror key.
    public var removals: [(key: UInt64, row: LocalMACMirror.Row128)] = []
    /// Mirror keys to insert.
    public var insertions: [UInt64] = []

    public var count: Int { extra.count + removals.count + insertions.count }

    /// Every row deleted, in order: the extra ones, then the removals.
    public var deletions: [UUID] { extra + removals.map(\.row.uuid) }

    /// - Parameters:
    ///   - wanted: per Logical_Switch row, the MACs learned behind our ports in it.
    ///   - names: each switch's name, for the order (a switch without one sorts first).
    public init(
        mirror: inout LocalMACMirror, wanted: [UUID: SortedMACs], names: [UUID: String]
    ) {
        for sw in wanted.keys { _ = mirror.ordinal(sw) }
        let switches = mirror.switches
        // Switch by switch in name order, each merged in MAC order: the changes come out in
        // the order they are written, with no sort.
        let byName = switches.indices.sorted {
            (names[switches[$0]] ?? "", switches[$0]) < (names[switches[$1]] ?? "", switches[$1])
        }
        extra = mirror.extra.sorted()
        for ordinal in byName {
            let range = mirror.range(of: ordinal)
            let macs = wanted[switches[ordinal]] ?? []
            let high = UInt64(ordinal) << 48
            var i = range.lowerBound
            var j = macs.startIndex
            while i < range.upperBound || j < macs.endIndex {
                let present = i < range.upperBound ? mirror.keys[i] : UInt64.max
                let learned = j < macs.endIndex ? high | macs[j].rawValue : UInt64.max
                if present < learned {
                    removals.append((present, mirror.row(at: i)))
                    i += 1
                } else if learned < present {
                    insertions.append(learned)
                    j += 1
                } else {
                    i += 1
                    j += 1
                }
            }
        }
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
///
/// Memory, at a million learned MACs: the mirror (24 MiB), the changes worked out (8 bytes an
/// insertion, 24 a removal) and, while a round gathers, the learned MACs (8 MiB, and as much
/// again while they are sorted); none of them is held twice, and nothing grows with how slowly
/// the database takes the writes (a batch at a time).
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
    private let learned: @Sendable () async -> [String: SortedMACs]
    private let databaseVersion: @Sendable () async -> Int
    /// After a round that left nothing to write: the bound switches it matched with a
    /// Logical_Switch row (name → row), the MACs of those it could not match (none, mostly),
    /// and the database version. While they stay so and the mirror holds what is learned, a
    /// round writes nothing and reads nothing.
    private var settled:
        (
            matched: [String: UUID], unmatched: [String: SortedMACs], version: Int,
            at: ContinuousClock.Instant
        )?
    /// The small tables (switches, locators, flood rows), and the version they were read at.
    private var small: (database: HardwareVTEP.Database, version: Int)?
    private var mirror: LocalMACMirror?
    private var counted: ContinuousClock.Instant?
    /// The changes worked out last, how many of them are written, when and at which database
    /// version they were worked out, and the switches bound then.
    private var queue:
        (
            delta: LocalMACDelta, next: Int, version: Int, at: ContinuousClock.Instant,
            switches: [String]
        )?

    /// - Parameters:
    ///   - learned: the data plane's local MACs per bound logical switch.
    ///   - databaseVersion: a number that changes whenever the database does (the control
    ///     plane's count of replica updates).
    public init(
        client: OVSDBClient, tunnelIPs: [IPAddress], settings: Settings = Settings(),
        learned: @escaping @Sendable () async -> [String: SortedMACs],
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
        let version = await databaseVersion()
        let now = ContinuousClock.now
        // While changes worked out less than `drainFor` ago at this database version wait,
        // the data plane is not asked again.
        let draining = queue.flatMap { queue in
            waiting > 0 && lastError == nil && queue.version == version
                && now - queue.at < settings.drainFor ? queue.switches : nil
        }
        var macs: [String: SortedMACs]? = nil
        if draining == nil { macs = await learned() }
        if let macs, let settled, settled.version == version, now - settled.at < settings.recheck,
            Self.unchanged(macs, settled.matched, settled.unmatched, mirror: mirror)
        {
            return
        }
        let switches = draining ?? macs!.keys.sorted()
        let asked = macs != nil
        var matched: [String: UUID] = [:]
        var unmatched: [String: SortedMACs] = [:]
        do throws(ControlFailure) {
            // Small: read every round that may write, so an unreachable database shows.
            let changed = small?.version != version
            small = (try await SwitchDatabase.read(client, tables: Self.tables), version)
            if changed { counted = nil }
            let db = small!.database
            matched = Self.match(switches, db)
            let addresses = Set(tunnelIPs.map(\.description))
            let ours = db.physicalLocators.values.filter {
                addresses.contains(SwitchDatabase.canonical($0.dstIP))
            }.map(\.uuid).sorted()
            if mirror == nil || counted.map({ now - $0 >= settings.recheck }) ?? true {
                try await check(ours)
                counted = now
            }
            if let macs { unmatched = macs.filter { matched[$0.key] == nil } }
            // Handed over, so the learned MACs are freed once the changes are worked out.
            try await write(consume macs, switches: switches, db: db, version: version, now: now)
        } catch {
            lastError = error.message
            settled = nil
            small = nil
            return
        }
        lastError = nil
        settled = nil
        // Only a round that asked the data plane knows what the mirror now matches.
        if waiting == 0 && asked { settled = (matched, unmatched, version, now) }
    }

    /// Bound switches by name matched with their Logical_Switch row; a name two rows share
    /// names neither.
    static func match(_ switches: [String], _ db: HardwareVTEP.Database) -> [String: UUID] {
        let byName = Dictionary(grouping: db.logicalSwitches.values, by: \.name)
        var matched: [String: UUID] = [:]
        for name in switches {
            guard let rows = byName[name], rows.count == 1, let ls = rows.first else { continue }
            matched[name] = ls.uuid
        }
        return matched
    }

    /// True when `macs` are what the last settled round saw: the same switches, the unmatched
    /// ones with the same MACs, and the matched ones with what the mirror holds.
    static func unchanged(
        _ macs: [String: SortedMACs], _ matched: [String: UUID], _ unmatched: [String: SortedMACs],
        mirror: LocalMACMirror?
    ) -> Bool {
        guard let mirror, macs.count == matched.count + unmatched.count else { return false }
        var wanted: [UUID: SortedMACs] = [:]
        for (name, found) in macs {
            if let sw = matched[name] {
                wanted[sw] = found
            } else if unmatched[name] != found {
                return false
            }
        }
        return mirror.holds(wanted)
    }

    /// Counts our rows; when the mirror says otherwise, mends it (see the type's comment).
    private func check(_ ours: [UUID]) async throws(ControlFailure) {
        let count = try await count(ours)
        if let mirror, mirror.count == count { return }
        var mended = LocalMACMirror()
        if count <= settings.readLimit {
            let read = try await select(ours, columns: ["_uuid", "MAC", "logical_switch"])
                .compactMap { row -> (uuid: UUID, logicalSwitch: UUID?, mac: String?)? in
                    guard let uuid = row.uuid else { return nil }
                    guard case .atom(.uuid(let sw))? = row.row["logical_switch"],
                        case .atom(.string(let mac))? = row.row["MAC"]
                    else { return (uuid, nil, nil) }
                    return (uuid, sw, mac)
                }
            mended = LocalMACMirror(read: read)
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

    /// One batch of the changes waiting (worked out afresh from what is learned when none
    /// wait, or when they were worked out `Settings.drainFor` ago or at another database
    /// version), with the flood rows of `switches`.
    private func write(
        _ gathered: consuming [String: SortedMACs]?, switches: [String],
        db: HardwareVTEP.Database, version: Int, now: ContinuousClock.Instant
    ) async throws(ControlFailure) {
        guard let publishAs = tunnelIPs.first, self.mirror != nil else { return }
        let stale =
            queue.map {
                $0.delta.count == $0.next || $0.version != version
                    || now - $0.at >= settings.drainFor
            } ?? true
        var macs = consume gathered
        // `check` dropped the changes of a round that did not ask the data plane.
        if stale && macs == nil { macs = await learned() }
        // Owned here while it changes, so a million rows are not copied on write.
        var mirror = self.mirror!
        self.mirror = nil
        defer { self.mirror = mirror }
        var switches = switches
        var trim = false
        if stale, let learned = macs {
            // The last changes and the learned MACs are not kept beside the next: a large
            // round holds one of each.
            let previous = queue?.delta.count ?? 0
            queue = nil
            macs = nil
            let matched = Self.match(Array(learned.keys), db)
            var wanted: [UUID: SortedMACs] = [:]
            for (name, sw) in matched { wanted[sw] = learned[name] }
            let names = Dictionary(
                db.logicalSwitches.values.map { ($0.uuid, $0.name) },
                uniquingKeysWith: { a, _ in a })
            let total = wanted.values.reduce(0) { $0 + $1.count }
            // Once written, the changes leave a row per learned MAC: room for them all,
            // made before the changes are worked out rather than beside them.
            mirror.reserve(total)
            let delta = LocalMACDelta(mirror: &mirror, wanted: wanted, names: names)
            switches = learned.keys.sorted()
            queue = (delta, 0, version, now, switches)
            trim = total + previous > Self.trimAbove
        }
        // The arrays of a large round are freed now: give their pages back to the system
        // (glibc keeps what is below its mapping threshold in the arena otherwise).
        if trim { Allocator.trim() }
        guard let delta = queue?.delta else { return }
        let start = queue!.next
        let end = min(delta.count, start + settings.batchLimit)
        func part(_ offset: Int, _ count: Int) -> Range<Int> {
            min(max(0, start - offset), count)..<min(max(0, end - offset), count)
        }
        let e = delta.extra.count
        let r = delta.removals.count
        let extra = delta.extra[part(0, e)]
        let removing = delta.removals[part(e, r)]
        let inserting = delta.insertions[part(e + r, delta.insertions.count)]
        // The flood rows: `LocalMACPlan` over the small tables, which hold no unicast row.
        let flooding = LocalMACPlan(
            database: db, learned: Dictionary(uniqueKeysWithValues: switches.map { ($0, []) }),
            tunnelIPs: tunnelIPs, limit: 0)
        var operations =
            extra.map {
                Operation.delete(
                    table: "Ucast_Macs_Local", where: [Condition("_uuid", "==", .atom(.uuid($0)))])
            }
            + removing.map {
                Operation.delete(
                    table: "Ucast_Macs_Local",
                    where: [Condition("_uuid", "==", .atom(.uuid($0.row.uuid)))])
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
        if !extra.isEmpty {
            let gone = Set(extra)
            mirror.extra.removeAll { gone.contains($0) }
        }
        mirror.remove(removing.map(\.key))
        var added: [(key: UInt64, row: LocalMACMirror.Row128)] = []
        added.reserveCapacity(inserting.count)
        for (k, result) in zip(inserting, results.suffix(from: operations.count - inserting.count))
        {
            if let uuid = result.uuid, let row = LocalMACMirror.Row128(uuid) {
                added.append((k, row))
            }
        }
        mirror.insert(added)
        // When the flood rows changed, so did the small tables.
        if !flooding.operations.isEmpty { small = nil }
        published += inserting.count
        withdrawn += removing.count + extra.count
    }

    /// Learned MACs beyond which working out a delta is followed by `malloc_trim`.
    static let trimAbove = 100_000

    /// What a round reads of the database: everything but Ucast_Macs_Local, which is large.
    static let tables = [
        "Logical_Switch", "Physical_Locator", "Physical_Locator_Set", "Mcast_Macs_Local",
    ]
}
