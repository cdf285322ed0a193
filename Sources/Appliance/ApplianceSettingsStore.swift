/// Why the saved appliance settings could not be read or written.
public enum ApplianceSettingsStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file exists but is not a complete, valid settings document. It is left exactly as
    /// found, for the operator to inspect or restore; nothing overwrites it silently.
    case corrupt(path: String?, reason: String)
    case file(AtomicFileError)

    public var description: String {
        switch self {
        case .corrupt(let path, let reason):
            let what = path.map { "the saved appliance settings \($0)" } ?? "the appliance settings"
            return "\(what) cannot be read: \(reason) (the file is left untouched; restore it"
                + " from a backup, or move it away to start from defaults)"
        case .file(let error):
            return "\(error)"
        }
    }
}

/// The appliance settings file under vtepd's state root (`STATE/appliance-settings.json`),
/// replaced atomically (`AtomicFile`) on every save.
///
/// One writer at a time: vtepd serialises changes; a second process writing the same file
/// could remove the first one's temporary file and make its save fail (never corrupt it).
public struct ApplianceSettingsStore: Sendable {
    public static let fileName = "appliance-settings.json"
    public let path: String

    public init(stateDirectory: String) {
        path =
            stateDirectory.hasSuffix("/")
            ? stateDirectory + Self.fileName : stateDirectory + "/" + Self.fileName
    }

    /// The saved settings, or nil if none were ever saved.
    public func load() throws(ApplianceSettingsStoreError) -> ApplianceSettings? {
        let bytes: [UInt8]?
        do {
            bytes = try AtomicFile.read(path)
        } catch {
            throw .file(error)
        }
        guard let bytes else { return nil }
        do {
            return try ApplianceSettings(json: bytes)
        } catch .corrupt(_, let reason) {
            throw .corrupt(path: path, reason: reason)
        } catch {
            throw error
        }
    }

    /// Replaces the saved settings with `settings`, durably.
    public func save(_ settings: ApplianceSettings) throws(ApplianceSettingsStoreError) {
        do {
            try AtomicFile.makeDirectories(AtomicFile.split(path).directory)
            try AtomicFile.write(settings.json(), to: path, mode: 0o600)
        } catch {
            throw .file(error)
        }
    }
}
