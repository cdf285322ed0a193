import Foundation
import TestSupport
import Testing

/// vtepd's layer-2 switching checked on the wire against the Linux kernel's vxlan: multicast
/// replication, VLAN isolation on an 802.1Q trunk, MAC ageing, moves and static entries.
/// Every frame is counted exactly with tshark; vtepd's state is read with `vtepd show`.
@Suite("vtepd switching against the Linux kernel's vxlan", .serialized)
struct VTEPDSwitchingTests {
    static let broadcast = "ff:ff:ff:ff:ff:ff"

    @Test(
        "multicast group 239.1.1.1 with two kernel VTEPs: one copy to the group, unicast once learned"
    )
    func multicastReplication() async throws {
        try await Lab.runOnOwnThread { lab in
            let group = "239.1.1.1"
            let (topology, vtepd) = try lab.multicastSites(group: group)
            let (a, b, c) = (topology.sites[0], topology.sites[1], topology.sites[2])
            let ls = vtepd.logicalSwitch
            let problems = try vtepd.configuration()["problems"] as? [String] ?? ["unreadable"]
            #expect(problems.isEmpty, "\(problems)")

            // A broadcast from vtepd's host: one VXLAN copy, to the group. The underlay switch
            // floods it to every port (no IGMP snooping), so each port sees exactly that one.
            let ports = try topology.switchPorts.map {
                try lab.capture(on: $0, in: topology.switchNamespace, filter: "udp port 4789")
            }
            let hosts = try [b, c].map {
                try lab.capture(
                    on: $0.hostInterface, in: $0.hostNamespace,
                    filter: Lab.icmpAndProbes)
            }
            try lab.sendBroadcastPing(from: a.hostNamespace, to: "10.0.0.255")
            // Once a capture has the probe, a second copy of the ping would be there too.
            let probe = "02:00:00:00:9e:0a"
            try lab.injectProbe(probe, from: a)
            let fromA = "\(LabSelfTests.broadcastInVNI5001) && eth.src == \(a.hostMAC)"
            for (i, port) in ports.enumerated() {
                try lab.stop(port, atProbe: probe)
                #expect(try lab.count(in: port.file, matching: fromA) == 1, "switch port \(i)")
                #expect(
                    try lab.count(in: port.file, matching: "\(fromA) && ip.dst == \(group)") == 1,
                    "switch port \(i)")
            }
            for (site, host) in zip([b, c], hosts) {
                try lab.stop(host, atProbe: probe)
                #expect(
                    try lab.count(in: host.file, matching: LabSelfTests.broadcastOnHost) == 1,
                    "host \(site.index)")
            }

            // A broadcast from a kernel site reaches vtepd's host once, and vtepd sends
            // nothing back into the overlay (split horizon).
            let uplink = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            let hostA = try lab.capture(on: a.hostInterface, in: a.hostNamespace, filter: "icmp")
            try lab.sendBroadcastPing(from: b.hostNamespace, to: "10.0.0.255")
            let fromB = "\(LabSelfTests.broadcastInVNI5001) && eth.src == \(b.hostMAC)"
            let atHostA = { (site: LabSite) in
                "\(LabSelfTests.broadcastOnHost) && eth.src == \(site.hostMAC)"
            }
            // Delivered: vtepd has handled it, and any copy it made went out in that batch.
            try waitUntil("host A to get host B's broadcast") {
                try lab.countSoFar(hostA, matching: atHostA(b)) >= 1
            }
            // Later frames on the same paths, once captured, show what else came of it: C's
            // broadcast, delivered to host A after any duplicate of B's; and one from host A,
            // sent on the uplink after any copy of B's sent back into the overlay.
            try lab.sendBroadcastPing(from: c.hostNamespace, to: "10.0.0.255")
            try lab.sendBroadcastPing(from: a.hostNamespace, to: "10.0.0.255")
            try lab.stop(
                uplink, once: 1,
                match: "\(LabSelfTests.broadcastInVNI5001) && eth.src == \(a.hostMAC)",
                settle: .zero)
            #expect(try lab.count(in: uplink.file, matching: "\(fromB) && ip.dst == \(group)") == 1)
            #expect(
                try lab.count(
                    in: uplink.file, matching: "ip.src == \(a.tunnelIP) && eth.src == \(b.hostMAC)")
                    == 0)
            try lab.stop(hostA, once: 1, match: atHostA(c), settle: .zero)
            #expect(try lab.count(in: hostA.file, matching: atHostA(b)) == 1)

            // Learning both ways (flood-and-learn, RFC 7348 §4.2).
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 2).received == 2)
            #expect(try lab.ping(from: b.hostNamespace, to: a.hostIPv4, count: 2).received == 2)

            // Now unicast both ways: vtepd's requests go to B's VTEP, none to the group.
            let learned = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3)
            #expect(ping == LabPingResult(transmitted: 3, received: 3))
            let afterPing = "02:00:00:00:9e:0b"
            try lab.injectProbe(afterPing, from: a)
            try lab.stop(learned, atProbe: afterPing)
            let requests = "vxlan && icmp.type == 8 && eth.dst == \(b.hostMAC)"
            let replies = "vxlan && icmp.type == 0 && eth.dst == \(a.hostMAC)"
            #expect(
                try lab.count(
                    in: learned.file,
                    matching: "\(requests) && ip.src == \(a.tunnelIP) && ip.dst == \(b.tunnelIP)")
                    == 3)
            #expect(try lab.count(in: learned.file, matching: requests) == 3)
            #expect(
                try lab.count(
                    in: learned.file,
                    matching: "vxlan && ip.dst == \(group) && eth.dst == "
                        + b.hostMAC) == 0)
            #expect(
                try lab.count(
                    in: learned.file,
                    matching: "\(replies) && ip.src == \(b.tunnelIP) && ip.dst == \(a.tunnelIP)")
                    == 3)

            // Host B is behind B's VTEP, which vtepd discovered from its traffic: no row of
            // the database names it (no Ucast_Macs_Remote, no unknown-dst locator).
            let entry = try vtepd.macEntry(b.hostMAC)
            #expect(
                entry?.type == "remote" && entry?.vtep == b.tunnelIP, "\(String(describing: entry))"
            )
            #expect(entry?.isStatic == false)
            #expect(try vtepd.countedVTEPs().contains(b.tunnelIP))
            // A VTEP met through the group has its own receive count, like a configured one.
            let vteps = try vtepd.counters()["vteps"] as? [[String: Any]] ?? []
            let counted = vteps.first { $0["ip"] as? String == b.tunnelIP }
            #expect(((counted?["rxFrames"] as? Int) ?? 0) > 0, "\(vteps)")
            let remoteMACs = try vtepd.control(["list-remote-macs", ls]).output
            #expect(
                !remoteMACs.contains(b.hostMAC) && !remoteMACs.contains(b.tunnelIP), "\(remoteMACs)"
            )
            // Nothing was lost on the way out: a failed send is counted, never silent.
            #expect(try vtepd.dropCount("io_error") == 0)
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "802.1Q trunk: VLAN 100 → VNI 5001, VLAN 200 → VNI 5002, untagged dropped, VLAN 300 bound live"
    )
    func vlanTrunk() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001), .kernel(vni: 5002)])
            let (a, b, c) = (topology.sites[0], topology.sites[1], topology.sites[2])
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            let trunk = a.accessInterface
            // The trunk: VLAN 100 → ls5001 (to site 2), VLAN 200 → ls5002 (to site 3), nothing
            // untagged.
            try vtepd.control(["bind-ls", vtepd.physicalSwitch, trunk, "100", "ls5001"])
            try vtepd.control(["unbind-ls", vtepd.physicalSwitch, trunk, "0"])
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try vtepd.addSwitch("ls5002", vni: 5002, vlan: 200, replicatingTo: [c.tunnelIP])
            try lab.replicate(from: b, to: [a])
            try lab.replicate(from: c, to: [a])
            let wanted = [
                LabBinding(port: trunk, vlan: 100, logicalSwitch: "ls5001"),
                LabBinding(port: trunk, vlan: 200, logicalSwitch: "ls5002"),
            ]
            try waitUntil("vtepd forwards by the trunk's bindings \(wanted)") {
                try vtepd.bindings() == wanted
                    && vtepd.replication(of: "ls5001")?.locators == [b.tunnelIP]
                    && vtepd.replication(of: "ls5002")?.locators == [c.tunnelIP]
            }

            // Tagged broadcasts from the trunk: VLAN 100 leaves in VNI 5001 only, VLAN 200 in
            // VNI 5002 only, each untagged inside the tunnel (RFC 7348 §6.1).
            let m100 = "02:00:00:01:00:64"
            let m200 = "02:00:00:01:00:c8"
            let uplink = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            let hostB = try lab.capture(on: b.hostInterface, in: b.hostNamespace)
            let hostC = try lab.capture(on: c.hostInterface, in: c.hostNamespace)
            try lab.inject(
                LabFrame(destination: Self.broadcast, source: m100, vlan: 100), count: 3,
                on: a.hostInterface, in: a.hostNamespace)
            try lab.inject(
                LabFrame(destination: Self.broadcast, source: m200, vlan: 200), count: 2,
                on: a.hostInterface, in: a.hostNamespace)
            // Then one probe per VLAN, along the same paths.
            let probe100 = "02:00:00:00:9e:64"
            let probe200 = "02:00:00:00:9e:c8"
            try lab.injectProbe(probe100, vlan: 100, from: a)
            try lab.injectProbe(probe200, vlan: 200, from: a)
            try lab.stop(
                uplink, once: 2,
                match: "vxlan && (eth.src == \(probe100) || eth.src == \(probe200))",
                settle: .zero)
            #expect(try lab.count(in: uplink.file, matching: "vxlan && eth.src == \(m100)") == 3)
            #expect(
                try lab.count(
                    in: uplink.file,
                    matching: "vxlan.vni == 5001 && eth.src == \(m100) && ip.dst == \(b.tunnelIP)")
                    == 3)
            #expect(try lab.count(in: uplink.file, matching: "vxlan && eth.src == \(m200)") == 2)
            #expect(
                try lab.count(
                    in: uplink.file,
                    matching: "vxlan.vni == 5002 && eth.src == \(m200) && ip.dst == \(c.tunnelIP)")
                    == 2)
            #expect(try lab.count(in: uplink.file, matching: "vxlan && vlan") == 0)
            try lab.stop(hostB, atProbe: probe100)
            #expect(try lab.count(in: hostB.file, matching: "eth.src == \(m100)") == 3)
            #expect(try lab.count(in: hostB.file, matching: "eth.src == \(m200)") == 0)
            try lab.stop(hostC, atProbe: probe200)
            #expect(try lab.count(in: hostC.file, matching: "eth.src == \(m200)") == 2)
            #expect(try lab.count(in: hostC.file, matching: "eth.src == \(m100)") == 0)
            let table = try vtepd.macTable()
            #expect(
                table.contains {
                    $0.mac == m100 && $0.logicalSwitch == "ls5001" && $0.vlan == 100
                }, "\(table)")
            #expect(
                table.contains {
                    $0.mac == m200 && $0.logicalSwitch == "ls5002" && $0.vlan == 200
                }, "\(table)")

            // From the far VTEPs: VNI 5002 arrives on the trunk tagged 200, VNI 5001 tagged 100.
            let onTrunk = try lab.capture(on: a.hostInterface, in: a.hostNamespace)
            try lab.sendBroadcastPing(from: c.hostNamespace, to: "10.0.0.255")
            try lab.sendBroadcastPing(from: b.hostNamespace, to: "10.0.0.255")
            // Both came through vtepd's one tunnel socket, before this probe from site 2.
            let fromFar = "02:00:00:00:9e:06"
            try lab.injectProbe(fromFar, from: b)
            try lab.stop(onTrunk, atProbe: fromFar)
            let fromC = "\(LabSelfTests.broadcastOnHost) && eth.src == \(c.hostMAC)"
            let fromB = "\(LabSelfTests.broadcastOnHost) && eth.src == \(b.hostMAC)"
            #expect(try lab.count(in: onTrunk.file, matching: "\(fromC) && vlan.id == 200") == 1)
            #expect(try lab.count(in: onTrunk.file, matching: "eth.src == \(c.hostMAC)") == 1)
            #expect(try lab.count(in: onTrunk.file, matching: "\(fromB) && vlan.id == 100") == 1)
            #expect(try lab.count(in: onTrunk.file, matching: "eth.src == \(b.hostMAC)") == 1)

            // Untagged and priority-tagged (VID 0) frames: no untagged binding, so each is
            // dropped and counted under no_binding, and none reaches the underlay.
            let untagged = "02:00:00:01:00:00"
            let before = try vtepd.dropCount("no_binding")
            let dropped = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            try lab.inject(
                LabFrame(destination: Self.broadcast, source: untagged), count: 3,
                on: a.hostInterface, in: a.hostNamespace)
            try lab.inject(
                LabFrame(destination: Self.broadcast, source: untagged, vlan: 0), count: 2,
                on: a.hostInterface, in: a.hostNamespace)
            try waitUntil("no_binding counts the 5 frames") {
                try vtepd.dropCount("no_binding") >= before + 5
            }
            // A VLAN 100 probe after them leaves on the same uplink: once it is captured, so
            // is anything vtepd sent of the untagged frames.
            let probe = "02:00:00:00:9e:00"
            try lab.injectProbe(probe, vlan: 100, from: a)
            try lab.stop(dropped, atProbe: probe)
            #expect(try vtepd.dropCount("no_binding") == before + 5)
            #expect(try lab.count(in: dropped.file, matching: "eth.src == \(untagged)") == 0)
            #expect(try vtepd.macEntry(untagged) == nil)

            // Binding VLAN 300 while VLAN 100 and 300 traffic flows: VLAN 300 frames, dropped
            // until then, start leaving in VNI 5003; VLAN 100 keeps to VNI 5001 throughout.
            let m300 = "02:00:00:01:01:2c"
            let live = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            let flow100 = try lab.startInjecting(
                LabFrame(destination: Self.broadcast, source: m100, vlan: 100),
                on: a.hostInterface, in: a.hostNamespace)
            let unboundBefore = try vtepd.dropCount("no_binding")
            let flow300 = try lab.startInjecting(
                LabFrame(destination: Self.broadcast, source: m300, vlan: 300),
                on: a.hostInterface, in: a.hostNamespace)
            try waitUntil("VLAN 300 frames are dropped as unbound") {
                try vtepd.dropCount("no_binding") >= unboundBefore + 3
            }
            try vtepd.addSwitch("ls5003", vni: 5003, vlan: 300, replicatingTo: [b.tunnelIP])
            let in5003 = "vxlan.vni == 5003 && eth.src == \(m300)"
            try waitUntil("VLAN 300 frames leave in VNI 5003", timeout: .seconds(30)) {
                try lab.countSoFar(live, matching: in5003) >= 1
            }
            let settled = try vtepd.dropCount("no_binding")
            let in5001 = "vxlan.vni == 5001 && eth.src == \(m100)"
            let flowing = try lab.countSoFar(live, matching: in5001)
            try waitUntil("both flows keep going after the new binding") {
                try lab.countSoFar(live, matching: in5003) >= 3
                    && lab.countSoFar(live, matching: in5001) >= flowing + 3
            }
            flow300.stop()
            flow100.stop()
            try lab.stop(live)
            #expect(try vtepd.dropCount("no_binding") == settled)
            #expect(
                try lab.count(
                    in: live.file, matching: "vxlan && eth.src == \(m300) && !(vxlan.vni == 5003)")
                    == 0)
            #expect(
                try lab.count(
                    in: live.file, matching: "vxlan && eth.src == \(m100) && !(vxlan.vni == 5001)")
                    == 0)
            #expect(try lab.count(in: live.file, matching: "vxlan && vlan") == 0)
            #expect(try vtepd.macEntry(m300)?.vlan == 300)
            // Nothing was lost on the way out: a failed send is counted, never silent.
            #expect(try vtepd.dropCount("io_error") == 0)
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "MAC ageing after 5 s, a MAC move followed at its first frame, a static MAC that never moves"
    )
    func ageingMovesAndStaticEntries() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001), .kernel(vni: 5001)])
            let (a, b, c) = (topology.sites[0], topology.sites[1], topology.sites[2])
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            let ls = vtepd.logicalSwitch
            try lab.replicate(from: a, to: [b, c], vtepd: vtepd)
            try lab.replicate(from: b, to: [a])
            try lab.replicate(from: c, to: [a])
            try vtepd.control(["set", "Logical_Switch", ls, "other_config:mac-ageing=5"])
            try waitUntil("vtepd ages \(ls) after 5 s and replicates to both kernel VTEPs") {
                try vtepd.macAgeing(of: ls) == 5
                    && vtepd.replication(of: ls)?.locators == [b.tunnelIP, c.tunnelIP].sorted()
            }
            // Hosts A and B know each other's MAC: no ARP that would refresh or flood what is
            // counted below.
            try lab.pinNeighbour(
                b.hostIPv4, to: b.hostMAC, on: a.hostInterface, in: a.hostNamespace)
            try lab.pinNeighbour(
                a.hostIPv4, to: a.hostMAC, on: b.hostInterface, in: b.hostNamespace)

            // Learned from B's reply, then forgotten once B has been silent for 5 s.
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 1).received == 1)
            let learned = try vtepd.macEntry(b.hostMAC)
            #expect(
                learned?.vtep == b.tunnelIP && learned?.isStatic == false,
                "\(String(describing: learned))")
            try waitUntil("host B's MAC ages out of vtepd's table") {
                try vtepd.macEntry(b.hostMAC) == nil
            }

            // The next frame to B is unknown unicast: one copy per replication target.
            let flood = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 1).received == 1)
            let toB = "vxlan && icmp.type == 8 && eth.dst == \(b.hostMAC)"
            let afterFlood = "02:00:00:00:9e:01"
            try lab.injectProbe(afterFlood, from: a)
            try lab.stop(flood, once: 2, match: "vxlan && eth.src == \(afterFlood)", settle: .zero)
            #expect(try lab.count(in: flood.file, matching: toB) == 2)
            #expect(
                try lab.count(in: flood.file, matching: "\(toB) && ip.dst == \(b.tunnelIP)") == 1)
            #expect(
                try lab.count(in: flood.file, matching: "\(toB) && ip.dst == \(c.tunnelIP)") == 1)

            // Moves and static entries next; a longer ageing time keeps the 5 s timer out of
            // them (changing it keeps the table).
            try vtepd.control(["set", "Logical_Switch", ls, "other_config:mac-ageing=300"])
            try waitUntil("vtepd ages \(ls) after 300 s") { try vtepd.macAgeing(of: ls) == 300 }

            // B's MAC speaks from site 3: vtepd follows it at its first frame.
            let fromB = LabFrame(destination: a.hostMAC, source: b.hostMAC)
            try lab.inject(fromB, count: 1, on: b.hostInterface, in: b.hostNamespace)
            try waitUntil("host B's MAC is behind site 2") {
                try vtepd.macEntry(b.hostMAC)?.vtep == b.tunnelIP
            }
            let movesBefore = try vtepd.switchCounters(ls)["moves"] ?? -1
            try lab.inject(fromB, count: 1, on: c.hostInterface, in: c.hostNamespace)
            try waitUntil("host B's MAC moved behind site 3 after one frame") {
                try vtepd.macEntry(b.hostMAC)?.vtep == c.tunnelIP
            }
            #expect(try vtepd.switchCounters(ls)["moves"] == movesBefore + 1)
            let moved = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            try lab.inject(
                LabFrame(destination: b.hostMAC, source: a.hostMAC), count: 1,
                on: a.hostInterface, in: a.hostNamespace)
            let toMoved = "vxlan && eth.dst == \(b.hostMAC) && eth.src == \(a.hostMAC)"
            let afterMove = "02:00:00:00:9e:02"
            try lab.injectProbe(afterMove, from: a)
            try lab.stop(moved, atProbe: afterMove)
            #expect(try lab.count(in: moved.file, matching: toMoved) == 1)
            #expect(
                try lab.count(in: moved.file, matching: "\(toMoved) && ip.dst == \(c.tunnelIP)")
                    == 1)

            // A static MAC (Ucast_Macs_Remote) behind site 2 does not follow frames from site 3:
            // they are dropped and counted as static_mac_conflict.
            let pinned = "02:00:0a:00:00:99"
            try vtepd.control(["add-ucast-remote", ls, pinned, b.tunnelIP])
            try waitUntil("vtepd installs \(pinned) behind \(b.tunnelIP) as static") {
                let entry = try vtepd.macEntry(pinned)
                return entry?.isStatic == true && entry?.vtep == b.tunnelIP
            }
            let conflictsBefore = try vtepd.dropCount("static_mac_conflict")
            let movesBeforeStatic = try vtepd.switchCounters(ls)["moves"] ?? -1
            let hostA = try lab.capture(on: a.hostInterface, in: a.hostNamespace)
            try lab.inject(
                LabFrame(destination: a.hostMAC, source: pinned), count: 4,
                on: c.hostInterface, in: c.hostNamespace)
            try waitUntil("static_mac_conflict counts the 4 frames") {
                try vtepd.dropCount("static_mac_conflict") >= conflictsBefore + 4
            }
            // A probe from site 3 after them reaches host A: once it is captured, any of the
            // four vtepd had let through would be too.
            let probe = "02:00:00:00:9e:03"
            try lab.injectProbe(probe, from: c)
            try lab.stop(hostA, atProbe: probe)
            #expect(try vtepd.dropCount("static_mac_conflict") == conflictsBefore + 4)
            #expect(try lab.count(in: hostA.file, matching: "eth.src == \(pinned)") == 0)
            let entry = try vtepd.macEntry(pinned)
            #expect(
                entry?.isStatic == true && entry?.vtep == b.tunnelIP, "\(String(describing: entry))"
            )
            #expect(try vtepd.switchCounters(ls)["moves"] == movesBeforeStatic)
            let toStatic = try lab.capture(
                on: topology.switchPorts[0], in: topology.switchNamespace, filter: "udp port 4789")
            try lab.inject(
                LabFrame(destination: pinned, source: a.hostMAC), count: 1,
                on: a.hostInterface, in: a.hostNamespace)
            let toPinned = "vxlan && eth.dst == \(pinned)"
            let afterPinned = "02:00:00:00:9e:04"
            try lab.injectProbe(afterPinned, from: a)
            try lab.stop(toStatic, atProbe: afterPinned)
            #expect(try lab.count(in: toStatic.file, matching: toPinned) == 1)
            #expect(
                try lab.count(in: toStatic.file, matching: "\(toPinned) && ip.dst == \(b.tunnelIP)")
                    == 1)
            // Nothing was lost on the way out: a failed send is counted, never silent.
            #expect(try vtepd.dropCount("io_error") == 0)
            try vtepd.process.requireRunning()
        }
    }
}

extension VTEPDSwitchingTests {
    @Test(
        "learned MACs published to Ucast_Macs_Local: withdrawn at ageing, restored after clear-local-macs, gone with the binding"
    )
    func localMACsArePublishedForAController() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            let ls = vtepd.logicalSwitch
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try lab.replicate(from: b, to: [a])
            try vtepd.control(["set", "Logical_Switch", ls, "other_config:mac-ageing=5"])
            try waitUntil("vtepd ages \(ls) after 5 s") { try vtepd.macAgeing(of: ls) == 5 }
            try lab.pinNeighbour(
                b.hostIPv4, to: b.hostMAC, on: a.hostInterface, in: a.hostNamespace)
            try lab.pinNeighbour(
                a.hostIPv4, to: a.hostMAC, on: b.hostInterface, in: b.hostNamespace)
            func local() throws -> [String] {
                let result = try vtepd.control(["list-local-macs", ls])
                return result.output.split(separator: "\n").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
            }
            let published = "\(a.hostMAC) -> vxlan_over_ipv4/\(a.underlayIPv4)"
            let flooding = "unknown-dst -> vxlan_over_ipv4/\(a.underlayIPv4)"
            let nothing = ["ucast-mac-local", "mcast-mac-local"]
            // Bound: the flood row is there before any MAC is.
            try waitUntil("vtepd publishes \(ls)'s unknown-dst row") {
                try local() == nothing + [flooding]
            }

            // Host A behind vtepd is learned and published; host B behind the kernel is
            // learned too, but it is remote: never published.
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 1).received == 1)
            try waitUntil("host A's MAC is published with vtepd's tunnel address") {
                try local() == ["ucast-mac-local", published, "mcast-mac-local", flooding]
            }
            #expect(try vtepd.macEntry(b.hostMAC)?.vtep == b.tunnelIP)

            // Silent for 5 s: aged out of the table and withdrawn.
            try waitUntil("host A's MAC is withdrawn once it ages out") {
                try local() == nothing + [flooding]
            }
            #expect(try vtepd.macEntry(a.hostMAC) == nil)

            // A frame from A publishes it again; an operator's clear-local-macs is undone.
            try lab.inject(
                LabFrame(destination: b.hostMAC, source: a.hostMAC), count: 1,
                on: a.hostInterface, in: a.hostNamespace)
            try waitUntil("host A's MAC is published again after its frame") {
                try local().contains(published)
            }
            try vtepd.control(["clear-local-macs", ls])
            try waitUntil("vtepd restores what clear-local-macs removed") {
                try local() == ["ucast-mac-local", published, "mcast-mac-local", flooding]
            }

            // Unbound: nothing of ours is left in the switch.
            try vtepd.control(["unbind-ls", vtepd.physicalSwitch, a.accessInterface, "0"])
            try waitUntil("vtepd withdraws \(ls)'s rows once it is unbound") {
                try local() == nothing
            }
            try vtepd.process.requireRunning()
        }
    }
}

extension VTEPDSwitchingTests {
    @Test(
        "allowed-sources on a multicast switch: a VTEP outside it is dropped as source_vtep_not_accepted and never learned, until the list takes it in"
    )
    func allowedSourcesNarrowFloodAndLearn() async throws {
        try await Lab.runOnOwnThread { lab in
            let group = "239.1.1.2"
            let (topology, vtepd) = try lab.multicastSites(group: group)
            let (a, b, c) = (topology.sites[0], topology.sites[1], topology.sites[2])
            let ls = vtepd.logicalSwitch
            try vtepd.control([
                "set", "Logical_Switch", ls, "other_config:allowed-sources=\(b.tunnelIP)/32",
            ])
            func allowed() throws -> [String]? {
                let switches = try vtepd.configuration()["switches"] as? [[String: Any]] ?? []
                return switches.first { $0["name"] as? String == ls }?["allowedSources"]
                    as? [String]
            }
            try waitUntil("vtepd accepts only site 2 into \(ls)") {
                try allowed() == ["\(b.tunnelIP)/32"]
            }

            // Site 3 is on the VNI and in the group, but not allowed: its frames (unknown
            // unicast to host A, sent to the group) are counted and go nowhere. (The count
            // may hold more than these: whatever else site 3's host floods.)
            let fromC = "eth.src == \(c.hostMAC)"
            let fromB = "eth.src == \(b.hostMAC)"
            let hostA = try lab.capture(on: a.hostInterface, in: a.hostNamespace)
            let refusedBefore = try vtepd.dropCount("source_vtep_not_accepted")
            // Site 3 may have been met already, by whatever it sent to the group while the
            // switch was still open to every VTEP; what its refused frames must not do is
            // make it known now.
            let knewSiteC = try vtepd.countedVTEPs().contains(c.tunnelIP)
            try lab.inject(
                LabFrame(destination: a.hostMAC, source: c.hostMAC), count: 4,
                on: c.hostInterface, in: c.hostNamespace)
            try waitUntil("source_vtep_not_accepted counts site 3's 4 frames") {
                try vtepd.dropCount("source_vtep_not_accepted") >= refusedBefore + 4
            }
            // Site 2's frames pass and are learned. Sent after site 3's were counted, they
            // reach host A after any of those vtepd had let through.
            try lab.inject(
                LabFrame(destination: a.hostMAC, source: b.hostMAC), count: 4,
                on: b.hostInterface, in: b.hostNamespace)
            try lab.stop(hostA, once: 4, match: fromB, settle: .zero)
            #expect(try lab.count(in: hostA.file, matching: fromB) == 4)
            #expect(try lab.count(in: hostA.file, matching: fromC) == 0)
            #expect(try vtepd.macEntry(c.hostMAC) == nil)
            #expect(try vtepd.macEntry(b.hostMAC)?.vtep == b.tunnelIP)
            let knowsSiteC = try vtepd.countedVTEPs().contains(c.tunnelIP)
            #expect(knewSiteC || !knowsSiteC)

            // The list takes site 3 in while vtepd runs: its next frames pass and are learned.
            try vtepd.control([
                "set", "Logical_Switch", ls,
                "other_config:allowed-sources=\(b.tunnelIP),\(c.tunnelIP)",
            ])
            try waitUntil("vtepd accepts sites 2 and 3") {
                try allowed()?.sorted() == [b.tunnelIP, c.tunnelIP].map { "\($0)/32" }.sorted()
            }
            let refusedBeforeAllowed = try vtepd.dropCount("source_vtep_not_accepted")
            let hostAgain = try lab.capture(on: a.hostInterface, in: a.hostNamespace)
            try lab.inject(
                LabFrame(destination: a.hostMAC, source: c.hostMAC), count: 4,
                on: c.hostInterface, in: c.hostNamespace)
            let afterAllowed = "02:00:00:00:9e:05"
            try lab.injectProbe(afterAllowed, from: c)
            try lab.stop(hostAgain, atProbe: afterAllowed)
            #expect(try lab.count(in: hostAgain.file, matching: fromC) == 4)
            #expect(try vtepd.macEntry(c.hostMAC)?.vtep == c.tunnelIP)
            #expect(try vtepd.dropCount("source_vtep_not_accepted") == refusedBeforeAllowed)
            try vtepd.process.requireRunning()
        }
    }
}

extension Lab {
    /// vtepd at site 1 and kernel VTEPs at sites 2 and 3, all on VNI 5001 in multicast group
    /// `group`; returns once vtepd floods its switch to the group.
    fileprivate func multicastSites(group: String) throws -> (LabTopology, LabVTEPD) {
        let topology = try self.topology([
            .gateway, .kernel(vni: 5001, group: group), .kernel(vni: 5001, group: group),
        ])
        let vtepd = try startVTEPD(at: topology.sites[0], vni: 5001)
        let ls = vtepd.logicalSwitch
        try vtepd.control(["set", "Logical_Switch", ls, "other_config:multicast-group=\(group)"])
        try waitUntil("vtepd floods \(ls) to the group \(group)") {
            guard let r = try vtepd.replication(of: ls) else { return false }
            return r.mode == "multicast" && r.locators == [group]
        }
        return (topology, vtepd)
    }
}

extension LabVTEPD {
    /// The effective `other_config:mac-ageing` of logical switch `name`, or nil while vtepd
    /// does not forward it.
    fileprivate func macAgeing(of name: String) throws -> Int? {
        let switches = try configuration()["switches"] as? [[String: Any]] ?? []
        return switches.first { $0["name"] as? String == name }?["macAgeing"] as? Int
    }
}
