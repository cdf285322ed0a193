import Datapath
import Foundation
import Synchronization
import TestSupport

// Test support shared by the Datapath, Netlink and Appliance tests (not shipped): network
// namespaces and veth pairs a test makes and always removes. GatewayTests' `Lab` adds
// processes and captures on top of the same idea.

/// Why a namespace test could not run. Tests throw it (and so fail) rather than skip: a
/// data-plane test that silently did not run is worse than one that fails.
public struct LabError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

private let labSequence = Atomic<Int>(0)

/// unshare(2) is not exported by Swift's Glibc module; CLONE_NEWUTS is <sched.h>'s.
@_silgen_name("unshare") private func systemUnshare(_ flags: Int32) -> Int32
private let cloneNewUTS: Int32 = 0x0400_0000

/// Network namespaces and veth pairs made by one test, all named with one unique prefix
/// (`<tag><pid><n>`, short enough for 15-byte interface names) and all deleted at the end,
/// even when the test fails. Test targets run in one process, so each passes its own tag.
public final class NamespaceLab: @unchecked Sendable {
    public let prefix: String
    private let privateHostnames: Bool
    private var namespaces: [String] = []

    private init(tag: String, privateHostnames: Bool) {
        prefix = "\(tag)\(getpid())\(labSequence.add(1, ordering: .relaxed).newValue)"
        self.privateHostnames = privateHostnames
    }

    /// Runs `body` with a fresh lab and deletes everything it made, even when `body` throws.
    /// - Parameter privateHostnames: every `inNamespace` thread also gets a UTS namespace of
    ///   its own, so sethostname(2) there leaves this machine's name alone.
    public static func run<T>(
        tag: String, privateHostnames: Bool = false, _ body: (NamespaceLab) throws -> T
    ) throws -> T {
        guard getuid() == 0 else {
            throw LabError(description: "namespace tests need root (uid is \(getuid()))")
        }
        guard ipCommand != nil else {
            throw LabError(description: "namespace tests need iproute2's `ip`, not found")
        }
        let lab = NamespaceLab(tag: tag, privateHostnames: privateHostnames)
        defer { lab.destroy() }
        return try body(lab)
    }

    /// `run` on a thread of its own (`LabThreadExecutor`), for tests: a blocking lab body on
    /// the cooperative pool would starve the async tests running beside it.
    public static func runOnOwnThread<T>(
        tag: String, privateHostnames: Bool = false, _ body: (NamespaceLab) throws -> T
    ) async throws -> T {
        let executor = LabThreadExecutor()
        defer { executor.shutdown() }
        return try await withTaskExecutorPreference(executor) {
            try run(tag: tag, privateHostnames: privateHostnames, body)
        }
    }

    public static let ipCommand: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Adds namespace `prefix + suffix` with loopback up. `ipv6: false` turns IPv6 off
    /// before any interface exists, so no router/neighbour solicitation or MLD report
    /// shows up among the frames a test counts.
    public func namespace(_ suffix: String, ipv6: Bool = true) throws -> String {
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

    /// A veth pair `prefix + a` in `namespaceA`, `prefix + b` in `namespaceB`, up unless
    /// `up` is false.
    public func veth(
        _ a: String, in namespaceA: String, _ b: String, in namespaceB: String, mtu: Int? = nil,
        up: Bool = true
    ) throws -> (String, String) {
        let nameA = prefix + a
        let nameB = prefix + b
        try ip(
            "link", "add", nameA, "netns", namespaceA, "type", "veth", "peer", "name", nameB,
            "netns", namespaceB)
        for (namespace, name) in [(namespaceA, nameA), (namespaceB, nameB)] {
            if let mtu { try ip("-n", namespace, "link", "set", name, "mtu", "\(mtu)") }
            if up { try ip("-n", namespace, "link", "set", name, "up") }
        }
        if up {
            for (namespace, name) in [(namespaceA, nameA), (namespaceB, nameB)] {
                try waitOperational(name, in: namespace)
            }
        }
        return (nameA, nameB)
    }

    /// Waits until the kernel reports `name` operationally up. Linkwatch activates a link's
    /// queueing a moment after `ip link set up` (later on a loaded machine), and a frame
    /// sent before that is silently dropped.
    public func waitOperational(_ name: String, in namespace: String) throws {
        var line = ""
        try waitUntil("\(name) in \(namespace) to be up", lastSeen: line) {
            line = try ip("-n", namespace, "-o", "link", "show", "dev", name)
            return line.contains(" state UP ")
        }
    }

    /// Runs `ip ARGUMENTS…` and returns what it printed; throws with its error output.
    @discardableResult
    public func ip(_ arguments: String...) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.ipCommand!)
        process.arguments = arguments
        let errors = Pipe()
        let output = Pipe()
        process.standardError = errors
        process.standardOutput = output
        try process.run()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(
                decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw LabError(
                description: "ip \(arguments.joined(separator: " ")) failed: \(message)")
        }
        return String(decoding: printed, as: UTF8.self)
    }

    private func destroy() {
        for name in namespaces.reversed() { _ = try? ip("netns", "del", name) }
        namespaces.removeAll()
    }

    /// Runs `body` on a new thread that has entered namespace `name`, and waits for it.
    /// Only that thread changes namespace; sockets it creates stay in the namespace
    /// wherever they are used afterwards.
    public func inNamespace<T: Sendable>(
        _ name: String, _ body: @escaping @Sendable () throws -> T
    ) throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let privateHostname = privateHostnames
        let thread = Thread {
            let result = Result {
                try NetworkNamespace.enterOnCurrentThread(path: "/run/netns/\(name)")
                if privateHostname {
                    guard systemUnshare(cloneNewUTS) == 0 else {
                        throw LabError(
                            description:
                                "unshare(CLONE_NEWUTS) failed: \(String(cString: strerror(errno)))"
                        )
                    }
                }
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

/// Moves a non-Sendable socket between the thread that made it in a namespace and the
/// test's thread; the test never uses it from two threads at once.
public struct Handed<Value>: @unchecked Sendable {
    public let value: Value
    public init(value: Value) { self.value = value }
}

/// Waits up to `milliseconds` for `descriptor` to become readable.
public func waitReadable(_ descriptor: Int32, milliseconds: Int32) {
    var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
    _ = poll(&entry, 1, milliseconds)
}

/// A task executor with one thread of its own, for lab bodies that block (namespaces, sockets,
/// waits of many seconds). Run on it through `withTaskExecutorPreference`, a test's body stays
/// in its task, so Swift Testing credits its `#expect`s to it (on a bare Thread it would not),
/// and it holds no thread of the cooperative pool, which async tests need (two threads on a
/// two-core machine).
public final class LabThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopped = false

    public init() {
        let thread = Thread { [self] in loop() }
        thread.name = "lab"
        thread.stackSize = 8 << 20
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.withLock {
            jobs.append(job)
            condition.signal()
        }
    }

    /// Lets the thread end once the jobs already queued have run.
    public func shutdown() {
        condition.withLock {
            stopped = true
            condition.signal()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Writes an executable script at `path` through a child `/bin/sh`, never through a descriptor
/// of this process: a test process forks children from many threads at once, and one forked
/// while this process held the file open for writing would keep that descriptor, so the
/// script's exec would fail with ETXTBSY (execve(2)) for as long as that child lives.
public func writeExecutable(_ text: String, to path: String) throws {
    let writer = Process()
    writer.executableURL = URL(fileURLWithPath: "/bin/sh")
    writer.arguments = ["-c", "printf '%s' \"$1\" > \"$2\" && chmod 0700 \"$2\"", "sh", text, path]
    try writer.run()
    writer.waitUntilExit()
    guard writer.terminationStatus == 0 else {
        throw LabError(description: "could not write the script \(path)")
    }
}
