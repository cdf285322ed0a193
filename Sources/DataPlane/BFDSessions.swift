import Forwarding
import Packet

/// One remote VTEP's BFD session as `show switch tunnels` and the Tunnel row's `bfd_status`
/// read it.
public struct BFDTunnelStatus: Hashable, Sendable {
    public var remote: Locator
    public var status: BFDStatus
    public var parameters: BFDParameters

    public init(remote: Locator, status: BFDStatus, parameters: BFDParameters) {
        self.remote = remote
        self.status = status
        self.parameters = parameters
    }
}

/// BFD packets the worker took from the BFD channel (VXLAN VNI 0) and sent.
public struct BFDCounters: Hashable, Sendable {
    public var received: UInt64 = 0
    public var sent: UInt64 = 0
    /// From the BFD channel but not taken: malformed, TTL not 255, wrong discriminator, or
    /// from a VTEP without a session.
    public var bad: UInt64 = 0
    public var sessionsUp: Int = 0

    public init() {}
}

/// The worker's BFD sessions, one per remote VXLAN VTEP with `bfd_params:enable=true`. The
/// worker runs their timers between batches and takes their packets out of the tunnel
/// receive path; nothing here allocates per packet (the table changes only on configuration).
struct BFDSessions {
    struct Entry {
        var remote: Locator
        /// The remote's index in the configuration in force; nil while it is not configured.
        var index: LocatorIndex?
        var session: BFDSession
        var lastForwarding: Bool
        /// BFD control packets taken from this VTEP (its data packets are the worker's
        /// per-VTEP counter).
        var controlReceived: UInt64 = 0
        /// `controlReceived` plus the data packets, when the timers last looked.
        var lastReceived: UInt64 = 0
    }

    var entries: [Entry] = []
    /// The earliest time (ms) some session has something to do.
    var wake: UInt64 = .max
    var counters = BFDCounters()
    /// Set when some session's `forwarding` changed: service-node choice follows.
    var forwardingChanged = false
    private var nextDiscriminator: UInt32
    private var nextSourcePort: UInt16
    private let seed: UInt64

    init(seed: UInt64) {
        self.seed = seed
        nextDiscriminator = UInt32(truncatingIfNeeded: seed >> 32) | 1
        nextSourcePort = 49152 + UInt16(truncatingIfNeeded: seed) % 16384
    }

    /// Sessions for exactly the `wanted` remotes: new ones start down, existing ones take
    /// changed parameters (a poll sequence), gone ones end.
    mutating func configure(
        _ wanted: [Locator: BFDParameters], index: (Locator) -> LocatorIndex?, now: UInt64
    ) {
        var kept: [Entry] = []
        for var e in entries {
            guard let p = wanted[e.remote], p.enable else { continue }
            if e.session.parameters != p { e.session.configure(p, now: now) }
            e.index = index(e.remote)
            kept.append(e)
        }
        for (remote, p) in wanted.sorted(by: { "\($0.key)" < "\($1.key)" })
        where p.enable && !kept.contains(where: { $0.remote == remote }) {
            let session = BFDSession(
                discriminator: takeDiscriminator(), sourcePort: nextSourcePort, parameters: p,
                now: now, seed: seed ^ UInt64(nextSourcePort))
            nextSourcePort = nextSourcePort == 65535 ? 49152 : nextSourcePort + 1
            kept.append(
                Entry(remote: remote, index: index(remote), session: session, lastForwarding: false)
            )
        }
        if kept.count != entries.count
            || zip(kept, entries).contains(where: { $0.remote != $1.remote })
        {
            forwardingChanged = true
        }
        entries = kept
        wake = 0
    }

    /// Follows a new configuration's locator indices.
    mutating func reindex(_ index: (Locator) -> LocatorIndex?) {
        for i in entries.indices { entries[i].index = index(entries[i].remote) }
    }

    private mutating func takeDiscriminator() -> UInt32 {
        repeat {
            nextDiscriminator = nextDiscriminator &* 1_664_525 &+ 1_013_904_223
        } while nextDiscriminator == 0
            || entries.contains(where: { $0.session.discriminator == nextDiscriminator })
        return nextDiscriminator
    }

    /// The session of the VTEP at `address`, if any.
    @inline(__always)
    func session(from address: IPAddress) -> Int? {
        for i in entries.indices where entries[i].remote.ip == address { return i }
        return nil
    }

    /// A control packet from `entries[i]`'s VTEP.
    mutating func receive(_ control: BFDControl, at i: Int, now: UInt64, receivedPackets: UInt64) {
        entries[i].controlReceived &+= 1
        do {
            try entries[i].session.receive(control, now: now, receivedPackets: receivedPackets)
            counters.received &+= 1
        } catch {
            counters.bad &+= 1
        }
        noteForwarding(i, now: now)
        wake = 0
    }

    mutating func noteForwarding(_ i: Int, now: UInt64) {
        let forwarding = entries[i].session.forwarding(now: now)
        if forwarding != entries[i].lastForwarding {
            entries[i].lastForwarding = forwarding
            forwardingChanged = true
        }
    }

    /// Whether the VTEP is usable: BFD forwarding, or no BFD session at all.
    func isLive(_ remote: Locator) -> Bool {
        for e in entries where e.remote == remote { return e.lastForwarding }
        return true
    }

    func statuses() -> [BFDTunnelStatus] {
        entries.map {
            BFDTunnelStatus(
                remote: $0.remote, status: $0.session.status, parameters: $0.session.parameters)
        }
    }

    var sessionsUp: Int { entries.reduce(0) { $0 + ($1.session.state == .up ? 1 : 0) } }
}
