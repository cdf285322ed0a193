import Packet

/// hardware_vtep Tunnel `bfd_params` (vtep(5)), with the defaults ovs-vtep applies when a key
/// is absent. Intervals in milliseconds.
public struct BFDParameters: Hashable, Sendable {
    public var enable: Bool
    public var minRx: Int
    public var minTx: Int
    /// 0: no decay; otherwise at least `minRx` (a smaller value is ignored, as in OVS).
    public var decayMinRx: Int
    public var forwardingIfRx: Bool
    public var cpathDown: Bool
    /// Accept BFD only with tunnel key (VNI) 0. vtepd takes BFD from VNI 0 only, so this
    /// holds either way.
    public var checkTunnelKey: Bool
    public var multiplier: Int

    public init(
        enable: Bool = false, minRx: Int = 1000, minTx: Int = 100, decayMinRx: Int = 0,
        forwardingIfRx: Bool = false, cpathDown: Bool = false, checkTunnelKey: Bool = false,
        multiplier: Int = 3
    ) {
        self.enable = enable
        // OVS keeps intervals in a C int: nothing beyond Int32.max ms (about 24 days).
        self.minRx = min(max(minRx, 1), Int(Int32.max))
        self.minTx = min(max(minTx, 1), Int(Int32.max))
        self.decayMinRx = decayMinRx
        self.forwardingIfRx = forwardingIfRx
        self.cpathDown = cpathDown
        self.checkTunnelKey = checkTunnelKey
        self.multiplier = (1...255).contains(multiplier) ? multiplier : 3
    }

    /// Reads a `bfd_params` map as Open vSwitch reads its `bfd` column (smap_get_bool: only
    /// "true" is true; smap_get_int: a value that is not a C int takes the default).
    public init(_ map: [String: String]) {
        let d = BFDParameters()
        func int(_ key: String, _ def: Int) -> Int {
            map[key].flatMap { Int32($0) }.map { Int($0) } ?? def
        }
        func bool(_ key: String) -> Bool { map[key] == "true" }
        self.init(
            enable: bool("enable"), minRx: int("min_rx", d.minRx), minTx: int("min_tx", d.minTx),
            decayMinRx: int("decay_min_rx", 0), forwardingIfRx: bool("forwarding_if_rx"),
            cpathDown: bool("cpath_down"), checkTunnelKey: bool("check_tnl_key"),
            multiplier: int("mult", 3))
    }
}

/// What `bfd_status` shows (the keys ovs-vtep copies from Open vSwitch's Interface
/// `bfd_status`).
public struct BFDStatus: Hashable, Sendable {
    public var state: BFDState
    public var forwarding: Bool
    public var diagnostic: BFDDiagnostic
    public var remoteState: BFDState
    public var remoteDiagnostic: BFDDiagnostic
    public var flapCount: UInt64

    public init(
        state: BFDState, forwarding: Bool, diagnostic: BFDDiagnostic, remoteState: BFDState,
        remoteDiagnostic: BFDDiagnostic, flapCount: UInt64
    ) {
        self.state = state
        self.forwarding = forwarding
        self.diagnostic = diagnostic
        self.remoteState = remoteState
        self.remoteDiagnostic = remoteDiagnostic
        self.flapCount = flapCount
    }
}

/// One BFD session (RFC 5880) with one remote VTEP, behaving as Open vSwitch's lib/bfd.c so
/// that the two interoperate exactly: asynchronous mode, no echo, no authentication, a poll
/// sequence for every change of interval, 1 s transmit while not up (§6.8.3), jitter of up
/// to 25 % (§6.8.7), decay (`decay_min_rx`), `forwarding_if_rx` and `cpath_down`. Pure: the
/// time in milliseconds and the random source are the caller's.
public struct BFDSession: Sendable {
    public let discriminator: UInt32
    /// RFC 5881 §4: one source port per session, in 49152–65535.
    public let sourcePort: UInt16
    public private(set) var parameters: BFDParameters

    public private(set) var state: BFDState = .down
    public private(set) var remoteState: BFDState = .down
    public private(set) var diagnostic: BFDDiagnostic = .none
    public private(set) var remoteDiagnostic: BFDDiagnostic = .none
    public private(set) var remoteDiscriminator: UInt32 = 0
    public private(set) var flapCount: UInt64 = 0
    /// Set when anything `status` shows changed; `takeStatusChange` clears it.
    public private(set) var statusChanged = true

    private var flags: BFDControl.Flags = []
    private var multiplier: Int
    private var remoteMultiplier = 0
    private var remoteMinRx = 1
    private var remoteMinTx = 0
    private var cfgMinTx = 0
    private var cfgMinRx = 0
    private var pollMinTx = 0
    private var pollMinRx = 0
    /// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval.
    private var minTx = 1000
    private var minRx = 0
    private var lastTx: UInt64 = 0
    private var nextTx: UInt64 = 0
    private var detectTime: UInt64 = 0
    private var lastForwarding = false
    private var forwardingIfRxDetectTime: UInt64 = 0
    private var demandRxBFDTime: UInt64 = 0
    private var inDecay = false
    private var decayMinRx = 0
    private var decayRxControl = 0
    private var decayRxPackets: UInt64 = 0
    private var decayDetectTime: UInt64 = 0
    private var random: UInt64

    /// `discriminator` must be non-zero and unique among the gateway's sessions; `seed` feeds
    /// the transmit jitter.
    public init(
        discriminator: UInt32, sourcePort: UInt16, parameters: BFDParameters, now: UInt64,
        receivedPackets: UInt64 = 0, seed: UInt64
    ) {
        precondition(discriminator != 0, "BFD discriminator 0 is reserved (RFC 5880 §6.8.1)")
        self.discriminator = discriminator
        self.sourcePort = sourcePort
        self.parameters = parameters
        self.multiplier = parameters.multiplier
        self.random = seed | 1
        decayRxPackets = receivedPackets
        configure(parameters, now: now, receivedPackets: receivedPackets, initial: true)
    }

    /// Takes new `bfd_params` (lib/bfd.c `bfd_configure`): a changed interval starts a poll
    /// sequence once the session is up.
    public mutating func configure(
        _ p: BFDParameters, now: UInt64, receivedPackets: UInt64 = 0
    ) {
        configure(p, now: now, receivedPackets: receivedPackets, initial: false)
    }

    private mutating func configure(
        _ p: BFDParameters, now: UInt64, receivedPackets: UInt64, initial: Bool
    ) {
        let oldMultiplier = multiplier
        let old = initial ? BFDParameters() : parameters
        parameters = p
        multiplier = p.multiplier
        var needPoll = false
        var minRxChanged = false
        if cfgMinTx != p.minTx {
            cfgMinTx = p.minTx
            if state != .up || (!inPoll && cfgMinTx < minTx) { minTx = cfgMinTx }
            needPoll = true
        }
        if cfgMinRx != p.minRx {
            cfgMinRx = p.minRx
            if state != .up || (!inPoll && cfgMinRx > minRx) { minRx = cfgMinRx }
            minRxChanged = true
            needPoll = true
        }
        if decayMinRx != p.decayMinRx || minRxChanged {
            decayMinRx = p.decayMinRx > 0 && p.decayMinRx < cfgMinRx ? 0 : p.decayMinRx
            inDecay = false
            decayUpdate(now: now, receivedPackets: receivedPackets)
            needPoll = true
        }
        if old.cpathDown != p.cpathDown {
            setState(state, .none, now: now, receivedPackets: receivedPackets)
            needPoll = true
        }
        if old.forwardingIfRx != p.forwardingIfRx {
            if state == .up, p.forwardingIfRx {
                forwardingIfRxUpdate(now: now)
            } else {
                forwardingIfRxDetectTime = 0
            }
        } else if state == .up, p.forwardingIfRx, oldMultiplier != multiplier {
            forwardingIfRxUpdate(now: now)
        }
        if needPoll { poll() }
    }

    private var inPoll: Bool { flags.contains(.poll) }

    private mutating func poll() {
        if state.rawValue > BFDState.down.rawValue, !inPoll, !flags.contains(.final) {
            pollMinTx = cfgMinTx
            pollMinRx = inDecay ? decayMinRx : cfgMinRx
            flags.insert(.poll)
            nextTx = 0
        }
    }

    /// RFC 5880 §6.8.3: at least one second while not up.
    private var effectiveMinTx: Int { state == .up ? minTx : max(minTx, 1000) }
    private var txInterval: Int { max(effectiveMinTx, remoteMinRx) }
    private var rxInterval: Int { max(minRx, remoteMinTx) }

    private mutating func nextRandom(_ range: Int) -> Int {
        // xorshift64*: jitter needs no more.
        random ^= random >> 12
        random ^= random << 25
        random ^= random >> 27
        return Int((random &* 2_685_821_657_736_338_717) >> 33) % range
    }

    private mutating func setNextTx() {
        var interval = txInterval
        // RFC 5880 §6.8.7: 0–25 % less, 10–25 % when the multiplier is 1.
        if multiplier == 1 {
            interval -= interval * (10 + nextRandom(16)) / 100
        } else {
            interval -= interval * nextRandom(26) / 100
        }
        nextTx = lastTx + UInt64(interval)
    }

    /// The next time `run` or `makePacket` has something to do.
    public var wakeTime: UInt64 {
        if flags.contains(.final) { return 0 }
        return state.rawValue > BFDState.down.rawValue ? min(detectTime, nextTx) : nextTx
    }

    /// Timers (lib/bfd.c `bfd_run`): detection time (§6.8.4), decay, poll for changed
    /// intervals. `receivedPackets` counts every tunnel packet from the peer (decay).
    public mutating func run(now: UInt64, receivedPackets: UInt64) {
        let oldInDecay = inDecay
        if state.rawValue > BFDState.down.rawValue, now >= detectTime {
            setState(
                .down, .controlDetectionTimeExpired, now: now, receivedPackets: receivedPackets)
        }
        _ = forwarding(now: now)
        if state == .up, decayMinRx > 0, now >= decayDetectTime {
            let diff = Int64(bitPattern: receivedPackets &- decayRxPackets)
            inDecay = diff <= 2 * Int64(max(decayRxControl, 1))
            decayUpdate(now: now, receivedPackets: receivedPackets)
        }
        if minTx != cfgMinTx || (minRx != cfgMinRx && minRx != decayMinRx) || inDecay != oldInDecay
        {
            poll()
        }
    }

    public func shouldSend(now: UInt64) -> Bool { flags.contains(.final) || now >= nextTx }

    /// The control packet to send now (lib/bfd.c `bfd_put_packet`); schedules the next one.
    public mutating func makePacket(now: UInt64) -> BFDControl {
        let (tx, rx) = inPoll ? (pollMinTx, pollMinRx) : (effectiveMinTx, minRx)
        let packet = BFDControl(
            diagnostic: diagnostic, state: state, flags: flags,
            detectMultiplier: UInt8(multiplier), myDiscriminator: discriminator,
            yourDiscriminator: remoteDiscriminator,
            desiredMinTxInterval: UInt32(clamping: tx * 1000),
            requiredMinRxInterval: UInt32(clamping: rx * 1000))
        flags.remove(.final)
        lastTx = now
        setNextTx()
        return packet
    }

    /// Why a well-formed control packet was not taken.
    public enum Refusal: Error, Hashable, Sendable {
        case wrongDiscriminator
        case zeroDiscriminatorWhileUp
    }

    /// A received control packet (RFC 5880 §6.8.6, as lib/bfd.c `bfd_process_packet`); the
    /// caller has checked TTL 255 and the packet's own validity (`BFDControl.parse`).
    public mutating func receive(
        _ msg: BFDControl, now: UInt64, receivedPackets: UInt64 = 0
    ) throws(Refusal) {
        decayRxControl += 1
        _ = forwarding(now: now)
        defer { _ = forwarding(now: now) }
        if msg.yourDiscriminator != 0 {
            guard msg.yourDiscriminator == discriminator else { throw .wrongDiscriminator }
        } else if msg.state.rawValue > BFDState.down.rawValue {
            throw .zeroDiscriminatorWhileUp
        }
        if remoteState != msg.state { statusChanged = true }
        remoteDiscriminator = msg.myDiscriminator
        remoteState = msg.state
        remoteDiagnostic = msg.diagnostic
        if msg.flags.contains(.final), inPoll {
            minTx = pollMinTx
            minRx = pollMinRx
            flags.remove(.poll)
        }
        if msg.flags.contains(.poll) {
            // §6.5: answer at once with Final.
            flags.remove(.poll)
            flags.insert(.final)
        }
        remoteMultiplier = Int(msg.detectMultiplier)
        let newRemoteMinRx = max(Int(msg.requiredMinRxInterval / 1000), 1)
        if remoteMinRx != newRemoteMinRx {
            remoteMinRx = newRemoteMinRx
            if nextTx != 0 { setNextTx() }
        }
        remoteMinTx = max(Int(msg.desiredMinTxInterval / 1000), 1)
        detectTime = now + UInt64(rxInterval * remoteMultiplier)

        if state == .adminDown { return }
        if msg.state == .adminDown {
            if state != .down {
                setState(
                    .down, .neighborSignaledSessionDown, now: now, receivedPackets: receivedPackets)
            }
        } else {
            switch state {
            case .down:
                if msg.state == .down {
                    setState(.initializing, diagnostic, now: now, receivedPackets: receivedPackets)
                } else if msg.state == .initializing {
                    setState(.up, diagnostic, now: now, receivedPackets: receivedPackets)
                }
            case .initializing:
                if msg.state.rawValue > BFDState.down.rawValue {
                    setState(.up, diagnostic, now: now, receivedPackets: receivedPackets)
                }
            case .up:
                if msg.state.rawValue <= BFDState.down.rawValue {
                    setState(
                        .down, .neighborSignaledSessionDown, now: now,
                        receivedPackets: receivedPackets)
                }
            case .adminDown: break
            }
        }
        if parameters.forwardingIfRx { demandRxBFDTime = now + 100 * UInt64(cfgMinRx) }
    }

    /// Other packets from the peer arrived (lib/bfd.c `bfd_account_rx`): with
    /// `forwarding_if_rx`, they keep the tunnel forwarding.
    public mutating func accountReceived(now: UInt64) {
        guard parameters.forwardingIfRx else { return }
        _ = forwarding(now: now)
        forwardingIfRxUpdate(now: now)
        _ = forwarding(now: now)
    }

    /// Whether the tunnel forwards (lib/bfd.c `bfd_forwarding__`): up, or receiving with
    /// `forwarding_if_rx`, and the peer not signalling a path down. Counts flaps.
    public mutating func forwarding(now: UInt64) -> Bool {
        let ifRx =
            parameters.forwardingIfRx && forwardingIfRxDetectTime > now && demandRxBFDTime > now
        let forwarding =
            (state == .up || ifRx) && remoteDiagnostic != .pathDown
            && remoteDiagnostic != .concatenatedPathDown
            && remoteDiagnostic != .reverseConcatenatedPathDown
        if forwarding != lastForwarding {
            lastForwarding = forwarding
            flapCount &+= 1
            statusChanged = true
        }
        return forwarding
    }

    /// The status as last computed (call `forwarding(now:)` or `run` first for a fresh one).
    public var status: BFDStatus {
        BFDStatus(
            state: state, forwarding: lastForwarding, diagnostic: diagnostic,
            remoteState: remoteState, remoteDiagnostic: remoteDiagnostic, flapCount: flapCount)
    }

    /// Whether the status changed since the last call.
    public mutating func takeStatusChange() -> Bool {
        defer { statusChanged = false }
        return statusChanged
    }

    private mutating func setState(
        _ new: BFDState, _ diag: BFDDiagnostic, now: UInt64, receivedPackets: UInt64
    ) {
        let diag = parameters.cpathDown ? BFDDiagnostic.concatenatedPathDown : diag
        guard state != new || diagnostic != diag else { return }
        state = new
        diagnostic = diag
        if state.rawValue <= BFDState.down.rawValue {
            remoteState = .down
            remoteDiagnostic = .none
            remoteMinRx = 1
            remoteDiscriminator = 0
            remoteMinTx = 0
            if inDecay {
                minRx = cfgMinRx
                inDecay = false
            }
        }
        if state == .up, decayMinRx != 0 { decayUpdate(now: now, receivedPackets: receivedPackets) }
        statusChanged = true
    }

    private mutating func decayUpdate(now: UInt64, receivedPackets: UInt64) {
        decayRxPackets = receivedPackets
        decayRxControl = 0
        decayDetectTime = UInt64(max(decayMinRx, 2000)) + now
    }

    private mutating func forwardingIfRxUpdate(now: UInt64) {
        forwardingIfRxDetectTime = UInt64(max(rxInterval * multiplier, 2000)) + now
    }
}
