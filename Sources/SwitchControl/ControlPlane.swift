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
    private let consumer: @Sendable (GatewaySnapshot) -> Void

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
    /// Messages or rows from the server that were malformed and left out.
    public private(set) var droppedMessages = 0
    /// How many replicas arrived (synchronisations and updates): it changes whenever the
    /// database does.
    public private(set) var replicaUpdates = 0

    private var pending: Replica?
    private var computing = false
    private var events: Task<Void, Never>?

    public init(
        remote: Remote, bootstrap: Bootstrap, backoff: Backoff = .standard,
        consumer: @escaping @Sendable (GatewaySnapshot) -> Void
    ) {
        client = OVSDBClient(
            remote: remote, monitoring: HardwareVTEP.monitorRequests, backoff: backoff)
        self.bootstrap = bootstrap
        self.consumer = consumer
    }

    /// Everything an operator should look at, for the control socket: the bootstrap's
    /// failure or left-over ports, then the snapshot's problems.
    public var problems: [String] {
        var list: [String] = []
        if let bootstrapError { list.append("\(bootstrapError)") }
        list += bootstrapOutcome?.problems(physicalSwitch: bootstrap.physicalSwitch) ?? []
        return list + (snapshot?.problems ?? [])
    }

    /// Connects and starts following; returns at once.
    public func start() async {
        guard events == nil else { return }
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
        await client.stop()  // finishes the event stream, which ends `events`
        await events?.value
        events = nil
        isSynchronized = false
    }

    private func handle(_ event: MonitorEvent) async {
        switch event {
        case .synchronized(let replica):
            isSynchronized = true
            changed(replica)
            do throws(BootstrapError) {
                bootstrapOutcome = try await bootstrap.run(on: client)
                bootstrapError = nil
            } catch {
                bootstrapError = error
            }
        case .updated(_, let replica):
            changed(replica)
        case .disconnected(let reason):
            isSynchronized = false
            lastDisconnect = reason
        case .dropped:
            droppedMessages += 1
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
