import Glibc
import Packet

/// A failed rtnetlink request, worded for the operator who has to fix the underlay
/// ("no route to 203.0.113.9: Network is unreachable"), with the errno and the kernel's own
/// extended-ack message kept for code and logs.
public enum NetlinkError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kernel has no usable route to the destination: no matching route
    /// (ENETUNREACH), an `unreachable` or `prohibit` route (EHOSTUNREACH, EACCES), a
    /// `blackhole` route (EINVAL).
    case noRoute(to: IPAddress, errno: Int32, kernelMessage: String?)
    /// The kernel knows no interface with this index (it went away, or the caller is in
    /// another network namespace than the one the index came from).
    case noSuchInterface(index: Int32)
    /// The kernel refused `request` with `errno`.
    case refused(request: String, errno: Int32, kernelMessage: String?)
    /// A call on the netlink socket itself failed.
    case socket(call: String, errno: Int32)
    /// The kernel did not answer `request` within the socket's timeout.
    case noReply(request: String)
    /// The reply to `request` could not be read. A correct kernel never sends one; it is
    /// reported rather than trusted.
    case malformedReply(request: String, reason: String)

    public var description: String {
        switch self {
        case .noRoute(let destination, let errno, let message):
            return "no route to \(destination): \(Self.reason(errno, message))"
                + " (add a route to it, or a default route, on the underlay)"
        case .noSuchInterface(let index):
            return "no interface has index \(index) in this network namespace"
        case .refused(let request, let errno, let message):
            if errno == EPERM || errno == EACCES {
                return "\(request) is not permitted: \(Self.reason(errno, message))"
                    + " (vtepd needs CAP_NET_ADMIN)"
            }
            return "\(request) failed: \(Self.reason(errno, message)) (errno \(errno))"
        case .socket(let call, let errno):
            return "\(call) on the rtnetlink socket failed: \(Self.reason(errno, nil))"
                + " (errno \(errno))"
        case .noReply(let request):
            return "the kernel did not answer the \(request) in time"
        case .malformedReply(let request, let reason):
            return "the kernel's reply to the \(request) could not be read: \(reason)"
        }
    }

    /// strerror(3), followed by the kernel's extended-ack text when it gave one.
    private static func reason(_ errno: Int32, _ kernelMessage: String?) -> String {
        let text = String(cString: strerror(errno))
        guard let kernelMessage, !kernelMessage.isEmpty else { return text }
        return "\(text) (kernel: \(kernelMessage))"
    }
}
