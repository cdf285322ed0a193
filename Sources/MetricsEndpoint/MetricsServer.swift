import ControlAPI
import NIOCore
import NIOHTTP1
import NIOPosix
import Packet
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Why the metrics endpoint could not listen, in words an operator can act on.
public struct MetricsServerError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// vtepd's metrics endpoint: HTTP/1.1 on one address, `GET /metrics` answered with the
/// Prometheus text exposition that `render` produces at that moment (anything else: 404, or
/// 405 for a method other than GET and HEAD). Runs on SwiftNIO's event loops, never on the
/// data-plane worker; `render` asks the worker between its batches.
public final class MetricsServer: Sendable {
    /// Prometheus's text format, version 0.0.4 (what every Prometheus scrapes).
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let endpoint: IPEndpoint
    private let serverChannel: any Channel
    private let connections: OpenChannels
    private let scrapes = Atomic<Int>(0)

    private init(endpoint: IPEndpoint, serverChannel: any Channel, connections: OpenChannels) {
        self.endpoint = endpoint
        self.serverChannel = serverChannel
        self.connections = connections
    }

    /// How many `GET /metrics` were answered.
    public var scrapesAnswered: Int { scrapes.load(ordering: .relaxed) }

    /// Listens on `endpoint` and serves until `stop()`. Throws, having changed nothing, when
    /// the address is not this host's or the port is taken.
    public static func start(
        on endpoint: IPEndpoint,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        render: @escaping @Sendable () async -> String
    ) async throws(MetricsServerError) -> MetricsServer {
        let tracked = OpenChannels()
        let counter = ScrapeCounter()
        let channel: any Channel
        do {
            let address = try SocketAddress(
                ipAddress: "\(endpoint.address)", port: Int(endpoint.port))
            channel = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    guard tracked.insert(channel) else { return channel.close() }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                            withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(
                            MetricsHTTPHandler(render: render, answered: counter.increment))
                    }
                }
                .bind(to: address).get()
        } catch let error as IOError {
            let reason: String =
                switch error.errnoCode {
                case EADDRINUSE: "port \(endpoint.port) is in use by another program"
                case EADDRNOTAVAIL: "\(endpoint.address) is not an address of this host"
                case EACCES: "permission denied"
                default: String(cString: strerror(error.errnoCode))
                }
            throw MetricsServerError(description: "cannot listen on \(endpoint): \(reason)")
        } catch {
            throw MetricsServerError(description: "cannot listen on \(endpoint): \(error)")
        }
        let server = MetricsServer(endpoint: endpoint, serverChannel: channel, connections: tracked)
        counter.server.withLock { $0 = server }
        return server
    }

    /// Stops listening and closes every connection; the port is free when it returns.
    public func stop() async {
        try? await serverChannel.close()
        for channel in connections.closeAll() { try? await channel.close() }
    }

    fileprivate func answered() { scrapes.add(1, ordering: .relaxed) }
}

/// Counts scrapes into the server once it exists (the handlers are made before it is).
private final class ScrapeCounter: Sendable {
    let server = Mutex<MetricsServer?>(nil)
    var increment: @Sendable () -> Void { { self.server.withLock { $0 }?.answered() } }
}

/// One HTTP connection: each request answered in order (NIO's pipelining helper holds the
/// next until the response before it is written).
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: @Sendable () async -> String
    private let answered: @Sendable () -> Void
    private var request: HTTPRequestHead?

    init(render: @escaping @Sendable () async -> String, answered: @escaping @Sendable () -> Void) {
        self.render = render
        self.answered = answered
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break  // a GET has none; anything sent is ignored
        case .end:
            guard let head = request else { return }
            request = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
            guard head.method == .GET || head.method == .HEAD else {
                respond(
                    context, head, .methodNotAllowed, "only GET /metrics is served\n",
                    extra: [("Allow", "GET, HEAD")])
                return
            }
            guard path == "/metrics" else {
                respond(context, head, .notFound, "not found: metrics are at /metrics\n")
                return
            }
            let promise = context.eventLoop.makePromise(of: String.self)
            let render = self.render
            promise.completeWithTask { await render() }
            promise.futureResult.assumeIsolated().whenSuccess { text in
                guard context.channel.isActive else { return }
                self.answered()
                self.respond(
                    context, head, .ok, text, contentType: MetricsServer.contentType)
            }
        }
    }

    private func respond(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus,
        _ body: String, contentType: String = "text/plain; charset=utf-8",
        extra: [(String, String)] = []
    ) {
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        var headers = HTTPHeaders([
            ("Content-Type", contentType), ("Content-Length", String(buffer.readableBytes)),
        ])
        for (name, value) in extra { headers.add(name: name, value: value) }
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(
                .head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}
