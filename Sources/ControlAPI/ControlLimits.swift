import DaemonLogging
import Logging
import Synchronization

/// How many requests a second one control connection may make: a token bucket of `burst`
/// requests refilled at `perSecond`. Beyond it a request is answered with a refusal (the
/// connection stays open), so a runaway script cannot keep vtepd's control side busy.
public struct RequestRate: Hashable, Sendable, CustomStringConvertible {
    public var perSecond: Int
    public var burst: Int

    public init(perSecond: Int, burst: Int) {
        precondition(perSecond > 0 && burst > 0, "a request rate must be positive")
        self.perSecond = perSecond
        self.burst = burst
    }

    /// Far above what the shell or a monitoring script sends (a `show running-config` is a
    /// few requests), far below what keeps the control side's threads busy.
    public static let standard = RequestRate(perSecond: 500, burst: 1000)

    public var description: String { "at most \(perSecond) a second, \(burst) at once" }
}

/// One connection's request bucket: whole requests scaled by `perSecond` so that no fraction
/// of a refill is lost. The caller supplies the time, so tests are exact.
struct RequestBucket {
    let rate: RequestRate
    /// Tokens in requests × 1,000,000,000 (nanoseconds of refill at one request a second).
    private var tokens: Int64
    private var last: ContinuousClock.Instant

    init(_ rate: RequestRate, now: ContinuousClock.Instant) {
        self.rate = rate
        tokens = Int64(rate.burst) * 1_000_000_000
        last = now
    }

    /// Takes one request's token; false (nothing taken) when the bucket is empty.
    mutating func admit(now: ContinuousClock.Instant) -> Bool {
        let elapsed = now - last
        last = now
        // Capped at 1,000 s, more than any bucket takes to fill: no overflow.
        let seconds = min(max(0, elapsed.components.seconds), 1000)
        let nanoseconds = seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        let cap = Int64(rate.burst) * 1_000_000_000
        tokens = min(cap, tokens + max(0, nanoseconds) * Int64(rate.perSecond))
        guard tokens >= 1_000_000_000 else { return false }
        tokens -= 1_000_000_000
        return true
    }
}

/// What the control socket refused to protect vtepd, since start: connections beyond the cap
/// (`OpenChannels`), request lines beyond the size limit, requests beyond a connection's rate.
/// Each kind reaches the log when it first happens, then at most once a minute with how many
/// there were since (not once per refusal).
public final class ControlRefusals: Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case requestSize = "control_request_size"
        case requestRate = "control_request_rate"
    }

    private let counts = Mutex<[Kind: Int]>([:])
    private let log: LogRateLimiter
    private let logger: Logger?

    public init(logger: Logger? = nil, logInterval: Duration = .seconds(60)) {
        self.logger = logger
        log = LogRateLimiter(interval: logInterval)
    }

    public func count(_ kind: Kind) -> Int { counts.withLock { $0[kind] ?? 0 } }

    /// Counts one refusal of `kind`, described by `detail` in the log line.
    func refused(_ kind: Kind, _ detail: String, now: ContinuousClock.Instant = .now) {
        counts.withLock { $0[kind, default: 0] += 1 }
        guard let logged = log.admit(kind.rawValue, now: now) else { return }
        logger?.warning(
            "control socket: \(detail) (counted in show system and vtep_limit_refusals_total)",
            metadata: ["refusals": "\(logged)", "limit": "\(kind.rawValue)"])
    }
}
