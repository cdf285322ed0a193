import CLinuxNet
import Glibc
import Packet

/// A raw IP socket of the underlay, for one tunnel protocol (raw(7)): the kernel writes the
/// IP header and resolves the next hop, we write everything after it.
///
/// - `.gre` (IP protocol 47; RFC 2784, RFC 2890, and NVGRE, RFC 7637): receives GRE packets
///   with their source VTEP's address, and sends GRE packets (GRE header and payload) to
///   per-slot destinations. This is the GRE data plane's receive path, and its slow path
///   while a next hop is unresolved (the fast path sends through `UnderlayPort` with a
///   prebuilt GRE `OuterHeaderTemplate`).
/// - `.udp` (IP protocol 17), send only: VXLAN's slow path. Each slot holds a UDP header, the
///   VXLAN header and the inner frame, so the source port is the inner-flow hash (RFC 7348
///   §5), which a UDP socket bound to 4789 cannot vary per datagram. Nothing is ever received
///   (a filter accepts no packet: a raw UDP socket would otherwise get a copy of every UDP
///   datagram to the host); the IPv4 UDP checksum is left zero (RFC 7348 §5), the IPv6 one
///   the kernel computes (IPV6_CHECKSUM, RFC 8200 §8.1).
/// - Receive: a raw socket gets a copy of every packet of its protocol addressed to this host
///   (raw(7)). An IPv4 raw socket delivers the IP header too; `receive` moves each slot's
///   frame past it, so for either family `batch.frame(slot)` starts at the tunnel header
///   (IPv6 raw sockets never deliver the IPv6 header, ipv6(7)). The kernel reassembles
///   fragments before raw delivery.
/// - Send: like `UDPTunnelSocket`, never fragmented (`IP_PMTUDISC_DO`,
///   `IPV6_PMTUDISC_DO`): a packet over the path MTU is refused with EMSGSIZE and counted in
///   `SendResult.tooBig`.
/// - The kernel's own GRE handler, when the ip_gre module is loaded, sees the packets too
///   and may answer those that match none of its tunnels; this socket does not change that.
public final class RawTunnelSocket {
    /// The tunnel protocols carried directly over IP.
    public enum Carried: Int32, Sendable {
        /// IANA protocol number 47 (RFC 2784 §1).
        case gre = 47
        /// UDP (protocol 17), for VXLAN datagrams we write whole; send only.
        case udp = 17
    }
    /// IANA protocol number 47 (RFC 2784 §1).
    public static let ipProtocol: Int32 = Carried.gre.rawValue

    /// The address bound (the wildcard receives GRE to every local address of the family).
    public let localAddress: IPAddress
    /// The socket, for poll; owned by this object and closed when it goes.
    public let descriptor: Int32
    private let isIPv4: Bool

    /// - Parameter receiveBuffer: bytes of kernel receive queue (see
    ///   `System.setBufferSizes`); nil keeps the system default.
    public init(
        address: IPAddress, carrying carried: Carried = .gre, receiveBuffer: Int? = nil
    ) throws(SystemError) {
        let subject = SystemError.Subject.address(
            "\(carried == .gre ? "GRE" : "raw UDP") \(address)")
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        }
        let descriptor = try System.callBlocking("socket", subject: subject) {
            socket(
                family, clinuxnet_sock_raw | clinuxnet_sock_nonblock | clinuxnet_sock_cloexec,
                carried.rawValue)
        }
        do {
            switch address {
            case .v4:
                try System.setOption(
                    descriptor, level: Int32(IPPROTO_IP), option: clinuxnet_ip_mtu_discover,
                    value: Int32(clinuxnet_ip_pmtudisc_do), subject: subject)
            case .v6:
                // No IPV6_V6ONLY: a raw IPv6 socket never sees IPv4, and Linux refuses the
                // option (EINVAL) on a socket already bound to a protocol, as raw ones are.
                // Not IPV6_DONTFRAG either: Linux honours it only for UDP, ICMPv6 and
                // IPPROTO_RAW sockets (__ip6_append_data) and would fragment GRE; path MTU
                // discovery "do" makes an oversize send fail with EMSGSIZE instead.
                try System.setOption(
                    descriptor, level: Int32(IPPROTO_IPV6), option: Int32(IPV6_MTU_DISCOVER),
                    value: Int32(IPV6_PMTUDISC_DO), subject: subject)
                if carried == .udp {
                    // The UDP checksum field, 6 bytes into what we write.
                    try System.setOption(
                        descriptor, level: Int32(IPPROTO_IPV6), option: clinuxnet_ipv6_checksum,
                        value: Int32(6), name: "IPV6_CHECKSUM", subject: subject)
                }
            }
            if carried == .udp {
                _ = try System.callBlocking("SO_ATTACH_FILTER", subject: subject) {
                    clinuxnet_drop_all_input(descriptor)
                }
            }
            try System.setBufferSizes(
                descriptor, receive: receiveBuffer, send: nil, subject: subject)
            // raw(7): a raw socket's port must be 0 (IPv6: 0 or the protocol).
            let scratch = PacketBatch(capacity: 1, bufferSize: 128, headroom: 4)
            scratch.setDestination(UDPEndpoint(address: address, port: 0), for: 0)
            let length = scratch.messages[0].msg_hdr.msg_namelen
            _ = try System.callBlocking("bind", subject: subject) {
                scratch.addresses.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, length)
                }
            }
        } catch {
            close(descriptor)
            throw error
        }
        self.descriptor = descriptor
        self.localAddress = address
        switch address {
        case .v4: isIPv4 = true
        case .v6: isIPv4 = false
        }
    }

    deinit {
        close(descriptor)
    }

    /// Packets the kernel dropped because our receive queue was full, since the socket
    /// opened.
    public var receiveDrops: UInt64 { System.receiveDrops(descriptor) }

    /// Receives up to `batch.capacity` GRE packets into slots `0 ..< count` and returns
    /// `count`, 0 when none are queued. Each slot's frame starts at the GRE header;
    /// `batch.source(slot)` is the sender (port 0). An IPv4 slot whose IP header does not
    /// fit what was received is left with length 0 (the kernel validated the header, so
    /// this does not happen unless it was truncated).
    public func receive(into batch: PacketBatch) throws(SystemError) -> Int {
        let count = try batch.receive(on: descriptor, names: true, controlMessages: false)
        if isIPv4 {
            for slot in 0..<count {
                let start = batch.frameStart(slot)
                let length = batch.frameLength(slot)
                guard length >= 20 else {
                    batch.setFrame(slot, start: start, length: 0)
                    continue
                }
                let ihl = Int(batch.buffer(slot)[start] & 0x0F) * 4
                if ihl < 20 || ihl > length {
                    batch.setFrame(slot, start: start, length: 0)
                } else {
                    batch.setFrame(slot, start: start + ihl, length: length - ihl)
                }
            }
        }
        return count
    }

    /// Sends slots `0 ..< count` (each a GRE header and its payload), each to the address set
    /// with `batch.setDestination(_:for:)` (port 0), in order.
    public func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        try batch.send(on: descriptor, count: count, names: true)
    }
}
