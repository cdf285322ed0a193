import DaemonLogging
import Foundation
import Logging
import OVSDB
import Packet

/// vtepd's control plane: follows the hardware_vtep database and hands the data plane a new
/// `GatewaySnapshot` whenever what it forwards by changes.
///
/// It owns the `OVSDBClient`. On every (re)synchronisation it runs `Bootstrap`, so our
/// Physical_Switch and ports exist even on a database wiped while we were away; on every
/// replica change it recomputes the snapshot (off the actor, latest replica only, so a burst
/// of updates costs one computation, not one each) and calls `consumer` with it unless it
/// equals the last one delivered. While the server is unreachable the last snapshot stays in
/// force: the data plane keeps forwarding by it.
public actor ControlPlane {
    public nonisolated let client: OVSDBClient
    public nonisolated let bootstrap: Bootstrap
    public nonisolated let remote: Remote
    private let consumer: @Sendable (GatewaySnapshot) -> Void
    private let logger: Logger

    /// The last snapshot delivered to the consumer.
    public private(set) var snapshot: GatewaySnapshot?
    /// How many snapshots were delivered (identical ones are skipped).
    public private(set) var deliveries = 0
    /// The outcome of the last bootstrap that succeeded.
    public private(set) var bootstrapOutcome: Bootstrap.Outcome?
    /// Why the last bootstrap failed; nil once one succeeds.
    public private(set) var bootstrapError: BootstrapError?
    /// Whether the monitor is established right now.
    public private(set) var isSynchronized = false
    /// Why the last connection ended, if it did.
    public private(set) var lastDisconnect: String?
    /// Since when the database is unreachable (lost, or not reached yet); nil while
    /// synchronized.
    public private(set) var lostSince: Date?
    /// Messages or rows from the server that were malformed and left out, and the last one's
    /// reason.
    public private(set) var droppedMessages = 0
    public private(set) var lastDropped: String?
    /// Messages from the server refused as larger than the client's limit, since start.
    public private(set) var oversizedMessages = 0
    /// The last refusal's limit while it is not followed by a synchronisation: logged once,
    /// listed among the problems.
    private var refusingOversized: Int?
    /// How many replicas arrived (synchronisations and updates): it changes whenever the
    /// database does.
    public private(set) var replicaUpdates = 0

    private var pending: Replica?
    private var computing = false
    private var events: Task<Void, Never>?
    private var stopping = false
    /// A server (or a controller writing through it) sending malformed rows must not flood
    /// the log: one warning per 10 s, with the count.
    private let droppedLog = LogRateLimiter(interval: .seconds(10))

    public init(
        remote: Remote, bootstrap: Bootstrap, backoff: Backoff = .standard,
        maximumMessageSize: Int = JSONTextDecoder.defaultMaximumMessageSize,
        logger: Logger = Logger(label: "vtepd.database"),
        consumer: @escaping @Sendable (GatewaySnapshot) -> Void
    ) {
        client = OVSDBClient(
            remote: remote, monitoring: HardwareVTEP.followedRequests, backoff: backoff,
            maximumMessageSize: maximumMessageSize)
        self.remote = remote
        self.bootstrap = bootstrap
        self.consumer = consumer
        var logger = logger
        logger[metadataKey: "database"] = "\(remote)"
        self.logger = logger
    }

    /// How the database is followed now, for `show switch`.
    public var databaseState: String {
        get async {
            if let lostSince {
                return "\(remote) unreachable since \(Self.timeOfDay(lostSince))"
            }
            guard snapshot != nil else { return "connecting to \(remote)" }
            // A cluster: which member is followed.
            guard case .cluster = remote else { return "connected to \(remote)" }
            return "connected to \(await client.member) (cluster \(remote))"
        }
    }

    /// Whether the database is followed now (connected and synchronised), for the metrics.
    public var isConnected: Bool { lostSince == nil && snapshot != nil }

    /// Everything an operator should look at, for the control socket: the connection's and
    /// the bootstrap's problems, then the snapshot's.
    public var problems: [String] { connectionProblems + (snapshot?.problems ?? []) }

    /// The problems of following the database, beside the snapshot's own: the database
    /// lost, malformed messages left out, the bootstrap's failure or left-over ports.
    public var connectionProblems: [String] {
        var list: [String] = []
        if let lostSince {
            list.append(
                "the hardware_vtep database \(remote) is unreachable since"
                    + " \(Self.timeOfDay(lostSince)) (\(lastDisconnect ?? "no answer")); forwarding"
                    + " continues on the last configuration")
        }
        if droppedMessages > 0 {
            list.append(
                "\(droppedMessages) malformed message(s) or row(s) from the hardware_vtep"
                    + " database were left out; the last: \(lastDropped ?? "")")
        }
        if let limit = refusingOversized {
            list.append(
                "a message from the hardware_vtep database exceeded \(limit) bytes and was refused"
                    + " (\(oversizedMessages) so far); the connection is retried")
        }
        if let bootstrapError { list.append("\(bootstrapError)") }
        list += bootstrapOutcome?.problems(physicalSwitch: bootstrap.physicalSwitch) ?? []
        return list
    }

    /// "2026-12-05 07:25:04 UTC", for problems that say since when.
    static func timeOfDay(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter.string(from: date)
    }

    /// Connects and starts following; returns at once.
    public func start() async {
        guard events == nil else { return }
        stopping = false
        let stream = client.events
        events = Task { [weak self] in
            for await event in stream {
                guard let self else { return }
                await self.handle(event)
            }
        }
        await client.start()
    }

    /// Disconnects and stops; the last snapshot is kept.
    public func stop() async {
        stopping = true
        await client.stop()  // finishes the event stream, which ends `events`
        await events?.value
        events = nil
        isSynchronized = false
    }

    func handle(_ event: MonitorEvent) async {
        switch event {
        case .synchronized(let replica):
            isSynchronized = true
            refusingOversized = nil
            if let since = lostSince {
                logger.notice(
                    "found the hardware_vtep database again",
                    metadata: ["unreachable_for": "\(Int(-since.timeIntervalSinceNow)) s"])
            } else {
                logger.info("following the hardware_vtep database")
            }
            lostSince = nil
            changed(replica)
            do throws(BootstrapError) {
                let outcome = try await bootstrap.run(on: client)
                let before = bootstrapOutcome?.problems(physicalSwitch: bootstrap.physicalSwitch)
                for problem in outcome.problems(physicalSwitch: bootstrap.physicalSwitch)
                where before?.contains(problem) != true {
                    logger.warning("\(problem)")
                }
                bootstrapOutcome = outcome
                if bootstrapError != nil { logger.notice("bootstrap succeeded") }
                bootstrapError = nil
            } catch {
                if bootstrapError != error {
                    logger.error("bootstrap failed, retried at the next connection: \(error)")
                }
                bootstrapError = error
            }
        case .updated(_, let replica):
            changed(replica)
        case .disconnected where stopping:
            isSynchronized = false
        case .disconnected(let reason):
            // Logged once per loss; the retries' reasons at debug only.
            if isSynchronized || lostSince == nil {
                if snapshot == nil && !isSynchronized {
                    logger.error(
                        "cannot reach the hardware_vtep database, retrying",
                        metadata: ["reason": "\(reason)"])
                } else {
                    logger.error(
                        "lost the hardware_vtep database, reconnecting; forwarding continues on the last configuration",
                        metadata: ["reason": "\(reason)"])
                }
                lostSince = Date()
            } else {
                logger.debug("reconnecting failed", metadata: ["reason": "\(reason)"])
            }
            isSynchronized = false
            lastDisconnect = reason
        case .messageTooLarge(let limit):
            oversizedMessages += 1
            // Once per episode: the server resends the same message at every reconnection.
            if refusingOversized == nil {
                logger.error(
                    "\("refused a message from the hardware_vtep database larger than \(limit) bytes;") reconnecting (counted in vtep_limit_refusals_total)"
                )
            }
            refusingOversized = limit
        case .dropped(let reason):
            droppedMessages += 1
            lastDropped = reason
            if let count = droppedLog.admit("dropped") {
                logger.warning(
                    "left out malformed messages or rows from the database; the last: \(reason)",
                    metadata: ["dropped": "\(count)", "dropped_total": "\(droppedMessages)"])
            }
        }
    }

    private func changed(_ replica: Replica) {
        replicaUpdates += 1
        pending = replica
        guard !computing else { return }
        computing = true
        Task { await self.compute() }
    }

    /// Computes snapshots until no newer replica is waiting.
    private func compute() async {
        while let replica = pending {
            pending = nil
            let name = bootstrap.physicalSwitch
            let local = bootstrap.tunnelIPs
            let next = await Task.detached {
                GatewaySnapshot(
                    database: HardwareVTEP.Database(replica), physicalSwitch: name,
                    localTunnelIPs: local)
            }.value
            if next != snapshot {
                snapshot = next
                deliveries += 1
                consumer(next)
            }
        }
        computing = false
    }
}
