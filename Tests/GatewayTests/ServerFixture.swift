import ControlAPI
import Foundation
import HostConfiguration
import OVSDB
import TestSupport
import Testing

@testable import DataPlane
@testable import Gateway
@testable import ProcessSpawning
@testable import SwitchControl

/// A real ovsdb-server on a fresh state directory, started the way vtepd starts it
/// (`DatabaseServer`), with `vtep-ctl` to read and write it as an operator would. Missing
/// binaries are a thrown error that fails the test, never a skip.
struct ServerFixture {
    static let vtepCtlBinary = "/usr/bin/vtep-ctl"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let directory: String
    let server: DatabaseServer

    /// Makes `/tmp/gw-test-XXXXXX`; nothing started yet.
    init(restartBackoff: Backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(400)))
        throws
    {
        guard FileManager.default.isExecutableFile(atPath: Self.vtepCtlBinary) else {
            throw Failure(
                description: "\(Self.vtepCtlBinary) is missing: install Debian openvswitch-vtep"
                    + " (appliance/install-deps.sh)")
        }
        var template = Array("/tmp/gw-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw Failure(description: "mkdtemp failed: errno \(errno)")
        }
        directory = String(cString: made)
        server = try DatabaseServer(
            stateDirectory: directory + "/state", restartBackoff: restartBackoff,
            stopTimeout: .seconds(2))
    }

    /// Runs vtep-ctl against the server and returns its standard output.
    @discardableResult
    func vtepCtl(_ arguments: String...) async throws -> String {
        try await ChildProcess.run(
            Self.vtepCtlBinary, ["--db=unix:\(server.socketPath)", "--timeout=10"] + arguments)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A client of the server, monitoring hardware_vtep, once it is connected.
    func connectedClient() async throws -> OVSDBClient {
        let client = OVSDBClient(remote: server.remote, monitoring: HardwareVTEP.monitorRequests)
        Task { for await _ in client.events {} }
        await client.start()
        try await waitUntil("the connection") { await client.isConnected }
        return client
    }
}

/// Runs `body` with a started server; always stops it (by PID) and removes its directory.
func withServer(_ body: (ServerFixture) async throws -> Void) async throws {
    let fixture = try ServerFixture()
    defer { fixture.remove() }
    do {
        try await fixture.server.start()
        try await body(fixture)
    } catch {
        await fixture.server.stop()
        throw error
    }
    await fixture.server.stop()
}

/// Whether a process with this PID exists (a zombie counts: it is not reaped).
func processExists(_ pid: pid_t) -> Bool {
    kill(pid, 0) == 0 || errno != ESRCH
}
