import Packet

/// The per-packet forwarding decision of the L2 gateway: classify, learn, look up, count.
///
/// Access side: a frame's VLAN is the VID of its one tag, whatever its TPID (802.1Q C-tag or
/// 802.1ad S-tag); no tag or VID 0 (priority tag) is untagged. Double-tagged frames are
/// dropped (`qinqOnAccessPort`). Tunnel side: inner frames must be untagged (RFC 7348 §6.1).
/// Learned: the source MAC of every frame that passes the address checks, as local (port,
/// VLAN) or remote (source locator), except frames relayed by the switch's service node.
///
/// Owns the MAC table and the counters and holds the current `ForwardingConfiguration`.
/// `decide(_:frame:now:)` allocates nothing, takes no lock, and makes no ARC traffic on the
/// configuration (it reads it through an unowned reference kept alive by `configuration`).
///
/// Concurrency: one thread (a datapath worker) calls `decide`, `apply`, `age`,
/// `installStatic` and reads counters; none of this is synchronised. How several workers share
/// MAC state and how the control plane hands a new configuration to a worker is the datapath's
/// design, not this type's.
public final class ForwardingEngine {
    public let macTable: MACTable
    /// IP → MAC per switch, what ARP and ND suppression answers with.
    public let neighbours: NeighbourTable
    /// VTEPs multicast switches may learn from without the configuration naming them.
    public static let defaultDiscoveredLocatorLimit = DiscoveredLocators.defaultCapacity
    /// The configuration in force. Replace it with `apply(_:)`.
    public private(set) var configuration: ForwardingConfiguration
    /// The configuration's compiled tables, read per packet without reference counting; they
    /// live as long as `configuration`.
    private var current: ForwardingConfiguration.Tables

    private var discovered: DiscoveredLocators
    /// Our own tunnel addresses: a tunnel packet from one of them is dropped (`ownSource`)
    /// before anything else, so a flood looped back by the underlay is never learned from
    /// or delivered.
    public var ownAddresses: (v4: IPv4Address?, v6: IPv6Address?) = (nil, nil)
    /// Frames on the wire the frame being decided stands for: 1, or a super-frame's count
    /// (`decide(_:superFrame:frames:now:)`).
    private var weight: UInt64 = 1
    private let switchCounters: UnsafeMutablePointer<SwitchCounters>
    /// BUM storm control per switch index: tokens in thousandths of a frame, and the clock
    /// when they were last refilled.
    private let bumTokens: UnsafeMutablePointer<UInt64>
    private let bumRefilled: UnsafeMutablePointer<UInt64>
    /// The data plane's monotonic clock in nanoseconds, set once per batch (`tick`): what the
    /// storm control's buckets refill by.
    public private(set) var clock: UInt64 = 0
    private let dropCounters: UnsafeMutablePointer<UInt64>
    private let malformedCounters: UnsafeMutablePointer<UInt64>

    /// - Parameters:
    ///   - macTableLimit: total learned MAC entries (default 1,048,576).
    ///   - hashSeed: keys the MAC table's hash; random per process in the daemon.
    ///   - discoveredLocatorLimit: VTEPs that multicast switches may learn from without the
    ///     configuration naming them (default 4,096).
    ///   - neighbourCapacity: slots of the ARP/ND suppression table (default 65,536).
    public init(
        configuration: ForwardingConfiguration, macTableLimit: Int = MACTable.defaultTotalLimit,
        hashSeed: UInt64 = 0,
        discoveredLocatorLimit: Int = ForwardingEngine.defaultDiscoveredLocatorLimit,
        neighbourCapacity: Int = NeighbourTable.defaultCapacity
    ) {
        macTable = MACTable(totalLimit: macTableLimit, hashSeed: hashSeed)
        neighbours = NeighbourTable(capacity: neighbourCapacity, hashSeed: hashSeed)
        discovered = DiscoveredLocators(capacity: discoveredLocatorLimit)
        self.configuration = configuration
        current = configuration.tables
        switchCounters = .allocate(capacity: SwitchIndex.count)
        switchCounters.initialize(repeating: SwitchCounters(), count: SwitchIndex.count)
        bumTokens = .allocate(capacity: SwitchIndex.count)
        bumTokens.initialize(repeating: 0, count: SwitchIndex.count)
        bumRefilled = .allocate(capacity: SwitchIndex.count)
        bumRefilled.initialize(repeating: 0, count: SwitchIndex.count)
        dropCounters = .allocate(capacity: DropReason.allCases.count)
        dropCounters.initialize(repeating: 0, count: DropReason.allCases.count)
        malformedCounters = .allocate(capacity: Malformed.allCases.count)
        malformedCounters.initialize(repeating: 0, count: Malformed.allCases.count)
        fillBuckets()
    }

    /// Sets the MAC policy and a full storm-control bucket of every configured switch.
    private func fillBuckets() {
        for (i, s) in configuration.switches.enumerated() {
            guard let s else { continue }
            macTable.setPolicy(
                for: SwitchIndex(rawValue: UInt16(i)), ageing: s.macAgeing, limit: s.macLimit)
            if let limit = s.bumRateLimit { bumTokens[i] = UInt64(limit.burst) * 1000 }
        }
    }

    /// Puts the engine back as `init` left it, with the configuration in force: no MAC or
    /// neighbour entries, no discovered VTEPs, no own addresses, every counter zero, full
    /// storm-control buckets, the clock at 0. Its cost is the tables' slots and the configured
    /// switches, not the 65,535 switch indices `init` prepares: what lets the fuzz checks
    /// decide thousands of frame sequences a second, each on an engine as good as new.
    /// Counters and buckets of indices past the configuration's are already zero (`apply`
    /// clears those of a switch that leaves).
    public func reset() {
        let switches = configuration.switches.count
        macTable.removeEverything(switches: switches)
        neighbours.removeAll { _, _ in true }
        discovered.removeAll()
        ownAddresses = (nil, nil)
        weight = 1
        clock = 0
        for i in 0..<switches {
            switchCounters[i] = SwitchCounters()
            bumTokens[i] = 0
            bumRefilled[i] = 0
        }
        dropCounters.update(repeating: 0, count: DropReason.allCases.count)
        malformedCounters.update(repeating: 0, count: Malformed.allCases.count)
        fillBuckets()
    }

    deinit {
        discovered.deallocate()
        switchCounters.deallocate()
        bumTokens.deallocate()
        bumRefilled.deallocate()
        dropCounters.deallocate()
        malformedCounters.deallocate()
    }

    // MARK: Control plane

    /// Puts `new` in force. MAC entries (learned and static) that would change meaning are
    /// removed: those of a switch index that now names another switch or VNI, those pointing
    /// at a locator index that now names another VTEP, and those pointing at a port and VLAN
    /// that is no longer bound to their switch or whose port index now names another port.
    /// Counters of a switch index that changed meaning restart from zero.
    public func apply(_ new: ForwardingConfiguration) {
        let old = configuration
        for i in 0..<max(old.switches.count, new.switches.count) {
            let index = SwitchIndex(rawValue: UInt16(i))
            let before = old.logicalSwitch(index)
            let after = new.logicalSwitch(index)
            if let before, before.name != after?.name || before.vni != after?.vni {
                macTable.flush(index, includingStatic: true)
                switchCounters[i] = SwitchCounters()
            }
            // What suppression learned is of no use once it is off; nothing of a switch index
            // is right once it names another switch.
            if let before {
                let renamed = before.name != after?.name || before.vni != after?.vni
                if renamed || (before.arpSuppression && after?.arpSuppression != true) {
                    neighbours.removeAll { sw, isStatic in
                        sw == index && (renamed || !isStatic)
                    }
                }
            }
            macTable.setPolicy(
                for: index, ageing: after?.macAgeing ?? MACTable.defaultAgeing,
                limit: after?.macLimit)
            // A new or changed storm limit starts with a full bucket.
            if before?.bumRateLimit != after?.bumRateLimit || before?.name != after?.name {
                bumTokens[i] = UInt64(after?.bumRateLimit?.burst ?? 0) * 1000
                bumRefilled[i] = clock
            }
        }
        let locatorsChanged = old.locators.indices.contains {
            old.locators[$0] != new.locator(LocatorIndex(rawValue: UInt32($0)))
        }
        let portsChanged = old.ports.indices.contains {
            old.ports[$0] != new.portName(PortIndex(rawValue: UInt16($0)))
        }
        let switchesChanged = old.switches != new.switches
        if locatorsChanged || portsChanged || switchesChanged || old.bindings != new.bindings {
            let discovered = self.discovered
            macTable.removeAll { sw, _, entry in
                switch entry.location {
                case .remote(let l) where l.isDynamic:
                    // Learned behind a discovered VTEP: kept while the switch still takes
                    // VTEPs it was not told about, and this one among them.
                    guard let locator = discovered.locator(l) else { return true }
                    return !new.acceptsUnconfigured(locator.ip, into: sw)
                        || new.locatorIndex(of: locator) != nil
                case .remote(let l):
                    return new.locator(l) == nil || new.locator(l) != old.locator(l)
                case .local(let a):
                    return new.portName(a.port) != old.portName(a.port)
                        || new.boundSwitch(port: a.port, vlan: a.vlan) != sw
                }
            }
        }
        configuration = new
        current = new.tables
    }

    /// Installs a static (operator or controller) MAC entry on switch `sw`: it never ages,
    /// never moves, and is installed even when the switch or the table is at its learning
    /// limit. Refuses a MAC that is not unicast, a locator that is not configured, and a port
    /// and VLAN not bound to `sw`.
    @discardableResult
    public func installStatic(
        _ mac: MACAddress, on sw: SwitchIndex, at location: MACLocation, now: UInt32
    ) throws(ConfigurationError) -> MACTable.StaticOutcome {
        let c = configuration
        guard let s = c.logicalSwitch(sw) else { throw .unknownSwitchIndex(sw) }
        guard !mac.isMulticast, !mac.isZero else { throw .staticMACNotUnicast(mac) }
        switch location {
        case .remote(let l):
            guard let locator = c.locator(l), ForwardingConfiguration.isUnicastVTEP(locator.ip)
            else { throw .staticLocatorUnknown(mac, l) }
        case .local(let a):
            guard c.boundSwitch(port: a.port, vlan: a.vlan) == sw else {
                throw .staticAttachmentNotBound(mac, a, switch: s.name)
            }
        }
        let outcome = macTable.installStatic(mac, on: sw, at: location, now: now)
        if outcome == .tableExhausted { throw .macTableExhausted(mac) }
        return outcome
    }

    /// Replaces every static neighbour entry (Ucast_Macs_Remote `ipaddr`) with `entries`;
    /// returns those that found no room.
    @discardableResult
    public func replaceStaticNeighbours(
        _ entries: [(sw: SwitchIndex, address: IPAddress, mac: MACAddress)]
    ) -> Int {
        neighbours.removeAll { _, isStatic in isStatic }
        return entries.count { !neighbours.installStatic($0.sw, $0.address, $0.mac) }
    }

    /// The index of a VTEP met on a multicast switch without the configuration naming it.
    @inline(__always)
    public func discoveredIndex(of locator: Locator) -> LocatorIndex? {
        discovered.find(locator)
    }

    /// The locator an index names: one of the configuration's, or one discovered on a
    /// multicast switch. The datapath resolves `.encapsulate` and flood targets with it.
    public func locator(_ index: LocatorIndex) -> Locator? {
        index.isDynamic ? discovered.locator(index) : configuration.locator(index)
    }

    /// VTEPs met on multicast switches that the configuration does not name, in order of
    /// discovery; their indices run from `LocatorIndex.dynamicBase`.
    public var discoveredLocators: [Locator] { discovered.all }

    /// Reclaims expired MAC entries with bounded work; see `MACTable.age(now:budget:)`.
    @discardableResult
    public func age(now: UInt32, budget: Int) -> Int {
        macTable.age(now: now, budget: budget)
    }

    public func counters(of sw: SwitchIndex) -> SwitchCounters {
        Int(sw.rawValue) < SwitchIndex.count ? switchCounters[Int(sw.rawValue)] : SwitchCounters()
    }

    public func dropCount(_ reason: DropReason) -> UInt64 { dropCounters[Int(reason.rawValue)] }

    public func malformedCount(_ reason: Malformed) -> UInt64 {
        malformedCounters[Int(reason.rawValue)]
    }

    /// A copy of every counter, for the control API.
    public func statistics() -> ForwardingStatistics {
        var switches: [SwitchIndex: SwitchCounters] = [:]
        for (i, s) in configuration.switches.enumerated() where s != nil {
            switches[SwitchIndex(rawValue: UInt16(i))] = switchCounters[i]
        }
        return ForwardingStatistics(
            drops: Array(
                UnsafeBufferPointer(start: dropCounters, count: DropReason.allCases.count)),
            malformed: Array(
                UnsafeBufferPointer(start: malformedCounters, count: Malformed.allCases.count)),
            switches: switches, macEntries: macTable.count, macTableFull: macTable.isFull)
    }

    // MARK: Data plane

    /// Sets the clock storm control refills its buckets by (monotonic nanoseconds); the
    /// data plane calls it once per batch.
    public func tick(nanoseconds: UInt64) { clock = nanoseconds }

    /// Where a GRE packet from `source` enters, by its key (the header already parsed and
    /// checked: RFC 2784 §2.3, RFC 2890). One header format serves GRE and NVGRE, so:
    /// - a GRE switch carries VNI = key: GRE. The whole 32-bit key is the VNI, as Open
    ///   vSwitch's `type=gre` ports use it as the tunnel id; keys above 16,777,215 name no
    ///   switch (hardware_vtep's tunnel_key is 24 bits) and are never masked into one.
    /// - else an NVGRE switch carries VSID = key >> 8: NVGRE, the FlowID ignored (RFC 7637
    ///   §3.2: entropy only); C or S set is malformed NVGRE (RFC 7637 §3.2 "MUST be zero"),
    ///   counted, and nil returned.
    /// - else neither: the decision drops it as an unknown VNI.
    /// The source must then be a locator of that encapsulation (the decision checks it), so
    /// a GRE-only peer's wrong key can never land in an NVGRE switch that happens to match.
    public func greIngress(
        from source: IPAddress, key: UInt32, checksumPresent: Bool, sequencePresent: Bool
    ) -> Ingress? {
        let c = current
        if key <= VXLANHeader.maximumVNI,
            let sw = c.switchIndex(for: VNI(masking: key)),
            c.records[Int(sw.rawValue)].encapsulation == Encapsulation.gre.rawValue
        {
            return .tunnel(source: source, encapsulation: .gre, vni: VNI(masking: key))
        }
        let vsid = VNI(masking: key >> 8)
        if let sw = c.switchIndex(for: vsid),
            c.records[Int(sw.rawValue)].encapsulation == Encapsulation.nvgre.rawValue
        {
            if checksumPresent {
                countMalformed(.nvgreChecksumPresent)
                return nil
            }
            if sequencePresent {
                countMalformed(.nvgreSequencePresent)
                return nil
            }
            return .tunnel(source: source, encapsulation: .nvgre, vni: vsid)
        }
        // Neither: the decision counts an unknown VNI.
        return key <= VXLANHeader.maximumVNI
            ? .tunnel(source: source, encapsulation: .gre, vni: VNI(masking: key))
            : .tunnel(source: source, encapsulation: .nvgre, vni: vsid)
    }

    /// Decides what to do with one frame and learns its source. `frame` starts at the
    /// destination MAC; `now` is whole seconds from the injected monotonic clock.
    public func decide(_ ingress: Ingress, frame: UnsafeRawBufferPointer, now: UInt32)
        -> Decision
    {
        weight = 1
        return decideWeighted(ingress, frame, now)
    }

    /// Decides for a super-frame (GRO/TSO) that stands for `frames` frames on the wire, all
    /// with its Ethernet header: one decision and one learning step, but every frame counter
    /// counts `frames`, so statistics stay per frame on the wire.
    public func decide(
        _ ingress: Ingress, superFrame frame: UnsafeRawBufferPointer, frames: Int, now: UInt32
    ) -> Decision {
        weight = UInt64(max(1, frames))
        defer { weight = 1 }
        return decideWeighted(ingress, frame, now)
    }

    /// What `decide` would do with `frame` from access port `port` now, without learning its
    /// source or counting it: the hypothetical trace (`trace port …`), as Open vSwitch's
    /// `ofproto/trace` answers without sending. A source MAC that would move is reported as
    /// it would be decided after the move.
    public func explain(port: PortIndex, frame: UnsafeRawBufferPointer, now: UInt32)
        -> Decision
    {
        weight = 0
        defer { weight = 1 }
        return decideWeighted(.access(port), frame, now)
    }

    /// The decision, every frame counter counting `weight` frames (0: `explain`, which
    /// neither counts nor learns).
    @inline(__always)
    private func decideWeighted(
        _ ingress: Ingress, _ frame: UnsafeRawBufferPointer, _ now: UInt32
    ) -> Decision {
        switch ingress {
        case .access(let port):
            return fromAccess(port, frame, now)
        case .tunnel(let source, let encapsulation, let vni):
            return fromTunnel(source, encapsulation, vni, frame, now)
        }
    }

    /// Hints that `frame` will be decided soon: prefetches the MAC-table slots of its source
    /// and destination on the switch its ingress selects. The datapath calls it for every
    /// frame of a received batch before deciding the first, so the table's cache misses
    /// overlap (bench/: "Encapsulate batch"). Learns, counts and decides nothing.
    public func prefetch(_ ingress: Ingress, frame: UnsafeRawBufferPointer) {
        guard let header = try? EthernetHeader.parse(frame) else { return }
        let sw: SwitchIndex
        switch ingress {
        case .access(let port):
            let raw = current.boundSwitchRaw(port: port.rawValue, vid: header.outerTag?.vid ?? 0)
            guard raw != ForwardingConfiguration.unbound else { return }
            sw = SwitchIndex(rawValue: raw)
        case .tunnel(_, _, let vni):
            guard let found = current.switchIndex(for: vni) else { return }
            sw = found
        }
        macTable.prefetch(header.source, on: sw)
        if !header.destination.isMulticast { macTable.prefetch(header.destination, on: sw) }
    }

    @inline(__always)
    private func fromAccess(_ port: PortIndex, _ frame: UnsafeRawBufferPointer, _ now: UInt32)
        -> Decision
    {
        let c = current
        let header: EthernetHeader
        do {
            header = try EthernetHeader.parse(frame)
        } catch {
            return malformed(error, nil)
        }
        if header.innerTag != nil { return drop(.qinqOnAccessPort, nil) }
        let vid = header.outerTag?.vid ?? 0
        let raw = c.boundSwitchRaw(port: port.rawValue, vid: vid)
        guard raw != ForwardingConfiguration.unbound else { return drop(.noBinding, nil) }
        let sw = SwitchIndex(rawValue: raw)
        let s = Int(raw)
        switchCounters[s].fromAccess &+= weight
        if weight != 0 { switchCounters[s].bytesIn &+= UInt64(frame.count) }
        if let reason = sourceAndDestinationProblem(header) { return drop(reason, s) }

        let here = UInt32(port.rawValue & 0xFFF) &<< 12 | UInt32(vid)
        if let reason = learn(sw, header.source, here, now) { return drop(reason, s) }

        let record = c.records[s]
        if header.destination.isMulticast {
            if record.arpSuppression,
                NeighbourDiscovery.mayBeNeighbourMessage(frame, header: header),
                case .request(let target)? = NeighbourDiscovery.message(in: frame, header: header)
            {
                // Answered only for a host behind a tunnel whose MAC is still known: a local
                // host answers for itself, and a MAC gone from the table may have gone.
                if let mac = neighbours.lookup(sw, target),
                    let value = macTable.lookupValue(MACTable.key(sw, mac), now: now),
                    value & MACTable.remoteBit != 0
                {
                    switchCounters[s].neighbourAnswered &+= weight
                    return .reply(port: port, vlan: vid == 0 ? nil : vid, mac: mac)
                }
                switchCounters[s].neighbourFlooded &+= weight
            }
            return flood(sw, record, excluding: AttachmentCircuit(port: port, vlan: vid))
        }
        guard let value = macTable.lookupValue(MACTable.key(sw, header.destination), now: now)
        else { return flood(sw, record, excluding: AttachmentCircuit(port: port, vlan: vid)) }
        if value & MACTable.remoteBit != 0 {
            switchCounters[s].encapsulated &+= weight
            return .encapsulate(
                locator: LocatorIndex(rawValue: value & 0xFF_FFFF), vni: VNI(masking: record.vni))
        }
        if value & MACTable.locationMask == here { return drop(.sameInterface, s) }
        return output(sw, value, record, excluding: AttachmentCircuit(port: port, vlan: vid))
    }

    @inline(__always)
    private func fromTunnel(
        _ source: IPAddress, _ encapsulation: Encapsulation, _ vni: VNI,
        _ frame: UnsafeRawBufferPointer, _ now: UInt32
    ) -> Decision {
        switch source {
        case .v4(let a) where a == ownAddresses.v4: return drop(.ownSource, nil)
        case .v6(let a) where a == ownAddresses.v6: return drop(.ownSource, nil)
        default: break
        }
        let c = current
        guard let sw = c.switchIndex(for: vni) else { return drop(.unknownVNI, nil) }
        let s = Int(sw.rawValue)
        let record = c.records[s]
        // A GRE key that is a VXLAN switch's VNI (or the reverse) names no switch of its
        // encapsulation: never cross from one into the other.
        guard record.encapsulation == encapsulation.rawValue else {
            return drop(.unknownVNI, nil)
        }
        switchCounters[s].fromTunnel &+= weight
        if weight != 0 { switchCounters[s].bytesIn &+= UInt64(frame.count) }
        let locator: LocatorIndex
        if let configured = c.locatorIndex(of: Locator(source, encapsulation)) {
            guard c.accepts(configured.rawValue, record) else {
                return drop(.sourceVTEPNotAccepted, s)
            }
            locator = configured
        } else {
            // Only a multicast switch hears from VTEPs nobody named (RFC 7348 §4.2).
            guard record.openToAll else { return drop(.unknownSourceVTEP, s) }
            guard c.acceptsUnconfigured(source, record) else {
                return drop(.sourceVTEPNotAccepted, s)
            }
            guard let found = discovered.findOrInsert(Locator(source, encapsulation)) else {
                return drop(.remoteVTEPLimit, s)
            }
            locator = found
        }
        let header: EthernetHeader
        do {
            header = try EthernetHeader.parse(frame)
        } catch {
            return malformed(error, s)
        }
        if header.outerTag != nil { return drop(.taggedInnerFrame, s) }
        if let reason = sourceAndDestinationProblem(header) { return drop(reason, s) }

        // A service node relays other VTEPs' frames under its own address: learning their
        // sources behind it would pull unicast traffic through it.
        if !(record.serviceNode && current.isReplicationTarget(locator, record)) {
            let there = MACTable.remoteBit | locator.rawValue
            if let reason = learn(sw, header.source, there, now) { return drop(reason, s) }
        }
        if record.arpSuppression, weight != 0,
            NeighbourDiscovery.mayBeNeighbourMessage(frame, header: header),
            case .advertisement(let address, let mac)? = NeighbourDiscovery.message(
                in: frame, header: header)
        {
            neighbours.learn(sw, address, mac, now: now)
        }

        if header.destination.isMulticast { return flood(sw, record, excluding: nil) }
        guard let value = macTable.lookupValue(MACTable.key(sw, header.destination), now: now)
        else { return flood(sw, record, excluding: nil) }
        if value & MACTable.remoteBit != 0 { return drop(.tunnelToTunnel, s) }
        return output(sw, value, record, excluding: nil)
    }

    /// Source and destination addresses a bridge refuses, in the order they are checked.
    @inline(__always)
    private func sourceAndDestinationProblem(_ header: EthernetHeader) -> DropReason? {
        if header.source.isMulticast { return .multicastSourceMAC }
        if header.source.isZero { return .zeroSourceMAC }
        if header.destination.rawValue & ~0xF == 0x0180_C200_0000 { return .reservedDestination }
        return nil
    }

    /// Learns `mac` at the packed location; returns a drop reason if the frame must go.
    @inline(__always)
    private func learn(_ sw: SwitchIndex, _ mac: MACAddress, _ location: UInt32, _ now: UInt32)
        -> DropReason?
    {
        let s = Int(sw.rawValue)
        if weight == 0 {
            // `explain`: only what learning would refuse.
            guard let value = macTable.lookupValue(MACTable.key(sw, mac), now: now) else {
                return nil
            }
            let isStaticElsewhere =
                value & MACTable.staticBit != 0 && value & MACTable.locationMask != location
            return isStaticElsewhere ? .staticMACConflict : nil
        }
        switch macTable.learnValue(MACTable.key(sw, mac), location, now: now) {
        case .refreshed: break
        case .learned: switchCounters[s].learned &+= 1
        case .moved: switchCounters[s].moves &+= 1
        case .staticConflict: return .staticMACConflict
        case .refusedTableFull, .refusedSwitchFull: switchCounters[s].learningRefused &+= 1
        }
        return nil
    }

    /// Output to a known local destination, re-checked against the current bindings so that
    /// an entry can never deliver into a VLAN that now belongs to another switch.
    @inline(__always)
    private func output(
        _ sw: SwitchIndex, _ value: UInt32, _ record: ForwardingConfiguration.SwitchRecord,
        excluding: AttachmentCircuit?
    ) -> Decision {
        let port = UInt16(truncatingIfNeeded: value >> 12) & 0xFFF
        let vid = UInt16(truncatingIfNeeded: value) & 0xFFF
        guard current.boundSwitchRaw(port: port, vid: vid) == sw.rawValue else {
            return flood(sw, record, excluding: excluding)
        }
        switchCounters[Int(sw.rawValue)].toAccess &+= weight
        return .output(port: PortIndex(rawValue: port), vlan: vid == 0 ? nil : vid)
    }

    @inline(__always)
    private func flood(
        _ sw: SwitchIndex, _ record: ForwardingConfiguration.SwitchRecord,
        excluding: AttachmentCircuit?
    ) -> Decision {
        let s = Int(sw.rawValue)
        // From access: the ingress attachment is a member and is skipped; replication joins.
        let targets =
            excluding == nil
            ? Int(record.memberCount)
            : Int(record.memberCount) - 1
                + (record.serviceNode
                    ? min(1, Int(record.replicationCount))
                    : Int(record.replicationCount))
        guard targets > 0 else { return drop(.noFloodTargets, s) }
        if record.bumFramesPerSecond != 0, !admitBUM(s, record) {
            return drop(.bumRateLimited, s)
        }
        switchCounters[s].flooded &+= weight
        return .flood(
            switch: sw, vni: VNI(masking: record.vni), excluding: excluding,
            includeReplication: excluding != nil)
    }

    /// Takes one token per frame (a super-frame's `weight`) from switch `s`'s bucket, refilled
    /// at its rate up to its burst; false, and nothing taken, when there are too few. `explain`
    /// (weight 0) only looks. Tokens count thousandths of a frame, and the refill time moves
    /// by exactly what was added, so no fraction is lost however often it is called.
    @inline(__always)
    private func admitBUM(_ s: Int, _ record: ForwardingConfiguration.SwitchRecord) -> Bool {
        let rate = UInt64(record.bumFramesPerSecond)
        let cap = UInt64(record.bumBurst) &* 1000
        // At most 10 s: a full bucket at any rate of 0.1 frame/s or more.
        let elapsed = min(clock &- bumRefilled[s], 10_000_000_000)
        let added = elapsed &* rate / 1_000_000
        var tokens = bumTokens[s] &+ added
        var refilled = bumRefilled[s] &+ added &* 1_000_000 / rate
        if tokens >= cap {
            tokens = cap
            refilled = clock
        }
        if weight == 0 { return tokens >= 1000 }
        bumRefilled[s] = refilled
        let cost = weight &* 1000
        guard tokens >= cost else {
            bumTokens[s] = tokens
            return false
        }
        bumTokens[s] = tokens &- cost
        return true
    }

    @inline(__always)
    private func drop(_ reason: DropReason, _ sw: Int?) -> Decision {
        dropCounters[Int(reason.rawValue)] &+= weight
        if let sw { switchCounters[sw].drops &+= weight }
        return .drop(reason)
    }

    /// Counts a tunnel packet the datapath refused before any decision (a malformed VXLAN or
    /// GRE header) as the decision counts a malformed frame: under its reason and under the
    /// `malformed` drop, so the two stay one sum.
    @inline(__always)
    public func countMalformed(_ reason: Malformed) { _ = malformed(reason, nil) }

    /// Counts `count` frames the data plane dropped around the decision (receiving, sending,
    /// encapsulating) under `reason`, beside the decision's own drops: one set of counters
    /// for every drop.
    public func countDrop(_ reason: DropReason, _ count: UInt64 = 1) {
        dropCounters[Int(reason.rawValue)] &+= count
    }

    @inline(__always)
    private func malformed(_ error: Malformed, _ sw: Int?) -> Decision {
        malformedCounters[Int(error.rawValue)] &+= weight
        dropCounters[Int(DropReason.malformed.rawValue)] &+= weight
        if let sw { switchCounters[sw].drops &+= weight }
        return .drop(.malformed, malformed: error)
    }
}
