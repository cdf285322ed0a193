import Packet

/// A set of MAC addresses as one ascending array, each MAC once: 8 bytes a MAC, where a
/// `Set<MACAddress>` takes 16 or more (its buckets at most 3/4 full, doubled as it grows), and
/// two of them are compared, or one against a sorted table, in one merging pass. What the data
/// plane has learned behind our ports, per logical switch, travels to the publisher as this:
/// a million MACs in 8 MiB.
public struct SortedMACs: Hashable, Sendable, RandomAccessCollection, ExpressibleByArrayLiteral {
    public private(set) var elements: [MACAddress]

    public var startIndex: Int { elements.startIndex }
    public var endIndex: Int { elements.endIndex }
    public subscript(position: Int) -> MACAddress { elements[position] }

    public init() { elements = [] }

    public init(arrayLiteral elements: MACAddress...) { self.init(elements) }

    /// Sorts `macs` in place (a radix sort beyond a few thousand: a million MACs in a few
    /// milliseconds, where a comparison sort takes ten times as long) and drops repeats.
    public init(_ macs: consuming [MACAddress]) {
        elements = consume macs
        if elements.count >= Self.radixAbove {
            Self.radixSort(&elements)
        } else {
            elements.sort()
        }
        // Repeats, in place: the MAC table holds each (switch, MAC) once, but a table read a
        // slice at a time while it changes may show one twice.
        var kept = 0
        elements.withUnsafeMutableBufferPointer { e in
            for i in e.indices where kept == 0 || e[i] != e[kept - 1] {
                e[kept] = e[i]
                kept += 1
            }
        }
        elements.removeLast(elements.count - kept)
    }

    public init<S: Sequence>(_ macs: S) where S.Element == MACAddress { self.init(Array(macs)) }

    public func contains(_ mac: MACAddress) -> Bool {
        var (low, high) = (0, elements.count)
        while low < high {
            let middle = (low + high) / 2
            if elements[middle] < mac { low = middle + 1 } else { high = middle }
        }
        return low < elements.count && elements[low] == mac
    }

    /// Below this many MACs, the standard sort (the radix sort's counts cost more).
    static let radixAbove = 4096

    /// Least significant digit first, 16 bits a pass over the 48 of a MAC, through a scratch
    /// array as large as `macs`; a pass whose digit is the same for every MAC (a vendor's
    /// prefix) is skipped.
    static func radixSort(_ macs: inout [MACAddress]) {
        let n = macs.count
        var counts = [Int](repeating: 0, count: 3 << 16)
        macs.withUnsafeBufferPointer { m in
            counts.withUnsafeMutableBufferPointer { c in
                for mac in m {
                    let v = mac.rawValue
                    c[Int(v & 0xFFFF)] += 1
                    c[1 << 16 + Int(v >> 16 & 0xFFFF)] += 1
                    c[2 << 16 + Int(v >> 32 & 0xFFFF)] += 1
                }
            }
        }
        var scratch: [MACAddress] = []
        for pass in 0..<3 {
            let base = pass << 16
            let shift = UInt64(pass * 16)
            let sorted: Bool = counts.withUnsafeMutableBufferPointer { c in
                // One digit for all: this pass would move nothing.
                if c[base + Int(macs[0].rawValue >> shift & 0xFFFF)] == n { return true }
                var sum = 0
                for d in base..<(base + 1 << 16) {
                    let count = c[d]
                    c[d] = sum
                    sum += count
                }
                return false
            }
            if sorted { continue }
            if scratch.isEmpty {
                scratch = [MACAddress](repeating: MACAddress(rawValue: 0), count: n)
            }
            macs.withUnsafeBufferPointer { m in
                scratch.withUnsafeMutableBufferPointer { s in
                    counts.withUnsafeMutableBufferPointer { c in
                        for mac in m {
                            let d = base + Int(mac.rawValue >> shift & 0xFFFF)
                            s[c[d]] = mac
                            c[d] += 1
                        }
                    }
                }
            }
            swap(&macs, &scratch)
        }
    }
}
