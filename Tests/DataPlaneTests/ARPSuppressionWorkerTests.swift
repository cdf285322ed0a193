import DataPlane
import Datapath
import Forwarding
import Packet
import TestSupport
import Testing

/// ARP and ND suppression through the worker on in-memory ports: the answer leaves by the
/// port and VLAN the request came in on, built from the request, and nothing crosses the
/// underlay; what is not known is flooded as before.
@Suite struct ARPSuppressionWorkerTests {
    static let hostIP = IPv4Address("10.1.0.1")!
    static let remoteIP = IPv4Address("10.1.0.2")!
    static let hostIP6 = IPv6Address("fd01::1")!
    static let remoteIP6 = IPv6Address("fd01::2")!

    /// Switch "web" with suppression, on eth0 VLAN 100 and eth1 untagged, flooding to one VTEP.
    func rig(suppression: Bool = true) throws -> Rig {
        let rig = try Rig(
            switches: [
                LogicalSwitch(
                    name: "web", vni: try VNI(validating: 5000), replication: .headEnd([Rig.vtep]),
                    arpSuppression: suppression)
            ],
            bindings: [
                Binding(port: "eth0", vlan: 100, logicalSwitch: "web"),
                Binding(port: "eth1", vlan: nil, logicalSwitch: "web"),
            ])
        rig.worker.setNextHops([Rig.vtep: NextHop(destination: Rig.gatewayMAC)])
        return rig
    }

    @Test func aRequestForAHostLearnedFromAGratuitousARPIsAnsweredOnItsPortAndVLAN() throws {
        let rig = try rig()
        // The remote host announces itself through the tunnel (as `arping -U` does).
        rig.fromVTEP(
            NeighbourFrames.arpRequest(from: Rig.remoteHost, Self.remoteIP, for: Self.remoteIP))
        rig.worker.serviceAll(now: 1)
        #expect(rig.port(0).takeSent().count == 1, "the announcement itself is delivered")
        _ = rig.port(1).takeSent()

        rig.port(0).inject(
            NeighbourFrames.arpRequest(from: Rig.hostA, Self.hostIP, for: Self.remoteIP, vlan: 100))
        rig.worker.serviceAll(now: 2)
        let answers = rig.port(0).takeSent().map(\.bytes)
        let expected =
            NeighbourFrames.arp(
                ARPPacket.reply, sender: (Rig.remoteHost, Self.remoteIP),
                target: (Rig.hostA, Self.hostIP), to: Rig.hostA, vlan: 100)
            + [UInt8](repeating: 0, count: 18)
        #expect(answers == [expected], "an ARP reply, tagged 100, padded to 64 bytes")
        #expect(rig.port(1).takeSent().isEmpty, "not flooded to the other port")
        #expect(rig.io.underlay.takeSent().frames.isEmpty, "nothing crosses the underlay")
        #expect(rig.io.udp4?.takeSent().isEmpty ?? true)
        let web = rig.worker.statistics().switches[SwitchIndex(rawValue: 0)]
        #expect(web?.neighbourAnswered == 1)
        #expect(web?.neighbourFlooded == 0)

    }

    @Test func aNeighbourSolicitationForAHostKnownByItsAdvertisementIsAnswered() throws {
        let rig = try rig()
        rig.fromVTEP(
            NeighbourFrames.neighbourAdvertisement(from: Rig.remoteHost, for: Self.remoteIP6))
        rig.worker.serviceAll(now: 1)
        _ = rig.port(0).takeSent()
        _ = rig.port(1).takeSent()

        let solicitation = NeighbourFrames.neighbourSolicitation(
            from: Rig.hostA, Self.hostIP6, for: Self.remoteIP6)
        rig.port(1).inject(solicitation)
        rig.worker.serviceAll(now: 2)
        let answers = rig.port(1).takeSent().map(\.bytes)
        try #require(answers.count == 1)
        #expect(rig.io.underlay.takeSent().frames.isEmpty)
        #expect(rig.port(0).takeSent().isEmpty)
        // Untagged (the request was), to the host, from the remote host's MAC, and a valid
        // advertisement of the remote address with the override and solicited flags.
        let answer = answers[0]
        #expect(answer.count == 86)
        #expect(Array(answer[0..<6]) == NeighbourFrames.bytes(Rig.hostA))
        #expect(Array(answer[6..<12]) == NeighbourFrames.bytes(Rig.remoteHost))
        #expect(Array(answer[22..<38]) == NeighbourFrames.bytes(Self.remoteIP6))
        #expect(Array(answer[38..<54]) == NeighbourFrames.bytes(Self.hostIP6))
        #expect(answer[54] == 136)
        #expect(answer[58] == 0x60)
        let message = answer.withUnsafeBytes { raw in
            NeighbourDiscovery.message(in: raw, header: try! EthernetHeader.parse(raw))
        }
        #expect(message == .advertisement(address: .v6(Self.remoteIP6), mac: Rig.remoteHost))
    }

    @Test func anUnknownAddressIsFloodedAndCounted() throws {
        let rig = try rig()
        let request = NeighbourFrames.arpRequest(
            from: Rig.hostA, Self.hostIP, for: Self.remoteIP, vlan: 100)
        rig.port(0).inject(request)
        rig.worker.serviceAll(now: 1)
        #expect(rig.port(0).takeSent().isEmpty)
        #expect(rig.port(1).takeSent().count == 1)
        #expect(rig.io.underlay.takeSent().frames.count == 1, "flooded to the VTEP")
        let web = rig.worker.statistics().switches[SwitchIndex(rawValue: 0)]
        #expect(web?.neighbourAnswered == 0)
        #expect(web?.neighbourFlooded == 1)
    }

    @Test func withoutSuppressionEveryRequestIsFlooded() throws {
        let rig = try rig(suppression: false)
        rig.fromVTEP(
            NeighbourFrames.arpRequest(from: Rig.remoteHost, Self.remoteIP, for: Self.remoteIP))
        rig.worker.serviceAll(now: 1)
        _ = rig.port(0).takeSent()
        _ = rig.port(1).takeSent()
        rig.port(0).inject(
            NeighbourFrames.arpRequest(from: Rig.hostA, Self.hostIP, for: Self.remoteIP, vlan: 100))
        rig.worker.serviceAll(now: 2)
        #expect(rig.port(0).takeSent().isEmpty)
        #expect(rig.io.underlay.takeSent().frames.count == 1)
        let web = rig.worker.statistics().switches[SwitchIndex(rawValue: 0)]
        #expect(web?.neighbourAnswered == 0 && web?.neighbourFlooded == 0)
    }

    /// Ucast_Macs_Remote `ipaddr`, as the controller writes it: answered without anything
    /// heard from the tunnel.
    @Test func aControllersIPAddressIsAnswered() throws {
        let rig = try rig()
        rig.worker.apply(
            rig.worker.currentConfiguration,
            [
                StaticRemoteMAC(
                    logicalSwitch: "web", mac: Rig.remoteHost, locator: Rig.vtep,
                    ip: .v4(Self.remoteIP))
            ])
        rig.port(1).inject(
            NeighbourFrames.arpRequest(from: Rig.hostA, Self.hostIP, for: Self.remoteIP))
        rig.worker.serviceAll(now: 1)
        let answers = rig.port(1).takeSent().map(\.bytes)
        #expect(answers.count == 1)
        #expect(answers.first.map { Array($0[6..<12]) } == NeighbourFrames.bytes(Rig.remoteHost))
        #expect(rig.io.underlay.takeSent().frames.isEmpty)

        // The trace (`trace port`) says why, without answering or counting (a static entry:
        // `explain` reads the worker's own clock, not the one `serviceAll` was given).
        let steps = rig.worker.explain(
            NeighbourFrames.arpRequest(from: Rig.hostA, Self.hostIP, for: Self.remoteIP),
            onPort: "eth1")
        #expect(
            steps?.contains(
                "ARP/ND request for \(Self.remoteIP): the neighbour table has \(Rig.remoteHost)")
                == true, "\(steps ?? [])")
        #expect(
            steps?.last
                == "decision: answer (ARP/ND suppression) for \(Rig.remoteHost), the reply to port eth1 untagged",
            "\(steps ?? [])")
        #expect(rig.port(1).takeSent().isEmpty)
        #expect(
            rig.worker.statistics().switches[SwitchIndex(rawValue: 0)]?.neighbourAnswered == 1)
    }
}
