#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Who is on the other end of a control connection, as the kernel vouches for it
/// (`SO_PEERCRED`, socket(7)): the process that connected and its user and group at the time
/// of `connect`. Passed with every request so that changes can be authorised and audited
/// against the real user, not a name the client claims.
public struct PeerCredentials: Hashable, Sendable, Codable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// The login name of `uid` from the user database, or nil if it has none.
    public var userName: String? { account { $0.pw_name } }

    /// The home directory of `uid` from the user database (where scp puts what the admin
    /// copies over), or nil if it has none.
    public var homeDirectory: String? { account { $0.pw_dir } }

    private func account(_ field: (passwd) -> UnsafeMutablePointer<CChar>?) -> String? {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var storage = [CChar](repeating: 0, count: 4096)
        let status = getpwuid_r(uid, &entry, &storage, storage.count, &found)
        guard status == 0, found != nil, let text = field(entry) else { return nil }
        return String(cString: text)
    }

    public var description: String {
        "pid \(pid) uid \(uid)" + (userName.map { " (\($0))" } ?? "") + " gid \(gid)"
    }
}
