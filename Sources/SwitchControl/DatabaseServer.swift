import Appliance
import Foundation
import Logging
import OVSDB
import ProcessSpawning

/// Why the database server could not be prepared or started. Each names the path or command
/// and what to do about it.
public enum DatabaseServerError: Error, Hashable, Sendable, CustomStringConvertible {
    case binaryNotFound(name: String, searched: [String])
    case schemaNotFound(path: String)
    case socketPathTooLong(path: String)
    case stateDirectory(path: String, reason: String)
    case spawnFailed(executable: String, reason: String)
    case toolFailed(command: String, status: String, output: String)
    case didNotStart(socket: String, reason: String, log: String)
    case alreadyStarted

    init(_ error: ChildProcessError) {
        switch error {
        case .spawnFailed(let executable, let reason):
            self = .spawnFailed(executable: executable, reason: reason)
        case .toolFailed(let command, let status, let output):
            self = .toolFailed(command: command, status: status, output: output)
        }
    }

    public var description: String {
        switch self {
        case .binaryNotFound(let name, let searched):
            return "\(name) not found (looked in \(searched.joined(separator: ", "))): install"
                + " Debian openvswitch-common"
        case .schemaNotFound(let path):
            return "hardware_vtep schema \(path) is missing: install Debian openvswitch-vtep"
        case .socketPathTooLong(let path):
            return "socket path \(path) is longer than a Unix socket allows (107 bytes): choose"
                + " a shorter state directory"
        case .stateDirectory(let path, let reason):
            return "state directory \(path) cannot be used: \(reason)"
        case .spawnFailed(let executable, let reason):
            return "cannot start \(executable): \(reason)"
        case .toolFailed(let command, let status, let output):
            return "\(command) \(status): \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
        case .didNotStart(let socket, let reason, let log):
            return "ovsdb-server did not come up on \(socket): \(reason)"
                + (log.isEmpty ? "" : "; end of its log:\n\(log)")
        case .alreadyStarted:
            return "the database server is already started"
        }
    }
}

/// Open vSwitch's own `ovsdb-server`, run as vtepd's supervised child on the hardware_vtep
/// database in a state directory:
///
/// - `STATE/vtep.db`, created from the schema with `ovsdb-tool create` if absent, converted
///   with `ovsdb-tool convert` (after a backup copy) when `ovsdb-tool needs-conversion` says
///   the installed schema differs, as Open vSwitch's ovs-ctl does on upgrade;
/// - listening on `punix:STATE/db.sock`, on the remotes a controller is given with
///   `vtep-ctl set-manager` (`db:hardware_vtep,Global,managers`) and on `extraRemotes`
///   (ovsdb-server(1) syntax, e.g. `ptcp:6640:192.0.2.1`);
/// - its log in `STATE/ovsdb-server.log` (its stdout and stderr too), stdin /dev/null, no
///   descriptor of ours inherited, not detached: it is our child;
/// - restarted with backoff when it dies; `stop()` sends SIGTERM, then SIGKILL after
///   `stopTimeout`.
///
/// One way to start ovsdb-server: the tests use this too.
public actor DatabaseServer {
    public nonisolated let stateDirectory: String
    public nonisolated let extraRemotes: [String]
    public nonisolated let schemaPath: String
    public nonisolated let ovsdbServer: String
    public nonisolated let ovsdbTool: String
    public nonisolated let restartBackoff: Backoff
    public nonisolated let stopTimeout: Duration
    /// The switch's key, certificate and CA for `ssl:` manager connections; nil: no SSL.
    public nonisolated let identity: SwitchIdentity?

    public nonisolated var databasePath: String { stateDirectory + "/vtep.db" }
    public nonisolated var socketPath: String { stateDirectory + "/db.sock" }
    public nonisolated var logPath: String { stateDirectory + "/ovsdb-server.log" }
    public nonisolated var pidfilePath: String { stateDirectory + "/ovsdb-server.pid" }
    public nonisolated var controlSocketPath: String { stateDirectory + "/ovsdb-server.ctl" }
    /// Where clients connect: `unix:STATE/db.sock`.
    public nonisolated var remote: Remote { .unix(path: socketPath) }

    public static let defaultSchema = "/usr/share/openvswitch/vtep.ovsschema"
    static let searchPath = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]

    /// The running child's PID; nil while stopped or between a death and its restart.
    public var pid: pid_t? { child?.pid }
    /// How many times ovsdb-server has been started (1 after `start()`).
    public private(set) var launches = 0
    /// How the last child ended, in words, or why the last restart failed.
    public private(set) var lastExit: String?
    /// How many times it died unexpectedly, and was restarted (or is about to be).
    public private(set) var deaths = 0

    /// For `show configuration`: that ovsdb-server died and was restarted, and why.
    public var problems: [String] {
        guard deaths > 0 else { return [] }
        return [
            "ovsdb-server died \(deaths) time(s) and was restarted; the last time:"
                + " \(lastExit ?? "unknown") (its log: \(logPath))"
        ]
    }

    private let logger: Logger

    private var child: ChildProcess?
    private var supervisor: Task<Void, Never>?
    private var stopping = false
    /// Set by `restart()`: the next exit is ours, not a death.
    private var restarting = false

    /// Finds the binaries and checks the paths; starts nothing.
    public init(
        stateDirectory: String, extraRemotes: [String] = [], schema: String = defaultSchema,
        restartBackoff: Backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(8)),
        stopTimeout: Duration = .seconds(5), identity: SwitchIdentity? = nil,
        logger: Logger = Logger(label: "vtepd.database")
    ) throws(DatabaseServerError) {
        self.logger = logger
        self.identity = identity
        self.stateDirectory =
            stateDirectory.hasSuffix("/") && stateDirectory.count > 1
            ? String(stateDirectory.dropLast()) : stateDirectory
        self.extraRemotes = extraRemotes
        self.schemaPath = schema
        self.restartBackoff = restartBackoff
        self.stopTimeout = stopTimeout
        ovsdbServer = try Self.locate("ovsdb-server")
        ovsdbTool = try Self.locate("ovsdb-tool")
        guard FileManager.default.fileExists(atPath: schema) else {
            throw .schemaNotFound(path: schema)
        }
        let socket = self.stateDirectory + "/db.sock"
        guard socket.utf8.count < 108 else { throw .socketPathTooLong(path: socket) }
    }

    /// `ChildProcess.run`, its failure as this server's error.
    @discardableResult
    private static func tool(_ executable: String, _ arguments: [String])
        async throws(DatabaseServerError) -> String
    {
        do {
            return try await ChildProcess.run(executable, arguments)
        } catch {
            throw DatabaseServerError(error)
        }
    }

    /// The first executable called `name` in the usual system directories, then `PATH`.
    static func locate(_ name: String) throws(DatabaseServerError) -> String {
        let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(
            String.init)
        var searched: [String] = []
        for directory in searchPath + (path ?? []) where !searched.contains(directory) {
            searched.append(directory)
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw .binaryNotFound(name: name, searched: searched)
    }

    /// Prepares the database, starts ovsdb-server and waits (up to `readyTimeout`) until its
    /// socket accepts connections; from then on it is restarted whenever it dies.
    public func start(readyTimeout: Duration = .seconds(10)) async throws(DatabaseServerError) {
        guard supervisor == nil, child == nil else { throw .alreadyStarted }
        stopping = false
        try prepareDirectory()
        await stopOrphan()
        try await prepareDatabase()
        let first = try launch()
        do {
            try await waitUntilReady(first, timeout: readyTimeout)
        } catch {
            first.signal(SIGKILL)
            _ = await first.waitForExit()
            child = nil
            throw error
        }
        supervisor = Task { await self.supervise(first) }
    }

    /// Stops supervising and stops ovsdb-server: SIGTERM, SIGKILL after `stopTimeout`; returns
    /// once it has exited and been reaped.
    public func stop() async {
        stopping = true
        supervisor?.cancel()
        if let child {
            child.signal(SIGTERM)
            let deadline = ContinuousClock.now + stopTimeout
            while child.exit == nil && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            child.signal(SIGKILL)
        }
        await supervisor?.value
        supervisor = nil
    }

    /// Stops the running ovsdb-server and starts it again with the identity's current files
    /// (a CA installed or cleared), then waits until it accepts connections. Not counted as a
    /// death. Clients reconnect as after any restart.
    public func restart(readyTimeout: Duration = .seconds(10)) async throws(DatabaseServerError) {
        guard let running = child, supervisor != nil else { return }
        restarting = true
        running.signal(SIGTERM)
        let deadline = ContinuousClock.now + stopTimeout
        while running.exit == nil && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        running.signal(SIGKILL)
        // The supervisor launches the next one at once.
        let launched = ContinuousClock.now + readyTimeout
        while (child == nil || child === running) && ContinuousClock.now < launched {
            try? await Task.sleep(for: .milliseconds(10))
        }
        try await waitUntilReady(timeout: readyTimeout)
    }

    /// The last line of ovsdb-server's log about an SSL failure (a controller's certificate
    /// refused, ours refused by it), with its time; nil when there is none since it started.
    public nonisolated func lastSSLError() -> String? {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n")
        // Only what the running server logged: from its last "opened log file" on.
        let current =
            lines.lastIndex { $0.contains("|vlog|INFO|opened log file") } ?? lines.startIndex
        guard
            let line = lines[current...].last(where: {
                $0.contains("|stream_ssl|") && ($0.contains("|WARN|") || $0.contains("|ERR|"))
            })
        else { return nil }
        // 2026-12-05T09:44:22.088Z|00006|stream_ssl|WARN|SSL_connect: error:…:certificate verify failed
        let fields = line.split(separator: "|", maxSplits: 4)
        guard fields.count == 5 else { return String(line) }
        return "\(fields[0]): \(fields[4])"
    }

    /// Sends `signal` to the running ovsdb-server (tests use SIGKILL to simulate a crash).
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        child?.signal(signal) ?? false
    }

    /// Waits until a restarted server accepts connections again (after a crash).
    public func waitUntilReady(timeout: Duration = .seconds(10)) async throws(DatabaseServerError) {
        let deadline = ContinuousClock.now + timeout
        // Checked once more after the deadline: on a busy machine the sleep may overshoot it.
        while true {
            let late = ContinuousClock.now >= deadline
            if let child, child.exit == nil, Self.accepts(socketPath) { return }
            if late { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        throw .didNotStart(
            socket: socketPath, reason: "not accepting connections after \(timeout)",
            log: logTail())
    }

    // MARK: - Supervision

    private func supervise(_ first: ChildProcess) async {
        var current: ChildProcess? = first
        var failures = 0
        while true {
            if let running = current {
                let started = ContinuousClock.now
                let status = await running.waitForExit()
                child = nil
                lastExit = "ovsdb-server (PID \(running.pid)) " + ChildProcess.describe(status)
                if stopping {
                    logger.info("ovsdb-server stopped", metadata: ["pid": "\(running.pid)"])
                    return
                }
                if restarting {
                    restarting = false
                    failures = 0
                    do {
                        current = try launch()
                        logger.notice(
                            "ovsdb-server restarted with new SSL settings",
                            metadata: ["pid": "\(current?.pid ?? 0)"])
                        continue
                    } catch {
                        current = nil
                        lastExit = "restarting ovsdb-server failed: \(error)"
                        logger.error("\(lastExit ?? ""); trying again")
                    }
                }
                deaths += 1
                logger.error("\(lastExit ?? ""); restarting it (its log: \(logPath))")
                // A server that ran for a while died of something new: start over quickly.
                if ContinuousClock.now - started > restartBackoff.maximum { failures = 0 }
            }
            if stopping { return }
            try? await Task.sleep(for: restartBackoff.delay(afterFailures: failures))
            failures += 1
            if stopping { return }
            do {
                let process = try launch()
                current = process
                logger.notice("ovsdb-server restarted", metadata: ["pid": "\(process.pid)"])
            } catch {
                current = nil
                lastExit = "restarting ovsdb-server failed: \(error)"
                logger.error("\(lastExit ?? ""); trying again")
            }
        }
    }

    private func launch() throws(DatabaseServerError) -> ChildProcess {
        let log = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard log >= 0 else {
            throw .stateDirectory(
                path: stateDirectory,
                reason: "cannot open \(logPath): \(String(cString: strerror(errno)))")
        }
        defer { close(log) }
        let arguments =
            [
                databasePath, "--remote=punix:\(socketPath)",
                "--remote=db:\(HardwareVTEP.databaseName),Global,managers",
            ] + extraRemotes.map { "--remote=\($0)" } + (identity?.serverArguments ?? []) + [
                "--pidfile=\(pidfilePath)", "--unixctl=\(controlSocketPath)", "--no-chdir",
                "--log-file=\(logPath)", "-vconsole:off",
            ]
        let process: ChildProcess
        do {
            process = try ChildProcess.spawn(ovsdbServer, arguments, stdout: log, stderr: log)
        } catch {
            throw DatabaseServerError(error)
        }
        child = process
        launches += 1
        return process
    }

    private func waitUntilReady(_ process: ChildProcess, timeout: Duration)
        async throws(DatabaseServerError)
    {
        let deadline = ContinuousClock.now + timeout
        // Checked once more after the deadline: on a busy machine the sleep may overshoot it.
        while true {
            let late = ContinuousClock.now >= deadline
            if let status = process.exit {
                throw .didNotStart(
                    socket: socketPath, reason: ChildProcess.describe(status), log: logTail())
            }
            if Self.accepts(socketPath) { return }
            if late { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        throw .didNotStart(
            socket: socketPath, reason: "not accepting connections after \(timeout)",
            log: logTail())
    }

    /// Whether a Unix stream socket at `path` accepts a connection.
    static func accepts(_ path: String) -> Bool {
        UnixSocket.connects(path, type: Int32(SOCK_STREAM.rawValue))
    }

    /// The last lines of the server's log, for error messages.
    nonisolated func logTail(lines: Int = 10) -> String {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "" }
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    // MARK: - Database file

    private func prepareDirectory() throws(DatabaseServerError) {
        do {
            try FileManager.default.createDirectory(
                atPath: stateDirectory, withIntermediateDirectories: true)
        } catch {
            throw .stateDirectory(path: stateDirectory, reason: error.localizedDescription)
        }
    }

    /// Creates the database if absent; converts it if the installed schema differs.
    private func prepareDatabase() async throws(DatabaseServerError) {
        guard FileManager.default.fileExists(atPath: databasePath) else {
            try await Self.tool(ovsdbTool, ["create", databasePath, schemaPath])
            return
        }
        let needs = try await Self.tool(
            ovsdbTool, ["needs-conversion", databasePath, schemaPath])
        guard needs.trimmingCharacters(in: .whitespacesAndNewlines) == "yes" else { return }
        let version = try await Self.tool(ovsdbTool, ["db-version", databasePath])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let backup = "\(databasePath).backup-\(version)"
        do {
            if !FileManager.default.fileExists(atPath: backup) {
                try FileManager.default.copyItem(atPath: databasePath, toPath: backup)
            }
        } catch {
            throw .stateDirectory(
                path: stateDirectory,
                reason: "cannot back up \(databasePath) before converting it: \(error)")
        }
        try await Self.tool(ovsdbTool, ["convert", databasePath, schemaPath])
    }

    /// An ovsdb-server left running on our database by a vtepd that died without stopping it
    /// holds the database lock; stop it by the PID in its pidfile, after checking that the
    /// PID really is ovsdb-server on our database.
    private func stopOrphan() async {
        guard let text = try? String(contentsOfFile: pidfilePath, encoding: .utf8),
            let orphan = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            orphan > 1, orphan != getpid(),
            let commandLine = try? Data(
                contentsOf: URL(fileURLWithPath: "/proc/\(orphan)/cmdline"))
        else { return }
        let words = commandLine.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard words.first?.hasSuffix("ovsdb-server") == true, words.contains(databasePath) else {
            return
        }
        kill(orphan, SIGTERM)
        let deadline = ContinuousClock.now + stopTimeout
        while kill(orphan, 0) == 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if kill(orphan, 0) == 0 {
            kill(orphan, SIGKILL)
            // A SIGKILLed process is gone at once unless it is an unreaped zombie, which
            // holds no lock; do not wait forever for its parent.
            let killed = ContinuousClock.now + .seconds(1)
            while kill(orphan, 0) == 0 && ContinuousClock.now < killed {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}
