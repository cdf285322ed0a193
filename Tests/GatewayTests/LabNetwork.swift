import Appliance
import ControlAPI
import Foundation
import HostConfiguration
import NamespaceLab
import ProcessSpawning
import Synchronization
import TestSupport

/// Why a lab step failed. Lab tests throw it (and so fail) rather than skip: an integration
/// test that silently did not run is worse than one that fails.
struct LabError: Error, CustomStringConvertible {
    let description: String
}

/// What a finished command printed and how it ended.
struct LabCommandResult: Sendable {
    let arguments: [String]
    let status: Int32
    let output: String
    let errors: String
}

private let labSequence = Atomic<Int>(0)

/// A network lab: namespaces, veths, captures and processes made by one test, all named
/// with one unique prefix and all removed at the end, also when the test fails.
///
/// The prefix is `vl` + the test process's PID in base 36 + a per-process sequence number in
/// base 36 (at most 9 characters), so `prefix + "u1"` still fits the 15 bytes of an
/// interface name and two test processes, or two tests of one process, never collide.
final class Lab: @unchecked Sendable {
    let prefix: String
    /// Logs, pcaps and transfer files of this lab; deleted when the lab ends cleanly, kept
    /// (and named in the failure message) when it fails.
    let directory: URL
    private let lock = NSLock()
    private var namespaces: [String] = []
    /// Namespaces the lab's processes make and should remove themselves (`expectNamespace`).
    private var madeByProcesses: [String] = []
    private var processes: [LabProcess] = []
    private var fileSequence = 0

    private init() throws {
        let n = labSequence.add(1, ordering: .relaxed).newValue
        prefix = "vl" + String(getpid(), radix: 36) + String(n, radix: 36)
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(prefix)
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Runs `body` with a fresh lab. Whatever happens in `body`, every process the lab
    /// started is stopped by PID and every namespace it made is deleted. When `body` throws,
    /// the tail of each process's log is printed so the failure can be read from the test
    /// output alone.
    static func run<T>(_ body: (Lab) throws -> T) throws -> T {
        guard getuid() == 0 else {
            throw LabError(
                description: "lab tests need root for network namespaces (uid \(getuid()))")
        }
        let missing = [
            "ip", "bridge", "ethtool", "ping", "tcpdump", "tshark", "nc", "ss", "mausezahn",
        ]
        .filter { Lab.executable($0) == nil }
        guard missing.isEmpty else {
            throw LabError(
                description: "lab tests need \(missing.joined(separator: ", ")) on PATH; "
                    + "run appliance/install-deps.sh")
        }
        let lab = try Lab()
        do {
            let result = try body(lab)
            lab.destroy(keepingFiles: false)
            return result
        } catch {
            print("lab \(lab.prefix) failed: \(error)")
            lab.printProcessLogs()
            lab.destroy(keepingFiles: true)
            print("lab \(lab.prefix): logs and captures kept in \(lab.directory.path)")
            throw error
        }
    }

    /// `run(_:)` on a thread of its own. A lab test blocks for tens of seconds (processes,
    /// captures, sleeps); on Swift's cooperative pool (one thread per core, two here) that would
    /// starve every async test running beside it, which then misses its own deadlines.
    ///
    /// The body runs in the calling test's own task, only on another thread (a task executor
    /// preference), so `#expect` inside it is recorded against that test: from a bare Thread,
    /// Swift Testing cannot tell which test an issue belongs to and reports the test passed.
    static func runOnOwnThread<T: Sendable>(_ body: @escaping @Sendable (Lab) throws -> T)
        async throws -> T
    {
        let executor = LabThreadExecutor()
        defer { executor.shutdown() }
        return try await withTaskExecutorPreference(executor) { try run(body) }
    }

    // MARK: Namespaces and links

    /// Adds namespace `prefix + suffix` with loopback up. `ipv6: false` turns IPv6 off before
    /// any interface exists, so no router solicitation, MLD report or DAD probe shows up
    /// among the frames a test counts.
    @discardableResult
    func namespace(_ suffix: String, ipv6: Bool = true) throws -> String {
        let name = prefix + suffix
        try execute(["ip", "netns", "add", name])
        lock.withLock { namespaces.append(name) }
        if !ipv6 {
            for key in ["all", "default"] {
                try execute(["sysctl", "-qw", "net.ipv6.conf.\(key).disable_ipv6=1"], in: name)
            }
        }
        try execute(["ip", "link", "set", "lo", "up"], in: name)
        return name
    }

    /// Notes that a process of the lab makes namespace `name` (it must begin with the lab's
    /// prefix): one it leaves behind, because the test failed before it could clean up, is
    /// deleted at the end.
    func expectNamespace(_ name: String) {
        precondition(name.hasPrefix(prefix), "\(name) is not one of lab \(prefix)'s names")
        lock.withLock { madeByProcesses.append(name) }
    }

    /// A veth pair: `prefix + a` in `namespaceA`, `prefix + b` in `namespaceB`, both up
    /// unless `up` is false.
    @discardableResult
    func veth(
        _ a: String, in namespaceA: String, _ b: String, in namespaceB: String, mtu: Int? = nil,
        up: Bool = true
    ) throws -> (String, String) {
        let nameA = prefix + a
        let nameB = prefix + b
        guard nameA.utf8.count <= 15, nameB.utf8.count <= 15 else {
            throw LabError(description: "interface names \(nameA), \(nameB) exceed 15 bytes")
        }
        try execute([
            "ip", "link", "add", nameA, "netns", namespaceA, "type", "veth", "peer", "name", nameB,
            "netns", namespaceB,
        ])
        for (namespace, name) in [(namespaceA, nameA), (namespaceB, nameB)] {
            if let mtu { try execute(["ip", "link", "set", name, "mtu", "\(mtu)"], in: namespace) }
            if up { try execute(["ip", "link", "set", name, "up"], in: namespace) }
        }
        return (nameA, nameB)
    }

    /// Turns off transmit checksum offload, TSO, GSO and GRO on `interface`, so what crosses
    /// it are plain frames with real checksums, as a NIC without offloads would carry them.
    /// Only for labs that stand for such NICs (`LabOffloads.off`): labs keep offloads on.
    func plainFrames(_ interface: String, in namespace: String) throws {
        try execute(
            ["ethtool", "-K", interface, "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
            in: namespace)
    }

    /// A counter of `/sys/class/net/INTERFACE/statistics`, e.g. `rx_packets`.
    func statistic(_ name: String, of interface: String, in namespace: String) throws -> Int {
        let text = try execute(
            ["cat", "/sys/class/net/\(interface)/statistics/\(name)"], in: namespace
        ).output
        guard let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw LabError(description: "\(name) of \(interface) in \(namespace) is '\(text)'")
        }
        return value
    }

    // MARK: Commands

    /// A new file name in the lab's directory.
    func file(_ name: String) -> URL {
        let n = lock.withLock {
            fileSequence += 1
            return fileSequence
        }
        return directory.appendingPathComponent("\(n)-\(name)")
    }

    /// Runs `arguments` (an argument vector, never a shell string) in `namespace` (or the
    /// test's own namespace when nil) and waits for it; throws when it exits non-zero or
    /// outlives `timeout`, with the command and what it printed on standard error.
    @discardableResult
    func execute(
        _ arguments: [String], in namespace: String? = nil, input: URL? = nil,
        timeout: Duration = .seconds(60)
    ) throws -> LabCommandResult {
        let result = try attempt(arguments, in: namespace, input: input, timeout: timeout)
        guard result.status == 0 else {
            throw LabError(
                description: "`\(arguments.joined(separator: " "))`"
                    + (namespace.map { " in \($0)" } ?? "")
                    + " exited with \(result.status): \(result.errors)\(result.output)")
        }
        return result
    }

    /// Like `execute`, but a non-zero exit status is returned, not thrown.
    func attempt(
        _ arguments: [String], in namespace: String? = nil, input: URL? = nil,
        timeout: Duration = .seconds(60)
    ) throws -> LabCommandResult {
        let outputFile = file("out")
        let errorFile = file("err")
        defer {
            try? FileManager.default.removeItem(at: outputFile)
            try? FileManager.default.removeItem(at: errorFile)
        }
        let process = LabProcess(
            name: arguments.first ?? "",
            pid: try spawn(
                arguments, in: namespace, input: input, output: outputFile, errors: errorFile),
            log: errorFile)
        guard process.waitForExit(timeout: timeout) else {
            process.stop(signal: SIGKILL)
            throw LabError(
                description: "`\(arguments.joined(separator: " "))` did not finish in \(timeout)")
        }
        return LabCommandResult(
            arguments: arguments, status: process.status ?? -1,
            output: (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "",
            errors: (try? String(contentsOf: errorFile, encoding: .utf8)) ?? "")
    }

    /// Starts `arguments` in `namespace` through `ip netns exec`, which execs the command after
    /// setns(2): the returned PID is the command's own. posix_spawn, not Foundation's Process:
    /// the test runner's threads block nearly every signal and a child inherits that mask, so
    /// SIGTERM and SIGINT would never reach it; here the child starts with an empty mask and
    /// default handlers.
    func spawn(
        _ arguments: [String], in namespace: String?, input: URL?, output: URL, errors: URL
    ) throws -> pid_t {
        guard let program = arguments.first else {
            throw LabError(description: "empty command")
        }
        let vector = namespace.map { ["ip", "netns", "exec", $0] + arguments } ?? arguments
        guard let path = Lab.executable(vector[0]) else {
            throw LabError(description: "\(program) is not installed (not found on PATH)")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, input?.path ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(
            &actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if errors == output {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(
                &actions, 2, errors.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        // Nothing else of the test runner's: its sockets are not all close-on-exec (SwiftNIO's
        // listeners are not), and a child holding a listener keeps its port accepting after
        // the test that opened it stopped it (MetricsEndpointTests' wait for a closed port).
        HostCommand.closeDescriptorsFrom3(&actions)
        var pid: pid_t = 0
        let result = HostCommand.spawn(
            &pid, path, argv: [path] + vector.dropFirst(), actions: &actions)
        guard result == 0 else {
            throw LabError(
                description: "cannot start \(path): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// `name` resolved on the PATH root has, or nil.
    static func executable(_ name: String) -> String? {
        if name.hasPrefix("/") {
            return FileManager.default.isExecutableFile(atPath: name) ? name : nil
        }
        let directories =
            ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(
                String.init)
        return directories.map { "\($0)/\(name)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    // MARK: Processes

    /// Starts `arguments` in `namespace` in the background; its standard output and error go
    /// to a log file, `log` if given (truncated, same inode), or standard output alone to
    /// `output`. The lab stops it by PID at the
    /// end if the test did not.
    func start(
        _ name: String, _ arguments: [String], in namespace: String, output: URL? = nil,
        log: URL? = nil
    ) throws -> LabProcess {
        let log = log ?? file("\(name).log")
        let pid = try spawn(
            arguments, in: namespace, input: nil, output: output ?? log, errors: log)
        let started = LabProcess(name: name, pid: pid, log: log)
        lock.withLock { processes.append(started) }
        return started
    }

    func printProcessLogs() {
        for process in lock.withLock({ processes }) {
            print("--- \(process.name) (pid \(process.pid)), last lines of \(process.log.path):")
            print(process.tail())
        }
    }

    private func destroy(keepingFiles: Bool) {
        for process in lock.withLock({ processes }).reversed() {
            process.stop()
        }
        // What the lab's processes started and left behind in its namespaces (a vtepd ended
        // by a signal before it handles one leaves its ovsdb-server running): found by
        // namespace, stopped by PID, before the namespaces go.
        for name in lock.withLock({ namespaces + madeByProcesses }) {
            stopLeftovers(in: name)
        }
        for name in lock.withLock({ namespaces }).reversed() {
            if let result = try? attempt(["ip", "netns", "del", name]), result.status != 0 {
                print("lab \(prefix): could not delete namespace \(name): \(result.errors)")
            }
        }
        // Namespaces a process of the lab made (vtepd's routers), if it left them.
        for name in lock.withLock({ madeByProcesses })
        where FileManager.default.fileExists(atPath: "/run/netns/" + name) {
            print("lab \(prefix): namespace \(name) was left behind; deleting it")
            _ = try? attempt(["ip", "netns", "del", name])
        }
        lock.withLock {
            namespaces.removeAll()
            processes.removeAll()
        }
        if !keepingFiles { try? FileManager.default.removeItem(at: directory) }
    }

    /// Stops every process still in namespace `name` (SIGTERM, then SIGKILL after 2 s), saying
    /// which: a test's processes are stopped before this, so any found here was left behind.
    private func stopLeftovers(in name: String) {
        guard FileManager.default.fileExists(atPath: "/run/netns/" + name),
            let listed = try? attempt(["ip", "netns", "pids", name]), listed.status == 0
        else { return }
        let pids = listed.output.split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }
        for pid in pids {
            let command =
                (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            print(
                "lab \(prefix): \(command) (pid \(pid)) was left in namespace \(name); stopping it")
            kill(pid, SIGTERM)
        }
        let deadline = ContinuousClock.now + .seconds(2)
        while pids.contains(where: { kill($0, 0) == 0 }), ContinuousClock.now < deadline {
            usleep(20_000)
        }
        for pid in pids where kill(pid, 0) == 0 { kill(pid, SIGKILL) }
    }
}

/// A process a lab started (tcpdump, nc, vtepd, or a command it waits for), stopped by its
/// PID only. The PID stays ours until we reap it, so a signal can never hit a stranger.
final class LabProcess: @unchecked Sendable {
    let name: String
    let pid: pid_t
    let log: URL
    private let lock = NSLock()
    private var exitStatus: Int32?

    init(name: String, pid: pid_t, log: URL) {
        self.name = name
        self.pid = pid
        self.log = log
    }

    /// The exit code, or 128 + the signal that ended it, as a shell reports it; nil while
    /// running.
    var status: Int32? {
        lock.withLock {
            if exitStatus == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid {
                    let signal = raw & 0x7F
                    exitStatus = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
                }
            }
            return exitStatus
        }
    }

    var isRunning: Bool { status == nil }

    /// Sends `signal` to the process (by PID) and waits up to `timeout` for it to exit, then
    /// SIGKILL. Returns the exit status. Stopping twice is harmless.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(5)) -> Int32 {
        if isRunning {
            kill(pid, signal)
            if !waitForExit(timeout: timeout) {
                kill(pid, SIGKILL)
                _ = waitForExit(timeout: .seconds(5))
            }
        }
        return status ?? -1
    }

    /// Waits up to `timeout` for the process to exit by itself; true when it did.
    func waitForExit(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        var pause = 0.0005
        while isRunning {
            guard ContinuousClock.now < deadline else { return false }
            Thread.sleep(forTimeInterval: pause)
            pause = min(pause * 2, 0.02)
        }
        return true
    }

    /// Fails, with the log's tail, when the process has already exited.
    func requireRunning() throws {
        if let status {
            throw LabError(description: "\(name) (pid \(pid)) exited with \(status):\n" + tail())
        }
    }
    /// The last `lines` lines of the process's log.
    func tail(lines: Int = 40) -> String {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else {
            return "(no log at \(log.path))"
        }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
            .joined(separator: "\n")
    }

    /// Polls the log until it contains `text` or `timeout` passes; fails if the process exits.
    func waitForLog(_ text: String, timeout: Duration = .seconds(10)) throws {
        try waitUntil("\(name) to print '\(text)'", timeout: timeout, lastSeen: tail()) {
            if let log = try? String(contentsOf: log, encoding: .utf8), log.contains(text) {
                return true
            }
            try requireRunning()
            return false
        }
    }
}
