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
        var mirror = LocalMACMirror()
        for row in rows.db.ucastMacsLocal.values.sorted(by: { $0.uuid < $1.uuid })
        where row.locator == rows.ours {
            mirror.add(row.uuid, logicalSwitch: row.logicalSwitch, mac: row.mac)
        }
        return mirror
    }

    static func wanted(_ rows: Rows, _ learned: [String: Set<MACAddress>]) -> [UUID: Set<
        MACAddress
    >] {
        var wanted: [UUID: Set<MACAddress>] = [:]
        for (name, macs) in learned {
            if let ls = rows.db.logicalSwitches.values.first(where: { $0.name == name }) {
                wanted[ls.uuid] = macs
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
            #expect(Set(delta.deletions.map(\.row)) == planDeleted)
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
            ours.subtract(delta.deletions.map(\.row))
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
}
