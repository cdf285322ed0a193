import Packet
import TestSupport
import Testing

@testable import Forwarding

/// `show switch mac-table` a page at a time (`MACTablePage`): pages that together are the
/// whole table in (switch rank, MAC) order, and what a listing guarantees while the table
/// changes between pages.
@Suite struct MACTablePageTests {
    /// Ranks for switches 0, 1 and 2 listed in the order 2, 0, 1 (as by name).
    static func ranks(_ listed: [UInt16]) -> [UInt16] {
        var ranks = [UInt16](repeating: 0xFFFF, count: SwitchIndex.count + 1)
        for (rank, sw) in listed.enumerated() { ranks[Int(sw)] = UInt16(rank) }
        return ranks
    }

    /// Every page of `table`, `limit` entries each, as (rank, MAC) keys; the worker's turns
    /// are slices of `slice` slots, and `between` runs after each page.
    static func list(
        _ table: MACTable, ranks: [UInt16], limit: Int, now: UInt32, slice: Int = 4096,
        between: () -> Void = {}
    ) -> [MACTablePage.Item] {
        var listed: [MACTablePage.Item] = []
        var after: UInt64? = nil
        while true {
            var page = MACTablePage(limit: limit, ranks: ranks, after: after)
            var cursor: Int? = 0
            while let from = cursor {
                cursor = table.select(now: now, from: from, count: slice, into: &page)
            }
            let items = page.finish()
            listed += items
            guard items.count == limit, let last = items.last else { return listed }
            after = last.order
            between()
        }
    }

    /// 50,000 entries (more than ten times what one response line of the old protocol held)
    /// in pages of 4096: each once, in order, with its location; the expired and the unranked
    /// left out.
    @Test func pagesAreTheWholeTableInOrder() {
        let table = MACTable(totalLimit: 1 << 16, hashSeed: 7)
        table.setPolicy(for: 1, ageing: 10, limit: nil)
        var random = SplitMix64(seed: 15)
        var expected: [UInt64: MACTable.Entry] = [:]
        let rank: [UInt16: UInt64] = [2: 0, 0: 1, 1: 2]
        while table.count < 50_000 {
            let sw = SwitchIndex(rawValue: UInt16.random(in: 0...3, using: &random))
            let mac = MACAddress(rawValue: UInt64.random(in: 0..<(1 << 48), using: &random))
            let location: MACLocation =
                Bool.random(using: &random)
                ? .local(port: PortIndex(rawValue: 3), vlan: 10)
                : .remote(LocatorIndex(rawValue: 4))
            // Switch 1's entries seen at 0 are expired at 20; the rest were seen at 15.
            let seen: UInt32 = sw.rawValue == 1 && Bool.random(using: &random) ? 0 : 15
            guard table.learn(mac, on: sw, at: location, now: seen) == .learned else { continue }
            if let r = rank[sw.rawValue], !(sw.rawValue == 1 && seen == 0) {
                expected[r << 48 | mac.rawValue] = MACTable.Entry(
                    location: location, isStatic: false, lastSeen: seen)
            }
        }
        let listed = Self.list(table, ranks: Self.ranks([2, 0, 1]), limit: 4096, now: 20)
        #expect(listed.count == expected.count)
        #expect(listed.map(\.order) == expected.keys.sorted())
        #expect(listed.allSatisfy { expected[$0.order] == $0.entry })
        #expect(
            listed.allSatisfy { rank[$0.sw.rawValue] == $0.order >> 48 })

        // One switch only: its entries, in MAC order.
        let one = Self.list(table, ranks: Self.ranks([3]), limit: 1000, now: 20)
        #expect(one.count == table.count(of: 3))
        #expect(one.map(\.mac) == one.map(\.mac).sorted())
        #expect(Set(one.map(\.sw)) == [3])
    }

    /// Between pages entries are learned and removed: the listing never repeats one, stays in
    /// order, lists every entry there from start to end, and nothing that was never there.
    @Test func whileTheTableChangesEveryStableEntryIsListedOnceAndNoneTwice() {
        let table = MACTable(totalLimit: 1 << 16, hashSeed: 9)
        var random = SplitMix64(seed: 16)
        func randomMAC() -> MACAddress {
            MACAddress(rawValue: UInt64.random(in: 0..<(1 << 48), using: &random))
        }
        var present: Set<UInt64> = []
        while present.count < 30_000 {
            let mac = randomMAC()
            table.learn(mac, on: 0, at: .local(port: 1, vlan: nil), now: 1)
            present.insert(mac.rawValue)
        }
        let atStart = present
        var everPresent = present
        var removed: Set<UInt64> = []
        let listed = Self.list(table, ranks: Self.ranks([0]), limit: 1000, now: 1) {
            // Churn between pages: 300 removed (backward shifts move others), 300 learned.
            for mac in present.shuffled(using: &random).prefix(300) {
                table.remove(MACAddress(rawValue: mac), on: 0)
                present.remove(mac)
                removed.insert(mac)
            }
            for _ in 0..<300 {
                let mac = randomMAC()
                table.learn(mac, on: 0, at: .local(port: 1, vlan: nil), now: 1)
                present.insert(mac.rawValue)
                everPresent.insert(mac.rawValue)
            }
        }
        let macs = listed.map(\.mac.rawValue)
        #expect(zip(macs, macs.dropFirst()).allSatisfy { $0 < $1 }, "in order, none twice")
        let stable = atStart.subtracting(removed)
        #expect(stable.isSubset(of: Set(macs)), "every entry there throughout is listed")
        #expect(Set(macs).isSubset(of: everPresent), "nothing never there is listed")
        #expect(removed.count > 5000, "the churn was real")
    }

    /// A page holds at most `limit`, ends the listing only when shorter, and a cursor past
    /// the last entry gives an empty page.
    @Test func aPageIsAtMostItsLimitAndTheCursorIsExclusive() {
        let table = MACTable(totalLimit: 64)
        for i in 1...10 {
            table.learn(
                MACAddress(rawValue: UInt64(i)), on: 0, at: .remote(LocatorIndex(rawValue: 1)),
                now: 1)
        }
        var page = MACTablePage(limit: 4, ranks: Self.ranks([0]), after: 3)
        _ = table.select(now: 1, from: 0, count: table.capacity, into: &page)
        #expect(page.finish().map(\.mac.rawValue) == [4, 5, 6, 7])
        var end = MACTablePage(limit: 4, ranks: Self.ranks([0]), after: 10)
        _ = table.select(now: 1, from: 0, count: table.capacity, into: &end)
        #expect(end.finish().isEmpty)
        #expect(Self.list(table, ranks: Self.ranks([0]), limit: 5, now: 1).count == 10)
    }
}

extension MACTablePageTests {
    /// What the MAC-limit fault reads: a switch's live entries, slice by slice, without the
    /// expired ones ageing has not reclaimed.
    @Test func liveCountLeavesOutTheExpired() {
        let table = MACTable(totalLimit: 64)
        table.setPolicy(for: 2, ageing: 10, limit: nil)
        for i in 1...6 {
            table.learn(
                MACAddress(rawValue: UInt64(i)), on: 2, at: .remote(LocatorIndex(rawValue: 1)),
                now: i <= 2 ? 0 : 8)
        }
        table.learn(MACAddress(rawValue: 9), on: 3, at: .remote(LocatorIndex(rawValue: 1)), now: 8)
        var live = 0
        var cursor: Int? = 0
        while let from = cursor {
            let part = table.liveCount(of: 2, now: 12, from: from, count: 5)
            live += part.count
            cursor = part.next
        }
        #expect(live == 4)
        #expect(table.count(of: 2) == 6, "the two expired are still held")
    }
}
