import CLinuxNet
import Glibc
import Packet

/// The underlay's UDP socket for VXLAN (RFC 7348, port 4789): receives encapsulated
/// frames with their source VTEP's address, and sends datagrams to per-slot destinations.
///
/// Fragmentation is never allowed: IPv4 sets IP_PMTUDISC_DO (DF on every datagram) and
/// IPv6 IPV6_DONTFRAG, because RFC 7348 §4.3 asks VTEPs not to fragment and a reassembly
/// on a remote VTEP costs more than the drop. A datagram larger than the path MTU is
/// refused by the kernel with EMSGSIZE and counted in `SendResult.tooBig`.
///
/// Multicast replication (a logical switch flooded through an IP multicast group): bind to
/// the wildcard address (0.0.0.0 or ::) and `join` the group on the underlay interface. A
/// socket bound to a unicast address does not receive datagrams sent to a group (the
/// kernel matches the bound address against the destination).
///
/// Limitation: every datagram leaves from the socket's bound port. RFC 7348 §5 wants the
/// UDP source port to be a hash of the inner flow so underlay ECMP/LACP spreads tunnels
/// across links, and a UDP socket cannot vary it per packet. This socket is right for
/// receiving and for low-rate sends (tests, control traffic); the data plane's encap path
/// sends through AF_PACKET with a full prebuilt outer header (`OuterHeaderTemplate`),
/// which sets the source port per packet and, per bench/reference measurements, is also
/// far faster than the kernel's per-packet UDP output path.
public final class UDPTunnelSocket {
    public static let vxlanPort: UInt16 = 4789

    /// The address and port actually bound (the port the kernel chose when asked for 0).
    public let localEndpoint: UDPEndpoint
    /// The socket, for epoll; owned by this object and closed when it goes.
    public let descriptor: Int32

    /// - Parameters:
    ///   - receiveBuffer: bytes of kernel receive queue (see `System.setBufferSizes`); nil
    ///     keeps the system default.
    ///   - gro: UDP_GRO (Linux 5.0): the kernel may hand over several datagrams of one
    ///     sender in one read, laid end to end, each `offload(slot).gsoSize` bytes but the
    ///     last; the batch's buffers should then hold 64 KB. Without it, a GRO'd train is
    ///     split back into datagrams before the socket queue.
    ///   - freeBind: IP_FREEBIND: bind to `address` even while the host does not have it (a
    ///     tunnel address that DHCP or the admin puts on the underlay later).
    public init(
        address: IPAddress, port: UInt16 = UDPTunnelSocket.vxlanPort, receiveBuffer: Int? = nil,
        gro: Bool = false, freeBind: Bool = false
    ) throws(SystemError) {
        let subject = SystemError.Subject.address(
            UDPEndpoint(address: address, port: port).description)
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        }
        let descriptor = try System.callBlocking("socket", subject: subject) {
            socket(
                family, clinuxnet_sock_dgram | clinuxnet_sock_nonblock | clinuxnet_sock_cloexec,
                0)
        }
        do {
            switch address {
            case .v4:
                try System.setOption(
                    descriptor, level: Int32(IPPROTO_IP), option: clinuxnet_ip_mtu_discover,
                    value: Int32(clinuxnet_ip_pmtudisc_do), subject: subject)
                // Linux delivers a group's datagrams to every wildcard-bound socket on the
                // port if any socket joined it; ours should see only the groups it joined.
                try System.setOption(
                    descriptor, level: Int32(IPPROTO_IP), option: clinuxnet_ip_multicast_all,
                    value: Int32(0), subject: subject)
            case .v6:
                // One family per socket keeps v4-mapped addresses out of the source field.
                try System.setOption(
                    descriptor, level: Int32(IPPROTO_IPV6), option: clinuxnet_ipv6_v6only,
                    value: Int32(1), subject: subject)
                try System.setOption(
                    descriptor, level: Int32(IPPROTO_IPV6), option: clinuxnet_ipv6_dontfrag,
                    value: Int32(1), subject: subject)
                try System.setOption(
                    descriptor, level: Int32(IPPROTO_IPV6),
                    option: clinuxnet_ipv6_multicast_all, value: Int32(0), subject: subject)
            }
            try System.setBufferSizes(
                descriptor, receive: receiveBuffer, send: nil, subject: subject)
            if freeBind {
                try System.setOption(
                    descriptor, level: Int32(IPPROTO_IP), option: clinuxnet_ip_freebind,
                    value: Int32(1), name: "IP_FREEBIND", subject: subject)
            }
            if gro {
                try System.setOption(
                    descriptor, level: clinuxnet_sol_udp, option: clinuxnet_udp_gro,
                    value: Int32(1), name: "UDP_GRO", subject: subject)
            }
            // A one-slot batch is the simplest way to build the sockaddr for either family.
            let scratch = PacketBatch(capacity: 1, bufferSize: 128, headroom: 4)
            scratch.setDestination(UDPEndpoint(address: address, port: port), for: 0)
            let length = scratch.messages[0].msg_hdr.msg_namelen
            _ = try System.callBlocking("bind", subject: subject) {
                scratch.addresses.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, length)
                }
            }
            var boundLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = try System.callBlocking("getsockname", subject: subject) {
                scratch.addresses.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    getsockname(descriptor, $0, &boundLength)
                }
            }
            self.localEndpoint = scratch.source(0)!
        } catch {
            close(descriptor)
            throw error
        }
        self.descriptor = descriptor
        self.gro = gro
    }

    /// Whether reads may hold several datagrams (see `init`).
    public let gro: Bool

    deinit {
        close(descriptor)
    }

    /// Datagrams the kernel dropped because our receive queue was full, since the socket
    /// opened (the per-socket share of /proc/net/snmp's Udp RcvbufErrors).
    public var receiveDrops: UInt64 { System.receiveDrops(descriptor) }

    /// Receives up to `batch.capacity` datagrams into slots `0 ..< count` and returns
    /// `count`, 0 when none are queued. `batch.source(slot)` is each one's sender.
    public func receive(into batch: PacketBatch) throws(SystemError) -> Int {
        let count = try batch.receive(on: descriptor, names: true, controlMessages: gro)
        if gro {
            for slot in 0..<count { readSegmentSize(batch, slot) }
        }
        return count
    }

    /// The SOL_UDP/UDP_GRO control message of a coalesced read: the size of each datagram.
    private func readSegmentSize(_ batch: PacketBatch, _ slot: Int) {
        let header = UnsafeMutableRawPointer(batch.messages + slot)
            .assumingMemoryBound(to: msghdr.self)
        var control = clinuxnet_cmsg_firsthdr(header)
        while let message = control {
            if message.pointee.cmsg_level == clinuxnet_sol_udp
                && message.pointee.cmsg_type == clinuxnet_udp_gro
                && message.pointee.cmsg_len >= clinuxnet_cmsg_len(MemoryLayout<Int32>.size)
            {
                let size = UnsafeRawPointer(clinuxnet_cmsg_data(message)!)
                    .loadUnaligned(as: Int32.self)
                if size > 0 && Int(size) < batch.frameLength(slot) {
                    batch.offloads[slot] = VirtioNetHeader(
                        gsoType: VirtioNetHeader.GSO.udpL4, gsoSize: UInt16(clamping: size))
                }
                return
            }
            control = clinuxnet_cmsg_nxthdr(header, message)
        }
    }

    /// Sends slots `0 ..< count`, each to the destination set with
    /// `batch.setDestination(_:for:)`, in order.
    public func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        try batch.send(on: descriptor, count: count, names: true)
    }

    // MARK: - Multicast membership

    /// Joins `group` on the interface with `interfaceIndex`: the kernel sends an IGMP
    /// (RFC 3376) or MLD (RFC 3810) report, so underlay switches that snoop start
    /// forwarding the group here, and datagrams to it on the socket's port are received.
    /// IP_ADD_MEMBERSHIP with `ip_mreqn` (the interface by index, not by address) or
    /// IPV6_JOIN_GROUP. The group must be of the socket's family.
    public func join(group: IPAddress, interfaceIndex: Int32) throws(SystemError) {
        try membership(group, interfaceIndex, join: true)
    }

    /// Leaves `group` on the interface: the kernel reports the leave, and datagrams to the
    /// group are no longer received.
    public func leave(group: IPAddress, interfaceIndex: Int32) throws(SystemError) {
        try membership(group, interfaceIndex, join: false)
    }

    private func membership(_ group: IPAddress, _ interfaceIndex: Int32, join: Bool)
        throws(SystemError)
    {
        let subject = SystemError.Subject.other(
            "group \(group) on interface index \(interfaceIndex)")
        guard group.isMulticast else {
            throw SystemError(
                call: join ? "join" : "leave", errno: EINVAL,
                subject: .other("\(group), which is not a multicast group address"))
        }
        switch (group, localEndpoint.address) {
        case (.v4(let address), .v4):
            var request = ip_mreqn()
            request.imr_multiaddr.s_addr = address.rawValue.bigEndian
            request.imr_ifindex = interfaceIndex
            try System.setOption(
                descriptor, level: Int32(IPPROTO_IP),
                option: join ? clinuxnet_ip_add_membership : clinuxnet_ip_drop_membership,
                value: request, name: join ? "IP_ADD_MEMBERSHIP" : "IP_DROP_MEMBERSHIP",
                subject: subject)
        case (.v6(let address), .v6):
            var request = ipv6_mreq()
            withUnsafeMutableBytes(of: &request.ipv6mr_multiaddr) { address.store(into: $0, at: 0) }
            request.ipv6mr_interface = UInt32(bitPattern: interfaceIndex)
            // ipv6_mreq holds a C union, which Swift does not count as BitwiseCopyable, so
            // this one option is set without `System.setOption`.
            let option = join ? clinuxnet_ipv6_join_group : clinuxnet_ipv6_leave_group
            _ = try System.callBlocking(
                join ? "IPV6_JOIN_GROUP" : "IPV6_LEAVE_GROUP", subject: subject
            ) {
                setsockopt(
                    descriptor, Int32(IPPROTO_IPV6), option, &request,
                    socklen_t(MemoryLayout<ipv6_mreq>.size))
            }
        default:
            // An IPv4 group on an IPv6 socket or the reverse: the kernel would answer
            // EINVAL without saying why; the family mismatch is the reason.
            throw SystemError(
                call: join ? "join" : "leave", errno: EAFNOSUPPORT,
                subject: .other(
                    "group \(group) on a socket bound to \(localEndpoint), another address family"))
        }
    }
}
