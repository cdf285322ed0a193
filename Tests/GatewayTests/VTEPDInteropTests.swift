import Foundation
import Testing

/// vtepd against the Linux kernel's vxlan + bridge as the far VTEP, checked on the wire.
@Suite("vtepd against the Linux kernel's vxlan", .serialized)
struct VTEPDInteropTests {
    @Test("IPv4 underlay: ping, learning both ways, 4 MiB over TCP at MTU 1450, one broadcast copy")
    func kernelPeerIPv4() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            try check(lab, topology)
        }
    }

    @Test("IPv6 underlay: ping, learning both ways, 4 MiB over TCP at MTU 1430, one broadcast copy")
    func kernelPeerIPv6() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)], family: .ipv6)
            try check(lab, topology)
        }
    }

    @Test(
        "IPv6 underlay, super-frames cut by vtepd (vxlan-transmit trains), trains through the packet socket and through UDP sockets (UDP_SEGMENT): the same",
        arguments: ["packet-socket", "udp-socket"]
    )
    func kernelPeerIPv6Trains(path: String) async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)], family: .ipv6)
            try check(
                lab, topology, arguments: ["--vxlan-transmit", "trains", "--vxlan-trains", path])
        }
    }

    @Test(
        "IPv4 underlay, every veth's offloads off (NICs without offloads): the same, plain frames only"
    )
    func kernelPeerIPv4WithoutOffloads() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)], offloads: .off)
            try check(lab, topology)
        }
    }

    private func check(_ lab: Lab, _ topology: LabTopology, arguments: [String] = []) throws {
        let (a, b) = (topology.sites[0], topology.sites[1])
        let vtepd = try lab.startVTEPDBesideKernelVTEP(topology, arguments: arguments)

        let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
        #expect(ping == LabPingResult(transmitted: 3, received: 3))

        // The kernel learned host A behind our tunnel IP; we learned host B behind theirs.
        let fdbB = try lab.forwardingDatabase(in: b.namespace)
        #expect(fdbB.contains { $0.mac == a.hostMAC && $0.destination == a.tunnelIP })
        let table = try vtepd.show("mac-table")
        #expect(table.contains(b.hostMAC) && table.contains(b.tunnelIP), "\(table)")
        #expect(table.contains(a.hostMAC), "\(table)")

        let before = try vtepd.offloadCounters()
        try lab.transferTCP(from: a.hostNamespace, to: b.hostNamespace, address: b.hostIPv4)
        try lab.transferTCP(from: b.hostNamespace, to: a.hostNamespace, address: a.hostIPv4)
        let after = try vtepd.offloadCounters()
        let grew = { (name: String) in after[name]! > before[name]! }
        switch topology.offloads {
        case .on:
            // Host A's TSO super-frames were cut for the tunnel, with their checksums; with
            // `vxlan-transmit trains`, by vtepd, into UDP GSO trains.
            #expect(grew("super_frames_in") && grew("segments_out"), "\(after)")
            if arguments.contains("trains") {
                #expect(grew("trains_out") && !grew("tunnel_gso_out"), "\(after)")
            }
        case .off:
            // Plain frames with finished checksums only: nothing to cut or to finish; the
            // frames of a TCP stream that came one by one left in UDP GSO trains, which the
            // kernel cut for the underlay and the peer took.
            #expect(!grew("super_frames_in") && !grew("segments_out"), "\(after)")
            #expect(!grew("checksums_completed"), "\(after)")
            #expect(grew("trains_coalesced"), "\(after)")
        }

        // One broadcast from host A: exactly one VXLAN copy leaves us, its UDP source port
        // from the inner-flow hash in 49152–65535 (RFC 7348 §5); one copy reaches host B.
        let out = try lab.capture(
            on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
        let hostB = try lab.capture(
            on: b.hostInterface, in: b.hostNamespace, filter: Lab.icmpAndProbes)
        try lab.sendBroadcastPing(from: a.hostNamespace, to: "10.0.0.255")
        let probe = "02:00:00:00:9e:14"
        try lab.injectProbe(probe, from: a)
        #expect(
            try lab.stopAndCount(
                out, matching: LabSelfTests.broadcastInVNI5001 + " && udp.srcport >= 49152",
                probe: probe) == 1)
        #expect(
            try lab.stopAndCount(hostB, matching: LabSelfTests.broadcastOnHost, probe: probe) == 1)
        try vtepd.process.requireRunning()
    }
}

extension Lab {
    /// vtepd at site A and the kernel's vxlan at site B (`[.gateway, .kernel(vni: 5001)]`),
    /// each flooding head-end (source node) to the other, so frames from the kernel VTEP are
    /// learned; the underlay's neighbours warmed.
    func startVTEPDBesideKernelVTEP(_ topology: LabTopology, arguments: [String] = []) throws
        -> LabVTEPD
    {
        let (a, b) = (topology.sites[0], topology.sites[1])
        let vtepd = try startVTEPD(at: a, vni: 5001, extraArguments: arguments)
        try vtepd.control([
            "set", "Logical_Switch", vtepd.logicalSwitch, "replication_mode=source_node",
        ])
        try replicate(from: a, to: [b], vtepd: vtepd)
        try replicate(from: b, to: [a])
        try warmUnderlay(topology)
        return vtepd
    }
}
