import Datapath
import Dispatch
import Forwarding
import Foundation
import Glibc
import Packet
import Synchronization
import SystemPackage

/// How the data plane reaches one remote VTEP or multicast group on the underlay: the
/// Ethernet destination of the next hop (the VTEP itself on a shared subnet, else its route's
/// gateway; a group's mapped multicast MAC, RFC 1112 §6.4 / RFC 2464 §7). The control plane
/// resolves it through netlink; until it has, frames to that VTEP take the kernel's UDP path.
public struct NextHop: Hashable, Sendable {
    public var destination: MACAddress

    public init(destination: MACAddress) { self.destination = destination }

    /// The Ethernet address an IP multicast group maps to; nil for a unicast address.
    public static func multicast(_ group: IPAddress) -> NextHop? {
        switch group {
        case .v4(let a) where a.isMulticast:
            return NextHop(
                destination: MACAddress(rawValue: 0x0100_5E00_0000 | UInt64(a.rawValue & 0x7F_FFFF))
            )
        case .v6(let a) where a.isMulticast:
            return NextHop(
                destination: MACAddress(rawValue: 0x3333_0000_0000 | (a.low & 0xFFFF_FFFF)))
        default:
            return nil
        }
    }
}

/// The data plane's bootstrap settings (vtepd's command line).
public struct DataPlaneSettings: Sendable {
    /// The underlay interface: tunnels are sent and multicast groups joined there.
    public var underlay: String
    /// Our VTEP addresses, the outer source of everything we send.
    public var localIPv4: IPv4Address?
    public var localIPv6: IPv6Address?
    public var vxlanPort: UInt16 = UDPHeader.vxlanPort
    /// Outer TTL (hop limit) of unicast tunnels.
    public var unicastTTL: UInt8 = 64
    /// Outer TTL of copies sent to a multicast group; 1, as the kernel's vxlan, keeps them
    /// on the underlay segment unless the operator raises it.
    public var multicastTTL: UInt8 = 1
    public var sourcePorts: SourcePortRange = .rfc7348Default
    /// Frames per receive batch.
    public var batchSize = 64
    /// Kernel receive queue per socket (access ports, underlay UDP): room for a burst while
    /// the one worker serves the other sockets. 4 MiB holds about 1,800 full-size frames.
    public var receiveBuffer = 4 << 20
    /// Receive ring frames of an internal port (a logical router's veth): 512 KiB each, so
    /// the 32 a gateway may have stay within 16 MiB (an access port's ring is as large as
    /// `receiveBuffer`).
    public static let internalPortRingFrames = 256
    /// Kernel receive queue of an internal port: the router hands it super-frames (up to
    /// 64 KB, about 66 KB of queue each) that a ring frame cannot hold, which wait there whole;
    /// 4 MiB took about 60 and dropped the rest of a burst of four TCP streams (the l3
    /// benchmark). 16 MiB holds one per ring frame. A limit, not an allocation: memory is
    /// taken only while frames wait.
    public static let internalPortReceiveBuffer = 16 << 20
    /// Transmit ring frames of every access and internal port; 0: ports send with sendmmsg.
    /// Off: with the ring (256 frames, session 11), TCP toward a host stalled for good in
    /// about one `bench/tcp` run in seven (vtepd-kernel, 4 streams B→A: every connection in
    /// RTO backoff, retransmissions lost again and again, the worker idle), and in none of 20
    /// runs without it; the ring saved 2% of CPU per frame on an idle machine. Not understood
    /// yet (frames the kernel did not take wait in the ring, and nothing passes them).
    public static let transmitRingFrames = 0
    /// Learned MAC entries across every logical switch (a static MAC is always installed).
    public var macTableLimit = MACTable.defaultTotalLimit
    /// How long the worker keeps polling without sleeping after it served a frame, in
    /// microseconds (0: it sleeps in poll(2) as soon as nothing is ready). A reply that comes
    /// back within it is served without a wakeup; the price is that much CPU after each burst.
    public var busyPollMicroseconds = DataPlaneSettings.defaultBusyPollMicroseconds
    public static let defaultBusyPollMicroseconds = 50
    public static let busyPollMicrosecondsRange = 0...10_000
    /// The worker thread's real-time priority (SCHED_FIFO, 1–99), 0 to leave it under the
    /// scheduler it inherited (normally the time-sharing one). The kernel forwards in softirq context, ahead of every task; a
    /// worker under the normal scheduler waits its turn behind whatever else is runnable on its
    /// CPU, for milliseconds on a busy machine (bench/latency: p99 4–5 ms under load at 0,
    /// 0.1–0.2 ms at 1). Not the default: a saturated worker that enters and leaves the
    /// real-time class (below) can land on the CPU its traffic's sender uses, which halved
    /// 64-byte encapsulation in about half the bench/pps runs on a 2-CPU machine.
    /// The lowest real-time priority puts it ahead of ordinary tasks and
    /// behind the kernel's own real-time threads; the kernel's real-time throttling
    /// (kernel.sched_rt_runtime_us) would leave other tasks only 5% of its CPU if it never
    /// slept, so the worker leaves the real-time scheduler once it has been busy 2 ms without
    /// an idle moment and takes it back at the next (`RealtimeBudget`), as the kernel hands
    /// long softirq work to ksoftirqd.
    public var realtimePriority = DataPlaneSettings.defaultRealtimePriority
    public static let defaultRealtimePriority = 0
    public static let realtimePriorityRange = 0...99
    /// How VXLAN to our tunnel addresses is read (`vxlan-receive`).
    public var vxlanReceive = VXLANReceive.socket
    /// How VXLAN super-frames leave (`vxlan-transmit`).
    public var vxlanTransmit = VXLANTransmit.auto
    /// Where UDP GSO trains are handed to the kernel (`vxlan-trains`).
    public var vxlanTrains = VXLANTrains.auto
    /// VXLAN frames of one flow to one VTEP that follow one another leave as one UDP GSO
    /// train, as wireguard-go coalesces its datagrams, where the kernel takes trains from a
    /// packet socket (Linux 6.2). Off: each leaves as its own datagram.
    public var coalesceTrains = true
    /// The TAP device of `VXLANTransmit.tunnelGSO`.
    public static let tunnelGSODevice = "vtepd-gso"
    /// Internal ports (logical routers' veths) that may be added while vtepd runs, beyond
    /// the access ports given at start. Each reserves its per-VLAN binding counters (128 KiB).
    public var internalPortLimit = 32

    public init(underlay: String, localIPv4: IPv4Address?, localIPv6: IPv6Address?) {
        self.underlay = underlay
        self.localIPv4 = localIPv4
        self.localIPv6 = localIPv6
    }
}

/// How VXLAN to our tunnel addresses reaches the worker.
public enum VXLANReceive: String, CaseIterable, Sendable {
    /// Through the UDP sockets on port 4789, after the kernel's IP and UDP input (and the
    /// host firewall's input chain).
    case socket
    /// Unicast VXLAN to a tunnel address from a receive ring on the underlay
    /// (`AccessPort.vxlanReceiver`), taken before the kernel's IP input, where vtepd's netdev
    /// ingress table drops the kernel's copy: the receiving CPU is spared IP routing, the UDP
    /// socket lookup and queueing, and the worker recvmmsg's per-datagram copy and free. The
    /// host firewall's input chain no longer sees those datagrams. Multicast VXLAN and
    /// datagrams to other addresses still come through the sockets.
    case ring
}

/// Where VXLAN's UDP GSO trains (a flow's datagrams back to back, one packet through the
/// kernel) are handed to the kernel.
public enum VXLANTrains: String, CaseIterable, Sendable {
    /// `packet-socket` where the kernel takes UDP GSO from packet sockets (Linux 6.2 or
    /// later), else `udp-socket`.
    case auto
    /// The underlay's packet socket, with a virtio_net_hdr of GSO type UDP_L4: past the
    /// kernel's IP output, source port from the flow hash over the whole source port range
    /// (Linux 6.2 or later).
    case packetSocket = "packet-socket"
    /// A pool of the kernel's UDP sockets with UDP_SEGMENT (Linux 4.18 or later), one per
    /// source port: each train pays the kernel's UDP output (routing, the output firewall),
    /// and a flow's source port is one of the pool's 32 (`UDPTrainSockets`).
    case udpSocket = "udp-socket"

    /// The first kernel whose packet sockets take SKB_GSO_UDP_L4 (virtio_net_hdr GSO type
    /// UDP_L4, Linux commit 860b7f27b8f7).
    public static let packetSocketKernel = (major: 6, minor: 2)

    /// What `setting` comes to on a kernel of `release` (uname -r; nil: unknown, taken as
    /// new enough).
    public static func choose(_ setting: VXLANTrains, kernel release: String?) -> VXLANTrains {
        guard setting == .auto else { return setting }
        return takesPacketSocketTrains(release) ? .packetSocket : .udpSocket
    }

    /// Whether a kernel of `release` ("6.1.0-28-amd64") takes UDP GSO from packet sockets;
    /// true when the release does not parse.
    public static func takesPacketSocketTrains(_ release: String?) -> Bool {
        guard let release else { return true }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return true }
        return (parts[0], parts[1]) >= packetSocketKernel
    }
}

/// How a TCP super-frame from an access port leaves toward a VXLAN tunnel.
public enum VXLANTransmit: String, CaseIterable, Sendable {
    /// `tunnelGSO` where the kernel and the service's sandbox allow it, else `trains`, with
    /// the reason as a notice in the log rather than a warning (an older kernel is no fault).
    case auto
    /// Cut into segments, sent as UDP GSO trains on the underlay's packet socket: one
    /// packet per train as far as a UDP_GRO socket (another vtepd), one datagram per segment
    /// into any other receiver (a kernel VTEP cuts the train and merges it again).
    case trains
    /// Whole, with the inner TCP still to be cut, through a TAP device whose ingress
    /// redirects it out of the underlay (`TunnelGSOPort`, Linux 6.17+): one UDP-tunnel GSO
    /// packet end to end, as between two kernel VTEPs, cut by the NIC or by the kernel at the
    /// underlay's device. Floods to a multicast group, GRE and NVGRE still leave as trains.
    case tunnelGSO = "tunnel-gso"
}

/// One (port, VLAN) binding's traffic, as hardware_vtep's Logical_Binding_Stats counts it:
/// from the local (physical) side into the logical switch, and from the switch to the port.
public struct BindingCounters: Hashable, Sendable {
    public var fromLocalFrames: UInt64 = 0
    public var fromLocalBytes: UInt64 = 0
    public var toLocalFrames: UInt64 = 0
    public var toLocalBytes: UInt64 = 0

    public init() {}
}

/// Counters of the data plane beyond the forwarding engine's (its drops are among the
/// engine's, `DataPlaneWorker.statistics()`).
public struct DataPlaneCounters: Sendable {
    public struct Port: Sendable {
        public var name: String
        public var rxFrames: UInt64
        public var txFrames: UInt64
        public var drops: UInt64
        /// Frames the kernel dropped before we read them: the receive queue was full.
        public var receiveOverruns: UInt64
        /// Bytes of the frames in `rxFrames` and `txFrames` (a super-frame's own length).
        public var rxBytes: UInt64
        public var txBytes: UInt64
    }
    public struct VTEP: Sendable {
        public var locator: Locator
        public var txFrames: UInt64
        public var rxFrames: UInt64
        /// Whether frames to it leave on the fast AF_PACKET path (next hop resolved).
        public var resolved: Bool
        /// Bytes of the inner frames sent and received.
        public var txBytes: UInt64
        public var rxBytes: UInt64
    }
    public var ports: [Port]
    public var vteps: [VTEP]
    /// Frames sent through the kernel's IP output while their next hop was unresolved.
    public var slowPath: UInt64
    /// GRO/TSO super-frames read from access ports.
    public var superFramesIn: UInt64
    /// Segments cut from super-frames toward tunnels.
    public var segmentsOut: UInt64
    /// UDP GSO trains of VXLAN datagrams sent, and read (UDP_GRO: several datagrams in one
    /// read).
    public var trainsOut: UInt64
    /// Of `trainsOut`, those gathered from frames that came one by one
    /// (`DataPlaneSettings.coalesceTrains`).
    public var trainsCoalesced: UInt64
    /// VXLAN packets around whole TCP super-frames written to the kernel
    /// (`VXLANTransmit.tunnelGSO`), and those the kernel refused (sent as trains instead).
    public var tunnelGSOOut: UInt64
    public var tunnelGSORefused: UInt64
    public var trainsIn: UInt64
    /// Super-frames merged from tunnel segments and written to access ports, and the
    /// segments they held.
    public var coalescedFramesOut: UInt64
    public var coalescedSegments: UInt64
    /// Checksums left to offload that the worker finished before forwarding.
    public var checksumsCompleted: UInt64
    /// Receive or send calls that failed with an unexpected error.
    public var ioErrors: UInt64
    /// The last of them; nil while there was none.
    public var lastIOError: DataPlaneIOError?
}

/// A receive or send call of the worker that failed: which kind, and its errno. The worker
/// records it in place (no allocation, no logging per packet); the control side reads it
/// with the counters and logs it.
public struct DataPlaneIOError: Hashable, Sendable, CustomStringConvertible {
    public enum Operation: UInt8, Sendable, CustomStringConvertible {
        case accessReceive, accessSend, tunnelReceive, tunnelSend, underlaySend

        public var description: String {
            switch self {
            case .accessReceive: "receive on an access port"
            case .accessSend: "send on an access port"
            case .tunnelReceive: "receive on a tunnel socket"
            case .tunnelSend: "send on a tunnel socket"
            case .underlaySend: "send on the underlay"
            }
        }
    }
    public var operation: Operation
    public var errno: Int32

    public init(operation: Operation, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// "send on the underlay: No buffer space available (errno 105)".
    public var description: String {
        "\(operation): \(Errno(rawValue: errno)) (errno \(errno))"
    }
}

/// The gateway's data plane: one worker thread that owns the access ports, the underlay
/// sockets and the `ForwardingEngine`, and runs batches through them.
///
/// The control plane talks to it only through commands that the worker takes between batches
/// (`apply`, `setNextHops`, `inspect`), so the worker never takes a lock per packet and the
/// engine is never touched by two threads.
public final class DataPlane: @unchecked Sendable {
    public let settings: DataPlaneSettings
    private let mailbox = Mutex<[Command]>([])
    private let pending = Atomic<Bool>(false)
    /// A pipe: the worker polls its read end, `post` writes a byte to the other.
    private let wakeup: (read: Int32, write: Int32)
    /// The last configuration handed over, so the next keeps its indices. Control side only.
    private let lastConfiguration = Mutex<ForwardingConfiguration?>(nil)
    private var thread: Thread?
    private let worker: Worker
    /// The worker on the kernel's sockets.
    public typealias Worker = DataPlaneWorker<KernelIO>

    /// What the data plane changed on the host when it opened its ports (LRO turned off),
    /// for the log.
    public var startNotes: [String] { worker.startNotes }
    /// What the settings asked for and the host could not give, with what is done instead.
    public var startWarnings: [String] { worker.startWarnings }

    typealias Command = Worker.Command

    /// Opens every socket (so a bad interface name fails here, with its reason) but does not
    /// start forwarding; `start()` does.
    public init(settings: DataPlaneSettings, ports: [String]) throws {
        self.settings = settings
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw SystemError(call: "pipe", errno: errno, subject: .other("data plane wakeup"))
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeup = (fds[0], fds[1])
        do {
            worker = try Worker(
                settings: settings, io: KernelIO.open(settings: settings, ports: ports),
                wakeup: fds[0])
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
    }

    deinit {
        close(wakeup.read)
        close(wakeup.write)
    }

    /// Starts the worker thread, named `vtepd-datapath` (as `top -H` and `ps -L` show it) at
    /// the scheduling `settings.realtimePriority` asks for; returns what it runs at, for the
    /// log (a priority the kernel refuses leaves it at the normal scheduler: `refused`).
    @discardableResult
    public func start() -> (note: String, refused: Bool) {
        let worker = self.worker
        let priority = settings.realtimePriority
        let scheduled = Mutex<(note: String, refused: Bool)>(("", false))
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            System.nameCurrentThread("vtepd-datapath")
            var outcome: (note: String, refused: Bool)
            do {
                // At 0 the thread keeps what it inherited: the normal scheduler, or the policy
                // the service was started with (systemd's CPUSchedulingPolicy=, chrt).
                if priority == 0 {
                    let policy = System.currentThreadScheduling().policy
                    outcome.note =
                        policy == SCHED_OTHER
                        ? "the data-plane worker runs under the normal scheduler (datapath-priority 0)"
                        : "the data-plane worker keeps the scheduling policy vtepd was started with,"
                            + " \(System.schedulingPolicyName(policy)) (datapath-priority 0)"
                } else {
                    try System.setCurrentThreadRealtime(priority: priority)
                    outcome.note =
                        "the data-plane worker runs at real-time priority \(priority) (SCHED_FIFO)"
                }
                outcome.refused = false
            } catch {
                outcome.note =
                    "the data-plane worker could not get real-time priority \(priority) (\(error));"
                    + " it runs under the normal scheduler, with longer latency on a busy machine"
                outcome.refused = true
            }
            scheduled.withLock { $0 = outcome }
            ready.signal()
            worker.run(realtimePriority: outcome.refused ? 0 : priority) { self.takeCommands() }
        }
        thread.start()
        self.thread = thread
        ready.wait()
        return scheduled.withLock { $0 }
    }

    /// Leaves the multicast groups and stops the worker; returns when it has.
    public func stop() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            post(
                .run { worker in
                    worker.leaveAllGroups()
                    done.resume()
                })
            post(.stop)
        }
    }

    /// Builds the next configuration with `build`, which gets the one handed over last (so the
    /// new one keeps its indices), and hands it with the static MACs to the worker. Throws,
    /// and changes nothing, when `build` does.
    public func apply(
        _ build: (ForwardingConfiguration?) throws -> ForwardingConfiguration,
        statics: [StaticRemoteMAC]
    ) throws -> ForwardingConfiguration {
        try lastConfiguration.withLock { last in
            let configuration = try build(last)
            last = configuration
            post(.apply(configuration, statics))
            return configuration
        }
    }

    /// Opens `interface` as an access port (an internal port: a logical router's veth) and
    /// hands it to the worker, which forwards on it from its next batch; it carries the
    /// logical switch the configuration binds it to. Throws, changing nothing, when the
    /// interface cannot be opened or the worker has no room for it.
    public func addPort(_ interface: String) async throws {
        _ = try AccessPort.disableLRO(on: interface)
        let port = Carried(
            try AccessPort(
                interface: interface, promiscuous: true, qdiscBypass: true,
                receiveBuffer: DataPlaneSettings.internalPortReceiveBuffer, vnetHeader: true,
                ringFrames: DataPlaneSettings.internalPortRingFrames,
                transmitRingFrames: DataPlaneSettings.transmitRingFrames))
        let refused: Worker.PortChangeError? = await inspect { worker in
            do throws(Worker.PortChangeError) {
                try worker.addPort(port.value)
                return nil
            } catch { return error }
        }
        if let refused { throw refused }
    }

    /// Takes the port called `interface` away from the worker and closes it; whether there
    /// was one.
    @discardableResult
    public func removePort(_ interface: String) async -> Bool {
        // The port's socket is closed as the worker lets it go.
        await inspect { worker in worker.removePort(named: interface) != nil }
    }

    /// The names of the worker's ports, given and added.
    public func portNames() async -> [String] {
        await inspect { worker in worker.portNames }
    }

    /// The next hops the control plane resolved; locators missing from `hops` take the slow
    /// path until they appear.
    public func setNextHops(_ hops: [Locator: NextHop]) {
        post(.nextHops(hops))
    }

    /// BFD sessions toward exactly these remote VTEPs (Tunnel `bfd_params` by VTEP).
    public func configureBFD(_ wanted: [Locator: BFDParameters]) {
        post(.run { $0.configureBFD(wanted) })
    }

    /// Runs `body` on the worker between batches and returns its result: how the control
    /// plane reads the MAC table and the counters.
    public func inspect<T: Sendable>(_ body: @escaping @Sendable (Worker) -> T) async -> T {
        await withCheckedContinuation { (answer: CheckedContinuation<T, Never>) in
            post(.run { worker in answer.resume(returning: body(worker)) })
        }
    }

    private func post(_ command: Command) {
        mailbox.withLock { $0.append(command) }
        pending.store(true, ordering: .releasing)
        var one: UInt8 = 1
        _ = write(wakeup.write, &one, 1)
    }

    /// Called by the worker between batches; cheap when nothing is pending.
    private func takeCommands() -> [Command] {
        guard pending.load(ordering: .acquiring) else { return [] }
        pending.store(false, ordering: .relaxed)
        var drained = [UInt8](repeating: 0, count: 64)
        while read(wakeup.read, &drained, 64) == 64 {}
        return mailbox.withLock { commands in
            defer { commands.removeAll(keepingCapacity: true) }
            return commands
        }
    }
}

/// A value handed to the worker thread through a command: it is used there only, never again
/// on the side that made it.
private struct Carried<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
