import Foundation
import TestSupport
import Testing

/// `vxlan-transmit tunnel-gso`: vtepd writes each TCP super-frame toward a VXLAN tunnel whole
/// to its TAP device `vtepd-gso`, with a virtio_net_hdr asking for UDP-tunnel GSO, and traffic
/// control at the device's ingress sends it out of the underlay as one packet. Checked against
/// the kernel's vxlan with offloads on, on a host whose firewall forwards nothing and whose
/// reverse-path filter is strict (neither sees these packets): content-checked TCP both ways,
/// packets longer than the underlay's MTU on the wire (only a packet that crossed whole is),
/// the kernel's software cut with good checksums, and the device gone with vtepd.
@Suite("vtepd handing VXLAN super-packets to the kernel whole", .serialized)
struct VTEPDTunnelGSOTests {
    static let device = "vtepd-gso"

    @Test(
        "kernel vxlan peer, offloads on, a forward chain that drops everything and strict rp_filter: 4 MiB TCP both ways content-checked, super-packets cross the underlay whole; the device goes with vtepd",
        arguments: [LabUnderlayFamily.ipv4, .ipv6]
    )
    func tunnelGSOWithKernelPeer(family: LabUnderlayFamily) async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)], family: family)
            #expect(topology.offloads == .on)
            let (a, b) = (topology.sites[0], topology.sites[1])
            // A gateway whose firewall forwards nothing, with strict reverse-path filtering:
            // the packets never enter the IP layer, so neither may matter.
            try lab.execute(["nft", "add", "table", "inet", "vtepdtest"], in: a.namespace)
            try lab.execute(
                [
                    "nft", "add", "chain", "inet", "vtepdtest", "forwarding",
                    "{ type filter hook forward priority 0; policy drop; }",
                ], in: a.namespace)
            try lab.execute(
                ["sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1"], in: a.namespace)
            let vtepd = try lab.startVTEPD(
                at: a, vni: 5001, extraArguments: ["--vxlan-transmit", "tunnel-gso"])
            try vtepd.process.waitForLog(
                "TCP super-frames toward VXLAN are written whole to \(Self.device)")
            let filters = try lab.execute(
                ["tc", "filter", "show", "dev", Self.device, "ingress"], in: a.namespace
            ).output
            #expect(
                filters.contains("mirred (Egress Redirect to device \(a.underlayInterface))"),
                "\(filters)")
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try lab.replicate(from: b, to: [a])
            try VTEPDGRETests.waitForPing(lab, from: a, to: b, vtepd: vtepd)
            let settled = try vtepd.dropCounters()

            // What crosses site B's underlay longer than its MTU (1,500) crossed it whole: the
            // trains path leaves every datagram at the MTU or below.
            let capture = try lab.capture(
                on: b.underlayInterface, in: b.namespace,
                filter: "udp dst port 4789 and \(family == .ipv4 ? "ip" : "ip6") dst \(b.tunnelIP)"
                    + " and greater 3000",
                bufferKiB: VTEPDOffloadTests.captureBufferKiB)
            let before = try vtepd.offloadCounters()
            try lab.transferTCPCuttingAndMerging(a, b, vtepd: vtepd)
            let after = try vtepd.offloadCounters()
            try lab.stop(capture)
            let whole = try lab.count(
                in: capture.file, matching: "vxlan.vni == 5001 && tcp.len > 3000")
            #expect(whole > 0, "no VXLAN packet longer than 3,000 bytes on site B's underlay")
            #expect(
                after["tunnel_gso_out"]! > before["tunnel_gso_out"]!, "\(before) → \(after)")
            #expect(after["tunnel_gso_refused"] == 0, "\(after)")
            try VTEPDOffloadTests.expectNoDrops(vtepd, since: settled)

            // Site A's underlay as a NIC without transmit checksum offload (so without
            // UDP-tunnel segmentation either): the kernel cuts each packet in software there
            // and finishes every checksum, which the capture can then check. On the wire:
            // nothing over the MTU, every inner TCP checksum good, and over IPv6 every outer
            // UDP checksum good (over IPv4 it is zero, RFC 7348).
            try lab.execute(["ethtool", "-K", a.underlayInterface, "tx", "off"], in: a.namespace)
            let cut = try lab.capture(
                on: b.underlayInterface, in: b.namespace,
                filter: "udp dst port 4789 and \(family == .ipv4 ? "ip" : "ip6") dst \(b.tunnelIP)",
                bufferKiB: VTEPDOffloadTests.captureBufferKiB)
            let beforeCut = try vtepd.offloadCounters()
            try lab.transferTCP(
                from: a.hostNamespace, to: b.hostNamespace, address: b.hostIPv4, size: 1 << 20)
            try lab.stop(cut)
            #expect(try lab.droppedByKernel(cut) == 0, "the capture must hold every packet")
            let afterCut = try vtepd.offloadCounters()
            #expect(afterCut["tunnel_gso_out"]! > beforeCut["tunnel_gso_out"]!, "\(afterCut)")
            #expect(try lab.count(in: cut.file, matching: "frame.len > 1514") == 0)
            let tcp = try VTEPDOffloadTests.lastOccurrence(
                lab, cut.file, field: "tcp.checksum.status", filter: "vxlan && tcp.len > 0")
            #expect(tcp.count > (1 << 20) / 1_398, "\(tcp.count) TCP segments")
            #expect(
                tcp.allSatisfy { $0 == VTEPDOffloadTests.good },
                "\(tcp.filter { $0 != VTEPDOffloadTests.good }.count) of \(tcp.count) inner TCP checksums not good"
            )
            let udp = try VTEPDOffloadTests.lastOccurrence(
                lab, cut.file, field: "udp.checksum", filter: "vxlan && tcp.len > 0")
            if family == .ipv6 {
                let outer = try VTEPDOffloadTests.firstOccurrence(
                    lab, cut.file, field: "udp.checksum.status", filter: "vxlan && tcp.len > 0")
                #expect(
                    outer.count == tcp.count && outer.allSatisfy { $0 == VTEPDOffloadTests.good },
                    "\(outer.filter { $0 != VTEPDOffloadTests.good }.count) of \(outer.count) outer UDP checksums not good"
                )
            } else {
                #expect(
                    udp.allSatisfy { $0 == "0x0000" }, "outer UDP checksums over IPv4: \(Set(udp))")
            }

            #expect(vtepd.process.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)
            #expect(
                try lab.attempt(["ip", "link", "show", Self.device], in: a.namespace).status != 0,
                "\(Self.device) outlived vtepd")
        }
    }

    /// vtepd in a mount namespace of its own whose `/dev/net` is an empty tmpfs, as a service
    /// sandbox that hides `/dev/net/tun` leaves it (`ip netns exec` and `unshare` exec, so the
    /// PID stays vtepd's).
    static let withoutTun = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        "mount -t tmpfs none /dev/net && exec \"$0\" \"$@\"",
    ]

    @Test(
        "vxlan-transmit auto, the default: whole super-packets where /dev/net/tun opens; trains and a notice (not a warning) where it does not, a warning only when tunnel-gso was asked for by name; TCP content-checked both ways either way"
    )
    func autoChoosesAndFallsBack() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            #expect(topology.offloads == .on)
            let (a, b) = (topology.sites[0], topology.sites[1])
            try lab.replicate(from: b, to: [a])
            for hidden in [false, true] {
                let vtepd = try lab.startVTEPD(
                    at: a, vni: 5001, stateRoot: lab.file("vtepd-auto-\(hidden)"),
                    log: lab.file("vtepd-auto-\(hidden).log"),
                    launcher: hidden ? Self.withoutTun : [])
                if hidden {
                    try vtepd.process.waitForLog(
                        "notice vtepd.dataplane: vxlan-transmit auto: TCP super-frames toward VXLAN leave as UDP GSO trains, not whole: /dev/net/tun cannot be opened"
                    )
                    #expect(
                        try lab.attempt(["ip", "link", "show", Self.device], in: a.namespace).status
                            != 0,
                        "\(Self.device) made although vtepd said trains")
                } else {
                    try vtepd.process.waitForLog(
                        "notice vtepd.dataplane: vxlan-transmit auto: TCP super-frames toward VXLAN are written whole to \(Self.device)"
                    )
                }
                try lab.replicate(from: a, to: [b], vtepd: vtepd)
                try VTEPDGRETests.waitForPing(lab, from: a, to: b, vtepd: vtepd)
                let settled = try vtepd.dropCounters()
                let before = try vtepd.offloadCounters()
                try lab.transferTCPCuttingAndMerging(a, b, vtepd: vtepd)
                let after = try vtepd.offloadCounters()
                let whole = after["tunnel_gso_out"]! - before["tunnel_gso_out"]!
                let trains = after["trains_out"]! - before["trains_out"]!
                #expect(hidden ? whole == 0 && trains > 0 : whole > 0, "\(before) → \(after)")
                #expect(after["tunnel_gso_refused"] == 0, "\(after)")
                try VTEPDOffloadTests.expectNoDrops(vtepd, since: settled)
                let log = try String(contentsOf: vtepd.process.log, encoding: .utf8)
                #expect(!log.contains("warning vtepd.dataplane"), "\(log)")
                #expect(vtepd.process.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)
            }

            // Asked for by name, its absence is worth a warning; vtepd still starts. Stopped
            // only once it says it started: vtepd handles SIGTERM from then on (before, the
            // signal's default action ends it, 143; a CI run caught that window).
            let named = try lab.startVTEPD(
                at: a, vni: 5001, extraArguments: ["--vxlan-transmit", "tunnel-gso"],
                stateRoot: lab.file("vtepd-named"), log: lab.file("vtepd-named.log"),
                configure: false, launcher: Self.withoutTun)
            try named.process.waitForLog(
                "warning vtepd.dataplane: vxlan-transmit tunnel-gso is off: /dev/net/tun cannot be opened"
            )
            try named.process.waitForLog("notice vtepd: started")
            #expect(named.process.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)
        }
    }
}
