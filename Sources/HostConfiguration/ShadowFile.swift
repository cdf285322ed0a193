import Appliance
import Glibc

/// Why shadow(5) was not read or changed. Whenever one of these is thrown, the file was not
/// written.
public enum ShadowFileError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The host keeps no shadow file.
    case missingFile(path: String)
    /// No line names the account.
    case noAccount(user: String, path: String)
    /// The account's line is not one shadow(5) describes; `line` counts from 1.
    case malformedLine(user: String, path: String, line: Int, reason: String)
    /// A name shadow(5) cannot hold (empty, or with `:` or a line break).
    case invalidUserName(String)
    /// Another program held the lock lckpwdf(3) takes for longer than the wait allowed.
    case lockTimeout(path: String, seconds: Double)
    /// The lock file could not be opened or locked.
    case lockFailed(path: String, call: String, errno: Int32)
    /// An undo found the account's line changed since the change it undoes: a newer change is
    /// kept rather than overwritten.
    case changedSince(user: String, path: String)
    case file(AtomicFileError)

    public var description: String {
        switch self {
        case .missingFile(let path):
            "\(path) does not exist: the host keeps no shadow passwords (the passwd package's "
                + "pwconv creates it)"
        case .noAccount(let user, let path):
            "no account \(user) in \(path): create it first (useradd \(user))"
        case .malformedLine(let user, let path, let line, let reason):
            "line \(line) of \(path), the account \(user)'s, is malformed: \(reason); nothing "
                + "was written (correct it with vipw -s, or check it with pwck -r)"
        case .invalidUserName(let name):
            "\(name.debugDescription) is not a user name shadow(5) can hold (empty, or with ':' "
                + "or a line break)"
        case .lockTimeout(let path, let seconds):
            "another program (passwd, useradd, vipw?) held the password lock \(path) for more "
                + "than \(seconds) s; nothing was written, try again when it is done"
        case .lockFailed(let path, let call, let errno):
            "\(call) of the password lock \(path) failed: \(String(cString: strerror(errno))) "
                + "(errno \(errno)); nothing was written"
        case .changedSince(let user, let path):
            "the account \(user)'s password in \(path) changed after the change being undone; "
                + "it was left as it is now"
        case .file(let error): "\(error)"
        }
    }
}

/// What `ShadowFile.setPassword` changed in one account's line, and what `undo` puts back:
/// fields 2 (the password) and 3 (the day of the last change) before and after, as bytes of
/// the file, unparsed.
public struct ShadowChange: Sendable, Hashable {
    public let user: String
    public let previousPassword: String
    public let previousLastChange: String
    public let password: String
    public let lastChange: String
}

/// `ROOT/etc/shadow` (shadow(5)), changed the way shadow-utils' chpasswd and passwd change it:
/// one account's password field becomes a crypt(5) hash and its "date of last password
/// change" today's day number (days since 1970-01-01 UTC); every other byte of the file stays
/// as it was. The change holds the lock lckpwdf(3) takes (so passwd, useradd and vipw wait for
/// it, and it for them), and is written through `AtomicFile` (temporary file, fsync, rename,
/// fsync of the directory) with the file's own mode and owner, so a reader (sshd, PAM) sees
/// the old file or the new one and a crash leaves one of the two.
///
/// nscd or sssd caches are not flushed: the appliance runs neither.
public struct ShadowFile: Sendable {
    /// `ROOT/etc/shadow`.
    public let path: String
    /// `ROOT/etc/.pwd.lock`, glibc's PASSWD_LOCK_FILE.
    public let lockPath: String
    /// lckpwdf(3) gives up after 15 s.
    let lockTimeout: Duration
    /// Today as shadow(5) counts days; a parameter so tests can pin it.
    let today: @Sendable () -> Int

    /// The shadow file under `root` (`/` on the appliance).
    public init(root: String) {
        self.init(root: root, lockTimeout: .seconds(15))
    }

    init(
        root: String, lockTimeout: Duration,
        today: @escaping @Sendable () -> Int = { Int(time(nil)) / 86400 }
    ) {
        var trimmed = Substring(root)
        while trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        path = String(trimmed) + "/etc/shadow"
        lockPath = String(trimmed) + "/etc/.pwd.lock"
        self.lockTimeout = lockTimeout
        self.today = today
    }

    /// Field 2 of `user`'s line as it is now (a hash, or `!`, `*`, `!hash` for a locked
    /// account); nil when the file has no line for `user`.
    public func passwordField(of user: String) throws(ShadowFileError) -> String? {
        let content = try read()
        guard let entry = try Entry.find(user, in: content, path: path) else { return nil }
        return entry.field(1, of: content)
    }

    /// Sets `user`'s password to `hash` and the day of its last change to today; returns what
    /// `undo` needs to put the line back.
    public func setPassword(of user: String, to hash: PasswordHash) throws(ShadowFileError)
        -> ShadowChange
    {
        let lastChange = String(today())
        return try edit(user) { (previousPassword, previousLastChange) throws(ShadowFileError) in
            (
                hash.text, lastChange,
                ShadowChange(
                    user: user, previousPassword: previousPassword,
                    previousLastChange: previousLastChange, password: hash.text,
                    lastChange: lastChange)
            )
        }
    }

    /// Puts back the fields `change` replaced, if the line still holds what `change` wrote;
    /// otherwise throws `changedSince` and writes nothing.
    public func undo(_ change: ShadowChange) throws(ShadowFileError) {
        _ = try edit(change.user) { (password, lastChange) throws(ShadowFileError) in
            guard password == change.password, lastChange == change.lastChange else {
                throw .changedSince(user: change.user, path: path)
            }
            return (change.previousPassword, change.previousLastChange, change)
        }
    }

    /// Under the lock: reads the file, finds `user`'s line, lets `replace` turn its fields 2
    /// and 3 into new ones, and writes the file back with its mode and owner.
    private func edit(
        _ user: String,
        _ replace: (String, String) throws(ShadowFileError) -> (String, String, ShadowChange)
    ) throws(ShadowFileError) -> ShadowChange {
        // Checked before locking so a host without the file (or without ROOT/etc, where the
        // lock file would go) hears that, not a failure to create the lock.
        guard access(path, F_OK) == 0 else { throw .missingFile(path: path) }
        let lock = try PasswordLock(path: lockPath, timeout: lockTimeout)
        defer { lock.release() }

        let content = try read()
        guard let entry = try Entry.find(user, in: content, path: path) else {
            throw .noAccount(user: user, path: path)
        }
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw .file(AtomicFileError(call: "stat", path: path, errno: errno))
        }
        let (password, lastChange, change) = try replace(
            entry.field(1, of: content), entry.field(2, of: content))
        var updated = Array(content[..<entry.fields[1].lowerBound])
        updated += Array(password.utf8)
        updated.append(UInt8(ascii: ":"))
        updated += Array(lastChange.utf8)
        updated += content[entry.fields[2].upperBound...]
        do {
            try AtomicFile.write(
                updated, to: path, mode: status.st_mode & 0o7777,
                owner: (status.st_uid, status.st_gid))
        } catch {
            throw .file(error)
        }
        return change
    }

    private func read() throws(ShadowFileError) -> [UInt8] {
        let content: [UInt8]?
        do {
            content = try AtomicFile.read(path)
        } catch {
            throw .file(error)
        }
        guard let content else { throw .missingFile(path: path) }
        return content
    }

    /// One account's line: the byte ranges of its fields in the whole file.
    private struct Entry {
        var fields: [Range<Int>]

        func field(_ index: Int, of content: [UInt8]) -> String {
            String(decoding: content[fields[index]], as: UTF8.self)
        }

        /// `user`'s line, checked as shadow-utils' sgetspent checks one: nine fields, the
        /// day of the last change empty or a number. A second line for the same name is an
        /// error too: which one a reader would take is not for this to guess.
        static func find(_ user: String, in content: [UInt8], path: String)
            throws(ShadowFileError) -> Entry?
        {
            let name = Array(user.utf8)
            guard !name.isEmpty, !name.contains(where: { $0 == 0x3A || $0 == 0x0A || $0 == 0x0D })
            else { throw .invalidUserName(user) }
            var found: (entry: Entry, line: Int)?
            var start = 0
            var number = 1
            while start < content.count {
                let end = content[start...].firstIndex(of: 0x0A) ?? content.count
                let first = content[start..<end].firstIndex(of: 0x3A) ?? end
                if content[start..<first].elementsEqual(name) {
                    if let found {
                        throw .malformedLine(
                            user: user, path: path, line: number,
                            reason: "it is a second line for the account (the first is line "
                                + "\(found.line))")
                    }
                    found = (try parse(start..<end, of: content, user, path, number), number)
                }
                start = end + 1
                number += 1
            }
            return found?.entry
        }

        private static func parse(
            _ line: Range<Int>, of content: [UInt8], _ user: String, _ path: String,
            _ number: Int
        ) throws(ShadowFileError) -> Entry {
            var fields: [Range<Int>] = []
            var fieldStart = line.lowerBound
            for index in line where content[index] == 0x3A {
                fields.append(fieldStart..<index)
                fieldStart = index + 1
            }
            fields.append(fieldStart..<line.upperBound)
            guard fields.count == 9 else {
                throw .malformedLine(
                    user: user, path: path, line: number,
                    reason: "it has \(fields.count) fields, shadow(5) lines have 9")
            }
            guard content[fields[2]].allSatisfy({ (0x30...0x39).contains($0) }) else {
                throw .malformedLine(
                    user: user, path: path, line: number,
                    reason: "field 3 (date of last password change) is not a number of days")
            }
            return Entry(fields: fields)
        }
    }
}

/// The lock lckpwdf(3) takes: an exclusive fcntl lock on the whole of `ROOT/etc/.pwd.lock`,
/// created 0600 if missing. An open file description lock (F_OFD_SETLK) conflicts with the
/// classic record lock glibc's lckpwdf takes (fcntl(2), "Open file description locks"), and
/// unlike a classic lock it also excludes other threads of this process and is not dropped
/// when some other descriptor of the file is closed. The wait is bounded by retrying the
/// non-blocking F_OFD_SETLK (lckpwdf bounds F_SETLKW with SIGALRM, which a threaded daemon
/// cannot use).
private struct PasswordLock {
    /// F_OFD_SETLK of <fcntl.h> (needs _GNU_SOURCE, which Swift's Glibc module lacks).
    private static let setLock: Int32 = 37
    private let descriptor: Int32

    init(path: String, timeout: Duration) throws(ShadowFileError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw .lockFailed(path: path, call: "open", errno: errno)
        }
        let deadline = ContinuousClock.now + timeout
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        // l_start 0, l_len 0: the whole file; l_pid must be 0 for an OFD lock.
        while fcntl(descriptor, Self.setLock, &lock) != 0 {
            let error = errno
            guard error == EAGAIN || error == EACCES || error == EINTR else {
                close(descriptor)
                throw .lockFailed(path: path, call: "fcntl(F_OFD_SETLK)", errno: error)
            }
            guard ContinuousClock.now < deadline else {
                close(descriptor)
                let parts = timeout.components
                throw .lockTimeout(
                    path: path,
                    seconds: Double(parts.seconds) + Double(parts.attoseconds) / 1e18)
            }
            usleep(20_000)
        }
        self.descriptor = descriptor
    }

    /// Closing the last descriptor of the open file description drops an OFD lock.
    func release() { close(descriptor) }
}
