import Packet

/// Where a logical switch's flooded (BUM) frames go: its access attachments and its
/// replication targets. Views into a `ForwardingConfiguration`'s storage, valid while that
/// configuration is alive; the datapath walks them per flooded frame without allocating.
public struct FloodList {
    public let vni: VNI
    /// Every attachment bound to the switch, sorted by port then VLAN. Skip the `excluding`
    /// attachment of the `.flood` decision.
    public let members: UnsafeBufferPointer<AttachmentCircuit>
    /// Locators to send one encapsulated copy to: the multicast group, each head-end VTEP, or
    /// the service nodes. Only for `.flood(…, includeReplication: true)`.
    public let replication: UnsafeBufferPointer<LocatorIndex>
    /// `replication` lists service nodes: one copy goes to one of them.
    public let toOneServiceNode: Bool
}

/// An immutable forwarding configuration: logical switches, access ports, VLAN bindings and
/// locators, validated and compiled into flat tables the per-packet decision reads without
/// hashing strings, allocating or touching a `Dictionary`.
///
/// The control plane builds one from hardware_vtep rows or shell input (allocation is fine
/// there) and hands it to `ForwardingEngine.apply(_:)`; a worker reads it once per batch. It is
/// a class so that its tables have one address for its lifetime; nothing in it changes after
/// `init`.
///
/// Indices: switches, ports and locators get dense indices, which the MAC table stores. Build
/// each configuration from the one it replaces (`previous:`) so that a switch (by name), a
/// port (by name) and a locator (by address and encapsulation) keep their index; new ones take
/// the lowest free index. `ForwardingEngine.apply(_:)` forgets the MAC entries of any index
/// whose meaning changed, so an entry can never name another switch's port or VTEP.
public final class ForwardingConfiguration: @unchecked Sendable {
    /// VLAN slots per port in the binding table: slot 0 holds untagged (and priority-tagged,
    /// VID 0) frames; VID 4095 is reserved (IEEE 802.1Q Table 9-2) and never bound.
    static let vlanSlots = 4096
    static let unbound = UInt16.max

    struct SwitchRecord {
        var present = false
        var vni: UInt32 = 0
        /// The replication targets are service nodes (one copy to one of them).
        var serviceNode = false
        var memberStart: UInt32 = 0
        var memberCount: UInt32 = 0
        var replicationStart: UInt32 = 0
        var replicationCount: UInt32 = 0
        var acceptedStart: UInt32 = 0
        var acceptedCount: UInt32 = 0
        var acceptsAny = true
        /// Multicast switch: VTEPs that are not configured locators may send (and are learned
        /// as discovered locators), subject to the accepted prefixes.
        var openToAll = false
        var prefixStart: UInt32 = 0
        var prefixCount: UInt32 = 0
        /// `Encapsulation.rawValue` of the switch: tunnel packets in another are not its.
        var encapsulation: UInt8 = Encapsulation.vxlan.rawValue
        /// BUM storm control (`LogicalSwitch.bumRateLimit`); 0: none.
        var bumFramesPerSecond: UInt32 = 0
        var bumBurst: UInt32 = 0
        /// `LogicalSwitch.arpSuppression`.
        var arpSuppression = false
    }

    struct LocatorKey: Comparable {
        var tag: UInt8  // family << 4 | encapsulation
        var high: UInt64
        var low: UInt64
        var index: UInt32

        init(_ locator: Locator, index: UInt32) {
            switch locator.ip {
            case .v4(let a):
                (high, low) = (0, UInt64(a.rawValue))
                tag = locator.encapsulation.rawValue
            case .v6(let a):
                (high, low) = (a.high, a.low)
                tag = 0x10 | locator.encapsulation.rawValue
            }
            self.index = index
        }

        static func < (a: LocatorKey, b: LocatorKey) -> Bool {
            (a.tag, a.high, a.low) < (b.tag, b.high, b.low)
        }
        static func == (a: LocatorKey, b: LocatorKey) -> Bool {
            (a.tag, a.high, a.low) == (b.tag, b.high, b.low)
        }
    }

    /// Logical switches by `SwitchIndex.rawValue`; nil where an index is unused.
    public let switches: [LogicalSwitch?]
    /// Access port names by `PortIndex.rawValue`; nil where an index is unused.
    public let ports: [String?]
    /// Locators by `LocatorIndex.rawValue`; nil where an index is unused.
    public let locators: [Locator?]
    /// The bindings, untagged written as nil, sorted by port name then VLAN.
    public let bindings: [Binding]

    private let switchByName: [String: SwitchIndex]
    private let portByName: [String: PortIndex]

    /// The compiled tables read per packet: raw pointers into storage this object owns, so
    /// that the engine can keep a copy and read them without reference counting.
    struct Tables {
        var switchSlots: Int
        var records: UnsafeMutablePointer<SwitchRecord>
        var portSlots: Int
        var bindingTable: UnsafeMutablePointer<UInt16>
        var vniMask: Int
        var vniTable: UnsafeMutablePointer<UInt64>
        var memberPool: UnsafeMutablePointer<AttachmentCircuit>
        var replicationPool: UnsafeMutablePointer<LocatorIndex>
        var acceptedPool: UnsafeMutablePointer<LocatorIndex>
        var prefixPool: UnsafeMutablePointer<IPPrefix>
        var locatorKeyCount: Int
        var locatorKeys: UnsafeMutablePointer<LocatorKey>
    }

    let tables: Tables

    /// Validates and compiles a configuration; throws the first problem found, in input order.
    ///
    /// - Parameters:
    ///   - switches: logical switches; names and VNIs unique.
    ///   - ports: access port names; unique.
    ///   - bindings: (port, VLAN or untagged) → logical switch; one VLAN on one port maps to at
    ///     most one switch, a switch may be bound on many ports and VLANs.
    ///   - locators: VTEPs beyond those named by replication: peers remote MACs point at and
    ///     that may send to us. Replication targets are added automatically.
    ///   - previous: the configuration this one replaces, whose indices it keeps.
    public init(
        switches: [LogicalSwitch] = [], ports: [String] = [], bindings: [Binding] = [],
        locators: [Locator] = [], previous: ForwardingConfiguration? = nil
    ) throws(ConfigurationError) {
        // Switches.
        guard switches.count <= SwitchIndex.count else {
            throw .tooManySwitches(switches.count)
        }
        var namesSeen: [String: Int] = [:]
        var vniSeen: [VNI: String] = [:]
        for s in switches {
            guard Self.isValidName(s.name) else { throw .invalidSwitchName(s.name) }
            guard namesSeen.updateValue(0, forKey: s.name) == nil else {
                throw .duplicateSwitchName(s.name)
            }
            if let first = vniSeen.updateValue(s.name, forKey: s.vni) {
                throw .duplicateVNI(s.vni, first: first, second: s.name)
            }
            if let limit = s.macLimit, limit < 0 {
                throw .negativeMACLimit(switch: s.name, limit: limit)
            }
        }

        // Ports.
        guard ports.count <= PortIndex.count else { throw .tooManyPorts(ports.count) }
        var portSeen: Set<String> = []
        for p in ports {
            guard Self.isValidName(p) else { throw .invalidPortName(p) }
            guard portSeen.insert(p).inserted else { throw .duplicatePort(p) }
        }

        // Locators: explicit ones, then replication targets, in order of first mention.
        var allLocators: [Locator] = []
        var locatorSeen: Set<Locator> = []
        func addLocator(_ l: Locator) {
            if locatorSeen.insert(l).inserted { allLocators.append(l) }
        }
        for l in locators {
            guard Self.isUnicastVTEP(l.ip) else { throw .locatorNotUnicast(l, role: "locator") }
            addLocator(l)
        }
        for s in switches {
            switch s.replication {
            case .multicast(let group):
                guard group.ip.isMulticast else {
                    throw .groupNotMulticast(group, switch: s.name)
                }
                addLocator(group)
            case .headEnd(let list), .serviceNode(let list):
                let role =
                    if case .headEnd = s.replication { "head-end VTEP" } else { "service node" }
                var seen: Set<Locator> = []
                for l in list {
                    guard Self.isUnicastVTEP(l.ip) else {
                        throw .locatorNotUnicast(l, role: "\(role) of logical switch \(s.name)")
                    }
                    guard seen.insert(l).inserted else {
                        throw .duplicateHeadEnd(l, switch: s.name)
                    }
                    addLocator(l)
                }
            }
        }
        guard allLocators.count <= LocatorIndex.count else {
            throw .tooManyLocators(allLocators.count)
        }

        // Bindings.
        let switchNames = Set(switches.map(\.name))
        var normalized: [Binding] = []
        var bindingKeys: [String: [UInt16: String]] = [:]
        for b in bindings {
            guard portSeen.contains(b.port) else { throw .unknownPort(b) }
            guard switchNames.contains(b.logicalSwitch) else { throw .unknownSwitch(b) }
            let vid = b.vlan ?? 0
            guard vid < 4095 else { throw .vlanOutOfRange(b) }
            if let existing = bindingKeys[b.port]?[vid] {
                if existing == b.logicalSwitch { continue }  // repeated, same meaning
                throw .bindingConflict(b, existing: existing)
            }
            bindingKeys[b.port, default: [:]][vid] = b.logicalSwitch
            normalized.append(Binding(port: b.port, vlan: vid, logicalSwitch: b.logicalSwitch))
        }

        // Everything is valid; assign indices, keeping the previous configuration's.
        let switchIdx = Self.assign(
            switches.map(\.name), previous: previous?.switches.map { $0?.name })
        let portIdx = Self.assign(ports, previous: previous?.ports)
        let locatorIdx = Self.assign(allLocators, previous: previous?.locators)

        var switchTable = [LogicalSwitch?](repeating: nil, count: (switchIdx.max() ?? -1) + 1)
        var byName: [String: SwitchIndex] = [:]
        for (s, i) in zip(switches, switchIdx) {
            switchTable[i] = s
            byName[s.name] = SwitchIndex(rawValue: UInt16(i))
        }
        var portTable = [String?](repeating: nil, count: (portIdx.max() ?? -1) + 1)
        var portByName: [String: PortIndex] = [:]
        for (p, i) in zip(ports, portIdx) {
            portTable[i] = p
            portByName[p] = PortIndex(rawValue: UInt16(i))
        }
        var locatorTable = [Locator?](repeating: nil, count: (locatorIdx.max() ?? -1) + 1)
        var indexOfLocator: [Locator: LocatorIndex] = [:]
        for (l, i) in zip(allLocators, locatorIdx) {
            locatorTable[i] = l
            indexOfLocator[l] = LocatorIndex(rawValue: UInt32(i))
        }

        self.switches = switchTable
        self.ports = portTable
        self.locators = locatorTable
        self.bindings = normalized.sorted { ($0.port, $0.vlan ?? 0) < ($1.port, $1.vlan ?? 0) }
        self.switchByName = byName
        self.portByName = portByName

        // Binding table and per-switch members.
        let portSlots = portTable.count
        let bindingTable = UnsafeMutablePointer<UInt16>.allocate(
            capacity: max(1, portSlots * Self.vlanSlots))
        bindingTable.initialize(repeating: Self.unbound, count: max(1, portSlots * Self.vlanSlots))
        var members = [[AttachmentCircuit]](repeating: [], count: switchTable.count)
        for b in normalized {
            let port = portByName[b.port]!
            let sw = byName[b.logicalSwitch]!
            let vid = b.vlan ?? 0
            bindingTable[Int(port.rawValue) * Self.vlanSlots + Int(vid)] = sw.rawValue
            members[Int(sw.rawValue)].append(AttachmentCircuit(port: port, vlan: vid))
        }

        // Per-switch records and pools.
        let switchSlots = switchTable.count
        let records = UnsafeMutablePointer<SwitchRecord>.allocate(capacity: max(1, switchSlots))
        records.initialize(repeating: SwitchRecord(), count: max(1, switchSlots))
        var memberPool: [AttachmentCircuit] = []
        var replicationPool: [LocatorIndex] = []
        var acceptedPool: [LocatorIndex] = []
        var prefixPool: [IPPrefix] = []
        for (i, s) in switchTable.enumerated() {
            guard let s else { continue }
            var r = SwitchRecord()
            r.present = true
            r.vni = s.vni.rawValue
            r.encapsulation = s.encapsulation.rawValue
            if let limit = s.bumRateLimit {
                r.bumFramesPerSecond = limit.framesPerSecond
                r.bumBurst = limit.burst
            }
            r.arpSuppression = s.arpSuppression
            let m = members[i].sorted { ($0.port, $0.vlan ?? 0) < ($1.port, $1.vlan ?? 0) }
            r.memberStart = UInt32(memberPool.count)
            r.memberCount = UInt32(m.count)
            memberPool += m
            let targets: [Locator]
            switch s.replication {
            case .multicast(let g):
                targets = [g]
                r.openToAll = true
            case .headEnd(let list): targets = list
            case .serviceNode(let list):
                targets = list
                r.serviceNode = true
            }
            r.replicationStart = UInt32(replicationPool.count)
            r.replicationCount = UInt32(targets.count)
            replicationPool += targets.map { indexOfLocator[$0]! }
            if let accepted = s.acceptedSources {
                let list = Set(
                    allLocators.filter { l in accepted.contains { $0.contains(l.ip) } }
                        .map { indexOfLocator[$0]! }
                ).sorted()
                r.acceptsAny = false
                r.acceptedStart = UInt32(acceptedPool.count)
                r.acceptedCount = UInt32(list.count)
                acceptedPool += list
                r.prefixStart = UInt32(prefixPool.count)
                r.prefixCount = UInt32(accepted.count)
                prefixPool += accepted
            }
            records[i] = r
        }

        // VNI → switch index: open addressing, load ≤ 0.5.
        var vniCapacity = 8
        while vniCapacity < 2 * switches.count { vniCapacity <<= 1 }
        let vniMask = vniCapacity - 1
        let vniTable = UnsafeMutablePointer<UInt64>.allocate(capacity: vniCapacity)
        vniTable.initialize(repeating: UInt64.max, count: vniCapacity)
        for (s, i) in zip(switches, switchIdx) {
            var slot = Self.vniHome(s.vni.rawValue, mask: vniMask)
            while vniTable[slot] != UInt64.max { slot = (slot + 1) & vniMask }
            vniTable[slot] = UInt64(s.vni.rawValue) << 16 | UInt64(i)
        }

        // Locator address → index: sorted for binary search.
        let keys = zip(allLocators, locatorIdx).map { LocatorKey($0, index: UInt32($1)) }.sorted()
        tables = Tables(
            switchSlots: switchSlots, records: records, portSlots: portSlots,
            bindingTable: bindingTable, vniMask: vniMask, vniTable: vniTable,
            memberPool: Self.copy(memberPool), replicationPool: Self.copy(replicationPool),
            acceptedPool: Self.copy(acceptedPool), prefixPool: Self.copy(prefixPool),
            locatorKeyCount: keys.count,
            locatorKeys: Self.copy(keys))
    }

    deinit {
        tables.records.deallocate()
        tables.bindingTable.deallocate()
        tables.vniTable.deallocate()
        tables.memberPool.deallocate()
        tables.replicationPool.deallocate()
        tables.acceptedPool.deallocate()
        tables.prefixPool.deallocate()
        tables.locatorKeys.deallocate()
    }

    // MARK: Control-plane queries

    public func switchIndex(named name: String) -> SwitchIndex? { switchByName[name] }

    public func logicalSwitch(_ index: SwitchIndex) -> LogicalSwitch? {
        Int(index.rawValue) < switches.count ? switches[Int(index.rawValue)] : nil
    }

    public func portIndex(named name: String) -> PortIndex? { portByName[name] }

    public func portName(_ index: PortIndex) -> String? {
        Int(index.rawValue) < ports.count ? ports[Int(index.rawValue)] : nil
    }

    public func locator(_ index: LocatorIndex) -> Locator? {
        Int(index.rawValue) < locators.count ? locators[Int(index.rawValue)] : nil
    }

    // MARK: Data-plane queries (allocation-free)

    /// The switch a frame on `port` with VLAN id `vlan` (nil or 0 = untagged) belongs to.
    public func boundSwitch(port: PortIndex, vlan: UInt16?) -> SwitchIndex? {
        tables.boundSwitch(port: port, vlan: vlan)
    }

    /// The switch carrying `vni`, if any.
    public func switchIndex(for vni: VNI) -> SwitchIndex? { tables.switchIndex(for: vni) }

    /// The index of the locator with this address and encapsulation, if configured.
    public func locatorIndex(of locator: Locator) -> LocatorIndex? {
        tables.locatorIndex(of: locator)
    }

    /// The VNI of a configured switch.
    public func vni(of index: SwitchIndex) -> VNI? { tables.vni(of: index) }

    /// The encapsulation of the switch carrying `vni`, nil when none does: how the datapath
    /// tells a GRE key from an NVGRE VSID + FlowID, which share one header. Per packet: no
    /// allocation.
    @inline(__always)
    public func encapsulation(carrying vni: VNI) -> Encapsulation? {
        guard let sw = tables.switchIndex(for: vni) else { return nil }
        return Encapsulation(rawValue: tables.records[Int(sw.rawValue)].encapsulation)
    }

    /// The flood list of a configured switch. Its buffers live as long as this configuration.
    public func floodList(of index: SwitchIndex) -> FloodList? { tables.floodList(of: index) }

    /// Whether `locator` may send into switch `index`.
    public func accepts(_ locator: LocatorIndex, into index: SwitchIndex) -> Bool {
        tables.accepts(locator, into: index)
    }

    /// Whether a VTEP at `source` that is not a configured locator may send into switch
    /// `index`: only on a multicast switch, within its accepted prefixes if it has any.
    public func acceptsUnconfigured(_ source: IPAddress, into index: SwitchIndex) -> Bool {
        guard let r = tables.record(index) else { return false }
        return tables.acceptsUnconfigured(source, r)
    }

    // MARK: Helpers

    @inline(__always)
    static func vniHome(_ vni: UInt32, mask: Int) -> Int {
        Int(truncatingIfNeeded: (vni &* 0x9E37_79B1) >> 8) & mask
    }

    static func isValidName(_ name: String) -> Bool {
        let scalars = name.unicodeScalars
        return !scalars.isEmpty && scalars.count <= 64
            && scalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F }
    }

    /// An address a VTEP can have: not unspecified, broadcast, multicast or loopback (the
    /// shell and the control socket refuse the others by the same rule).
    static func isUnicastVTEP(_ ip: IPAddress) -> Bool { ip.notAHostAddress == nil }

    /// Dense indices for `keys`: a key present in `previous` keeps its index, the others take
    /// the lowest indices not kept.
    static func assign<K: Hashable>(_ keys: [K], previous: [K?]?) -> [Int] {
        var old: [K: Int] = [:]
        for (i, k) in (previous ?? []).enumerated() { if let k { old[k] = i } }
        var result = [Int](repeating: -1, count: keys.count)
        var used = Set<Int>()
        for (n, k) in keys.enumerated() {
            if let i = old[k] {
                result[n] = i
                used.insert(i)
            }
        }
        var next = 0
        for n in keys.indices where result[n] < 0 {
            while used.contains(next) { next += 1 }
            result[n] = next
            used.insert(next)
        }
        return result
    }

    static func copy<T>(_ array: [T]) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: max(1, array.count))
        _ = UnsafeMutableBufferPointer(start: p, count: array.count).initialize(from: array)
        return p
    }
}

extension ForwardingConfiguration.Tables {
    /// The switch a frame on `port` with VLAN id `vlan` (nil or 0 = untagged) belongs to.
    func boundSwitch(port: PortIndex, vlan: UInt16?) -> SwitchIndex? {
        let raw = boundSwitchRaw(port: port.rawValue, vid: vlan ?? 0)
        return raw == ForwardingConfiguration.unbound ? nil : SwitchIndex(rawValue: raw)
    }

    @inline(__always)
    func boundSwitchRaw(port: UInt16, vid: UInt16) -> UInt16 {
        guard Int(port) < portSlots, vid < 4095 else { return ForwardingConfiguration.unbound }
        return bindingTable[Int(port) &* ForwardingConfiguration.vlanSlots &+ Int(vid)]
    }

    /// The switch carrying `vni`, if any.
    func switchIndex(for vni: VNI) -> SwitchIndex? {
        var slot = ForwardingConfiguration.vniHome(vni.rawValue, mask: vniMask)
        while true {
            let e = vniTable[slot]
            if e == UInt64.max { return nil }
            if UInt32(truncatingIfNeeded: e >> 16) == vni.rawValue {
                return SwitchIndex(rawValue: UInt16(truncatingIfNeeded: e))
            }
            slot = (slot &+ 1) & vniMask
        }
    }

    /// The index of the locator with this address and encapsulation, if configured.
    func locatorIndex(of locator: Locator) -> LocatorIndex? {
        let key = ForwardingConfiguration.LocatorKey(locator, index: 0)
        var low = 0
        var high = locatorKeyCount
        while low < high {
            let mid = (low &+ high) >> 1
            if locatorKeys[mid] < key { low = mid &+ 1 } else { high = mid }
        }
        guard low < locatorKeyCount, locatorKeys[low] == key else { return nil }
        return LocatorIndex(rawValue: locatorKeys[low].index)
    }

    /// The VNI of a configured switch.
    func vni(of index: SwitchIndex) -> VNI? {
        guard let r = record(index) else { return nil }
        return VNI(masking: r.vni)
    }

    /// The flood list of a configured switch.
    func floodList(of index: SwitchIndex) -> FloodList? {
        guard let r = record(index) else { return nil }
        return FloodList(
            vni: VNI(masking: r.vni),
            members: UnsafeBufferPointer(
                start: memberPool + Int(r.memberStart), count: Int(r.memberCount)),
            replication: UnsafeBufferPointer(
                start: replicationPool + Int(r.replicationStart), count: Int(r.replicationCount)),
            toOneServiceNode: r.serviceNode)
    }

    /// Whether `locator` may send into switch `index`.
    func accepts(_ locator: LocatorIndex, into index: SwitchIndex) -> Bool {
        guard let r = record(index) else { return false }
        return accepts(locator.rawValue, r)
    }

    /// Whether `locator` is one of the switch's replication targets (its service nodes).
    /// Per packet: a scan of a few entries.
    @inline(__always)
    func isReplicationTarget(_ locator: LocatorIndex, _ r: ForwardingConfiguration.SwitchRecord)
        -> Bool
    {
        for i in Int(r.replicationStart)..<Int(r.replicationStart + r.replicationCount)
        where replicationPool[i] == locator {
            return true
        }
        return false
    }

    @inline(__always)
    func record(_ index: SwitchIndex) -> ForwardingConfiguration.SwitchRecord? {
        let i = Int(index.rawValue)
        guard i < switchSlots, records[i].present else { return nil }
        return records[i]
    }

    /// Whether a VTEP that is not a configured locator may send into the switch of `r`.
    @inline(__always)
    func acceptsUnconfigured(_ source: IPAddress, _ r: ForwardingConfiguration.SwitchRecord)
        -> Bool
    {
        guard r.openToAll else { return false }
        if r.acceptsAny { return true }
        var i = Int(r.prefixStart)
        let end = i &+ Int(r.prefixCount)
        while i < end {
            if prefixPool[i].contains(source) { return true }
            i &+= 1
        }
        return false
    }

    @inline(__always)
    func accepts(_ locator: UInt32, _ r: ForwardingConfiguration.SwitchRecord) -> Bool {
        if r.acceptsAny { return true }
        var low = Int(r.acceptedStart)
        var high = low &+ Int(r.acceptedCount)
        while low < high {
            let mid = (low &+ high) >> 1
            if acceptedPool[mid].rawValue < locator { low = mid &+ 1 } else { high = mid }
        }
        return low < Int(r.acceptedStart) &+ Int(r.acceptedCount)
            && acceptedPool[low].rawValue == locator
    }
}
