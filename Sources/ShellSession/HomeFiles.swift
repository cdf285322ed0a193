import Appliance
import Glibc

/// Files in the user's home directory, by name only (`.fileName` allows no `/`): where
/// `copy running-config FILE` saves and `copy FILE running-config` reads, and where scp puts
/// and takes them. Written atomically, 0600: a configuration names the appliance's addresses.
public struct HomeFiles: Sendable {
    public var directory: String

    public init(directory: String) { self.directory = directory }

    /// The home directory of the user vtepsh runs as (the user database's, not `$HOME`, which
    /// the client could set).
    public static func currentUser() -> HomeFiles {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var storage = [CChar](repeating: 0, count: 4096)
        if getpwuid_r(getuid(), &entry, &storage, storage.count, &found) == 0, found != nil,
            let home = entry.pw_dir
        {
            return HomeFiles(directory: String(cString: home))
        }
        return HomeFiles(directory: "/nonexistent")
    }

    public func path(_ name: String) -> String { directory + "/" + name }

    public func write(_ name: String, _ text: String) -> Result<String, ShellFailure> {
        do {
            try AtomicFile.write(Array(text.utf8), to: path(name), mode: 0o600)
            return .success(path(name))
        } catch {
            return .failure(ShellFailure("cannot save \(path(name)): \(error)"))
        }
    }

    public func read(_ name: String) -> Result<String, ShellFailure> {
        do {
            guard let bytes = try AtomicFile.read(path(name)) else {
                return .failure(ShellFailure("\(path(name)) does not exist"))
            }
            return .success(String(decoding: bytes, as: UTF8.self))
        } catch {
            return .failure(ShellFailure("cannot read \(path(name)): \(error)"))
        }
    }
}
