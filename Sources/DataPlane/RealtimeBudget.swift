/// When the worker leaves the real-time scheduler and when it goes back, as the kernel treats
/// its own softirq work: softirqs run ahead of every task, but once they have run for 2 ms
/// without a pause (MAX_SOFTIRQ_TIME) the rest is handed to ksoftirqd, an ordinary task, so an
/// overload cannot starve the machine's other processes. The worker does the same: under
/// SCHED_FIFO while it keeps finding idle moments (a reply is forwarded without waiting for
/// the scheduler), under the normal scheduler from the moment it has been busy for `budget`
/// without one (a flood shares the CPU fairly with the shell, ovsdb-server and the rest),
/// back under SCHED_FIFO at its next idle poll. Pure bookkeeping: `DataPlaneWorker.run` makes
/// the system calls it returns, one per change of policy, never per frame.
public struct RealtimeBudget: Sendable {
    public enum Change: Equatable, Sendable { case none, leave, resume }

    /// 0: not under the real-time scheduler at all (the budget never acts).
    public let priority: Int
    public let budget: UInt64
    /// Whether the worker is under SCHED_FIFO now.
    public private(set) var realtime: Bool
    /// Whether the last poll found nothing ready.
    private var idle = true
    /// When the current stretch without an idle poll began.
    private var busySince: UInt64 = 0

    public static let defaultBudget: UInt64 = 2_000_000

    public init(priority: Int, budget: UInt64 = RealtimeBudget.defaultBudget) {
        self.priority = priority
        self.budget = budget
        realtime = priority > 0
    }

    /// After each poll: whether it found anything ready, at `clock` (nanoseconds).
    @inline(__always)
    public mutating func polled(ready: Bool, clock: UInt64) -> Change {
        guard priority > 0 else { return .none }
        if !ready {
            idle = true
            if realtime { return .none }
            realtime = true
            return .resume
        }
        if idle {
            idle = false
            busySince = clock
            return .none
        }
        guard realtime, clock &- busySince > budget else { return .none }
        realtime = false
        return .leave
    }

    /// The policy change did not happen (the kernel refused it): the worker stays as it was.
    public mutating func refused(_ change: Change) {
        switch change {
        case .leave: realtime = true
        case .resume: realtime = false
        case .none: break
        }
    }
}
