#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The service manager's notification protocol (sd_notify(3)): newline-separated
/// `VARIABLE=value` assignments in one datagram to the AF_UNIX socket named by `NOTIFY_SOCKET`
/// (a path, or `@name` for the abstract namespace). vtepd sends `READY=1` once it forwards and
/// its database and control socket are up, `WATCHDOG=1` while its worker answers, `STOPPING=1`
/// when it shuts down and `STATUS=` lines `systemctl status` shows.
///
/// Written here rather than linking libsystemd: the protocol is one `sendto(2)`, and the
/// appliance binaries link nothing they can do without.
public struct SystemdNotifier: Sendable {
    /// `NOTIFY_SOCKET` as systemd set it.
    public let socketPath: String

    /// nil when not started by a service manager that listens (no `NOTIFY_SOCKET`), or when
    /// the variable is not a socket address this protocol knows.
    public init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@"),
            path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        else { return nil }
        socketPath = path
    }

    /// Sends `assignments` (`["READY=1", "STATUS=forwarding"]`) in one datagram.
    public func notify(_ assignments: [String]) throws(SystemdNotifyError) {
        let message = assignments.joined(separator: "\n")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemdNotifyError(call: "socket", errno: errno) }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        // The abstract namespace: a leading NUL instead of "@", and the length counts exactly
        // the name's bytes (unix(7)).
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { sunPath in
            sunPath.copyBytes(from: path)
        }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + path.count)
        let sent = message.utf8CString.withUnsafeBufferPointer { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count - 1, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        guard sent >= 0 else { throw SystemdNotifyError(call: "sendto", errno: errno) }
    }

    /// How often the service manager wants `WATCHDOG=1`: `WATCHDOG_USEC`, when `WATCHDOG_PID`
    /// is absent or names this process (systemd.service(5), sd_watchdog_enabled(3)).
    public static func watchdogInterval(environment: [String: String], pid: Int32 = getpid())
        -> Duration?
    {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else {
            return nil
        }
        if let owner = environment["WATCHDOG_PID"], Int32(owner) != pid { return nil }
        return .microseconds(Int64(clamping: usec))
    }
}

public struct SystemdNotifyError: Error, Equatable, CustomStringConvertible {
    public var call: String
    public var errno: Int32
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }
    public var description: String {
        "\(call) to the service manager's notification socket: \(String(cString: strerror(errno)))"
    }
}
