import Foundation
import TestSupport
import Testing

/// BFD over VXLAN VNI 0 against Open vSwitch's userspace datapath (a vxlan port with
/// `bfd:enable=true`), as NSX and ovs-vtep run it: vtepd's Tunnel row per remote VTEP, the
/// controller's `bfd_params`, and `bfd_status` following the peer up and down.
@Suite("vtepd BFD against Open vSwitch", .serialized)
struct VTEPDBFDTests {
    @Test(
        "session up both ways within the intervals; peer killed → bfd_status down within detection time"
    )
    func bfdWithOVS() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .gateway])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            try vtepd.control(["add-mcast-remote", vtepd.logicalSwitch, "unknown-dst", b.tunnelIP])
            let ovs = try lab.startOVS(
                at: b, remote: a.tunnelIP,
                remoteMAC: try lab.interfaceMAC(a.underlayInterface, in: a.namespace), key: 5001)
            try Self.addBFDTunnel(ovs, to: a.tunnelIP)
            try lab.warmUnderlay(topology)

            // vtepd creates the Tunnel row toward the remote VTEP, as ovs-vtep does.
            var tunnel = ""
            try waitUntil("a Tunnel row toward \(b.tunnelIP)", timeout: .seconds(10)) {
                tunnel =
                    try vtepd.control(["--columns=_uuid", "find", "Tunnel"]).output
                    .split(separator: ":").last.map {
                        $0.trimmingCharacters(in: .whitespacesAndNewlines)
                    } ?? ""
                return !tunnel.isEmpty
            }
            func get(_ key: String) throws -> String {
                try vtepd.control(["--if-exists", "get", "Tunnel", tunnel, key]).output
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                    .trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            #expect(try get("bfd_config_local:bfd_dst_mac") == "00:23:20:00:00:01")
            #expect(try get("bfd_config_local:bfd_dst_ip") == "169.254.1.0")
            #expect(try get("bfd_status:enabled") == "false")

            // The controller enables BFD: both sides up within a few intervals (the first
            // packets go at 1 s while down, RFC 5880 §6.8.3).
            let enabled = ContinuousClock.now
            try vtepd.control([
                "set", "Tunnel", tunnel, "bfd_params:enable=true", "bfd_params:min_tx=300",
                "bfd_params:min_rx=300",
            ])
            try waitUntil("bfd_status:state=up in our Tunnel row", timeout: .seconds(5)) {
                try get("bfd_status:state") == "up"
            }
            let upAfter = ContinuousClock.now - enabled
            try waitUntil("bfd_status:remote_state=up", timeout: .seconds(3)) {
                try get("bfd_status:remote_state") == "up"
            }
            #expect(try get("bfd_status:forwarding") == "true")
            #expect(try get("bfd_status:enabled") == "true")
            try waitUntil("OVS's session up", timeout: .seconds(3)) {
                let show = try ovs.appctl(["bfd/show"]).output
                return show.contains("Local Session State: up")
                    && show.contains("Remote Session State: up")
            }
            // Both poll sequences done: 300 ms each way, so our detection time is 900 ms.
            try waitUntil("OVS at 300 ms both ways", timeout: .seconds(5)) {
                let show = try ovs.appctl(["bfd/show"]).output
                return show.contains("Local Minimum TX Interval: 300ms")
                    && show.contains("Remote Minimum TX Interval: 300ms")
                    && show.contains("Remote Minimum RX Interval: 300ms")
            }
            print("BFD up in our database \(upAfter) after bfd_params:enable=true")
            var shown = ""
            try waitUntil("show switch tunnels: BFD up", timeout: .seconds(3), lastSeen: shown) {
                shown = try Self.showTunnels(vtepd)
                return shown.split(separator: "\n").contains {
                    $0.hasPrefix(b.tunnelIP) && $0.hasSuffix(" up")
                }
            }
            #expect(upAfter < .seconds(4))
            // On the wire, as tshark's own dissectors read it: BFD control packets up both
            // ways in VNI 0, to 00:23:20:00:00:01 with TTL 255 and UDP port 3784.
            let wire = try lab.capture(on: topology.switchPorts[1], in: topology.switchNamespace)
            Thread.sleep(forTimeInterval: 1.5)
            try lab.stop(wire, settle: .zero)
            for (source, destination) in [(a.tunnelIP, b.tunnelIP), (b.tunnelIP, a.tunnelIP)] {
                let filter =
                    "ip.src == \(source) && ip.dst == \(destination) && vxlan.vni == 0"
                    + " && eth.dst == 00:23:20:00:00:01 && ip.ttl == 255"
                    + " && udp.dstport == 3784 && bfd.sta == 3 && bfd.version == 1"
                    // OVS's site answers some VXLAN packets with port unreachable (its
                    // kernel sees them too), quoting them: those quotes are not counted.
                    + " && !icmp"
                let times = try lab.execute([
                    "tshark", "-n", "-r", wire.file.path, "-Y", filter, "-T", "fields", "-e",
                    "frame.time_relative",
                ]).output.split(separator: "\n").compactMap { Double($0) }
                #expect(times.count >= 3, "\(times.count) BFD packets \(source) → \(destination)")
                // 300 ms less up to 25 % jitter (RFC 5880 §6.8.7): 225–300 ms apart. A loaded
                // machine delays some; each stays well inside the 900 ms detection time and
                // the median where the timers put it.
                let gaps = zip(times, times.dropFirst()).map { $1 - $0 }.sorted()
                #expect(
                    gaps.allSatisfy { (0.15...0.6).contains($0) },
                    "BFD \(source) → \(destination) gaps \(gaps)")
                #expect(
                    gaps.isEmpty || (0.2...0.32).contains(gaps[gaps.count / 2]),
                    "BFD \(source) → \(destination) gaps \(gaps)")
            }
            // What VNI 5001 brought before OVS's GRE port went is not BFD's.
            let unknownBefore = try vtepd.dropCounters().drops["unknown_vni"] ?? 0

            // The peer dies: detection time is 3 × 300 ms; the row follows within a round
            // (100 ms) and a transaction.
            let killed = ContinuousClock.now
            _ = ovs.vswitchd.stop(signal: SIGKILL)
            try waitUntil("bfd_status:state=down", timeout: .seconds(3)) {
                try get("bfd_status:state") == "down"
            }
            let downAfter = ContinuousClock.now - killed
            print("BFD down in our database \(downAfter) after the peer was killed")
            #expect(downAfter < .milliseconds(1500))
            #expect(try get("bfd_status:diagnostic") == "Control Detection Time Expired")
            #expect(try get("bfd_status:forwarding") == "false")
            let after = try Self.showTunnels(vtepd)
            #expect(after.contains("down (Control Detection Time Expired)"), "\(after)")
            let counters = try vtepd.dropCounters()
            #expect((counters.drops["unknown_vni"] ?? 0) == unknownBefore, "\(counters)")
            try vtepd.process.requireRunning()
        }
    }

    /// Only BFD crosses from `ovs`: the site's GRE port goes (its host's IPv6 noise would count
    /// as unknown_vni at vtepd), and OVS's BFD tunnel goes on a bridge of its own (as
    /// ovs-vtep's vtep_bfd): VXLAN without a key (VNI 0), 300 ms both ways.
    static func addBFDTunnel(_ ovs: LabOVS, to remote: String) throws {
        try ovs.vsctl(["del-port", "br-int", "gre0"])
        try ovs.vsctl([
            "add-br", "br-bfd", "--", "set", "bridge", "br-bfd", "datapath_type=netdev", "--",
            "add-port", "br-bfd", "bfd0", "--", "set", "interface", "bfd0", "type=vxlan",
            "options:remote_ip=\(remote)", "bfd:enable=true", "bfd:min_tx=300", "bfd:min_rx=300",
        ])
    }

    /// The Tunnel rows of vtepd's database, by remote address.
    static func tunnels(_ vtepd: LabVTEPD) throws -> [String: String] {
        var result: [String: String] = [:]
        let uuids = try vtepd.control(["--bare", "--columns=_uuid", "find", "Tunnel"]).output
            .split(whereSeparator: \.isWhitespace).map(String.init)
        for uuid in uuids {
            let remote = try vtepd.control(["--bare", "get", "Tunnel", uuid, "remote"]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let ip = try vtepd.control(["--bare", "get", "Physical_Locator", remote, "dst_ip"])
                .output.trimmingCharacters(in: CharacterSet(charactersIn: "\"\n "))
            result[ip] = uuid
        }
        return result
    }

    /// `show switch tunnels` in vtepsh.
    static func showTunnels(_ vtepd: LabVTEPD) throws -> String {
        try vtepd.lab.execute([
            try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c",
            "show switch tunnels",
        ]).output
    }

    static func bfdState(_ vtepd: LabVTEPD, _ tunnel: String) throws -> String {
        try vtepd.control(["--if-exists", "get", "Tunnel", tunnel, "bfd_status:state"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func ipOrder(_ x: String, _ y: String) -> Bool {
        x.split(separator: ".").compactMap { Int($0) }
            .lexicographicallyPrecedes(y.split(separator: ".").compactMap { Int($0) })
    }

    @Test("service node failover: BUM to one live service node, the other once BFD finds it down")
    func serviceNodeFailover() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .gateway, .gateway])
            let a = topology.sites[0]
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            try vtepd.control([
                "set", "Logical_Switch", vtepd.logicalSwitch, "replication_mode=service_node",
            ])
            let aMAC = try lab.interfaceMAC(a.underlayInterface, in: a.namespace)
            var peers: [String: (ovs: LabOVS, port: String)] = [:]
            for i in [1, 2] {
                let site = topology.sites[i]
                try vtepd.control([
                    "add-mcast-remote", vtepd.logicalSwitch, "unknown-dst", site.tunnelIP,
                ])
                let ovs = try lab.startOVS(at: site, remote: a.tunnelIP, remoteMAC: aMAC, key: 5001)
                try Self.addBFDTunnel(ovs, to: a.tunnelIP)
                peers[site.tunnelIP] = (ovs, topology.switchPorts[i])
            }
            try lab.warmUnderlay(topology)
            let order = peers.keys.sorted(by: Self.ipOrder)
            let (primary, standby) = (order[0], order[1])

            var tunnels: [String: String] = [:]
            try waitUntil(
                "Tunnel rows toward both service nodes", timeout: .seconds(10),
                lastSeen: "\(tunnels); " + (try vtepd.control(["list", "Tunnel"]).output)
                    + (try vtepd.control(["list", "Physical_Locator"]).output)
            ) {
                tunnels = try Self.tunnels(vtepd)
                return Set(tunnels.keys) == Set(order)
            }
            for uuid in tunnels.values {
                try vtepd.control([
                    "set", "Tunnel", uuid, "bfd_params:enable=true", "bfd_params:min_tx=300",
                    "bfd_params:min_rx=300",
                ])
            }
            try waitUntil("both sessions up", timeout: .seconds(5)) {
                try tunnels.values.allSatisfy { try Self.bfdState(vtepd, $0) == "up" }
            }

            /// Broadcasts from vtepd's host, counted on each service node's wire.
            func broadcasts() throws -> [String: Int] {
                let captures = try order.map {
                    ($0, try lab.capture(on: peers[$0]!.port, in: topology.switchNamespace))
                }
                for _ in 0..<5 {
                    try lab.sendBroadcastPing(from: a.hostNamespace, to: "10.0.0.255")
                }
                var counts: [String: Int] = [:]
                for (ip, capture) in captures {
                    try lab.stop(capture)
                    // The OVS sites answer VNI 5001 with port unreachable (they have no
                    // port for it), quoting the echo: those quotes are not counted.
                    counts[ip] = try lab.count(
                        in: capture.file,
                        matching: "ip.src == \(a.tunnelIP) && vxlan.vni == 5001"
                            + " && eth.dst == ff:ff:ff:ff:ff:ff && icmp.type == 8"
                            + " && !(icmp.type == 3)")
                }
                return counts
            }
            let before = try broadcasts()
            #expect(before == [primary: 5, standby: 0], "\(before)")

            _ = peers[primary]!.ovs.vswitchd.stop(signal: SIGKILL)
            try waitUntil("the primary's session down", timeout: .seconds(3)) {
                try Self.bfdState(vtepd, tunnels[primary]!) == "down"
            }
            #expect(try Self.bfdState(vtepd, tunnels[standby]!) == "up")
            let after = try broadcasts()
            #expect(after == [primary: 0, standby: 5], "\(after)")
            try vtepd.process.requireRunning()
        }
    }
}
