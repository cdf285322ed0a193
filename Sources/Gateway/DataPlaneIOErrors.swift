import DaemonLogging
import DataPlane
import Logging
import Synchronization

/// Brings the worker's failed receive and send calls to the log and `show configuration`.
/// The worker only counts them and keeps the last errno (`DataPlaneIOError`): it never
/// allocates or logs per packet. This side reads that once a second and logs it rate-limited:
/// at most one line per reason (call and errno) per `LogRateLimiter.interval`, saying how many
/// failures the line stands for. It is a problem while failures happened within `recent`.
public final class DataPlaneIOErrors: Sendable {
    private struct State {
        var count: UInt64 = 0
        var last: DataPlaneIOError?
        var lastGrowth: ContinuousClock.Instant?
    }

    public let recent: Duration
    private let state = Mutex(State())
    private let limiter: LogRateLimiter
    private let read: @Sendable () async -> (count: UInt64, last: DataPlaneIOError?)
    private let logger: Logger

    public init(
        limiter: LogRateLimiter = LogRateLimiter(), recent: Duration = .seconds(60),
        logger: Logger = Logger(label: "vtepd.dataplane"),
        read: @escaping @Sendable () async -> (count: UInt64, last: DataPlaneIOError?)
    ) {
        self.limiter = limiter
        self.recent = recent
        self.logger = logger
        self.read = read
    }

    public convenience init(dataPlane: DataPlane, logger: Logger) {
        self.init(logger: logger, read: { await dataPlane.inspect { $0.ioErrorState } })
    }

    /// Rounds once a second until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            await round()
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Reads the worker's count and logs what grew, and counts held back earlier.
    public func round(now: ContinuousClock.Instant = .now) async {
        let (count, last) = await read()
        let grew = state.withLock { state -> UInt64 in
            defer {
                state.count = count
                state.last = last
            }
            guard count > state.count else { return 0 }
            state.lastGrowth = now
            return count - state.count
        }
        if grew > 0, let last {
            let reason = last.description
            if let n = limiter.admit(reason, count: Int(grew), now: now) {
                logger.error(
                    "data-plane I/O error: \(reason)",
                    metadata: ["failures": "\(n)", "io_error": "\(count)"])
            }
        }
        for (reason, n) in limiter.due(now: now) {
            logger.error(
                "data-plane I/O error: \(reason)",
                metadata: ["failures": "\(n)", "io_error": "\(count)"])
        }
    }

    /// For `show configuration`: the failures, while some happened within `recent`.
    public func problems(now: ContinuousClock.Instant = .now) -> [String] {
        let (count, last, growth) = state.withLock { ($0.count, $0.last, $0.lastGrowth) }
        guard let growth, now - growth < recent, let last else { return [] }
        return [
            "data-plane I/O errors: \(count) so far (counter io_error); the last: \(last)"
        ]
    }
}
