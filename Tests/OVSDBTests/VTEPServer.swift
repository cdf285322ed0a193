import Foundation
import TestSupport

/// A real `ovsdb-server` (Debian openvswitch-common) on a fresh hardware_vtep database in its
/// own temporary directory, for integration tests. Started without `--detach`, so the test
/// holds the process and stops it by its PID; `shutdown()` also removes the directory.
/// Anything missing (binaries, schema) is a thrown error that fails the test, never a skip.
final class VTEPServer {
    static let ovsdbServer = "/usr/sbin/ovsdb-server"
    static let ovsdbTool = "/usr/bin/ovsdb-tool"
    static let vtepCtl = "/usr/bin/vtep-ctl"
    static let schema = "/usr/share/openvswitch/vtep.ovsschema"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let directory: URL
    var databasePath: String { directory.appendingPathComponent("vtep.db").path }
    var socketPath: String { directory.appendingPathComponent("db.sock").path }
    var logPath: String { directory.appendingPathComponent("ovsdb-server.log").path }
    private(set) var process: Process?

    init() throws {
        for path in [Self.ovsdbServer, Self.ovsdbTool, Self.vtepCtl, Self.schema]
        where !FileManager.default.fileExists(atPath: path) {
            throw Failure(
                description: "\(path) is missing: install Debian openvswitch-common and "
                    + "openvswitch-vtep (appliance/install-deps.sh)")
        }
        var template = Array("/tmp/ovsdb-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw Failure(description: "mkdtemp failed: errno \(errno)")
        }
        directory = URL(fileURLWithPath: String(cString: made))
        do {
            try Self.run(Self.ovsdbTool, ["create", databasePath, Self.schema])
            try start()
        } catch {
            shutdown()
            throw error
        }
    }

    /// Starts ovsdb-server on the database and waits until its socket accepts connections.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.ovsdbServer)
        process.arguments = [
            databasePath, "--remote=punix:\(socketPath)",
            "--pidfile=\(directory.appendingPathComponent("ovsdb-server.pid").path)",
            "--unixctl=\(directory.appendingPathComponent("ovsdb-server.ctl").path)",
            "--no-chdir", "--log-file=\(logPath)",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        do {
            try waitUntil("ovsdb-server to come up on \(socketPath)") {
                if (try? Self.run(Self.vtepCtl, ["--db=unix:\(socketPath)", "list-ps"])) != nil {
                    return true
                }
                guard process.isRunning else { throw Failure(description: "ovsdb-server exited") }
                return false
            }
        } catch {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            stop()
            throw Failure(description: "\(error):\n\(log)")
        }
    }

    /// Stops ovsdb-server by its PID: SIGTERM, then SIGKILL if it has not exited within a
    /// second (a child can inherit a blocked SIGTERM from the test runner's thread); or
    /// SIGKILL straight away to simulate a crash.
    func stop(signal: Int32 = SIGTERM) {
        guard let process else { return }
        self.process = nil
        let pid = process.processIdentifier
        kill(pid, signal)
        for _ in 0..<50 where process.isRunning {
            usleep(20_000)
        }
        if process.isRunning {
            kill(pid, SIGKILL)
        }
        process.waitUntilExit()
    }

    func shutdown() {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs vtep-ctl against this server and returns its standard output.
    @discardableResult
    func vtepCtl(_ arguments: String...) throws -> String {
        try Self.run(Self.vtepCtl, ["--db=unix:\(socketPath)", "--timeout=10"] + arguments)
    }

    /// Runs a transaction on the database file directly (the server must be stopped).
    func offlineTransact(_ transaction: String) throws {
        try Self.run(Self.ovsdbTool, ["transact", databasePath, transaction])
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description: "\(executable) \(arguments.joined(separator: " ")) exited "
                    + "\(process.terminationStatus): \(String(decoding: err, as: UTF8.self))")
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Runs `body` with a fresh server, always shutting it down afterwards.
func withVTEPServer(_ body: (VTEPServer) async throws -> Void) async throws {
    let server = try VTEPServer()
    defer { server.shutdown() }
    try await body(server)
}
