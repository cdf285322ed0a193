import Packet

/// VTEPs the engine met on multicast switches without the configuration naming them
/// (flood-and-learn, RFC 7348 §4.2): the remote MACs learned behind them need a locator index
/// like any other. Bounded and preallocated: the first frame from a new VTEP inserts it
/// without allocating; when full, frames from further new VTEPs are dropped and counted
/// (`DropReason.remoteVTEPLimit`). Entries stay for the engine's lifetime: a gateway meets a
/// bounded set of VTEPs, and an index must not be reused while MAC entries may point at it.
///
/// Indices run from `LocatorIndex.dynamicBase` in order of discovery.
struct DiscoveredLocators {
    static let defaultCapacity = 4096

    let capacity: Int
    private(set) var count = 0
    /// Open addressing over `slots` (a power of two, at least twice `capacity`); each slot
    /// holds a discovery order + 1, 0 = empty.
    private let slotMask: Int
    private let slots: UnsafeMutablePointer<UInt32>
    private let locators: UnsafeMutablePointer<Locator>

    init(capacity: Int = DiscoveredLocators.defaultCapacity) {
        precondition(capacity > 0 && capacity <= 1 << 23, "discovered locators \(capacity)")
        self.capacity = capacity
        var size = 8
        while size < 2 * capacity { size <<= 1 }
        slotMask = size - 1
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        locators = .allocate(capacity: capacity)
    }

    func deallocate() {
        slots.deallocate()
        locators.deinitialize(count: count)
        locators.deallocate()
    }

    /// Forgets every discovered VTEP, for `ForwardingEngine.reset`: only when no MAC entry
    /// points at one any more.
    mutating func removeAll() {
        guard count > 0 else { return }
        slots.update(repeating: 0, count: slotMask + 1)
        locators.deinitialize(count: count)
        count = 0
    }

    /// The locator of a discovered index, if it names one.
    func locator(_ index: LocatorIndex) -> Locator? {
        guard index.isDynamic else { return nil }
        let i = Int(index.rawValue - LocatorIndex.dynamicBase)
        return i < count ? locators[i] : nil
    }

    /// Every discovered locator, in order of discovery (for the control plane).
    var all: [Locator] { Array(UnsafeBufferPointer(start: locators, count: count)) }

    /// The index of `locator` if it was discovered.
    @inline(__always)
    func find(_ locator: Locator) -> LocatorIndex? { probe(locator).found }

    /// The index of `locator`, inserting it if new; nil when the table is full.
    @inline(__always)
    mutating func findOrInsert(_ locator: Locator) -> LocatorIndex? {
        let (slot, found) = probe(locator)
        if let found { return found }
        guard count < capacity else { return nil }
        (locators + count).initialize(to: locator)
        count &+= 1
        slots[slot] = UInt32(truncatingIfNeeded: count)
        return LocatorIndex(
            rawValue: LocatorIndex.dynamicBase &+ UInt32(truncatingIfNeeded: count) &- 1)
    }

    /// Linear probing from the locator's home slot: its index, or the empty slot it would take.
    @inline(__always)
    private func probe(_ locator: Locator) -> (slot: Int, found: LocatorIndex?) {
        var slot = Self.hash(locator) & slotMask
        while true {
            let s = slots[slot]
            if s == 0 { return (slot, nil) }
            if locators[Int(s &- 1)] == locator {
                return (slot, LocatorIndex(rawValue: LocatorIndex.dynamicBase &+ s &- 1))
            }
            slot = (slot &+ 1) & slotMask
        }
    }

    @inline(__always)
    private static func hash(_ locator: Locator) -> Int {
        var x: UInt64
        switch locator.ip {
        case .v4(let a): x = UInt64(a.rawValue)
        case .v6(let a): x = a.high ^ (a.low &* 0x9E37_79B9_7F4A_7C15)
        }
        x ^= UInt64(locator.encapsulation.rawValue) << 56
        x = (x ^ (x >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        return Int(truncatingIfNeeded: x)
    }
}
