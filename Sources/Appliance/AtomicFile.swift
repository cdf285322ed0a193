import Glibc

/// A file system call that failed, naming the file and the call.
public struct AtomicFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var call: String
    public var path: String
    public var errno: Int32

    public init(call: String, path: String, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(call) of \(path) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Whole-file replacement that a crash or power loss cannot leave half done: the new content
/// goes to a temporary file in the same directory, is flushed (fsync), and is renamed over the
/// old one (rename(2) is atomic within a file system); then the directory is flushed so the
/// rename itself survives a power loss. A reader sees the old file or the new one, never a
/// mixture.
///
/// The temporary file is named `.NAME.tmp-XXXXXX`. One left behind by a crash is harmless (the
/// real file is intact) and is removed by the next write of the same file.
public enum AtomicFile {
    /// Replaces `path` with `bytes`, with permission bits `mode`, owned by `owner` when given
    /// (else by the caller). The temporary file is created 0600 (mkstemp) and gets its owner
    /// before its mode, so it is never readable by more than `mode` allows: what a file such
    /// as /etc/shadow (0640 root:shadow) needs.
    public static func write(
        _ bytes: [UInt8], to path: String, mode: mode_t = 0o644,
        owner: (user: uid_t, group: gid_t)? = nil
    )
        throws(AtomicFileError)
    {
        let (directory, name) = split(path)
        removeLeftovers(of: name, in: directory)
        var template = Array("\(directory)/.\(name).tmp-XXXXXX".utf8CString)
        let descriptor = Int32(try call("mkstemp", path) { mkstemp(&template) })
        let temporary = String(cString: template)
        var renamed = false
        defer {
            if !renamed { unlink(temporary) }
        }
        try fill(descriptor, temporary, bytes, mode, owner)
        try call("rename", path) { rename(temporary, path) }
        renamed = true
        try syncDirectory(directory)
    }

    /// Writes and flushes the temporary file, and closes it.
    private static func fill(
        _ descriptor: Int32, _ temporary: String, _ bytes: [UInt8], _ mode: mode_t,
        _ owner: (user: uid_t, group: gid_t)?
    )
        throws(AtomicFileError)
    {
        defer { close(descriptor) }
        // mkostemp is not visible to Swift; nothing runs a child process between the two calls.
        try call("fcntl", temporary) { fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        // chown(2) may clear set-user-ID and set-group-ID bits: owner first, then mode.
        if let owner {
            try call("fchown", temporary) { fchown(descriptor, owner.user, owner.group) }
        }
        try call("fchmod", temporary) { fchmod(descriptor, mode) }
        var written = 0
        while written < bytes.count {
            let count = try call("write", temporary) {
                bytes.withUnsafeBytes {
                    Glibc.write(descriptor, $0.baseAddress! + written, $0.count - written)
                }
            }
            written += count
        }
        try call("fsync", temporary) { fsync(descriptor) }
    }

    /// The content of `path`, or nil if there is no such file (ENOENT, or ENOTDIR: a
    /// component of the path is not a directory).
    public static func read(_ path: String) throws(AtomicFileError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw AtomicFileError(call: "open", path: path, errno: errno)
        }
        defer { close(descriptor) }
        var content: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = try call("read", path) {
                chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            }
            if count == 0 { return content }
            content.append(contentsOf: chunk[0..<count])
        }
    }

    /// Removes `path` if it exists, and flushes the directory so the removal is durable.
    public static func remove(_ path: String) throws(AtomicFileError) {
        if unlink(path) != 0 {
            if errno == ENOENT { return }
            throw AtomicFileError(call: "unlink", path: path, errno: errno)
        }
        try syncDirectory(split(path).directory)
    }

    /// Creates `path` and its missing parents with mode 0755.
    public static func makeDirectories(_ path: String) throws(AtomicFileError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/\(component)"
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw AtomicFileError(call: "mkdir", path: current, errno: errno)
            }
        }
    }

    /// The temporary files crashed writers of `name` left in `directory`.
    public static func leftovers(of name: String, in directory: String) -> [String] {
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        let prefix = ".\(name).tmp-"
        var found: [String] = []
        while let entry = readdir(stream) {
            // The name in place: a readdir record ends at its name's NUL, often short of
            // sizeof(dirent), so copying the 256-byte field can read past the buffer's end
            // (a crash seen in session 17's test run).
            let entryName = String(
                cString: (UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \.d_name)!)
                    .assumingMemoryBound(to: CChar.self))
            if entryName.hasPrefix(prefix) && entryName.utf8.count == prefix.utf8.count + 6 {
                found.append("\(directory)/\(entryName)")
            }
        }
        return found.sorted()
    }

    private static func removeLeftovers(of name: String, in directory: String) {
        for leftover in leftovers(of: name, in: directory) { unlink(leftover) }
    }

    private static func syncDirectory(_ directory: String) throws(AtomicFileError) {
        let descriptor = Int32(
            try call("open", directory) { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) })
        defer { close(descriptor) }
        try call("fsync", directory) { fsync(descriptor) }
    }

    public static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    /// Runs a system call, retrying on EINTR, and turns -1 into a typed error.
    @discardableResult
    private static func call<T: BinaryInteger>(
        _ name: String, _ path: String, _ body: () -> T
    ) throws(AtomicFileError) -> Int {
        while true {
            let result = body()
            if result >= 0 { return Int(result) }
            if errno != EINTR { throw AtomicFileError(call: name, path: path, errno: errno) }
        }
    }
}
