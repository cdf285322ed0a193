import Appliance
import ControlAPI
import Foundation
import HostConfiguration
import ProcessSpawning
import Testing

/// A fresh directory under /tmp, removed after `body`.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/vtep-appliance-test-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else {
        throw AtomicFileError(call: "mkdtemp", path: "/tmp", errno: errno)
    }
    let directory = String(cString: made)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try body(directory)
}

@Suite("Appliance settings: atomic persistence")
struct ApplianceSettingsStoreTests {
    @Test func writeReadAndReplace() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/file"
            #expect(try AtomicFile.read(path) == nil)
            try AtomicFile.write(Array("one\n".utf8), to: path, mode: 0o600)
            #expect(try AtomicFile.read(path) == Array("one\n".utf8))
            var status = stat()
            #expect(stat(path, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600)
            try AtomicFile.write(Array("two\n".utf8), to: path)
            #expect(try AtomicFile.read(path) == Array("two\n".utf8))
            // No temporary file is left behind.
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["file"])
            try AtomicFile.remove(path)
            try AtomicFile.remove(path)
            #expect(try AtomicFile.read(path) == nil)
        }
    }

    @Test func writeIntoAMissingDirectoryNamesTheCallAndPath() throws {
        try withTemporaryDirectory { directory in
            do {
                try AtomicFile.write([1], to: directory + "/missing/file")
                Issue.record("write succeeded")
            } catch let error as AtomicFileError {
                #expect(error.call == "mkstemp")
                #expect(error.errno == ENOENT)
                #expect(error.description.contains("\(directory)/missing/file"))
            }
        }
    }

    @Test func savedSettingsLoadBackExactly() throws {
        try withTemporaryDirectory { directory in
            let store = ApplianceSettingsStore(stateDirectory: directory + "/state")
            #expect(try store.load() == nil)
            let settings = try ApplianceSettingsJSONTests.sample()
            try store.save(settings)
            #expect(try store.load() == settings)
            #expect(try AtomicFile.read(store.path) == settings.json())
        }
    }

    /// A crash between creating the temporary file and the rename leaves the temporary file;
    /// the saved file is still the old one, and the next save clears the leftover.
    @Test func leftoverTemporaryFileFromACrashedSave() throws {
        try withTemporaryDirectory { directory in
            let store = ApplianceSettingsStore(stateDirectory: directory)
            let old = ApplianceSettings(hostname: try Hostname("old"))
            try store.save(old)
            let leftover = directory + "/.\(ApplianceSettingsStore.fileName).tmp-abc123"
            try Array(ApplianceSettings(hostname: try Hostname("new")).json().prefix(20))
                .withUnsafeBytes {
                    try Data($0).write(to: URL(fileURLWithPath: leftover))
                }
            #expect(try store.load() == old)
            #expect(
                AtomicFile.leftovers(of: ApplianceSettingsStore.fileName, in: directory) == [
                    leftover
                ])
            let new = ApplianceSettings(hostname: try Hostname("new"))
            try store.save(new)
            #expect(try store.load() == new)
            #expect(
                AtomicFile.leftovers(of: ApplianceSettingsStore.fileName, in: directory).isEmpty)
        }
    }

    /// A corrupt or truncated file is reported with its path and left exactly as found.
    @Test(arguments: [0, 1, 40, 200])
    func corruptFileIsReportedAndNotReplaced(_ keptBytes: Int) throws {
        try withTemporaryDirectory { directory in
            let store = ApplianceSettingsStore(stateDirectory: directory)
            let truncated = Array(try ApplianceSettingsJSONTests.sample().json().prefix(keptBytes))
            try AtomicFile.write(truncated, to: store.path)
            do {
                _ = try store.load()
                Issue.record("a truncated file (\(keptBytes) bytes) loaded")
            } catch let error as ApplianceSettingsStoreError {
                guard case .corrupt(let path, _) = error else {
                    Issue.record("\(error)")
                    return
                }
                #expect(path == store.path)
                #expect(error.description.contains("left untouched"))
            }
            #expect(try AtomicFile.read(store.path) == truncated)
        }
    }
}

@Suite("Appliance settings: password hashes (libxcrypt)")
struct PasswordHashTests {
    @Test func hashAndVerify() throws {
        let hash = try PasswordHash(hashing: "correct horse battery")
        #expect(hash.text.hasPrefix("$y$") || hash.text.hasPrefix("$6$"))
        print("libxcrypt hashed with \(hash.scheme): \(hash.text.prefix(7))…")
        #expect(hash.verify("correct horse battery"))
        #expect(!hash.verify("correct horse batterz"))
        #expect(!hash.verify(""))
        // A fresh salt each time.
        let again = try PasswordHash(hashing: "correct horse battery")
        #expect(again.text != hash.text)
        #expect(again.verify("correct horse battery"))
        // What is stored can be read back and still verifies.
        #expect(try PasswordHash(hash.text).verify("correct horse battery"))
        #expect(!hash.description.contains(hash.text))
    }

    /// A sha512-crypt hash made by another tool (`openssl passwd -6 -salt saltsalt secret123`)
    /// verifies, so hashes carried over from /etc/shadow keep working.
    @Test func verifiesAnExternalSHA512CryptHash() throws {
        let hash = try PasswordHash(
            "$6$saltsalt$4wxWeHqpAHNNJcQMSu6jvr3dQTQoGoqMQhPAP0o5Ygzna6vr4y0u6.EZzboAAqg6dXU4q/OfcYqdrvZixR76r0"
        )
        #expect(hash.scheme == "sha512-crypt")
        #expect(hash.verify("secret123"))
        #expect(!hash.verify("secret124"))
    }

    @Test func refusals() {
        #expect(throws: PasswordError.tooShort(minimum: 8)) { try PasswordHash(hashing: "short") }
        #expect(throws: PasswordError.forbiddenCharacter) {
            try PasswordHash(hashing: "long enough\npassword")
        }
        #expect(throws: PasswordError.tooLong(maximum: 512)) {
            try PasswordHash(hashing: String(repeating: "x", count: 513))
        }
        for stored in ["plain", "$1$md5$xxxx", "$6$a:b$c", "$6$a\n", "$y$"] where stored != "$y$" {
            #expect(throws: ApplianceSettingsError.self) { try PasswordHash(stored) }
        }
    }
}

@Suite("Appliance settings: the audit log")
struct AuditLogTests {
    @Test func entriesAreOneLineEachWithUserTimeAndResult() throws {
        try withTemporaryDirectory { directory in
            let log = AuditLog(
                path: directory + "/audit.log", now: { Date(timeIntervalSince1970: 1_795_456_082) })
            try log.append(user: "admin", uid: 1000, command: "set hostname gw1", result: .accepted)
            try log.append(
                user: "admin", uid: 1000, command: "set hostname \"x\"\nFORGED user=root",
                result: .refused("\"x\" is not a valid hostname"))
            try log.append(
                credentials: PeerCredentials(pid: 1, uid: 0, gid: 0),
                command: "clear network routes\u{1b}[2J",
                result: .accepted)
            let entries = try log.lastEntries(10)
            #expect(entries.count == 3)
            #expect(
                entries[0]
                    == "2026-11-23T17:48:02Z user=admin uid=1000 result=\"ok\" command=\"set hostname gw1\""
            )
            #expect(
                entries[1]
                    == "2026-11-23T17:48:02Z user=admin uid=1000 result=\"refused: \\\"x\\\" is not a valid hostname\""
                    + " command=\"set hostname \\\"x\\\"\\nFORGED user=root\"")
            #expect(
                entries[2].hasSuffix(
                    "user=root uid=0 result=\"ok\" command=\"clear network routes\\u{1b}[2J\""))
            #expect(try log.lastEntries(1) == [entries[2]])
            var status = stat()
            #expect(stat(log.path, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o640)
        }
    }
}
