import Packet

/// One page of a MAC table listing: the `limit` smallest entries, in an order the reader
/// chooses, that come after a cursor. Filled a slice of slots at a time
/// (`MACTable.select(now:from:count:into:)`), so a reader on the worker never holds it for a
/// whole pass, and small whatever the table holds: at most `2 × limit` candidates are kept.
///
/// The order: each switch index has a rank (`ranks`, 0xFFFF: not listed), and an entry's order
/// key is its switch's rank shifted left 48, or'ed with its MAC. A reader who ranks switches by
/// name lists by (switch name, MAC), and pages with the last key it got as the next cursor.
///
/// Consistency, page after page of a table that changes between pages: every entry present and
/// unmoved from the first page to the last is listed exactly once, in order; an entry learned
/// or removed meanwhile may or may not be; no entry is listed twice (the cursor only moves
/// forward in a total order).
public struct MACTablePage: Sendable {
    public struct Item: Sendable {
        public var order: UInt64
        public var sw: SwitchIndex
        public var mac: MACAddress
        public var entry: MACTable.Entry
    }

    /// The most entries the page holds.
    public let limit: Int
    /// Entries with an order key ≤ this are skipped; nil: from the start.
    public let after: UInt64?
    let ranks: [UInt16]
    private var items: [Item] = []
    /// Once `limit` candidates are held, nothing at or above the largest of them can enter.
    private var ceiling = UInt64.max

    /// - Parameters:
    ///   - ranks: per switch index (65,536 of them), its rank, 0xFFFF when not listed.
    ///   - after: the order key of the last entry of the previous page, nil for the first.
    public init(limit: Int, ranks: [UInt16], after: UInt64?) {
        precondition(ranks.count == SwitchIndex.count + 1, "one rank per switch index")
        self.limit = max(1, limit)
        self.ranks = ranks
        self.after = after
        items.reserveCapacity(2 * self.limit)
    }

    @inline(__always)
    mutating func offer(_ order: UInt64, _ make: () -> Item) {
        guard order < ceiling, after.map({ order > $0 }) ?? true else { return }
        items.append(make())
        if items.count >= 2 * limit { compact() }
    }

    private mutating func compact() {
        items.sort { $0.order < $1.order }
        if items.count > limit { items.removeLast(items.count - limit) }
        if items.count == limit { ceiling = items[limit - 1].order }
    }

    /// The page, in order; fewer than `limit` entries only when it is the last.
    public mutating func finish() -> [Item] {
        compact()
        return items
    }
}

extension MACTable {
    /// Offers the live entries in slots `from..<from + count` to `page`; returns where the next
    /// slice starts, nil after the last. Control plane only (on the worker, a slice per turn).
    public func select(now: UInt32, from: Int, count: Int, into page: inout MACTablePage) -> Int? {
        let start = min(max(0, from), capacity)
        let end = start + min(count, capacity - start)
        let ranks = page.ranks
        ranks.withUnsafeBufferPointer { ranks in
            for i in start..<end {
                let slot = slots[i]
                guard slot.key != MACTable.emptyKey else { continue }
                let sw = Int(truncatingIfNeeded: slot.key &>> 48)
                let rank = ranks[sw]
                guard rank != 0xFFFF, !isExpired(slot, now: now) else { continue }
                let mac = slot.key & MACTable.macMask
                page.offer(UInt64(rank) &<< 48 | mac) {
                    MACTablePage.Item(
                        order: UInt64(rank) &<< 48 | mac,
                        sw: SwitchIndex(rawValue: UInt16(truncatingIfNeeded: sw)),
                        mac: MACAddress(rawValue: mac), entry: entry(slot))
                }
            }
        }
        return end < capacity ? end : nil
    }
}

extension MACTable {
    /// The live entries of switch `sw` in slots `from..<from + count`, and where the next slice
    /// starts (nil after the last): what `count(of:)` holds less the expired entries ageing
    /// has not reclaimed yet. Control plane only (on the worker, a slice per turn).
    public func liveCount(of sw: SwitchIndex, now: UInt32, from: Int, count: Int) -> (
        count: Int, next: Int?
    ) {
        let start = min(max(0, from), capacity)
        let end = start + min(count, capacity - start)
        let tag = UInt64(sw.rawValue)
        var live = 0
        for i in start..<end {
            let slot = slots[i]
            if slot.key != MACTable.emptyKey, slot.key &>> 48 == tag, !isExpired(slot, now: now) {
                live += 1
            }
        }
        return (live, end < capacity ? end : nil)
    }
}
