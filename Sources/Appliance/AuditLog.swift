import Foundation
import Glibc

/// The outcome of an audited command.
public enum AuditResult: Hashable, Sendable, CustomStringConvertible {
    case accepted
    case refused(String)

    public var description: String {
        switch self {
        case .accepted: "ok"
        case .refused(let reason): "refused: \(reason)"
        }
    }
}

/// The appliance's audit trail: one line per command that asked for a change, appended and
/// flushed before the prompt returns:
///
///     2026-11-23T17:48:02Z user=admin uid=1000 result="ok" command="set hostname gw1"
///
/// The user comes from the connection's SO_PEERCRED uid (`PeerCredentials`), not from
/// anything the client says. Quotes, backslashes and control characters in the command or
/// reason are escaped (`\"`, `\\`, `\n`, `\u{1b}`), so one entry is always one line and an
/// operator's input can never forge another entry.
public struct AuditLog: Sendable {
    public let path: String
    private let now: @Sendable () -> Date

    public init(path: String, now: @escaping @Sendable () -> Date = { Date() }) {
        self.path = path
        self.now = now
    }

    /// Appends one entry with a single write(2) on an O_APPEND descriptor (atomic with
    /// respect to other appenders on a local file system), then fsyncs it.
    public func append(credentials: PeerCredentials, command: String, result: AuditResult)
        throws(AtomicFileError)
    {
        let user = credentials.userName ?? "uid\(credentials.uid)"
        try append(user: user, uid: credentials.uid, command: command, result: result)
    }

    public func append(user: String, uid: UInt32, command: String, result: AuditResult)
        throws(AtomicFileError)
    {
        let line =
            "\(Self.timestamp(now())) user=\(Self.escaped(user, quoted: false)) uid=\(uid)"
            + " result=\"\(Self.escaped(result.description, quoted: true))\""
            + " command=\"\(Self.escaped(command, quoted: true))\"\n"
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw AtomicFileError(call: "open", path: path, errno: errno) }
        defer { close(descriptor) }
        let bytes = Array(line.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw AtomicFileError(call: "write", path: path, errno: written < 0 ? errno : EIO)
        }
        guard fsync(descriptor) == 0 else {
            throw AtomicFileError(call: "fsync", path: path, errno: errno)
        }
    }

    /// The last `count` entries, oldest first (`show log lines N`).
    public func lastEntries(_ count: Int) throws(AtomicFileError) -> [String] {
        guard let bytes = try AtomicFile.read(path) else { return [] }
        let lines = bytes.split(separator: UInt8(ascii: "\n")).map {
            String(decoding: $0, as: UTF8.self)
        }
        return Array(lines.suffix(max(0, count)))
    }

    /// RFC 3339 UTC, to the second.
    static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    static func escaped(_ text: String, quoted: Bool) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x5C: out += "\\\\"
            case 0x22: out += "\\\""
            case 0x0A: out += "\\n"
            case 0x09: out += "\\t"
            case 0x20 where !quoted: out += "\\x20"
            // C0, DEL and C1 controls (terminal escapes among them) never reach the log raw.
            case 0..<0x20, 0x7F..<0xA0, 0x2028, 0x2029:
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
