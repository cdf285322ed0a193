import Appliance
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// What the daemon supplies to answer control requests. The server knows nothing of the data
/// plane: the daemon maps its state into the result types. `peer` is the kernel's word on who
/// asked (`SO_PEERCRED`), for authorising and auditing changes.
public protocol ControlHandler: Sendable {
    /// Answers one request. Throw `ControlFailure` to refuse it; its message goes back to the
    /// client as the response's `error`.
    func handle(_ request: ControlRequest, from peer: PeerCredentials) async throws(ControlFailure)
        -> ControlResult
}

/// vtepd's control socket: a Unix `SOCK_STREAM` socket speaking the protocol documented on
/// `ControlRequest`, mode 0660 and (when the group exists) owned by the appliance admins'
/// group, so that file permissions decide who may connect and `SO_PEERCRED` tells who did.
///
/// Requests on one connection are answered one at a time, in order; connections are served
/// concurrently, and a client that sends garbage loses only its own connection.
public final class ControlServer: Sendable {
    /// The group of the appliance's administrators (the shell issue's `vtep-admin`).
    public static let defaultGroup = "vtep-admin"
    /// rw for the owner (root) and the admins' group, nothing for others.
    public static let socketMode: mode_t = 0o660

    /// Connections at once beyond which new ones are refused.
    public static let defaultMaximumConnections = 64

    public let path: String
    private let serverChannel: any Channel
    private let connections: OpenChannels
    private let identity: UnixSocketFile.Identity?

    /// Binds `path` and starts serving; returns once the socket accepts connections.
    ///
    /// A socket file left at `path` by a daemon that died is replaced; if a process accepts
    /// connections there, or `path` is not a socket, nothing is touched and an error says so.
    /// The socket is made under a temporary name, given its mode and group, and only then
    /// renamed to `path`, so no client can connect before the permissions are right.
    ///
    /// - Parameters:
    ///   - group: chown the socket to this group; nil leaves the creator's group. If the group
    ///     does not exist (or the chown fails), the group is left and `logger` says why.
    ///   - maximumLineLength: longer request lines are refused and their connection closed.
    ///   - maximumConnections: connections beyond this many at once are answered with a
    ///     refusal and closed, counted in `refusedConnections` and logged once per episode
    ///     (when refusals start), so a runaway script cannot exhaust vtepd's descriptors.
    ///   - requestRate: requests beyond it on one connection are answered with a refusal
    ///     (the connection stays open); nil: no limit.
    ///   - refusals: where refused request lines and requests are counted (and logged);
    ///     default: a counter of the server's own, `refusals`.
    ///   - logger: where the server reports what an operator should know.
    public static func start(
        at path: String, group: String? = ControlServer.defaultGroup,
        handler: some ControlHandler,
        maximumLineLength: Int = ControlLineDecoder.defaultMaximumLength,
        maximumConnections: Int = ControlServer.defaultMaximumConnections,
        requestRate: RequestRate? = .standard, refusals: ControlRefusals? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "vtepd.control")
    ) async throws(ControlServerError) -> ControlServer {
        let refusals = refusals ?? ControlRefusals(logger: logger)
        try UnixSocketFile.checkLength(path)
        // Same directory, so rename(2) is atomic; one byte longer, so it fits when `path` does
        // unless `path` is at the very limit.
        let provisional = path + "~"
        try UnixSocketFile.checkLength(provisional)
        try UnixSocketFile.removeIfStale(path)
        try UnixSocketFile.removeIfStale(provisional)

        let connections = OpenChannels(maximum: maximumConnections, logger: logger)
        let serverChannel: any Channel
        do {
            serverChannel = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 64)
                // A client that half-closes after its last request still gets its responses
                // (`socat`, `nc -U -N`).
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    switch connections.insertion(channel) {
                    case .added: break
                    case .stopping: return channel.close()
                    case .tooMany:
                        // One line the client can read once connected, then the connection goes.
                        let refusal = ControlResponse(
                            id: nil,
                            outcome: .failure(
                                ControlFailure(
                                    "too many control connections (at most \(maximumConnections)"
                                        + " at once); try again when one has closed")))
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                RefusingHandler(line: refusal.encoded() + [0x0A]))
                        }
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(
                            ByteToMessageHandler(
                                ControlLineDecoder(maximumLength: maximumLineLength)))
                        try pipeline.addHandler(ControlRequestDecoder(refusals: refusals))
                        try pipeline.addHandler(MessageToByteHandler(ControlResponseEncoder()))
                        try pipeline.addHandler(
                            ControlConnectionHandler(
                                handler: handler, requestRate: requestRate, refusals: refusals,
                                logger: logger))
                    }
                }
                .bind(unixDomainSocketPath: provisional).get()
        } catch let error as IOError {
            throw .system(operation: "listen on", path: provisional, errno: error.errnoCode)
        } catch {
            throw .system(operation: "listen on", path: provisional, errno: EIO)
        }

        do {
            try UnixSocketFile.setMode(provisional, socketMode)
            if let group {
                if let gid = UnixSocketFile.groupID(named: group) {
                    do {
                        try UnixSocketFile.setGroup(provisional, gid)
                    } catch {
                        logger.warning("control socket \(path) keeps its group: \(error)")
                    }
                } else {
                    logger.warning(
                        "control socket \(path) keeps its group: group \(group) does not exist (create it to let its members use the shell)"
                    )
                }
            }
            // A daemon may have appeared at `path` while we were binding.
            try UnixSocketFile.removeIfStale(path)
            try UnixSocketFile.rename(provisional, to: path)
        } catch {
            try? await serverChannel.close()
            unlink(provisional)
            throw error
        }
        return ControlServer(
            path: path, serverChannel: serverChannel, connections: connections,
            refusals: refusals, identity: UnixSocketFile.identity(path))
    }

    private init(
        path: String, serverChannel: any Channel, connections: OpenChannels,
        refusals: ControlRefusals, identity: UnixSocketFile.Identity?
    ) {
        self.path = path
        self.serverChannel = serverChannel
        self.connections = connections
        self.refusals = refusals
        self.identity = identity
    }

    /// Connections refused because `maximumConnections` were open, since start.
    public var refusedConnections: Int { connections.refused }

    /// Request lines refused as too long, and requests refused beyond a connection's rate.
    public let refusals: ControlRefusals

    /// Stops accepting, closes every connection and removes the socket file if it is still
    /// ours. A request being handled runs to its end, but its response is not sent.
    public func stop() async {
        try? await serverChannel.close()
        for channel in connections.closeAll() {
            try? await channel.close()
        }
        if let identity { UnixSocketFile.remove(path, ifStill: identity) }
    }

}

/// Answers a connection the server will not serve with one line, then closes it.
private final class RefusingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let line: [UInt8]

    init(line: [UInt8]) { self.line = line }

    func channelActive(context: ChannelHandlerContext) {
        let buffer = context.channel.allocator.buffer(bytes: line)
        context.writeAndFlush(NIOAny(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// A server's open connections, so that its `stop()` can close them; refuses new ones once
/// stopping, and beyond `maximum` at once (counted, the first of each episode logged). The
/// control socket's and the metrics endpoint's.
public final class OpenChannels: Sendable {
    private struct State {
        var stopping = false
        var channels: [ObjectIdentifier: any Channel] = [:]
        var refused = 0
        /// Refusing now: the episode's first refusal was logged.
        var refusing = false
    }

    public enum Insertion: Sendable { case added, stopping, tooMany }

    private let state = Mutex(State())
    private let maximum: Int
    private let logger: Logger?

    public init(maximum: Int = .max, logger: Logger? = nil) {
        self.maximum = maximum
        self.logger = logger
    }

    /// Connections refused at the maximum, since start.
    public var refused: Int { state.withLock { $0.refused } }

    /// False once the server is stopping, or at the maximum: the caller closes the channel.
    public func insert(_ channel: any Channel) -> Bool { insertion(channel) == .added }

    public func insertion(_ channel: any Channel) -> Insertion {
        let (outcome, firstRefusal) = state.withLock { state -> (Insertion, Bool) in
            guard !state.stopping else { return (.stopping, false) }
            guard state.channels.count < maximum else {
                state.refused += 1
                defer { state.refusing = true }
                return (.tooMany, !state.refusing)
            }
            state.refusing = false
            state.channels[ObjectIdentifier(channel)] = channel
            return (.added, false)
        }
        if firstRefusal {
            logger?.warning(
                "control socket: refusing connections, \(maximum) are open (counted in show system)"
            )
        }
        let added = outcome == .added
        if added {
            channel.closeFuture.whenComplete { _ in
                _ = self.state.withLock {
                    $0.channels.removeValue(forKey: ObjectIdentifier(channel))
                }
            }
        }
        return outcome
    }

    public func closeAll() -> [any Channel] {
        state.withLock { state in
            state.stopping = true
            return Array(state.channels.values)
        }
    }
}

/// The end of a connection's pipeline: answers requests one at a time through the daemon's
/// `ControlHandler`, in arrival order, each with the peer's credentials (read once, when the
/// connection opens). Reading from the socket pauses while `backlogLimit` requests wait, so a
/// client that pipelines without reading cannot make the server queue without bound.
final class ControlConnectionHandler<Handler: ControlHandler>: ChannelDuplexHandler {
    typealias InboundIn = ControlInbound
    typealias OutboundIn = Never
    typealias OutboundOut = ControlResponse

    static var backlogLimit: Int { 64 }

    private let handler: Handler
    private let logger: Logger
    private let refusals: ControlRefusals?
    /// The connection's request rate limit, nil: none.
    private var bucket: RequestBucket?
    private var peer: PeerCredentials?
    private var waiting: [ControlInbound] = []
    private var busy = false
    /// A refusal closed the connection: what is still queued is not answered.
    private var finished = false
    private var readHeld = false
    /// The client shut down its sending side: close once everything it sent is answered.
    private var inputClosed = false

    init(
        handler: Handler, requestRate: RequestRate? = nil, refusals: ControlRefusals? = nil,
        logger: Logger
    ) {
        self.handler = handler
        self.logger = logger
        self.refusals = refusals
        bucket = requestRate.map { RequestBucket($0, now: .now) }
    }

    func channelActive(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        PeerCredentials.read(context.channel).whenComplete { result in
            let (handler, context) = loopBound.value
            switch result {
            case .success(let peer):
                handler.peer = peer
                handler.processNext(context: context)
            case .failure(let error):
                handler.logger.warning("control connection refused: \(error)")
                handler.finished = true
                context.close(promise: nil)
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        var inbound = unwrapInboundIn(data)
        if case .request(let request) = inbound, bucket?.admit(now: .now) == false,
            let rate = bucket?.rate
        {
            let who = peer.map { " from pid \($0.pid) (uid \($0.uid))" } ?? ""
            refusals?.refused(
                .requestRate, "refusing requests beyond \(rate.perSecond) a second\(who)")
            inbound = .refused(
                ControlRefusal(
                    id: request.id,
                    message: "too many requests on this connection (\(rate)); slow down",
                    closesConnection: false))
        }
        waiting.append(inbound)
        processNext(context: context)
    }

    func read(context: ChannelHandlerContext) {
        if waiting.count >= Self.backlogLimit {
            readHeld = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            inputClosed = true
            processNext(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Socket errors (reset by the client): nothing to answer.
        finished = true
        context.close(promise: nil)
    }

    private func processNext(context: ChannelHandlerContext) {
        guard !busy, !finished, let peer else { return }
        guard !waiting.isEmpty else {
            if inputClosed {
                finished = true
                context.close(promise: nil)
            }
            return
        }
        let next = waiting.removeFirst()
        if readHeld, waiting.count < Self.backlogLimit {
            readHeld = false
            context.read()
        }
        switch next {
        case .refused(let refusal):
            let response = ControlResponse(
                id: refusal.id, outcome: .failure(ControlFailure(refusal.message)))
            if refusal.closesConnection {
                finished = true
                waiting.removeAll()
                context.writeAndFlush(wrapOutboundOut(response)).assumeIsolated().whenComplete {
                    _ in context.close(promise: nil)
                }
            } else {
                context.writeAndFlush(wrapOutboundOut(response), promise: nil)
                processNext(context: context)
            }
        case .request(let request):
            busy = true
            let handler = self.handler
            let answered = context.eventLoop.makePromise(
                of: Result<ControlResult, ControlFailure>.self)
            answered.completeWithTask {
                do throws(ControlFailure) {
                    return .success(try await handler.handle(request, from: peer))
                } catch {
                    return .failure(error)
                }
            }
            answered.futureResult.assumeIsolated().whenSuccess { outcome in
                self.busy = false
                guard context.channel.isActive else { return }
                context.writeAndFlush(
                    self.wrapOutboundOut(ControlResponse(id: request.id, outcome: outcome)),
                    promise: nil)
                self.processNext(context: context)
            }
        }
    }
}
