import Appliance

#if canImport(Glibc)
    import Glibc
#endif

/// The shell's history kept between sessions, per user: one line per command in a file only
/// the user can read (0600), written whole and atomically after each command, the newest
/// `limit` lines kept. A file that cannot be read or written costs the history, never the
/// session.
public struct HistoryFile: Sendable {
    public let path: String
    public let limit: Int

    public init(path: String, limit: Int = 500) {
        self.path = path
        self.limit = limit
    }

    /// `$VTEPSH_HISTORY` when set (empty: no history), else `$HOME/.vtepsh_history`; nil
    /// without either.
    public static func forCurrentUser(limit: Int = 500) -> HistoryFile? {
        if let chosen = getenv("VTEPSH_HISTORY").map({ String(cString: $0) }) {
            return chosen.isEmpty ? nil : HistoryFile(path: chosen, limit: limit)
        }
        guard let home = getenv("HOME").map({ String(cString: $0) }), home.hasPrefix("/") else {
            return nil
        }
        return HistoryFile(path: home + "/.vtepsh_history", limit: limit)
    }

    /// The saved lines, oldest first; none when there is no file or it cannot be read.
    public func load() -> [String] {
        guard let file = fopen(path, "r") else { return [] }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[0..<count]
            // A history is small; a huge file is not ours to read whole.
            if bytes.count > 4 << 20 { break }
        }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        return Array(lines.suffix(limit))
    }

    /// Saves `lines` (the newest `limit`); false when the file could not be written.
    @discardableResult
    public func save(_ lines: [String]) -> Bool {
        let text = lines.suffix(limit).map { $0 + "\n" }.joined()
        do {
            try AtomicFile.write(Array(text.utf8), to: path, mode: 0o600)
            return true
        } catch {
            return false
        }
    }
}
