import ControlAPI
import Forwarding
import Foundation
import HostConfiguration
import OVSDB
import Packet
import Synchronization
import TestSupport
import Testing

@testable import DataPlane
@testable import Gateway
@testable import ProcessSpawning
@testable import SwitchControl

/// What the data plane would be handed, in order.
final class SnapshotSink: Sendable {
    private let received = Mutex<[GatewaySnapshot]>([])

    var snapshots: [GatewaySnapshot] { received.withLock { $0 } }
    var last: GatewaySnapshot? { snapshots.last }

    func consume(_ snapshot: GatewaySnapshot) {
        received.withLock { $0.append(snapshot) }
    }
}

/// The control plane against a real ovsdb-server, written to with vtep-ctl.
@Suite(.serialized, .timeLimit(.minutes(1))) struct ControlPlaneTests {
    func controlPlane(_ fixture: ServerFixture, _ sink: SnapshotSink) async throws
        -> ControlPlane
    {
        let plane = ControlPlane(
            remote: fixture.server.remote,
            bootstrap: try Bootstrap(
                physicalSwitch: "ps0", tunnelIPs: [IPAddress("10.0.0.1")!], ports: ["p0", "p1"]),
            backoff: Backoff(initial: .milliseconds(50), maximum: .milliseconds(200)),
            consumer: sink.consume)
        await plane.start()
        try await waitUntil("the bootstrapped switch in a snapshot") {
            Set(["p0", "p1"]).isSubset(of: sink.last?.ports ?? [])
        }
        return plane
    }

    // How fast a change arrives is measured in bench/reconfig, never asserted here: a loaded CI
    // machine would make a timed assertion fail for the wrong reason.
    @Test func aBindingReachesTheConsumer() async throws {
        try await withServer { fixture in
            let sink = SnapshotSink()
            let plane = try await controlPlane(fixture, sink)
            #expect(await plane.isSynchronized)
            #expect(await plane.bootstrapOutcome?.createdSwitch == true)
            #expect(sink.last?.switches == [])

            try await fixture.vtepCtl("add-ls", "ls0")
            try await fixture.vtepCtl("set", "Logical_Switch", "ls0", "tunnel_key=5000")
            try await fixture.vtepCtl("add-mcast-remote", "ls0", "unknown-dst", "10.0.0.2")
            try await fixture.vtepCtl("bind-ls", "ps0", "p0", "100", "ls0")
            try await waitUntil("the binding at the consumer") {
                sink.last?.bindings == [Binding(port: "p0", vlan: 100, logicalSwitch: "ls0")]
            }
            let snapshot = try #require(sink.last)
            #expect(
                snapshot.switches == [
                    LogicalSwitch(
                        name: "ls0", vni: VNI(rawValue: 5000)!,
                        replication: .serviceNode([Locator(IPAddress("10.0.0.2")!)]))
                ])
            #expect(await plane.snapshot == snapshot)
            #expect(await plane.problems == [])
            // The data plane can compile what it was handed.
            _ = try snapshot.configuration(previous: nil)
            await plane.stop()
        }
    }

    @Test func identicalSnapshotsAreNotDeliveredAgain() async throws {
        try await withServer { fixture in
            let sink = SnapshotSink()
            let plane = try await controlPlane(fixture, sink)
            let delivered = sink.snapshots.count
            #expect(await plane.deliveries == delivered)

            // Rows that are not ours change the replica, not the snapshot: once the plane has
            // taken both updates in, a row that is ours follows them, and its snapshot is the
            // only one delivered. A snapshot for the unrelated rows would have been computed,
            // in order, before it.
            let updates = await plane.replicaUpdates
            try await fixture.vtepCtl("add-ps", "somebody-else")
            try await fixture.vtepCtl("add-ls", "unbound")
            try await waitUntil("the plane to take in the two unrelated updates") {
                await plane.replicaUpdates == updates + 2
            }
            try await fixture.vtepCtl("add-port", "ps0", "p7")
            try await waitUntil("the new port") { sink.last?.ports == ["p0", "p1", "p7"] }
            #expect(sink.snapshots.count == delivered + 1)
            #expect(await plane.deliveries == delivered + 1)
            // p7 is not on the command line: kept in the snapshot and the database.
            #expect(try await fixture.vtepCtl("list-ports", "ps0") == "p0\np1\np7\n")
            await plane.stop()
        }
    }

    @Test func keepsTheLastSnapshotWhileTheServerIsDownAndResynchronises() async throws {
        try await withServer { fixture in
            let server = fixture.server
            let sink = SnapshotSink()
            let plane = try await controlPlane(fixture, sink)
            try await fixture.vtepCtl("add-ls", "ls0")
            try await fixture.vtepCtl("set", "Logical_Switch", "ls0", "tunnel_key=5000")
            try await fixture.vtepCtl("bind-ls", "ps0", "p1", "0", "ls0")
            try await waitUntil("ls0 bound") { sink.last?.switches.map(\.name) == ["ls0"] }
            let before = try #require(sink.last)
            let deliveries = sink.snapshots.count

            // Stopped and kept down: the last snapshot stays in force, also once the plane has
            // seen a reconnection fail (a later event than the disconnect, so a snapshot the
            // disconnect wrongly caused would be there by then).
            await server.stop()
            try await waitUntil("the disconnect") { await !plane.isSynchronized }
            try await waitUntil("a failed reconnection") {
                await plane.lastDisconnect?.hasPrefix("cannot connect") == true
            }
            #expect(await plane.snapshot == before)
            #expect(sink.snapshots.count == deliveries)
            #expect(await plane.lastDisconnect != nil)

            // Changed behind our back: the VNI, and our switch gone from Global (so it and its
            // ports are garbage-collected, RFC 7047 §3.2 non-root tables).
            try await ChildProcess.run(
                server.ovsdbTool,
                [
                    "transact", server.databasePath,
                    #"""
                    ["hardware_vtep",
                     {"op":"update","table":"Logical_Switch","where":[["name","==","ls0"]],
                      "row":{"tunnel_key":6000}},
                     {"op":"update","table":"Global","where":[],"row":{"switches":["set",[]]}}]
                    """#,
                ])
            try await server.start()

            // Bootstrap recreates ps0 with its ports; the binding went with the old row.
            try await waitUntil("the resynchronised snapshot") {
                sink.last?.ports == ["p0", "p1"] && sink.last?.bindings == []
                    && sink.last != before
            }
            #expect(await plane.isSynchronized)
            #expect(try await fixture.vtepCtl("list-ports", "ps0") == "p0\np1\n")
            try await fixture.vtepCtl("bind-ls", "ps0", "p1", "0", "ls0")
            try await waitUntil("ls0 with its new VNI") {
                sink.last?.switches.map(\.vni.rawValue) == [6000]
            }
            await plane.stop()
        }
    }

    @Test func aCrashedServerIsRestartedAndTheControlPlaneFollows() async throws {
        try await withServer { fixture in
            let sink = SnapshotSink()
            let plane = try await controlPlane(fixture, sink)
            let first = try #require(await fixture.server.pid)
            #expect(await fixture.server.signal(SIGKILL))
            try await waitUntil("the restart and resynchronisation") {
                let pid = await fixture.server.pid
                let synchronizations = await plane.client.synchronizations
                return pid != nil && pid != first && synchronizations == 2
            }
            try await fixture.vtepCtl("add-ls", "ls1")
            try await fixture.vtepCtl("set", "Logical_Switch", "ls1", "tunnel_key=1")
            try await fixture.vtepCtl("bind-ls", "ps0", "p0", "0", "ls1")
            try await waitUntil("ls1 bound") { sink.last?.switches.map(\.name) == ["ls1"] }
            await plane.stop()
        }
    }

    @Test func problemsAreKeptForTheControlSocket() async throws {
        try await withServer { fixture in
            let sink = SnapshotSink()
            try await fixture.vtepCtl("add-ps", "ps0")
            try await fixture.vtepCtl("add-port", "ps0", "old")
            let plane = try await controlPlane(fixture, sink)
            try await fixture.vtepCtl("add-ls", "nokey")
            try await fixture.vtepCtl("bind-ls", "ps0", "p0", "5", "nokey")
            try await waitUntil("the problem") { await plane.problems.count == 2 }
            let problems = await plane.problems
            #expect(
                problems[0].hasPrefix("Physical_Port old of Physical_Switch ps0 is in the database")
            )
            #expect(sink.last?.ports == ["old", "p0", "p1"])
            #expect(
                problems[1].hasPrefix(
                    "Logical_Switch nokey (bound on p0 VLAN 5) is not forwarded: it has no tunnel_key"
                ))
            await plane.stop()
        }
    }
}
