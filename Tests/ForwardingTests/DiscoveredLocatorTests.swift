import Packet
import Testing

@testable import Forwarding

/// Multicast switches hear from VTEPs the configuration does not name (flood-and-learn,
/// RFC 7348 §4.2); head-end and service-node switches do not (issue: accepted sources).
@Suite("Discovered VTEPs on multicast switches") struct DiscoveredLocatorTests {
    typealias L = Lab

    static func from(_ address: String, _ v: Int = 6000) -> Ingress {
        .tunnel(source: ip(address), encapsulation: .vxlan, vni: vni(v))
    }

    @Test func anUnnamedVTEPIsLearnedAndReachable() throws {
        let engine = L.engine()
        #expect(
            engine.decide(Self.from("10.7.7.7"), frame(to: .broadcast, from: L.c))
                == .flood(switch: L.db, vni: vni(6000), excluding: nil, includeReplication: false))
        let entry = try #require(engine.macTable.lookup(L.c, on: L.db, now: 0))
        guard case .remote(let index) = entry.location else {
            Issue.record("expected a remote entry, got \(entry.location)")
            return
        }
        #expect(index.isDynamic)
        #expect(engine.locator(index) == Locator(ip("10.7.7.7")))
        #expect(engine.discoveredLocators == [Locator(ip("10.7.7.7"))])
        // Unicast back goes to it directly, not to the group.
        #expect(
            engine.decide(.access(L.eth1), frame(to: L.c, from: L.a))
                == .encapsulate(locator: index, vni: vni(6000)))
        // The same VTEP again keeps its index.
        _ = engine.decide(Self.from("10.7.7.7"), frame(to: .broadcast, from: L.b))
        #expect(engine.macTable.lookup(L.b, on: L.db, now: 0)?.location == .remote(index))
        #expect(engine.discoveredLocators.count == 1)
    }

    @Test func headEndAndServiceNodeSwitchesRefuseUnnamedVTEPs() {
        let engine = L.engine()
        for v in [5000, 7000, 8000] {
            #expect(
                engine.decide(Self.from("10.7.7.7", v), frame(to: .broadcast, from: L.c))
                    == .drop(.unknownSourceVTEP))
        }
        #expect(engine.discoveredLocators.isEmpty)
        #expect(engine.dropCount(.unknownSourceVTEP) == 3)
    }

    @Test func acceptedPrefixesRestrictAMulticastSwitch() throws {
        var switches = L.switches
        switches[1].acceptedSources = [IPPrefix("10.7.0.0/16")!, IPPrefix("fd00::/64")!]
        let engine = ForwardingEngine(configuration: L.configuration(switches: switches))
        #expect(
            engine.decide(Self.from("10.8.0.1"), frame(to: .broadcast, from: L.c))
                == .drop(.sourceVTEPNotAccepted))
        #expect(engine.macTable.lookup(L.c, on: L.db, now: 0) == nil)
        #expect(
            engine.decide(Self.from("10.7.200.1"), frame(to: .broadcast, from: L.c))
                == .flood(switch: L.db, vni: vni(6000), excluding: nil, includeReplication: false))
        // The configured IPv6 locator fd00::4 is inside fd00::/64; vtep2 is not in any prefix.
        #expect(
            engine.decide(L.tunnel(L.vtep4, 6000), frame(to: .broadcast, from: L.b))
                == .flood(switch: L.db, vni: vni(6000), excluding: nil, includeReplication: false))
        #expect(
            engine.decide(L.tunnel(L.vtep2, 6000), frame(to: .broadcast, from: L.a))
                == .drop(.sourceVTEPNotAccepted))
        #expect(engine.dropCount(.sourceVTEPNotAccepted) == 2)
    }

    @Test func aFullTableOfDiscoveredVTEPsRefusesTheNextOne() {
        let engine = ForwardingEngine(configuration: L.configuration(), discoveredLocatorLimit: 2)
        for (n, address) in ["10.7.0.1", "10.7.0.2"].enumerated() {
            #expect(
                engine.decide(Self.from(address), frame(to: .broadcast, from: mac(UInt8(0x10 + n))))
                    != .drop(.remoteVTEPLimit))
        }
        #expect(
            engine.decide(Self.from("10.7.0.3"), frame(to: .broadcast, from: mac(0x20)))
                == .drop(.remoteVTEPLimit))
        #expect(engine.macTable.lookup(mac(0x20), on: L.db, now: 0) == nil)
        // Known ones still pass.
        #expect(
            engine.decide(Self.from("10.7.0.1"), frame(to: .broadcast, from: mac(0x21)))
                != .drop(.remoteVTEPLimit))
        #expect(engine.dropCount(.remoteVTEPLimit) == 1)
    }

    @Test func entriesBehindDiscoveredVTEPsGoWhenTheSwitchStopsTakingThem() {
        let engine = L.engine()
        _ = engine.decide(Self.from("10.7.7.7"), frame(to: .broadcast, from: L.c))
        #expect(engine.macTable.lookup(L.c, on: L.db, now: 0) != nil)
        // An unrelated change keeps them.
        var switches = L.switches
        switches[3].macAgeing = 60
        engine.apply(L.configuration(switches: switches, previous: engine.configuration))
        #expect(engine.macTable.lookup(L.c, on: L.db, now: 0) != nil)
        // db becomes head-end: 10.7.7.7 is no longer allowed, and what it taught goes.
        switches[1].replication = .headEnd([L.vtep2])
        engine.apply(L.configuration(switches: switches, previous: engine.configuration))
        #expect(engine.macTable.lookup(L.c, on: L.db, now: 0) == nil)
    }
}
