import CMnl
import Glibc

/// Where rtnetlink requests go: the kernel (`NetlinkSocket`), or in tests a recording that
/// checks the request bytes and replays a captured reply.
///
/// Every request this module makes is answered by one datagram: a single reply message or
/// an error/acknowledgement (no dumps).
public protocol NetlinkTransport: AnyObject {
    /// The port id replies are addressed to (the kernel sets it in every reply header).
    var portID: UInt32 { get }
    /// A fresh sequence number for the next request.
    func nextSequence() -> UInt32
    /// Sends one request (a complete netlink message) and returns the datagram that answers
    /// it: the first one whose first message carries the request's sequence number.
    func exchange(_ request: [UInt8]) throws(NetlinkError) -> [UInt8]
}

/// An rtnetlink socket (libmnl) in the network namespace of the thread that opens it, like
/// every socket: open it on the thread that has entered the namespace.
///
/// Blocking with a receive timeout: the kernel answers route and neighbour requests
/// synchronously, so the timeout only guards against a lost reply. Not for sharing between
/// threads (sequence numbers and the receive buffer are per socket).
public final class NetlinkSocket: NetlinkTransport {
    public let portID: UInt32
    private let socket: OpaquePointer
    private var sequence: UInt32
    private let buffer: UnsafeMutableRawBufferPointer

    /// Opens and binds the socket. `timeoutMilliseconds` bounds each wait for a reply.
    public init(timeoutMilliseconds: Int = 2000) throws(NetlinkError) {
        guard let socket = mnl_socket_open2(NETLINK_ROUTE, cmnl_sock_cloexec) else {
            throw .socket(call: "socket", errno: errno)
        }
        // An error reply carries only the failing request's header (NETLINK_CAP_ACK) and
        // the kernel's explanation as an attribute (NETLINK_EXT_ACK); both are best effort
        // (kernels before 4.12 lack extended acks), so failures here are ignored.
        var on: Int32 = 1
        _ = mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, socklen_t(4))
        _ = mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, socklen_t(4))
        var timeout = timeval(
            tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        guard
            setsockopt(
                mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                socklen_t(MemoryLayout<timeval>.size)) == 0
        else {
            let error = errno
            mnl_socket_close(socket)
            throw .socket(call: "setsockopt(SO_RCVTIMEO)", errno: error)
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let error = errno
            mnl_socket_close(socket)
            throw .socket(call: "bind", errno: error)
        }
        self.socket = socket
        self.portID = mnl_socket_get_portid(socket)
        // Different sockets start at different numbers, so a stray reply is never mistaken.
        self.sequence = UInt32(truncatingIfNeeded: time(nil))
        // 8 KiB is libmnl's MNL_SOCKET_BUFFER_SIZE on 4 KiB pages; our replies are < 1 KiB.
        self.buffer = .allocate(byteCount: 8192, alignment: 8)
    }

    deinit {
        mnl_socket_close(socket)
        buffer.deallocate()
    }

    public func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    public func exchange(_ request: [UInt8]) throws(NetlinkError) -> [UInt8] {
        guard let wanted = NetlinkMessage.sequence(of: request) else {
            preconditionFailure("a netlink request is at least one header long")
        }
        let sent = request.withUnsafeBytes {
            mnl_socket_sendto(socket, $0.baseAddress, $0.count)
        }
        if sent < 0 { throw .socket(call: "sendto", errno: errno) }
        while true {
            let received = mnl_socket_recvfrom(socket, buffer.baseAddress, buffer.count)
            if received < 0 {
                let error = errno
                switch error {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK:
                    throw .noReply(request: NetlinkMessage.describe(request))
                default: throw .socket(call: "recvfrom", errno: error)
                }
            }
            let reply = Array(UnsafeRawBufferPointer(rebasing: buffer[0..<received]))
            // A late answer to an earlier request that timed out: not ours, skip it.
            if NetlinkMessage.sequence(of: reply) == wanted { return reply }
        }
    }
}
