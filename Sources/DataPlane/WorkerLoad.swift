import Forwarding

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// How busy the worker is, counted per receive batch and per wakeup, never per frame: the
/// metrics endpoint's `vtep_worker_batches_total` and `vtep_worker_busy_seconds_total`, whose
/// rate is the fraction of the time the worker serves sockets rather than waits in poll(2).
public struct WorkerLoad: Sendable {
    /// Receive batches served (one recvmmsg or read that returned frames).
    public var batches: UInt64 = 0
    /// Time spent serving ready sockets, from poll(2)'s return to the last send.
    public var busyNanoseconds: UInt64 = 0
    /// Times the worker, busy for 2 ms without an idle moment, left the real-time scheduler
    /// until its next idle moment (`RealtimeBudget`): how often it was overloaded.
    public var realtimeYields: UInt64 = 0

    public init() {}

    public var busySeconds: Double { Double(busyNanoseconds) / 1e9 }

    /// CLOCK_MONOTONIC in nanoseconds (a vDSO call, no system call).
    static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }
}

extension DataPlaneWorker {
    /// The MAC table's entries of one logical switch: a count the table keeps, no scan.
    public func macEntries(of sw: SwitchIndex) -> Int { engine.macTable.count(of: sw) }
}
