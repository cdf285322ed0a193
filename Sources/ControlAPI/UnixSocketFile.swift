import Appliance

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Errors of the control server, each saying what an operator can do about it.
public enum ControlServerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `sun_path` holds 108 bytes including the terminating NUL (unix(7)).
    case pathTooLong(path: String, limit: Int)
    /// A process accepts connections on the path: another vtepd is running.
    case alreadyServed(path: String)
    /// Something other than a socket is at the path; it is not ours to delete.
    case notASocket(path: String)
    /// A system call on the path failed.
    case system(operation: String, path: String, errno: Int32)
    /// `SO_PEERCRED` could not be read; the connection is refused.
    case peerCredentialsUnavailable(reason: String)

    public var description: String {
        switch self {
        case .pathTooLong(let path, let limit):
            return "control socket path \(path) is \(path.utf8.count) bytes; a Unix socket path "
                + "holds at most \(limit): choose a shorter one"
        case .alreadyServed(let path):
            return "another process (a running vtepd?) is accepting connections on \(path); "
                + "stop it first or choose another control socket path"
        case .notASocket(let path):
            return "\(path) exists and is not a socket; refusing to replace it: move it away or "
                + "choose another control socket path"
        case .system(let operation, let path, let code):
            return "cannot \(operation) \(path): \(String(cString: strerror(code)))"
        case .peerCredentialsUnavailable(let reason):
            return "cannot read the peer's credentials (SO_PEERCRED): \(reason)"
        }
    }
}

/// The file-system side of a listening Unix socket: probing a path for a live listener,
/// permissions, ownership, and the identity that tells our socket file from a successor's.
public enum UnixSocketFile {
    /// Usable bytes of `sockaddr_un.sun_path` (108 with the terminating NUL, unix(7)).
    static let maximumPathLength = UnixSocket.maximumPathLength

    enum State: Equatable {
        case absent
        /// A socket file nobody accepts on (its daemon died without unlinking it).
        case stale
        case live
        case notASocket
    }

    /// (device, inode) of the file at a path.
    struct Identity: Hashable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    static func checkLength(_ path: String) throws(ControlServerError) {
        guard path.utf8.count <= maximumPathLength, !path.utf8.contains(0) else {
            throw .pathTooLong(path: path, limit: maximumPathLength)
        }
    }

    /// Finds out whether anything listens at `path` by connecting to it, which is the only
    /// test that cannot be fooled by a leftover file.
    static func probe(_ path: String) throws(ControlServerError) -> State {
        var info = stat()
        if lstat(path, &info) != 0 {
            let code = errno
            if code == ENOENT { return .absent }
            throw .system(operation: "inspect", path: path, errno: code)
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else { return .notASocket }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(operation: "probe", path: path, errno: errno) }
        defer { close(fd) }
        let result = UnixSocket.withAddress(path) { address, length in
            retryingInterrupts { connect(fd, address, length) }
        }
        if result == 0 { return .live }
        switch errno {
        case ECONNREFUSED: return .stale
        case ENOENT: return .absent
        // A full backlog: somebody listens, just busy.
        case EAGAIN: return .live
        case let code: throw .system(operation: "probe", path: path, errno: code)
        }
    }

    /// Removes `path` if it is a stale socket; refuses if someone listens there or it is not a
    /// socket.
    static func removeIfStale(_ path: String) throws(ControlServerError) {
        switch try probe(path) {
        case .absent: return
        case .live: throw .alreadyServed(path: path)
        case .notASocket: throw .notASocket(path: path)
        case .stale:
            if unlink(path) != 0, errno != ENOENT {
                throw .system(operation: "remove the stale socket", path: path, errno: errno)
            }
        }
    }

    static func setMode(_ path: String, _ mode: mode_t) throws(ControlServerError) {
        guard chmod(path, mode) == 0 else {
            throw .system(operation: "set the mode of", path: path, errno: errno)
        }
    }

    /// The gid of a group in the group database, nil if there is no such group.
    public static func groupID(named name: String) -> gid_t? {
        var entry = group()
        var found: UnsafeMutablePointer<group>?
        var storage = [CChar](repeating: 0, count: 16384)
        let status = getgrnam_r(name, &entry, &storage, storage.count, &found)
        guard status == 0, found != nil else { return nil }
        return entry.gr_gid
    }

    static func setGroup(_ path: String, _ gid: gid_t) throws(ControlServerError) {
        // uid_t(bitPattern: -1): leave the owner as it is (chown(2)).
        guard chown(path, uid_t.max, gid) == 0 else {
            throw .system(operation: "change the group of", path: path, errno: errno)
        }
    }

    static func rename(_ from: String, to: String) throws(ControlServerError) {
        guard Glibc.rename(from, to) == 0 else {
            throw .system(operation: "move the new socket into place at", path: to, errno: errno)
        }
    }

    static func identity(_ path: String) -> Identity? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Unlinks `path` only if it is still the file `identity` names, so a daemon that stops
    /// never deletes the socket of one that replaced it.
    static func remove(_ path: String, ifStill identity: Identity) {
        guard Self.identity(path) == identity else { return }
        unlink(path)
    }

    private static func retryingInterrupts(_ call: () -> Int32) -> Int32 {
        while true {
            let result = call()
            if result == -1, errno == EINTR { continue }
            return result
        }
    }
}
