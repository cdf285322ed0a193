import CPrefetch
import Packet

#if canImport(Glibc)
    import Glibc
#endif

/// Where a MAC address lives: behind an access port (on one of its VLANs or untagged), or
/// behind a remote VTEP.
public enum MACLocation: Hashable, Sendable, CustomStringConvertible {
    case local(AttachmentCircuit)
    case remote(LocatorIndex)

    public static func local(port: PortIndex, vlan: UInt16?) -> MACLocation {
        .local(AttachmentCircuit(port: port, vlan: vlan))
    }

    public var description: String {
        switch self {
        case .local(let attachment): attachment.description
        case .remote(let locator): locator.description
        }
    }
}

/// The MAC table of every logical switch of the gateway: (logical switch, MAC) → location.
///
/// Layout (one preallocated block, no allocation after `init`): a power-of-two array of 16-byte
/// slots `(key: UInt64, value: UInt32, lastSeen: UInt32)`, at least twice the total entry
/// limit, so the load factor stays ≤ 0.5 under learning. At the default limit of 1,048,576
/// entries that is 2,097,152 slots = 32 MiB, 32 bytes per entry, plus 832 KiB of per-switch
/// bookkeeping (≈ 0.8 byte per entry).
///
/// Key: a VNI (24 bits) and a MAC (48 bits) do not fit one machine word, so the key is the
/// 16-bit dense `SwitchIndex` of the logical switch (assigned by the configuration, which maps
/// it to and from the VNI) shifted left 48, or'ed with the MAC's 48 bits. Switch index 0xFFFF
/// is never assigned, so the all-ones key marks an empty slot.
///
/// Collisions: linear probing from a keyed hash of the key (the seed is per process, so a
/// sender cannot choose source MACs that pile into one probe run), deletion by backward shift,
/// so there are no tombstones and probe runs never grow from churn.
///
/// Ageing: time is injected as whole seconds (`now`) from a monotonic clock. A learned entry
/// whose switch has a non-zero ageing time and that was last seen `ageing` or more seconds ago
/// is expired: every lookup treats it as absent and learning reuses its slot at once, but it
/// keeps its slot, and its place in the counts and limits, until `age(now:budget:)`, which does
/// bounded work per call, reclaims it. Static entries never age and never move.
///
/// Limits: learning a new entry is refused when the table holds `totalLimit` entries or the
/// switch holds its own limit; a refusal raises a fault flag (`isFull`,
/// `limitReached(switch:)`) that stays up until the count falls below the limit again. Static
/// entries install beyond both limits, up to 3/4 of the slots.
///
/// Concurrency: one writer. The table belongs to one worker thread; sharing it between workers
/// is the data plane's design (a later issue), not this type's.
public final class MACTable {
    /// The default total number of entries: 1,048,576.
    public static let defaultTotalLimit = 1 << 20
    /// The total limits an operator may set (`mac-table-limit`). The table allocates its slots
    /// up front, 32 to 64 bytes per entry of the limit: 32 MiB at the default, 512 MiB at the
    /// most.
    public static let totalLimitRange = 1...(1 << 24)
    /// The default ageing time of learned entries, in seconds (IEEE 802.1Q's default).
    public static let defaultAgeing: UInt32 = 300

    /// What happened when a source MAC was learned.
    public enum LearnOutcome: UInt8, Sendable {
        /// A new entry was made (or an expired one reused).
        case learned
        /// The entry was already there, at that location; its age was reset.
        case refreshed
        /// A learned entry elsewhere was moved to the new location.
        case moved
        /// A static entry owns the MAC at another location; nothing changed.
        case staticConflict
        /// The table holds `totalLimit` entries; nothing changed.
        case refusedTableFull
        /// The switch holds its MAC limit; nothing changed.
        case refusedSwitchFull
    }

    /// What happened when a static entry was installed.
    public enum StaticOutcome: UInt8, Sendable {
        case installed
        /// An entry (learned or static) for the MAC was already there and now is this one.
        case replaced
        /// The table holds 3/4 of its slots; nothing changed.
        case tableExhausted
    }

    /// One entry as the control plane sees it.
    public struct Entry: Hashable, Sendable {
        public var location: MACLocation
        public var isStatic: Bool
        /// Seconds (injected clock) the source was last seen; for static entries the time of
        /// installation.
        public var lastSeen: UInt32
    }

    struct Slot {
        var key: UInt64
        var value: UInt32
        var lastSeen: UInt32
    }

    static let emptyKey = UInt64.max
    static let macMask: UInt64 = 0xFFFF_FFFF_FFFF

    // Value word: bit 31 remote, bit 30 static; local: port in bits 12–27, VLAN in 0–11
    // (0 = untagged); remote: locator index in bits 0–23.
    static let remoteBit: UInt32 = 1 << 31
    static let staticBit: UInt32 = 1 << 30
    static let locationMask: UInt32 = ~(staticBit)

    static let hugePage = 2 << 20

    /// Slots in the table: a power of two ≥ 2 × `totalLimit`.
    public let capacity: Int
    /// Learning stops at this many entries.
    public let totalLimit: Int
    /// Entries currently held, including expired ones not yet reclaimed by `age`.
    public private(set) var count = 0
    /// Counts the changes to the local entries (behind a port) other than by time: one made,
    /// moved to or from a port, replaced or removed. Unchanged, with the earliest expiry a
    /// pass of `localMACs(now:from:count:expiring:)` found still ahead, the local MACs are
    /// what that pass listed, and a reader need not pass over the table again.
    public private(set) var localChanges: UInt64 = 0
    /// Raised when learning was refused because the table was full; lowered when the count
    /// falls below `totalLimit`.
    public private(set) var isFull = false

    /// Bytes this table allocated: the slots and the per-switch bookkeeping. What `show switch
    /// statistics` reports and what the benchmark divides by the entry limit.
    public var memoryFootprint: Int {
        capacity * MemoryLayout<Slot>.stride
            + SwitchIndex.count
            * (3 * MemoryLayout<UInt32>.stride + MemoryLayout<Bool>.stride)
    }

    let slots: UnsafeMutablePointer<Slot>
    let mask: Int
    let seed: UInt64
    let staticCeiling: Int
    // Per switch index, preallocated for all 65,535.
    let switchCounts: UnsafeMutablePointer<UInt32>
    let switchLimits: UnsafeMutablePointer<UInt32>
    let switchAgeing: UnsafeMutablePointer<UInt32>
    let switchFault: UnsafeMutablePointer<Bool>
    private var sweepCursor = 0

    /// - Parameters:
    ///   - totalLimit: entries learning may fill (default 1,048,576); at least 1.
    ///   - hashSeed: keys the slot hash; use a random value per process in the daemon and a
    ///     fixed one in tests.
    public init(totalLimit: Int = MACTable.defaultTotalLimit, hashSeed: UInt64 = 0) {
        let limit = min(max(1, totalLimit), 1 << 30)
        var capacity = 8
        while capacity < 2 * limit { capacity <<= 1 }
        self.capacity = capacity
        self.totalLimit = limit
        self.mask = capacity - 1
        self.seed = hashSeed
        self.staticCeiling = capacity - capacity / 4
        let bytes = capacity * MemoryLayout<Slot>.stride
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: bytes, alignment: bytes >= MACTable.hugePage ? MACTable.hugePage : 64)
        if bytes >= MACTable.hugePage {
            // A lookup touches one random slot; on 4 KiB pages at 1M entries it would also
            // miss the TLB. Ask for transparent huge pages (a hint: no effect if disabled).
            _ = madvise(raw, bytes, MADV_HUGEPAGE)
        }
        slots = raw.bindMemory(to: Slot.self, capacity: capacity)
        slots.initialize(
            repeating: Slot(key: MACTable.emptyKey, value: 0, lastSeen: 0),
            count: capacity)
        // One more than the assignable indices, so that index 0xFFFF reads as an empty switch.
        let n = SwitchIndex.count + 1
        switchCounts = .allocate(capacity: n)
        switchCounts.initialize(repeating: 0, count: n)
        switchLimits = .allocate(capacity: n)
        switchLimits.initialize(repeating: UInt32.max, count: n)
        switchAgeing = .allocate(capacity: n)
        switchAgeing.initialize(repeating: MACTable.defaultAgeing, count: n)
        switchFault = .allocate(capacity: n)
        switchFault.initialize(repeating: false, count: n)
    }

    deinit {
        slots.deinitialize(count: capacity)
        UnsafeMutableRawPointer(slots).deallocate()
        switchCounts.deallocate()
        switchLimits.deallocate()
        switchAgeing.deallocate()
        switchFault.deallocate()
    }

    // MARK: Per-switch policy

    /// Sets a switch's ageing time (seconds; 0 = never) and MAC limit (nil = only the total
    /// limit). Entries already over a lowered limit stay; learning resumes below it.
    public func setPolicy(for sw: SwitchIndex, ageing: UInt32, limit: Int?) {
        let i = Int(sw.rawValue)
        switchAgeing[i] = ageing
        switchLimits[i] = limit.map { UInt32(clamping: $0) } ?? UInt32.max
        switchFault[i] = switchFault[i] && switchCounts[i] >= switchLimits[i]
    }

    /// Removes every entry (static ones too) and puts the counts, the fault flags and the
    /// ageing sweep back as `init` left them; the per-switch policies stay. Entries and faults
    /// exist only for switch indices below `switches` (the caller's configured switches), so
    /// the work is the slots plus those indices, not all 65,535. For `ForwardingEngine.reset`.
    func removeEverything(switches: Int) {
        for i in 0..<capacity where slots[i].key != MACTable.emptyKey {
            slots[i] = Slot(key: MACTable.emptyKey, value: 0, lastSeen: 0)
        }
        localChanges &+= 1
        for i in 0..<min(switches, SwitchIndex.count) {
            switchCounts[i] = 0
            switchFault[i] = false
        }
        count = 0
        isFull = false
        sweepCursor = 0
    }

    /// Ageing time of a switch in seconds; 0 = never.
    public func ageing(of sw: SwitchIndex) -> UInt32 { switchAgeing[Int(sw.rawValue)] }

    /// Entries held for a switch, including expired ones not yet reclaimed.
    public func count(of sw: SwitchIndex) -> Int { Int(switchCounts[Int(sw.rawValue)]) }

    /// Raised when learning on this switch was refused at its limit; lowered when its count
    /// falls below the limit.
    public func limitReached(_ sw: SwitchIndex) -> Bool { switchFault[Int(sw.rawValue)] }

    // MARK: Keys, values, hashing

    @inline(__always)
    static func key(_ sw: SwitchIndex, _ mac: MACAddress) -> UInt64 {
        UInt64(sw.rawValue) &<< 48 | (mac.rawValue & macMask)
    }

    @inline(__always)
    static func pack(_ location: MACLocation) -> UInt32 {
        switch location {
        case .local(let a):
            return UInt32(a.port.rawValue & 0xFFF) &<< 12 | UInt32((a.vlan ?? 0) & 0xFFF)
        case .remote(let l):
            return remoteBit | (l.rawValue & 0xFF_FFFF)
        }
    }

    /// Whether the value word can hold `location`: port < 4096, VLAN < 4096, locator < 2^24.
    /// The configuration never assigns indices beyond these.
    public static func isStorable(_ location: MACLocation) -> Bool {
        switch location {
        case .local(let a): Int(a.port.rawValue) < PortIndex.count && (a.vlan ?? 0) < 4096
        case .remote(let l): l.rawValue < 1 << 24  // configured and discovered indices
        }
    }

    @inline(__always)
    static func unpack(_ value: UInt32) -> MACLocation {
        if value & remoteBit != 0 {
            return .remote(LocatorIndex(rawValue: value & 0xFF_FFFF))
        }
        return .local(
            AttachmentCircuit(
                port: PortIndex(rawValue: UInt16(truncatingIfNeeded: value >> 12) & 0xFFF),
                vlan: UInt16(truncatingIfNeeded: value) & 0xFFF))
    }

    @inline(__always)
    func home(_ key: UInt64) -> Int {
        // Two rounds of a multiply–xorshift mixer (from MurmurHash3's fmix64 constants).
        var h = key ^ seed
        h = (h ^ (h &>> 33)) &* 0xFF51_AFD7_ED55_8CCD
        h = (h ^ (h &>> 33)) &* 0xC4CE_B9FE_1A85_EC53
        h ^= h &>> 33
        return Int(truncatingIfNeeded: h) & mask
    }

    @inline(__always)
    func isExpired(_ slot: Slot, now: UInt32) -> Bool {
        guard slot.value & MACTable.staticBit == 0 else { return false }
        let ageing = switchAgeing[Int(truncatingIfNeeded: slot.key &>> 48)]
        return ageing != 0 && now &- slot.lastSeen >= ageing
    }

    // MARK: Data path (allocation-free)

    /// The packed value of a live entry, or nil. Hot path of `ForwardingEngine`.
    func lookupValue(_ key: UInt64, now: UInt32) -> UInt32? {
        resolve(key, from: home(key), now: now)
    }

    /// Learns that `key` was seen at the packed location `location` (no static bit).
    func learnValue(_ key: UInt64, _ location: UInt32, now: UInt32) -> LearnOutcome {
        var i = home(key)
        while true {
            let slot = slots[i]
            if slot.key == key {
                if slot.value & MACTable.staticBit != 0 {
                    return slot.value & MACTable.locationMask == location
                        ? .refreshed : .staticConflict
                }
                if isExpired(slot, now: now) {
                    slots[i].value = location
                    slots[i].lastSeen = now
                    noteLocal(slot.value, location)
                    return .learned
                }
                // Writing only when something changed keeps the line clean for readers.
                if slot.value == location {
                    if slot.lastSeen != now { slots[i].lastSeen = now }
                    return .refreshed
                }
                slots[i].value = location
                slots[i].lastSeen = now
                noteLocal(slot.value, location)
                return .moved
            }
            if slot.key == MACTable.emptyKey { break }
            i = (i &+ 1) & mask
        }
        let sw = Int(truncatingIfNeeded: key &>> 48)
        if count >= totalLimit {
            isFull = true
            return .refusedTableFull
        }
        if switchCounts[sw] >= switchLimits[sw] {
            switchFault[sw] = true
            return .refusedSwitchFull
        }
        slots[i] = Slot(key: key, value: location, lastSeen: now)
        count &+= 1
        switchCounts[sw] &+= 1
        noteLocal(location, location)
        return .learned
    }

    /// Counts a change in `localChanges` when the entry was or is local.
    @inline(__always)
    func noteLocal(_ before: UInt32, _ after: UInt32) {
        if before & after & MACTable.remoteBit == 0 { localChanges &+= 1 }
    }

    // MARK: Public entry points

    /// The live entry for `mac` on switch `sw`, or nil if absent or expired.
    public func lookup(_ mac: MACAddress, on sw: SwitchIndex, now: UInt32) -> Entry? {
        guard Int(sw.rawValue) < SwitchIndex.count else { return nil }
        let key = MACTable.key(sw, mac)
        var i = home(key)
        while true {
            let slot = slots[i]
            if slot.key == key { return isExpired(slot, now: now) ? nil : entry(slot) }
            if slot.key == MACTable.emptyKey { return nil }
            i = (i &+ 1) & mask
        }
    }

    /// Looks up a batch: `results[i]` is the location of `macs[i]` on `switches[i]`, or nil if
    /// absent or expired. Same answers as `lookup(_:on:now:)`, faster on a large table: it
    /// prefetches the home slot of the key `prefetchDistance` ahead of the one it resolves, so
    /// the cache misses of a batch overlap instead of queueing behind each other. Only the first
    /// `min(macs.count, switches.count, results.count)` are looked up. Allocation-free.
    public func lookup(
        _ macs: UnsafeBufferPointer<MACAddress>, on switches: UnsafeBufferPointer<SwitchIndex>,
        now: UInt32, into results: UnsafeMutableBufferPointer<MACLocation?>
    ) {
        let n = min(macs.count, switches.count, results.count)
        for j in 0..<min(MACTable.prefetchDistance, n) {
            cprefetch_read(slots + home(MACTable.key(switches[j], macs[j])))
        }
        for j in 0..<n {
            let ahead = j + MACTable.prefetchDistance
            if ahead < n {
                cprefetch_read(slots + home(MACTable.key(switches[ahead], macs[ahead])))
            }
            let key = MACTable.key(switches[j], macs[j])
            // Switch 0xFFFF with MAC ff:ff:ff:ff:ff:ff spells the empty key: never stored.
            guard key != MACTable.emptyKey else {
                results[j] = nil
                continue
            }
            results[j] = resolve(key, from: home(key), now: now).map {
                MACTable.unpack($0 & MACTable.locationMask)
            }
        }
    }

    /// Hints that `mac` on `sw` will be looked up or learned soon. The datapath calls it for
    /// every frame of a received batch before deciding the first, so the table's cache misses
    /// overlap. Changes nothing; costs a hash and one prefetch instruction.
    @inline(__always)
    public func prefetch(_ mac: MACAddress, on sw: SwitchIndex) {
        cprefetch_read(slots + home(MACTable.key(sw, mac)))
    }

    /// How many keys ahead the batch lookup prefetches: enough misses in flight to cover a
    /// memory latency of ~200 ns (measured on this project's VMs) at ~15 ns per resolved key.
    static let prefetchDistance = 16

    @inline(__always)
    func resolve(_ key: UInt64, from start: Int, now: UInt32) -> UInt32? {
        var i = start
        while true {
            let slot = slots[i]
            if slot.key == key {
                return isExpired(slot, now: now) ? nil : slot.value
            }
            if slot.key == MACTable.emptyKey { return nil }
            i = (i &+ 1) & mask
        }
    }

    /// Learns `mac` as seen at `location` on switch `sw` at time `now`.
    @discardableResult
    public func learn(
        _ mac: MACAddress, on sw: SwitchIndex, at location: MACLocation,
        now: UInt32
    ) -> LearnOutcome {
        precondition(MACTable.isStorable(location), "\(location) cannot be stored")
        precondition(Int(sw.rawValue) < SwitchIndex.count, "switch index 0xFFFF is never assigned")
        return learnValue(MACTable.key(sw, mac), MACTable.pack(location), now: now)
    }

    /// Installs a static (operator or controller) entry: it never ages, never moves, and is
    /// installed even when the table or the switch is at its limit (up to 3/4 of the slots).
    @discardableResult
    public func installStatic(
        _ mac: MACAddress, on sw: SwitchIndex, at location: MACLocation,
        now: UInt32
    ) -> StaticOutcome {
        precondition(MACTable.isStorable(location), "\(location) cannot be stored")
        precondition(Int(sw.rawValue) < SwitchIndex.count, "switch index 0xFFFF is never assigned")
        let key = MACTable.key(sw, mac)
        let value = MACTable.pack(location) | MACTable.staticBit
        if let i = find(key) {
            noteLocal(slots[i].value, value)
            slots[i].value = value
            slots[i].lastSeen = now
            return .replaced
        }
        guard count < staticCeiling else { return .tableExhausted }
        var i = home(key)
        while slots[i].key != MACTable.emptyKey { i = (i &+ 1) & mask }
        noteLocal(value, value)
        slots[i] = Slot(key: key, value: value, lastSeen: now)
        count += 1
        switchCounts[Int(sw.rawValue)] += 1
        return .installed
    }

    /// Removes the entry for `mac` on `sw`, static or learned, expired or not; returns it.
    @discardableResult
    public func remove(_ mac: MACAddress, on sw: SwitchIndex) -> Entry? {
        guard Int(sw.rawValue) < SwitchIndex.count, let i = find(MACTable.key(sw, mac)) else {
            return nil
        }
        let removed = entry(slots[i])
        delete(at: i)
        return removed
    }

    /// Removes a switch's learned entries (and its static ones if asked); returns how many.
    @discardableResult
    public func flush(_ sw: SwitchIndex, includingStatic: Bool = false) -> Int {
        let tag = UInt64(sw.rawValue)
        return removeSlots(where: { slot in
            slot.key &>> 48 == tag && (includingStatic || slot.value & MACTable.staticBit == 0)
        })
    }

    /// Removes every entry (learned and static) that points at `locator`; returns how many.
    @discardableResult
    public func flush(locator: LocatorIndex) -> Int {
        let value = MACTable.pack(.remote(locator))
        return removeSlots(where: { slot in slot.value & MACTable.locationMask == value })
    }

    /// Removes every entry for which `predicate(switch, mac, entry)` is true; returns how many.
    /// A full pass over the slots: control plane only.
    @discardableResult
    public func removeAll(where predicate: (SwitchIndex, MACAddress, Entry) -> Bool) -> Int {
        removeSlots(where: { slot in
            predicate(
                SwitchIndex(rawValue: UInt16(truncatingIfNeeded: slot.key &>> 48)),
                MACAddress(rawValue: slot.key & MACTable.macMask), entry(slot))
        })
    }

    /// Reclaims expired learned entries, examining at most `budget` slots from where the last
    /// call stopped (a budget of `capacity` or more is one complete pass). Returns how many
    /// entries were removed. Call it once per batch with a small budget so a full sweep
    /// finishes well within the shortest ageing time.
    @discardableResult
    public func age(now: UInt32, budget: Int) -> Int {
        var removed = 0
        var examined = 0
        var i = sweepCursor
        let steps = min(budget, capacity)
        while examined < steps {
            let slot = slots[i]
            if slot.key != MACTable.emptyKey, isExpired(slot, now: now) {
                // Backward shift may pull a not-yet-examined entry into slot i: look again.
                delete(at: i)
                removed += 1
                continue
            }
            examined += 1
            i = (i + 1) & mask
        }
        sweepCursor = i
        return removed
    }

    /// Every entry of one switch (live ones only), sorted by MAC. Control plane only.
    public func entries(of sw: SwitchIndex, now: UInt32) -> [(mac: MACAddress, entry: Entry)] {
        entries(now: now, from: 0, count: capacity)
            .filter { $0.sw == sw }
            .map { (mac: $0.mac, entry: $0.entry) }
            .sorted { $0.mac < $1.mac }
    }

    /// The live entries of every switch in slots `from..<from + count`, unsorted: a slice of
    /// the table for readers on the worker, which must not stall forwarding for a whole pass
    /// (see `localMACs`). Control plane only.
    public func entries(now: UInt32, from: Int, count: Int)
        -> [(sw: SwitchIndex, mac: MACAddress, entry: Entry)]
    {
        var result: [(sw: SwitchIndex, mac: MACAddress, entry: Entry)] = []
        let start = min(max(0, from), capacity)
        for i in start..<(start + min(count, capacity - start)) {
            let slot = slots[i]
            guard slot.key != MACTable.emptyKey, !isExpired(slot, now: now) else { continue }
            result.append(
                (
                    SwitchIndex(rawValue: UInt16(truncatingIfNeeded: slot.key &>> 48)),
                    MACAddress(rawValue: slot.key & MACTable.macMask), entry(slot)
                ))
        }
        return result
    }

    /// The live entries behind a local port, of every switch, in slots `from..<from + count`
    /// (the whole table is `0..<capacity`; a full pass over the default table takes 3 ms
    /// empty and about 20 ms holding 1M entries, so callers on the worker go a slice at a
    /// time). Control plane only.
    public func localMACs(now: UInt32, from: Int = 0, count: Int = .max)
        -> [(sw: SwitchIndex, mac: MACAddress)]
    {
        var expiring = UInt32.max
        return localMACs(now: now, from: from, count: count, expiring: &expiring)
    }

    /// `localMACs(now:from:count:)`, lowering `expiring` to the earliest time (seconds, the
    /// clock of `now`) a listed entry expires unless seen again; static entries and those of
    /// switches that never age do not.
    public func localMACs(now: UInt32, from: Int, count: Int, expiring: inout UInt32)
        -> [(sw: SwitchIndex, mac: MACAddress)]
    {
        var result: [(sw: SwitchIndex, mac: MACAddress)] = []
        let start = min(max(0, from), capacity)
        for i in start..<(start + min(count, capacity - start)) {
            let slot = slots[i]
            guard slot.key != MACTable.emptyKey, !isExpired(slot, now: now),
                case .local = MACTable.unpack(slot.value & MACTable.locationMask)
            else { continue }
            let ageing = switchAgeing[Int(truncatingIfNeeded: slot.key &>> 48)]
            if ageing != 0, slot.value & MACTable.staticBit == 0 {
                // Wrapping, as `isExpired` counts.
                expiring = min(expiring, slot.lastSeen &+ ageing)
            }
            result.append(
                (
                    SwitchIndex(rawValue: UInt16(truncatingIfNeeded: slot.key &>> 48)),
                    MACAddress(rawValue: slot.key & MACTable.macMask)
                ))
        }
        return result
    }

    // MARK: Internals

    func entry(_ slot: Slot) -> Entry {
        Entry(
            location: MACTable.unpack(slot.value & MACTable.locationMask),
            isStatic: slot.value & MACTable.staticBit != 0, lastSeen: slot.lastSeen)
    }

    func find(_ key: UInt64) -> Int? {
        var i = home(key)
        while true {
            let k = slots[i].key
            if k == key { return i }
            if k == MACTable.emptyKey { return nil }
            i = (i &+ 1) & mask
        }
    }

    private func removeSlots(where predicate: (Slot) -> Bool) -> Int {
        // One pass from slot 0; after a deletion the slot is looked at again because backward
        // shift may have moved a later entry into it. Entries that wrap from the front of the
        // table into its tail were already examined, so one pass is complete.
        var removed = 0
        var i = 0
        while i < capacity {
            let slot = slots[i]
            if slot.key != MACTable.emptyKey, predicate(slot) {
                delete(at: i)
                removed += 1
            } else {
                i += 1
            }
        }
        return removed
    }

    /// Backward-shift deletion (Knuth 6.4 Algorithm R): walk the run after the hole and move
    /// back each entry whose home does not lie cyclically in (hole, position].
    func delete(at index: Int) {
        let sw = Int(truncatingIfNeeded: slots[index].key &>> 48)
        noteLocal(slots[index].value, slots[index].value)
        var hole = index
        var j = index
        while true {
            j = (j + 1) & mask
            let key = slots[j].key
            if key == MACTable.emptyKey { break }
            let h = home(key)
            let stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if !stays {
                slots[hole] = slots[j]
                hole = j
            }
        }
        slots[hole] = Slot(key: MACTable.emptyKey, value: 0, lastSeen: 0)
        count -= 1
        switchCounts[sw] -= 1
        if count < totalLimit { isFull = false }
        if switchCounts[sw] < switchLimits[sw] { switchFault[sw] = false }
    }

    /// Checks the table's structure and the counts of `switches`; for tests. Returns a
    /// description of the first problem.
    func structuralProblem(switches: [SwitchIndex] = []) -> String? {
        var perSwitch: [Int: Int] = [:]
        var total = 0
        for i in 0..<capacity {
            let key = slots[i].key
            if key == MACTable.emptyKey { continue }
            total += 1
            perSwitch[Int(key >> 48), default: 0] += 1
            var p = home(key)
            while p != i {
                if slots[p].key == MACTable.emptyKey {
                    return "slot \(i) unreachable from home \(home(key)): hole at \(p)"
                }
                p = (p + 1) & mask
            }
            if find(key) != i { return "key at slot \(i) found elsewhere (duplicate)" }
        }
        if total != count { return "count \(count) but \(total) occupied slots" }
        for sw in Set(switches.map { Int($0.rawValue) }).union(perSwitch.keys)
        where switchCounts[sw] != perSwitch[sw] ?? 0 {
            return "switch \(sw) count \(switchCounts[sw]) but \(perSwitch[sw] ?? 0) entries"
        }
        return nil
    }
}
