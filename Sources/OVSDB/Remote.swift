/// Where an OVSDB server listens, spelled as Open vSwitch spells it (ovsdb-server(1)
/// "Database Connection Methods"): `unix:PATH`, `tcp:HOST:PORT` (`tcp:[IPv6]:PORT`), or a bare
/// socket path; or the members of a clustered database, comma-separated as Open vSwitch's
/// clients take them (`tcp:A:6640,tcp:B:6640,tcp:C:6640`).
public enum Remote: Hashable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)
    /// The servers of one clustered database: the client follows whichever is fit (connected
    /// to the cluster, its leader, not behind what the client saw).
    indirect case cluster([Remote])

    public init(_ text: String) throws(OVSDBError) {
        if text.contains(",") {
            let members = text.split(separator: ",", omittingEmptySubsequences: false)
            guard members.count > 1, !members.contains(where: \.isEmpty) else {
                throw .invalidRemote(text)
            }
            var remotes: [Remote] = []
            for member in members {
                let remote = try Remote(String(member))
                guard !remotes.contains(remote) else { throw .invalidRemote(text) }
                remotes.append(remote)
            }
            self = .cluster(remotes)
        } else if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw .invalidRemote(text) }
            self = .unix(path: path)
        } else if text.hasPrefix("tcp:") {
            let rest = text.dropFirst(4)
            guard let colon = rest.lastIndex(of: ":"),
                let port = Int(rest[rest.index(after: colon)...]),
                (1...65535).contains(port)
            else { throw .invalidRemote(text) }
            var host = rest[..<colon]
            if host.hasPrefix("[") && host.hasSuffix("]") {
                host = host.dropFirst().dropLast()
            }
            guard !host.isEmpty else { throw .invalidRemote(text) }
            self = .tcp(host: String(host), port: port)
        } else if text.hasPrefix("/") {
            self = .unix(path: text)
        } else {
            throw .invalidRemote(text)
        }
    }

    /// The servers to try, in order: the members of a cluster, or this one.
    public var members: [Remote] {
        if case .cluster(let members) = self { return members }
        return [self]
    }

    public var description: String {
        switch self {
        case .unix(let path): return "unix:\(path)"
        case .tcp(let host, let port):
            return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        case .cluster(let members): return members.map(\.description).joined(separator: ",")
        }
    }
}

/// How long to wait before reconnecting: `initial` after the first failure, doubling up to
/// `maximum`; back to `initial` once a connection has been synchronised.
public struct Backoff: Hashable, Sendable {
    public var initial: Duration
    public var maximum: Duration

    /// 1 s doubling to 8 s.
    public static let standard = Backoff(initial: .seconds(1), maximum: .seconds(8))

    public init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before attempt `failures + 1` after `failures` consecutive failures (0-based).
    public func delay(afterFailures failures: Int) -> Duration {
        var delay = initial
        for _ in 0..<max(0, failures) {
            delay = delay * 2
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }
}
