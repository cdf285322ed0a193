import Synchronization

/// Lets a repeated failure reach the log at most once per `interval` per reason, and says how
/// many occurrences each line stands for, so a failure that recurs thousands of times a
/// second (a send error on every batch) costs one line every ten seconds, not a flooded
/// journal, and the log still shows how often it happened.
///
/// The caller supplies the time, so tests are exact.
public final class LogRateLimiter: Sendable {
    public let interval: Duration
    private struct Entry {
        var lastLogged: ContinuousClock.Instant
        var held: Int
    }
    private let entries = Mutex<[String: Entry]>([:])

    public init(interval: Duration = .seconds(10)) { self.interval = interval }

    /// `count` occurrences of `reason` at `now` (a counter that grew by 500 since the last
    /// look is 500): nil if they are held back, else how many occurrences the line to log now
    /// stands for (these and the ones held back since the last line).
    public func admit(_ reason: String, count: Int = 1, now: ContinuousClock.Instant = .now)
        -> Int?
    {
        entries.withLock { entries in
            if var entry = entries[reason], now - entry.lastLogged < interval {
                entry.held += count
                entries[reason] = entry
                return nil
            }
            let total = (entries[reason]?.held ?? 0) + count
            entries[reason] = Entry(lastLogged: now, held: 0)
            return total
        }
    }

    /// Occurrences held back whose reason may be logged again at `now`, by reason, sorted: a
    /// failure that stopped recurring still gets its count into the log.
    public func due(now: ContinuousClock.Instant = .now) -> [(reason: String, count: Int)] {
        entries.withLock { entries in
            var list: [(reason: String, count: Int)] = []
            for (reason, entry) in entries
            where entry.held > 0 && now - entry.lastLogged >= interval {
                list.append((reason, entry.held))
                entries[reason] = Entry(lastLogged: now, held: 0)
            }
            return list.sorted { $0.reason < $1.reason }
        }
    }
}
