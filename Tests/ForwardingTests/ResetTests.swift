import Packet
import PropertyBased
import PropertyChecks
import TestSupport
import Testing

@testable import Forwarding

@Suite("Engine reset")
struct ResetTests {
    /// The lab's switches with everything that keeps state per switch turned on: ageing and a
    /// MAC limit (one of 0, so its fault flag rises with no entry), storm control, ARP and ND
    /// suppression, a multicast switch that discovers VTEPs.
    static func switches() -> [LogicalSwitch] {
        var switches = Lab.switches
        switches[0].macAgeing = 60
        switches[0].arpSuppression = true
        switches[0].bumRateLimit = RateLimit(framesPerSecond: 5, burst: 3)
        switches[1].macLimit = 3
        switches[1].arpSuppression = true
        switches[3].macLimit = 0
        return switches
    }

    static func engine() -> ForwardingEngine {
        ForwardingEngine(
            configuration: Lab.configuration(switches: switches()), macTableLimit: 8,
            discoveredLocatorLimit: 2, neighbourCapacity: 32)
    }

    /// Frames, ARP replies and gratuitous ARP from tunnels and access ports, storm-control
    /// clock ticks, ageing: every decision and then every piece of state an observer can see.
    static func run(_ frames: [RandomFrame], on engine: ForwardingEngine) -> [String] {
        var seen: [String] = []
        var now: UInt32 = 0
        var clock: UInt64 = 0
        for (n, f) in frames.enumerated() {
            now += f.advance
            clock += UInt64(f.advance) * 100_000_000
            engine.tick(nanoseconds: clock)
            if n % 50 == 0 { engine.age(now: now, budget: 4) }
            var bytes = f.bytes
            if n % 7 == 0 {
                // An ARP reply from a host behind the ingress: what suppression learns from.
                let host = IPv4Address(rawValue: 0x0A01_0000 | UInt32(n % 40))
                bytes = NeighbourFrames.arp(
                    ARPPacket.reply, sender: (mac(UInt8(n % 9)), host),
                    target: (mac(0xEE), IPv4Address("10.1.0.200")!), to: mac(0xEE),
                    vlan: f.vlans.first)
            }
            seen.append("\(n): \(engine.decide(f.ingress, bytes, now: now))")
        }
        seen.append("statistics \(engine.statistics())")
        seen.append("MACs \(engine.macTable.entries(now: now, from: 0, count: .max))")
        seen.append("neighbours \(engine.neighbours.entries)")
        seen.append("discovered \(engine.discoveredLocators)")
        seen.append("clock \(engine.clock), own \(String(describing: engine.ownAddresses))")
        for i in 0..<Lab.switches.count {
            let sw = SwitchIndex(rawValue: UInt16(i))
            seen.append(
                "switch \(i): \(engine.counters(of: sw)) \(engine.macTable.count(of: sw))"
                    + " \(engine.macTable.limitReached(sw)) \(engine.macTable.ageing(of: sw))")
        }
        return seen
    }

    /// What the fuzz check `decision` relies on to reuse one engine: after any traffic,
    /// static entries, own addresses and a clock, `reset()` leaves an engine that decides,
    /// learns, counts and limits exactly as a new one does.
    @Test func aResetEngineIsAsGoodAsNew() throws {
        try seededCheck(
            count: 25, seed: 0x5EED_0F_7E5E7, randomFrames.array(of: 200...600)
        ) { frames in
            let (before, after) = (Array(frames.prefix(100)), Array(frames.dropFirst(100)))
            let used = Self.engine()
            used.ownAddresses = (IPv4Address("10.0.0.1"), IPv6Address("fd00::1"))
            let vtep2 = try #require(used.configuration.locatorIndex(of: Lab.vtep2))
            try used.installStatic(mac(0x51), on: Lab.web, at: .remote(vtep2), now: 0)
            _ = used.replaceStaticNeighbours([(Lab.db, ip("10.2.0.9"), mac(0x52))])
            _ = Self.run(before, on: used)
            used.reset()
            let fresh = Self.engine()
            #expect(Self.difference(Self.run([], on: used), Self.run([], on: fresh)) == nil)
            #expect(
                Self.difference(Self.run(after, on: used), Self.run(after, on: fresh)) == nil)
        }
    }

    /// The first line where the reset engine (`used`) and the new one part.
    static func difference(_ used: [String], _ fresh: [String]) -> String? {
        guard used != fresh else { return nil }
        guard let n = used.indices.first(where: { $0 < fresh.count && used[$0] != fresh[$0] })
        else {
            return "\(used.count) lines after reset, \(fresh.count) new"
        }
        return "after reset: \(used[n])\nnew: \(fresh[n])"
    }
}
