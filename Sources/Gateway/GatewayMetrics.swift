import Appliance
import ControlAPI
import DataPlane
import Forwarding
import Logging
import MetricsEndpoint
import Packet
import Synchronization

/// vtepd's metrics endpoint as a setting: where it listens (the appliance settings' `metrics`,
/// else vtepd's `--metrics-listen`, else nowhere), the listener itself, and the commands that
/// change it. A change starts the new listener before the setting is saved and stops the old
/// one after, so a refused address (a port in use, an address not of this host, a tunnel
/// address) changes nothing.
public final class GatewayMetrics: Sendable {
    private struct State {
        /// `--metrics-listen`: where to listen while the settings say nothing.
        var bootstrap: IPEndpoint?
        /// This gateway's tunnel addresses: never a listen address.
        var tunnelAddresses: [IPAddress] = []
        var sample: (@Sendable () async -> MetricsSample)?
        var server: MetricsServer?
        /// Why the configured address is not served (at start: a port in use).
        var problem: String?
        /// Why it is served or not, for `show metrics`.
        var origin = "off: no address is configured (set metrics listen IP:PORT)"
        /// A change is under way: the next one is refused rather than interleaved.
        var changing = false
    }

    private let state = Mutex(State())
    private let logger = Logger(label: "vtepd.metrics")

    public init() {}

    /// What the endpoint serves, and what it must never listen on.
    public func configure(
        bootstrap: IPEndpoint?, tunnelAddresses: [IPAddress],
        sample: @escaping @Sendable () async -> MetricsSample
    ) {
        state.withLock {
            $0.bootstrap = bootstrap
            $0.tunnelAddresses = tunnelAddresses
            $0.sample = sample
        }
    }

    /// Starts listening as `saved` (the appliance settings) or the command line says. A
    /// failure is logged and listed among the problems; vtepd runs on without metrics.
    public func start(saved: MetricsSetting?) async {
        let bootstrap = state.withLock { $0.bootstrap }
        let wanted: IPEndpoint?
        let origin: String
        switch (saved, bootstrap) {
        case (.listen(let endpoint)?, _):
            (wanted, origin) = (endpoint, "the saved setting (set metrics listen)")
        case (.off?, _):
            (wanted, origin) = (nil, "off: the saved setting (clear metrics)")
        case (nil, let endpoint?):
            (wanted, origin) = (endpoint, "vtepd's --metrics-listen")
        case (nil, nil):
            return
        }
        state.withLock { $0.origin = origin }
        guard let wanted else { return }
        do throws(ControlFailure) {
            let server = try await listen(on: wanted)
            state.withLock { $0.server = server }
            logger.notice(
                "serving metrics", metadata: ["listen": "\(wanted)", "from": "\(origin)"])
        } catch {
            logger.error("metrics are not served: \(error.message)")
            state.withLock { $0.problem = "metrics are not served: \(error.message)" }
        }
    }

    /// `set metrics listen`: listens on `endpoint`, then `save` records the setting; the old
    /// listener stops once the new one is saved. The same address again only saves.
    func set(_ endpoint: IPEndpoint, save: () async throws(ControlFailure) -> Void)
        async throws(ControlFailure)
    {
        try begin()
        defer { state.withLock { $0.changing = false } }
        let old = state.withLock { $0.server }
        var new: MetricsServer? = nil
        if old?.endpoint != endpoint { new = try await listen(on: endpoint) }
        do {
            try await save()
        } catch {
            await new?.stop()
            throw error
        }
        if let new {
            state.withLock { $0.server = new }
            await old?.stop()
        }
        state.withLock {
            $0.problem = nil
            $0.origin = "the saved setting (set metrics listen)"
        }
        logger.notice("serving metrics", metadata: ["listen": "\(endpoint)"])
    }

    /// `clear metrics`: `save` records "off", then the listener stops.
    func clear(save: () async throws(ControlFailure) -> Void) async throws(ControlFailure) {
        try begin()
        defer { state.withLock { $0.changing = false } }
        try await save()
        let old = state.withLock { state in
            defer {
                state.server = nil
                state.problem = nil
                state.origin = "off: the saved setting (clear metrics)"
            }
            return state.server
        }
        await old?.stop()
        if old != nil { logger.notice("metrics no longer served") }
    }

    /// Stops listening (vtepd stopping).
    public func stop() async {
        let old = state.withLock { state in
            defer { state.server = nil }
            return state.server
        }
        await old?.stop()
    }

    /// `show metrics`.
    func lines() -> [String] {
        state.withLock { state in
            var lines: [String] = []
            if let server = state.server {
                lines.append(
                    "listening on \(server.endpoint): GET http://\(server.endpoint)/metrics")
                lines.append("from \(state.origin)")
                lines.append("scrapes answered: \(server.scrapesAnswered)")
            } else {
                lines.append(state.origin.hasPrefix("off") ? state.origin : "off")
            }
            if let problem = state.problem { lines.append(problem) }
            return lines
        }
    }

    /// What `show switch problems` lists.
    public func problems() -> [String] { state.withLock { $0.problem.map { [$0] } ?? [] } }

    /// Marks a change under way; refuses a second one meanwhile (the caller of a successful
    /// `begin` clears the mark when done).
    private func begin() throws(ControlFailure) {
        let busy = state.withLock { state in
            defer { state.changing = true }
            return state.changing
        }
        if busy { throw ControlFailure("another metrics change is under way; retry") }
    }

    private func listen(on endpoint: IPEndpoint) async throws(ControlFailure) -> MetricsServer {
        let (tunnels, sample) = state.withLock { ($0.tunnelAddresses, $0.sample) }
        if tunnels.contains(endpoint.address) {
            throw ControlFailure(
                "\(endpoint.address) is a tunnel address of this gateway: metrics would be served"
                    + " to the underlay; give the management interface's address")
        }
        do {
            try ApplianceSettings.checkMetricsListen(endpoint)
        } catch {
            throw ControlFailure(error.description)
        }
        guard let sample else { throw ControlFailure("vtepd is starting; retry") }
        do {
            return try await MetricsServer.start(on: endpoint) { await sample().exposition() }
        } catch {
            throw ControlFailure(error.description)
        }
    }

    /// The handlers of `set metrics listen`, `clear metrics` and `show metrics`; the setting
    /// is saved through the appliance's settings (atomically, with the others).
    func register(in table: inout ControlHandlers, appliance: ApplianceController) {
        table.on(SetMetricsListen.self) { command, _ throws(ControlFailure) in
            try await self.set(command.address) { () async throws(ControlFailure) in
                _ = try await appliance.offThePool { () throws(ControlFailure) in
                    try appliance.change { $0.metrics = .listen(command.address) }
                    return .accepted
                }
            }
            return .accepted
        }
        table.on(ClearMetrics.self) { _, _ throws(ControlFailure) in
            try await self.clear { () async throws(ControlFailure) in
                _ = try await appliance.offThePool { () throws(ControlFailure) in
                    try appliance.change { $0.metrics = .off }
                    return .accepted
                }
            }
            return .accepted
        }
        table.on(ShowMetrics.self) { _, _ in .lines(self.lines()) }
    }
}

extension GatewayController {
    /// One scrape's worth: the counters report, and the MAC entries per switch and the
    /// worker's load read in the same turn between batches (the table's per-switch counts,
    /// no scan).
    func metricsSample(
        databaseConnected: Bool, localMACPublishing: Bool, managers: [String: Bool] = [:],
        limitRefusals: [String: UInt64] = [:]
    ) async -> MetricsSample {
        let counters = await counters()
        let (entries, load, bfd) = await dataPlane.inspect { worker in
            var entries: [String: Int] = [:]
            for (i, s) in worker.currentConfiguration.switches.enumerated() {
                guard let s else { continue }
                entries[s.name] = worker.macEntries(of: SwitchIndex(rawValue: UInt16(i)))
            }
            return (entries, worker.load, worker.bfdCounters())
        }
        var sample = MetricsSample(
            counters: counters, macEntries: entries, databaseConnected: databaseConnected,
            localMACPublishing: localMACPublishing, workerBatches: load.batches,
            workerBusySeconds: load.busySeconds, managers: managers, limitRefusals: limitRefusals)
        sample.bfdReceived = bfd.received
        sample.bfdSent = bfd.sent
        sample.bfdBad = bfd.bad
        sample.bfdSessionsUp = bfd.sessionsUp
        sample.workerRealtimeYields = load.realtimeYields
        return sample
    }
}
