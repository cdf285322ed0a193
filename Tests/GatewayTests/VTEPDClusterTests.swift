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
        let process: LabProcess
        let socket: String
        let control: String
    }
    let members: [Member]

    /// The members as a client names the cluster.
    var remote: String { members.map { "unix:" + $0.socket }.joined(separator: ",") }

    /// `ovs-appctl cluster/status hardware_vtep` of member `index`.
    func status(_ lab: Lab, _ index: Int) throws -> String {
        try lab.execute([
            "ovs-appctl", "-t", members[index].control, "cluster/status", "hardware_vtep",
        ]).output
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
    /// Creates and starts the cluster in `namespace`; returns once it has a leader and every
    /// member has joined.
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
            let process = try start(
                "ovsdb-server-cluster-\(index)",
                [
                    "ovsdb-server", db, "--remote=punix:\(socket)", "--unixctl=\(control)",
                    "--pidfile=\(path("db\(index).pid"))", "--log-file=\(path("db\(index).log"))",
                    "-vconsole:off", "--no-chdir",
                ], in: namespace)
            try waitForSocket(socket, of: process)
            members.append(.init(process: process, socket: socket, control: control))
        }
        let cluster = LabCluster(members: members)
        try waitUntil("the cluster elects a leader and all three members join") {
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
        #expect(done.wait(timeout: .now() + 20) == .success, "no monitor established")
        let member = Mutex<Remote?>(nil)
        let stopped = DispatchSemaphore(value: 0)
        Task {
            let followed = await client.member
            member.withLock { $0 = followed }
            await client.stop()
            stopped.signal()
        }
        stopped.wait()
        #expect(member.withLock { $0 } == .unix(path: cluster.members[leader].socket))
        let skipped = reasons.withLock { $0 }
        #expect(
            skipped.count == 2 && skipped.allSatisfy { $0.contains("not the cluster's leader") },
            "\(skipped)")
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
}
