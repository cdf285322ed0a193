import NIOCore

/// One JSON-RPC 1.0 message as OVSDB uses it (RFC 7047 §4).
public enum JSONRPCMessage: Hashable, Sendable {
    /// `{"method": …, "params": […], "id": …}`: wants a response with the same id.
    case request(id: JSON, method: String, params: [JSON])
    /// `{"method": …, "params": […], "id": null}`: wants no response (e.g. `update`).
    case notification(method: String, params: [JSON])
    /// `{"result": …, "error": …, "id": …}`: exactly one of result and error is non-null.
    case response(id: JSON, result: JSON, error: JSON)

    public var json: JSON {
        switch self {
        case .request(let id, let method, let params):
            return ["method": .string(method), "params": .array(params), "id": id]
        case .notification(let method, let params):
            return ["method": .string(method), "params": .array(params), "id": nil]
        case .response(let id, let result, let error):
            return ["id": id, "result": result, "error": error]
        }
    }

    public init(json: JSON) throws(MalformedData) {
        guard let object = json.objectValue else {
            throw MalformedData("a JSON-RPC message must be an object, got \(json)")
        }
        let id = object["id"] ?? .null
        if let method = object["method"] {
            guard let method = method.stringValue else {
                throw MalformedData("JSON-RPC method must be a string, got \(method)")
            }
            guard let params = object["params"]?.arrayValue else {
                throw MalformedData("JSON-RPC \(method) params must be an array")
            }
            self =
                id.isNull
                ? .notification(method: method, params: params)
                : .request(id: id, method: method, params: params)
        } else if object["result"] != nil || object["error"] != nil {
            self = .response(
                id: id, result: object["result"] ?? .null, error: object["error"] ?? .null)
        } else {
            throw MalformedData("JSON-RPC message is neither a request nor a response: \(json)")
        }
    }
}

/// Errors of the OVSDB client, each saying what an operator can check.
public enum OVSDBError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The server answered `method` with an `error` (RFC 7047 §3.1, §4.1): its own words.
    case server(method: String, error: String, details: String?)
    /// Operation `index` of a `transact` failed (RFC 7047 §4.1.3); later ones were not run.
    case operationFailed(index: Int, operation: String, error: String, details: String?)
    /// The connection closed before the reply to `method` arrived.
    case disconnected(method: String)
    /// There is no connection to the server right now; the client keeps trying.
    case notConnected
    /// The server's reply to `method` does not have the shape RFC 7047 gives it.
    case malformedReply(method: String, reason: String)
    /// A remote that is neither `unix:PATH`, `tcp:HOST:PORT` nor a socket path.
    case invalidRemote(String)

    public var description: String {
        switch self {
        case .server(let method, let error, let details):
            return "ovsdb-server refused \(method): \(error)" + (details.map { " (\($0))" } ?? "")
        case .operationFailed(let index, let operation, let error, let details):
            return "transaction failed at operation \(index) (\(operation)): \(error)"
                + (details.map { " (\($0))" } ?? "")
        case .disconnected(let method):
            return "connection to ovsdb-server closed before it answered \(method)"
        case .notConnected:
            return "not connected to ovsdb-server (reconnecting)"
        case .malformedReply(let method, let reason):
            return "ovsdb-server's reply to \(method) is malformed: \(reason)"
        case .invalidRemote(let remote):
            return "\"\(remote)\" is not an OVSDB remote: use unix:PATH or tcp:HOST:PORT"
        }
    }

    /// RFC 7047 §3.1: an error is an object with a string `error` and optional `details`;
    /// anything else is shown as its JSON text.
    static func server(method: String, error: JSON) -> OVSDBError {
        if let text = error["error"]?.stringValue {
            return .server(method: method, error: text, details: error["details"]?.stringValue)
        }
        return .server(method: method, error: error.stringValue ?? error.description, details: nil)
    }
}

/// A request written into the channel by the client: the handler gives it an id and completes
/// `promise` with the `result` of the matching response.
public struct OVSDBRequest: Sendable {
    public var method: String
    public var params: [JSON]
    public var promise: EventLoopPromise<JSON>

    public init(method: String, params: [JSON], promise: EventLoopPromise<JSON>) {
        self.method = method
        self.params = params
        self.promise = promise
    }
}

/// What the handler passes up besides responses: the server's notifications, and every
/// message it had to drop (bad input from the network is counted and reported, never fatal).
public enum JSONRPCInbound: Hashable, Sendable {
    case notification(method: String, params: [JSON])
    case dropped(reason: String)
    /// A message grew past the decoder's `limit` (bytes); the connection closes.
    case tooLarge(limit: Int)
}

/// JSON-RPC over one OVSDB connection (RFC 7047 §4): numbers outgoing requests, correlates
/// responses by id, answers the server's `echo` (§4.1.11) with the same params, and yields
/// notifications and drops into `inbound`, which finishes when the channel closes. Expects
/// complete JSON texts from `JSONTextDecoder` in front of it.
public final class JSONRPCHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = OVSDBRequest
    public typealias OutboundOut = ByteBuffer

    private let inbound: AsyncStream<JSONRPCInbound>.Continuation
    private var nextID = 0
    private var pending: [Int: (method: String, promise: EventLoopPromise<JSON>)] = [:]

    public init(inbound: AsyncStream<JSONRPCInbound>.Continuation) {
        self.inbound = inbound
    }

    public func write(
        context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?
    ) {
        let request = unwrapOutboundIn(data)
        let id = nextID
        nextID += 1
        pending[id] = (request.method, request.promise)
        let message = JSONRPCMessage.request(
            id: .int(id), method: request.method, params: request.params)
        context.write(
            wrapOutboundOut(Self.encode(message, allocator: context.channel.allocator)),
            promise: promise)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let text = unwrapInboundIn(data)
        let message: JSONRPCMessage
        do {
            message = try JSONRPCMessage(json: try JSON(parsing: text.readableBytesView))
        } catch let error as JSONParseError {
            inbound.yield(.dropped(reason: error.description))
            return
        } catch {
            inbound.yield(.dropped(reason: "\(error)"))
            return
        }
        switch message {
        case .request(let id, "echo", let params):
            let reply = JSONRPCMessage.response(id: id, result: .array(params), error: nil)
            context.writeAndFlush(
                wrapOutboundOut(Self.encode(reply, allocator: context.channel.allocator)),
                promise: nil)
        case .request(let id, let method, _):
            // RFC 7047 §4: a client need answer only echo; refuse anything else politely.
            let reply = JSONRPCMessage.response(
                id: id, result: nil, error: ["error": "unknown method", "details": .string(method)])
            context.writeAndFlush(
                wrapOutboundOut(Self.encode(reply, allocator: context.channel.allocator)),
                promise: nil)
        case .notification(let method, let params):
            inbound.yield(.notification(method: method, params: params))
        case .response(let id, let result, let error):
            guard let number = id.intValue, let request = pending.removeValue(forKey: number) else {
                inbound.yield(.dropped(reason: "response to unknown request id \(id)"))
                return
            }
            if error.isNull {
                request.promise.succeed(result)
            } else {
                request.promise.fail(OVSDBError.server(method: request.method, error: error))
            }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        failPending()
        inbound.finish()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        failPending()
        inbound.finish()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A stream that is not JSON texts cannot be resynchronised: report it and reconnect.
        if case JSONTextDecoder.Failure.messageTooLarge(let limit) = error {
            inbound.yield(.tooLarge(limit: limit))
        } else {
            inbound.yield(.dropped(reason: "\(error)"))
        }
        context.close(promise: nil)
    }

    private func failPending() {
        let requests = pending
        pending = [:]
        for (_, request) in requests.sorted(by: { $0.key < $1.key }) {
            request.promise.fail(OVSDBError.disconnected(method: request.method))
        }
    }

    static func encode(_ message: JSONRPCMessage, allocator: ByteBufferAllocator) -> ByteBuffer {
        var bytes: [UInt8] = []
        message.json.write(to: &bytes)
        return allocator.buffer(bytes: bytes)
    }
}
