import NIOCore
import NIOPosix

/// What a consumer of `OVSDBClient.events` sees. Each event carries the whole replica, so a
/// consumer can recompute its state from the latest event alone.
public enum MonitorEvent: Hashable, Sendable {
    /// The monitor was (re)established: `Replica` is the database's full current contents.
    /// Whatever was known before a disconnect is replaced, not merged.
    case synchronized(Replica)
    /// An `update` notification (RFC 7047 §4.1.6) was applied; the replica after it.
    case updated(TableUpdates, Replica)
    /// The connection failed or closed; the client will retry after its backoff.
    case disconnected(reason: String)
    /// A message or row from the server was malformed and was left out.
    case dropped(reason: String)
}

/// An OVSDB client (RFC 7047) for one database on one server: keeps a monitor open on the
/// requested tables, mirrors them in `replica`, reconnects with `backoff` when the connection
/// drops, and runs `transact` requests.
///
/// Changes are observed through `events`, an `AsyncStream` (unbounded: every change is
/// delivered in order, so consume it). The connection lives on a NIO event loop; the client's
/// own state is actor-isolated.
public actor OVSDBClient {
    public nonisolated let remote: Remote
    public nonisolated let database: String
    public nonisolated let monitorRequests: [MonitorRequest]
    public nonisolated let backoff: Backoff
    public nonisolated let events: AsyncStream<MonitorEvent>

    /// The monitored tables as of the last update applied.
    public private(set) var replica = Replica()
    /// Malformed messages and rows received and left out, since the client was made.
    public private(set) var droppedCount = 0
    /// How many times the monitor has been established (1 after the first connection).
    public private(set) var synchronizations = 0

    private let eventsContinuation: AsyncStream<MonitorEvent>.Continuation
    private let group: any EventLoopGroup
    private var channel: (any Channel)?
    private var runTask: Task<Void, Never>?

    /// The `<json-value>` naming our monitor (RFC 7047 §4.1.5); echoed in every `update`.
    private static let monitorID: JSON = "vtep"

    public init(
        remote: Remote, database: String = "hardware_vtep", monitoring: [MonitorRequest],
        backoff: Backoff = .standard,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.remote = remote
        self.database = database
        self.monitorRequests = monitoring
        self.backoff = backoff
        self.group = group
        (events, eventsContinuation) = AsyncStream.makeStream()
    }

    /// Starts connecting; returns at once. Progress is reported through `events`.
    public func start() {
        guard runTask == nil else { return }
        runTask = Task { await self.run() }
    }

    /// Closes the connection, stops reconnecting and finishes `events`.
    public func stop() async {
        runTask?.cancel()
        try? await channel?.close()
        await runTask?.value
        runTask = nil
        eventsContinuation.finish()
    }

    public var isConnected: Bool { channel != nil }

    /// `transact` (RFC 7047 §4.1.3) on the client's database: the operations run atomically;
    /// results are in operation order. Throws `OVSDBError.operationFailed` naming the first
    /// operation that failed.
    public func transact(_ operations: [Operation]) async throws -> [OperationResult] {
        let result = try await request(
            "transact", [.string(database)] + operations.map(\.json))
        return try Operation.results(result, for: operations)
    }

    /// `get_schema` (RFC 7047 §4.1.2) of the client's database.
    public func schema() async throws -> JSON {
        try await request("get_schema", [.string(database)])
    }

    /// Sends any request and returns its `result`; throws `OVSDBError.server` for an error.
    public func request(_ method: String, _ params: [JSON]) async throws -> JSON {
        guard let channel else { throw OVSDBError.notConnected }
        return try await Self.send(method, params, on: channel)
    }

    private static func send(_ method: String, _ params: [JSON], on channel: any Channel)
        async throws -> JSON
    {
        let promise = channel.eventLoop.makePromise(of: JSON.self)
        channel.writeAndFlush(OVSDBRequest(method: method, params: params, promise: promise))
            .whenFailure { _ in promise.fail(OVSDBError.disconnected(method: method)) }
        return try await promise.futureResult.get()
    }

    private func run() async {
        var failures = 0
        while !Task.isCancelled {
            if await session() {
                failures = 0
            }
            guard !Task.isCancelled else { break }
            let delay = backoff.delay(afterFailures: failures)
            failures += 1
            do {
                try await Task.sleep(for: delay)
            } catch {
                break
            }
        }
    }

    /// One connection: connect, monitor, apply updates until it closes. True if the monitor
    /// was established.
    private func session() async -> Bool {
        let (inbound, continuation) = AsyncStream<JSONRPCInbound>.makeStream()
        let channel: any Channel
        do {
            channel = try await connect(inbound: continuation)
        } catch {
            eventsContinuation.yield(.disconnected(reason: "cannot connect to \(remote): \(error)"))
            return false
        }
        guard !Task.isCancelled else {
            try? await channel.close()
            return false
        }
        self.channel = channel
        do {
            let initial = try await Self.send(
                "monitor",
                [.string(database), Self.monitorID, MonitorRequest.json(monitorRequests)],
                on: channel)
            var fresh = Replica()
            for request in monitorRequests { fresh.tables[request.table] = [:] }
            fresh.apply(report(TableUpdates.decode(initial)))
            replica = fresh
            synchronizations += 1
            eventsContinuation.yield(.synchronized(replica))
        } catch {
            self.channel = nil
            try? await channel.close()
            eventsContinuation.yield(.disconnected(reason: "monitor on \(remote) failed: \(error)"))
            return false
        }
        for await message in inbound {
            switch message {
            case .notification("update", let params):
                guard params.count == 2, params[0] == Self.monitorID else {
                    drop("update notification for an unknown monitor: \(JSON.array(params))")
                    continue
                }
                let updates = report(TableUpdates.decode(params[1]))
                replica.apply(updates)
                eventsContinuation.yield(.updated(updates, replica))
            case .notification:
                // "locked", "stolen" (§4.1.9, §4.1.10): we take no locks.
                continue
            case .dropped(let reason):
                drop(reason)
            }
        }
        self.channel = nil
        try? await channel.close()
        eventsContinuation.yield(.disconnected(reason: "connection to \(remote) closed"))
        return true
    }

    private func report(_ decoded: (updates: TableUpdates, problems: [String])) -> TableUpdates {
        for problem in decoded.problems { drop(problem) }
        return decoded.updates
    }

    private func drop(_ reason: String) {
        droppedCount += 1
        eventsContinuation.yield(.dropped(reason: reason))
    }

    private func connect(inbound: AsyncStream<JSONRPCInbound>.Continuation) async throws
        -> any Channel
    {
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(JSONTextDecoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        JSONRPCHandler(inbound: inbound))
                }
            }
        switch remote {
        case .unix(let path):
            return try await bootstrap.connect(unixDomainSocketPath: path).get()
        case .tcp(let host, let port):
            return try await bootstrap.connect(host: host, port: port).get()
        }
    }
}
