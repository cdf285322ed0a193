import CLinuxNet
import Glibc
import Packet

/// The underlay's transmit path: an AF_PACKET socket on the underlay interface that sends
/// complete Ethernet frames, outer headers and all (`OuterHeaderTemplate` with its
/// Ethernet header: next hop's MAC, `hardwareAddress`), so the kernel's per-packet IP and
/// UDP output path is skipped. Per ../shared/reference/README.md that path caps a
/// userspace encapsulator at ~116k pps on this machine kind, and this one reaches ~320k.
///
/// - Transmit only: the socket is opened and bound with protocol 0, so the kernel
///   registers no packet handler for it and it never receives a frame; decapsulation
///   reads the `UDPTunnelSocket` instead.
/// - PACKET_QDISC_BYPASS hands frames straight to the driver: no queueing discipline (no
///   shaping), and taps such as tcpdump on this host do not see them. ENOBUFS from a full
///   device queue ends a batch like "would block" (`PacketBatch.send`).
/// - The kernel refuses a frame longer than the interface's MTU plus its Ethernet header
///   (EMSGSIZE, counted in `SendResult.tooBig`); the data plane drops frames over `mtu`
///   before encapsulating, and counts them.
/// - UDP GSO trains (`sendTrains`) go through a second socket with PACKET_VNET_HDR and
///   without the bypass: the direct path would drop a train the device cannot segment
///   itself (net/core/dev.c `dev_direct_xmit`), while the queueing path segments it in
///   software. SKB_GSO_UDP_L4 from a packet socket needs Linux 6.2; where the kernel refuses
///   it, `supportsTrains` turns false and the caller sends datagrams one by one. Given
///   `udpTrains` (an older kernel), trains go through the kernel's UDP sockets instead
///   (`UDPTrainSockets`), and every VXLAN datagram's source port is one of that pool's
///   (`trainSourcePorts`).
/// - The frame's EtherType tells the kernel its protocol (net/packet `packet_parse_headers`
///   for SOCK_RAW with protocol 0), so offloads and drivers see a normal IP frame.
public final class UnderlayPort {
    public let interfaceName: String
    public let interfaceIndex: Int32
    /// The socket, owned by this port and closed when it goes. Only ever written to: wait
    /// for writability on it (epoll) after a batch ended early.
    public let descriptor: Int32
    /// The socket for GSO trains (vnet header, no bypass).
    let trainDescriptor: Int32
    /// False once the kernel refused a train (EINVAL: no SKB_GSO_UDP_L4 on packet sockets;
    /// through UDP sockets, EIO: no transmit checksum offload on the device).
    public private(set) var supportsTrains = true
    /// Where trains go instead of the packet socket, if anywhere (owned here; its `table`
    /// is what a send reads).
    public let udpTrains: UDPTrainSockets?
    private let udpTrainTable: UDPTrainSockets.Table?
    /// The source ports VXLAN datagrams must leave from (`udpTrains`'s), empty when any
    /// port of the operator's range will do.
    public let trainSourcePorts: UnsafeBufferPointer<UInt16>

    /// Opens the transmit socket on `interface`, which must be an Ethernet interface; trains
    /// go through `udpTrains` when given, else through a packet socket unless `packetTrains`
    /// is false (a kernel known to refuse them: `supportsTrains` starts false).
    public init(
        interface: String, udpTrains: UDPTrainSockets? = nil, packetTrains: Bool = true
    ) throws(SystemError) {
        let subject = SystemError.Subject.interface(interface)
        let index = try System.interfaceIndex(interface)
        let descriptor = try System.packetTransmitSocket(
            index: index, vnetHeader: false, qdiscBypass: true, subject: subject)
        let trainDescriptor: Int32
        do {
            _ = try Self.hardwareAddress(descriptor, interface)
            trainDescriptor = try System.packetTransmitSocket(
                index: index, vnetHeader: true, qdiscBypass: false, subject: subject)
        } catch {
            close(descriptor)
            throw error
        }
        self.interfaceName = interface
        self.interfaceIndex = index
        self.descriptor = descriptor
        self.trainDescriptor = trainDescriptor
        self.udpTrains = udpTrains
        udpTrainTable = udpTrains?.table
        supportsTrains = udpTrains != nil || packetTrains
        trainSourcePorts = udpTrains?.portTable ?? UnsafeBufferPointer(start: nil, count: 0)
    }

    deinit {
        close(descriptor)
        close(trainDescriptor)
    }

    /// Sends the GSO trains in slots `0 ..< count`, each with its `offload` header
    /// (`OuterHeaderTemplate.stampTrain`), in order. An EINVAL (a kernel without UDP GSO on
    /// packet sockets) clears `supportsTrains` and is thrown.
    public func sendTrains(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        do {
            if let udpTrainTable {
                return try UDPTrainSockets.send(batch, count: count, through: udpTrainTable)
            }
            return try batch.send(on: trainDescriptor, count: count, names: false, vnetHeader: true)
        } catch {
            if error.errno == EINVAL || (udpTrainTable != nil && error.errno == EIO) {
                supportsTrains = false
            }
            throw error
        }
    }

    /// The interface's current MTU: the largest IP packet (outer header included) it
    /// sends. Read it when building a forwarding snapshot, not per packet; it can change.
    public var mtu: Int {
        get throws(SystemError) {
            Int(
                try System.callBlocking("SIOCGIFMTU", subject: .interface(interfaceName)) {
                    clinuxnet_interface_mtu(descriptor, interfaceName)
                })
        }
    }

    /// The interface's current Ethernet address: the source of every outer Ethernet header.
    public var hardwareAddress: MACAddress {
        get throws(SystemError) { try Self.hardwareAddress(descriptor, interfaceName) }
    }

    /// As `AccessPort.setTapped`: frames leave through the qdisc while a capture runs.
    public func setTapped(_ tapped: Bool) throws(SystemError) {
        try System.setOption(
            descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_qdisc_bypass,
            value: Int32(tapped ? 0 : 1), name: "PACKET_QDISC_BYPASS",
            subject: .interface(interfaceName))
    }

    /// Sends the complete Ethernet frames in slots `0 ..< count` out of the interface, in
    /// order, with sendmmsg (`PacketBatch.send`, the same path as `AccessPort.send`).
    public func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        try batch.send(on: descriptor, count: count, names: false)
    }

    /// SIOCGIFHWADDR; an interface that is not Ethernet (tun, WireGuard, GRE devices) is
    /// refused with EAFNOSUPPORT: this port writes Ethernet headers.
    private static func hardwareAddress(_ descriptor: Int32, _ interface: String)
        throws(SystemError) -> MACAddress
    {
        var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        let type = try System.callBlocking("SIOCGIFHWADDR", subject: .interface(interface)) {
            withUnsafeMutableBytes(of: &bytes) {
                clinuxnet_interface_hardware_address(
                    descriptor, interface, $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard type == clinuxnet_arphrd_ether else {
            throw SystemError(
                call: "SIOCGIFHWADDR", errno: EAFNOSUPPORT, subject: .interface(interface))
        }
        return MACAddress(bytes.0, bytes.1, bytes.2, bytes.3, bytes.4, bytes.5)
    }
}
