import Packet

/// IP address → MAC address per logical switch, for ARP and ND suppression: what the gateway
/// answers access hosts' ARP requests and neighbour solicitations with.
///
/// Entries are static (Ucast_Macs_Remote `ipaddr`, from the controller or the operator) or
/// learned (ARP replies, gratuitous ARP and neighbour advertisements from tunnels). A static
/// entry is never replaced by a learned one; a learned one is replaced by the next
/// advertisement of its address (a host that moved, or changed its MAC).
///
/// Layout (one preallocated block, no allocation after `init`): a power-of-two array of
/// 32-byte slots. An IPv4 address is kept as its IPv4-mapped IPv6 form (RFC 4291 §2.5.5.2),
/// so one key serves both families. A key lives within `window` slots of its home (a keyed
/// hash, per-process seed); lookups look at all of them, so a slot is emptied by clearing it
/// and there are no tombstones. Learning into a full window replaces the window's least
/// recently learned entry (never a static one); a static entry that finds no room is refused.
///
/// Concurrency: one writer, the worker that owns the forwarding engine.
public final class NeighbourTable {
    /// 65,536 slots (2 MiB): far more hosts than one gateway's access side asks about.
    public static let defaultCapacity = 1 << 16
    static let window = 16

    struct Slot {
        var high: UInt64 = 0
        var low: UInt64 = 0
        /// The MAC's 48 bits, `occupied` and `isStatic` above them; 0: empty.
        var mac: UInt64 = 0
        var sw: UInt16 = 0
        var seen: UInt32 = 0
    }

    static let occupied: UInt64 = 1 << 63
    static let staticFlag: UInt64 = 1 << 62
    static let macMask: UInt64 = 0xFFFF_FFFF_FFFF

    /// What learning an advertisement did.
    public enum LearnOutcome: UInt8, Sendable {
        case learned, replaced, refreshed
        /// A static entry holds the address: nothing changed.
        case staticHeld
    }

    private let slots: UnsafeMutablePointer<Slot>
    private let mask: Int
    private let seed: UInt64
    public let capacity: Int
    public private(set) var count = 0

    public init(capacity: Int = NeighbourTable.defaultCapacity, hashSeed: UInt64 = 0) {
        var size = Self.window
        while size < capacity { size <<= 1 }
        self.capacity = size
        mask = size - 1
        seed = hashSeed
        slots = .allocate(capacity: size)
        slots.initialize(repeating: Slot(), count: size)
    }

    deinit { slots.deallocate() }

    @inline(__always)
    static func key(_ address: IPAddress) -> (UInt64, UInt64) {
        switch address {
        case .v4(let a): (0, 0xFFFF_0000_0000 | UInt64(a.rawValue))
        case .v6(let a): (a.high, a.low)
        }
    }

    @inline(__always)
    private func home(_ sw: UInt16, _ high: UInt64, _ low: UInt64) -> Int {
        var h = (high ^ seed) &* 0x9E37_79B9_7F4A_7C15
        h ^= (low &+ UInt64(sw)) &* 0xC2B2_AE3D_27D4_EB4F
        h ^= h >> 29
        h &*= 0x1656_67B1_9E37_79F9
        return Int(truncatingIfNeeded: h >> 32) & mask
    }

    @inline(__always)
    private func find(_ sw: UInt16, _ high: UInt64, _ low: UInt64) -> Int? {
        let start = home(sw, high, low)
        for i in 0..<Self.window {
            let s = (start &+ i) & mask
            let slot = slots[s]
            if slot.mac != 0, slot.sw == sw, slot.low == low, slot.high == high { return s }
        }
        return nil
    }

    /// The MAC that has `address` on switch `sw`.
    @inline(__always)
    public func lookup(_ sw: SwitchIndex, _ address: IPAddress) -> MACAddress? {
        let (high, low) = Self.key(address)
        guard let s = find(sw.rawValue, high, low) else { return nil }
        return MACAddress(rawValue: slots[s].mac & Self.macMask)
    }

    /// Records that `address` is at `mac` on `sw`, as an advertisement seen at `now` says.
    @inline(__always)
    @discardableResult
    public func learn(_ sw: SwitchIndex, _ address: IPAddress, _ mac: MACAddress, now: UInt32)
        -> LearnOutcome
    {
        let (high, low) = Self.key(address)
        let value = Self.occupied | mac.rawValue
        if let s = find(sw.rawValue, high, low) {
            if slots[s].mac & Self.staticFlag != 0 { return .staticHeld }
            slots[s].seen = now
            if slots[s].mac == value { return .refreshed }
            slots[s].mac = value
            return .replaced
        }
        let start = home(sw.rawValue, high, low)
        var victim = -1
        for i in 0..<Self.window {
            let s = (start &+ i) & mask
            let slot = slots[s]
            if slot.mac == 0 {
                victim = s
                break
            }
            if slot.mac & Self.staticFlag == 0,
                victim < 0 || now &- slot.seen > now &- slots[victim].seen
            {
                victim = s
            }
        }
        // Sixteen static entries in one window: nothing to give way.
        guard victim >= 0 else { return .staticHeld }
        if slots[victim].mac == 0 { count += 1 }
        slots[victim] = Slot(high: high, low: low, mac: value, sw: sw.rawValue, seen: now)
        return .learned
    }

    /// Installs a static entry (replacing a learned one of the address); false when the
    /// address's window holds only static entries.
    @discardableResult
    public func installStatic(_ sw: SwitchIndex, _ address: IPAddress, _ mac: MACAddress) -> Bool {
        let (high, low) = Self.key(address)
        let value = Self.occupied | Self.staticFlag | mac.rawValue
        if let s = find(sw.rawValue, high, low) {
            slots[s].mac = value
            return true
        }
        let start = home(sw.rawValue, high, low)
        var victim = -1
        for i in 0..<Self.window {
            let s = (start &+ i) & mask
            if slots[s].mac == 0 {
                victim = s
                break
            }
            if victim < 0, slots[s].mac & Self.staticFlag == 0 { victim = s }
        }
        guard victim >= 0 else { return false }
        if slots[victim].mac == 0 { count += 1 }
        slots[victim] = Slot(high: high, low: low, mac: value, sw: sw.rawValue, seen: 0)
        return true
    }

    /// Removes the entries `remove` names (by switch, and whether the entry is static).
    public func removeAll(where remove: (SwitchIndex, Bool) -> Bool) {
        for s in 0...mask where slots[s].mac != 0 {
            if remove(SwitchIndex(rawValue: slots[s].sw), slots[s].mac & Self.staticFlag != 0) {
                slots[s] = Slot()
                count -= 1
            }
        }
    }

    /// One entry, for `show`.
    public struct Entry: Hashable, Sendable {
        public var logicalSwitch: SwitchIndex
        public var address: IPAddress
        public var mac: MACAddress
        public var isStatic: Bool
    }

    /// Every entry, in slot order (control plane; the table is small).
    public var entries: [Entry] {
        var list: [Entry] = []
        for s in 0...mask where slots[s].mac != 0 {
            let slot = slots[s]
            let address: IPAddress =
                slot.high == 0 && slot.low >> 32 == 0xFFFF
                ? .v4(IPv4Address(rawValue: UInt32(truncatingIfNeeded: slot.low)))
                : .v6(IPv6Address(high: slot.high, low: slot.low))
            list.append(
                Entry(
                    logicalSwitch: SwitchIndex(rawValue: slot.sw), address: address,
                    mac: MACAddress(rawValue: slot.mac & Self.macMask),
                    isStatic: slot.mac & Self.staticFlag != 0))
        }
        return list
    }
}
