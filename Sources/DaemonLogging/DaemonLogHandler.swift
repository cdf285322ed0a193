import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The one log output of a daemon: every `Logger` of the process, whatever its subsystem,
/// writes through this handler to standard error, one `write(2)` per line (lines shorter than
/// PIPE_BUF from two threads never interleave).
///
/// Two forms, chosen once at bootstrap:
/// - `.journal`, under systemd (it sets `JOURNAL_STREAM` to stderr's device and inode when
///   stderr is connected to the journal, systemd.exec(5)): each line starts with the syslog priority in angle brackets,
///   which journald strips and records as the entry's priority (sd-daemon(3): `<3>` error,
///   `<4>` warning, `<5>` notice, `<6>` info, `<7>` debug), then `LABEL: message key=value`.
///   journald adds the time. So `journalctl -u vtepd -p warning` shows warnings and worse.
/// - `.plain` otherwise: `2026-12-05T07:25:04.123Z warning vtepd.switch: message key=value`.
///
/// A message of several lines keeps its priority on each (journald makes one entry per line);
/// in the plain form the continuation lines are indented.
public struct DaemonLogHandler: LogHandler {
    public enum Form: Sendable, Equatable {
        case journal
        case plain

        /// `.journal` when systemd connected stderr to the journal: `JOURNAL_STREAM` is set and
        /// names standard error's device and inode (`DEVICE:INODE`, systemd.exec(5), which
        /// asks for this comparison: a child that inherited the variable may have its stderr
        /// somewhere else).
        public static func detect(
            environment: [String: String],
            standardError: (device: UInt64, inode: UInt64)? = standardErrorIdentity()
        ) -> Form {
            guard let stream = environment["JOURNAL_STREAM"], let standardError else {
                return .plain
            }
            return stream == "\(standardError.device):\(standardError.inode)" ? .journal : .plain
        }

        /// Standard error's device and inode, as systemd writes them into `JOURNAL_STREAM`.
        public static func standardErrorIdentity() -> (device: UInt64, inode: UInt64)? {
            var status = stat()
            guard fstat(STDERR_FILENO, &status) == 0 else { return nil }
            return (UInt64(status.st_dev), UInt64(status.st_ino))
        }
    }

    public let label: String
    public let form: Form
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// Where a finished line goes; standard error outside tests.
    let output: @Sendable (String) -> Void
    /// Keeps the plain form of each line for `show tech-support`; nil keeps nothing.
    let recent: RecentLogLines?

    public init(
        label: String, form: Form, level: Logger.Level,
        metadataProvider: Logger.MetadataProvider? = nil,
        output: @escaping @Sendable (String) -> Void = DaemonLogHandler.writeToStandardError,
        recent: RecentLogLines? = nil
    ) {
        self.label = label
        self.form = form
        self.logLevel = level
        self.metadataProvider = metadataProvider
        self.output = output
        self.recent = recent
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() {
            merged.merge(provided) { _, new in new }
        }
        if let own = event.metadata {
            merged.merge(own) { _, new in new }
        }
        let time = Self.now()
        let plain = Self.render(
            level: event.level, label: label, message: event.message.description,
            metadata: merged, form: .plain, time: time)
        recent?.append(plain)
        output(
            form == .plain
                ? plain
                : Self.render(
                    level: event.level, label: label, message: event.message.description,
                    metadata: merged, form: form, time: ""))
    }

    /// The text written for one message, ending in a newline.
    public static func render(
        level: Logger.Level, label: String, message: String, metadata: Logger.Metadata,
        form: Form, time: String
    ) -> String {
        var lines = message.split(separator: "\n", omittingEmptySubsequences: false)
        let fields = renderMetadata(metadata)
        if !fields.isEmpty {
            lines[lines.count - 1] += lines[lines.count - 1].isEmpty ? fields : " " + fields
        }
        var text = ""
        for (i, line) in lines.enumerated() {
            switch form {
            case .journal:
                text += "<\(priority(level))>"
                text += i == 0 ? "\(label): " : "\(label):   "
            case .plain:
                text += i == 0 ? "\(time) \(level) \(label): " : "  "
            }
            text += line
            text += "\n"
        }
        return text
    }

    /// The syslog priority journald records for `level` (sd-daemon(3), syslog(3)).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// `key=value` pairs sorted by key; a value with spaces, quotes or `=` is quoted.
    public static func renderMetadata(_ metadata: Logger.Metadata) -> String {
        metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\(quoted("\($0.value)"))" }
            .joined(separator: " ")
    }

    static func quoted(_ value: String) -> String {
        let plain =
            !value.isEmpty
            && !value.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\n" || $0 == "\t" }
        guard !plain else { return value }
        var text = "\""
        for c in value {
            switch c {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\t": text += "\\t"
            default: text.append(c)
            }
        }
        return text + "\""
    }

    /// UTC with milliseconds: `2026-12-05T07:25:04.123Z`.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let millis = Int(spec.tv_nsec / 1_000_000)
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms)Z"
    }

    public static let writeToStandardError: @Sendable (String) -> Void = { line in
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                offset += n
            }
        }
    }
}

/// Bootstrapping the process's logging.
public enum DaemonLogging {
    /// Makes `DaemonLogHandler` the handler of every `Logger` in the process, at `level`, in the
    /// form `environment` calls for. Call once, first thing in `main`.
    public static func bootstrap(
        level: Logger.Level,
        environment: [String: String]
    ) {
        let form = DaemonLogHandler.Form.detect(environment: environment)
        LoggingSystem.bootstrap { label in
            DaemonLogHandler(label: label, form: form, level: level, recent: recent)
        }
    }

    /// The process's last log lines, in the plain form with their time: what `show
    /// tech-support` includes (journald has them too, but an admin in vtepsh cannot run
    /// journalctl).
    public static let recent = RecentLogLines(capacity: 500)
}

/// The last `capacity` log lines, oldest first; shared by every handler of the process.
public final class RecentLogLines: Sendable {
    private let lines: Mutex<(ring: [String], next: Int)>
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
        lines = Mutex(([], 0))
    }

    func append(_ text: String) {
        for line in text.split(separator: "\n") {
            lines.withLock { state in
                if state.ring.count < capacity {
                    state.ring.append(String(line))
                } else {
                    state.ring[state.next] = String(line)
                }
                state.next = (state.next + 1) % capacity
            }
        }
    }

    /// The last `count` lines, oldest first.
    public func last(_ count: Int) -> [String] {
        lines.withLock { state in
            let ordered =
                state.ring.count < capacity
                ? state.ring : Array(state.ring[state.next...] + state.ring[..<state.next])
            return Array(ordered.suffix(count))
        }
    }
}
