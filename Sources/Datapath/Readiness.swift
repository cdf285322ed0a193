import CLinuxNet
import Glibc

/// What the data-plane worker sleeps on: an epoll instance over its descriptors, each added
/// once with its slot (its index in the worker's table) as the event's data. poll(2) did the
/// same job but set up and tore down a wait on every descriptor at every call (three calls a
/// ping round trip, about a fifth of the worker's samples in `perf`), a cost that grows with
/// the ports; no change in latency measured on a noisy machine (docs/benchmarks.md).
/// Level-triggered, as poll is: a descriptor still holding data is ready again at the next
/// wait. Where epoll cannot be had (it always can on Linux), it falls back to poll.
public final class Readiness {
    private let epoll: Int32
    /// The slots of one wait's ready descriptors; a wait reports at most this many, the
    /// others (still ready, level-triggered) at the next.
    private let slots: UnsafeMutablePointer<Int32>
    private static let capacity = 64

    /// Watches `descriptors` (POLLIN); negative ones (absent sockets) are left out.
    public init(_ descriptors: [pollfd]) {
        slots = .allocate(capacity: Self.capacity)
        epoll = Self.watch(descriptors)
    }

    private static func watch(_ descriptors: [pollfd]) -> Int32 {
        let epoll = clinuxnet_epoll_create()
        guard epoll >= 0 else { return -1 }
        for (slot, entry) in descriptors.enumerated() where entry.fd >= 0 {
            guard clinuxnet_epoll_add(epoll, entry.fd, UInt32(slot)) == 0 else {
                close(epoll)
                return -1
            }
        }
        return epoll
    }

    deinit {
        if epoll >= 0 { close(epoll) }
        slots.deallocate()
    }

    /// Waits up to `timeout` milliseconds (0: not at all) for a descriptor to be ready, as
    /// poll(2) would: every entry's `revents` cleared, then POLLIN set on the ready ones;
    /// returns how many are ready (0 on timeout or EINTR).
    @inline(__always)
    public func wait(_ descriptors: inout [pollfd], timeout: Int32) -> Int32 {
        guard epoll >= 0 else {
            let ready = descriptors.withUnsafeMutableBufferPointer {
                poll($0.baseAddress, nfds_t($0.count), timeout)
            }
            return max(0, ready)
        }
        let n = clinuxnet_epoll_wait(epoll, slots, Int32(Self.capacity), timeout)
        descriptors.withUnsafeMutableBufferPointer { entries in
            for i in 0..<entries.count { entries[i].revents = 0 }
            var i = 0
            while i < Int(n) {
                let slot = Int(slots[i])
                if slot < entries.count { entries[slot].revents = Int16(POLLIN) }
                i += 1
            }
        }
        return max(0, n)
    }
}
