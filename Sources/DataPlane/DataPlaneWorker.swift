import Datapath
import Forwarding
import Foundation
import Glibc
import Packet

/// The data plane's worker: everything here runs on its one thread (see `DataPlane`).
///
/// Per batch: receive up to `batchSize` frames from a ready socket, prefetch their MAC-table
/// slots, decide each, and copy it into the transmit batch of its destination — an access
/// port (re-tagged for the binding's VLAN), the underlay (outer headers stamped from a
/// per-(locator, VNI) `OuterHeaderTemplate`, UDP source port from the inner-flow hash), or
/// the kernel's UDP socket while the next hop is unresolved — then flush every transmit batch
/// with one sendmmsg each. Buffers, batches and counters are allocated when the worker starts.
///
/// Offloads: frames move as the kernel has them. Access ports read and write with a
/// virtio_net_hdr, so a GRO or TSO super-frame (up to 64 KB) arrives whole: it is decided
/// once (counted as the frames it stands for), passed whole to access ports with its header,
/// and segmented in software (`SuperFrame`) only toward a tunnel, each segment sized so its
/// outer datagram fits the underlay MTU. A checksum left to offload is finished before the
/// frame is forwarded. From the VXLAN sockets (UDP_GRO), consecutive segments of one inner
/// TCP flow bound for the same access port are merged again (`TCPCoalescer`) and written as
/// one super-frame for the kernel or the NIC to segment.
///
/// GRE and NVGRE (a logical switch's `encapsulation`) arrive on raw IP sockets of protocol 47
/// and leave like VXLAN: prebuilt templates on the fast path, the raw socket (the kernel
/// writes the IP header and resolves the next hop) on the slow path. GRE's key is the VNI;
/// NVGRE's key is VSID << 8 | FlowID (RFC 7637 §3.2), the FlowID from the same inner-flow
/// hash as VXLAN's source port. One header format serves both, so a received key is read as
/// a GRE VNI when a GRE switch carries it, else as an NVGRE VSID (see `fromGRE`).
///
/// The worker is generic over its sockets (`DataPlaneIO`): vtepd runs it on the kernel's
/// (`KernelIO`), unit tests on the in-memory twin (`MemoryIO`) with `serviceAll(now:)`.
public final class DataPlaneWorker<IO: DataPlaneIO>: @unchecked Sendable {
    let settings: DataPlaneSettings
    let engine: ForwardingEngine
    /// The configuration in force, read per packet without reference counting (calls on an
    /// `unowned(unsafe)` reference still retain around each call; a guaranteed reference
    /// does not); kept alive by `engine.configuration`.
    private var configurationRef: Unmanaged<ForwardingConfiguration>

    /// Access ports: those vtepd was given, then the internal ports added while it runs
    /// (`addPort`); at most `portCapacity`.
    private var ports: [IO.Access]
    /// Slots of every per-port table: the ports given at start plus
    /// `DataPlaneSettings.internalPortLimit`.
    let portCapacity: Int
    /// Set when a port came or went: the loop polls a new set of descriptors.
    private var portsChanged = false
    private let underlay: IO.Underlay
    /// `underlay.trainSourcePorts`, fixed for the underlay's life.
    private let poolPorts: UnsafeBufferPointer<UInt16>
    /// Read again once a second: an admin may change the underlay's MTU while vtepd runs.
    private var underlayMTU: Int
    private let underlayMAC: MACAddress
    /// VXLAN in.
    private let vxlan4: IO.VXLAN?
    private let vxlan6: IO.VXLAN?
    /// Unicast VXLAN to our addresses from the underlay's receive ring (`vxlan-receive
    /// ring`), whole frames; nil when VXLAN comes only through the UDP sockets.
    private let vxlanRing: IO.Access?
    /// Where TCP super-frames toward VXLAN are written whole
    /// (`VXLANTransmit.tunnelGSO`); nil when they leave as trains.
    private let tunnelGSO: IO.TunnelGSO?
    private let tunnelGSORef: Unmanaged<IO.TunnelGSO>?
    /// The virtio_net_hdr and outer headers of the next write to `tunnelGSO`.
    private let tunnelGSOHeader: UnsafeMutableRawBufferPointer
    /// The same, used per batch without reference counting (kept alive by `vxlanRing`).
    private let vxlanRingRef: Unmanaged<IO.Access>?
    /// GRE and NVGRE in, and their slow path out.
    private let gre4: IO.Raw?
    private let gre6: IO.Raw?
    /// VXLAN's slow path out (whole UDP datagrams).
    /// Open only while a VTEP's next hop is unresolved (see `DataPlanePorts.openUDP`).
    private var udp4: IO.Raw?
    private var udp6: IO.Raw?
    private let openUDP: (_ ipv6: Bool) -> IO.Raw?
    /// Polled with the sockets: the control side's commands; -1 for none.
    private let wakeup: Int32

    private let receiveBatch: PacketBatch
    /// `receiveBatch` and the access ports, used per batch without reference counting (kept
    /// alive by the properties above).
    private let receiveBatchRef: Unmanaged<PacketBatch>
    private let portRefs: UnsafeMutablePointer<Unmanaged<IO.Access>>
    private var portBatches: [PacketBatch]
    /// The same batches, read per frame without reference counting (`withPortBatch`); kept
    /// alive by `portBatches`.
    private let portBatchRefs: UnsafeMutablePointer<Unmanaged<PacketBatch>>
    private let portPending: UnsafeMutablePointer<Int>
    /// Per port: the TCP super-frame being merged in its last pending slot, the VLAN it
    /// was tagged for (-1 untagged) and the tunnel its segments came by (source VTEP,
    /// encapsulation, VNI): only segments from that same tunnel join it. `openVLAN` is
    /// `closedSlot` when none is open.
    private let coalescers: UnsafeMutablePointer<TCPCoalescer>
    private let openVLAN: UnsafeMutablePointer<Int32>
    private let openIngress: UnsafeMutablePointer<Ingress>
    private static var closedSlot: Int32 { -2 }
    /// One segment of a super-frame on its way to the slow path (unresolved next hop).
    private let segmentScratch: UnsafeMutableRawBufferPointer
    /// Where ARP and ND suppression builds its replies (`reply(_:vlan:mac:to:)`).
    private let replyScratch: UnsafeMutableRawBufferPointer
    private let underlayBatch: PacketBatch
    private var underlayPending = 0
    /// UDP GSO trains of VXLAN datagrams (one super-frame's segments each), sent through the
    /// underlay's vnet-header socket.
    private let trainBatch: PacketBatch
    private var trainPending = 0
    /// The train being gathered from plain frames (`DataPlaneSettings.coalesceTrains`) in
    /// `trainBatch`'s slot `trainPending`, counted there once closed (`closeTrain`).
    private var open = OpenTrain()
    /// The plain VXLAN frame in `underlayBatch`'s last pending slot, which the next frame of
    /// its flow takes into a train.
    private var tail = PlainTail()
    /// One bit per source port (its low 6 bits) of the frames in pending and open trains: a
    /// frame of such a flow must not leave before them (`encapsulate`).
    private var trainPorts: UInt64 = 0
    private let slow4: PacketBatch
    private var slow4Pending = 0
    private let slow6: PacketBatch
    private var slow6Pending = 0
    private let greSlow4: PacketBatch
    private var greSlow4Pending = 0
    private let greSlow6: PacketBatch
    private var greSlow6Pending = 0

    /// PortIndex.rawValue → position in `ports`, or -1.
    private let workerPortOf: UnsafeMutablePointer<Int>
    /// Position in `ports` → PortIndex.rawValue, or -1 when the port is not configured.
    private let portIndexOf: UnsafeMutablePointer<Int32>

    private let hasher: FlowHasher
    private var templates: TemplateCache
    private var sequences: SequenceCounters
    private var nextHops: [Locator: NextHop] = [:]
    private var statics: Set<StaticRemoteMAC> = []
    private(set) var problems: [String] = []
    private var groups: Set<IPAddress> = []

    // Counters.
    private let portRx: UnsafeMutablePointer<UInt64>
    private let portTx: UnsafeMutablePointer<UInt64>
    /// Bytes of the frames in `portRx` and `portTx` (a super-frame's own length).
    private let portRxBytes: UnsafeMutablePointer<UInt64>
    private let portTxBytes: UnsafeMutablePointer<UInt64>
    /// Per (port, VLAN): frames and bytes from and to the local side, for hardware_vtep's
    /// Logical_Binding_Stats; `BindingCounters` per port × 4096 VLAN ids (0 = untagged).
    private let bindingCounters: UnsafeMutablePointer<BindingCounters>
    /// Frames on the wire beyond one per slot in each port's pending batch (super-frames),
    /// added to `portTx` when the batch is sent whole.
    private let portTxExtra: UnsafeMutablePointer<UInt64>
    /// Each port's MTU: the largest IP packet a segment of a super-frame written to it may be.
    private let portMTU: UnsafeMutablePointer<Int>
    private let portDrops: UnsafeMutablePointer<UInt64>
    private static var countedLocators: Int { 1 << 16 }
    private let vtepTx: UnsafeMutablePointer<UInt64>
    private let vtepRx: UnsafeMutablePointer<UInt64>
    /// Bytes of the inner frames in `vtepTx` and `vtepRx`.
    private let vtepTxBytes: UnsafeMutablePointer<UInt64>
    private let vtepRxBytes: UnsafeMutablePointer<UInt64>
    private var slowPath: UInt64 = 0
    private var superFramesIn: UInt64 = 0
    private var trainsIn: UInt64 = 0
    private var trainsOut: UInt64 = 0
    /// Trains gathered from plain frames (`toTrain`), also in `trainsOut`.
    private var trainsCoalesced: UInt64 = 0
    private var tunnelGSOOut: UInt64 = 0
    private var tunnelGSORefused: UInt64 = 0
    private var segmentsOut: UInt64 = 0
    private var coalescedOut: UInt64 = 0
    private var coalescedSegments: UInt64 = 0
    private var checksumsCompleted: UInt64 = 0
    private var ioErrors: UInt64 = 0
    /// The last failed receive or send, for the control side to log: two words, written in
    /// place, so recording one allocates nothing.
    private var lastIOError = DataPlaneIOError(operation: .accessReceive, errno: 0)

    /// What the worker changed on the host when it started (LRO), for the log.
    let startNotes: [String]
    let startWarnings: [String]
    /// The largest frame a vnet-header socket hands over or takes: a 64 KB IP packet behind
    /// an Ethernet header and one tag; also the largest UDP_GRO read.
    static var superFrameBytes: Int { 65_535 + 18 }

    private var stopping = false
    private var tracer = TraceRecorder()
    /// BFD with each remote VTEP that has it enabled (Tunnel `bfd_params`), over VNI 0.
    var bfd: BFDSessions
    /// Where a BFD frame is built before it is encapsulated like any other.
    private let bfdFrame: UnsafeMutableRawBufferPointer
    /// One bit per configured locator index (the first 2^16, as the VTEP counters): its BFD
    /// session is not forwarding. A service-node switch floods to its first service node
    /// whose bit is clear.
    private let locatorDown: UnsafeMutablePointer<UInt64>
    private static var locatorDownWords: Int { countedLocators / 64 }
    /// Batches served and time busy, for the metrics endpoint (`WorkerLoad`).
    public private(set) var load = WorkerLoad()
    private let clockOrigin: UInt64

    /// Takes over `io`'s sockets; `wakeup` is polled with them by `run`.
    public init(settings: DataPlaneSettings, io: DataPlanePorts<IO>, wakeup: Int32 = -1) throws {
        self.settings = settings
        self.wakeup = wakeup
        let empty = try ForwardingConfiguration()
        var random = SystemRandomNumberGenerator()
        let seed = random.next()
        engine = ForwardingEngine(
            configuration: empty, macTableLimit: settings.macTableLimit, hashSeed: seed,
            discoveredLocatorLimit: ForwardingEngine.defaultDiscoveredLocatorLimit)
        configurationRef = .passUnretained(empty)
        engine.ownAddresses = (settings.localIPv4, settings.localIPv6)
        hasher = FlowHasher(key: random.next())
        guard io.access.count <= PortIndex.count else {
            throw GatewayError.tooManyPorts(io.access.count)
        }
        startNotes = io.notes
        startWarnings = io.warnings
        ports = io.access
        underlay = io.underlay
        poolPorts = io.underlay.trainSourcePorts
        underlayMTU = try underlay.mtu
        underlayMAC = try underlay.hardwareAddress
        vxlan4 = io.vxlan4
        vxlan6 = io.vxlan6
        vxlanRing = io.vxlanRing
        tunnelGSO = io.tunnelGSO
        tunnelGSORef = io.tunnelGSO.map { .passUnretained($0) }
        tunnelGSOHeader = .allocate(byteCount: 128, alignment: 16)
        vxlanRingRef = io.vxlanRing.map { .passUnretained($0) }
        gre4 = io.gre4
        gre6 = io.gre6
        openUDP = io.openUDP
        let names = ports.map(\.interfaceName)
        portCapacity = max(1, names.count + settings.internalPortLimit)

        let batch = settings.batchSize
        // Received frames and frames for access ports may be super-frames (a 64 KB IP packet
        // behind an Ethernet header and a tag; a UDP_GRO read of 64 KB). 128 bytes of
        // headroom hold the longest outer header (VXLAN over IPv6 with an underlay tag, 74
        // bytes) in front of a received frame; 16 hold a port frame's virtio_net_hdr.
        receiveBatch = PacketBatch(
            capacity: batch, bufferSize: Self.superFrameBytes + 128, headroom: 128)
        portBatches = names.map { _ in
            PacketBatch(capacity: batch, bufferSize: Self.superFrameBytes + 16, headroom: 16)
        }
        receiveBatchRef = .passUnretained(receiveBatch)
        portRefs = .allocate(capacity: portCapacity)
        for (w, port) in ports.enumerated() { (portRefs + w).initialize(to: .passUnretained(port)) }
        portBatchRefs = .allocate(capacity: portCapacity)
        for (w, batch) in portBatches.enumerated() {
            (portBatchRefs + w).initialize(to: .passUnretained(batch))
        }
        portPending = .allocate(capacity: portCapacity)
        portPending.initialize(repeating: 0, count: portCapacity)
        coalescers = .allocate(capacity: portCapacity)
        coalescers.initialize(repeating: TCPCoalescer(), count: portCapacity)
        openVLAN = .allocate(capacity: portCapacity)
        openVLAN.initialize(repeating: Self.closedSlot, count: portCapacity)
        openIngress = .allocate(capacity: portCapacity)
        openIngress.initialize(repeating: .access(PortIndex(rawValue: 0)), count: portCapacity)
        segmentScratch = .allocate(byteCount: 2048, alignment: 64)
        replyScratch = .allocate(
            byteCount: NeighbourDiscovery.maximumReplyLength, alignment: 64)
        bfdFrame = .allocate(byteCount: 128, alignment: 16)
        locatorDown = .allocate(capacity: Self.locatorDownWords)
        locatorDown.initialize(repeating: 0, count: Self.locatorDownWords)
        bfd = BFDSessions(seed: random.next())
        underlayBatch = PacketBatch(capacity: batch, bufferSize: 2048 + 128, headroom: 128)
        trainBatch = PacketBatch(
            capacity: 16, bufferSize: Self.superFrameBytes + 128, headroom: 128)
        slow4 = PacketBatch(capacity: batch, bufferSize: 2048, headroom: 8)
        slow6 = PacketBatch(capacity: batch, bufferSize: 2048, headroom: 8)
        greSlow4 = PacketBatch(capacity: batch, bufferSize: 2048 + 32, headroom: 8)
        greSlow6 = PacketBatch(capacity: batch, bufferSize: 2048 + 32, headroom: 8)

        workerPortOf = .allocate(capacity: PortIndex.count)
        workerPortOf.initialize(repeating: -1, count: PortIndex.count)
        portIndexOf = .allocate(capacity: portCapacity)
        portIndexOf.initialize(repeating: -1, count: portCapacity)
        portRx = .allocate(capacity: portCapacity)
        portRx.initialize(repeating: 0, count: portCapacity)
        portTx = .allocate(capacity: portCapacity)
        portTx.initialize(repeating: 0, count: portCapacity)
        bindingCounters = .allocate(capacity: portCapacity * 4096)
        bindingCounters.initialize(repeating: BindingCounters(), count: portCapacity * 4096)
        portRxBytes = .allocate(capacity: portCapacity)
        portRxBytes.initialize(repeating: 0, count: portCapacity)
        portTxBytes = .allocate(capacity: portCapacity)
        portTxBytes.initialize(repeating: 0, count: portCapacity)
        portTxExtra = .allocate(capacity: portCapacity)
        portTxExtra.initialize(repeating: 0, count: portCapacity)
        portMTU = .allocate(capacity: portCapacity)
        portMTU.initialize(repeating: 1500, count: portCapacity)
        for (w, port) in ports.enumerated() { portMTU[w] = try port.mtu }
        portDrops = .allocate(capacity: portCapacity)
        portDrops.initialize(repeating: 0, count: portCapacity)
        let vteps = Self.countedLocators + ForwardingEngine.defaultDiscoveredLocatorLimit
        vtepTx = .allocate(capacity: vteps)
        vtepTx.initialize(repeating: 0, count: vteps)
        vtepRx = .allocate(capacity: vteps)
        vtepRx.initialize(repeating: 0, count: vteps)
        vtepTxBytes = .allocate(capacity: vteps)
        vtepTxBytes.initialize(repeating: 0, count: vteps)
        vtepRxBytes = .allocate(capacity: vteps)
        vtepRxBytes.initialize(repeating: 0, count: vteps)
        templates = TemplateCache(capacity: 4096)
        sequences = SequenceCounters(capacity: 4096)
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        clockOrigin = UInt64(now.tv_sec)
    }

    deinit {
        portRefs.deallocate()
        portBatchRefs.deallocate()
        portPending.deallocate()
        coalescers.deallocate()
        openVLAN.deallocate()
        openIngress.deallocate()
        segmentScratch.deallocate()
        tunnelGSOHeader.deallocate()
        replyScratch.deallocate()
        bfdFrame.deallocate()
        locatorDown.deallocate()
        workerPortOf.deallocate()
        portIndexOf.deallocate()
        portRx.deallocate()
        portTx.deallocate()
        portRxBytes.deallocate()
        bindingCounters.deallocate()
        portTxBytes.deallocate()
        portTxExtra.deallocate()
        portMTU.deallocate()
        portDrops.deallocate()
        vtepTx.deallocate()
        vtepRx.deallocate()
        vtepTxBytes.deallocate()
        vtepRxBytes.deallocate()
        templates.deallocate()
        sequences.deallocate()
    }

    // MARK: The loop

    /// Forwards until a `.stop` command: polls every socket and the wakeup pipe, serves the
    /// ready ones, takes the control side's commands between batches, ages the MAC table
    /// once a second.
    /// What the control side hands the worker between batches (`DataPlane.post`).
    enum Command {
        case apply(ForwardingConfiguration, [StaticRemoteMAC])
        case nextHops([Locator: NextHop])
        case run(@Sendable (DataPlaneWorker) -> Void)
        case stop
    }

    /// What the loop polls: the access ports, the tunnel sockets, the underlay's VXLAN ring,
    /// the wakeup pipe.
    private func pollDescriptors() -> [pollfd] {
        var descriptors: [pollfd] = ports.map {
            pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0)
        }
        for socket in [
            vxlan4?.descriptor, vxlan6?.descriptor, gre4?.descriptor, gre6?.descriptor,
            vxlanRing?.descriptor,
        ] {
            // An absent socket is -1, which the wait (`Readiness`) leaves out.
            descriptors.append(pollfd(fd: socket ?? -1, events: Int16(POLLIN), revents: 0))
        }
        descriptors.append(pollfd(fd: wakeup, events: Int16(POLLIN), revents: 0))
        return descriptors
    }

    /// `realtimePriority`: the SCHED_FIFO priority the thread runs at (0: none), which it
    /// leaves while overloaded and takes back when idle (`RealtimeBudget`).
    func run(realtimePriority: Int = 0, takeCommands: () -> [Command]) {
        var descriptors = pollDescriptors()
        var readiness = Readiness(descriptors)
        var budget = RealtimeBudget(priority: realtimePriority)
        var tunnelSlot = ports.count
        var lastAgeing: UInt32 = 0
        // Busy polling: for `busyPollNanoseconds` after the last frame the worker polls
        // without sleeping, so the frame that answers it (a reply, the next of a burst) is
        // served without a wakeup from the wait's sleep, which costs tens of microseconds
        // each way on a VM.
        let spin = UInt64(settings.busyPollMicroseconds) &* 1000
        var spinUntil: UInt64 = 0
        // While busy, the receive rings are looked at in memory first, and the wait (a system
        // call) only when no ring has a frame, and at least every `ringPassesPerPoll` passes
        // or `ringBatchesPerPoll` batches, so the sockets without a ring (tunnels, the wakeup
        // pipe) wait a few batches at most, as long under a flood as before.
        var ringPasses = 0
        var batchesAtPoll: UInt64 = 0
        var clock = Self.monotonicNanoseconds()
        while !stopping {
            for command in takeCommands() { handle(command) }
            if stopping { break }
            if portsChanged {
                portsChanged = false
                descriptors = pollDescriptors()
                readiness = Readiness(descriptors)
                tunnelSlot = ports.count
            }
            // No wait while busy polling; otherwise BFD's next timer shortens the wait (100 ms
            // without one).
            let timeout: Int32 =
                clock < spinUntil
                ? 0
                : bfd.wake == .max
                    ? 100
                    : Int32(clamping: min(100, bfd.wake &- min(bfd.wake, Self.milliseconds())))
            var ready: Int32 = 0
            if timeout == 0, ringPasses < Self.ringPassesPerPoll,
                load.batches &- batchesAtPoll < Self.ringBatchesPerPoll
            {
                ready = markRingFrames(&descriptors, tunnelSlot: tunnelSlot)
            }
            if ready > 0 {
                ringPasses += 1
            } else {
                ringPasses = 0
                batchesAtPoll = load.batches
                ready = readiness.wait(&descriptors, timeout: timeout)
            }
            let now = self.now()
            clock = Self.monotonicNanoseconds()
            engine.tick(nanoseconds: clock)
            switch budget.polled(ready: ready > 0, clock: clock) {
            case .none: break
            case .leave:
                do {
                    try System.setCurrentThreadRealtime(priority: 0)
                    load.realtimeYields &+= 1
                } catch { budget.refused(.leave) }
            case .resume:
                do { try System.setCurrentThreadRealtime(priority: budget.priority) } catch {
                    budget.refused(.resume)
                }
            }
            if ready > 0 {
                if spin != 0 { spinUntil = clock &+ spin }
                let busySince = WorkerLoad.now()
                for i in 0..<ports.count where descriptors[i].revents != 0 {
                    fromAccess(i, now: now)
                }
                if descriptors[tunnelSlot].revents != 0 { fromTunnel(vxlan4!, now: now) }
                if descriptors[tunnelSlot + 1].revents != 0 { fromTunnel(vxlan6!, now: now) }
                if descriptors[tunnelSlot + 2].revents != 0 { fromGRE(gre4!, now: now) }
                if descriptors[tunnelSlot + 3].revents != 0 { fromGRE(gre6!, now: now) }
                if descriptors[tunnelSlot + 4].revents != 0 {
                    vxlanRingRef!._withUnsafeGuaranteedRef { fromVXLANRing($0, now: now) }
                }
                load.busyNanoseconds &+= WorkerLoad.now() &- busySince
            } else {
                // Nothing came: frames a full device queue left in a port's transmit ring go
                // now, not with the port's next frame.
                for port in ports { port.sendWaiting() }
            }
            if clock / 1_000_000 >= bfd.wake { serviceBFD(now: clock / 1_000_000) }
            if now != lastAgeing {
                lastAgeing = now
                engine.age(now: now, budget: 4096)
                refreshUnderlayMTU()
            }
        }
    }

    /// Passes of the loop served from the rings alone before the wait looks at every socket.
    static var ringPassesPerPoll: Int { 8 }
    /// Receive batches served from the rings alone before the wait looks at every socket.
    static var ringBatchesPerPoll: UInt64 { 8 }

    /// Marks the ports whose receive ring holds a frame as ready (POLLIN) and every other
    /// descriptor as not; returns how many are ready. No system call.
    @inline(__always)
    private func markRingFrames(_ descriptors: inout [pollfd], tunnelSlot: Int) -> Int32 {
        var ready: Int32 = 0
        descriptors.withUnsafeMutableBufferPointer { polled in
            for i in 0..<polled.count { polled[i].revents = 0 }
            for i in 0..<ports.count where portRefs[i]._withUnsafeGuaranteedRef(\.hasRingFrame) {
                polled[i].revents = Int16(POLLIN)
                ready += 1
            }
            if let vxlanRingRef, vxlanRingRef._withUnsafeGuaranteedRef(\.hasRingFrame) {
                polled[tunnelSlot + 4].revents = Int16(POLLIN)
                ready += 1
            }
        }
        return ready
    }

    /// Serves every port and tunnel socket once, whatever is ready, at time `now` (seconds):
    /// how a unit test on `MemoryIO` runs the worker after queueing frames. Commands posted
    /// through `DataPlane` are not taken; tests call `apply` and `setNextHops` directly.
    /// `nanoseconds` is the clock storm control refills by (default: `now` in nanoseconds).
    public func serviceAll(now: UInt32, nanoseconds: UInt64? = nil) {
        engine.tick(nanoseconds: nanoseconds ?? UInt64(now) * 1_000_000_000)
        for i in 0..<ports.count { fromAccess(i, now: now) }
        if let vxlan4 { fromTunnel(vxlan4, now: now) }
        if let vxlan6 { fromTunnel(vxlan6, now: now) }
        if let gre4 { fromGRE(gre4, now: now) }
        if let gre6 { fromGRE(gre6, now: now) }
        if let vxlanRing { fromVXLANRing(vxlanRing, now: now) }
    }

    /// Follows a change of the underlay's MTU (an ioctl, once a second, never per frame): what
    /// fits a tunnel packet, and the segment size super-frames are cut to, follow it.
    public func refreshUnderlayMTU() {
        if let mtu = try? underlay.mtu, mtu != underlayMTU { underlayMTU = mtu }
    }

    /// Whether the slow path's raw UDP sockets are open (some VTEP's next hop was unresolved).
    public var slowPathOpen: Bool { udp4 != nil || udp6 != nil }

    /// Ages the MAC table as `run` does once a second.
    public func age(now: UInt32) { engine.age(now: now, budget: 4096) }

    static func milliseconds() -> UInt64 { monotonicNanoseconds() / 1_000_000 }

    static func monotonicNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    private func now() -> UInt32 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt32(truncatingIfNeeded: UInt64(t.tv_sec) &- clockOrigin)
    }

    private func handle(_ command: Command) {
        switch command {
        case .apply(let new, let staticMACs): apply(new, staticMACs)
        case .nextHops(let hops): setNextHops(hops)
        case .run(let body): body(self)
        case .stop: stopping = true
        }
    }

    /// The next hops the control side resolved; locators without one take the slow path.
    public func setNextHops(_ hops: [Locator: NextHop]) {
        nextHops = hops
        templates.removeAll()
        // Every VXLAN VTEP reachable through prebuilt headers: the slow path's sockets go
        // (they would be handed a copy of every UDP packet received).
        let unresolved = engine.configuration.locators.contains {
            guard let l = $0, l.encapsulation == .vxlan else { return false }
            return hops[l] == nil && NextHop.multicast(l.ip) == nil
        }
        if !unresolved, udp4 != nil || udp6 != nil {
            flushSlow()
            udp4 = nil
            udp6 = nil
        }
    }

    // MARK: Access side

    private func fromAccess(_ p: Int, now: UInt32) {
        receiveBatchRef._withUnsafeGuaranteedRef { fromAccess(p, into: $0, now: now) }
    }

    private func fromAccess(_ p: Int, into batch: PacketBatch, now: UInt32) {
        // A few batches per wakeup, so one busy port cannot starve the others.
        for _ in 0..<4 {
            let n = portRefs[p]._withUnsafeGuaranteedRef { port -> Int in
                do throws(SystemError) { return try port.receive(into: batch) } catch {
                    failed(.accessReceive, error)
                    return 0
                }
            }
            if n == 0 { return }
            load.batches &+= 1
            portRx[p] &+= UInt64(n)
            let index = portIndexOf[p]
            guard index >= 0 else {
                portDrops[p] &+= UInt64(n)
                engine.countDrop(.portNotConfigured, UInt64(n))
                continue
            }
            let ingress = Ingress.access(PortIndex(rawValue: UInt16(index)))
            var bytes = 0
            for i in 0..<n {
                let frame = batch.frame(i)
                engine.prefetch(ingress, frame: frame)
                bytes &+= frame.count
                let counters = bindingCounters + (p &* 4096 &+ Self.vid(frame))
                counters.pointee.fromLocalFrames &+= 1
                counters.pointee.fromLocalBytes &+= UInt64(frame.count)
            }
            portRxBytes[p] &+= UInt64(bytes)
            for i in 0..<n {
                if batch.isTruncated(i) {
                    engine.countDrop(.truncated)
                    continue
                }
                let offload = batch.offload(i)
                if offload.isSuperFrame {
                    fromAccess(superFrame: batch.frame(i), offload, ingress, port: p, now: now)
                    continue
                }
                if offload.needsChecksumCompletion {
                    let start = batch.frameStart(i)
                    let buffer = batch.buffer(i)
                    guard
                        offload.completeChecksum(
                            in: UnsafeMutableRawBufferPointer(
                                rebasing: buffer[start..<start + batch.frameLength(i)]))
                    else {
                        engine.countMalformed(.offloadHeaderInvalid)
                        continue
                    }
                    checksumsCompleted &+= 1
                }
                let frame = batch.frame(i)
                let decision = engine.decide(ingress, frame: frame, now: now)
                if tracer.remaining > 0 { trace(ingress, frame, decision, from: p, now: now) }
                switch decision {
                case .drop: break
                case .output(let port, let vlan): toPort(port, vlan: vlan, frame)
                case .encapsulate(let locator, let vni): toTunnel(locator, vni, frame)
                case .flood(let sw, _, let excluding, let replicate):
                    flood(sw, excluding: excluding, replicate: replicate, frame)
                case .reply(let port, let vlan, let mac):
                    reply(port, vlan: vlan, mac: mac, to: frame)
                }
            }
            flushAll()
            if n < batch.capacity { return }
        }
    }

    /// A GRO or TSO super-frame from an access port: one decision for the frames it stands
    /// for; whole to access ports (the kernel or the NIC segments it there), segmented toward
    /// tunnels.
    private func fromAccess(
        superFrame frame: UnsafeRawBufferPointer, _ offload: VirtioNetHeader, _ ingress: Ingress,
        port p: Int, now: UInt32
    ) {
        let whole: SuperFrame
        do {
            whole = try SuperFrame(frame, header: offload, maximumSegmentSize: Int(UInt16.max))
        } catch {
            engine.countMalformed(error)
            return
        }
        superFramesIn &+= 1
        portRx[p] &+= UInt64(whole.count - 1)
        bindingCounters[p &* 4096 &+ Self.vid(frame)].fromLocalFrames &+= UInt64(whole.count - 1)
        let frames = whole.count
        let decision = engine.decide(ingress, superFrame: frame, frames: frames, now: now)
        if tracer.remaining > 0 {
            trace(ingress, frame, decision, from: p, now: now, superFrame: frames)
        }
        switch decision {
        case .drop: break
        case .output(let port, let vlan):
            toPort(port, vlan: vlan, frame, superFrame: whole, offload)
        case .encapsulate(let locator, let vni):
            toTunnel(locator, vni, superFrame: frame, offload)
        case .reply(let port, let vlan, let mac): reply(port, vlan: vlan, mac: mac, to: frame)
        case .flood(let sw, _, let excluding, let replicate):
            guard let list = withConfiguration({ $0.floodList(of: sw) }) else {
                engine.countDrop(.destinationGone)
                return
            }
            for member in list.members where member != excluding {
                toPort(member.port, vlan: member.vlan, frame, superFrame: whole, offload)
            }
            if replicate {
                for locator in replicationTargets(list) {
                    toTunnel(locator, list.vni, superFrame: frame, offload)
                }
            }
        }
    }

    // MARK: Underlay side

    private func fromTunnel(_ socket: IO.VXLAN, now: UInt32) {
        let batch = receiveBatch
        for _ in 0..<4 {
            let n: Int
            do { n = try socket.receive(into: batch) } catch {
                failed(.tunnelReceive, error)
                return
            }
            if n == 0 { return }
            load.batches &+= 1
            for i in 0..<n {
                guard let source = tunnelSource(batch, i) else { continue }
                decapsulateVXLAN(
                    batch.frame(i), gsoSize: Int(batch.offload(i).gsoSize), from: source.address,
                    now: now)
            }
            flushAll()
            if n < batch.capacity { return }
        }
    }

    /// The VXLAN datagrams (UDP payloads) in `read`: one, or with `gsoSize` a UDP_GRO train
    /// of `gsoSize`-byte datagrams end to end, the last possibly shorter; each decapsulated
    /// and delivered.
    @inline(__always)
    private func decapsulateVXLAN(
        _ read: UnsafeRawBufferPointer, gsoSize: Int, from source: IPAddress, now: UInt32
    ) {
        let step = gsoSize == 0 ? read.count : gsoSize
        if gsoSize != 0 { trainsIn &+= 1 }
        var at = 0
        repeat {
            let payload = UnsafeRawBufferPointer(
                rebasing: read[at..<min(read.count, at + step)])
            at += step
            let header: VXLANHeader
            do {
                header = try VXLANHeader.parse(payload, at: 0)
            } catch {
                engine.countMalformed(error)
                continue
            }
            let inner = UnsafeRawBufferPointer(
                rebasing: payload[VXLANHeader.length..<payload.count])
            // VNI 0 is the BFD channel of Open vSwitch and NSX: its BFD packets are
            // taken here, never decided as frames of a switch.
            if header.vni == 0, fromBFDChannel(inner, source: source) { continue }
            deliver(
                inner,
                .tunnel(source: source, encapsulation: .vxlan, vni: VNI(masking: header.vni)),
                now: now)
        } while at < read.count
    }

    /// Unicast VXLAN from the underlay's receive ring (`vxlan-receive ring`): whole frames,
    /// whose outer headers the kernel's IP and UDP input never saw, so they are checked here
    /// as those would check them (IPv4 header checksum and lengths, IPv6 payload length, UDP
    /// length, and the UDP checksum unless the NIC or a local sender vouched for it, the
    /// virtio_net_hdr says; a zero checksum over IPv6 refused, as the UDP socket refuses it),
    /// each failure counted under its `Malformed` reason. The ring takes frames of at most
    /// 1,920 bytes; were a GRO train among them, it would be split as a UDP_GRO read is.
    private func fromVXLANRing(_ ring: IO.Access, now: UInt32) {
        let batch = receiveBatch
        for _ in 0..<4 {
            let n: Int
            do { n = try ring.receive(into: batch) } catch {
                failed(.tunnelReceive, error)
                return
            }
            if n == 0 { return }
            load.batches &+= 1
            for i in 0..<n {
                if batch.isTruncated(i) {
                    engine.countDrop(.truncated)
                    continue
                }
                let offload = batch.offload(i)
                let datagram: UnderlayDatagram
                do {
                    datagram = try UnderlayDatagram.parse(
                        batch.frame(i), port: settings.vxlanPort, offload: offload)
                } catch {
                    engine.countMalformed(error)
                    continue
                }
                decapsulateVXLAN(
                    datagram.payload,
                    gsoSize: offload.gsoType & ~VirtioNetHeader.GSO.ecn == VirtioNetHeader.GSO.udpL4
                        ? Int(offload.gsoSize) : 0,
                    from: datagram.source, now: now)
            }
            flushAll()
            if n < batch.capacity { return }
        }
    }

    /// GRE and NVGRE from the raw sockets. Validation (RFC 2784 §2.3, RFC 2890): version 0,
    /// no routing bit, bits 4–5 clear, protocol 0x6558, the checksum verified when C is set,
    /// a key present; each failure its own `Malformed` counter. What the key names is the
    /// forwarding core's (`ForwardingEngine.greIngress`).
    private func fromGRE(_ socket: IO.Raw, now: UInt32) {
        let batch = receiveBatch
        for _ in 0..<4 {
            let n: Int
            do { n = try socket.receive(into: batch) } catch {
                failed(.tunnelReceive, error)
                return
            }
            if n == 0 { return }
            load.batches &+= 1
            for i in 0..<n {
                guard let source = tunnelSource(batch, i) else { continue }
                let packet = batch.frame(i)
                let header: GREHeader
                do {
                    header = try GREHeader.parse(packet, at: 0)
                } catch {
                    engine.countMalformed(error)
                    continue
                }
                guard let key = header.key else {
                    engine.countMalformed(.greKeyMissing)
                    continue
                }
                guard
                    let ingress = engine.greIngress(
                        from: source.address, key: key,
                        checksumPresent: header.checksum != nil,
                        sequencePresent: header.sequence != nil)
                else { continue }
                let inner = UnsafeRawBufferPointer(
                    rebasing: packet[header.headerLength..<packet.count])
                deliver(inner, ingress, now: now)
            }
            flushAll()
            if n < batch.capacity { return }
        }
    }

    /// The sender of a received tunnel packet, or nil (counted) when the packet is cut short.
    @inline(__always)
    private func tunnelSource(_ batch: PacketBatch, _ i: Int) -> UDPEndpoint? {
        if batch.isTruncated(i) {
            engine.countDrop(.truncated)
            return nil
        }
        // Every datagram a socket reads has a sender; one without cannot be attributed.
        guard let source = batch.source(i) else {
            engine.countDrop(.unknownSourceVTEP)
            return nil
        }
        return source
    }

    /// A decapsulated frame, whatever its tunnel: decided, delivered to local ports only
    /// (split horizon: a frame from a tunnel never goes back into one), and counted against
    /// its VTEP after the decision, which discovers a new VTEP on a multicast switch.
    @inline(__always)
    private func deliver(_ inner: UnsafeRawBufferPointer, _ ingress: Ingress, now: UInt32) {
        let decision = engine.decide(ingress, frame: inner, now: now)
        if tracer.remaining > 0 { trace(ingress, inner, decision, from: nil, now: now) }
        switch decision {
        case .output(let port, let vlan): toPort(port, vlan: vlan, coalescing: inner, from: ingress)
        case .flood(let sw, _, let excluding, _):
            // The receive buffer is ours: finish a checksum a namespace neighbour left undone
            // (`toPort(coalescing:)` does it for unicast).
            if PartialChecksum.complete(in: UnsafeMutableRawBufferPointer(mutating: inner)) {
                checksumsCompleted &+= 1
            }
            flood(sw, excluding: excluding, replicate: false, inner)
        case .drop, .encapsulate, .reply: break
        }
        if case .tunnel(let source, let encapsulation, _) = ingress {
            countReceived(from: source, encapsulation, bytes: inner.count)
        }
    }

    @inline(__always)
    private func withConfiguration<T>(_ body: (ForwardingConfiguration) -> T) -> T {
        configurationRef._withUnsafeGuaranteedRef(body)
    }

    /// Counts a tunnel packet against its VTEP: one the configuration names, or one a
    /// multicast switch discovered.
    private func countReceived(
        from address: IPAddress, _ encapsulation: Encapsulation, bytes: Int
    ) {
        let remote = Locator(address, encapsulation)
        let locator =
            withConfiguration { $0.locatorIndex(of: remote) } ?? engine.discoveredIndex(of: remote)
        if let locator, let c = Self.counterSlot(locator) {
            vtepRx[c] &+= 1
            vtepRxBytes[c] &+= UInt64(bytes)
        }
    }

    /// Where a locator's counters live: configured indices below 2^16 first, then the
    /// discovered ones.
    @inline(__always)
    static func counterSlot(_ l: LocatorIndex) -> Int? {
        if l.isDynamic {
            let i = Int(l.rawValue - LocatorIndex.dynamicBase)
            return i < ForwardingEngine.defaultDiscoveredLocatorLimit ? countedLocators + i : nil
        }
        return Int(l.rawValue) < countedLocators ? Int(l.rawValue) : nil
    }

    // MARK: BFD

    /// A frame from VNI 0: true when it was a BFD packet (taken and counted, good or bad),
    /// false when it is not BFD and goes on as any frame.
    private func fromBFDChannel(_ inner: UnsafeRawBufferPointer, source: IPAddress) -> Bool {
        let payload: UnsafeRawBufferPointer
        do {
            payload = try BFDTunnelFrame.payload(of: inner)
        } catch {
            if error == .notBFD { return false }
            bfd.counters.bad &+= 1
            return true
        }
        guard let i = bfd.session(from: source) else {
            bfd.counters.bad &+= 1
            return true
        }
        let control: BFDControl
        do { control = try BFDControl.parse(payload) } catch {
            bfd.counters.bad &+= 1
            return true
        }
        bfd.receive(control, at: i, now: Self.milliseconds(), receivedPackets: received(i))
        return true
    }

    /// Tunnel packets from session `i`'s VTEP so far, BFD's own included, as OVS counts its
    /// netdev's (decay and `forwarding_if_rx`).
    private func received(_ i: Int) -> UInt64 {
        let control = bfd.entries[i].controlReceived
        guard let index = bfd.entries[i].index, let c = Self.counterSlot(index) else {
            return control
        }
        return vtepRx[c] &+ control
    }

    /// BFD's timers and transmissions, when one is due; the wait in `run` ends at the next.
    public func serviceBFD(now: UInt64) {
        var wake = UInt64.max
        var sent = false
        for i in bfd.entries.indices {
            let rx = received(i)
            // OVS's bfd_account_rx: traffic from the peer keeps a forwarding_if_rx tunnel up.
            if rx != bfd.entries[i].lastReceived {
                bfd.entries[i].lastReceived = rx
                bfd.entries[i].session.accountReceived(now: now)
            }
            bfd.entries[i].session.run(now: now, receivedPackets: rx)
            bfd.noteForwarding(i, now: now)
            if bfd.entries[i].session.shouldSend(now: now), let index = bfd.entries[i].index {
                let control = bfd.entries[i].session.makePacket(now: now)
                let length: Int
                do {
                    length = try BFDTunnelFrame.store(
                        control, into: bfdFrame, source: underlayMAC,
                        sourcePort: bfd.entries[i].session.sourcePort)
                } catch { continue }
                toTunnel(
                    index, VNI(masking: 0), UnsafeRawBufferPointer(rebasing: bfdFrame[0..<length]))
                bfd.counters.sent &+= 1
                sent = true
            }
            // A remote not in the configuration is looked at again in 100 ms.
            let next = bfd.entries[i].index == nil ? now + 100 : bfd.entries[i].session.wakeTime
            wake = min(wake, next)
        }
        bfd.wake = wake
        if sent { flushAll() }
        if bfd.forwardingChanged {
            bfd.forwardingChanged = false
            updateLocatorDown()
        }
    }

    @inline(__always)
    private func isDown(_ l: LocatorIndex) -> Bool {
        let i = Int(l.rawValue)
        return i < Self.countedLocators && locatorDown[i >> 6] & (1 << UInt64(i & 63)) != 0
    }

    /// Marks the locators whose BFD session is not forwarding.
    private func updateLocatorDown() {
        locatorDown.update(repeating: 0, count: Self.locatorDownWords)
        for e in bfd.entries where !e.lastForwarding {
            guard let index = e.index, Int(index.rawValue) < Self.countedLocators else { continue }
            let i = Int(index.rawValue)
            locatorDown[i >> 6] |= 1 << UInt64(i & 63)
        }
    }

    /// Sessions for the remotes in `wanted` (Tunnel `bfd_params` by remote VTEP).
    public func configureBFD(_ wanted: [Locator: BFDParameters]) {
        bfd.configure(
            wanted, index: { l in withConfiguration { $0.locatorIndex(of: l) } },
            now: Self.milliseconds())
        serviceBFD(now: Self.milliseconds())
    }

    public func bfdStatuses() -> [BFDTunnelStatus] { bfd.statuses() }

    public func bfdCounters() -> BFDCounters {
        var c = bfd.counters
        c.sessionsUp = bfd.sessionsUp
        return c
    }

    // MARK: Transmit

    /// ARP and ND suppression: answers `request` on `mac`'s behalf, the reply built in the
    /// worker's preallocated buffer and sent out of the port (and VLAN) the request came by.
    private func reply(
        _ port: PortIndex, vlan: UInt16?, mac: MACAddress, to request: UnsafeRawBufferPointer
    ) {
        guard let header = try? EthernetHeader.parse(request) else { return }
        let length = NeighbourDiscovery.reply(
            to: request, header: header, answering: mac, into: replyScratch)
        guard length > 0 else { return }
        toPort(port, vlan: vlan, UnsafeRawBufferPointer(rebasing: replyScratch[0..<length]))
    }

    private func flood(
        _ sw: SwitchIndex, excluding: AttachmentCircuit?, replicate: Bool,
        _ frame: UnsafeRawBufferPointer
    ) {
        guard let list = withConfiguration({ $0.floodList(of: sw) }) else {
            engine.countDrop(.destinationGone)
            return
        }
        for member in list.members where member != excluding {
            toPort(member.port, vlan: member.vlan, frame)
        }
        if replicate {
            for locator in replicationTargets(list) { toTunnel(locator, list.vni, frame) }
        }
    }

    /// The VTEPs a flood of `list` is encapsulated to: every replication target (the
    /// multicast group, each head-end VTEP) or, on a switch that floods through service nodes,
    /// one of them, the first whose BFD session forwards (the first when none does). A view
    /// into `list`, so a flood allocates nothing; one function for frames and super-frames.
    @inline(__always)
    private func replicationTargets(_ list: FloodList) -> UnsafeBufferPointer<LocatorIndex> {
        let nodes = list.replication
        guard list.toOneServiceNode, !nodes.isEmpty else { return nodes }
        let live = nodes.firstIndex { !isDown($0) } ?? 0
        return UnsafeBufferPointer(rebasing: nodes[live..<live + 1])
    }

    /// Our index of the configuration's port `port`, or nil, counted `destinationGone`, when
    /// it has none (the port left).
    @inline(__always)
    private func workerPort(_ port: PortIndex) -> Int? {
        let w = workerPortOf[Int(port.rawValue)]
        guard w >= 0 else {
            engine.countDrop(.destinationGone)
            return nil
        }
        return w
    }

    /// Copies `frame` into port `port`'s next transmit slot, re-tagged for `vlan`.
    private func toPort(_ port: PortIndex, vlan: UInt16?, _ frame: UnsafeRawBufferPointer) {
        guard let w = workerPort(port) else { return }
        if openVLAN[w] != Self.closedSlot { closeCoalescing(w) }
        guard let (slot, _) = enqueue(frame, vlan: vlan, on: w) else { return }
        if slot + 1 == withPortBatch(w, { $0.capacity }) { flushPort(w) }
    }

    /// Copies the super-frame `frame` (read with `offload`) into port `port`'s next transmit
    /// slot, re-tagged for `vlan`, with its offload header, the offsets moved with the tag and
    /// the segment size cut to the port's MTU where the sender's would not fit it (a host
    /// with a larger MTU than the port's), as the frames stood for are counted; a port whose
    /// MTU leaves no room past the headers gets nothing (`tooBigForPort`).
    private func toPort(
        _ port: PortIndex, vlan: UInt16?, _ frame: UnsafeRawBufferPointer,
        superFrame whole: SuperFrame, _ offload: VirtioNetHeader
    ) {
        guard let w = workerPort(port) else { return }
        // IP and transport headers before the payload; what is left of the MTU per segment.
        let fit = portMTU[w] - (whole.untaggedHeaderLength - 14)
        guard fit > 0 else {
            portDrops[w] &+= 1
            engine.countDrop(.tooBigForPort)
            return
        }
        var header = offload
        var frames = whole.count
        if fit < whole.segmentSize {
            header.gsoSize = UInt16(truncatingIfNeeded: fit)
            let payload = whole.packetEnd - whole.untaggedHeaderLength - whole.tagLength
            frames = max(1, (payload + fit - 1) / fit)
        }
        if openVLAN[w] != Self.closedSlot { closeCoalescing(w) }
        guard let (slot, copy) = enqueue(frame, vlan: vlan, on: w) else { return }
        withPortBatch(w) { $0.setOffload(header.shifted(by: copy.count - frame.count), for: slot) }
        portTxExtra[w] &+= UInt64(frames - 1)
        bindingCounters[w &* 4096 &+ Int(vlan ?? 0)].toLocalFrames &+= UInt64(frames - 1)
        if slot + 1 == withPortBatch(w, { $0.capacity }) { flushPort(w) }
    }

    /// Runs `body` with port `w`'s transmit batch, without retaining it (the worker's
    /// `portBatches` keeps it alive).
    @inline(__always)
    private func withPortBatch<T>(_ w: Int, _ body: (PacketBatch) -> T) -> T {
        portBatchRefs[w]._withUnsafeGuaranteedRef(body)
    }

    /// Copies `frame`, re-tagged for `vlan`, into port `w`'s next transmit slot and queues
    /// it; returns the slot and the copy, or nil (counted as the port's drop) when it does
    /// not fit.
    @inline(__always)
    private func enqueue(_ frame: UnsafeRawBufferPointer, vlan: UInt16?, on w: Int) -> (
        Int, UnsafeMutableRawBufferPointer
    )? {
        let slot = portPending[w]
        let copy = withPortBatch(w) { batch -> UnsafeMutableRawBufferPointer? in
            let buffer = batch.buffer(slot)
            let start = batch.headroom
            let length = Self.copyRetagged(frame, vlan: vlan, into: buffer, at: start)
            guard length > 0 else { return nil }
            batch.setFrame(slot, start: start, length: length)
            return UnsafeMutableRawBufferPointer(rebasing: buffer[start..<start + length])
        }
        guard let copy else {
            portDrops[w] &+= 1
            engine.countDrop(.tooBigForPort)
            return nil
        }
        portPending[w] = slot + 1
        let counters = bindingCounters + (w &* 4096 &+ Int(vlan ?? 0))
        counters.pointee.toLocalFrames &+= 1
        counters.pointee.toLocalBytes &+= UInt64(copy.count)
        return (slot, copy)
    }

    /// Like `toPort`, for a frame decapsulated from a tunnel (`ingress`): a TCP segment that
    /// continues the super-frame being merged in the port's last slot, and came by the same
    /// tunnel (source VTEP, encapsulation, VNI), joins it (`TCPCoalescer`); otherwise that one
    /// is closed and this frame starts the next slot.
    private func toPort(
        _ port: PortIndex, vlan: UInt16?, coalescing frame: UnsafeRawBufferPointer,
        from ingress: Ingress
    ) {
        guard let w = workerPort(port) else { return }
        let tag = vlan.map { Int32($0) } ?? -1
        if openVLAN[w] != Self.closedSlot {
            let slot = portPending[w] - 1
            let joined =
                openVLAN[w] == tag && openIngress[w] == ingress
                && withPortBatch(w) { batch in
                    var length = batch.frameLength(slot)
                    guard
                        coalescers[w].append(
                            frame, to: batch.buffer(slot), frameStart: batch.frameStart(slot),
                            frameLength: &length)
                    else { return false }
                    batch.setFrame(slot, start: batch.frameStart(slot), length: length)
                    return true
                }
            if joined {
                let counters = bindingCounters + (w &* 4096 &+ Int(vlan ?? 0))
                counters.pointee.toLocalFrames &+= 1
                counters.pointee.toLocalBytes &+= UInt64(frame.count)
                if !coalescers[w].isOpen { closeCoalescing(w) }
                return
            }
            closeCoalescing(w)
        }
        guard let (slot, copy) = enqueue(frame, vlan: vlan, on: w) else { return }
        if coalescers[w].start(UnsafeRawBufferPointer(copy), maximumIPLength: portMTU[w]) {
            openVLAN[w] = tag
            openIngress[w] = ingress
            if !coalescers[w].isOpen { closeCoalescing(w) }
        } else if PartialChecksum.complete(in: copy) {
            checksumsCompleted &+= 1
        }
        if slot + 1 == withPortBatch(w, { $0.capacity }) { flushPort(w) }
    }

    /// Finishes the super-frame being merged in port `w`'s last slot: its lengths, checksum
    /// and offload header.
    private func closeCoalescing(_ w: Int) {
        openVLAN[w] = Self.closedSlot
        let slot = portPending[w] - 1
        guard slot >= 0 else { return }
        let merged = coalescers[w].segments
        let header = withPortBatch(w) { batch in
            coalescers[w].finish(
                batch.buffer(slot), frameStart: batch.frameStart(slot),
                frameLength: batch.frameLength(slot))
        }
        if merged > 1 {
            withPortBatch(w) { $0.setOffload(header, for: slot) }
            portTxExtra[w] &+= UInt64(merged - 1)
            coalescedOut &+= 1
            coalescedSegments &+= UInt64(merged)
        }
    }

    private func toTunnel(_ locator: LocatorIndex, _ vni: VNI, _ frame: UnsafeRawBufferPointer) {
        let template = templates.find(locator, vni) ?? buildTemplate(locator, vni)
        var hash: UInt32?
        if let template, template.encapsulation == .vxlan, settings.coalesceTrains,
            underlay.supportsTrains
        {
            // The hasher skips VLAN tags: the frame's hash is its untagged copy's.
            let h = hasher.hash(frame)
            if toTrain(locator, vni, template, frame, hash: h) { return }
            hash = h
        }
        let batch = underlayBatch
        let slot = underlayPending
        let buffer = batch.buffer(slot)
        let innerStart = batch.headroom
        let innerLength = Self.copyRetagged(frame, vlan: nil, into: buffer, at: innerStart)
        // A plain frame longer than an underlay slot (2 KB: jumbo frames are not carried yet)
        // counts as too big for the underlay.
        guard innerLength > 0 else {
            engine.countDrop(.underlayTooBig)
            return
        }
        guard let template else {
            toSlowPath(
                locator, vni,
                UnsafeRawBufferPointer(rebasing: buffer[innerStart..<innerStart + innerLength]))
            return
        }
        encapsulate(locator, vni, template, innerLength: innerLength, hash: hash)
        if let hash, underlayPending == slot + 1 {
            tail = PlainTail(
                slot: slot, locator: locator, vni: vni,
                port: sourcePort(for: hash), length: innerLength)
        }
    }

    /// Gathers plain VXLAN frames into UDP GSO trains, as wireguard-go coalesces its
    /// datagrams: a frame joins the open train when it is of the same flow (VTEP, VNI,
    /// source port) and no longer than its frames; the second frame of a flow in a row takes
    /// the first out of `underlayBatch` into a new train; and a frame whose flow may wait in
    /// a pending train starts a train behind it. The kernel then carries one packet per train
    /// as far as it can, and a receiver's GRO sees the frames together. Returns false for a
    /// frame that goes plain (`encapsulate`).
    private func toTrain(
        _ locator: LocatorIndex, _ vni: VNI, _ template: OuterHeaderTemplate,
        _ frame: UnsafeRawBufferPointer, hash: UInt32
    ) -> Bool {
        guard frame.count >= 14 else { return false }
        let type = UInt16(frame[12]) << 8 | UInt16(frame[13])
        let length =
            frame.count
            - (type == EtherType.vlan || type == EtherType.serviceVLAN
                || type == EtherType.legacyServiceVLAN ? 4 : 0)
        guard length >= 14, template.headerLength - 14 + length <= underlayMTU else {
            return false
        }
        let port = sourcePort(for: hash)
        if open.count > 0, open.port == port, open.locator == locator, open.vni == vni,
            !open.closed, length <= open.segmentLength, open.count < open.perTrain
        {
            _ = Self.copyRetagged(
                frame, vlan: nil, into: trainBatch.buffer(trainPending),
                at: trainBatch.headroom + template.headerLength + open.count
                    * (open.segmentLength + VXLANHeader.length))
            open.count += 1
            open.lastLength = length
            open.closed = length < open.segmentLength
            countTunnelFrame(locator, length)
            if open.count == open.perTrain { closeTrain() }
            return true
        }
        let promote =
            underlayPending > 0 && tail.slot == underlayPending - 1 && tail.port == port
            && tail.locator == locator && tail.vni == vni && length <= tail.length
        guard promote || trainPorts & Self.portBit(port) != 0 else { return false }
        if open.count > 0 { closeTrain() }
        // Closing may have sent the pending frames, the one to promote among them.
        let promoted = promote && underlayPending > 0 && tail.slot == underlayPending - 1
        let segment = promoted ? tail.length : length
        let stride = segment + VXLANHeader.length
        let perTrain = min(
            64, (trainBatch.bufferSize - trainBatch.headroom - template.headerLength) / stride,
            (template.maximumInnerLength + VXLANHeader.length) / stride)
        guard perTrain >= 2 else { return false }
        let buffer = trainBatch.buffer(trainPending)
        var at = trainBatch.headroom + template.headerLength
        open = OpenTrain(
            count: 0, locator: locator, vni: vni, port: port, segmentLength: segment,
            lastLength: segment, closed: false, perTrain: perTrain, template: template)
        if promoted {
            // The frame already counted; its slot is given back.
            underlayPending -= 1
            let from = underlayBatch.buffer(underlayPending).baseAddress! + underlayBatch.headroom
            (buffer.baseAddress! + at).copyMemory(from: from, byteCount: tail.length)
            tail = PlainTail()
            at += stride
            open.count = 1
        }
        _ = Self.copyRetagged(frame, vlan: nil, into: buffer, at: at)
        open.count += 1
        open.lastLength = length
        open.closed = length < segment
        trainPorts |= Self.portBit(port)
        countTunnelFrame(locator, length)
        return true
    }

    @inline(__always)
    static func portBit(_ port: UInt16) -> UInt64 { 1 &<< UInt64(port & 63) }

    /// VXLAN's UDP source port for a flow of hash `hash`: in the operator's range, or, when
    /// trains leave through the kernel's UDP sockets, the port of the pool's socket the hash
    /// picks, for every datagram of the flow alike (`UDPTrainSockets`).
    @inline(__always)
    private func sourcePort(for hash: UInt32) -> UInt16 {
        guard poolPorts.count > 0 else { return settings.sourcePorts.port(for: hash) }
        return poolPorts[Int((UInt64(hash) &* UInt64(poolPorts.count)) >> 32)]
    }

    @inline(__always)
    private func countTunnelFrame(_ locator: LocatorIndex, _ length: Int) {
        if let c = Self.counterSlot(locator) {
            vtepTx[c] &+= 1
            vtepTxBytes[c] &+= UInt64(length)
        }
    }

    /// Stamps the open train's outer headers and queues it: one frame goes as a plain
    /// datagram, more as a UDP GSO train.
    private func closeTrain() {
        guard open.count > 0, let template = open.template else { return }
        let slot = trainPending
        let buffer = trainBatch.buffer(slot)
        let start = trainBatch.headroom
        let header: VirtioNetHeader
        do {
            if open.count == 1 {
                _ = try template.stamp(
                    into: buffer, at: start, innerLength: open.lastLength,
                    sourcePort: open.port)
                header = .plain
            } else {
                header = try template.stampTrain(
                    into: buffer, at: start, segmentLength: open.segmentLength,
                    count: open.count, lastLength: open.lastLength, sourcePort: open.port)
                trainsOut &+= 1
                trainsCoalesced &+= 1
            }
        } catch {
            engine.countMalformed(error)
            open.count = 0
            return
        }
        let stride = open.segmentLength + VXLANHeader.length
        trainBatch.setFrame(
            slot, start: start,
            length: template.headerLength + (open.count - 1) * stride + open.lastLength)
        trainBatch.setOffload(header, for: slot)
        open.count = 0
        trainPending = slot + 1
        if trainPending == trainBatch.capacity { flushTrains() }
    }

    /// A super-frame toward a tunnel: cut into segments that fit the underlay once
    /// encapsulated (never fragmented, RFC 7348 §4.3), each written untagged straight into an
    /// underlay slot and encapsulated there; or, before the next hop is known, through the
    /// slow path one segment at a time.
    private func toTunnel(
        _ locator: LocatorIndex, _ vni: VNI, superFrame frame: UnsafeRawBufferPointer,
        _ offload: VirtioNetHeader
    ) {
        let template = templates.find(locator, vni) ?? buildTemplate(locator, vni)
        let overhead: Int
        if let template {
            overhead = template.headerLength - 14
        } else {
            guard let l = engine.locator(locator) else {
                engine.countDrop(.destinationGone)
                return
            }
            overhead = Self.outerOverhead(l, greOptions(vni))
        }
        let untagged =
            (try? SuperFrame(frame, header: offload, maximumSegmentSize: 1))?
            .untaggedHeaderLength ?? 0
        let room = min(underlayMTU - overhead, underlayBatch.bufferSize - underlayBatch.headroom)
        let pieces: SuperFrame
        do {
            pieces = try SuperFrame(
                frame, header: offload, maximumSegmentSize: room - untagged)
        } catch {
            engine.countMalformed(error)
            return
        }
        if let template, let tunnelGSORef, template.goesWhole, pieces.count > 1,
            pieces.carriesTCP,
            !offload.needsChecksumCompletion
                || (Int(offload.checksumStart) == pieces.transportStart
                    && offload.checksumOffset == 16),
            tunnelGSORef._withUnsafeGuaranteedRef({
                toTunnelWhole($0, locator, template, pieces, frame, offload)
            })
        {
            return
        }
        if let template, template.encapsulation == .vxlan, underlay.supportsTrains,
            pieces.count > 1
        {
            toTunnelAsTrains(locator, vni, template, pieces, frame)
            return
        }
        for i in 0..<pieces.count {
            if let template {
                let slot = underlayPending
                let length = pieces.write(
                    i, of: frame, vlan: nil, into: underlayBatch.buffer(slot),
                    at: underlayBatch.headroom)
                guard length > 0 else {
                    engine.countDrop(.underlayTooBig)
                    continue
                }
                segmentsOut &+= 1
                encapsulate(locator, vni, template, innerLength: length)
            } else {
                let length = pieces.write(i, of: frame, vlan: nil, into: segmentScratch, at: 0)
                guard length > 0 else {
                    engine.countDrop(.underlayTooBig)
                    continue
                }
                segmentsOut &+= 1
                toSlowPath(
                    locator, vni,
                    UnsafeRawBufferPointer(rebasing: segmentScratch[0..<length]))
            }
        }
    }

    /// A TCP super-frame toward VXLAN (over IPv4 or IPv6) handed to the kernel whole
    /// (`VXLANTransmit.tunnelGSO`): the outer headers (`stampWhole`) and the untagged
    /// frame written to the TAP device in one writev, with a virtio_net_hdr that asks for
    /// UDP-tunnel GSO with the segment size that fits the underlay. The device's ingress
    /// redirects it out of the underlay as one packet and it is cut where it must be (the
    /// NIC, or the kernel at the underlay device, or a kernel VTEP past a veth that takes it
    /// whole). Counts as its
    /// segments. A super-frame whose checksum was verified (GRO on a NIC) rather than left
    /// partial gets the pseudo-header sum in its checksum field first. Returns false, having
    /// sent nothing, when it is to leave as trains instead: a frame too large for one outer
    /// packet, or a header the kernel refused (EINVAL, counted in `tunnelGSORefused`).
    private func toTunnelWhole(
        _ device: IO.TunnelGSO, _ locator: LocatorIndex, _ template: OuterHeaderTemplate,
        _ pieces: SuperFrame, _ frame: UnsafeRawBufferPointer, _ offload: VirtioNetHeader
    ) -> Bool {
        let tag = pieces.tagLength
        let end = pieces.packetEnd
        let innerLength = end - tag
        let header = tunnelGSOHeader
        let outer: Int
        do {
            outer = try template.stampWhole(
                into: header, at: VirtioNetHeader.tunnelLength, innerLength: innerLength,
                sourcePort: sourcePort(for: hasher.hash(frame)))
        } catch {
            return false
        }
        // A checksum GRO verified (rather than one TSO left partial): the field gets the
        // pseudo-header sum, as TSO would have left it, for the kernel to finish per segment.
        // The receive buffer is ours, and a train cut from it later recomputes the field.
        if !offload.needsChecksumCompletion {
            pieces.storePseudoHeaderSum(in: UnsafeMutableRawBufferPointer(mutating: frame))
        }
        pieces.storeTunnelHeader(
            behind: template, ecn: offload.gsoType & VirtioNetHeader.GSO.ecn != 0,
            to: header.baseAddress!)
        // Frames queued before it leave before it: a flow's frames keep their order.
        if trainPending > 0 || open.count > 0 { flushTrains() }
        if underlayPending > 0 { flushUnderlay() }
        let first = UnsafeRawBufferPointer(rebasing: frame[0..<(tag == 0 ? end : 12)])
        let second =
            tag == 0
            ? UnsafeRawBufferPointer(rebasing: frame[end..<end])
            : UnsafeRawBufferPointer(rebasing: frame[12 + tag..<end])
        do {
            let sent = try device.send(
                header: UnsafeRawBufferPointer(
                    rebasing: header[0..<VirtioNetHeader.tunnelLength + outer]),
                first, second)
            guard sent else {
                engine.countDrop(.transmitQueueFull, UInt64(pieces.count))
                return true
            }
        } catch {
            if error.errno == EINVAL {
                tunnelGSORefused &+= 1
                return false
            }
            failed(.underlaySend, error)
            engine.countDrop(.sendFailed, UInt64(pieces.count))
            return true
        }
        tunnelGSOOut &+= 1
        segmentsOut &+= UInt64(pieces.count)
        if let c = Self.counterSlot(locator) {
            // The frames on the wire: each segment carries the headers again.
            vtepTx[c] &+= UInt64(pieces.count)
            vtepTxBytes[c] &+= UInt64(
                innerLength + (pieces.count - 1) * pieces.untaggedHeaderLength)
        }
        return true
    }

    /// A super-frame's segments as UDP GSO trains: VXLAN datagrams back to back behind one
    /// outer header (`OuterHeaderTemplate.stampTrain`), so the kernel or the NIC cuts them
    /// and the underlay carries one packet per train as far as it can. One source port for
    /// the train: its segments are one inner flow. Plain frames queued before it leave
    /// before it, so a flow's frames keep their order.
    private func toTunnelAsTrains(
        _ locator: LocatorIndex, _ vni: VNI, _ template: OuterHeaderTemplate,
        _ pieces: SuperFrame, _ frame: UnsafeRawBufferPointer
    ) {
        if open.count > 0 { closeTrain() }
        if underlayPending > 0 { flushUnderlay() }
        let segmentLength = pieces.untaggedHeaderLength + pieces.segmentSize
        let stride = segmentLength + VXLANHeader.length
        let room = trainBatch.bufferSize - trainBatch.headroom - template.headerLength
        // At most 64 segments a train (the kernel's UDP_MAX_SEGMENTS) and one IP packet.
        let perTrain = min(
            64, room / stride, (template.maximumInnerLength + VXLANHeader.length) / stride)
        guard perTrain >= 1 else {
            engine.countDrop(.underlayTooBig, UInt64(pieces.count))
            return
        }
        var first = 0
        var port: UInt16 = 0
        while first < pieces.count {
            let count = min(perTrain, pieces.count - first)
            let slot = trainPending
            let buffer = trainBatch.buffer(slot)
            let start = trainBatch.headroom
            var last = 0
            for i in 0..<count {
                last = pieces.write(
                    first + i, of: frame, vlan: nil, into: buffer,
                    at: start + template.headerLength + i * stride)
                guard last > 0 else {
                    // This segment and every one after it are lost.
                    engine.countDrop(.underlayTooBig, UInt64(pieces.count - first))
                    return
                }
            }
            if first == 0 {
                let inner = UnsafeRawBufferPointer(
                    rebasing: buffer[
                        start + template.headerLength..<start + template.headerLength
                            + segmentLength])
                port = sourcePort(for: hasher.hash(inner))
            }
            let header: VirtioNetHeader
            do {
                header = try template.stampTrain(
                    into: buffer, at: start, segmentLength: segmentLength, count: count,
                    lastLength: last, sourcePort: port)
            } catch {
                engine.countMalformed(error)
                return
            }
            let length = template.headerLength + (count - 1) * stride + last
            trainBatch.setFrame(slot, start: start, length: length)
            trainBatch.setOffload(header, for: slot)
            trainsOut &+= 1
            if let c = Self.counterSlot(locator) {
                vtepTx[c] &+= UInt64(count)
                vtepTxBytes[c] &+= UInt64(
                    length - template.headerLength - count * VXLANHeader.length)
            }
            segmentsOut &+= UInt64(count)
            trainPending = slot + 1
            trainPorts |= Self.portBit(port)
            if trainPending == trainBatch.capacity { flushTrains() }
            first += count
        }
    }

    /// Bytes a tunnel adds in front of the inner frame, outer Ethernet header excluded: what
    /// counts against the underlay MTU.
    static func outerOverhead(_ locator: Locator, _ options: GREOptions) -> Int {
        let ip: Int
        switch locator.ip {
        case .v4: ip = 20
        case .v6: ip = 40
        }
        switch locator.encapsulation {
        case .vxlan: return ip + UDPHeader.length + VXLANHeader.length
        case .nvgre: return ip + NVGREHeader.length
        case .gre:
            return ip + 8 + (options.checksum ? 4 : 0) + (options.sequence ? 4 : 0)
        }
    }

    /// Stamps the outer headers in front of the inner frame at the underlay batch's next
    /// slot (`innerLength` bytes at its headroom) and queues it.
    @inline(__always)
    private func encapsulate(
        _ locator: LocatorIndex, _ vni: VNI, _ template: OuterHeaderTemplate, innerLength: Int,
        hash known: UInt32? = nil
    ) {
        let batch = underlayBatch
        var slot = underlayPending
        var buffer = batch.buffer(slot)
        let innerStart = batch.headroom
        // The IP packet: everything after the outer Ethernet header.
        if template.headerLength - 14 + innerLength > underlayMTU {
            engine.countDrop(.underlayTooBig)
            return
        }
        let hash =
            known
            ?? hasher.hash(
                UnsafeRawBufferPointer(rebasing: buffer[innerStart..<innerStart + innerLength]))
        let port = sourcePort(for: hash)
        // A frame of a flow that may wait in a train leaves after it (a flow keeps its order;
        // other flows may pass a train). The trains take the pending frames with them, so
        // this one moves to the first slot. Trains carry only VXLAN.
        if template.encapsulation == .vxlan, trainPorts & Self.portBit(port) != 0 {
            flushTrains()
            if underlayPending != slot {
                let from = buffer.baseAddress! + innerStart
                slot = underlayPending
                buffer = batch.buffer(slot)
                (buffer.baseAddress! + innerStart).copyMemory(from: from, byteCount: innerLength)
            }
        }
        let start = innerStart - template.headerLength
        let sequence = template.carriesGRESequence ? sequences.next(locator, vni) : 0
        do {
            _ = try template.stamp(
                into: buffer, at: start, innerLength: innerLength, sourcePort: port,
                flowID: Self.flowID(hash), sequence: sequence)
        } catch {
            engine.countMalformed(error)
            return
        }
        batch.setFrame(slot, start: start, length: template.headerLength + innerLength)
        if let c = Self.counterSlot(locator) {
            vtepTx[c] &+= 1
            vtepTxBytes[c] &+= UInt64(innerLength)
        }
        underlayPending = slot + 1
        if slot + 1 == batch.capacity { flushUnderlay() }
    }

    /// NVGRE's FlowID (RFC 7637 §3.2) from the inner-flow hash: its top byte, which the
    /// hasher mixes as well as the bits the source port range keeps.
    @inline(__always)
    static func flowID(_ hash: UInt32) -> UInt8 { UInt8(truncatingIfNeeded: hash >> 24) }

    /// The template for (locator, VNI) once its next hop is known; nil until then.
    private func buildTemplate(_ index: LocatorIndex, _ vni: VNI) -> OuterHeaderTemplate? {
        // A group's Ethernet address follows from its IP address (RFC 1112 §6.4, RFC 2464
        // §7), so it need not wait for the resolver (up to 1 s after a new configuration).
        // Meanwhile the slow path would lose the frame: without IP_MULTICAST_IF the kernel
        // routes a group by the unicast table (no route on the underlay: ENETUNREACH, io_error).
        guard let locator = engine.locator(index),
            let hop = nextHops[locator] ?? NextHop.multicast(locator.ip)
        else { return nil }
        let ethernet = OuterHeaderTemplate.Ethernet(
            destination: hop.destination, source: underlayMAC)
        let network: OuterHeaderTemplate.Network
        switch locator.ip {
        case .v4(let destination):
            guard let source = settings.localIPv4 else { return nil }
            network = .ipv4(
                source: source, destination: destination,
                ttl: destination.isMulticast ? settings.multicastTTL : settings.unicastTTL)
        case .v6(let destination):
            guard let source = settings.localIPv6 else { return nil }
            network = .ipv6(
                source: source, destination: destination,
                hopLimit: destination.isMulticast ? settings.multicastTTL : settings.unicastTTL)
        }
        let options = greOptions(vni)
        guard
            let template = try? OuterHeaderTemplate(
                encapsulation: locator.encapsulation, vni: vni.rawValue, network: network,
                ethernet: ethernet, udpDestinationPort: settings.vxlanPort,
                greChecksum: options.checksum, greSequence: options.sequence)
        else { return nil }
        templates.insert(index, vni, template)
        return template
    }

    /// The GRE options of the switch carrying `vni` (used for GRE locators only; the
    /// snapshot leaves them off on VXLAN and NVGRE switches).
    private func greOptions(_ vni: VNI) -> GREOptions {
        let configuration = engine.configuration
        guard let sw = configuration.switchIndex(for: vni), let s = configuration.logicalSwitch(sw)
        else { return GREOptions() }
        return s.greOptions
    }

    /// Sends through the kernel's IP output, which resolves the next hop (ARP or neighbour
    /// discovery) so that the control plane's next resolution finds it. VXLAN goes as a whole
    /// UDP datagram on a raw socket, so its source port is the flow hash as on the fast path.
    private func toSlowPath(_ index: LocatorIndex, _ vni: VNI, _ inner: UnsafeRawBufferPointer) {
        guard let locator = engine.locator(index) else {
            engine.countDrop(.destinationGone)
            return
        }
        if locator.encapsulation != .vxlan {
            toGRESlowPath(index, locator, vni, inner)
            return
        }
        let batch: PacketBatch
        let slot: Int
        switch locator.ip {
        case .v4:
            if udp4 == nil { udp4 = openUDP(false) }
            guard udp4 != nil else {
                engine.countDrop(.noLocalAddress)
                return
            }
            batch = slow4
            slot = slow4Pending
        case .v6:
            if udp6 == nil { udp6 = openUDP(true) }
            guard udp6 != nil else {
                engine.countDrop(.noLocalAddress)
                return
            }
            batch = slow6
            slot = slow6Pending
        }
        let buffer = batch.buffer(slot)
        let start = batch.headroom
        let headers = UDPHeader.length + VXLANHeader.length
        guard start + headers + inner.count <= buffer.count else {
            engine.countDrop(.underlayTooBig)
            return
        }
        let udp = UDPHeader(
            sourcePort: sourcePort(for: hasher.hash(inner)),
            destinationPort: settings.vxlanPort, length: UInt16(headers + inner.count))
        do {
            let at = try udp.store(into: buffer, at: start)
            _ = try VXLANHeader(vni: vni.rawValue).store(into: buffer, at: at)
        } catch {
            // Not reached: the room was checked above.
            engine.countDrop(.underlayTooBig)
            return
        }
        (buffer.baseAddress! + start + headers).copyMemory(
            from: inner.baseAddress!, byteCount: inner.count)
        batch.setFrame(slot, start: start, length: headers + inner.count)
        // raw(7): the port of a raw socket's destination must be 0.
        batch.setDestination(UDPEndpoint(address: locator.ip, port: 0), for: slot)
        slowPath &+= 1
        if let c = Self.counterSlot(index) {
            vtepTx[c] &+= 1
            vtepTxBytes[c] &+= UInt64(inner.count)
        }
        switch locator.ip {
        case .v4:
            slow4Pending = slot + 1
            if slow4Pending == batch.capacity { flushSlow() }
        case .v6:
            slow6Pending = slot + 1
            if slow6Pending == batch.capacity { flushSlow() }
        }
    }

    /// GRE or NVGRE through the raw socket: the kernel writes the IP header and resolves the
    /// next hop, as the UDP socket does for VXLAN.
    private func toGRESlowPath(
        _ index: LocatorIndex, _ locator: Locator, _ vni: VNI, _ inner: UnsafeRawBufferPointer
    ) {
        let batch: PacketBatch
        let slot: Int
        switch locator.ip {
        case .v4:
            guard gre4 != nil else {
                engine.countDrop(.noLocalAddress)
                return
            }
            batch = greSlow4
            slot = greSlow4Pending
        case .v6:
            guard gre6 != nil else {
                engine.countDrop(.noLocalAddress)
                return
            }
            batch = greSlow6
            slot = greSlow6Pending
        }
        let buffer = batch.buffer(slot)
        let start = batch.headroom
        let headerLength: Int
        if locator.encapsulation == .nvgre {
            headerLength = NVGREHeader.length
            guard start + headerLength + inner.count <= buffer.count else {
                engine.countDrop(.underlayTooBig)
                return
            }
            (buffer.baseAddress! + start + headerLength).copyMemory(
                from: inner.baseAddress!, byteCount: inner.count)
            let header = NVGREHeader(vsid: vni.rawValue, flowID: Self.flowID(hasher.hash(inner)))
            do { _ = try header.store(into: buffer, at: start) } catch {
                engine.countDrop(.underlayTooBig)
                return
            }
        } else {
            let options = greOptions(vni)
            let header = GREHeader(
                checksumPresent: options.checksum, key: vni.rawValue,
                sequence: options.sequence ? sequences.next(index, vni) : nil)
            headerLength = header.headerLength
            guard start + headerLength + inner.count <= buffer.count else {
                engine.countDrop(.underlayTooBig)
                return
            }
            (buffer.baseAddress! + start + headerLength).copyMemory(
                from: inner.baseAddress!, byteCount: inner.count)
            do {
                _ = try header.store(into: buffer, at: start, payloadLength: inner.count)
            } catch {
                engine.countDrop(.underlayTooBig)
                return
            }
        }
        batch.setFrame(slot, start: start, length: headerLength + inner.count)
        batch.setDestination(UDPEndpoint(address: locator.ip, port: 0), for: slot)
        slowPath &+= 1
        if let c = Self.counterSlot(index) {
            vtepTx[c] &+= 1
            vtepTxBytes[c] &+= UInt64(inner.count)
        }
        switch locator.ip {
        case .v4:
            greSlow4Pending = slot + 1
            if greSlow4Pending == batch.capacity { flushSlow() }
        case .v6:
            greSlow6Pending = slot + 1
            if greSlow6Pending == batch.capacity { flushSlow() }
        }
    }

    /// The VLAN id of the frame's one tag (802.1Q or 802.1ad), 0 when untagged.
    @inline(__always)
    static func vid(_ frame: UnsafeRawBufferPointer) -> Int {
        guard frame.count >= 16 else { return 0 }
        let type = UInt16(frame[12]) << 8 | UInt16(frame[13])
        guard
            type == EtherType.vlan || type == EtherType.serviceVLAN
                || type == EtherType.legacyServiceVLAN
        else { return 0 }
        return Int(UInt16(frame[14] & 0x0F) << 8 | UInt16(frame[15]))
    }

    /// Copies `frame` to `buffer[at...]` with its one VLAN tag (if any) replaced by `vlan`
    /// (802.1Q, nil = untagged). Returns the new length, or 0 if it does not fit.
    @inline(__always)
    static func copyRetagged(
        _ frame: UnsafeRawBufferPointer, vlan: UInt16?, into buffer: UnsafeMutableRawBufferPointer,
        at offset: Int
    ) -> Int {
        guard frame.count >= 14 else { return 0 }
        let type = UInt16(frame[12]) << 8 | UInt16(frame[13])
        let tagged =
            type == EtherType.vlan || type == EtherType.serviceVLAN
            || type == EtherType.legacyServiceVLAN
        let payloadStart = tagged ? 16 : 12
        guard frame.count >= payloadStart + 2 else { return 0 }
        let payloadLength = frame.count - payloadStart
        let length = 12 + (vlan == nil ? 0 : 4) + payloadLength
        guard offset + length <= buffer.count else { return 0 }
        let out = buffer.baseAddress! + offset
        out.copyMemory(from: frame.baseAddress!, byteCount: 12)
        var at = 12
        if let vlan {
            out.storeBytes(of: EtherType.vlan.bigEndian, toByteOffset: 12, as: UInt16.self)
            out.storeBytes(of: vlan.bigEndian, toByteOffset: 14, as: UInt16.self)
            at = 16
        }
        (out + at).copyMemory(from: frame.baseAddress! + payloadStart, byteCount: payloadLength)
        return length
    }

    private func flushAll() {
        for w in 0..<ports.count where portPending[w] > 0 { flushPort(w) }
        if trainPending > 0 || open.count > 0 { flushTrains() }
        if underlayPending > 0 { flushUnderlay() }
        if slow4Pending > 0 || slow6Pending > 0 || greSlow4Pending > 0 || greSlow6Pending > 0 {
            flushSlow()
        }
    }

    /// Counts a failed receive or send and keeps its errno for the control side's log.
    @inline(__always)
    private func failed(_ operation: DataPlaneIOError.Operation, _ error: SystemError) {
        ioErrors &+= 1
        lastIOError = DataPlaneIOError(operation: operation, errno: error.errno)
    }

    private func flushPort(_ w: Int) {
        if openVLAN[w] != Self.closedSlot { closeCoalescing(w) }
        let count = portPending[w]
        portPending[w] = 0
        let extra = portTxExtra[w]
        portTxExtra[w] = 0
        let (sent, bytes) = withPortBatch(w) { batch -> (Int, Int) in
            let sent = send(
                count, of: batch, on: ports[w], tooBig: .tooBigForPort, failing: .accessSend)
            // The first `sent` slots' lengths: exact unless a slot in between was refused.
            var bytes = 0
            for slot in 0..<sent { bytes &+= batch.frameLength(slot) }
            return (sent, bytes)
        }
        portTxBytes[w] &+= UInt64(bytes)
        // Super-frames count as their segments when the whole batch went (which slots did
        // not go is not worth tracking for the count).
        portTx[w] &+= UInt64(sent) &+ (sent == count ? extra : 0)
        portDrops[w] &+= UInt64(count - sent)
    }

    private func flushUnderlay() {
        let count = underlayPending
        underlayPending = 0
        tail = PlainTail()
        _ = send(
            count, of: underlayBatch, on: underlay, tooBig: .underlayTooBig, failing: .underlaySend)
    }

    /// Sends the pending trains, the open one closed first, after the plain frames queued
    /// before them: a train may hold later frames of their flows.
    private func flushTrains() {
        if open.count > 0 {
            closeTrain()
            if trainPending == 0 { return }
        }
        if underlayPending > 0 { flushUnderlay() }
        let count = trainPending
        trainPending = 0
        trainPorts = 0
        guard count > 0 else { return }
        let result: SendResult
        do {
            result = try underlay.sendTrains(trainBatch, count: count)
        } catch {
            failed(.underlaySend, error)
            engine.countDrop(.sendFailed, UInt64(count))
            return
        }
        countUnsent(result, of: count, tooBig: .underlayTooBig)
    }

    private func flushSlow() {
        if slow4Pending > 0, let udp4 {
            _ = send(
                slow4Pending, of: slow4, on: udp4, tooBig: .underlayTooBig, failing: .tunnelSend)
        }
        if slow6Pending > 0, let udp6 {
            _ = send(
                slow6Pending, of: slow6, on: udp6, tooBig: .underlayTooBig, failing: .tunnelSend)
        }
        if greSlow4Pending > 0, let gre4 {
            _ = send(
                greSlow4Pending, of: greSlow4, on: gre4, tooBig: .underlayTooBig,
                failing: .tunnelSend)
        }
        if greSlow6Pending > 0, let gre6 {
            _ = send(
                greSlow6Pending, of: greSlow6, on: gre6, tooBig: .underlayTooBig,
                failing: .tunnelSend)
        }
        slow4Pending = 0
        slow6Pending = 0
        greSlow4Pending = 0
        greSlow6Pending = 0
    }

    /// Sends slots `0 ..< count` of `batch` and counts what did not go: refused as too big
    /// (under `tooBig`), not attempted for a full queue, lost in a failed call. Returns how
    /// many were sent.
    @inline(__always)
    private func send<Socket: FrameSending>(
        _ count: Int, of batch: PacketBatch, on socket: Socket, tooBig: DropReason,
        failing operation: DataPlaneIOError.Operation
    ) -> Int {
        let result: SendResult
        do {
            result = try socket.send(batch, count: count)
        } catch {
            failed(operation, error)
            engine.countDrop(.sendFailed, UInt64(count))
            return 0
        }
        countUnsent(result, of: count, tooBig: tooBig)
        return result.sent
    }

    @inline(__always)
    private func countUnsent(_ result: SendResult, of count: Int, tooBig: DropReason) {
        if result.tooBig > 0 { engine.countDrop(tooBig, UInt64(result.tooBig)) }
        if result.processed < count {
            engine.countDrop(.transmitQueueFull, UInt64(count - result.processed))
        }
    }

    // MARK: Control

    /// Puts a configuration and its static MACs in force (between batches).
    /// Maps each of our ports to its index in `configuration` (by interface name), both ways.
    private func mapPorts(_ configuration: ForwardingConfiguration) {
        for w in 0..<ports.count where portIndexOf[w] >= 0 {
            workerPortOf[Int(portIndexOf[w])] = -1
        }
        for w in 0..<ports.count {
            // A port's MTU can change while vtepd runs; a configuration change is the moment
            // to read it again (an ioctl, never per frame).
            if let mtu = try? ports[w].mtu { portMTU[w] = mtu }
            if let index = configuration.portIndex(named: ports[w].interfaceName) {
                portIndexOf[w] = Int32(index.rawValue)
                workerPortOf[Int(index.rawValue)] = w
            } else {
                portIndexOf[w] = -1
            }
        }
    }

    /// Why an internal port could not be added.
    public enum PortChangeError: Error, Hashable, Sendable, CustomStringConvertible {
        case full(limit: Int)
        case duplicate(String)

        public var description: String {
            switch self {
            case .full(let limit):
                "the data plane already has \(limit) ports, its limit"
            case .duplicate(let name): "port \(name) is already one of the data plane's ports"
            }
        }
    }

    /// Adds `port` (an internal port: a router's veth) while the worker runs, between
    /// batches; it is mapped to the configuration in force at once, and counted from zero.
    public func addPort(_ port: IO.Access) throws(PortChangeError) {
        guard !ports.contains(where: { $0.interfaceName == port.interfaceName }) else {
            throw .duplicate(port.interfaceName)
        }
        guard ports.count < portCapacity else { throw .full(limit: portCapacity) }
        let w = ports.count
        ports.append(port)
        let batch = PacketBatch(
            capacity: settings.batchSize, bufferSize: Self.superFrameBytes + 16, headroom: 16)
        portBatches.append(batch)
        portRefs[w] = .passUnretained(port)
        portBatchRefs[w] = .passUnretained(batch)
        resetSlot(w)
        portsChanged = true
        mapPorts(engine.configuration)
    }

    /// Removes the port called `name` (flushing what waits for every port first) and returns
    /// it, for its socket to be closed; nil when there is none. The last port takes its slot.
    @discardableResult
    public func removePort(named name: String) -> IO.Access? {
        guard let w = ports.firstIndex(where: { $0.interfaceName == name }) else { return nil }
        flushAll()
        let last = ports.count - 1
        for slot in [w, last] where portIndexOf[slot] >= 0 {
            workerPortOf[Int(portIndexOf[slot])] = -1
        }
        if w != last {
            portRefs[w] = portRefs[last]
            portBatchRefs[w] = portBatchRefs[last]
            portRx[w] = portRx[last]
            portTx[w] = portTx[last]
            portRxBytes[w] = portRxBytes[last]
            portTxBytes[w] = portTxBytes[last]
            portTxExtra[w] = portTxExtra[last]
            portMTU[w] = portMTU[last]
            portDrops[w] = portDrops[last]
            (bindingCounters + w * 4096).update(from: bindingCounters + last * 4096, count: 4096)
            ports.swapAt(w, last)
            portBatches.swapAt(w, last)
        }
        coalescers[w] = TCPCoalescer()
        openVLAN[w] = Self.closedSlot
        portPending[w] = 0
        portBatches.removeLast()
        let removed = ports.removeLast()
        portIndexOf[last] = -1
        portsChanged = true
        mapPorts(engine.configuration)
        return removed
    }

    /// The names of the ports, in slot order.
    public var portNames: [String] { ports.map(\.interfaceName) }

    /// Zeroes every per-port table at slot `w`.
    private func resetSlot(_ w: Int) {
        portPending[w] = 0
        coalescers[w] = TCPCoalescer()
        openVLAN[w] = Self.closedSlot
        portIndexOf[w] = -1
        portRx[w] = 0
        portTx[w] = 0
        portRxBytes[w] = 0
        portTxBytes[w] = 0
        portTxExtra[w] = 0
        portDrops[w] = 0
        portMTU[w] = (try? ports[w].mtu) ?? 1500
        (bindingCounters + w * 4096).update(repeating: BindingCounters(), count: 4096)
    }

    public func apply(_ new: ForwardingConfiguration, _ staticMACs: [StaticRemoteMAC]) {
        configurationsApplied &+= 1
        engine.apply(new)
        configurationRef = .passUnretained(new)
        bfd.reindex { new.locatorIndex(of: $0) }
        updateLocatorDown()
        templates.removeAll()
        problems = []
        mapPorts(new)
        // Static MACs: remove those that went, install the rest (idempotent).
        let wanted = Set(staticMACs)
        for old in statics.subtracting(wanted) {
            guard let sw = new.switchIndex(named: old.logicalSwitch) else { continue }
            if engine.macTable.lookup(old.mac, on: sw, now: now())?.isStatic == true {
                engine.macTable.remove(old.mac, on: sw)
            }
        }
        for s in staticMACs {
            guard let sw = new.switchIndex(named: s.logicalSwitch),
                let locator = new.locatorIndex(of: s.locator)
            else {
                problems.append(
                    "static MAC \(s.mac) on \(s.logicalSwitch) → \(s.locator): switch or locator not configured"
                )
                continue
            }
            do {
                try engine.installStatic(s.mac, on: sw, at: .remote(locator), now: now())
            } catch {
                problems.append("static MAC \(s.mac) on \(s.logicalSwitch): \(error)")
            }
        }
        statics = wanted
        let homeless = engine.replaceStaticNeighbours(
            staticMACs.compactMap { s in
                guard let ip = s.ip, let sw = new.switchIndex(named: s.logicalSwitch) else {
                    return nil
                }
                return (sw, ip, s.mac)
            })
        if homeless > 0 {
            problems.append(
                "\(homeless) Ucast_Macs_Remote ipaddr entries found no room in the neighbour"
                    + " table; ARP and ND suppression floods the requests for them")
        }
        // Multicast groups: join the new, leave the gone.
        var wantedGroups: Set<IPAddress> = []
        for case .some(let s) in new.switches {
            if case .multicast(let group) = s.replication { wantedGroups.insert(group.ip) }
        }
        for group in groups.subtracting(wantedGroups) { membership(group, join: false) }
        for group in wantedGroups.subtracting(groups) { membership(group, join: true) }
        groups = wantedGroups
    }

    private func membership(_ group: IPAddress, join: Bool) {
        let socket: IO.VXLAN?
        switch group {
        case .v4: socket = vxlan4
        case .v6: socket = vxlan6
        }
        guard let socket else {
            problems.append("multicast group \(group): no local tunnel address of its family")
            return
        }
        do {
            if join {
                try socket.join(group: group, interfaceIndex: underlay.interfaceIndex)
            } else {
                try socket.leave(group: group, interfaceIndex: underlay.interfaceIndex)
            }
        } catch {
            problems.append("multicast group \(group): \(error)")
        }
    }

    func leaveAllGroups() {
        for group in groups { membership(group, join: false) }
        groups = []
    }

    // MARK: Binding statistics

    /// The counters of each (access port, VLAN) binding of the configuration in force, by port
    /// name and VLAN id (0 = untagged): what hardware_vtep's Logical_Binding_Stats hold.
    public func bindingStatistics() -> [String: [Int: BindingCounters]] {
        var result: [String: [Int: BindingCounters]] = [:]
        for binding in engine.configuration.bindings {
            guard let w = ports.firstIndex(where: { $0.interfaceName == binding.port }) else {
                continue
            }
            let vid = Int(binding.vlan ?? 0)
            result[binding.port, default: [:]][vid] = bindingCounters[w * 4096 + vid]
        }
        return result
    }

    // MARK: Packet capture

    /// Makes frames sent out of access port `name` (nil: the underlay) reach packet taps
    /// while `tapped`, for a capture; returns why not, or nil.
    public func setTapped(port name: String?, _ tapped: Bool) -> String? {
        do throws(SystemError) {
            if let name {
                guard let port = ports.first(where: { $0.interfaceName == name }) else {
                    return "port \(name) is not one of vtepd's access ports"
                }
                try port.setTapped(tapped)
            } else {
                try underlay.setTapped(tapped)
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// The underlay interface's name, for a capture on it.
    public var underlayName: String { underlay.interfaceName }

    // MARK: Packet trace

    /// Records the next `count` frames `selector` picks (at most `TraceRecorder.maximum`),
    /// replacing what was recorded before. Throws nothing: a port vtepd did not open is named
    /// in the answer.
    public func startTrace(_ selector: TraceSelector, count: Int) -> String {
        tracer.recorded = []
        tracer.selector = selector
        tracer.port = -1
        tracer.started = 0
        if case .port(let name) = selector {
            guard let w = ports.firstIndex(where: { $0.interfaceName == name }) else {
                tracer.remaining = 0
                return "port \(name) is not one of vtepd's access ports"
            }
            tracer.port = w
        }
        tracer.remaining = min(count, TraceRecorder.maximum)
        let what: String
        switch selector {
        case .any: what = "any port or tunnel"
        case .port(let name): what = "port \(name)"
        case .tunnel: what = "the tunnels"
        }
        return "tracing the next \(tracer.remaining) frames from \(what)"
    }

    /// The frames recorded since the trace started, and how many it still waits for.
    public var traces: (frames: [FrameTrace], waitingFor: Int) {
        (tracer.recorded, tracer.remaining)
    }

    public func clearTrace() { tracer = TraceRecorder() }

    /// Puts the forwarding state back as new, the configuration kept: the engine's
    /// (`ForwardingEngine.reset`: no MAC or neighbour entries, counters zero, the clock at 0)
    /// and the outer-header templates built from it. For the fuzz checks, which drive one
    /// worker through many inputs, each as on a worker just started.
    public func resetForwardingState() {
        engine.reset()
        templates.removeAll()
    }

    /// Records one traced frame's steps, if the selector picks it. Out of line: the per-frame
    /// paths only test `tracer.remaining`.
    @inline(never)
    private func trace(
        _ ingress: Ingress, _ frame: UnsafeRawBufferPointer, _ decision: Decision, from port: Int?,
        now: UInt32, superFrame frames: Int = 1
    ) {
        switch tracer.selector {
        case .any: break
        case .port: guard port == tracer.port else { return }
        case .tunnel: guard port == nil else { return }
        }
        tracer.remaining -= 1
        tracer.started += 1
        let c = engine.configuration
        var steps = [TraceText.ingress(ingress, c)]
        if frames > 1 { steps[0] += ", a super-frame of \(frames) segments" }
        steps.append(TraceText.headers(frame))
        if case .drop = decision {
        } else {
            steps += TraceText.lookup(ingress, frame, engine, now: now)
        }
        steps.append(TraceText.decision(decision, c, engine))
        if case .encapsulate(let locator, let vni) = decision {
            steps.append(path(to: locator, vni))
        }
        tracer.recorded.append(FrameTrace(number: tracer.started, seconds: now, steps: steps))
    }

    /// How a frame to `locator` leaves: through prebuilt headers or the kernel's IP output.
    private func path(to locator: LocatorIndex, _ vni: VNI) -> String {
        guard let l = engine.locator(locator) else { return "VTEP removed" }
        if let hop = nextHops[l] ?? NextHop.multicast(l.ip) {
            return "sent through prebuilt headers to next hop \(hop.destination)"
        }
        return "sent through the kernel's IP output (next hop not yet resolved)"
    }

    /// What the worker would do now with `frame` arriving on access port `name`, without
    /// learning, counting or sending it; nil when vtepd has no such port configured.
    public func explain(_ frame: [UInt8], onPort name: String) -> [String]? {
        let c = engine.configuration
        guard let port = c.portIndex(named: name) else { return nil }
        let now = self.now()
        let ingress = Ingress.access(port)
        return frame.withUnsafeBytes { raw in
            let decision = engine.explain(port: port, frame: raw, now: now)
            var steps = [TraceText.ingress(ingress, c), TraceText.headers(raw)]
            if case .drop = decision {
            } else {
                steps += TraceText.lookup(ingress, raw, engine, now: now)
            }
            steps.append(TraceText.decision(decision, c, engine))
            if case .encapsulate(let locator, let vni) = decision {
                steps.append(
                    path(to: locator, vni).replacingOccurrences(of: "sent", with: "would go"))
            }
            return steps
        }
    }

    // MARK: Inspection (runs on the worker via DataPlane.inspect)

    public var currentConfiguration: ForwardingConfiguration { engine.configuration }
    /// How many configurations were applied: what switch indices mean changes with it.
    public private(set) var configurationsApplied = 0

    public var discoveredLocators: [Locator] { engine.discoveredLocators }

    public var joinedGroups: [IPAddress] { groups.sorted { $0.description < $1.description } }

    public var configurationProblems: [String] { problems }

    /// Every counter of the forwarding core, with the worker's drops among its drop
    /// reasons and the kernel's receive-queue overruns read from the sockets.
    public func statistics() -> ForwardingStatistics {
        var statistics = engine.statistics()
        statistics.drops[Int(DropReason.accessReceiveOverrun.rawValue)] = ports.reduce(0) {
            $0 + $1.receiveDrops
        }
        statistics.drops[Int(DropReason.underlayReceiveOverrun.rawValue)] =
            (vxlan4?.receiveDrops ?? 0) + (vxlan6?.receiveDrops ?? 0)
            + (gre4?.receiveDrops ?? 0) + (gre6?.receiveDrops ?? 0)
            + (vxlanRing?.receiveDrops ?? 0)
        return statistics
    }

    /// The MAC table, for readers that go a slice at a time (`MACTable.select`).
    public var macTable: MACTable { engine.macTable }

    /// The live MAC entries of every switch in MAC table slots `from..<from + count`;
    /// `next` is where the following slice starts, nil after the last.
    public func macEntries(from: Int, count: Int) -> (
        entries: [(sw: SwitchIndex, mac: MACAddress, entry: MACTable.Entry)], next: Int?
    ) {
        let table = engine.macTable
        let end = from + count
        return (
            table.entries(now: now(), from: from, count: count), end < table.capacity ? end : nil
        )
    }

    /// The MACs learned behind a local port, of every switch, in MAC table slots
    /// `from..<from + count`; `next` is where the following slice starts, nil after the last;
    /// `expiring`, the earliest second (`secondsNow`'s clock) one of them expires unless seen
    /// again (`UInt32.max`: none does).
    public func localMACs(from: Int, count: Int) -> (
        macs: [(sw: SwitchIndex, mac: MACAddress)], next: Int?, expiring: UInt32
    ) {
        let table = engine.macTable
        var expiring = UInt32.max
        let macs = table.localMACs(now: now(), from: from, count: count, expiring: &expiring)
        let end = from + count
        return (macs, end < table.capacity ? end : nil, expiring)
    }

    /// What the local MACs depend on besides time: the MAC table's local changes and the
    /// configurations applied. Equal to a pass's and with its `expiring` still ahead, the
    /// local MACs are what that pass listed.
    public var localMACVersion: LocalMACVersion {
        LocalMACVersion(
            changes: engine.macTable.localChanges, configurations: configurationsApplied)
    }

    public func locator(_ index: LocatorIndex) -> Locator? { engine.locator(index) }

    public var secondsNow: UInt32 { now() }

    /// The failed receive and send calls so far and the last one: what the control side's
    /// log needs, without building the whole counters report.
    public var ioErrorState: (count: UInt64, last: DataPlaneIOError?) {
        (ioErrors, ioErrors > 0 ? lastIOError : nil)
    }

    public func counters() -> DataPlaneCounters {
        let c = engine.configuration
        var vteps: [DataPlaneCounters.VTEP] = []
        for (i, l) in c.locators.enumerated() {
            guard let l, i < Self.countedLocators else { continue }
            vteps.append(
                .init(
                    locator: l, txFrames: vtepTx[i], rxFrames: vtepRx[i],
                    resolved: nextHops[l] != nil, txBytes: vtepTxBytes[i],
                    rxBytes: vtepRxBytes[i]))
        }
        for (i, l) in engine.discoveredLocators.enumerated()
        where i < ForwardingEngine.defaultDiscoveredLocatorLimit {
            let c = Self.countedLocators + i
            vteps.append(
                .init(
                    locator: l, txFrames: vtepTx[c], rxFrames: vtepRx[c],
                    resolved: nextHops[l] != nil, txBytes: vtepTxBytes[c],
                    rxBytes: vtepRxBytes[c]))
        }
        return DataPlaneCounters(
            ports: ports.indices.map {
                .init(
                    name: ports[$0].interfaceName, rxFrames: portRx[$0], txFrames: portTx[$0],
                    drops: portDrops[$0], receiveOverruns: ports[$0].receiveDrops,
                    rxBytes: portRxBytes[$0], txBytes: portTxBytes[$0])
            },
            vteps: vteps, slowPath: slowPath,
            superFramesIn: superFramesIn, segmentsOut: segmentsOut, trainsOut: trainsOut,
            trainsCoalesced: trainsCoalesced, tunnelGSOOut: tunnelGSOOut,
            tunnelGSORefused: tunnelGSORefused,
            trainsIn: trainsIn,
            coalescedFramesOut: coalescedOut, coalescedSegments: coalescedSegments,
            checksumsCompleted: checksumsCompleted, ioErrors: ioErrors,
            lastIOError: ioErrors > 0 ? lastIOError : nil)
    }
}

/// What a listing of the local MACs depends on besides time (`DataPlaneWorker.localMACVersion`).
public struct LocalMACVersion: Hashable, Sendable {
    public var changes: UInt64
    public var configurations: Int
}

/// Outer-header templates by (locator, VNI): open addressing over preallocated storage, so a
/// lookup allocates nothing. Emptied when next hops or the configuration change, and when
/// full (templates are cheap to rebuild).
struct TemplateCache {
    private let mask: Int
    private let limit: Int
    private var count = 0
    private let keys: UnsafeMutablePointer<UInt64>
    private let values: UnsafeMutablePointer<OuterHeaderTemplate>

    init(capacity: Int) {
        var size = 8
        while size < 2 * capacity { size <<= 1 }
        mask = size - 1
        limit = capacity
        keys = .allocate(capacity: size)
        keys.initialize(repeating: .max, count: size)
        values = .allocate(capacity: size)
    }

    func deallocate() {
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always)
    private static func key(_ l: LocatorIndex, _ vni: VNI) -> UInt64 {
        UInt64(l.rawValue) << 24 | UInt64(vni.rawValue)
    }

    @inline(__always)
    private static func home(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
    }

    @inline(__always)
    func find(_ l: LocatorIndex, _ vni: VNI) -> OuterHeaderTemplate? {
        let key = Self.key(l, vni)
        var slot = Self.home(key, mask)
        while true {
            let k = keys[slot]
            if k == key { return values[slot] }
            if k == .max { return nil }
            slot = (slot &+ 1) & mask
        }
    }

    mutating func insert(_ l: LocatorIndex, _ vni: VNI, _ template: OuterHeaderTemplate) {
        if count >= limit { removeAll() }
        let key = Self.key(l, vni)
        var slot = Self.home(key, mask)
        while keys[slot] != .max && keys[slot] != key { slot = (slot &+ 1) & mask }
        if keys[slot] == .max { count += 1 }
        keys[slot] = key
        (values + slot).initialize(to: template)
    }

    mutating func removeAll() {
        keys.update(repeating: .max, count: mask + 1)
        count = 0
    }
}

/// GRE sequence numbers (RFC 2890 §2.2) by (locator, VNI): one counter per tunnel and key,
/// shared by the fast and slow paths and kept across template rebuilds, so a peer that
/// checks order sees them increase. Open addressing over preallocated storage; when full,
/// every counter restarts (a peer then sees one jump back, as after a restart).
struct SequenceCounters {
    private let mask: Int
    private let limit: Int
    private var count = 0
    private let keys: UnsafeMutablePointer<UInt64>
    private let values: UnsafeMutablePointer<UInt32>

    init(capacity: Int) {
        var size = 8
        while size < 2 * capacity { size <<= 1 }
        mask = size - 1
        limit = capacity
        keys = .allocate(capacity: size)
        keys.initialize(repeating: .max, count: size)
        values = .allocate(capacity: size)
        values.initialize(repeating: 0, count: size)
    }

    func deallocate() {
        keys.deallocate()
        values.deallocate()
    }

    /// The next sequence number for (locator, VNI): 0, 1, 2, … wrapping at 2^32.
    @inline(__always)
    mutating func next(_ l: LocatorIndex, _ vni: VNI) -> UInt32 {
        let key = UInt64(l.rawValue) << 24 | UInt64(vni.rawValue)
        var slot = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
        while keys[slot] != .max && keys[slot] != key { slot = (slot &+ 1) & mask }
        if keys[slot] == .max {
            if count >= limit {
                keys.update(repeating: .max, count: mask + 1)
                values.update(repeating: 0, count: mask + 1)
                count = 0
                return next(l, vni)
            }
            count += 1
            keys[slot] = key
            values[slot] = 0
        }
        let value = values[slot]
        values[slot] = value &+ 1
        return value
    }
}

public enum GatewayError: Error, CustomStringConvertible {
    case tooManyPorts(Int)

    public var description: String {
        switch self {
        case .tooManyPorts(let n):
            "\(n) access ports given; a gateway takes at most \(PortIndex.count)"
        }
    }
}

/// The train `DataPlaneWorker.toTrain` is gathering: `count` frames of one flow to one VTEP,
/// each `segmentLength` bytes but the last, which closes it when shorter.
struct OpenTrain {
    var count = 0
    var locator: LocatorIndex = 0
    var vni = VNI(rawValue: 0)!
    var port: UInt16 = 0
    var segmentLength = 0
    var lastLength = 0
    var closed = false
    var perTrain = 0
    var template: OuterHeaderTemplate?
}

/// Where the last plain VXLAN frame waits in the underlay batch, and its flow.
struct PlainTail {
    var slot = -1
    var locator: LocatorIndex = 0
    var vni = VNI(rawValue: 0)!
    var port: UInt16 = 0
    var length = 0
}
