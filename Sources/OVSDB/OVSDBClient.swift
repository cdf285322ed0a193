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
    /// A message from the server grew past `limit` bytes (the client's
    /// `maximumMessageSize`): refused, and the connection closed (a `.disconnected` follows).
    case messageTooLarge(limit: Int)
}

/// An OVSDB client (RFC 7047) for one database on one server, or on the members of a
/// clustered database (`Remote.cluster`): keeps a monitor open on the requested tables,
/// mirrors them in `replica`, reconnects with `backoff` when the connection drops, and runs
/// `transact` requests.
///
/// With a cluster, as Open vSwitch's own clients do (ovsdb-idl), each member it connects to
/// is checked first in its `_Server` database (`Database` row: `connected` to the cluster,
/// its `leader`, and an `index` not behind the highest seen, so a stale member is never
/// read); one that is not fit is left for the next member at once, and the backoff applies
/// only after every member was tried. After a disconnect the monitor is established anew
/// with the whole state (`.synchronized`).
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
    /// Messages refused as larger than `maximumMessageSize`, since the client was made.
    public private(set) var oversizedMessages = 0
    /// The largest message accepted from the server, in bytes.
    public nonisolated let maximumMessageSize: Int
    /// How many times the monitor has been established (1 after the first connection).
    public private(set) var synchronizations = 0
    /// The server the client is connected to, or tries next: `remote`, or one of its members.
    public private(set) var member: Remote
    /// The highest Raft log index a member of the cluster reported: one behind it is stale.
    private var clusterIndex: Int?
    /// The last transaction the replica reflects (`monitor_cond_since`, cluster members only).
    private var lastTransaction: UUID?
    /// The schema's column types, for `<table-updates2>` diffs; read once.
    private var columnTypes: ColumnTypes?
    /// How many times a monitor resumed from the last transaction seen, not resending the
    /// whole contents (a cluster member that still had it).
    public private(set) var resumptions = 0

    private let eventsContinuation: AsyncStream<MonitorEvent>.Continuation
    private let group: any EventLoopGroup
    private var channel: (any Channel)?
    private var runTask: Task<Void, Never>?

    /// The `<json-value>` naming our monitor (RFC 7047 §4.1.5); echoed in every `update`.
    private static let monitorID: JSON = "vtep"
    /// Our monitor of a cluster member's `_Server` database.
    private static let serverMonitorID: JSON = "server"

    public init(
        remote: Remote, database: String = "hardware_vtep", monitoring: [MonitorRequest],
        backoff: Backoff = .standard,
        maximumMessageSize: Int = JSONTextDecoder.defaultMaximumMessageSize,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.remote = remote
        self.maximumMessageSize = maximumMessageSize
        self.member = remote.members[0]
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
        let members = remote.members
        var next = 0
        var failures = 0
        // Members tried since the last established monitor (or the last backoff).
        var tried = 0
        while !Task.isCancelled {
            member = members[next]
            if await session(member) {
                failures = 0
                tried = 0
            }
            guard !Task.isCancelled else { break }
            // The next member at once while some are untried; a lone server after backoff.
            next = (next + 1) % members.count
            tried += 1
            if tried < members.count { continue }
            tried = 0
            let delay = backoff.delay(afterFailures: failures)
            failures += 1
            do {
                try await Task.sleep(for: delay)
            } catch {
                break
            }
        }
    }

    /// Why `channel`'s server is not fit to follow (a cluster member not connected to its
    /// cluster, not its leader, or behind the index seen), nil when it is fit. A server
    /// without `_Server` (older than Open vSwitch 2.9) is a standalone one: fit.
    private func unfitness(of channel: any Channel) async -> String? {
        let select = Operation.select(
            table: "Database", where: [Condition("name", "==", .atom(.string(database)))],
            columns: ["model", "connected", "leader", "index"])
        guard
            let result = try? await Self.send(
                "transact", [.string("_Server"), select.json], on: channel),
            let rows = try? Operation.results(result, for: [select]).first?.rows
        else { return nil }
        guard let row = rows.first else { return "it does not serve \(database)" }
        return judge(row)
    }

    /// Why a member whose `_Server` Database row for our database is `row` is not fit; nil
    /// when it is. Keeps the highest log index seen.
    private func judge(_ row: Row) -> String? { Self.judge(row, highestIndex: &clusterIndex) }

    /// Why a member whose `_Server` Database row is `row` is not fit to follow, given the
    /// highest Raft log index any member reported so far (raised when this one is higher);
    /// nil when it is fit. A standalone server is always fit.
    static func judge(_ row: Row, highestIndex: inout Int?) -> String? {
        guard case .string("clustered")? = row["model"]?.atoms.first else { return nil }
        guard case .boolean(true)? = row["connected"]?.atoms.first else {
            return "it is not connected to its cluster"
        }
        guard case .boolean(true)? = row["leader"]?.atoms.first else {
            return "it is not the cluster's leader"
        }
        if case .integer(let index)? = row["index"]?.atoms.first {
            if let seen = highestIndex, index < seen {
                return "its log index \(index) is behind \(seen), which another member had"
            }
            highestIndex = index
        }
        return nil
    }

    /// One connection: connect, monitor, apply updates until it closes. True if the monitor
    /// was established.
    private func session(_ remote: Remote) async -> Bool {
        let (inbound, continuation) = AsyncStream<JSONRPCInbound>.makeStream()
        let channel: any Channel
        do {
            channel = try await connect(remote, inbound: continuation)
        } catch {
            eventsContinuation.yield(.disconnected(reason: "cannot connect to \(remote): \(error)"))
            return false
        }
        guard !Task.isCancelled else {
            try? await channel.close()
            return false
        }
        if case .cluster = self.remote, let problem = await unfitness(of: channel) {
            try? await channel.close()
            eventsContinuation.yield(
                .disconnected(reason: "\(remote) is left for another member: \(problem)"))
            return false
        }
        // A member that stops being fit while we follow it (it loses leadership or its
        // cluster) is left too: `_Server` tells, through a monitor of its own.
        if case .cluster = self.remote {
            _ = try? await Self.send(
                "monitor",
                [
                    .string("_Server"), Self.serverMonitorID,
                    MonitorRequest.json([
                        MonitorRequest(
                            table: "Database",
                            columns: ["name", "model", "connected", "leader", "index"])
                    ]),
                ], on: channel)
        }
        self.channel = channel
        do {
            // A cluster member resumes from the last transaction seen (monitor_cond_since);
            // a server without it, and a standalone one, sends everything (monitor).
            var established = false
            if case .cluster = self.remote { established = try await monitorSince(channel) }
            if !established {
                let initial = try await Self.send(
                    "monitor",
                    [.string(database), Self.monitorID, MonitorRequest.json(monitorRequests)],
                    on: channel)
                var fresh = Replica()
                for request in monitorRequests { fresh.tables[request.table] = [:] }
                fresh.apply(report(TableUpdates.decode(initial)))
                replica = fresh
                lastTransaction = nil
                synchronizations += 1
                eventsContinuation.yield(.synchronized(replica))
            }
        } catch {
            self.channel = nil
            try? await channel.close()
            // What arrived meanwhile (the stream ends with the channel): a reply too large is
            // why the monitor failed.
            var reason = "\(error)"
            for await message in inbound {
                switch message {
                case .dropped(let why): drop(why)
                case .tooLarge(let limit):
                    refuseTooLarge(limit)
                    reason = "a message from the server exceeded \(limit) bytes"
                case .notification: continue
                }
            }
            eventsContinuation.yield(
                .disconnected(reason: "monitor on \(remote) failed: \(reason)"))
            return false
        }
        var leaving: String?
        for await message in inbound {
            switch message {
            case .notification("update", let params)
            where params.count == 2 && params[0] == Self.serverMonitorID:
                let rows = TableUpdates.decode(params[1]).updates.tables["Database"]?.values
                for row in (rows ?? [:].values).compactMap(\.new)
                where row["name"]?.atoms.first == .string(database) {
                    guard leaving == nil, let problem = judge(row) else { continue }
                    leaving = "\(remote) is left for another member: \(problem)"
                    try? await channel.close()
                }
            case .notification("update3", let params):
                guard params.count == 3, params[0] == Self.monitorID,
                    let transaction = params[1].stringValue.flatMap(UUID.init),
                    let types = columnTypes
                else {
                    drop("update3 notification for an unknown monitor: \(JSON.array(params))")
                    continue
                }
                let (updates, problems) = replica.apply2(
                    params[2], types: types, columns: monitoredColumns)
                for problem in problems { drop(problem) }
                lastTransaction = transaction
                eventsContinuation.yield(.updated(updates, replica))
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
            case .tooLarge(let limit):
                refuseTooLarge(limit)
            }
        }
        self.channel = nil
        try? await channel.close()
        eventsContinuation.yield(
            .disconnected(reason: leaving ?? "connection to \(remote) closed"))
        return true
    }

    /// `monitor_cond_since` from `lastTransaction`: true when the monitor is established (the
    /// changes since applied to the replica kept, or the whole contents into a new one),
    /// false when the server does not know the method.
    private func monitorSince(_ channel: any Channel) async throws -> Bool {
        if columnTypes == nil {
            columnTypes = try ColumnTypes(
                schema: try await Self.send("get_schema", [.string(database)], on: channel))
        }
        let requests = JSONObject(
            monitorRequests.map { request in
                var object = JSONObject()
                if let columns = request.columns {
                    object["columns"] = .array(columns.map { .string($0) })
                }
                return (request.table, .array([.object(object)]))
            })
        let reply: JSON
        do {
            reply = try await Self.send(
                "monitor_cond_since",
                [
                    .string(database), Self.monitorID, .object(requests),
                    .string((lastTransaction ?? .zero).string),
                ], on: channel)
        } catch OVSDBError.server {
            return false
        }
        guard let parts = reply.arrayValue, parts.count == 3, case .bool(let found) = parts[0],
            let transaction = parts[1].stringValue.flatMap(UUID.init), let types = columnTypes
        else {
            throw OVSDBError.malformedReply(
                method: "monitor_cond_since", reason: "expected [found, last-txn-id, updates]")
        }
        let resumed = found && lastTransaction != nil
        if !resumed {
            replica = Replica()
            for request in monitorRequests { replica.tables[request.table] = [:] }
        }
        let (_, problems) = replica.apply2(parts[2], types: types, columns: monitoredColumns)
        for problem in problems { drop(problem) }
        lastTransaction = transaction
        if resumed { resumptions += 1 }
        synchronizations += 1
        eventsContinuation.yield(.synchronized(replica))
        return true
    }

    /// Table → the monitored columns (nil: all).
    private var monitoredColumns: [String: [String]?] {
        Dictionary(monitorRequests.map { ($0.table, $0.columns) }, uniquingKeysWith: { a, _ in a })
    }

    private func report(_ decoded: (updates: TableUpdates, problems: [String])) -> TableUpdates {
        for problem in decoded.problems { drop(problem) }
        return decoded.updates
    }

    private func refuseTooLarge(_ limit: Int) {
        oversizedMessages += 1
        eventsContinuation.yield(.messageTooLarge(limit: limit))
    }

    private func drop(_ reason: String) {
        droppedCount += 1
        eventsContinuation.yield(.dropped(reason: reason))
    }

    private func connect(_ remote: Remote, inbound: AsyncStream<JSONRPCInbound>.Continuation)
        async throws -> any Channel
    {
        let limit = maximumMessageSize
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(JSONTextDecoder(maximumMessageSize: limit)))
                    try channel.pipeline.syncOperations.addHandler(
                        JSONRPCHandler(inbound: inbound))
                }
            }
        switch remote {
        case .unix(let path):
            return try await bootstrap.connect(unixDomainSocketPath: path).get()
        case .tcp(let host, let port):
            return try await bootstrap.connect(host: host, port: port).get()
        case .cluster:
            // `run` connects to the members, one at a time.
            throw OVSDBError.invalidRemote("\(remote)")
        }
    }
}
