import Foundation
import TestSupport
import Testing

/// vtepd as an OVN VTEP gateway: OVN's own daemons (ovn-northd, ovn-controller-vtep) program
/// it through its hardware_vtep database, as they program any hardware VTEP, and the frames
/// cross to a hypervisor chassis. Nothing of the switch's forwarding state is written by hand.
@Suite("vtepd programmed by OVN (ovn-northd, ovn-controller-vtep)", .serialized)
struct VTEPDOVNTests {
    @Test(
        "ovn-controller-vtep sets the VNI, the flood list and a VIF's MAC; a ping crosses to the chassis; a deleted VIF leaves vtepd"
    )
    func ovnProgramsTheGateway() async throws {
        try await Lab.runOnOwnThread { lab in
            let vni = 1000
            let (topology, vtepd) = try Self.gatewayWaitingForOVN(lab, vni: vni)
            let ovn = try lab.startOVN(
                vtepDatabase: vtepd.database, in: topology.sites[0].namespace)
            try Self.programAndCross(lab, topology, vtepd, ovn, vni: vni)
            try vtepd.process.requireRunning()
        }
    }

    /// vtepd at site 0 of a gateway–kernel lab, its logical switch without a VNI: the VNI is
    /// OVN's to choose (the datapath's tunnel key), and vtepd forwards nothing of the switch
    /// until OVN sets it.
    static func gatewayWaitingForOVN(_ lab: Lab, vni: Int) throws -> (LabTopology, LabVTEPD) {
        let topology = try lab.topology([.gateway, .kernel(vni: vni)])
        let vtepd = try lab.startVTEPD(at: topology.sites[0], vni: vni)
        let ls = vtepd.logicalSwitch
        try vtepd.control(["clear", "Logical_Switch", ls, "tunnel_key"])
        try waitUntil("vtepd stops forwarding \(ls), which has no VNI") {
            try vtepd.replication(of: ls) == nil
        }
        return (topology, vtepd)
    }

    /// OVN programs `vtepd`'s logical switch (site 0) for a VIF on a chassis whose VXLAN encap
    /// is site 1's kernel VTEP: the VNI, the flood list and the VIF's MAC reach vtepd's
    /// forwarding, a ping crosses with OVN's VNI both ways, and the VIF's deletion leaves
    /// vtepd. Whatever carries OVN to vtepd's database (a Unix socket, a manager over SSL).
    static func programAndCross(
        _ lab: Lab, _ topology: LabTopology, _ vtepd: LabVTEPD, _ ovn: LabOVN, vni: Int
    ) throws {
        let (a, b) = (topology.sites[0], topology.sites[1])
        let ls = vtepd.logicalSwitch
        try ovn.nbctl([
            "ls-add", "lsw", "--", "set", "Logical_Switch", "lsw",
            "other_config:requested-tnl-key=\(vni)",
        ])
        try ovn.nbctl([
            "lsp-add", "lsw", "gateway", "--", "lsp-set-type", "gateway", "vtep", "--",
            "lsp-set-options", "gateway", "vtep-physical-switch=\(vtepd.physicalSwitch)",
            "vtep-logical-switch=\(ls)", "--", "lsp-set-addresses", "gateway", "unknown",
        ])
        try ovn.nbctl([
            "lsp-add", "lsw", "vif1", "--", "lsp-set-addresses", "vif1",
            "\(b.hostMAC) \(b.hostIPv4)",
        ])
        // The hypervisor: a chassis whose VXLAN encap is site 2's kernel VTEP, with vif1
        // bound to it (`ovn-sbctl lsp-bind`, what ovn-controller does when the VIF
        // appears on its integration bridge; the kernel's vxlan and bridge play that
        // chassis' datapath).
        try ovn.sbctl(["chassis-add", "hv1", "vxlan", b.tunnelIP])
        try ovn.sbctl(["lsp-bind", "vif1", "hv1"])

        // What OVN wrote into vtepd's database, as vtep-ctl reads it.
        let remoteMACs = [
            "ucast-mac-remote", "\(b.hostMAC) -> vxlan_over_ipv4/\(b.tunnelIP)",
            "mcast-mac-remote", "unknown-dst -> vxlan_over_ipv4/\(b.tunnelIP)",
        ]
        try waitUntil("ovn-controller-vtep programs \(ls) with VNI \(vni) and vif1") {
            let listed = try vtepd.control(["list-remote-macs", ls]).output
                .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            let key = try vtepd.control(["get", "Logical_Switch", ls, "tunnel_key"]).output
            return listed == remoteMACs
                && key.trimmingCharacters(in: .whitespacesAndNewlines) == "\(vni)"
        }
        // vtepd is a chassis of OVN, reached at one of its tunnel addresses.
        let encap = try ovn.sbctl([
            "--bare", "--columns=ip", "find", "Encap", "chassis_name=\(vtepd.physicalSwitch)",
        ]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect([a.underlayIPv4, a.underlayIPv6].contains(encap), "encap ip \(encap)")

        // vtepd forwards by it: VNI, head-end flood list, vif1's MAC as a static entry.
        try waitUntil("vtepd floods \(ls) head-end to the chassis, vif1's MAC static") {
            let entry = try vtepd.macEntry(b.hostMAC)
            return try vtepd.replication(of: ls)?.locators == [b.tunnelIP]
                && entry?.isStatic == true && entry?.vtep == b.tunnelIP
        }
        let switches = try vtepd.configuration()["switches"] as? [[String: Any]] ?? []
        #expect(switches.first { $0["name"] as? String == ls }?["vni"] as? Int == vni)

        // Frames cross with OVN's VNI, both ways.
        try lab.replicate(from: b, to: [a])
        let wire = try lab.capture(
            on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
        #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3).received == 3)
        let requests = "vxlan.vni == \(vni) && icmp.type == 8 && ip.dst == \(b.hostIPv4)"
        let replies = "vxlan.vni == \(vni) && icmp.type == 0 && ip.dst == \(a.hostIPv4)"
        try lab.stop(wire, once: 3, match: replies)
        #expect(try lab.count(in: wire.file, matching: requests) == 3)
        #expect(try lab.count(in: wire.file, matching: replies) == 3)

        // OVN deletes vif1: its static entry leaves vtepd.
        try ovn.nbctl(["lsp-del", "vif1"])
        try waitUntil("vif1's MAC is no longer static in vtepd") {
            try vtepd.macEntry(b.hostMAC)?.isStatic != true
        }
    }
}
