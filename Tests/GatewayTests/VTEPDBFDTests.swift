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
            // Only BFD crosses: the site's GRE port (its host's IPv6 noise would count as
            // unknown_vni at vtepd) goes.
            try ovs.vsctl(["del-port", "br-int", "gre0"])
            // OVS's BFD tunnel on a bridge of its own (as ovs-vtep's vtep_bfd): VXLAN
            // without a key (VNI 0), 100 ms both ways; nothing else goes into VNI 0.
            try ovs.vsctl([
                "add-br", "br-bfd", "--", "set", "bridge", "br-bfd", "datapath_type=netdev", "--",
                "add-port", "br-bfd", "bfd0", "--", "set", "interface", "bfd0", "type=vxlan",
                "options:remote_ip=\(a.tunnelIP)", "bfd:enable=true", "bfd:min_tx=100",
                "bfd:min_rx=100",
            ])
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
                "set", "Tunnel", tunnel, "bfd_params:enable=true", "bfd_params:min_tx=100",
                "bfd_params:min_rx=100",
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
            // Both poll sequences done: 100 ms each way, so the detection time is 300 ms.
            try waitUntil("OVS at 100 ms both ways", timeout: .seconds(5)) {
                let show = try ovs.appctl(["bfd/show"]).output
                return show.contains("TX Interval: Approx 100ms")
                    && show.contains("RX Interval: Approx 100ms")
            }
            print("BFD up in our database \(upAfter) after bfd_params:enable=true")
            #expect(upAfter < .seconds(4))

            // The peer dies: detection time is 3 × 100 ms; the row follows within a round.
            let killed = ContinuousClock.now
            _ = ovs.vswitchd.stop(signal: SIGKILL)
            try waitUntil("bfd_status:state=down", timeout: .seconds(3)) {
                try get("bfd_status:state") == "down"
            }
            let downAfter = ContinuousClock.now - killed
            print("BFD down in our database \(downAfter) after the peer was killed")
            #expect(downAfter < .milliseconds(900))
            #expect(try get("bfd_status:diagnostic") == "Control Detection Time Expired")
            #expect(try get("bfd_status:forwarding") == "false")
            let counters = try vtepd.dropCounters()
            #expect((counters.drops["unknown_vni"] ?? 0) == 0, "\(counters)")
            try vtepd.process.requireRunning()
        }
    }
}
