import CCrypt
import Foundation
import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

/// shadow(5) changed as chpasswd changes it: the bytes of the file before and after, the
/// hash checked by libxcrypt's crypt_r(3) as pam_unix checks a login, the lckpwdf(3) lock
/// held by someone else.
@Suite("Appliance: the shadow file")
struct ShadowFileTests {
    /// Debian's layout: a locked admin, accounts around it whose names start alike, a field
    /// with ':'-free oddities (an empty max, a `!hash`), a final line without its newline.
    static let original = """
        root:*:19000:0:99999:7:::
        admins:!:19001:0:99999:7:::
        daemon:*:19000:0:99999:7:::
        admin:!:19500:0:99999:7:::
        adm:!$y$j9T$abc$def:19002:1::7:30:20100:
        nobody:*:19000:0:99999:7:::
        """
    static let day = 20000
    static let mode: mode_t = 0o640
    /// Not this process's: a kept owner cannot be an accident of who wrote the file.
    static let owner: (uid_t, gid_t) = (1234, 42)

    /// A root whose etc/shadow holds `content`, 0640 owned 1234:42, and (as on Debian) an
    /// empty lock file unless `lockFile` is false; `body` gets the root.
    func withRoot<T>(
        _ content: String = Self.original, mode: mode_t = Self.mode, lockFile: Bool = true,
        _ body: (_ root: String, _ shadow: ShadowFile) throws -> T
    ) throws -> T {
        try withTemporaryDirectory { root in
            try FileManager.default.createDirectory(
                atPath: root + "/etc", withIntermediateDirectories: false)
            let path = root + "/etc/shadow"
            try Data(content.utf8).write(to: URL(fileURLWithPath: path))
            #expect(chown(path, Self.owner.0, Self.owner.1) == 0)
            #expect(chmod(path, mode) == 0)
            if lockFile {
                #expect(
                    FileManager.default.createFile(
                        atPath: root + "/etc/.pwd.lock", contents: nil,
                        attributes: [.posixPermissions: 0o600]))
            }
            return try body(
                root, ShadowFile(root: root, lockTimeout: .seconds(20), today: { Self.day }))
        }
    }

    /// Appliance checks stored hashes against libxcrypt's CRYPT_OUTPUT_SIZE without linking
    /// libcrypt; the number it keeps must be the library's.
    @Test func theSettingsKnowLibxcryptsLongestHash() {
        #expect(PasswordHash.cryptOutputSize == Int(ccrypt_output_size))
    }

    @Test func theHashAndTodayLandInTheAccountsLineAndNothingElseChanges() throws {
        try withRoot(lockFile: false) { root, shadow in
            #expect(shadow.path == root + "/etc/shadow")
            let hash = try PasswordHash(hashing: "correct horse")
            let change = try shadow.setPassword(of: "admin", to: hash)

            let expected = Self.original.replacingOccurrences(
                of: "admin:!:19500:", with: "admin:\(hash.text):20000:")
            #expect(try String(contentsOfFile: shadow.path, encoding: .utf8) == expected)
            #expect(try shadow.passwordField(of: "admin") == hash.text)
            #expect(
                change
                    == ShadowChange(
                        user: "admin", previousPassword: "!", previousLastChange: "19500",
                        password: hash.text, lastChange: "20000"))

            // What pam_unix does at a login: crypt(3) of the typed password with the stored
            // field as the setting must give the field back.
            let field = try #require(try shadow.passwordField(of: "admin"))
            #expect(Self.crypt("correct horse", setting: field) == field)
            #expect(Self.crypt("correct horsE", setting: field) != field)

            var status = stat()
            #expect(stat(shadow.path, &status) == 0)
            #expect(status.st_mode & 0o7777 == Self.mode)
            #expect(status.st_uid == Self.owner.0 && status.st_gid == Self.owner.1)
            // No temporary file left; the lock file, missing before, is made as lckpwdf makes
            // it: 0600.
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: root + "/etc").sorted()
                    == [".pwd.lock", "shadow"])
            #expect(stat(root + "/etc/.pwd.lock", &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600)
        }
    }

    @Test func aPrivateFileStaysPrivateAndTheDayIsTodays() throws {
        try withRoot(mode: 0o600) { root, _ in
            let shadow = ShadowFile(root: root + "/")
            #expect(shadow.path == root + "/etc/shadow")
            let before = Int(time(nil)) / 86400
            _ = try shadow.setPassword(of: "nobody", to: PasswordHash(hashing: "long enough"))
            let after = Int(time(nil)) / 86400
            let line = try String(contentsOfFile: shadow.path, encoding: .utf8)
                .split(separator: "\n").first { $0.hasPrefix("nobody:") }
            let day = try #require(line).split(separator: ":", omittingEmptySubsequences: false)[2]
            #expect(day == "\(before)" || day == "\(after)", "\(day)")
            var status = stat()
            #expect(stat(shadow.path, &status) == 0)
            #expect(status.st_mode & 0o7777 == 0o600)
        }
    }

    @Test func undoPutsBackTheExactBytes() throws {
        try withRoot { root, shadow in
            let original = try Data(contentsOf: URL(fileURLWithPath: shadow.path))
            let change = try shadow.setPassword(of: "adm", to: PasswordHash(hashing: "12345678"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: shadow.path)) != original)
            try shadow.undo(change)
            #expect(try Data(contentsOf: URL(fileURLWithPath: shadow.path)) == original)
            var status = stat()
            #expect(stat(shadow.path, &status) == 0)
            #expect(status.st_mode & 0o7777 == Self.mode)
            #expect(status.st_uid == Self.owner.0 && status.st_gid == Self.owner.1)
        }
    }

    @Test func undoKeepsANewerChange() throws {
        try withRoot { _, shadow in
            let first = try shadow.setPassword(of: "admin", to: PasswordHash(hashing: "first one"))
            _ = try shadow.setPassword(of: "admin", to: PasswordHash(hashing: "second one"))
            let newer = try Data(contentsOf: URL(fileURLWithPath: shadow.path))
            #expect(throws: ShadowFileError.changedSince(user: "admin", path: shadow.path)) {
                try shadow.undo(first)
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: shadow.path)) == newer)
        }
    }

    @Test func anUnknownAccountIsNamedWithTheFileAndNothingIsWritten() throws {
        try withRoot(
            Self.original.replacingOccurrences(of: "admin:!:19500:0:99999:7:::\n", with: "")
        ) { root, shadow in
            let before = try Self.state(of: root)
            #expect(try shadow.passwordField(of: "admin") == nil)
            let error = #expect(throws: ShadowFileError.self) {
                try shadow.setPassword(of: "admin", to: PasswordHash(hashing: "correct horse"))
            }
            #expect(error == .noAccount(user: "admin", path: shadow.path))
            #expect(
                (error?.description ?? "no error")
                    == "no account admin in \(root)/etc/shadow: create it first (useradd admin)"
            )
            #expect(try Self.state(of: root) == before)
        }
    }

    @Test(arguments: [
        ("admin:!:19500:0:99999:7::", 4, "it has 8 fields, shadow(5) lines have 9"),
        ("admin", 4, "it has 1 fields, shadow(5) lines have 9"),
        ("admin:!:19500:0:99999:7::::", 4, "it has 10 fields, shadow(5) lines have 9"),
        ("admin:!:yesterday:0:99999:7:::", 4, "field 3 (date of last password change) is not"),
        (
            "admin:!:19500:0:99999:7:::\nadmin:*:1:0:99999:7:::", 5,
            "it is a second line for the account (the first is line 4)"
        ),
    ])
    func aMalformedLineIsRefusedAndNothingIsWritten(line: String, number: Int, reason: String)
        throws
    {
        let content = Self.original.replacingOccurrences(
            of: "admin:!:19500:0:99999:7:::", with: line)
        try withRoot(content) { root, shadow in
            let before = try Self.state(of: root)
            let error = #expect(throws: ShadowFileError.self) {
                try shadow.setPassword(of: "admin", to: PasswordHash(hashing: "correct horse"))
            }
            guard case .malformedLine(let user, let path, let reported, let why) = error else {
                Issue.record("\((error?.description ?? "no error"))")
                return
            }
            #expect(user == "admin" && path == shadow.path && reported == number)
            #expect(why.hasPrefix(reason), "\(why)")
            #expect((error?.description ?? "no error").contains("nothing was written"))
            #expect(throws: ShadowFileError.self) { try shadow.passwordField(of: "admin") }
            #expect(try Self.state(of: root) == before)
            // The others are still readable and changeable.
            #expect(try shadow.passwordField(of: "admins") == "!")
        }
    }

    @Test func aMissingFileIsAnError() throws {
        try withTemporaryDirectory { root in
            let shadow = ShadowFile(root: root)
            #expect(throws: ShadowFileError.missingFile(path: root + "/etc/shadow")) {
                try shadow.setPassword(of: "admin", to: PasswordHash(hashing: "correct horse"))
            }
            #expect(throws: ShadowFileError.missingFile(path: root + "/etc/shadow")) {
                try shadow.passwordField(of: "admin")
            }
            // Nothing was made on the way: no etc, no lock file.
            let made = try FileManager.default.contentsOfDirectory(atPath: root)
            #expect(made == [])
        }
    }

    @Test(arguments: ["", "ad:min", "admin\n", "admin\r"])
    func aNameShadowCannotHoldIsRefused(name: String) throws {
        try withRoot { root, shadow in
            let before = try Self.state(of: root)
            #expect(throws: ShadowFileError.invalidUserName(name)) {
                try shadow.setPassword(of: name, to: PasswordHash(hashing: "correct horse"))
            }
            #expect(try Self.state(of: root) == before)
        }
    }

    /// lckpwdf(3) takes a classic fcntl record lock; this process taking one stands for
    /// passwd or useradd holding it (it conflicts with ShadowFile's open file description
    /// lock even within one process: fcntl(2)).
    @Test func aHeldPasswordLockMakesTheChangeWaitThenGiveUp() throws {
        try withRoot { root, _ in
            let holder = try Self.lockLikeLckpwdf(root + "/etc/.pwd.lock")
            defer { close(holder) }
            let before = try Self.state(of: root)
            let impatient = ShadowFile(root: root, lockTimeout: .milliseconds(300))
            let error = #expect(throws: ShadowFileError.self) {
                try impatient.setPassword(of: "admin", to: PasswordHash(hashing: "correct horse"))
            }
            #expect(error == .lockTimeout(path: root + "/etc/.pwd.lock", seconds: 0.3))
            #expect((error?.description ?? "no error").contains("nothing was written"))
            #expect(try Self.state(of: root) == before)
        }
    }

    @Test func aReleasedPasswordLockLetsTheWaitingChangeThrough() throws {
        try withRoot { root, shadow in
            let holder = try Self.lockLikeLckpwdf(root + "/etc/.pwd.lock")
            let released = ReleaseFlag()
            let thread = Thread {
                Thread.sleep(forTimeInterval: 0.5)
                released.set()
                close(holder)
            }
            thread.start()
            let hash = try PasswordHash(hashing: "correct horse")
            _ = try shadow.setPassword(of: "admin", to: hash)
            // It could only have written after the holder let go.
            #expect(released.isSet)
            #expect(try shadow.passwordField(of: "admin") == hash.text)
        }
    }

    @Test func aCrashedWritersLeftoverIsRemovedAndTheFileIsWhole() throws {
        try withRoot { root, shadow in
            // What a writer killed between mkstemp and rename leaves: a partial temporary file.
            let leftover = root + "/etc/.shadow.tmp-AbC123"
            try Data("admin:$y$half".utf8).write(to: URL(fileURLWithPath: leftover))
            #expect(try shadow.passwordField(of: "admin") == "!")
            let hash = try PasswordHash(hashing: "correct horse")
            _ = try shadow.setPassword(of: "admin", to: hash)
            #expect(!FileManager.default.fileExists(atPath: leftover))
            #expect(
                try String(contentsOfFile: shadow.path, encoding: .utf8)
                    == Self.original.replacingOccurrences(
                        of: "admin:!:19500:", with: "admin:\(hash.text):20000:"))
        }
    }

    // MARK: Support

    /// Every file under root/etc with its bytes, mode and owner. The lock file's bytes are
    /// not read: closing any descriptor of it would drop this process's lckpwdf-style lock
    /// (fcntl(2): a process's record locks go with the first close of the file).
    static func state(of root: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root + "/etc").sorted().map {
            let path = root + "/etc/" + $0
            var status = stat()
            guard stat(path, &status) == 0 else { return "\($0): gone" }
            let bytes =
                $0 == ".pwd.lock" ? Data() : try Data(contentsOf: URL(fileURLWithPath: path))
            return "\($0) \(String(status.st_mode, radix: 8)) \(status.st_uid):\(status.st_gid) "
                + "ino \(status.st_ino) \(bytes.base64EncodedString())"
        }
    }

    /// What glibc's lckpwdf does: open (creating 0600) and F_SETLK a write lock on the whole
    /// file. Returns the descriptor; closing it releases the lock.
    static func lockLikeLckpwdf(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw AtomicFileError(call: "open", path: path, errno: errno) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        guard fcntl(descriptor, F_SETLK, &lock) == 0 else {
            close(descriptor)
            throw AtomicFileError(call: "fcntl(F_SETLK)", path: path, errno: errno)
        }
        return descriptor
    }

    /// crypt_r(3) of libxcrypt, as pam_unix calls it to check a login; nil when it refuses.
    static func crypt(_ password: String, setting: String) -> String? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        UnsafeMutableRawPointer(data).initializeMemory(
            as: UInt8.self, repeating: 0, count: MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, setting, data) else { return nil }
        let text = String(cString: result)
        return text.hasPrefix("*") ? nil : text
    }
}

/// Set by the lock holder's thread just before it lets go.
private final class ReleaseFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
