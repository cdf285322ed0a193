import Packet
import TestSupport
import Testing

@testable import Forwarding

/// The decision of ARP and ND suppression: answer or flood, for IPv4 ARP and IPv6 neighbour
/// solicitations, tagged and untagged; what it learns from tunnels and what it will not.
@Suite("ARP and ND suppression")
struct ARPSuppressionTests {
    typealias L = Lab
    static let hostIP = IPv4Address("10.1.0.1")!
    static let remoteIP = IPv4Address("10.1.0.2")!
    static let hostIP6 = IPv6Address("fd01::1")!
    static let remoteIP6 = IPv6Address("fd01::2")!

    /// The lab with suppression on "web" (eth0 and eth1 VLAN 100, VTEPs .2 and .3) and "db"
    /// (eth1 untagged), and `ageing` for web's MACs.
    func engine(ageing: UInt32 = MACTable.defaultAgeing) -> ForwardingEngine {
        var switches = L.switches
        switches[0].arpSuppression = true
        switches[0].macAgeing = ageing
        switches[1].arpSuppression = true
        return ForwardingEngine(configuration: L.configuration(switches: switches))
    }

    func announce(
        _ engine: ForwardingEngine, _ mac: MACAddress, _ ip: IPv4Address, via: Locator = L.vtep2,
        vni: Int = 5000, now: UInt32 = 0
    ) {
        _ = engine.decide(
            L.tunnel(via, vni), NeighbourFrames.arpRequest(from: mac, ip, for: ip), now: now)
    }

    func request(_ ip: IPv4Address, vlan: UInt16? = 100) -> [UInt8] {
        NeighbourFrames.arpRequest(from: L.a, Self.hostIP, for: ip, vlan: vlan)
    }

    /// Who has the remote address? from host a on eth0 VLAN 100.
    func ask(_ engine: ForwardingEngine, now: UInt32 = 0) -> Decision {
        engine.decide(.access(L.eth0), request(Self.remoteIP), now: now)
    }

    @Test func aKnownRemoteAddressIsAnsweredWhereTheRequestCameFrom() {
        let engine = engine()
        announce(engine, L.b, Self.remoteIP)
        #expect(
            ask(engine) == .reply(port: L.eth0, vlan: 100, mac: L.b))
        #expect(
            engine.decide(.access(L.eth1), request(Self.remoteIP))
                == .reply(port: L.eth1, vlan: 100, mac: L.b))
        let k = engine.counters(of: L.web)
        #expect(k.neighbourAnswered == 2)
        #expect(k.neighbourFlooded == 0)
        #expect(k.flooded == 1, "only the announcement, to the local ports")
        #expect(
            k.fromAccess + k.fromTunnel == k.toAccess + k.encapsulated + k.flooded
                + k.neighbourAnswered + k.drops)
    }

    @Test func anUnknownAddressIsFloodedAndCounted() {
        let engine = engine()
        announce(engine, L.b, Self.remoteIP)
        let other = IPv4Address("10.1.0.99")!
        guard case .flood(_, _, _, let replicate) = engine.decide(.access(L.eth0), request(other))
        else {
            Issue.record("not flooded")
            return
        }
        #expect(replicate)
        #expect(engine.counters(of: L.web).neighbourFlooded == 1)
        #expect(engine.counters(of: L.web).neighbourAnswered == 0)
    }

    @Test func anUntaggedRequestIsAnsweredUntagged() {
        let engine = engine()
        announce(engine, L.c, Self.remoteIP, vni: 6000)
        #expect(
            engine.decide(.access(L.eth1), request(Self.remoteIP, vlan: nil))
                == .reply(port: L.eth1, vlan: nil, mac: L.c))
    }

    @Test func aSolicitationIsAnsweredAndDuplicateAddressDetectionIsNot() {
        let engine = engine()
        _ = engine.decide(
            L.tunnel(L.vtep3, 5000),
            NeighbourFrames.neighbourAdvertisement(from: L.b, for: Self.remoteIP6))
        let solicitation = NeighbourFrames.neighbourSolicitation(
            from: L.a, Self.hostIP6, for: Self.remoteIP6, vlan: 100)
        #expect(
            engine.decide(.access(L.eth0), solicitation)
                == .reply(port: L.eth0, vlan: 100, mac: L.b))
        // DAD (source ::) is the host's own business: flooded, not counted as suppression's.
        let dad = NeighbourFrames.neighbourSolicitation(
            from: L.a, IPv6Address(high: 0, low: 0), for: Self.remoteIP6, vlan: 100)
        if case .flood = engine.decide(.access(L.eth0), dad) {
        } else {
            Issue.record("DAD answered")
        }
        // A solicitation that crossed a router (hop limit below 255) is not valid (RFC 4861
        // §7.1.1): flooded, never answered.
        let forged = NeighbourFrames.neighbourSolicitation(
            from: L.a, Self.hostIP6, for: Self.remoteIP6, vlan: 100, hopLimit: 64)
        if case .flood = engine.decide(.access(L.eth0), forged) {
        } else {
            Issue.record("forged solicitation answered")
        }
        #expect(engine.counters(of: L.web).neighbourAnswered == 1)
    }

    /// A host that changed its MAC announces it (gratuitous ARP): the next answer is the new
    /// MAC, whichever VTEP it is behind now.
    @Test func aGratuitousARPReplacesAStaleEntry() {
        let engine = engine()
        announce(engine, L.b, Self.remoteIP)
        #expect(
            ask(engine) == .reply(port: L.eth0, vlan: 100, mac: L.b))
        announce(engine, L.c, Self.remoteIP, via: L.vtep3)
        #expect(
            ask(engine) == .reply(port: L.eth0, vlan: 100, mac: L.c))
        // An ARP reply teaches as well.
        let reply = NeighbourFrames.arp(
            ARPPacket.reply, sender: (L.b, Self.remoteIP), target: (L.a, Self.hostIP), to: L.a)
        _ = engine.decide(L.tunnel(L.vtep2, 5000), reply)
        #expect(
            ask(engine) == .reply(port: L.eth0, vlan: 100, mac: L.b))
    }

    /// What is learned from access ports, from a switch without suppression, or for a MAC
    /// that aged out or lives on an access port, is never answered.
    @Test func onlyRemoteHostsWithALiveMACAreAnswered() {
        let engine = engine(ageing: 10)
        // An announcement from an access host teaches nothing.
        _ = engine.decide(
            .access(L.eth1),
            NeighbourFrames.arpRequest(from: L.c, Self.remoteIP, for: Self.remoteIP, vlan: 100))
        if case .flood = engine.decide(.access(L.eth0), request(Self.remoteIP)) {
        } else {
            Issue.record("answered for an access host")
        }
        // Learned remote, then the MAC ages out: flooded until heard again.
        announce(engine, L.b, Self.remoteIP, now: 0)
        #expect(
            ask(engine, now: 5) == .reply(port: L.eth0, vlan: 100, mac: L.b))
        if case .flood = engine.decide(.access(L.eth0), request(Self.remoteIP), now: 20) {
        } else {
            Issue.record("answered for a MAC gone from the table")
        }
        // svc has no suppression: nothing learned there, everything flooded.
        let svcRequest = NeighbourFrames.arpRequest(
            from: L.a, Self.hostIP, for: Self.remoteIP, vlan: 300)
        announce(engine, L.b, Self.remoteIP, via: L.serviceNode, vni: 7000)
        if case .flood = engine.decide(.access(L.eth0), svcRequest) {
        } else {
            Issue.record("answered on a switch without suppression")
        }
        #expect(engine.counters(of: L.svc).neighbourFlooded == 0)
        #expect(engine.neighbours.entries.allSatisfy { $0.logicalSwitch != L.svc })
    }

    /// Ucast_Macs_Remote `ipaddr` entries are static: a learned advertisement never replaces
    /// them, and replacing the static set removes the old ones.
    @Test func aControllersEntryWinsOverWhatIsLearned() throws {
        let engine = engine()
        try engine.installStatic(L.b, on: L.web, at: .remote(L.index(L.vtep2, in: engine)), now: 0)
        engine.replaceStaticNeighbours([(L.web, .v4(Self.remoteIP), L.b)])
        #expect(
            ask(engine) == .reply(port: L.eth0, vlan: 100, mac: L.b))
        announce(engine, L.c, Self.remoteIP, via: L.vtep3)
        #expect(
            ask(engine) == .reply(port: L.eth0, vlan: 100, mac: L.b))
        engine.replaceStaticNeighbours([])
        #expect(engine.neighbours.lookup(L.web, .v4(Self.remoteIP)) == nil)
    }

    /// Turning suppression off forgets what it learned; a probe or a request for the sender's
    /// own address is never answered.
    @Test func offForgetsAndProbesAreNotAnswered() {
        let engine = engine()
        announce(engine, L.b, Self.remoteIP)
        let probe = NeighbourFrames.arpRequest(
            from: L.a, IPv4Address(rawValue: 0), for: Self.remoteIP, vlan: 100)
        if case .flood = engine.decide(.access(L.eth0), probe) {
        } else {
            Issue.record("probe answered")
        }
        engine.apply(L.configuration(previous: engine.configuration))
        #expect(engine.neighbours.lookup(L.web, .v4(Self.remoteIP)) == nil)
    }
}
