import Foundation
import TestSupport
import Testing

@testable import OVSDB

/// Collects a client's events as a consumer would, so tests can look back at them.
actor EventLog {
    private(set) var events: [MonitorEvent] = []

    func append(_ event: MonitorEvent) { events.append(event) }

    var synchronizations: [Replica] {
        events.compactMap { if case .synchronized(let replica) = $0 { replica } else { nil } }
    }

    var disconnects: Int {
        events.count { if case .disconnected = $0 { true } else { false } }
    }

    var tooLarge: Int {
        events.count { if case .messageTooLarge = $0 { true } else { false } }
    }

    var drops: [String] {
        events.compactMap { if case .dropped(let reason) = $0 { reason } else { nil } }
    }
}

/// Against a real ovsdb-server and vtep-ctl (Debian openvswitch-common): each test starts its
/// own server in a temporary directory and stops it by PID at the end.
@Suite(.timeLimit(.minutes(1))) struct IntegrationTests {
    /// A started client with its events logged.
    func client(
        _ server: VTEPServer, backoff: Backoff = .standard,
        maximumMessageSize: Int = JSONTextDecoder.defaultMaximumMessageSize
    ) async -> (OVSDBClient, EventLog) {
        let client = OVSDBClient(
            remote: .unix(path: server.socketPath), monitoring: HardwareVTEP.monitorRequests,
            backoff: backoff, maximumMessageSize: maximumMessageSize)
        let log = EventLog()
        Task {
            for await event in client.events { await log.append(event) }
        }
        await client.start()
        return (client, log)
    }

    @Test func monitorReplicaAndModelSeeWhatVtepCtlWrote() async throws {
        try await withVTEPServer { server in
            let (client, log) = await client(server)
            try await waitUntil("the first synchronisation") { await client.synchronizations == 1 }
            let empty = HardwareVTEP.Database(await client.replica)
            #expect(empty == HardwareVTEP.Database())

            try server.vtepCtl("add-ps", "ps0")
            try server.vtepCtl("set", "Physical_Switch", "ps0", "tunnel_ips=10.0.0.1")
            try server.vtepCtl("add-ls", "ls0")
            try server.vtepCtl("set", "Logical_Switch", "ls0", "tunnel_key=5001")
            try server.vtepCtl("add-port", "ps0", "p0")
            try server.vtepCtl("bind-ls", "ps0", "p0", "100", "ls0")
            try server.vtepCtl("add-ucast-remote", "ls0", "00:11:22:33:44:55", "10.0.0.2")
            try server.vtepCtl("add-mcast-remote", "ls0", "unknown-dst", "10.0.0.3")

            try await waitUntil("the mcast remote in the replica") {
                await !client.replica["Mcast_Macs_Remote"].isEmpty
            }
            let database = HardwareVTEP.Database(await client.replica)
            #expect(database.problems == [])

            let ps = try #require(database.physicalSwitches.values.first)
            #expect(database.physicalSwitches.count == 1)
            #expect(ps.name == "ps0")
            #expect(ps.tunnelIPs == ["10.0.0.1"])
            let port = try #require(database.physicalPorts.values.first)
            #expect(ps.ports == [port.uuid])
            #expect(port.name == "p0")

            let ls = try #require(database.logicalSwitch(named: "ls0"))
            #expect(database.logicalSwitches.count == 1)
            #expect(ls.tunnelKey == 5001)
            #expect(port.vlanBindings == [100: ls.uuid])

            let ucast = try #require(database.ucastMacsRemote.values.first)
            #expect(database.ucastMacsRemote.count == 1)
            #expect(ucast.mac == "00:11:22:33:44:55")
            #expect(ucast.logicalSwitch == ls.uuid)
            #expect(database.physicalLocators[ucast.locator]?.dstIP == "10.0.0.2")
            #expect(
                database.physicalLocators[ucast.locator]?.encapsulationType == "vxlan_over_ipv4")

            let mcast = try #require(database.mcastMacsRemote.values.first)
            #expect(mcast.mac == "unknown-dst")
            #expect(mcast.logicalSwitch == ls.uuid)
            let set = try #require(database.physicalLocatorSets[mcast.locatorSet])
            #expect(set.locators.map { database.physicalLocators[$0]?.dstIP } == ["10.0.0.3"])
            #expect(database.ucastMacsLocal.isEmpty)

            // Consumers saw each change as a delta, with the replica after it. The log is
            // filled by its own task, so it may trail the client's replica a little.
            try await waitUntil("the ucast insert as a delta in the event log") {
                await log.events.contains { event in
                    guard case .updated(let updates, let replica) = event else { return false }
                    return updates.tables["Ucast_Macs_Remote"]?.values.contains {
                        $0.old == nil && $0.new?["MAC"] == "00:11:22:33:44:55"
                    } == true && replica["Ucast_Macs_Remote"].count == 1
                }
            }

            // Deletions reach the replica too.
            try server.vtepCtl("del-ucast-remote", "ls0", "00:11:22:33:44:55")
            try await waitUntil("the ucast remote to go") {
                await client.replica["Ucast_Macs_Remote"].isEmpty
            }
            #expect(await log.drops == [])
            #expect(await client.droppedCount == 0)
            await client.stop()
        }
    }

    @Test func transactFromTheClientIsSeenByVtepCtl() async throws {
        try await withVTEPServer { server in
            let (client, _) = await client(server)
            try await waitUntil("the first synchronisation") { await client.synchronizations == 1 }

            let schema = try await client.schema()
            #expect(schema["name"] == "hardware_vtep")

            let results = try await client.transact([
                .comment("integration test"),
                .insert(
                    table: "Logical_Switch", row: Row(["name": "ls9", "tunnel_key": 9009]),
                    uuidName: "ls9"),
                .select(
                    table: "Logical_Switch",
                    where: [Condition("_uuid", "==", .atom(.namedUUID("ls9")))],
                    columns: ["name", "tunnel_key"]),
            ])
            let uuid = try #require(results[1].uuid)
            #expect(results[2].rows == [Row(["name": "ls9", "tunnel_key": 9009])])
            #expect(try server.vtepCtl("list-ls") == "ls9\n")
            #expect(
                try server.vtepCtl("get", "Logical_Switch", "ls9", "tunnel_key") == "9009\n")
            try await waitUntil("our insert in the replica") {
                await client.replica["Logical_Switch"][uuid]?["name"] == "ls9"
            }

            // The same name again breaks the schema's index: a typed error, server's words.
            await #expect {
                try await client.transact([
                    .insert(table: "Logical_Switch", row: Row(["name": "ls9"]))
                ])
            } throws: { error in
                guard case OVSDBError.operationFailed(_, _, let text, _) = error else {
                    return false
                }
                return text == "constraint violation"
            }
            await #expect(
                throws: OVSDBError.server(
                    method: "get_schema", error: "unknown database",
                    details: "get_schema request specifies unknown database nope")
            ) { try await client.request("get_schema", ["nope"]) }
            await client.stop()
        }
    }

    @Test func reconnectsAfterTheServerDiesAndResynchronises() async throws {
        try await withVTEPServer { server in
            let backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(400))
            let (client, log) = await client(server, backoff: backoff)
            try server.vtepCtl("add-ls", "ls0")
            try await waitUntil("ls0 in the replica") {
                await client.replica["Logical_Switch"].values.contains { $0["name"] == "ls0" }
            }

            server.stop(signal: SIGKILL)
            try await waitUntil("the client to notice") { await log.disconnects >= 1 }
            #expect(await !client.isConnected)
            await #expect(throws: OVSDBError.notConnected) { try await client.transact([]) }

            // While it is down the database changes behind the client's back.
            try server.offlineTransact(
                #"""
                ["hardware_vtep",
                 {"op":"delete","table":"Logical_Switch","where":[["name","==","ls0"]]},
                 {"op":"insert","table":"Logical_Switch","row":{"name":"ls1","tunnel_key":7}}]
                """#)
            // Let a few attempts fail, so backoff is exercised: each is a disconnect event.
            try await waitUntil("two failed reconnection attempts") { await log.disconnects >= 3 }
            try server.start()

            try await waitUntil("the second synchronisation") {
                await client.synchronizations == 2
            }
            try await waitUntil("the second synchronisation in the event log") {
                await log.synchronizations.count == 2
            }
            let resynchronised = try #require(await log.synchronizations.last)
            let names = resynchronised["Logical_Switch"].values.compactMap { $0["name"] }
            #expect(names == ["ls1"])
            #expect(await client.replica == resynchronised)
            #expect(
                HardwareVTEP.Database(resynchronised).logicalSwitch(named: "ls1")?.tunnelKey == 7)

            // And it keeps following updates on the new connection.
            try server.vtepCtl("add-ls", "ls2")
            try await waitUntil("ls2 in the replica") {
                await client.replica["Logical_Switch"].values.contains { $0["name"] == "ls2" }
            }
            await client.stop()
        }
    }

    /// A message beyond the client's limit is refused (counted, an event), the connection
    /// closed and retried; while the server keeps sending it (a reconnection's initial monitor
    /// reply holds the big row) every attempt is refused and the replica keeps what it had;
    /// once the row is gone the client follows again.
    @Test func aMessageBeyondTheLimitIsRefusedCountedAndTheClientRecovers() async throws {
        try await withVTEPServer { server in
            let backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(200))
            let (client, log) = await client(server, backoff: backoff, maximumMessageSize: 4096)
            try server.vtepCtl("add-ls", "small")
            try await waitUntil("small in the replica") {
                await client.replica["Logical_Switch"].values.contains { $0["name"] == "small" }
            }
            // One transaction: the client never sees the row small.
            try server.vtepCtl(
                "add-ls", "big", "--", "set", "Logical_Switch", "big",
                "description=" + String(repeating: "x", count: 10_000))
            try await waitUntil("two refusals (the update, then a reconnection's monitor reply)") {
                await client.oversizedMessages >= 2
            }
            // The event log reads the client's events on its own task: it may trail the count.
            try await waitUntil("two refusals in the event log") { await log.tooLarge >= 2 }
            #expect(
                await client.replica["Logical_Switch"].values.allSatisfy { $0["name"] != "big" })
            let synchronizations = await client.synchronizations
            try server.vtepCtl("del-ls", "big")
            try await waitUntil("following again without the big row") {
                let connected = await client.isConnected
                return await client.synchronizations > synchronizations && connected
            }
            #expect(
                await client.replica["Logical_Switch"].values.compactMap { $0["name"] } == ["small"]
            )
            await client.stop()
        }
    }
}
