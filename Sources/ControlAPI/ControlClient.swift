import NIOCore
import NIOPosix

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Errors of the control client, each saying what the user can check.
public enum ControlClientError: Error, Hashable, Sendable, CustomStringConvertible {
    case cannotConnect(path: String, errno: Int32)
    /// No response within the timeout.
    case timedOut(command: String, seconds: Double)
    /// vtepd answered with an error: its words.
    case refused(command: String, message: String)
    /// The connection closed before the response arrived.
    case disconnected(command: String)
    /// vtepd's response does not have the documented shape (a client/daemon version mismatch).
    case malformedResponse(reason: String)

    public var description: String {
        switch self {
        case .cannotConnect(let path, let code):
            let hint: String
            switch code {
            case ENOENT, ECONNREFUSED: hint = " (is vtepd running?)"
            case EACCES, EPERM: hint = " (is your user in group \(ControlServer.defaultGroup)?)"
            default: hint = ""
            }
            return "cannot connect to vtepd at \(path): \(String(cString: strerror(code)))\(hint)"
        case .timedOut(let command, let seconds):
            return "vtepd did not answer \(command) within \(seconds) s"
        case .refused(let command, let message):
            return "vtepd refused \(command): \(message)"
        case .disconnected(let command):
            return "vtepd closed the connection before answering \(command)"
        case .malformedResponse(let reason):
            return "vtepd's response is malformed: \(reason)"
        }
    }
}

/// A connection to vtepd's control socket. Requests may be sent concurrently; they are
/// pipelined on the one connection and each is matched to its response by id.
public final class ControlClient: Sendable {
    public let path: String
    private let channel: any Channel

    private init(path: String, channel: any Channel) {
        self.path = path
        self.channel = channel
    }

    /// Connects to the control socket at `path`.
    public static func connect(
        to path: String, timeout: Duration = .seconds(5),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(ControlClientError) -> ControlClient {
        do {
            return try await connectFuture(path, timeout, eventLoopGroup).get()
        } catch {
            throw error as? ControlClientError ?? .cannotConnect(path: path, errno: EIO)
        }
    }

    /// Sends one request and waits for its result; a refusal by vtepd is thrown as `.refused`.
    public func send(_ command: any ControlCommand, timeout: Duration = .seconds(10))
        async throws(ControlClientError) -> ControlResult
    {
        do {
            return try await sendFuture(command, timeout).get()
        } catch {
            throw error as? ControlClientError ?? .disconnected(command: command.name)
        }
    }

    /// Every entry `query` names, read a page at a time (`ShowMACTable`) unless the query is
    /// one page itself (it has a `limit`).
    public func macTable(
        _ query: ShowMACTable = ShowMACTable(), timeout: Duration = .seconds(10)
    ) async throws(ControlClientError) -> [MACTableRow] {
        var rows: [MACTableRow] = []
        try await macTablePages(query, timeout: timeout) { rows += $0 }
        return rows
    }

    /// Hands `body` every entry `query` names, a page at a time as they arrive (one page when
    /// the query has a `limit`), so a client shows a million entries holding one page.
    /// `timeout` bounds the wait for each page.
    public func macTablePages(
        _ query: ShowMACTable, timeout: Duration = .seconds(10), _ body: ([MACTableRow]) -> Void
    ) async throws(ControlClientError) {
        let paging = query.limit == nil
        var next: ShowMACTable? = query
        if paging { next?.limit = ShowMACTable.maximumRows }
        while let page = next {
            guard case .macTable(let rows) = try await send(page, timeout: timeout) else {
                throw .malformedResponse(reason: "mac-table returned another command's result")
            }
            body(rows)
            next = paging ? page.page(after: rows) : nil
        }
    }

    public func counters() async throws(ControlClientError) -> CountersReport {
        guard case .counters(let report) = try await send(Counters()) else {
            throw .malformedResponse(reason: "counters returned another command's result")
        }
        return report
    }

    public func configuration() async throws(ControlClientError) -> ConfigurationReport {
        guard case .configuration(let report) = try await send(Configuration()) else {
            throw .malformedResponse(reason: "configuration returned another command's result")
        }
        return report
    }

    public func close() async {
        try? await channel.close()
    }

    /// Connects, sends one command, waits for the result and closes, blocking the calling
    /// thread: for command-line tools that are not async. Must not be called on an event loop.
    public static func request(
        _ command: any ControlCommand, at path: String, timeout: Duration = .seconds(10),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws(ControlClientError) -> ControlResult {
        do {
            let client = try connectFuture(path, timeout, eventLoopGroup).wait()
            defer { try? client.channel.close().wait() }
            return try client.sendFuture(command, timeout).wait()
        } catch {
            throw error as? ControlClientError ?? .disconnected(command: command.name)
        }
    }

    private static func connectFuture(
        _ path: String, _ timeout: Duration, _ group: any EventLoopGroup
    ) -> EventLoopFuture<ControlClient> {
        ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(ByteToMessageHandler(ControlLineDecoder()))
                    try pipeline.addHandler(ControlClientHandler())
                }
            }
            .connect(unixDomainSocketPath: path)
            .map { ControlClient(path: path, channel: $0) }
            .flatMapErrorThrowing { error in
                if let error = error as? IOError {
                    throw ControlClientError.cannotConnect(path: path, errno: error.errnoCode)
                }
                if error is ChannelError {
                    throw ControlClientError.cannotConnect(path: path, errno: ETIMEDOUT)
                }
                throw ControlClientError.cannotConnect(path: path, errno: EIO)
            }
    }

    private func sendFuture(_ command: any ControlCommand, _ timeout: Duration)
        -> EventLoopFuture<ControlResult>
    {
        let promise = channel.eventLoop.makePromise(of: ControlResult.self)
        channel.writeAndFlush(
            PendingControlRequest(command: command, timeout: TimeAmount(timeout), promise: promise)
        ).whenFailure { _ in promise.fail(ControlClientError.disconnected(command: command.name)) }
        return promise.futureResult
    }
}

/// A command written into a client channel: `ControlClientHandler` gives it an id and completes
/// `promise` with the result of the response that carries that id.
public struct PendingControlRequest: Sendable {
    public var command: any ControlCommand
    public var timeout: TimeAmount
    public var promise: EventLoopPromise<ControlResult>

    public init(
        command: any ControlCommand, timeout: TimeAmount, promise: EventLoopPromise<ControlResult>
    ) {
        self.command = command
        self.timeout = timeout
        self.promise = promise
    }
}

/// Client side of the protocol: numbers requests from 1, writes them as lines, matches
/// response lines (from `ControlLineDecoder`) to them by id, and fails what is pending when the
/// connection closes or vtepd reports an error it could not attribute to one request.
public final class ControlClientHandler: ChannelDuplexHandler {
    public typealias InboundIn = ControlLine
    public typealias InboundOut = Never
    public typealias OutboundIn = PendingControlRequest
    public typealias OutboundOut = ByteBuffer

    private struct Pending {
        var command: any ControlCommand
        var promise: EventLoopPromise<ControlResult>
        var timer: Scheduled<Void>?
    }

    private var nextID = 1
    private var pending: [Int: Pending] = [:]

    public init() {}

    public func write(
        context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?
    ) {
        let request = unwrapOutboundIn(data)
        let id = nextID
        nextID += 1
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: request.timeout) {
            let (handler, _) = loopBound.value
            guard let timedOut = handler.pending.removeValue(forKey: id) else { return }
            let seconds = Double(request.timeout.nanoseconds) / 1e9
            timedOut.promise.fail(
                ControlClientError.timedOut(command: request.command.name, seconds: seconds))
        }
        pending[id] = Pending(command: request.command, promise: request.promise, timer: timer)
        var buffer = context.channel.allocator.buffer(capacity: 128)
        buffer.writeBytes(ControlRequest(id: id, command: request.command).encoded())
        buffer.writeInteger(UInt8(ascii: "\n"))
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .tooLong(let limit):
            failAll(.malformedResponse(reason: "a response line is longer than \(limit) bytes"))
            context.close(promise: nil)
        case .line(let line):
            let bytes = Data(line.readableBytesView)
            let head: (id: Int?, error: String?)
            do {
                head = try ControlResponse.head(of: bytes)
            } catch {
                failAll(.malformedResponse(reason: "not a response: \(error)"))
                context.close(promise: nil)
                return
            }
            guard let id = head.id else {
                // The server could not read a request's id: it cannot say which one failed.
                failAll(.refused(command: "a request", message: head.error ?? "unknown error"))
                return
            }
            // Unknown ids are responses to requests that timed out: dropped.
            guard let entry = pending.removeValue(forKey: id) else { return }
            entry.timer?.cancel()
            if let message = head.error {
                entry.promise.fail(
                    ControlClientError.refused(command: entry.command.name, message: message))
                return
            }
            do {
                entry.promise.succeed(try entry.command.reply.decode(from: bytes))
            } catch {
                entry.promise.fail(
                    ControlClientError.malformedResponse(
                        reason: "\(entry.command.name) result: \(error)"))
            }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        for (_, entry) in pending {
            entry.timer?.cancel()
            entry.promise.fail(ControlClientError.disconnected(command: entry.command.name))
        }
        pending.removeAll()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func failAll(_ error: ControlClientError) {
        let entries = pending.values
        pending.removeAll()
        for entry in entries {
            entry.timer?.cancel()
            entry.promise.fail(error)
        }
    }
}

@available(*, unavailable)
extension ControlClientHandler: Sendable {}
