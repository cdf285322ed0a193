import Datapath
import Forwarding
import Glibc
import Netlink
import Packet

/// The sockets a data plane worker drives, as types: the kernel's (`KernelIO`) in vtepd, the
/// in-memory twin (`MemoryIO`) in unit tests. The worker is generic over it, so the kernel's
/// build is specialised and calls each socket directly (no existential, no witness table).
public protocol DataPlaneIO {
    associatedtype Access: AccessPortIO
    associatedtype Underlay: UnderlayIO
    associatedtype VXLAN: MulticastTunnelSocketIO
    associatedtype Raw: TunnelSocketIO
    associatedtype TunnelGSO: TunnelGSOIO
}

/// One worker's sockets.
public struct DataPlanePorts<IO: DataPlaneIO> {
    /// Access ports, in the order vtepd was given them.
    public var access: [IO.Access]
    public var underlay: IO.Underlay
    /// VXLAN in (UDP port 4789, with UDP_GRO) per family; nil without a local address of
    /// the family.
    public var vxlan4: IO.VXLAN?
    public var vxlan6: IO.VXLAN?
    /// Unicast VXLAN to our addresses as whole frames from the underlay's receive ring
    /// (`VXLANReceive.ring`); nil when it comes only through `vxlan4` and `vxlan6`.
    public var vxlanRing: IO.Access?
    /// GRE and NVGRE in, and their slow path out.
    public var gre4: IO.Raw?
    public var gre6: IO.Raw?
    /// VXLAN's slow path out: whole UDP datagrams, so the source port is the flow hash. Opened
    /// only while some VTEP's next hop is unresolved (`openUDP`): a raw UDP socket is handed a
    /// copy of every UDP packet the host receives (its filter drops them, after the copy),
    /// which costs the VXLAN receive path about an eighth of its rate while it is open.
    public var openUDP: (_ ipv6: Bool) -> IO.Raw?
    /// Where TCP super-frames toward VXLAN are written whole
    /// (`VXLANTransmit.tunnelGSO`); nil when they leave as UDP GSO trains.
    public var tunnelGSO: IO.TunnelGSO?
    /// What opening the ports changed on the host (LRO turned off), for the log.
    public var notes: [String]
    /// What the settings asked for and could not have, for the log as warnings.
    public var warnings: [String] = []

    public init(
        access: [IO.Access], underlay: IO.Underlay, vxlan4: IO.VXLAN?, vxlan6: IO.VXLAN?,
        gre4: IO.Raw?, gre6: IO.Raw?, openUDP: @escaping (_ ipv6: Bool) -> IO.Raw?,
        notes: [String] = [], vxlanRing: IO.Access? = nil, tunnelGSO: IO.TunnelGSO? = nil
    ) {
        self.tunnelGSO = tunnelGSO
        self.access = access
        self.underlay = underlay
        self.vxlan4 = vxlan4
        self.vxlan6 = vxlan6
        self.vxlanRing = vxlanRing
        self.gre4 = gre4
        self.gre6 = gre6
        self.openUDP = openUDP
        self.notes = notes
    }
}

/// The kernel's sockets: AF_PACKET access ports and underlay, UDP and raw IP tunnel sockets.
public enum KernelIO: DataPlaneIO {
    public typealias Access = AccessPort
    public typealias Underlay = UnderlayPort
    public typealias VXLAN = UDPTunnelSocket
    public typealias Raw = RawTunnelSocket
    public typealias TunnelGSO = TunnelGSOPort

    /// Opens every socket the settings call for; a bad interface name fails here, with its
    /// reason. LRO is turned off on each access port first (its frames cannot be forwarded,
    /// as the kernel's bridge knows), and said so in `notes`.
    public static func open(settings: DataPlaneSettings, ports names: [String]) throws
        -> DataPlanePorts<KernelIO>
    {
        guard names.count <= PortIndex.count else {
            throw GatewayError.tooManyPorts(names.count)
        }
        var notes: [String] = []
        for name in names where try AccessPort.disableLRO(on: name) {
            notes.append(
                "turned large receive offload (LRO) off on access port \(name): LRO frames cannot be forwarded"
            )
        }
        // Plain frames bypass the qdisc; super-frames take the queueing path (AccessPort).
        // Frames come in through a receive ring as large as the receive buffer.
        let access = try names.map {
            try AccessPort(
                interface: $0, promiscuous: true, qdiscBypass: true,
                receiveBuffer: settings.receiveBuffer, vnetHeader: true,
                ringFrames: settings.receiveBuffer / AccessPort.ringFrameSize,
                transmitRingFrames: DataPlaneSettings.transmitRingFrames)
        }
        let any4 = IPAddress.v4(IPv4Address(rawValue: 0))
        let any6 = IPAddress.v6(IPv6Address(high: 0, low: 0))
        let v4 = settings.localIPv4 != nil
        let v6 = settings.localIPv6 != nil
        // UDP_GRO with the underlay's VXLAN ring too: what is longer than a ring frame (a
        // GSO super-packet a veth neighbour hands over whole, a GRO train) comes through the
        // socket, and without UDP_GRO the kernel would cut a super-packet into datagrams read
        // one by one (vtepd ↔ vtepd TCP fell from 0.53–0.62× to 0.28–0.34× the kernel's). The
        // price: segments of one flow that GRO merged only in part take two paths and may
        // reach the worker out of order (docs/admin-guide.md, `vxlan-receive`).
        var warnings: [String] = []
        let device = DataPlaneSettings.tunnelGSODevice
        let transmit = VXLANTransmit.choose(
            settings.vxlanTransmit, device: device, underlay: settings.underlay,
            open: { () throws(SystemError) in try TunnelGSOPort(name: device) },
            redirect: { port in
                try TrafficControl.redirectIngress(
                    from: port.interfaceIndex, to: Int32(if_nametoindex(settings.underlay)),
                    transport: NetlinkSocket())
            })
        let tunnelGSO = transmit.port
        if let note = transmit.note { notes.append(note) }
        if let warning = transmit.warning { warnings.append(warning) }
        let trains = VXLANTrains.choose(settings.vxlanTrains, kernel: System.kernelRelease)
        let kernel = System.kernelRelease ?? "unknown"
        var udpTrains: UDPTrainSockets?
        var packetTrains = true
        switch trains {
        case .auto, .packetSocket:
            if !VXLANTrains.takesPacketSocketTrains(System.kernelRelease) {
                warnings.append(
                    "vxlan-trains packet-socket: this kernel (\(kernel)) may refuse UDP GSO from packet sockets (Linux 6.2 or later); if it refuses the first train, VXLAN datagrams leave one by one"
                )
            }
        case .udpSocket:
            let why =
                settings.vxlanTrains == .auto
                ? "vxlan-trains auto: this kernel (\(kernel)) takes no UDP GSO from packet sockets (Linux 6.2 or later)"
                : "vxlan-trains udp-socket"
            do {
                let pool = try UDPTrainSockets(
                    localIPv4: settings.localIPv4, localIPv6: settings.localIPv6,
                    range: settings.sourcePorts)
                udpTrains = pool
                notes.append(
                    "\(why): UDP GSO trains leave through the kernel's UDP sockets (UDP_SEGMENT), VXLAN source ports \(pool.ports.count) of \(settings.sourcePorts)"
                )
            } catch {
                packetTrains = false
                let refusal = "\(why), but UDP sockets for trains cannot be opened (\(error)): VXLAN datagrams leave one by one"
                if settings.vxlanTrains == .auto {
                    notes.append(refusal)
                } else {
                    warnings.append(refusal)
                }
            }
        }
        var ports = DataPlanePorts<KernelIO>(
            access: access,
            underlay: try UnderlayPort(
                interface: settings.underlay, udpTrains: udpTrains, packetTrains: packetTrains),
            vxlan4: v4
                ? try UDPTunnelSocket(
                    address: any4, port: settings.vxlanPort,
                    receiveBuffer: settings.receiveBuffer, gro: true) : nil,
            vxlan6: v6
                ? try UDPTunnelSocket(
                    address: any6, port: settings.vxlanPort,
                    receiveBuffer: settings.receiveBuffer, gro: true) : nil,
            gre4: v4
                ? try RawTunnelSocket(address: any4, receiveBuffer: settings.receiveBuffer) : nil,
            gre6: v6
                ? try RawTunnelSocket(address: any6, receiveBuffer: settings.receiveBuffer) : nil,
            // Bound to the wildcard, as the UDP socket was: the kernel picks the source
            // address by route. Opened when needed; a failure there counts as an I/O error.
            openUDP: { ipv6 in
                (ipv6 ? v6 : v4)
                    ? try? RawTunnelSocket(address: ipv6 ? any6 : any4, carrying: .udp) : nil
            },
            notes: notes,
            vxlanRing: settings.vxlanReceive == .ring
                ? try AccessPort.vxlanReceiver(
                    interface: settings.underlay, localIPv4: settings.localIPv4,
                    localIPv6: settings.localIPv6, port: settings.vxlanPort,
                    receiveBuffer: settings.receiveBuffer) : nil,
            tunnelGSO: tunnelGSO)
        ports.warnings = warnings
        return ports
    }
}

extension VXLANTransmit {
    /// What `vxlan-transmit` comes to at start: the TAP (`open`), when it opened and its
    /// redirect to the underlay was set (`redirect`), else nil and UDP GSO trains; and what to
    /// log. Whole packets are a notice; a refusal is a notice with `auto` (an older kernel or
    /// a sandbox without /dev/net/tun is no fault) and a warning with `tunnel-gso` named;
    /// `trains` opens nothing. Generic over the port so tests can refuse at each step.
    static func choose<Port>(
        _ mode: VXLANTransmit, device: String, underlay: String,
        open: () throws(SystemError) -> Port, redirect: (Port) throws -> Void
    ) -> (port: Port?, note: String?, warning: String?) {
        guard mode != .trains else { return (nil, nil, nil) }
        let refusal: String
        do {
            let port = try open()
            do {
                try redirect(port)
                return (
                    port,
                    "vxlan-transmit \(mode.rawValue): TCP super-frames toward VXLAN are written whole to \(device) (UDP-tunnel GSO), which sends them out of \(underlay) as they are (traffic control: ingress redirect)",
                    nil
                )
            } catch {
                refusal =
                    "the redirect from \(device) to \(underlay) was refused (\(error); the kernel needs the u32 classifier and the mirred action)"
            }
        } catch {
            refusal =
                switch error.errno {
                case EOPNOTSUPP:
                    "this kernel has no UDP-tunnel GSO for TAP devices (Linux 6.17 or later)"
                case ENOENT, ENXIO, ENODEV:
                    "/dev/net/tun cannot be opened (missing, or hidden by the service's sandbox: PrivateDevices=yes without BindPaths=/dev/net/tun)"
                default: "\(error)"
                }
        }
        // Asked for by name, its absence is a fault; chosen by `auto`, a fact.
        return mode == .tunnelGSO
            ? (
                nil, nil,
                "vxlan-transmit tunnel-gso is off: \(refusal); TCP super-frames leave as UDP GSO trains"
            )
            : (
                nil,
                "vxlan-transmit auto: TCP super-frames toward VXLAN leave as UDP GSO trains, not whole: \(refusal)",
                nil
            )
    }
}
