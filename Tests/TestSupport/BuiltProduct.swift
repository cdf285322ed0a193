import Foundation

/// A program of this package built beside the test bundle (`swift build --build-tests`
/// builds every product): `.build/debug/vtepsh` for the tests in `.build/debug/`. The
/// environment variable named after it in capitals (`VTEPSH=/path`) chooses another build.
/// Throws when there is none, so a test that needs it fails, naming the fix, instead of
/// skipping.
public func builtProduct(_ name: String) throws -> URL {
    if let path = ProcessInfo.processInfo.environment[name.uppercased()] {
        return URL(fileURLWithPath: path)
    }
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent()
    for directory in [beside, beside.deletingLastPathComponent()] {
        let candidate = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    throw BuiltProductMissing(
        description: "no \(name) binary beside \(beside.path); run `swift build --product \(name)`")
}

public struct BuiltProductMissing: Error, CustomStringConvertible {
    public var description: String
}
