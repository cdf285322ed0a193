import Appliance
import Packet

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// vtepd's control protocol: newline-delimited JSON over a `SOCK_STREAM` Unix socket.
///
/// Each line a client sends is one request, a JSON object:
///
///     {"id": 7, "command": "mac-table", "arguments": {"switch": "web"}}
///
/// - `id`: an integer chosen by the client, echoed in the response.
/// - `command`: one of `ControlCommands.names` (`mac-table`, `counters`, `configuration`, …).
/// - `arguments`: an object, optional when the command takes none. Unknown argument names are
///   refused (a misspelt filter must not silently show everything); unknown top-level fields
///   are ignored, so newer clients can add some.
///
/// Each request gets exactly one response line, in request order (requests may be pipelined):
///
///     {"id":7,"ok":true,"result":...}
///     {"id":7,"ok":false,"error":"unknown command \"mac\"; commands: mac-table, ..."}
///
/// `id` is `null` when the request's id could not be read. A line that is not UTF-8 or not
/// JSON, or that is longer than the server's limit (1 MiB by default), is answered with an error
/// and the connection is closed: the stream can no longer be trusted to be in step. A
/// well-formed request that is refused (unknown command, wrong argument type) leaves the
/// connection open.
///
/// The commands are the types listed in `ControlCommands.all`, each declared once
/// (`ControlCommand`): its wire name, its arguments (the type's `CodingKeys`; addresses, names
/// and prefixes as the text the shell takes, integers as JSON numbers), whether it changes
/// state and the shape of its result (`ControlResult.Kind`). Every value is validated again
/// here, whatever the client checked: a request that bypasses the shell's parser gets the same
/// refusals. A change is applied, saved and audited before its `{}` response.
///
/// For example `{"id":3,"command":"bind-port","arguments":{"port":"eth2","switch":"web","vlan":10}}`
/// → `{"id":3,"ok":true,"result":{}}`.
///
/// Field names of every result type are part of the protocol and documented on the type.
public struct ControlRequest: Hashable, Sendable {
    public var id: Int
    public var command: any ControlCommand

    public init(id: Int, command: any ControlCommand) {
        self.id = id
        self.command = command
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.id == rhs.id && lhs.command.isSame(as: rhs.command)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(command)
    }
}

/// A refusal in words an operator can act on; sent as the response's `error`.
public struct ControlFailure: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// What a command returns. The JSON of each case is the payload itself (the response's
/// `result`), not wrapped: an array of `MACTableRow`, a `CountersReport` object or a
/// `ConfigurationReport` object.
public enum ControlResult: Hashable, Sendable, Encodable {
    /// The shapes a command's result can have (`ControlCommand.reply`).
    public enum Kind: Hashable, Sendable {
        case macTable, counters, configuration, accepted, lines, interfaces, routes
        case logicalSwitches, tunnels
    }

    public var kind: Kind {
        switch self {
        case .macTable: .macTable
        case .counters: .counters
        case .configuration: .configuration
        case .accepted: .accepted
        case .lines: .lines
        case .interfaces: .interfaces
        case .routes: .routes
        case .logicalSwitches: .logicalSwitches
        case .tunnels: .tunnels
        }
    }

    case macTable([MACTableRow])
    case counters(CountersReport)
    case configuration(ConfigurationReport)
    /// A change was applied and saved: `{}`.
    case accepted
    /// Lines of text: a host name, a list of servers, the running configuration, the log.
    case lines([String])
    case interfaces([InterfaceReport])
    case routes([RouteReport])
    case logicalSwitches([LogicalSwitchReport])
    case tunnels([TunnelReport])

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .macTable(let rows): try container.encode(rows)
        case .counters(let report): try container.encode(report)
        case .configuration(let report): try container.encode(report)
        case .accepted: try container.encode([String: String]())
        case .lines(let lines): try container.encode(lines)
        case .interfaces(let rows): try container.encode(rows)
        case .routes(let rows): try container.encode(rows)
        case .logicalSwitches(let rows): try container.encode(rows)
        case .tunnels(let rows): try container.encode(rows)
        }
    }
}

/// One response line: the request's id (nil when it could not be read) and its outcome.
public struct ControlResponse: Hashable, Sendable {
    public var id: Int?
    public var outcome: Result<ControlResult, ControlFailure>

    public init(id: Int?, outcome: Result<ControlResult, ControlFailure>) {
        self.id = id
        self.outcome = outcome
    }
}

/// A line that is not an acceptable request, and how to answer it.
public struct ControlRefusal: Error, Hashable, Sendable {
    /// The request's id if it could be read.
    public var id: Int?
    public var message: String
    /// The line was not JSON (or not UTF-8, or too long): the connection is closed after the
    /// error response, since the client and server no longer agree on where requests start.
    public var closesConnection: Bool

    public init(id: Int?, message: String, closesConnection: Bool) {
        self.id = id
        self.message = message
        self.closesConnection = closesConnection
    }
}

// MARK: - Wire encoding and decoding (one place for the server, the client and the tests)

extension ControlRequest {
    /// Parses one request line (without its newline).
    public static func parse(_ line: some Collection<UInt8>) -> Result<
        ControlRequest, ControlRefusal
    > {
        guard String(validating: line, as: UTF8.self) != nil else {
            return .failure(
                ControlRefusal(
                    id: nil, message: "request is not valid UTF-8", closesConnection: true))
        }
        do {
            let envelope = try JSONDecoder().decode(RequestEnvelope.self, from: Data(line))
            return .success(envelope.request)
        } catch let refusal as EnvelopeRefusal {
            return .failure(
                ControlRefusal(id: refusal.id, message: refusal.message, closesConnection: false))
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            return .failure(
                ControlRefusal(
                    id: nil,
                    message: "a request must be a JSON object with \"id\" and \"command\"",
                    closesConnection: false))
        } catch {
            return .failure(
                ControlRefusal(
                    id: nil, message: "request is not valid JSON: \(jsonErrorSummary(error))",
                    closesConnection: true))
        }
    }

    /// The request line, without its newline: `{"id":N,"command":"...","arguments":{...}}`.
    public func encoded() -> [UInt8] {
        var text = "{\"id\":\(id),\"command\":\(jsonText(command.name))"
        if let arguments = command.wireArguments { text += ",\"arguments\":\(arguments)" }
        text += "}"
        return Array(text.utf8)
    }
}

extension ControlResult.Kind {
    /// Decodes the `result` of a successful response of this shape.
    func decode(from line: Data) throws -> ControlResult {
        let decoder = JSONDecoder()
        func result<Payload: Decodable>(_ type: Payload.Type) throws -> Payload {
            try decoder.decode(ResultEnvelope<Payload>.self, from: line).result
        }
        switch self {
        case .macTable: return .macTable(try result([MACTableRow].self))
        case .counters: return .counters(try result(CountersReport.self))
        case .configuration: return .configuration(try result(ConfigurationReport.self))
        case .lines: return .lines(try result([String].self))
        case .interfaces: return .interfaces(try result([InterfaceReport].self))
        case .routes: return .routes(try result([RouteReport].self))
        case .logicalSwitches: return .logicalSwitches(try result([LogicalSwitchReport].self))
        case .tunnels: return .tunnels(try result([TunnelReport].self))
        case .accepted:
            _ = try result([String: String].self)
            return .accepted
        }
    }
}

extension ControlResponse {
    /// The response line, without its newline. Keys in the documented order: id, ok, then
    /// result or error; keys inside results sorted, so output is byte-for-byte repeatable.
    public func encoded() -> [UInt8] {
        var text = "{\"id\":" + (id.map(String.init) ?? "null")
        switch outcome {
        case .success(let result): text += ",\"ok\":true,\"result\":" + jsonText(result)
        case .failure(let failure): text += ",\"ok\":false,\"error\":" + jsonText(failure.message)
        }
        text += "}"
        return Array(text.utf8)
    }

    /// The id of a response line, and whether it is an error (`ok` false) with its message.
    static func head(of line: Data) throws -> (id: Int?, error: String?) {
        let head = try JSONDecoder().decode(ResponseHead.self, from: line)
        if head.ok { return (head.id, nil) }
        return (head.id, head.error ?? "(the server gave no reason)")
    }
}

// MARK: - Internals

struct AnyCodingKey: CodingKey, Hashable {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { self.stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// A refusal raised while decoding a request that was valid JSON.
private struct EnvelopeRefusal: Error {
    var id: Int?
    var message: String
}

private struct RequestEnvelope: Decodable {
    var request: ControlRequest

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyCodingKey.self)
        let idKey = AnyCodingKey("id")
        guard container.contains(idKey), (try? container.decodeNil(forKey: idKey)) == false,
            let id = try? container.decode(Int.self, forKey: idKey)
        else {
            throw EnvelopeRefusal(id: nil, message: "request needs an integer \"id\"")
        }
        guard let name = try? container.decode(String.self, forKey: AnyCodingKey("command")) else {
            throw EnvelopeRefusal(
                id: id,
                message: "request needs a string \"command\": one of "
                    + ControlCommands.names.joined(separator: ", "))
        }
        guard let type = ControlCommands.byName[name] else {
            throw EnvelopeRefusal(
                id: id,
                message: "unknown command \"\(name)\"; commands: "
                    + ControlCommands.names.joined(separator: ", "))
        }
        var arguments: (names: [String], decoder: any Decoder)? = nil
        let argumentsKey = AnyCodingKey("arguments")
        if container.contains(argumentsKey),
            (try? container.decodeNil(forKey: argumentsKey)) == false
        {
            guard
                let nested = try? container.nestedContainer(
                    keyedBy: AnyCodingKey.self, forKey: argumentsKey),
                let decoder = try? container.superDecoder(forKey: argumentsKey)
            else {
                throw EnvelopeRefusal(id: id, message: "\"arguments\" must be a JSON object")
            }
            arguments = (nested.allKeys.map(\.stringValue), decoder)
        }
        do {
            request = ControlRequest(id: id, command: try type.decode(arguments: arguments))
        } catch {
            throw EnvelopeRefusal(id: id, message: error.message)
        }
    }
}

private struct ResponseHead: Decodable {
    var id: Int?
    var ok: Bool
    var error: String?
}

private struct ResultEnvelope<Payload: Decodable>: Decodable {
    var result: Payload
}

/// One JSON text: object keys sorted, `/` not escaped.
func jsonText(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding these plain value types cannot fail (no floats that could be NaN, no custom
    // throwing encoders), so a failure is a programming error.
    let data = try! encoder.encode(value)
    return String(decoding: data, as: UTF8.self)
}

/// JSONDecoder's syntax errors, shortened to the part an operator can use.
private func jsonErrorSummary(_ error: any Error) -> String {
    if case DecodingError.dataCorrupted(let context) = error {
        if let underlying = context.underlyingError {
            return "\(underlying)"
        }
        return context.debugDescription
    }
    return "\(error)"
}
