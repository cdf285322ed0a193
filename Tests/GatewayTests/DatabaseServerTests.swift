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

/// Against Open vSwitch's real ovsdb-server and vtep-ctl (Debian openvswitch-common,
/// openvswitch-vtep). Each test has its own state directory and stops its server by PID.
@Suite(.serialized, .timeLimit(.minutes(1))) struct DatabaseServerTests {
    @Test func startsAndStopsLeavingNoProcess() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        let server = fixture.server
        try await server.start()
        let pid = try #require(await server.pid)
        #expect(processExists(pid))
        #expect(await server.launches == 1)
        #expect(try await fixture.vtepCtl("list-ps") == "")
        #expect(DatabaseServer.accepts(server.socketPath))
        #expect(FileManager.default.fileExists(atPath: server.logPath))

        // It is our child in its own process group, with /dev/null for stdin.
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat.split(separator: ")").last!.split(separator: " ")
        #expect(fields[1] == "\(getpid())")  // ppid
        #expect(fields[2] == "\(pid)")  // pgrp
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/0")
                == "/dev/null")

        await #expect(throws: DatabaseServerError.alreadyStarted) { try await server.start() }

        await server.stop()
        #expect(await server.pid == nil)
        #expect(!processExists(pid))
        #expect(!DatabaseServer.accepts(server.socketPath))
        // Stopped on purpose: not restarted. stop() returns only once supervision has ended,
        // so a restart, had the supervisor gone on to one, would already be counted.
        #expect(await server.launches == 1)
        #expect(await server.pid == nil)
    }

    @Test func childInheritsNoDescriptorOfOurs() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        // A descriptor without close-on-exec, as a data-plane socket opened by C code might be.
        let marker = fixture.directory + "/marker"
        let fd = open(marker, O_RDWR | O_CREAT, 0o600)
        try #require(fd > 2)
        defer { close(fd) }
        try await fixture.server.start()
        let pid = try #require(await fixture.server.pid)
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        let targets = descriptors.compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")
        }
        #expect(!targets.contains(marker), "\(targets)")
        await fixture.server.stop()
    }

    @Test func databaseIsCreatedOnceAndSurvivesRestarts() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        try await fixture.server.start()
        try await fixture.vtepCtl("add-ps", "ps0")
        try await fixture.vtepCtl("add-ls", "ls0")
        await fixture.server.stop()

        // A new vtepd on the same state directory: same file, same rows.
        let again = try DatabaseServer(stateDirectory: fixture.server.stateDirectory)
        try await again.start()
        #expect(try await fixture.vtepCtl("list-ps") == "ps0\n")
        #expect(try await fixture.vtepCtl("list-ls") == "ls0\n")
        let pid = try #require(await again.pid)
        await again.stop()
        #expect(!processExists(pid))
        let backups = try FileManager.default.contentsOfDirectory(atPath: again.stateDirectory)
            .filter { $0.contains("backup") }
        #expect(backups == [], "no conversion for the same schema")
    }

    @Test func olderDatabaseIsConvertedAfterABackup() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        let server = fixture.server
        // An "older" schema: version 1.0.0, without Logical_Switch other_config.
        let text = try String(contentsOfFile: server.schemaPath, encoding: .utf8)
        var schema = try #require(
            try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        schema["version"] = "1.0.0"
        var tables = schema["tables"] as! [String: Any]
        var ls = tables["Logical_Switch"] as! [String: Any]
        var columns = ls["columns"] as! [String: Any]
        columns["other_config"] = nil
        ls["columns"] = columns
        tables["Logical_Switch"] = ls
        schema["tables"] = tables
        let old = fixture.directory + "/old.ovsschema"
        try JSONSerialization.data(withJSONObject: schema).write(to: URL(fileURLWithPath: old))
        try FileManager.default.createDirectory(
            atPath: server.stateDirectory, withIntermediateDirectories: true)
        try await ChildProcess.run(server.ovsdbTool, ["create", server.databasePath, old])
        try await ChildProcess.run(
            server.ovsdbTool,
            [
                "transact", server.databasePath,
                #"["hardware_vtep",{"op":"insert","table":"Logical_Switch","row":{"name":"kept"}}]"#,
            ])

        try await server.start()
        #expect(try await fixture.vtepCtl("list-ls") == "kept\n")
        // The new column exists now.
        try await fixture.vtepCtl("set", "Logical_Switch", "kept", "other_config:mac-ageing=0")
        let backup = server.databasePath + ".backup-1.0.0"
        #expect(FileManager.default.fileExists(atPath: backup))
        await server.stop()
    }

    @Test func aKilledServerIsRestartedAndClientsReconnect() async throws {
        try await withServer { fixture in
            let server = fixture.server
            try await fixture.vtepCtl("add-ls", "ls0")
            let client = OVSDBClient(
                remote: server.remote, monitoring: HardwareVTEP.monitorRequests,
                backoff: Backoff(initial: .milliseconds(50), maximum: .milliseconds(200)))
            Task { for await _ in client.events {} }
            await client.start()
            try await waitUntil("the first synchronisation") { await client.synchronizations == 1 }

            let first = try #require(await server.pid)
            #expect(await server.signal(SIGKILL))
            try await waitUntil("a new ovsdb-server") {
                let pid = await server.pid
                return pid != nil && pid != first
            }
            #expect(!processExists(first))
            #expect(await server.launches == 2)
            #expect(await server.lastExit?.contains("killed by signal 9") == true)
            try await server.waitUntilReady()
            try await waitUntil("the client to resynchronise") {
                await client.synchronizations == 2
            }
            #expect(
                await client.replica["Logical_Switch"].values.contains { $0["name"] == "ls0" })
            await client.stop()
        }
    }

    @Test func aCorruptDatabaseIsAnErrorNamingTheTool() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        let server = fixture.server
        try FileManager.default.createDirectory(
            atPath: server.stateDirectory, withIntermediateDirectories: true)
        try "not a database".write(toFile: server.databasePath, atomically: true, encoding: .utf8)
        await #expect {
            try await server.start()
        } throws: { error in
            // ovsdb-tool refuses the file before the server is started.
            guard case DatabaseServerError.toolFailed(let command, _, let output) = error else {
                return false
            }
            return command.contains("needs-conversion") && !output.isEmpty
        }
        #expect(await server.pid == nil)
    }

    @Test func anOrphanedServerOnOurDatabaseIsStoppedByItsPID() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        let server = fixture.server
        try FileManager.default.createDirectory(
            atPath: server.stateDirectory, withIntermediateDirectories: true)
        try await ChildProcess.run(
            server.ovsdbTool, ["create", server.databasePath, server.schemaPath])
        // What a vtepd killed with SIGKILL leaves behind: a server holding the database lock.
        let null = open("/dev/null", O_WRONLY)
        defer { close(null) }
        let orphan = try ChildProcess.spawn(
            server.ovsdbServer,
            [
                server.databasePath, "--remote=punix:\(server.socketPath)",
                "--pidfile=\(server.pidfilePath)",
                "--unixctl=\(fixture.directory)/orphan.ctl", "--no-chdir",
            ], stdout: null, stderr: null)
        let reaped = Task { await orphan.waitForExit() }
        defer { orphan.signal(SIGKILL) }
        try await waitUntil("the orphan's pidfile") {
            FileManager.default.fileExists(atPath: server.pidfilePath)
                && DatabaseServer.accepts(server.socketPath)
        }

        try await server.start()
        #expect(orphan.exit != nil)
        _ = await reaped.value
        let pid = try #require(await server.pid)
        #expect(pid != orphan.pid)
        #expect(try await fixture.vtepCtl("list-ps") == "")
        await server.stop()
    }

    @Test func operatorErrorsNameWhatIsWrong() throws {
        #expect(throws: DatabaseServerError.self) {
            try DatabaseServer.locate("no-such-ovsdb-server")
        }
        do {
            _ = try DatabaseServer.locate("no-such-ovsdb-server")
        } catch {
            #expect(
                error.description.hasPrefix("no-such-ovsdb-server not found (looked in /usr/sbin,"))
            #expect(error.description.hasSuffix("install Debian openvswitch-common"))
        }
        #expect(throws: DatabaseServerError.schemaNotFound(path: "/nonexistent.ovsschema")) {
            try DatabaseServer(stateDirectory: "/tmp/x", schema: "/nonexistent.ovsschema")
        }
        let long = "/tmp/" + String(repeating: "d", count: 120)
        #expect(throws: DatabaseServerError.socketPathTooLong(path: long + "/db.sock")) {
            try DatabaseServer(stateDirectory: long)
        }
    }
}
