import Foundation
import OVSDB
import Synchronization
import TestSupport
import Testing

/// A 3-member Raft cluster of the hardware_vtep database (`ovsdb-tool create-cluster` /
/// `join-cluster`, three `ovsdb-server`s in the gateway's namespace, Raft on that namespace's
/// 127.0.0.1), reached by vtepd and vtep-ctl through the members' Unix sockets
/// (`--database unix:A,unix:B,unix:C`). Every server is the lab's, stopped by PID.
struct LabCluster {
    struct Member {
        var process: LabProcess
        let socket: String
        let control: String
        /// How it was started, to start it again.
        let arguments: [String]
        let namespace: String
    }
    var members: [Member]

    /// Stops member `index` (SIGTERM, by PID) and starts it again on its database file.
    mutating func restart(_ lab: Lab, _ index: Int) throws {
        members[index].process.stop()
        let member = members[index]
        members[index].process = try lab.start(
            "ovsdb-server-cluster-\(index)-again", member.arguments, in: member.namespace)
        try lab.waitForSocket(member.socket, of: members[index].process)
    }

    /// The members as a client names the cluster.
    var remote: String { members.map { "unix:" + $0.socket }.joined(separator: ",") }

    /// `ovs-appctl cluster/status hardware_vtep` of member `index`.
    func status(_ lab: Lab, _ index: Int) throws -> String {
        try lab.execute([
            "ovs-appctl", "-t", members[index].control, "cluster/status", "hardware_vtep",
        ]).output
    }

    /// `vtep-ctl --db=MEMBERS ARGUMENTS`: through the cluster's leader.
    func vtepCtl(_ lab: Lab, _ arguments: [String]) throws {
        try lab.execute(["vtep-ctl", "--db=\(remote)", "--timeout=20"] + arguments)
    }

    /// The member that is the leader now, nil while there is none (or it is not known).
    func leader(_ lab: Lab) -> Int? {
        members.indices.first { index in
            members[index].process.isRunning
                && ((try? status(lab, index))?.contains("Role: leader") ?? false)
        }
    }
}

extension Lab {
    /// Creates and starts the cluster in `namespace`, one member per Raft port; returns once it
    /// has a leader and every member has joined.
    func startVTEPCluster(in namespace: String, raftPorts: ClosedRange<Int> = 16641...16643)
        throws -> LabCluster
    {
        let schema = "/usr/share/openvswitch/vtep.ovsschema"
        let directory = file("cluster")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        let raft = raftPorts.map { "tcp:127.0.0.1:\($0)" }
        var members: [LabCluster.Member] = []
        for (index, address) in raft.enumerated() {
            let db = path("db\(index).db")
            if index == 0 {
                try execute(["ovsdb-tool", "create-cluster", db, schema, address])
            } else {
                try execute(["ovsdb-tool", "join-cluster", db, "hardware_vtep", address, raft[0]])
            }
            let socket = path("db\(index).sock")
            let control = path("db\(index).ctl")
            let arguments = [
                "ovsdb-server", db, "--remote=punix:\(socket)", "--unixctl=\(control)",
                "--pidfile=\(path("db\(index).pid"))", "--log-file=\(path("db\(index).log"))",
                "-vconsole:off", "--no-chdir",
            ]
            let process = try start("ovsdb-server-cluster-\(index)", arguments, in: namespace)
            try waitForSocket(socket, of: process)
            members.append(
                .init(
                    process: process, socket: socket, control: control, arguments: arguments,
                    namespace: namespace))
        }
        let cluster = LabCluster(members: members)
        try waitUntil("the cluster elects a leader and all its members join") {
            guard cluster.leader(self) != nil else { return false }
            return try members.indices.allSatisfy {
                try cluster.status(self, $0).contains("Status: cluster member")
            }
        }
        return cluster
    }
}

@Suite("vtepd follows a clustered hardware_vtep database", .serialized)
struct VTEPDClusterTests {
    /// An OVSDB client given the followers first passes them over (not the leader) and
    /// monitors the leader.
    static func clientSkipsFollowers(_ lab: Lab, _ cluster: LabCluster) throws {
        let leader = try #require(cluster.leader(lab))
        let order = cluster.members.indices.filter { $0 != leader } + [leader]
        let remote = try Remote(
            order.map { "unix:" + cluster.members[$0].socket }.joined(separator: ","))
        let client = OVSDBClient(remote: remote, monitoring: HardwareVTEP.monitorRequests)
        let reasons = Mutex<[String]>([])
        let done = DispatchSemaphore(value: 0)
        Task {
            await client.start()
            for await event in client.events {
                if case .disconnected(let reason) = event { reasons.withLock { $0.append(reason) } }
                if case .synchronized = event { break }
            }
            done.signal()
        }
        // Generous: under the whole suite the test process's cooperative threads are busy.
        #expect(
            done.wait(timeout: .now() + 120) == .success,
            "no monitor established: \(reasons.withLock { $0 })")
        let member = Mutex<Remote?>(nil)
        let stopped = DispatchSemaphore(value: 0)
        Task {
            let followed = await client.member
            member.withLock { $0 = followed }
            await client.stop()
            stopped.signal()
        }
        stopped.wait()
        let skipped = reasons.withLock { $0 }
        // Leadership may have moved meanwhile (ovsdb-server hands it over to compact its log):
        // the member followed is the leader now.
        let now = try #require(cluster.leader(lab))
        #expect(member.withLock { $0 } == .unix(path: cluster.members[now].socket), "\(skipped)")
        if now == leader {
            #expect(
                skipped.count == 2
                    && skipped.allSatisfy { $0.contains("not the cluster's leader") },
                "\(skipped)")
        }
    }

    @Test(
        "3-member Raft cluster: the leader killed under traffic, vtepd follows the new leader, no ping lost, the next vtep-ctl change applies"
    )
    func followsTheNewLeader() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let cluster = try lab.startVTEPCluster(in: a.namespace)
            try Self.clientSkipsFollowers(lab, cluster)
            let vtepd = try lab.startVTEPD(at: a, vni: 5001, database: cluster.remote)
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try lab.replicate(from: b, to: [a])
            try lab.warmUnderlay(topology)
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3).received == 3)

            let first = try #require(cluster.leader(lab))
            func followed() throws -> String {
                try vtepd.configuration()["database"] as? String ?? ""
            }
            try waitUntil("vtepd follows the leader", lastSeen: try followed()) {
                try followed().hasPrefix("connected to unix:\(cluster.members[first].socket) ")
            }

            // Pings every 100 ms while the leader dies.
            let output = lab.file("ping.out")
            let ping = try lab.start(
                "ping", ["ping", "-n", "-c", "40", "-i", "0.1", "-W", "2", b.hostIPv4],
                in: a.hostNamespace, output: output)
            Thread.sleep(forTimeInterval: 0.5)
            cluster.members[first].process.stop(signal: SIGKILL)
            let second = try waitUntil("the cluster elects another leader") {
                cluster.leader(lab).flatMap { $0 == first ? nil : $0 }
            }
            try waitUntil("vtepd follows the new leader", lastSeen: try followed()) {
                try followed().hasPrefix("connected to unix:\(cluster.members[second].socket) ")
            }
            #expect(ping.waitForExit(timeout: .seconds(30)))
            let summary = try String(contentsOf: output, encoding: .utf8)
            #expect(summary.contains("40 packets transmitted, 40 received"), "\(summary)")

            // The next change through the cluster reaches vtepd.
            let mac = "02:00:00:00:cc:01"
            try vtepd.control(["add-ucast-remote", vtepd.logicalSwitch, mac, b.tunnelIP])
            try waitUntil("vtepd installs the static MAC written after the failover") {
                let entry = try vtepd.macEntry(mac)
                return entry?.isStatic == true && entry?.vtep == b.tunnelIP
            }
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3).received == 3)
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "The leader hands leadership over and stays up: vtepd leaves it for the new leader, the next vtep-ctl change applies"
    )
    func leavesAMemberThatStopsLeading() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let cluster = try lab.startVTEPCluster(in: a.namespace, raftPorts: 16651...16653)
            let vtepd = try lab.startVTEPD(at: a, vni: 5001, database: cluster.remote)
            let first = try #require(cluster.leader(lab))
            func followed() throws -> String {
                try vtepd.configuration()["database"] as? String ?? ""
            }
            try waitUntil("vtepd follows the leader", lastSeen: try followed()) {
                try followed().hasPrefix("connected to unix:\(cluster.members[first].socket) ")
            }
            // It stays up, a member, its connection to vtepd open: only its _Server database
            // says it no longer leads (ovsdb-server's own test hook hands leadership over).
            try lab.execute([
                "ovs-appctl", "-t", cluster.members[first].control, "cluster/failure-test",
                "transfer-leadership",
            ])
            let second = try waitUntil("the others elect a leader") {
                cluster.members.indices.first { index in
                    index != first
                        && ((try? cluster.status(lab, index))?.contains("Role: leader") ?? false)
                }
            }
            try waitUntil("vtepd follows the new leader", lastSeen: try followed()) {
                try followed().hasPrefix("connected to unix:\(cluster.members[second].socket) ")
            }
            #expect(cluster.members[first].process.isRunning)
            #expect(try cluster.status(lab, first).contains("Status: cluster member"))
            let mac = "02:00:00:00:cc:02"
            try vtepd.control(["add-ucast-remote", vtepd.logicalSwitch, mac, b.tunnelIP])
            try waitUntil("vtepd installs the static MAC written after the handover") {
                try vtepd.macEntry(mac)?.isStatic == true
            }
            try vtepd.process.requireRunning()
        }
    }

    /// The monitored tables as `select` reads them now, and the client's replica, both with
    /// every value in one spelling (a set of one and its atom alike, sets sorted).
    static func replicaAndDatabase(_ client: OVSDBClient) async throws -> (
        [String: [OVSDB.UUID: [String: Datum]]], [String: [OVSDB.UUID: [String: Datum]]]
    ) {
        func canonical(_ datum: Datum) -> Datum {
            if case .map = datum { return datum }
            if let pairs = datum.pairs, pairs.isEmpty, datum.atoms.isEmpty { return .set([]) }
            return .set(datum.atoms.sorted())
        }
        func canonicalRows(_ rows: [OVSDB.UUID: Row]) -> [OVSDB.UUID: [String: Datum]] {
            rows.mapValues { $0.columns.filter { !$0.key.hasPrefix("_") }.mapValues(canonical) }
        }
        let requests = HardwareVTEP.monitorRequests
        let results = try await client.transact(
            requests.map {
                .select(table: $0.table, where: [], columns: $0.columns.map { ["_uuid"] + $0 })
            })
        var database: [String: [OVSDB.UUID: [String: Datum]]] = [:]
        for (request, result) in zip(requests, results) {
            var rows: [OVSDB.UUID: Row] = [:]
            for row in result.rows ?? [] {
                guard case .atom(.uuid(let uuid))? = row["_uuid"] else { continue }
                rows[uuid] = row
            }
            database[request.table] = canonicalRows(rows)
        }
        let replica = await client.replica
        return (replica.tables.mapValues(canonicalRows), database)
    }

    @Test(
        "monitor_cond_since: the replica follows update3 diffs (sets, maps, optional columns); the leader killed, it follows the new one, changes made meanwhile included"
    )
    func resumesFromTheLastTransaction() async throws {
        try await Lab.runOnOwnThread { lab in
            let namespace = try lab.namespace("c")
            let cluster = try lab.startVTEPCluster(in: namespace, raftPorts: 16661...16663)
            func vtepCtl(_ arguments: [String]) throws { try cluster.vtepCtl(lab, arguments) }
            try vtepCtl(["add-ps", "ps0"])
            try vtepCtl(["add-port", "ps0", "p0"])
            try vtepCtl(["add-ls", "ls0"])
            try vtepCtl([
                "set", "Logical_Switch", "ls0", "tunnel_key=5001", "other_config:a=1",
                "other_config:b=2",
            ])
            let client = OVSDBClient(
                remote: try Remote(cluster.remote), monitoring: HardwareVTEP.monitorRequests,
                backoff: Backoff(initial: .milliseconds(100), maximum: .milliseconds(400)))
            let watch = ReplicaWatch(client)
            defer { watch.stop() }
            try waitUntil("the replica is the database", timeout: .seconds(120)) {
                watch.state.withLock { $0.same }
            }

            // Changes while connected arrive as update3 diffs.
            try vtepCtl(["bind-ls", "ps0", "p0", "100", "ls0"])
            try vtepCtl([
                "set", "Logical_Switch", "ls0", "tunnel_key=5002", "other_config:a=9", "--",
                "remove", "Logical_Switch", "ls0", "other_config", "b",
            ])
            try vtepCtl(["add-ucast-remote", "ls0", "02:00:00:00:dd:01", "192.0.2.7"])
            try vtepCtl(["set", "Physical_Switch", "ps0", "tunnel_ips=[\"10.0.0.1\",\"10.0.0.2\"]"])
            Thread.sleep(forTimeInterval: 0.3)
            try waitUntil(
                "the replica follows the diffs", timeout: .seconds(120),
                lastSeen: watch.difference.withLock { $0 }
            ) {
                watch.state.withLock { $0.same }
            }
            #expect(watch.state.withLock { $0.synchronizations } == 1)

            // The leader dies; the client goes on with the new leader: resumed from its last
            // transaction when that member kept the history, else with the whole contents
            // (ovsdb-server(7)); either way the replica is the database, changes made
            // meanwhile included.
            let first = try #require(cluster.leader(lab))
            cluster.members[first].process.stop(signal: SIGKILL)
            // During the election vtep-ctl may find no leader: it is asked again.
            try waitUntil("vtep-ctl writes through the new leader") {
                (try? lab.attempt([
                    "vtep-ctl", "--db=\(cluster.remote)", "--timeout=5", "clear", "Logical_Switch",
                    "ls0", "tunnel_key", "--", "del-ucast-remote", "ls0", "02:00:00:00:dd:01", "--",
                    "unbind-ls", "ps0", "p0", "100", "--", "add-ls", "ls1", "--", "set",
                    "Physical_Switch", "ps0", "tunnel_ips=[\"10.0.0.2\"]",
                ]).status) == 0
            }
            try waitUntil(
                "the client follows the new leader and the replica is the database",
                timeout: .seconds(120),
                lastSeen: "\(watch.state.withLock { $0 })\n" + watch.difference.withLock { $0 }
            ) {
                watch.state.withLock { $0.synchronizations >= 2 && $0.same }
            }
        }
    }

    @Test(
        "monitor_cond_since: a member restarted (its history read back from disk) resumes the client from its last transaction, then update3 goes on"
    )
    func resumesOnARestartedMember() async throws {
        try await Lab.runOnOwnThread { lab in
            let namespace = try lab.namespace("c")
            var cluster = try lab.startVTEPCluster(in: namespace, raftPorts: 16671...16671)
            func vtepCtl(_ arguments: [String]) throws { try cluster.vtepCtl(lab, arguments) }
            try vtepCtl(["add-ps", "ps0"])
            try vtepCtl(["add-ls", "ls0", "--", "set", "Logical_Switch", "ls0", "tunnel_key=7"])
            // A lone member is still "clustered": the client monitors it with
            // monitor_cond_since (a list of one is no cluster to the client, so two names).
            let remote = try Remote(
                "unix:\(cluster.members[0].socket),unix:\(lab.file("none.sock").path)")
            let client = OVSDBClient(
                remote: remote, monitoring: HardwareVTEP.monitorRequests,
                backoff: Backoff(initial: .milliseconds(100), maximum: .milliseconds(400)))
            let watch = ReplicaWatch(client)
            defer { watch.stop() }
            try waitUntil("the replica is the database", timeout: .seconds(120)) {
                watch.state.withLock { $0.same }
            }
            try vtepCtl(["set", "Logical_Switch", "ls0", "tunnel_key=8"])
            try waitUntil("the replica follows", timeout: .seconds(120)) {
                watch.state.withLock { $0.same }
            }

            try cluster.restart(lab, 0)
            try waitUntil(
                "the client resumes from its last transaction", timeout: .seconds(120),
                lastSeen: "\(watch.state.withLock { $0 })"
            ) {
                watch.state.withLock { $0.synchronizations == 2 && $0.resumptions == 1 && $0.same }
            }
            try vtepCtl(["add-ls", "ls1", "--", "set", "Logical_Switch", "ls0", "tunnel_key=9"])
            try waitUntil("update3 goes on after the resumption", timeout: .seconds(120)) {
                watch.state.withLock { $0.same && $0.synchronizations == 2 }
            }
        }
    }
}

/// Every 50 ms, whether an OVSDB client's replica equals the database read afresh (with the
/// client's counts), and the differences; the client is started here and stopped by `stop()`.
final class ReplicaWatch: Sendable {
    let state = Mutex<(synchronizations: Int, resumptions: Int, same: Bool)>((0, 0, false))
    let difference = Mutex<String>("")
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ client: OVSDBClient) {
        let task = Task { [self] in
            await client.start()
            while !Task.isCancelled {
                let (replica, database) =
                    (try? await VTEPDClusterTests.replicaAndDatabase(client)) ?? ([:], ["": [:]])
                let counts = (await client.synchronizations, await client.resumptions)
                self.state.withLock { $0 = (counts.0, counts.1, replica == database) }
                var text = ""
                for (table, rows) in database where replica[table] != rows {
                    for (uuid, row) in rows where replica[table]?[uuid] != row {
                        let mine = replica[table]?[uuid] ?? [:]
                        for (column, value) in row where mine[column] != value {
                            text +=
                                "\(table) \(uuid) \(column): replica"
                                + " \(String(describing: mine[column])), database \(value)\n"
                        }
                    }
                    text += "\(table): \(rows.count) rows, replica \(replica[table]?.count ?? 0)\n"
                }
                self.difference.withLock { $0 = text }
                try? await Task.sleep(for: .milliseconds(50))
            }
            await client.stop()
        }
        self.task.withLock { $0 = task }
    }

    func stop() { task.withLock { $0?.cancel() } }
}
