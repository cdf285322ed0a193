import Datapath
import Packet

/// The in-memory twin of the kernel's sockets, for driving a `DataPlaneWorker` frame by frame
/// in unit tests without namespaces: a test queues frames on a port (`inject`), runs the
/// worker once (`DataPlaneWorker.serviceAll(now:)`), and reads what each port sent
/// (`takeSent`). Ports behave as the kernel's do where the worker can tell: a receive fills
/// at most a batch and reports frames longer than a buffer as truncated; a send takes at
/// most `sendQueueRoom` frames, as a full queue would, and refuses a datagram longer than
/// `pathMTU` as too big.
public enum MemoryIO: DataPlaneIO {
    public typealias Access = MemoryPort
    public typealias Underlay = MemoryUnderlay
    public typealias VXLAN = MemoryPort
    public typealias Raw = MemoryPort
    public typealias TunnelGSO = MemoryTunnelGSO
}

/// One frame or datagram as a port saw it.
public struct MemoryFrame: Hashable, Sendable {
    public var bytes: [UInt8]
    /// The virtio_net_hdr it came or went with (`.plain` for none); for a tunnel socket with
    /// UDP_GRO, `gsoSize` is the size of each datagram of a coalesced read.
    public var offload: VirtioNetHeader
    /// The sender (received on a tunnel socket) or the destination (sent on one).
    public var peer: UDPEndpoint?

    public init(_ bytes: [UInt8], offload: VirtioNetHeader = .plain, peer: UDPEndpoint? = nil) {
        self.bytes = bytes
        self.offload = offload
        self.peer = peer
    }
}

/// An access port or a tunnel socket in memory.
public final class MemoryPort: AccessPortIO, MulticastTunnelSocketIO {
    public let interfaceName: String
    public var mtu: Int { get throws(SystemError) { configuredMTU } }
    public var configuredMTU: Int
    /// Frames queued for the worker to read, oldest first.
    public private(set) var inbox: [MemoryFrame] = []
    /// Frames the worker sent, oldest first.
    public private(set) var sent: [MemoryFrame] = []
    /// How many more frames a send accepts before the queue is full; nil without limit.
    public var sendQueueRoom: Int?
    /// Datagrams longer than this are refused as too big (EMSGSIZE); nil without limit.
    public var pathMTU: Int?
    /// The groups joined, by interface index.
    public private(set) var groups: Set<IPAddress> = []
    /// What the kernel would report as lost to a full receive queue.
    public var receiveDrops: UInt64 = 0
    /// The errno the next send fails with, as a whole call (then cleared); nil to succeed.
    public var failNextSend: Int32?
    public var descriptor: Int32 { -1 }

    public init(name: String, mtu: Int = 1500) {
        interfaceName = name
        configuredMTU = mtu
    }

    /// Whether a capture asked for every sent frame to reach packet taps.
    public private(set) var tapped = false

    public func setTapped(_ tapped: Bool) throws(SystemError) { self.tapped = tapped }

    /// Nothing ever waits: `send` takes every frame at once.
    public func sendWaiting() {}

    /// Frames are queued in memory, as in a ring.
    public var hasRingFrame: Bool { !inbox.isEmpty }

    public func inject(_ frame: MemoryFrame) { inbox.append(frame) }

    public func inject(_ bytes: [UInt8], from peer: UDPEndpoint? = nil) {
        inbox.append(MemoryFrame(bytes, peer: peer))
    }

    /// The frames sent since the last call.
    public func takeSent() -> [MemoryFrame] {
        defer { sent = [] }
        return sent
    }

    public func receive(into batch: PacketBatch) throws(SystemError) -> Int {
        let count = min(inbox.count, batch.capacity)
        for slot in 0..<count {
            let frame = inbox[slot]
            frame.bytes.withUnsafeBytes {
                batch.placeReceived($0, into: slot, source: frame.peer, offload: frame.offload)
            }
        }
        inbox.removeFirst(count)
        return count
    }

    public func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        if let errno = failNextSend {
            failNextSend = nil
            throw SystemError(call: "sendmmsg", errno: errno, subject: .interface(interfaceName))
        }
        var result = SendResult()
        for slot in 0..<count {
            if let room = sendQueueRoom {
                if room == 0 { break }
                sendQueueRoom = room - 1
            }
            result.processed += 1
            let frame = batch.frame(slot)
            if let pathMTU, frame.count > pathMTU {
                result.tooBig += 1
                continue
            }
            sent.append(
                MemoryFrame(
                    Array(frame), offload: batch.offload(slot), peer: batch.destination(slot)))
            batch.setOffload(.plain, for: slot)
        }
        return result
    }

    public func join(group: IPAddress, interfaceIndex: Int32) throws(SystemError) {
        groups.insert(group)
    }

    public func leave(group: IPAddress, interfaceIndex: Int32) throws(SystemError) {
        groups.remove(group)
    }
}

/// The underlay's transmit side in memory: Ethernet frames, and UDP GSO trains kept whole
/// with their header (a test cuts them as the kernel would).
public final class MemoryUnderlay: UnderlayIO {
    public let interfaceIndex: Int32 = 1
    public var configuredMTU: Int
    public let address: MACAddress
    public var supportsTrains: Bool
    /// As a pool of UDP train sockets would have it; empty by default.
    public var trainSourcePorts = UnsafeBufferPointer<UInt16>(start: nil, count: 0)
    public private(set) var sent: [MemoryFrame] = []
    public private(set) var trains: [MemoryFrame] = []
    /// Frames and trains together, in the order they were sent.
    public private(set) var log: [MemoryFrame] = []

    public let interfaceName = "underlay0"
    public private(set) var tapped = false

    public func setTapped(_ tapped: Bool) throws(SystemError) { self.tapped = tapped }

    public init(mtu: Int = 1500, address: MACAddress, supportsTrains: Bool = true) {
        configuredMTU = mtu
        self.address = address
        self.supportsTrains = supportsTrains
    }

    public var mtu: Int { get throws(SystemError) { configuredMTU } }
    public var hardwareAddress: MACAddress { get throws(SystemError) { address } }

    public func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        for slot in 0..<count {
            sent.append(MemoryFrame(Array(batch.frame(slot))))
            log.append(sent[sent.count - 1])
        }
        return SendResult(processed: count)
    }

    public func sendTrains(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        for slot in 0..<count {
            trains.append(MemoryFrame(Array(batch.frame(slot)), offload: batch.offload(slot)))
            log.append(trains[trains.count - 1])
            batch.setOffload(.plain, for: slot)
        }
        return SendResult(processed: count)
    }

    /// Frames and trains sent since the last call.
    public func takeSent() -> (frames: [MemoryFrame], trains: [MemoryFrame]) {
        defer {
            sent = []
            trains = []
            log = []
        }
        return (sent, trains)
    }

    /// The datagrams sent since the last call, in order, each train cut as the kernel cuts
    /// it (`VirtioNetHeader.GSO.udpL4`: the outer headers, then `gsoSize` bytes of UDP
    /// payload per datagram, the last one shorter); lengths and checksums of the cut copies
    /// are not filled in.
    public func takeDatagrams() -> [MemoryFrame] {
        defer { _ = takeSent() }
        var out: [MemoryFrame] = []
        for entry in log {
            guard entry.offload.gsoType == VirtioNetHeader.GSO.udpL4 else {
                out.append(entry)
                continue
            }
            let header = Int(entry.offload.headerLength)
            let size = Int(entry.offload.gsoSize)
            var at = header
            while at < entry.bytes.count {
                let end = min(at + size, entry.bytes.count)
                out.append(MemoryFrame(Array(entry.bytes[0..<header] + entry.bytes[at..<end])))
                at = end
            }
        }
        return out
    }
}

/// The TAP of `VXLANTransmit.tunnelGSO` in memory: each write kept whole, virtio_net_hdr
/// (24 bytes) first.
public final class MemoryTunnelGSO: TunnelGSOIO {
    public let interfaceName = "vtepd-gso"
    public private(set) var written: [[UInt8]] = []
    /// When set, writes fail with this errno (EINVAL: a kernel that refuses the header).
    public var failure: Int32?

    public init() {}

    public func send(
        header: UnsafeRawBufferPointer, _ first: UnsafeRawBufferPointer,
        _ second: UnsafeRawBufferPointer
    ) throws(SystemError) -> Bool {
        if let failure { throw SystemError(call: "writev", errno: failure) }
        written.append(Array(header) + Array(first) + Array(second))
        return true
    }

    /// Writes since the last call.
    public func take() -> [[UInt8]] {
        defer { written = [] }
        return written
    }
}

extension DataPlanePorts where IO == MemoryIO {
    /// In-memory ports named `access`, an underlay with `underlayMAC`, and every tunnel
    /// socket of the families the settings have a local address of (and the underlay's VXLAN
    /// ring with `vxlanReceive` `.ring`, the TAP with `vxlanTransmit` `.tunnelGSO`; with
    /// `.auto`, as on a kernel without UDP-tunnel GSO, there is none).
    public static func inMemory(
        settings: DataPlaneSettings, access: [String], underlayMAC: MACAddress,
        underlayMTU: Int = 1500
    ) -> DataPlanePorts<MemoryIO> {
        let v4 = settings.localIPv4 != nil
        let v6 = settings.localIPv6 != nil
        let udp4 = v4 ? MemoryPort(name: "udp4") : nil
        let udp6 = v6 ? MemoryPort(name: "udp6") : nil
        return DataPlanePorts(
            access: access.map { MemoryPort(name: $0) },
            underlay: MemoryUnderlay(mtu: underlayMTU, address: underlayMAC),
            vxlan4: v4 ? MemoryPort(name: "vxlan4") : nil,
            vxlan6: v6 ? MemoryPort(name: "vxlan6") : nil,
            gre4: v4 ? MemoryPort(name: "gre4") : nil,
            gre6: v6 ? MemoryPort(name: "gre6") : nil,
            openUDP: { ipv6 in ipv6 ? udp6 : udp4 },
            vxlanRing: settings.vxlanReceive == .ring ? MemoryPort(name: "vxlan-ring") : nil,
            tunnelGSO: settings.vxlanTransmit == .tunnelGSO
                ? MemoryTunnelGSO() : nil)
    }

    /// The slow path's raw UDP ports, which the worker opens (`openUDP`) when it needs them.
    public var udp4: MemoryPort? { openUDP(false) }
    public var udp6: MemoryPort? { openUDP(true) }
}
