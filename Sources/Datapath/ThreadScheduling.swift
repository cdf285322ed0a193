import CLinuxNet
import Glibc

extension System {
    /// Names the calling thread (at most 15 bytes, the kernel's limit: longer is cut), as
    /// `top -H`, `ps -L` and /proc/PID/task/TID/comm show it.
    public static func nameCurrentThread(_ name: String) {
        _ = clinuxnet_set_thread_name(String(name.utf8.prefix(15))!)
    }

    /// Puts the calling thread under SCHED_FIFO at `priority` (1–99), or back under the
    /// normal time-sharing scheduler (SCHED_OTHER) for 0. Needs CAP_SYS_NICE (or an
    /// RLIMIT_RTPRIO that allows it) for a real-time priority; the refusal is thrown and the
    /// thread's scheduling is left as it was.
    public static func setCurrentThreadRealtime(priority: Int) throws(SchedulingError) {
        precondition((0...99).contains(priority), "a real-time priority is 0 to 99")
        var parameters = sched_param()
        parameters.sched_priority = Int32(priority)
        // pid 0: the calling thread (sched_setscheduler(2) acts on a thread ID on Linux).
        let policy = priority == 0 ? SCHED_OTHER : SCHED_FIFO
        guard sched_setscheduler(0, policy, &parameters) == 0 else {
            throw SchedulingError(errno: errno)
        }
    }

    /// SCHED_BATCH and SCHED_IDLE (linux/sched.h), which glibc declares only with _GNU_SOURCE.
    public static let schedBatch: Int32 = 3
    public static let schedIdle: Int32 = 5

    /// A scheduling policy's name as sched(7) spells it.
    public static func schedulingPolicyName(_ policy: Int32) -> String {
        switch policy {
        case SCHED_OTHER: "SCHED_OTHER"
        case SCHED_FIFO: "SCHED_FIFO"
        case SCHED_RR: "SCHED_RR"
        case schedBatch: "SCHED_BATCH"
        case schedIdle: "SCHED_IDLE"
        default: "policy \(policy)"
        }
    }

    /// The calling thread's scheduling policy and real-time priority (0 under SCHED_OTHER).
    public static func currentThreadScheduling() -> (policy: Int32, priority: Int) {
        var parameters = sched_param()
        _ = sched_getparam(0, &parameters)
        return (sched_getscheduler(0), Int(parameters.sched_priority))
    }
}

/// sched_setscheduler(2) refused: why, in words an operator can act on.
public struct SchedulingError: Error, Sendable, CustomStringConvertible {
    public let errno: Int32

    public var description: String {
        switch errno {
        case EPERM:
            "not permitted: the real-time scheduler needs CAP_SYS_NICE or an RLIMIT_RTPRIO that"
                + " allows it (systemd: LimitRTPRIO=, or a cgroup without a real-time budget)"
        default: "sched_setscheduler failed: \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }
}
