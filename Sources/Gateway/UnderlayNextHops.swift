import DataPlane
import Forwarding
import Logging
import Packet
import SwitchControl
import Synchronization

/// Keeps the data plane's next hops resolved for every locator it may send to: those of the
/// snapshot in force (remote MACs' locators, multicast groups, head-end lists, service nodes)
/// and the VTEPs the worker discovered. Until a locator's next hop is known its frames take
/// the kernel's UDP path; why it is not known reaches the log and `show configuration`.
///
/// Rounds: once a second, within 50 ms of each snapshot, and every 250 ms while a locator is
/// unresolved. A neighbour being asked for is normal for a moment: it becomes a problem
/// (and a warning) only after `patience`; other reasons (routed via another interface, a
/// failed lookup) at once.
public final class UnderlayNextHops: Sendable {
    public typealias Unresolved = NextHopResolver.Unresolved

    private struct State {
        var configured: [Locator] = []
        var fresh = false
        var applied: [Locator: NextHop]? = nil
        /// Each unresolved locator's reason and since when it has had that reason, and whether
        /// it was reported (logged above debug) yet.
        var unresolved:
            [Locator: (reason: Unresolved, since: ContinuousClock.Instant, reported: Bool)] =
                [:]
    }

    public let patience: Duration
    private let state = Mutex(State())
    private let resolve: @Sendable ([Locator]) -> NextHopResolver.Outcome
    private let discovered: @Sendable () async -> [Locator]
    private let apply: @Sendable ([Locator: NextHop]) -> Void
    private let logger: Logger

    /// - Parameters:
    ///   - resolve: the netlink lookups (`NextHopResolver.resolve`).
    ///   - discovered: the VTEPs the worker discovered.
    ///   - apply: hands the resolved next hops to the data plane.
    public init(
        patience: Duration = .seconds(3), logger: Logger = Logger(label: "vtepd.dataplane"),
        resolve: @escaping @Sendable ([Locator]) -> NextHopResolver.Outcome,
        discovered: @escaping @Sendable () async -> [Locator],
        apply: @escaping @Sendable ([Locator: NextHop]) -> Void
    ) {
        self.patience = patience
        self.logger = logger
        self.resolve = resolve
        self.discovered = discovered
        self.apply = apply
    }

    /// The data plane's resolver and worker.
    public convenience init(dataPlane: DataPlane, resolver: NextHopResolver, logger: Logger) {
        self.init(
            logger: logger, resolve: { resolver.resolve($0) },
            discovered: { await dataPlane.inspect { $0.discoveredLocators } },
            apply: { dataPlane.setNextHops($0) })
    }

    /// The locators of a new snapshot; the next round starts at once.
    public func set(_ snapshot: GatewaySnapshot) {
        var all = snapshot.locators
        for s in snapshot.switches {
            switch s.replication {
            case .multicast(let g): all.append(g)
            case .headEnd(let l): all += l
            case .serviceNode(let list): all += list
            }
        }
        state.withLock {
            $0.configured = all
            $0.fresh = true
        }
    }

    /// The locators whose next hop is unresolved for a reason an operator should see.
    public func problems(now: ContinuousClock.Instant = .now) -> [String] {
        let list = state.withLock { $0.unresolved }
        return list.filter { isProblem($0.value.reason, since: $0.value.since, now: now) }
            .sorted { $0.key.ip.description < $1.key.ip.description }
            .map { locator, entry in
                "next hop of VTEP \(locator.ip) (\(locator.encapsulation)) unresolved: \(entry.reason);"
                    + " its frames take the kernel's path"
            }
    }

    private func isProblem(
        _ reason: Unresolved, since: ContinuousClock.Instant, now: ContinuousClock.Instant
    )
        -> Bool
    {
        if case .awaitingNeighbour = reason { return now - since >= patience }
        return true
    }

    /// Rounds until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            let unresolved = await round()
            for _ in 0..<(unresolved ? 5 : 20) {
                try? await Task.sleep(for: .milliseconds(50))
                if Task.isCancelled || state.withLock({ $0.fresh }) { break }
            }
        }
    }

    /// One round: resolves, hands changed next hops to the data plane, logs what changed.
    /// Returns whether a locator is left unresolved.
    @discardableResult
    public func round(now: ContinuousClock.Instant = .now) async -> Bool {
        let configured = state.withLock {
            $0.fresh = false
            return $0.configured
        }
        let wanted = configured + (await discovered())
        let outcome = resolve(wanted)
        let changed = state.withLock { state -> Bool in
            guard state.applied != outcome.hops else { return false }
            state.applied = outcome.hops
            return true
        }
        if changed { apply(outcome.hops) }
        note(outcome, now: now)
        return !outcome.unresolved.isEmpty
    }

    /// Logs each locator's change: debug while it is normal, a warning when it becomes a
    /// problem, a notice when a reported one is resolved.
    private func note(_ outcome: NextHopResolver.Outcome, now: ContinuousClock.Instant) {
        var lines: [(Logger.Level, String)] = []
        state.withLock { state in
            for (locator, old) in state.unresolved where outcome.unresolved[locator] == nil {
                state.unresolved[locator] = nil
                if old.reported && outcome.hops[locator] != nil {
                    lines.append((.notice, "next hop of VTEP \(locator.ip) resolved"))
                }
            }
            for (locator, reason) in outcome.unresolved {
                var entry = state.unresolved[locator] ?? (reason, now, false)
                if entry.reason != reason { entry = (reason, now, false) }
                if !entry.reported && isProblem(reason, since: entry.since, now: now) {
                    entry.reported = true
                    lines.append(
                        (.warning, "next hop of VTEP \(locator.ip) unresolved: \(reason)"))
                } else if state.unresolved[locator]?.reason != reason {
                    lines.append((.debug, "next hop of VTEP \(locator.ip): \(reason)"))
                }
                state.unresolved[locator] = entry
            }
        }
        for (level, line) in lines { logger.log(level: level, "\(line)") }
    }
}
