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
/// - `command`: one of `ControlCommand.names` (`mac-table`, `counters`, `configuration`).
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
/// connection open. Results, by command:
///
/// - `mac-table` (arguments `switch`, `mac`, both optional strings): `[MACTableRow]`.
/// - `counters`: `CountersReport`.
/// - `configuration`: `ConfigurationReport`.
///
/// Field names of every result type are part of the protocol and documented on the type.
public struct ControlRequest: Hashable, Sendable {
    public var id: Int
    public var command: ControlCommand

    public init(id: Int, command: ControlCommand) {
        self.id = id
        self.command = command
    }
}

/// What a client asks vtepd for. New commands (the shell's configuration commands) join as new
/// cases; each case's arguments are parsed in `init(name:arguments:)` and nowhere else.
public enum ControlCommand: Hashable, Sendable {
    /// `mac-table`: the MAC table, optionally only one logical switch's or one MAC's entries.
    case macTable(MACTableQuery)
    /// `counters`: per logical switch, access port, remote VTEP, drop and malformed reason.
    case counters
    /// `configuration`: the effective configuration and the problems found in it.
    case configuration

    /// Every command's wire name, in the order error messages list them.
    public static let names = ["mac-table", "counters", "configuration"]

    /// The wire name (`"command"` field).
    public var name: String {
        switch self {
        case .macTable: return "mac-table"
        case .counters: return "counters"
        case .configuration: return "configuration"
        }
    }
}

/// The arguments of `mac-table`. Wire fields: `switch` (a logical switch name) and `mac`
/// (`aa:bb:cc:dd:ee:ff`; `-` separators and upper case are accepted and normalised).
public struct MACTableQuery: Hashable, Sendable, Codable {
    public var logicalSwitch: String?
    /// Lower case, colon-separated.
    public var mac: String?

    public init(logicalSwitch: String? = nil, mac: String? = nil) {
        self.logicalSwitch = logicalSwitch
        self.mac = mac
    }

    enum CodingKeys: String, CodingKey {
        case logicalSwitch = "switch"
        case mac
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
    case macTable([MACTableRow])
    case counters(CountersReport)
    case configuration(ConfigurationReport)

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .macTable(let rows): try container.encode(rows)
        case .counters(let report): try container.encode(report)
        case .configuration(let report): try container.encode(report)
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
        switch command {
        case .macTable(let query): text += ",\"arguments\":\(jsonText(query))"
        case .counters, .configuration: break
        }
        text += "}"
        return Array(text.utf8)
    }
}

extension ControlCommand {
    /// Parses a command's arguments. `arguments` is nil when the request has none.
    init(name: String, arguments: ArgumentReader) throws(ControlFailure) {
        switch name {
        case "mac-table":
            var query = MACTableQuery()
            query.logicalSwitch = try arguments.string("switch")
            if let text = try arguments.string("mac") {
                guard let mac = normalisedMAC(text) else {
                    throw ControlFailure(
                        "argument \"mac\" of mac-table: \"\(text)\" is not a MAC address "
                            + "(use aa:bb:cc:dd:ee:ff)")
                }
                query.mac = mac
            }
            try arguments.refuseOthers(["switch", "mac"])
            self = .macTable(query)
        case "counters":
            try arguments.refuseOthers([])
            self = .counters
        case "configuration":
            try arguments.refuseOthers([])
            self = .configuration
        default:
            throw ControlFailure(
                "unknown command \"\(name)\"; commands: \(ControlCommand.names.joined(separator: ", "))"
            )
        }
    }

    /// Decodes the `result` of a successful response to this command.
    func decodeResult(from line: Data) throws -> ControlResult {
        let decoder = JSONDecoder()
        switch self {
        case .macTable:
            return .macTable(
                try decoder.decode(ResultEnvelope<[MACTableRow]>.self, from: line).result)
        case .counters:
            return .counters(
                try decoder.decode(ResultEnvelope<CountersReport>.self, from: line).result)
        case .configuration:
            return .configuration(
                try decoder.decode(ResultEnvelope<ConfigurationReport>.self, from: line).result)
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

/// Reads a request's `arguments` object with messages that name the command and argument.
struct ArgumentReader {
    var command: String
    var container: KeyedDecodingContainer<AnyCodingKey>?

    func string(_ name: String) throws(ControlFailure) -> String? {
        guard let container, container.contains(AnyCodingKey(name)) else { return nil }
        do {
            return try container.decodeIfPresent(String.self, forKey: AnyCodingKey(name))
        } catch {
            throw ControlFailure("argument \"\(name)\" of \(command) must be a string")
        }
    }

    func refuseOthers(_ known: Set<String>) throws(ControlFailure) {
        guard let container else { return }
        let unknown = container.allKeys.map(\.stringValue).filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            let accepted =
                known.isEmpty
                ? "takes no arguments" : "takes \(known.sorted().joined(separator: ", "))"
            throw ControlFailure(
                "unknown argument\(unknown.count > 1 ? "s" : "") "
                    + unknown.map { "\"\($0)\"" }.joined(separator: ", ")
                    + " for \(command), which \(accepted)")
        }
    }
}

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
                    + ControlCommand.names.joined(separator: ", "))
        }
        var arguments = ArgumentReader(command: name, container: nil)
        let argumentsKey = AnyCodingKey("arguments")
        if container.contains(argumentsKey),
            (try? container.decodeNil(forKey: argumentsKey)) == false
        {
            guard
                let nested = try? container.nestedContainer(
                    keyedBy: AnyCodingKey.self, forKey: argumentsKey)
            else {
                throw EnvelopeRefusal(id: id, message: "\"arguments\" must be a JSON object")
            }
            arguments.container = nested
        }
        do {
            request = ControlRequest(
                id: id, command: try ControlCommand(name: name, arguments: arguments))
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

/// `aa:bb:cc:dd:ee:ff` (or with `-`, any case) in lower case with colons; nil if not a MAC.
func normalisedMAC(_ text: String) -> String? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    let groups =
        parts.count == 6 ? parts : text.split(separator: "-", omittingEmptySubsequences: false)
    guard groups.count == 6,
        groups.allSatisfy({
            $0.count == 2 && $0.allSatisfy(\.isHexDigit) && $0.allSatisfy(\.isASCII)
        })
    else { return nil }
    return groups.map { $0.lowercased() }.joined(separator: ":")
}
