import Forwarding
import Packet
import Testing

@Suite("BFD session (RFC 5880 as Open vSwitch's lib/bfd.c runs it), deterministic time")
struct BFDSessionTests {
    static let fast = BFDParameters(enable: true, minRx: 100, minTx: 100)

    /// Two sessions exchanging every packet either wants to send, 1 ms at a time, until
    /// `until`; returns the time both were up (nil: never).
    static func exchange(
        _ a: inout BFDSession, _ b: inout BFDSession, from start: UInt64, until end: UInt64,
        deliverToA: Bool = true
    ) -> UInt64? {
        var bothUp: UInt64?
        for now in start...end {
            a.run(now: now, receivedPackets: 0)
            b.run(now: now, receivedPackets: 0)
            if a.shouldSend(now: now) { try? b.receive(a.makePacket(now: now), now: now) }
            if b.shouldSend(now: now) {
                let p = b.makePacket(now: now)
                if deliverToA { try? a.receive(p, now: now) }
            }
            if bothUp == nil, a.state == .up, b.state == .up { bothUp = now }
        }
        return bothUp
    }

    @Test func threeWayHandshakeThenFastIntervals() throws {
        var a = BFDSession(
            discriminator: 1, sourcePort: 49152, parameters: Self.fast, now: 0, seed: 1)
        var b = BFDSession(
            discriminator: 2, sourcePort: 49153, parameters: Self.fast, now: 0, seed: 2)
        // Down: packets at most every second (§6.8.3): the first go at once.
        let first = a.makePacket(now: 0)
        #expect(first.state == .down)
        #expect(first.desiredMinTxInterval == 1_000_000)
        #expect(first.requiredMinRxInterval == 100_000)
        #expect(first.yourDiscriminator == 0)
        try b.receive(first, now: 0)
        #expect(b.state == .initializing)
        let reply = b.makePacket(now: 0)
        #expect(reply.state == .initializing && reply.yourDiscriminator == 1)
        try a.receive(reply, now: 0)
        #expect(a.state == .up)
        try b.receive(a.makePacket(now: 1), now: 1)
        #expect(b.state == .up)
        // Up: a poll sequence moves both to 100 ms.
        _ = Self.exchange(&a, &b, from: 2, until: 3000)
        #expect(a.state == .up && b.state == .up)
        let forwarding = a.forwarding(now: 3000)
        #expect(forwarding)
        var sent = 0
        for now in UInt64(3001)...4000 where a.shouldSend(now: now) {
            try b.receive(a.makePacket(now: now), now: now)
            if b.shouldSend(now: now) { try a.receive(b.makePacket(now: now), now: now) }
            sent += 1
        }
        // 100 ms less up to 25 % jitter: 10 to 14 packets a second.
        #expect((10...14).contains(sent), "\(sent) packets in a second")
    }

    @Test func detectionTimeExpires() {
        var a = BFDSession(
            discriminator: 1, sourcePort: 49152, parameters: Self.fast, now: 0, seed: 1)
        var b = BFDSession(
            discriminator: 2, sourcePort: 49153, parameters: Self.fast, now: 0, seed: 2)
        let up = Self.exchange(&a, &b, from: 0, until: 3000)
        #expect(up != nil)
        // b falls silent: a declares it down within 3 × 100 ms of its last packet.
        _ = Self.exchange(&a, &b, from: 3001, until: 3400, deliverToA: false)
        #expect(a.state == .down)
        #expect(a.diagnostic == .controlDetectionTimeExpired)
        let forwarding = a.forwarding(now: 3400)
        #expect(!forwarding)
        #expect(a.status.flapCount == 2)
    }

    @Test func refusesWrongDiscriminator() {
        var a = BFDSession(
            discriminator: 1, sourcePort: 49152, parameters: Self.fast, now: 0, seed: 1)
        let stray = BFDControl(
            state: .initializing, myDiscriminator: 9, yourDiscriminator: 7,
            desiredMinTxInterval: 100_000, requiredMinRxInterval: 100_000)
        #expect(throws: BFDSession.Refusal.wrongDiscriminator) { try a.receive(stray, now: 0) }
        #expect(a.state == .down)
        var upWithoutYours = stray
        upWithoutYours.yourDiscriminator = 0
        upWithoutYours.state = .up
        #expect(throws: BFDSession.Refusal.zeroDiscriminatorWhileUp) {
            try a.receive(upWithoutYours, now: 0)
        }
    }

    @Test func cpathDownIsSignalledAndStopsPeerForwarding() {
        var p = Self.fast
        p.cpathDown = true
        var a = BFDSession(discriminator: 1, sourcePort: 49152, parameters: p, now: 0, seed: 1)
        var b = BFDSession(
            discriminator: 2, sourcePort: 49153, parameters: Self.fast, now: 0, seed: 2)
        _ = Self.exchange(&a, &b, from: 0, until: 3000)
        #expect(a.diagnostic == .concatenatedPathDown)
        #expect(b.state == .up)
        let forwarding = b.forwarding(now: 3000)
        #expect(!forwarding)
    }

    @Test func parametersAsOVSReadsThem() {
        let p = BFDParameters([
            "enable": "true", "min_rx": "300", "min_tx": "x", "decay_min_rx": "0",
            "forwarding_if_rx": "yes", "check_tnl_key": "true",
        ])
        #expect(p == BFDParameters(enable: true, minRx: 300, minTx: 100, checkTunnelKey: true))
        #expect(BFDParameters([:]).enable == false)
        // Beyond a C int: the default, as OVS's smap_get_int; huge values never overflow.
        #expect(BFDParameters(["min_rx": "9223372036854775807"]).minRx == 1000)
        #expect(BFDParameters(minRx: .max, minTx: .max).minTx == Int(Int32.max))
    }
}
