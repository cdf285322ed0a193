import Packet

/// What the data plane's worker needs of a socket it reads batches from: an access port or a
/// tunnel socket. `AccessPort`, `UDPTunnelSocket` and `RawTunnelSocket` are the kernel's;
/// the `DataPlane` module's in-memory ports are the twin the worker's unit tests drive,
/// frame by frame, without namespaces (as SwiftNIO's `EmbeddedChannel` is to a socket).
public protocol FrameReceiving: AnyObject {
    /// Fills slots `0 ..< n` of `batch` and returns `n`, 0 when nothing is queued.
    func receive(into batch: PacketBatch) throws(SystemError) -> Int
    /// Frames lost before they were read (a full receive queue), since the port opened.
    var receiveDrops: UInt64 { get }
    /// The socket to poll for readability; -1 for a port that is not a socket.
    var descriptor: Int32 { get }
}

/// What the worker needs of a socket it sends batches through.
public protocol FrameSending: AnyObject {
    /// Sends slots `0 ..< count` in order (see `PacketBatch.send` for what the result means).
    func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult
}

/// An access port: frames in and out, with a virtio_net_hdr in `PacketBatch.offload`.
public protocol AccessPortIO: FrameReceiving, FrameSending {
    var interfaceName: String { get }
    /// The largest IP packet the port carries; read on a configuration change, never per frame.
    var mtu: Int { get throws(SystemError) }
    /// While a capture runs on the interface, send so that packet taps see every frame.
    func setTapped(_ tapped: Bool) throws(SystemError)
    /// Hands the kernel frames an earlier `send` left waiting (a transmit ring the kernel
    /// could not empty); called when the worker is idle, so none waits for the next frame.
    func sendWaiting()
    /// Whether a frame waits in the port's receive ring, read from the ring's shared memory
    /// without a system call; false for a port without a ring (only poll(2) can tell).
    var hasRingFrame: Bool { get }
}

/// The underlay's transmit side: complete Ethernet frames, and UDP GSO trains.
public protocol UnderlayIO: FrameSending {
    var interfaceIndex: Int32 { get }
    var mtu: Int { get throws(SystemError) }
    var hardwareAddress: MACAddress { get throws(SystemError) }
    /// False once trains were refused; the worker then sends datagrams one by one.
    var supportsTrains: Bool { get }
    /// The UDP source ports VXLAN datagrams must leave from, a flow's picked by its hash
    /// (trains through a pool of UDP sockets, `UDPTrainSockets`); empty when any port of the
    /// operator's range will do.
    var trainSourcePorts: UnsafeBufferPointer<UInt16> { get }
    var interfaceName: String { get }
    /// While a capture runs on the interface, send so that packet taps see every frame.
    func setTapped(_ tapped: Bool) throws(SystemError)
    func sendTrains(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult
}

/// A tunnel socket: datagrams in with their sender (`PacketBatch.source`), out to
/// `PacketBatch.setDestination`.
public protocol TunnelSocketIO: FrameReceiving, FrameSending {}

/// A VXLAN socket, which also joins the multicast groups of flooded switches.
public protocol MulticastTunnelSocketIO: TunnelSocketIO {
    func join(group: IPAddress, interfaceIndex: Int32) throws(SystemError)
    func leave(group: IPAddress, interfaceIndex: Int32) throws(SystemError)
}

/// Where VXLAN super-packets are handed to the kernel whole (`TunnelGSOPort`): each
/// written with its 24-byte virtio_net_hdr and the packet as the underlay sends it.
public protocol TunnelGSOIO: AnyObject {
    var interfaceName: String { get }
    /// Writes `header` and then the inner frame (`first`, `second`); false when it would
    /// block.
    func send(
        header: UnsafeRawBufferPointer, _ first: UnsafeRawBufferPointer,
        _ second: UnsafeRawBufferPointer
    ) throws(SystemError) -> Bool
}

extension TunnelGSOPort: TunnelGSOIO {}

extension AccessPort: AccessPortIO {}
extension UnderlayPort: UnderlayIO {}
extension UDPTunnelSocket: MulticastTunnelSocketIO {}
extension RawTunnelSocket: TunnelSocketIO {}
