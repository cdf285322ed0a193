import Foundation
import Testing

/// The lab against itself: Linux kernel VTEPs on both ends, so what these tests count is
/// known exactly. If they pass, a vtepd test built on the same lab counts right too.
@Suite("Lab: kernel vxlan against kernel vxlan", .serialized)
struct LabSelfTests {
    /// The inner broadcast frame of `Lab.sendBroadcastPing`, seen through a VXLAN header.
    static let broadcastInVNI5001 =
        "vxlan.vni == 5001 && eth.dst == ff:ff:ff:ff:ff:ff && icmp.type == 8"
    static let broadcastOnHost = "eth.dst == ff:ff:ff:ff:ff:ff && icmp.type == 8"

    @Test("two kernel VTEPs over IPv4: ping, learning, 4 MiB over TCP, one broadcast copy")
    func twoSitesIPv4() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.kernel(vni: 5001), .kernel(vni: 5001)])
            try checkTwoSites(lab, topology)
        }
    }

    @Test("two kernel VTEPs over IPv6: ping, learning, 4 MiB over TCP at inner MTU 1430")
    func twoSitesIPv6() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology(
                [.kernel(vni: 5001), .kernel(vni: 5001)], family: .ipv6)
            try checkTwoSites(lab, topology)
        }
    }

    private func checkTwoSites(_ lab: Lab, _ topology: LabTopology) throws {
        let (a, b) = (topology.sites[0], topology.sites[1])
        try lab.replicate(from: a, to: [b])
        try lab.replicate(from: b, to: [a])

        let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
        #expect(ping == LabPingResult(transmitted: 3, received: 3))

        // Each VTEP learned the other's host behind the other's tunnel IP (RFC 7348 §4.1).
        let fdbA = try lab.forwardingDatabase(in: a.namespace)
        let fdbB = try lab.forwardingDatabase(in: b.namespace)
        #expect(fdbA.contains { $0.mac == b.hostMAC && $0.destination == b.tunnelIP })
        #expect(fdbB.contains { $0.mac == a.hostMAC && $0.destination == a.tunnelIP })
        #expect(!fdbA.contains { $0.mac == a.hostMAC && $0.destination != nil })

        // Full-size segments at the inner MTU must cross without fragmentation or loss.
        try lab.transferTCP(from: a.hostNamespace, to: b.hostNamespace, address: b.hostIPv4)

        let senderPort = try lab.capture(
            on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
        let receiverPort = try lab.capture(
            on: topology.switchPorts[1], in: topology.switchNamespace, filter: "udp port 4789")
        let hostB = try lab.capture(
            on: b.hostInterface, in: b.hostNamespace, filter: Lab.icmpAndProbes)
        try lab.sendBroadcastPing(from: a.hostNamespace, to: "10.0.0.255")
        let probe = "02:00:00:00:9e:10"
        try lab.injectProbe(probe, from: a)
        #expect(
            try lab.stopAndCount(senderPort, matching: Self.broadcastInVNI5001, probe: probe) == 1)
        #expect(
            try lab.stopAndCount(receiverPort, matching: Self.broadcastInVNI5001, probe: probe)
                == 1)
        #expect(try lab.stopAndCount(hostB, matching: Self.broadcastOnHost, probe: probe) == 1)
    }

    @Test("head-end replication to three remotes: exactly one copy at each")
    func headEndReplication() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology(Array(repeating: .kernel(vni: 5001), count: 4))
            let source = topology.sites[0]
            let remotes = Array(topology.sites.dropFirst())
            try lab.replicate(from: source, to: remotes)

            let senderPort = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            let remotePorts = try topology.switchPorts.dropFirst().map {
                try lab.capture(on: $0, in: topology.switchNamespace, filter: "udp port 4789")
            }
            let hosts = try remotes.map {
                try lab.capture(
                    on: $0.hostInterface, in: $0.hostNamespace, filter: Lab.icmpAndProbes)
            }
            try lab.sendBroadcastPing(from: source.hostNamespace, to: "10.0.0.255")
            let probe = "02:00:00:00:9e:11"
            try lab.injectProbe(probe, from: source)

            #expect(
                try lab.stopAndCount(senderPort, matching: Self.broadcastInVNI5001, probe: probe)
                    == 3)
            for (remote, port) in zip(remotes, remotePorts) {
                try lab.stop(port, atProbe: probe)
                let toThis = "\(Self.broadcastInVNI5001) && ip.dst == \(remote.tunnelIP)"
                #expect(try lab.count(in: port.file, matching: Self.broadcastInVNI5001) == 1)
                #expect(try lab.count(in: port.file, matching: toThis) == 1)
            }
            for host in hosts {
                #expect(
                    try lab.stopAndCount(host, matching: Self.broadcastOnHost, probe: probe) == 1)
            }
        }
    }

    @Test("multicast group 239.1.1.1: one copy on the wire reaches every member")
    func multicastGroup() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology(
                Array(repeating: .kernel(vni: 5001, group: "239.1.1.1"), count: 3))
            let source = topology.sites[0]
            let members = Array(topology.sites.dropFirst())
            let ports = try topology.switchPorts.map {
                try lab.capture(on: $0, in: topology.switchNamespace, filter: "udp port 4789")
            }
            let hosts = try members.map {
                try lab.capture(
                    on: $0.hostInterface, in: $0.hostNamespace, filter: Lab.icmpAndProbes)
            }
            try lab.sendBroadcastPing(from: source.hostNamespace, to: "10.0.0.255")
            let probe = "02:00:00:00:9e:12"
            try lab.injectProbe(probe, from: source)

            let toGroup = "\(Self.broadcastInVNI5001) && ip.dst == 239.1.1.1"
            for port in ports {
                try lab.stop(port, atProbe: probe)
                #expect(try lab.count(in: port.file, matching: Self.broadcastInVNI5001) == 1)
                #expect(try lab.count(in: port.file, matching: toGroup) == 1)
            }
            for host in hosts {
                #expect(
                    try lab.stopAndCount(host, matching: Self.broadcastOnHost, probe: probe) == 1)
            }
            // The members answer unicast, and learn the source host from the group frame.
            let ping = try lab.ping(from: source.hostNamespace, to: members[1].hostIPv4, count: 2)
            #expect(ping.received == 2)
            let fdb = try lab.forwardingDatabase(in: members[1].namespace)
            #expect(fdb.contains { $0.mac == source.hostMAC && $0.destination == source.tunnelIP })
        }
    }

    @Test("a failing lab still removes its namespaces and stops its processes")
    func teardownOnFailure() throws {
        struct Planned: Error {}
        let made = Made()
        #expect(throws: Planned.self) {
            try Lab.run { lab in
                made.prefix = lab.prefix
                let namespace = try lab.namespace("x")
                made.process = try lab.start("sleeper", ["sleep", "600"], in: namespace)
                made.directory = lab.directory
                throw Planned()
            }
        }
        let namespaces = try String(
            decoding: Self.output(["ip", "netns", "list"]), as: UTF8.self)
        #expect(!namespaces.contains(made.prefix))
        let pid = try #require(made.process?.pid)
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
        // Kept for the post-mortem; removed here so the test leaves nothing behind.
        if let directory = made.directory { try? FileManager.default.removeItem(at: directory) }
    }

    @Test("what a lab's process left running in its namespace is stopped with the lab")
    func leftoversStopped() throws {
        let made = Made()
        try Lab.run { lab in
            let namespace = try lab.namespace("o")
            // The shell starts a sleeper and exits at once: the sleeper, orphaned, is not a
            // process the lab started (as an ovsdb-server a killed vtepd leaves).
            let starter = try lab.start(
                "starter", ["sh", "-c", "sleep 600 </dev/null >/dev/null 2>&1 & echo $!"],
                in: namespace)
            #expect(starter.waitForExit(timeout: .seconds(5)))
            let text = try String(contentsOf: starter.log, encoding: .utf8)
            made.orphan = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            made.directory = lab.directory
        }
        let orphan = try #require(made.orphan)
        #expect(kill(orphan, 0) == -1 && errno == ESRCH, "pid \(orphan) outlived its lab")
        if let directory = made.directory { try? FileManager.default.removeItem(at: directory) }
    }

    @Test("a process that dies is reported with the tail of its log")
    func deadProcessIsReported() throws {
        try Lab.run { lab in
            let namespace = try lab.namespace("p")
            let process = try lab.start(
                "talker", ["sh", "-c", "echo first line; echo last words >&2; exit 3"],
                in: namespace)
            #expect(process.waitForExit(timeout: .seconds(5)))
            let error = #expect(throws: LabError.self) { try process.requireRunning() }
            #expect(error?.description.contains("exited with 3") == true)
            #expect(error?.description.contains("last words") == true)
        }
    }

    private final class Made: @unchecked Sendable {
        var orphan: pid_t?
        var prefix = "unset"
        var process: LabProcess?
        var directory: URL?
    }

    private static func output(_ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Lab.executable(arguments[0])!)
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return data
    }
}
