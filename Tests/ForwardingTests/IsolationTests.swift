import Packet
import PropertyBased
import PropertyChecks
import Testing

@testable import Forwarding

/// One frame of a random conversation on the lab gateway.
struct RandomFrame: Sendable, CustomStringConvertible {
    var ingress: Ingress
    var bytes: [UInt8]
    var vlans: [UInt16]
    var advance: UInt32

    var description: String { "\(ingress) vlans \(vlans) \(bytes.count) bytes" }
}

let randomFrames = Generator<RandomFrame, Shrink.None<RandomFrame>> { rng in
    let hosts: [MACAddress] =
        (1...6).map { mac($0) } + [
            .broadcast, MACAddress(0x01, 0x00, 0x5E, 0x00, 0x00, 0x01),
            MACAddress(0x01, 0x80, 0xC2, 0x00, 0x00, 0x00), MACAddress(rawValue: 0),
        ]
    let vlanChoices: [UInt16] = [0, 100, 200, 300, 400, 500, 7, 4095]
    let ingress: Ingress
    if Bool.random(using: &rng) {
        ingress = .access(PortIndex(rawValue: UInt16.random(in: 0...4, using: &rng)))
    } else {
        let source = [Lab.vtep2, Lab.vtep3, Lab.vtep4, Lab.serviceNode, Locator(ip("10.7.7.7"))]
            .randomElement(using: &rng)!
        let v = [5000, 6000, 7000, 8000, 9000, 1].randomElement(using: &rng)!
        ingress = Lab.tunnel(source, v)
    }
    let tagCount = [0, 0, 0, 1, 1, 1, 2].randomElement(using: &rng)!
    let vlans = (0..<tagCount).map { _ in vlanChoices.randomElement(using: &rng)! }
    // Mostly ordinary hosts as sources; sometimes the odd addresses.
    let source =
        Int.random(in: 0..<10, using: &rng) < 8
        ? hosts[Int.random(in: 0..<6, using: &rng)] : hosts.randomElement(using: &rng)!
    var bytes = frame(to: hosts.randomElement(using: &rng)!, from: source, vlans: vlans)
    if Int.random(in: 0..<20, using: &rng) == 0 {
        bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
    }
    return RandomFrame(
        ingress: ingress, bytes: bytes, vlans: vlans,
        advance: UInt32.random(in: 0...40, using: &rng))
}

@Suite("Isolation")
struct IsolationTests {
    /// Whatever the traffic, a frame leaves only into the logical switch it entered: outputs go
    /// to an attachment bound to that switch (never the one it came from), encapsulation
    /// carries that switch's VNI, floods name that switch, and nothing from a tunnel goes back
    /// into one. Per-switch counters add up.
    @Test func framesNeverLeaveTheirLogicalSwitch() throws {
        try seededCheck(count: 40, seed: 0x1234_5678_9ABC_DEF0, randomFrames.array(of: 300...600)) {
            frames in
            try #require(isolationProblem(frames) == nil)
        }
    }

    /// The first way `frames` leave their logical switch or break the counters, if any.
    private func isolationProblem(_ frames: [RandomFrame]) -> String? {
        var switches = Lab.switches
        switches[0].macAgeing = 60
        switches[1].macLimit = 3
        let engine = ForwardingEngine(
            configuration: Lab.configuration(switches: switches), macTableLimit: 8)
        let c = engine.configuration
        var now: UInt32 = 0
        for (n, f) in frames.enumerated() {
            now += f.advance
            if n % 50 == 0 { engine.age(now: now, budget: 4) }
            let decision = engine.decide(f.ingress, f.bytes, now: now)
            let entered: SwitchIndex?
            let fromTunnel: Bool
            var ingressAttachment: AttachmentCircuit? = nil
            switch f.ingress {
            case .access(let port):
                fromTunnel = false
                let vid = f.vlans.first ?? 0
                ingressAttachment = AttachmentCircuit(port: port, vlan: vid)
                entered = f.vlans.count > 1 ? nil : c.boundSwitch(port: port, vlan: vid)
            case .tunnel(_, _, let v):
                fromTunnel = true
                entered = c.switchIndex(for: v)
            }
            let problem = "frame \(n) \(f) → \(decision)"
            switch decision {
            case .drop:
                continue
            case .output(let port, let vlan):
                guard let entered, c.boundSwitch(port: port, vlan: vlan) == entered,
                    AttachmentCircuit(port: port, vlan: vlan) != ingressAttachment
                else { return "wrong output: \(problem)" }
            case .encapsulate(let locator, let v):
                // A discovered VTEP (10.7.7.7) only on the multicast switch that heard it.
                guard let entered, !fromTunnel, c.vni(of: entered) == v,
                    let target = engine.locator(locator),
                    !locator.isDynamic || c.acceptsUnconfigured(target.ip, into: entered)
                else { return "wrong encapsulation: \(problem)" }
            case .flood(let sw, let v, let excluding, let replicate):
                guard sw == entered, c.vni(of: sw) == v, replicate == !fromTunnel,
                    excluding == ingressAttachment
                else { return "wrong flood: \(problem)" }
            case .reply(let port, let vlan, _):
                // An answer goes back where the question came from, and only to access.
                guard entered != nil, !fromTunnel,
                    AttachmentCircuit(port: port, vlan: vlan ?? 0) == ingressAttachment
                else { return "wrong reply: \(problem)" }
            }
        }
        for sw in Lab.switches.indices.map({ SwitchIndex(rawValue: UInt16($0)) }) {
            let k = engine.counters(of: sw)
            if k.fromAccess + k.fromTunnel
                != k.toAccess + k.encapsulated + k.flooded + k.neighbourAnswered + k.drops
            {
                return "counters of \(sw) do not add up: \(k)"
            }
        }
        if let problem = engine.macTable.structuralProblem() { return problem }
        return nil
    }
}

@Suite("Prefetch")
struct PrefetchTests {
    /// `prefetch` is only a cache hint: an engine that prefetches every frame of a batch before
    /// deciding them makes the same decisions, counts and MAC table as one that does not.
    @Test func prefetchChangesNothing() throws {
        try seededCheck(count: 20, seed: 0x0F0F_2468_1357_ACE0, randomFrames.array(of: 100...300)) {
            frames in
            try #require(prefetchProblem(frames) == nil)
        }
    }

    /// The first difference prefetching makes to decisions, counters or entries, if any.
    private func prefetchProblem(_ frames: [RandomFrame]) -> String? {
        let plain = ForwardingEngine(configuration: Lab.configuration(), macTableLimit: 16)
        let hinted = ForwardingEngine(configuration: Lab.configuration(), macTableLimit: 16)
        var now: UInt32 = 0
        for start in stride(from: 0, to: frames.count, by: 32) {
            let batch = frames[start..<min(start + 32, frames.count)]
            for f in batch {
                f.bytes.withUnsafeBytes { hinted.prefetch(f.ingress, frame: $0) }
            }
            if hinted.statistics() != plain.statistics() {
                return "prefetch changed the counters before batch \(start / 32)"
            }
            for f in batch {
                now += f.advance
                let expected = plain.decide(f.ingress, f.bytes, now: now)
                let got = hinted.decide(f.ingress, f.bytes, now: now)
                if got != expected { return "\(f): \(got), expected \(expected)" }
            }
        }
        if hinted.statistics() != plain.statistics() { return "counters differ" }
        for sw in Lab.switches.indices.map({ SwitchIndex(rawValue: UInt16($0)) }) {
            if hinted.macTable.entries(of: sw, now: now).map(\.mac)
                != plain.macTable.entries(of: sw, now: now).map(\.mac)
            {
                return "MAC tables of \(sw) differ"
            }
        }
        return nil
    }
}
