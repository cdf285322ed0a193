import Packet
import PropertyBased
import PropertyChecks
import Testing

@testable import Forwarding

/// The MAC table's specification as a Swift Dictionary: what `MACTable` must behave like.
struct ReferenceTable {
    struct Key: Hashable {
        var sw: SwitchIndex
        var mac: MACAddress
    }

    var entries: [Key: MACTable.Entry] = [:]
    var totalLimit: Int
    var staticCeiling: Int
    var limits: [SwitchIndex: Int] = [:]
    var ageing: [SwitchIndex: UInt32] = [:]
    var isFull = false
    var switchFault: Set<SwitchIndex> = []

    func count(of sw: SwitchIndex) -> Int { entries.keys.count { $0.sw == sw } }

    func isExpired(_ key: Key, _ e: MACTable.Entry, now: UInt32) -> Bool {
        let a = ageing[key.sw] ?? MACTable.defaultAgeing
        return !e.isStatic && a != 0 && now &- e.lastSeen >= a
    }

    func lookup(_ key: Key, now: UInt32) -> MACTable.Entry? {
        guard let e = entries[key], !isExpired(key, e, now: now) else { return nil }
        return e
    }

    mutating func learn(_ key: Key, _ location: MACLocation, now: UInt32)
        -> MACTable.LearnOutcome
    {
        if let e = entries[key] {
            if e.isStatic { return e.location == location ? .refreshed : .staticConflict }
            if isExpired(key, e, now: now) {
                entries[key] = .init(location: location, isStatic: false, lastSeen: now)
                return .learned
            }
            entries[key]!.lastSeen = now
            if e.location == location { return .refreshed }
            entries[key]!.location = location
            return .moved
        }
        if entries.count >= totalLimit {
            isFull = true
            return .refusedTableFull
        }
        if count(of: key.sw) >= limits[key.sw] ?? Int.max {
            switchFault.insert(key.sw)
            return .refusedSwitchFull
        }
        entries[key] = .init(location: location, isStatic: false, lastSeen: now)
        return .learned
    }

    mutating func installStatic(_ key: Key, _ location: MACLocation, now: UInt32)
        -> MACTable.StaticOutcome
    {
        if entries[key] != nil {
            entries[key] = .init(location: location, isStatic: true, lastSeen: now)
            return .replaced
        }
        guard entries.count < staticCeiling else { return .tableExhausted }
        entries[key] = .init(location: location, isStatic: true, lastSeen: now)
        return .installed
    }

    mutating func remove(_ key: Key) -> MACTable.Entry? {
        guard let e = entries.removeValue(forKey: key) else { return nil }
        settleFaults(key.sw)
        return e
    }

    mutating func removeAll(where predicate: (Key, MACTable.Entry) -> Bool) -> Int {
        let doomed = entries.filter { predicate($0.key, $0.value) }.map(\.key)
        for key in doomed { _ = remove(key) }
        return doomed.count
    }

    mutating func settleFaults(_ sw: SwitchIndex) {
        if entries.count < totalLimit { isFull = false }
        if count(of: sw) < limits[sw] ?? Int.max { switchFault.remove(sw) }
    }
}

enum TableOperation: Sendable, CustomStringConvertible {
    case learn(SwitchIndex, MACAddress, MACLocation)
    case installStatic(SwitchIndex, MACAddress, MACLocation)
    case remove(SwitchIndex, MACAddress)
    case advance(UInt32)
    case ageFully
    case agePartly(budget: Int)
    case flush(SwitchIndex, includingStatic: Bool)
    case flushLocator(LocatorIndex)

    var description: String {
        switch self {
        case .learn(let s, let m, let l): "learn(\(s.rawValue), \(m), \(l))"
        case .installStatic(let s, let m, let l): "static(\(s.rawValue), \(m), \(l))"
        case .remove(let s, let m): "remove(\(s.rawValue), \(m))"
        case .advance(let t): "advance(\(t))"
        case .ageFully: "ageFully"
        case .agePartly(let b): "agePartly(\(b))"
        case .flush(let s, let all): "flush(\(s.rawValue), static: \(all))"
        case .flushLocator(let l): "flushLocator(\(l.rawValue))"
        }
    }
}

/// Switch indices used by the property tests: 65534 is the highest assignable, whose keys sit
/// next to the empty-slot key.
let testSwitches: [SwitchIndex] = [0, 1, 2, 65534]
/// MACs that share everything but a few bits, plus extremes of the 48-bit space.
let testMACs: [MACAddress] =
    (1...10).map { mac($0) } + [
        MACAddress(rawValue: 0xFFFF_FFFF_FFFE), MACAddress(rawValue: 0x0000_0000_0001),
        MACAddress(0x00, 0x1B, 0x21, 0x3A, 0x4C, 0x5D),
    ]
let testLocations: [MACLocation] =
    [
        .local(port: 0, vlan: nil), .local(port: 0, vlan: 10), .local(port: 1, vlan: 10),
        .local(port: 4095, vlan: 4094), .remote(0), .remote(1), .remote(0xFF_FFFF),
    ]

func operations(timeStep: ClosedRange<UInt32>) -> Generator<
    TableOperation, Shrink.None<TableOperation>
> {
    Generator { rng in
        let sw = testSwitches.randomElement(using: &rng)!
        let m = testMACs.randomElement(using: &rng)!
        let location = testLocations.randomElement(using: &rng)!
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<45: return .learn(sw, m, location)
        case 45..<53: return .installStatic(sw, m, location)
        case 53..<65: return .remove(sw, m)
        case 65..<80: return .advance(UInt32.random(in: timeStep, using: &rng))
        case 80..<86: return .ageFully
        case 86..<94: return .agePartly(budget: Int.random(in: 1...12, using: &rng))
        case 94..<98: return .flush(sw, includingStatic: Bool.random(using: &rng))
        default: return .flushLocator(LocatorIndex(rawValue: UInt32.random(in: 0...1, using: &rng)))
        }
    }
}

/// Applies `ops` to a table and to the model, comparing after each step; nil if they agree.
func compare(
    _ ops: [TableOperation], totalLimit: Int, limits: [SwitchIndex: Int],
    ageing: [SwitchIndex: UInt32], seed: UInt64
) -> String? {
    let table = MACTable(totalLimit: totalLimit, hashSeed: seed)
    var model = ReferenceTable(
        totalLimit: totalLimit, staticCeiling: table.capacity - table.capacity / 4)
    model.limits = limits
    model.ageing = ageing
    for sw in testSwitches {
        table.setPolicy(for: sw, ageing: ageing[sw] ?? MACTable.defaultAgeing, limit: limits[sw])
    }
    var now: UInt32 = 1000
    var pass: (changes: UInt64, expiring: UInt32, macs: Set<String>)? = nil
    for (step, op) in ops.enumerated() {
        let context = "step \(step) \(op)"
        switch op {
        case .learn(let sw, let m, let l):
            let got = table.learn(m, on: sw, at: l, now: now)
            let want = model.learn(.init(sw: sw, mac: m), l, now: now)
            if got != want { return "\(context): learn gave \(got), model \(want)" }
        case .installStatic(let sw, let m, let l):
            let got = table.installStatic(m, on: sw, at: l, now: now)
            let want = model.installStatic(.init(sw: sw, mac: m), l, now: now)
            if got != want { return "\(context): static gave \(got), model \(want)" }
        case .remove(let sw, let m):
            let got = table.remove(m, on: sw)
            let want = model.remove(.init(sw: sw, mac: m))
            if got != want { return "\(context): remove gave \(String(describing: got))" }
        case .advance(let dt):
            now &+= dt
        case .ageFully:
            let got = table.age(now: now, budget: table.capacity)
            let policy = model
            let want = model.removeAll { policy.isExpired($0, $1, now: now) }
            if got != want { return "\(context): aged \(got), model \(want)" }
        case .agePartly(let budget):
            // Which expired entries a partial sweep reaches depends on slot positions: take
            // the table's word for those, and only those.
            _ = table.age(now: now, budget: budget)
            let policy = model
            _ = model.removeAll { key, e in
                policy.isExpired(key, e, now: now)
                    && table.find(MACTable.key(key.sw, key.mac)) == nil
            }
        case .flush(let sw, let all):
            let got = table.flush(sw, includingStatic: all)
            let want = model.removeAll { key, e in key.sw == sw && (all || !e.isStatic) }
            if got != want { return "\(context): flushed \(got), model \(want)" }
        case .flushLocator(let l):
            let got = table.flush(locator: l)
            let want = model.removeAll { _, e in e.location == .remote(l) }
            if got != want { return "\(context): flushed \(got), model \(want)" }
        }
        if let problem = table.structuralProblem(switches: testSwitches) {
            return "\(context): \(problem)"
        }
        if table.count != model.entries.count {
            return "\(context): count \(table.count), model \(model.entries.count)"
        }
        if table.isFull != model.isFull { return "\(context): isFull \(table.isFull)" }
        for sw in testSwitches {
            if table.count(of: sw) != model.count(of: sw) {
                return "\(context): switch \(sw.rawValue) count \(table.count(of: sw))"
            }
            if table.limitReached(sw) != model.switchFault.contains(sw) {
                return "\(context): switch \(sw.rawValue) fault \(table.limitReached(sw))"
            }
            // The batch lookup gives the same answers as the single one.
            let batch = [MACLocation?](unsafeUninitializedCapacity: testMACs.count) { out, n in
                testMACs.withUnsafeBufferPointer { macs in
                    [SwitchIndex](repeating: sw, count: macs.count).withUnsafeBufferPointer {
                        table.lookup(macs, on: $0, now: now, into: out)
                    }
                }
                n = testMACs.count
            }
            for (m, b) in zip(testMACs, batch)
            where b != model.lookup(.init(sw: sw, mac: m), now: now)?.location {
                return "\(context): batch lookup \(sw.rawValue)/\(m) gave \(String(describing: b))"
            }
            for m in testMACs {
                let got = table.lookup(m, on: sw, now: now)
                let want = model.lookup(.init(sw: sw, mac: m), now: now)
                if got != want {
                    return "\(context): lookup \(sw.rawValue)/\(m) gave \(String(describing: got)),"
                        + " model \(String(describing: want))"
                }
            }
        }
        // The local MACs are the model's live local entries; and while `localChanges` stays
        // and the last pass's earliest expiry is ahead, they are what that pass listed (what
        // lets `GatewayController.localMACs` skip a pass).
        let local = Set(table.localMACs(now: now).map { "\($0.sw.rawValue)/\($0.mac)" })
        let modelLocal = Set(
            model.entries.compactMap { key, e -> String? in
                guard case .local = e.location, !model.isExpired(key, e, now: now) else {
                    return nil
                }
                return "\(key.sw.rawValue)/\(key.mac)"
            })
        if local != modelLocal { return "\(context): local MACs \(local), model \(modelLocal)" }
        if let last = pass, last.changes == table.localChanges, now < last.expiring {
            if local != last.macs {
                return "\(context): local MACs \(local) differ from the last pass's \(last.macs)"
                    + " with localChanges unchanged and the earliest expiry \(last.expiring) ahead"
            }
        } else {
            var expiring = UInt32.max
            _ = table.localMACs(now: now, from: 0, count: table.capacity, expiring: &expiring)
            pass = (table.localChanges, expiring, local)
        }
    }
    return nil
}

@Suite("MAC table")
struct MACTableTests {
    @Test("tiny table: collisions, wrap-around, backward shift, table full")
    func tinyTableMatchesModel() throws {
        // Limit 5 → 16 slots, static ceiling 12, 52 possible keys: runs wrap constantly.
        let ops = operations(timeStep: 0...120).array(of: 100...400)
        try seededCheck(count: 300, seed: 0x0001_0002_0003_0004, ops) { ops in
            let problem = compare(
                ops, totalLimit: 5, limits: [:], ageing: [0: 100, 1: 0, 2: 300, 65534: 30],
                seed: 0x5EED)
            try #require(problem == nil)
        }
    }

    @Test("per-switch limits below the total")
    func perSwitchLimitsMatchModel() throws {
        let ops = operations(timeStep: 0...60).array(of: 100...400)
        try seededCheck(count: 300, seed: 0x0009_0008_0007_0006, ops) { ops in
            let problem = compare(
                ops, totalLimit: 12, limits: [0: 2, 1: 0, 2: 5],
                ageing: [0: 50, 1: 50, 2: 0, 65534: 200], seed: 42)
            try #require(problem == nil)
        }
    }

    @Test("roomy table: long runs without limits")
    func roomyTableMatchesModel() throws {
        let ops = operations(timeStep: 0...400).array(of: 200...600)
        try seededCheck(count: 150, seed: 0xDEAD_BEEF_F00D_CAFE, ops) { ops in
            let problem = compare(ops, totalLimit: 60, limits: [:], ageing: [:], seed: 7)
            try #require(problem == nil)
        }
    }

    @Test("all keys in one probe run: hash seed that sends many keys home to few slots")
    func clusteredKeysMatchModel() throws {
        // Search for a seed under which many test keys share a home slot in a 16-slot table,
        // so the property runs with one long run that wraps the table's end.
        var best: (seed: UInt64, pile: Int) = (0, 0)
        for seed in UInt64(0)..<2000 {
            let t = MACTable(totalLimit: 5, hashSeed: seed)
            var homes = [Int](repeating: 0, count: t.capacity)
            for sw in testSwitches { for m in testMACs { homes[t.home(MACTable.key(sw, m))] += 1 } }
            if homes[t.capacity - 1] + homes[t.capacity - 2] > best.pile {
                best = (seed, homes[t.capacity - 1] + homes[t.capacity - 2])
            }
        }
        let ops = operations(timeStep: 0...50).array(of: 100...300)
        try seededCheck(count: 200, seed: 0x0005_0005_0005_0005, ops) { ops in
            let problem = compare(ops, totalLimit: 5, limits: [:], ageing: [:], seed: best.seed)
            try #require(problem == nil)
        }
    }

    @Test func keyPacksSwitchIndexAboveMAC() {
        #expect(
            MACTable.key(0x1234, MACAddress(rawValue: 0xAABB_CCDD_EEFF)) == 0x1234_AABB_CCDD_EEFF)
        #expect(MACTable.key(65534, .broadcast) != MACTable.emptyKey)
    }

    @Test func sixteenByteSlotsAndMemoryPerEntry() {
        #expect(MemoryLayout<MACTable.Slot>.stride == 16)
        // Default limit: 2^20 entries in 2^21 slots.
        let slots = 2 * MACTable.defaultTotalLimit
        let perSwitch = SwitchIndex.count * (4 + 4 + 4 + 1)
        let bytesPerEntry =
            Double(slots * MemoryLayout<MACTable.Slot>.stride + perSwitch)
            / Double(MACTable.defaultTotalLimit)
        #expect(bytesPerEntry < 33)
        #expect(MACTable(totalLimit: 1000).capacity == 2048)
    }

    @Test func ageingZeroNeverExpires() {
        let table = MACTable(totalLimit: 16)
        table.setPolicy(for: 1, ageing: 0, limit: nil)
        table.learn(mac(1), on: 1, at: .remote(3), now: 0)
        #expect(table.age(now: .max, budget: table.capacity) == 0)
        #expect(table.lookup(mac(1), on: 1, now: .max)?.location == .remote(3))
    }

    @Test func perSwitchAgeing() {
        let table = MACTable(totalLimit: 16)
        table.setPolicy(for: 1, ageing: 10, limit: nil)
        table.setPolicy(for: 2, ageing: 60, limit: nil)
        table.learn(mac(1), on: 1, at: .remote(1), now: 100)
        table.learn(mac(1), on: 2, at: .remote(1), now: 100)
        #expect(table.lookup(mac(1), on: 1, now: 109) != nil)
        #expect(table.lookup(mac(1), on: 1, now: 110) == nil)  // expired, still counted
        #expect(table.count == 2)
        #expect(table.lookup(mac(1), on: 2, now: 110) != nil)
        #expect(table.age(now: 110, budget: table.capacity) == 1)
        #expect(table.count(of: 1) == 0)
        #expect(table.count(of: 2) == 1)
        // The default is 300 s.
        table.learn(mac(2), on: 3, at: .remote(1), now: 0)
        #expect(table.lookup(mac(2), on: 3, now: 299) != nil)
        #expect(table.lookup(mac(2), on: 3, now: 300) == nil)
    }

    @Test func refreshedEntryLivesOn() {
        let table = MACTable(totalLimit: 16)
        table.setPolicy(for: 0, ageing: 10, limit: nil)
        #expect(table.learn(mac(1), on: 0, at: .remote(1), now: 0) == .learned)
        #expect(table.learn(mac(1), on: 0, at: .remote(1), now: 8) == .refreshed)
        #expect(table.lookup(mac(1), on: 0, now: 17) != nil)
        #expect(table.learn(mac(1), on: 0, at: .remote(2), now: 17) == .moved)
        #expect(table.learn(mac(1), on: 0, at: .remote(2), now: 40) == .learned)  // had expired
    }

    @Test func staticEntryNeverMovesNorAges() {
        let table = MACTable(totalLimit: 16)
        table.setPolicy(for: 0, ageing: 10, limit: nil)
        #expect(
            table.installStatic(mac(1), on: 0, at: .local(port: 2, vlan: 7), now: 0) == .installed)
        #expect(table.learn(mac(1), on: 0, at: .remote(1), now: 5) == .staticConflict)
        #expect(table.learn(mac(1), on: 0, at: .local(port: 2, vlan: 7), now: 5) == .refreshed)
        #expect(table.lookup(mac(1), on: 0, now: 1_000_000)?.location == .local(port: 2, vlan: 7))
        #expect(table.age(now: 1_000_000, budget: table.capacity) == 0)
    }

    @Test func fullTableRefusesLearningButTakesStatic() {
        let table = MACTable(totalLimit: 2)  // 8 slots, static ceiling 6
        #expect(table.learn(mac(1), on: 0, at: .remote(1), now: 0) == .learned)
        #expect(table.learn(mac(2), on: 0, at: .remote(1), now: 0) == .learned)
        #expect(!table.isFull)
        #expect(table.learn(mac(3), on: 0, at: .remote(1), now: 0) == .refusedTableFull)
        #expect(table.isFull)
        for n: UInt8 in 3...6 {
            #expect(table.installStatic(mac(n), on: 1, at: .remote(2), now: 0) == .installed)
        }
        #expect(table.installStatic(mac(7), on: 1, at: .remote(2), now: 0) == .tableExhausted)
        #expect(table.installStatic(mac(6), on: 1, at: .remote(3), now: 0) == .replaced)
        table.flush(1, includingStatic: true)
        #expect(table.isFull)  // still 2 of 2
        table.remove(mac(1), on: 0)
        #expect(!table.isFull)
    }

    @Test func switchLimitRaisesAndLowersFault() {
        let table = MACTable(totalLimit: 100)
        table.setPolicy(for: 4, ageing: 300, limit: 1)
        #expect(table.learn(mac(1), on: 4, at: .remote(1), now: 0) == .learned)
        #expect(table.learn(mac(2), on: 4, at: .remote(1), now: 0) == .refusedSwitchFull)
        #expect(table.limitReached(4))
        #expect(table.learn(mac(2), on: 5, at: .remote(1), now: 0) == .learned)
        table.remove(mac(1), on: 4)
        #expect(!table.limitReached(4))
        #expect(table.learn(mac(2), on: 4, at: .remote(1), now: 0) == .learned)
    }

    @Test func flushLeavesOtherSwitchesAndStatics() {
        let table = MACTable(totalLimit: 64)
        for n in 1...20 {
            table.learn(
                mac(UInt8(n)), on: SwitchIndex(rawValue: UInt16(n % 3)), at: .remote(1), now: 0)
        }
        table.installStatic(mac(99), on: 1, at: .remote(1), now: 0)
        let before = table.count(of: 1)
        #expect(table.flush(1) == before - 1)
        #expect(table.count(of: 1) == 1)
        #expect(table.lookup(mac(99), on: 1, now: 0) != nil)
        #expect(table.count(of: 0) + table.count(of: 2) == 20 - (before - 1))
        #expect(table.structuralProblem() == nil)
    }

    @Test func incrementalAgeingCoversTheTableInBudgetSteps() {
        let table = MACTable(totalLimit: 256)  // 512 slots
        table.setPolicy(for: 0, ageing: 10, limit: nil)
        for n in 0..<200 {
            table.learn(
                MACAddress(rawValue: 0x0200_0000_0000 | UInt64(n)), on: 0, at: .remote(1), now: 0)
        }
        var removed = 0
        for _ in 0..<(table.capacity / 64) { removed += table.age(now: 10, budget: 64) }
        #expect(removed == 200)
        #expect(table.count == 0)
    }

    @Test func batchLookupMatchesSingleLookups() {
        let table = MACTable(totalLimit: 64, hashSeed: 3)
        table.setPolicy(for: 2, ageing: 10, limit: nil)
        var macs: [MACAddress] = []
        var switches: [SwitchIndex] = []
        for n in 0..<101 {
            let m = MACAddress(rawValue: 0x0200_0000_0000 | UInt64(n * 7919))
            let sw = SwitchIndex(rawValue: UInt16(n % 3))
            macs.append(m)
            switches.append(sw)
            if n % 4 != 0 {
                table.learn(m, on: sw, at: .remote(LocatorIndex(rawValue: UInt32(n))), now: 0)
            }
        }
        var results = [MACLocation?](repeating: .remote(0xFFFF), count: macs.count)
        macs.withUnsafeBufferPointer { m in
            switches.withUnsafeBufferPointer { s in
                results.withUnsafeMutableBufferPointer { table.lookup(m, on: s, now: 20, into: $0) }
            }
        }
        for i in macs.indices {
            #expect(results[i] == table.lookup(macs[i], on: switches[i], now: 20)?.location, "\(i)")
        }
        #expect(results.contains { $0 != nil } && results.contains { $0 == nil })
    }

    @Test func entriesListsLiveEntriesSorted() {
        let table = MACTable(totalLimit: 16)
        table.setPolicy(for: 0, ageing: 10, limit: nil)
        table.learn(mac(3), on: 0, at: .remote(1), now: 0)
        table.learn(mac(1), on: 0, at: .local(port: 1, vlan: nil), now: 5)
        table.learn(mac(2), on: 1, at: .remote(1), now: 5)
        let list = table.entries(of: 0, now: 12)
        #expect(list.map(\.mac) == [mac(1)])
    }

    /// What vtepd publishes to Ucast_Macs_Local: live local entries of every switch, read in
    /// slices that together are the whole pass.
    @Test func localMACsAreLiveLocalEntriesOfEverySwitchInSlices() {
        let table = MACTable(totalLimit: 64)
        table.setPolicy(for: 0, ageing: 10, limit: nil)
        table.learn(mac(1), on: 0, at: .local(port: 1, vlan: nil), now: 5)
        table.learn(mac(2), on: 0, at: .local(port: 2, vlan: 100), now: 0)  // aged at 12
        table.learn(mac(3), on: 0, at: .remote(1), now: 5)
        table.learn(mac(1), on: 1, at: .local(port: 1, vlan: 200), now: 5)
        table.installStatic(mac(4), on: 1, at: .remote(2), now: 5)
        func key(_ e: (sw: SwitchIndex, mac: MACAddress)) -> String { "\(e.sw.rawValue)/\(e.mac)" }
        let whole = table.localMACs(now: 12).map(key).sorted()
        #expect(whole == ["0/\(mac(1))", "1/\(mac(1))"])
        var sliced: [String] = []
        for from in stride(from: 0, to: table.capacity, by: 7) {
            sliced += table.localMACs(now: 12, from: from, count: 7).map(key)
        }
        #expect(sliced.sorted() == whole)
        #expect(table.localMACs(now: 12, from: table.capacity, count: 7).isEmpty)
    }

    /// What `show switch mac-table` reads: live entries of every switch, local and remote,
    /// static or learned, in slices that together are the whole pass.
    @Test func entriesInSlicesAreTheWholeTable() {
        let table = MACTable(totalLimit: 64)
        table.setPolicy(for: 0, ageing: 10, limit: nil)
        table.learn(mac(1), on: 0, at: .local(port: 1, vlan: nil), now: 5)
        table.learn(mac(2), on: 0, at: .local(port: 2, vlan: 100), now: 0)  // aged at 12
        table.learn(mac(3), on: 0, at: .remote(1), now: 5)
        table.learn(mac(1), on: 1, at: .local(port: 1, vlan: 200), now: 5)
        table.installStatic(mac(4), on: 1, at: .remote(2), now: 5)
        func key(_ e: (sw: SwitchIndex, mac: MACAddress, entry: MACTable.Entry)) -> String {
            "\(e.sw.rawValue)/\(e.mac)/\(e.entry.location)/\(e.entry.isStatic)"
        }
        var sliced: [String] = []
        for from in stride(from: 0, to: table.capacity, by: 7) {
            sliced += table.entries(now: 12, from: from, count: 7).map(key)
        }
        #expect(
            sliced.sorted()
                == [
                    "0/\(mac(1))/\(MACLocation.local(port: 1, vlan: nil))/false",
                    "0/\(mac(3))/\(MACLocation.remote(1))/false",
                    "1/\(mac(1))/\(MACLocation.local(port: 1, vlan: 200))/false",
                    "1/\(mac(4))/\(MACLocation.remote(2))/true",
                ].sorted())
        #expect(table.entries(of: 1, now: 12).map(\.mac) == [mac(1), mac(4)].sorted())
        #expect(table.entries(now: 12, from: table.capacity, count: 7).isEmpty)
    }
}

@Test func unassignedSwitchIndexNeverMatchesAnEmptySlot() {
    let table = MACTable(totalLimit: 8)
    let never = SwitchIndex(rawValue: 0xFFFF)
    #expect(table.lookup(.broadcast, on: never, now: 0) == nil)
    #expect(table.remove(.broadcast, on: never) == nil)
    #expect(table.count(of: never) == 0)
    var result: [MACLocation?] = [.remote(1)]
    [MACAddress.broadcast].withUnsafeBufferPointer { m in
        [never].withUnsafeBufferPointer { s in
            result.withUnsafeMutableBufferPointer { table.lookup(m, on: s, now: 0, into: $0) }
        }
    }
    #expect(result == [nil])
}
