import Datapath
import Foundation
import Synchronization

// The namespace lab of Tests/DatapathTests/NetworkLab.swift, cut to what these tests need,
// with its own name prefix (`vgnl`) so the two test targets, which run in one process,
// never make the same namespace. (A shared test-support target would remove the copy.)

struct LabError: Error, CustomStringConvertible {
    let description: String
}

private let labSequence = Atomic<Int>(0)

/// Network namespaces and veth pairs made by one test, named `vgnl<pid><n>…` and all
/// deleted at the end, even when the test fails.
final class NamespaceLab: @unchecked Sendable {
    let prefix: String
    private var namespaces: [String] = []

    private init() {
        prefix = "vgnl\(getpid())\(labSequence.add(1, ordering: .relaxed).newValue)"
    }

    static func run<T>(_ body: (NamespaceLab) throws -> T) throws -> T {
        guard getuid() == 0 else {
            throw LabError(description: "namespace tests need root (uid is \(getuid()))")
        }
        guard ipCommand != nil else {
            throw LabError(description: "namespace tests need iproute2's `ip`, not found")
        }
        let lab = NamespaceLab()
        defer {
            for name in lab.namespaces.reversed() { try? lab.ip("netns", "del", name) }
        }
        return try body(lab)
    }

    static let ipCommand: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    func namespace(_ suffix: String) throws -> String {
        let name = prefix + suffix
        try ip("netns", "add", name)
        namespaces.append(name)
        try ip("-n", name, "link", "set", "lo", "up")
        return name
    }

    /// A veth pair `prefix + a` in `namespaceA`, `prefix + b` in `namespaceB`, both up.
    func veth(_ a: String, in namespaceA: String, _ b: String, in namespaceB: String) throws
        -> (String, String)
    {
        let (nameA, nameB) = (prefix + a, prefix + b)
        try ip(
            "link", "add", nameA, "netns", namespaceA, "type", "veth", "peer", "name", nameB,
            "netns", namespaceB)
        try ip("-n", namespaceA, "link", "set", nameA, "up")
        try ip("-n", namespaceB, "link", "set", nameB, "up")
        return (nameA, nameB)
    }

    func ip(_ arguments: String...) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.ipCommand!)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(
                decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw LabError(
                description: "ip \(arguments.joined(separator: " ")) failed: \(message)")
        }
    }

    /// Runs `body` on a new thread that has entered namespace `name`, and waits for it.
    func inNamespace<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T)
        throws -> T
    {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let result = Result {
                try NetworkNamespace.enterOnCurrentThread(path: "/run/netns/\(name)")
                return try body()
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        thread.start()
        done.wait()
        return try outcome.withLock { $0! }.get()
    }
}
