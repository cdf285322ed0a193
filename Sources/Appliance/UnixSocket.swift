#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Unix socket addresses for vtepd's other sockets (the DHCP hook's, chronyd's and
/// ovsdb-server's), built one way.
public enum UnixSocket {
    /// Usable bytes of `sockaddr_un.sun_path` (108 with the terminating NUL, unix(7)).
    public static let maximumPathLength = 107

    /// Calls `body` with `path` as a `sockaddr_un`; nil when the path does not fit in
    /// `sun_path` (unix(7)).
    public static func withAddress<Result>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
    ) -> Result? {
        guard path.utf8.count <= maximumPathLength else { return nil }
        return withSocketAddress(path, body)
    }

    /// Whether connect(2) to the socket of `type` (SOCK_STREAM, SOCK_DGRAM, …) at `path`
    /// succeeds: something listens (stream) or receives (datagram) there. A file its daemon
    /// left behind refuses the connection.
    public static func connects(_ path: String, type: Int32) -> Bool {
        let fd = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withAddress(path) { connect(fd, $0, $1) == 0 } ?? false
    }

    /// `path` as a `sockaddr_un` for `body`, cut at `maximumPathLength` bytes (callers check
    /// the length first).
    static func withSocketAddress<Result>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
    ) -> Result {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            for (index, byte) in path.utf8.prefix(maximumPathLength).enumerated() {
                raw[index] = byte
            }
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }
}
