import Datapath
import Foundation
import Synchronization

/// Why a namespace test could not run. Tests throw it (and so fail) rather than skip: a
/// data-plane test that silently did not run is worse than one that fails.
struct LabError: Error, CustomStringConvertible {
    let description: String
}

private let labSequence = Atomic<Int>(0)

/// Network namespaces and veth pairs made by one test, all named with one unique prefix
/// (`vgdp<pid><n>`, short enough for 15-byte interface names) and all deleted at the end.
final class NetworkLab: @unchecked Sendable {
    let prefix: String
    private var namespaces: [String] = []

    private init() {
        let n = labSequence.add(1, ordering: .relaxed).newValue
        prefix = "vgdp\(getpid())\(n)"
    }

    /// Runs `body` with a fresh lab and deletes everything it made, even when `body` throws.
    static func run<T>(_ body: (NetworkLab) throws -> T) throws -> T {
        guard getuid() == 0 else {
            throw LabError(description: "namespace tests need root (uid is \(getuid()))")
        }
        guard ipCommand != nil else {
            throw LabError(description: "namespace tests need iproute2's `ip`, not found")
        }
        let lab = NetworkLab()
        defer { lab.destroy() }
        return try body(lab)
    }

    static let ipCommand: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Adds namespace `prefix + suffix` with loopback up. `ipv6: false` turns IPv6 off
    /// before any interface exists, so no router/neighbour solicitation or MLD report
    /// shows up among the frames a test counts.
    func namespace(_ suffix: String, ipv6: Bool = true) throws -> String {
        let name = prefix + suffix
        try ip("netns", "add", name)
        namespaces.append(name)
        if !ipv6 {
            for key in ["all", "default"] {
                try ip(
                    "netns", "exec", name, "sysctl", "-qw",
                    "net.ipv6.conf.\(key).disable_ipv6=1")
            }
        }
        try ip("-n", name, "link", "set", "lo", "up")
        return name
    }

    /// A veth pair `prefix + a` in `namespaceA`, `prefix + b` in `namespaceB`, both up.
    func veth(
        _ a: String, in namespaceA: String, _ b: String, in namespaceB: String, mtu: Int? = nil
    ) throws -> (String, String) {
        let nameA = prefix + a
        let nameB = prefix + b
        try ip(
            "link", "add", nameA, "netns", namespaceA, "type", "veth", "peer", "name", nameB,
            "netns", namespaceB)
        for (namespace, name) in [(namespaceA, nameA), (namespaceB, nameB)] {
            if let mtu { try ip("-n", namespace, "link", "set", name, "mtu", "\(mtu)") }
            try ip("-n", namespace, "link", "set", name, "up")
        }
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
        let message = String(
            decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw LabError(
                description: "ip \(arguments.joined(separator: " ")) failed: \(message)")
        }
    }

    private func destroy() {
        for name in namespaces.reversed() {
            try? ip("netns", "del", name)
        }
        namespaces.removeAll()
    }

    /// Runs `body` on a new thread that has entered namespace `name`, and waits for it.
    /// Only that thread changes namespace; sockets it creates stay in the namespace
    /// wherever they are used afterwards.
    func inNamespace<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T)
        throws -> T
    {
        let outcome = Outcome<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            outcome.result = Result {
                try NetworkNamespace.enterOnCurrentThread(path: "/run/netns/\(name)")
                return try body()
            }
            done.signal()
        }
        thread.start()
        done.wait()
        return try outcome.result!.get()
    }
}

private final class Outcome<T: Sendable>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// Moves a non-Sendable socket between the thread that made it in a namespace and the
/// test's thread; the test never uses it from two threads at once.
struct Handed<Value>: @unchecked Sendable {
    let value: Value
}

/// Waits up to `milliseconds` for `descriptor` to become readable.
func waitReadable(_ descriptor: Int32, milliseconds: Int32) {
    var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
    _ = poll(&entry, 1, milliseconds)
}
