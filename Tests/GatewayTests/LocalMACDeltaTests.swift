import Packet
import TestSupport
import Testing

@testable import OVSDB
@testable import SwitchControl

/// The incremental publisher's difference (`LocalMACDelta` over a `LocalMACMirror`) against
/// the full one (`LocalMACPlan` over the rows read fresh), on random databases and learned
/// sets: the same rows deleted, the same (switch, MAC) inserted, batch after batch to the same
/// end.
@Suite struct LocalMACDeltaTests {
    typealias Rows = LocalMACPublisherTests.Rows

    /// A random case: our rows and another gateway's on ls0 and ls1, some duplicated, one with
    /// a MAC that is not one; learned MACs overlapping what is published; ls1 bound or not.
    static func randomCase(_ random: inout SplitMix64) -> (Rows, [String: Set<MACAddress>]) {
        var rows = Rows()
        func mac() -> MACAddress {
            MACAddress(rawValue: 0x0200_0000_0000 | UInt64.random(in: 0..<64, using: &random))
        }
        for _ in 0..<Int.random(in: 0..<60, using: &random) {
            let ls = Bool.random(using: &random) ? rows.ls0 : rows.ls1
            let locator = Int.random(in: 0..<5, using: &random) == 0 ? rows.theirs : rows.ours
            // Upper case as another writer may spell it.
            let text = Bool.random(using: &random) ? "\(mac())" : "\(mac())".uppercased()
            rows.ucast(text, ls, locator)
        }
        if Bool.random(using: &random) { rows.ucast("not-a-mac", rows.ls0, rows.ours) }
        var learned: [String: Set<MACAddress>] = [
            "ls0": Set((0..<Int.random(in: 0..<50, using: &random)).map { _ in mac() })
        ]
        if Bool.random(using: &random) {
            learned["ls1"] = Set((0..<Int.random(in: 0..<50, using: &random)).map { _ in mac() })
        }
        if Bool.random(using: &random) { learned["gone"] = [mac()] }
        return (rows, learned)
    }

    /// The mirror a publisher reads from `rows`: ours, sorted by row (as `check` reads them).
    static func mirror(_ rows: Rows) -> LocalMACMirror {
        LocalMACMirror(
            read: rows.db.ucastMacsLocal.values.filter { $0.locator == rows.ours }
                // Read in no useful order: the mirror keeps the lowest UUID all the same.
                .sorted { $0.uuid > $1.uuid }.map {
                    (
                        uuid: $0.uuid, logicalSwitch: Optional($0.logicalSwitch),
                        mac: Optional($0.mac)
                    )
                })
    }

    static func wanted(_ rows: Rows, _ learned: [String: Set<MACAddress>]) -> [UUID: SortedMACs] {
        var wanted: [UUID: SortedMACs] = [:]
        for (name, macs) in learned {
            if let ls = rows.db.logicalSwitches.values.first(where: { $0.name == name }) {
                wanted[ls.uuid] = SortedMACs(macs)
            }
        }
        return wanted
    }

    static func names(_ rows: Rows) -> [UUID: String] {
        rows.db.logicalSwitches.mapValues(\.name)
    }

    @Test func theDeltaWritesWhatTheFullPlanWrites() {
        var random = SplitMix64(seed: 0x15_04)
        for _ in 0..<300 {
            let (rows, learned) = Self.randomCase(&random)
            let plan = LocalMACPlan(
                database: rows.db, learned: learned, tunnelIPs: [LocalMACPublisherTests.here],
                limit: .max)
            var mirror = Self.mirror(rows)
            let delta = LocalMACDelta(
                mirror: &mirror, wanted: Self.wanted(rows, learned), names: Self.names(rows))
            var planDeleted: Set<UUID> = []
            var planInserted: Set<String> = []
            for operation in plan.operations {
                switch operation {
                case .delete("Ucast_Macs_Local", let conditions):
                    if case .atom(.uuid(let uuid)) = conditions.first?.value {
                        planDeleted.insert(uuid)
                    }
                case .insert("Ucast_Macs_Local", let row, _):
                    if case .atom(.string(let mac))? = row["MAC"],
                        case .atom(.uuid(let ls))? = row["logical_switch"]
                    {
                        planInserted.insert("\(ls) \(mac)")
                    }
                default: break
                }
            }
            #expect(Set(delta.deletions) == planDeleted)
            #expect(delta.deletions.count == plan.deleted)
            let inserted = delta.insertions.map { mirror.split($0) }.map { "\($0.sw) \($0.mac)" }
            #expect(Set(inserted) == planInserted)
            #expect(inserted.count == plan.inserted)
        }
    }

    /// Applied `limit` at a time, the delta's batches bring the rows where the full plan's do,
    /// in as many batches, removals first.
    @Test func batchAfterBatchBothEndAlike() {
        var random = SplitMix64(seed: 0x15_05)
        for _ in 0..<100 {
            let (start, learned) = Self.randomCase(&random)
            let limit = Int.random(in: 1...7, using: &random)
            // The full plan, round after round over the rows it left.
            var rows = start
            var planBatches = 0
            while true {
                let plan = LocalMACPlan(
                    database: rows.db, learned: learned,
                    tunnelIPs: [LocalMACPublisherTests.here], limit: limit)
                guard plan.inserted + plan.deleted > 0 else { break }
                planBatches += 1
                for case .delete("Ucast_Macs_Local", let conditions) in plan.operations {
                    if case .atom(.uuid(let uuid)) = conditions.first?.value {
                        rows.db.ucastMacsLocal[uuid] = nil
                    }
                }
                for case .insert("Ucast_Macs_Local", let row, _) in plan.operations {
                    if case .atom(.string(let mac))? = row["MAC"],
                        case .atom(.uuid(let ls))? = row["logical_switch"]
                    {
                        rows.ucast(mac, ls, rows.ours)
                    }
                }
            }
            // The delta, written `limit` at a time as the publisher does.
            var mirror = Self.mirror(start)
            let delta = LocalMACDelta(
                mirror: &mirror, wanted: Self.wanted(start, learned), names: Self.names(start))
            let batches = (delta.count + limit - 1) / limit
            #expect(batches == planBatches)
            var ours = Set(
                start.db.ucastMacsLocal.values.filter { $0.locator == start.ours }.map(\.uuid))
            ours.subtract(delta.deletions)
            var published = Set(
                ours.map { uuid -> String in
                    let row = start.db.ucastMacsLocal[uuid]!
                    return "\(row.logicalSwitch) \(row.mac.lowercased())"
                })
            for k in delta.insertions {
                let (sw, mac) = mirror.split(k)
                #expect(published.insert("\(sw) \(mac)").inserted)
            }
            let planned = Set(
                rows.db.ucastMacsLocal.values.filter { $0.locator == rows.ours }.map {
                    "\($0.logicalSwitch) \($0.mac.lowercased())"
                })
            #expect(published == planned)
            #expect(
                delta.deletions.prefix(limit).count
                    == min(limit, delta.deletions.count), "removals first")
        }
    }

    /// The changes come out in the order they are written: removals by (switch name, MAC),
    /// insertions by (switch name, MAC), as sorting the sets' differences puts them.
    @Test func theDeltaIsInSwitchNameThenMACOrder() {
        var random = SplitMix64(seed: 0x15_08)
        for _ in 0..<100 {
            let (rows, learned) = Self.randomCase(&random)
            var mirror = Self.mirror(rows)
            let names = Self.names(rows)
            let delta = LocalMACDelta(
                mirror: &mirror, wanted: Self.wanted(rows, learned), names: names)
            func order(_ k: UInt64) -> String {
                let (sw, mac) = mirror.split(k)
                return "\(names[sw] ?? "") \(mac)"
            }
            let removed = delta.removals.map { order($0.key) }
            let inserted = delta.insertions.map(order)
            #expect(removed == removed.sorted())
            #expect(inserted == inserted.sorted())
            #expect(delta.extra == delta.extra.sorted())
        }
    }

    /// `SortedMACs` is the set of its MACs in ascending order, through either sort (below and
    /// above `radixAbove`), with repeats, and with MACs that share their top or middle 16 bits
    /// (a radix pass skipped).
    @Test func sortedMACsAreTheSetInOrder() {
        var random = SplitMix64(seed: 0x15_06)
        let sizes = [0, 1, 2, 100, SortedMACs.radixAbove - 1, SortedMACs.radixAbove, 30_000]
        for size in sizes {
            for (keep, fixed) in [
                (UInt64(0xFFFF_FFFF_FFFF), UInt64(0)), (0xFFFF_FFFF, 0x0600_0000_0000),
                (0xFFFF_0000_FFFF, 0x0000_1234_0000),
            ] {
                var macs = (0..<size).map { _ in
                    MACAddress(
                        rawValue: UInt64.random(in: 0..<(1 << 48), using: &random) & keep | fixed)
                }
                // A quarter again.
                macs += macs.prefix(size / 4)
                macs.shuffle(using: &random)
                let sorted = SortedMACs(macs)
                #expect(Array(sorted) == Set(macs).sorted(), "\(size) MACs")
                for mac in macs.prefix(50) { #expect(sorted.contains(mac)) }
                let absent = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
                #expect(sorted.contains(absent) == macs.contains(absent))
            }
        }
    }

    /// The mirror's arrays, changed a batch at a time (with keys it already holds, and keys
    /// it does not), against a dictionary changed alike; `holds` against the dictionary's
    /// content.
    @Test func theMirrorKeepsWhatADictionaryWould() {
        var random = SplitMix64(seed: 0x15_07)
        var mirror = LocalMACMirror()
        var model: [UInt64: LocalMACMirror.Row128] = [:]
        var extra = 0
        let switches = (0..<3).map { _ in newID() }
        func row() -> LocalMACMirror.Row128 { LocalMACMirror.Row128(newID())! }
        func key() -> UInt64 {
            mirror.key(
                switches[Int.random(in: 0..<3, using: &random)],
                MACAddress(rawValue: 0x0200_0000_0000 | UInt64.random(in: 0..<500, using: &random)))
        }
        for _ in 0..<300 {
            if Bool.random(using: &random) {
                let added = (0..<Int.random(in: 0..<40, using: &random)).map { _ in (key(), row()) }
                // Of rows for one key new to the mirror, the lowest is kept; the others, and
                // rows for keys it holds, are extra.
                for (k, rows) in Dictionary(grouping: added, by: \.0) {
                    if model[k] == nil {
                        model[k] = rows.map(\.1).min()
                        extra += rows.count - 1
                    } else {
                        extra += rows.count
                    }
                }
                mirror.insert(added.map { (key: $0.0, row: $0.1) })
            } else {
                let removed =
                    Array(
                        model.keys.shuffled(using: &random).prefix(
                            Int.random(in: 0..<30, using: &random)))
                    + (0..<3).map { _ in key() }
                for k in removed { model[k] = nil }
                mirror.remove(removed)
            }
            #expect(mirror.keys == model.keys.sorted())
            #expect(mirror.keys.allSatisfy { mirror.row($0) == model[$0] })
            #expect(mirror.extra.count == extra)
        }
        mirror.extra = []
        var wanted: [RowID: SortedMACs] = [:]
        for (k, _) in model {
            let (sw, mac) = mirror.split(k)
            wanted[sw, default: []] = SortedMACs(Array(wanted[sw, default: []]) + [mac])
        }
        #expect(mirror.holds(wanted))
        if let (sw, macs) = wanted.first(where: { !$0.value.isEmpty }) {
            var fewer = wanted
            fewer[sw] = SortedMACs(macs.dropFirst())
            #expect(!mirror.holds(fewer))
            fewer[sw] = nil
            #expect(!mirror.holds(fewer))
        }
        wanted[newID()] = []
        #expect(mirror.holds(wanted), "a switch with nothing learned and no row")
    }
}
