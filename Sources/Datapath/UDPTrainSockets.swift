import CLinuxNet
import Glibc
import Packet

/// UDP GSO trains through the kernel's UDP sockets (UDP_SEGMENT, Linux 4.18), for kernels
/// whose packet sockets take no UDP GSO (before Linux 6.2, as Debian 12's 6.1): each train
/// laid out by `OuterHeaderTemplate.stampTrain` leaves as one `sendmsg` of its VXLAN
/// datagrams back to back, which the kernel (or the NIC) cuts into datagrams as it cuts
/// a packet socket's train.
///
/// A UDP socket sends from the one port it is bound to, while VXLAN's source port carries
/// the flow's hash (RFC 7348 §5) so the underlay's ECMP and LAG hashing spread the tunnels.
/// So this is a pool: `count` sockets bound to the tunnel address at ports spread over the
/// operator's source port range, and a flow's port is the pool's port its hash picks
/// (`port(for:)`), for every datagram of the flow, train or not, so a flow keeps one path
/// through the underlay. The sockets only send: a filter drops whatever arrives at them. They
/// bind with IP_FREEBIND, so a tunnel address the host does not have yet takes them too.
///
/// Not bypassed: the kernel's UDP output runs per train (routing, the host firewall's
/// output chain, neighbour resolution), where a packet socket hands the frame to the
/// device. IPv4 sets DF on every datagram, IPv6 never fragments, as the tunnel sockets.
/// The outer TOS and TTL (traffic class and hop limit) are the template's, sent as
/// ancillary data with each train. UDP_SEGMENT needs the device's transmit checksum
/// offload; without it (`ethtool -K … tx off`) the kernel refuses the train with EIO.
public final class UDPTrainSockets {
    /// The bound ports, in the order `port(for:)` picks them; sockets per family in the same
    /// order.
    public let ports: [UInt16]
    /// `ports` for the worker's per-frame lookup, without reference counting; lives as long
    /// as this object.
    public let portTable: UnsafeBufferPointer<UInt16>
    /// The sockets, owned here (closed when this goes), and their descriptors by port index
    /// for the sending path (`Table`), empty for a family without a tunnel address.
    private let sockets: [UDPTunnelSocket]
    public let table: Table

    /// What a send needs, as plain memory: no reference counting per train.
    public struct Table {
        public let ports: UnsafeBufferPointer<UInt16>
        public let ipv4: UnsafeBufferPointer<Int32>
        public let ipv6: UnsafeBufferPointer<Int32>
    }

    /// Sockets per family the pool opens by default: 32 source ports per tunnel address.
    public static let defaultCount = 32

    /// Opens `count` sockets on `localIPv4` and on `localIPv6` (either may be nil, not
    /// both), each pair bound to one port of `range`; a port either family has in use is
    /// skipped. Fails with the system's error when UDP_SEGMENT is unknown (before Linux 4.18)
    /// or not enough ports are free.
    public init(
        localIPv4: IPv4Address?, localIPv6: IPv6Address?, range: SourcePortRange,
        count: Int = UDPTrainSockets.defaultCount
    ) throws(SystemError) {
        precondition(localIPv4 != nil || localIPv6 != nil)
        let span = Int(range.upperBound) - Int(range.lowerBound) + 1
        let wanted = min(count, span)
        var ports: [UInt16] = []
        var ipv4: [UDPTunnelSocket] = []
        var ipv6: [UDPTunnelSocket] = []
        // Candidates spread over the range, then the rest of it in order, until enough bind.
        var candidate = 0
        var lastError: SystemError?
        while ports.count < wanted, candidate < span {
            let offset = candidate < wanted ? candidate * span / wanted : candidate
            candidate += 1
            let port = UInt16(Int(range.lowerBound) + offset)
            if ports.contains(port) { continue }
            do {
                let four = try localIPv4.map { a throws(SystemError) in
                    try Self.open(.v4(a), port)
                }
                let six = try localIPv6.map { a throws(SystemError) in
                    try Self.open(.v6(a), port)
                }
                ports.append(port)
                if let four { ipv4.append(four) }
                if let six { ipv6.append(six) }
            } catch {
                // Another socket has the port: try the next candidate.
                guard error.errno == EADDRINUSE else { throw error }
                lastError = error
            }
        }
        guard ports.count == wanted else {
            throw lastError
                ?? SystemError(call: "bind", errno: EADDRINUSE, subject: .other("\(range)"))
        }
        self.ports = ports
        sockets = ipv4 + ipv6
        let portTable = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: ports.count)
        _ = portTable.initialize(from: ports)
        self.portTable = UnsafeBufferPointer(portTable)
        let four = UnsafeMutableBufferPointer<Int32>.allocate(capacity: ipv4.count)
        _ = four.initialize(from: ipv4.map(\.descriptor))
        let six = UnsafeMutableBufferPointer<Int32>.allocate(capacity: ipv6.count)
        _ = six.initialize(from: ipv6.map(\.descriptor))
        table = Table(
            ports: self.portTable, ipv4: UnsafeBufferPointer(four), ipv6: UnsafeBufferPointer(six))
    }

    deinit {
        portTable.deallocate()
        table.ipv4.deallocate()
        table.ipv6.deallocate()
    }

    private static func open(_ address: IPAddress, _ port: UInt16) throws(SystemError)
        -> UDPTunnelSocket
    {
        // Bound even before the tunnel address is on the underlay (it may come later, by
        // DHCP or the admin); the kernel sends from it all the same, as the packet socket does.
        let socket = try UDPTunnelSocket(address: address, port: port, freeBind: true)
        let subject = SystemError.Subject.address(socket.localEndpoint.description)
        _ = try System.callBlocking("SO_ATTACH_FILTER", subject: subject) {
            clinuxnet_drop_all_input(socket.descriptor)
        }
        // Refused before Linux 4.18 (ENOPROTOOPT). 0 leaves each send's own size in force.
        try System.setOption(
            socket.descriptor, level: clinuxnet_sol_udp, option: clinuxnet_udp_segment,
            value: Int32(0), name: "UDP_SEGMENT", subject: subject)
        // A flush hands over up to a batch of 64 KB trains at once.
        try System.setBufferSizes(socket.descriptor, receive: 4096, send: 4 << 20, subject: subject)
        return socket
    }

    /// The pool's port for a flow of hash `hash` (as `SourcePortRange.port(for:)` maps a
    /// hash into a range).
    @inlinable
    public func port(for hash: UInt32) -> UInt16 {
        portTable[Int((UInt64(hash) &* UInt64(portTable.count)) >> 32)]
    }

    /// Sends the trains in slots `0 ..< count` of `batch`, each a complete outer frame
    /// (Ethernet, IPv4 or IPv6 without options, UDP, then the datagrams' payloads) with its
    /// `offload` header (`gsoSize`: each datagram's payload), from the socket of the port in
    /// its UDP header, to the address and port in its IP and UDP headers; a slot without an
    /// offload (`.plain`) is one datagram. Stops at a full socket buffer (EAGAIN, ENOBUFS:
    /// `processed` says how far it got); a train larger than the path allows (EMSGSIZE, or
    /// EINVAL: a segment over the route's MTU) counts in `tooBig`; any other error is thrown
    /// (EIO: the device has no transmit checksum offload).
    public func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        try Self.send(batch, count: count, through: table)
    }

    /// `send(_:count:)` through `table`, which must outlive the call.
    public static func send(_ batch: PacketBatch, count: Int, through table: Table)
        throws(SystemError) -> SendResult
    {
        var result = SendResult()
        for slot in 0..<count {
            let frame = batch.frame(slot)
            let offload = batch.offload(slot)
            guard frame.count >= 14 + 20 + 8 else {
                result.processed += 1
                result.tooBig += 1
                continue
            }
            let isIPv6 = frame[12] == 0x86 && frame[13] == 0xDD
            let udp = 14 + (isIPv6 ? 40 : 20)
            let payload = udp + 8
            let segment = offload.gsoType == VirtioNetHeader.GSO.none ? 0 : offload.gsoSize
            guard frame.count >= payload,
                segment == 0 || Int(offload.headerLength) == payload
            else { throw SystemError(call: "sendmsg", errno: EBADMSG) }
            let source = UInt16(frame[udp]) << 8 | UInt16(frame[udp + 1])
            let destination = UInt16(frame[udp + 2]) << 8 | UInt16(frame[udp + 3])
            let descriptors = isIPv6 ? table.ipv6 : table.ipv4
            guard let index = table.ports.firstIndex(of: source), index < descriptors.count else {
                throw SystemError(call: "sendmsg", errno: EADDRNOTAVAIL)
            }
            // IPv4: TOS at 15, TTL at 22, destination at 30. IPv6: traffic class across
            // bytes 14 and 15, hop limit at 21, destination at 38.
            let tos =
                isIPv6 ? Int32((frame[14] & 0x0F) << 4 | frame[15] >> 4) : Int32(frame[15])
            let ttl = Int32(isIPv6 ? frame[21] : frame[22])
            let sent = clinuxnet_send_udp_train(
                descriptors[index], isIPv6 ? 1 : 0,
                frame.baseAddress!.assumingMemoryBound(to: UInt8.self) + (isIPv6 ? 38 : 30),
                destination, frame.baseAddress! + payload, frame.count - payload,
                segment, tos, ttl)
            if sent >= 0 {
                result.processed += 1
                continue
            }
            switch Int32(-sent) {
            case EAGAIN, ENOBUFS: return result
            case EMSGSIZE, EINVAL:
                result.processed += 1
                result.tooBig += 1
            default: throw SystemError(call: "sendmsg", errno: Int32(-sent))
            }
        }
        return result
    }
}
