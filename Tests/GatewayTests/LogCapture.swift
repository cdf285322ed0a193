import DaemonLogging
import Logging
import Synchronization

/// A `Logger` whose lines (the journal form, without the newline) a test reads back.
final class LogCapture: Sendable {
    private let written = Mutex<[String]>([])
    var lines: [String] { written.withLock { $0 } }

    func logger(_ label: String, level: Logger.Level = .debug) -> Logger {
        Logger(label: label) { label in
            DaemonLogHandler(label: label, form: .journal, level: level) { line in
                self.written.withLock { $0.append(String(line.dropLast())) }
            }
        }
    }

    /// Forgets what was written so far.
    func clear() { written.withLock { $0.removeAll() } }
}
