import CMnl
import Glibc
import Packet

/// The kernel's forwarding decision for one destination, as `ip route get` shows it: which
/// interface a packet to it leaves by, the gateway it is handed to (none when the
/// destination is on-link), and the source address the kernel would choose.
///
/// The data plane asks this for every remote VTEP to build the outer headers it sends on
/// AF_PACKET itself: interface, source IP, and (through `Neighbour`) the next hop's MAC.
public struct Route: Hashable, Sendable, CustomStringConvertible {
    /// rtm_type of the answer. Only `.unicast` routes have a next hop to resolve; a
    /// `.local` destination is one of this host's own addresses.
    public enum Kind: Hashable, Sendable {
        case unicast
        case local
        case broadcast
        case anycast
        case multicast
        /// Another rtm_type (rtnetlink.h `RTN_*`).
        case other(UInt8)

        init(rawValue: UInt8) {
            switch Int(rawValue) {
            case Int(cmnl_rtn_unicast): self = .unicast
            case Int(cmnl_rtn_local): self = .local
            case Int(cmnl_rtn_broadcast): self = .broadcast
            case Int(cmnl_rtn_anycast): self = .anycast
            case Int(cmnl_rtn_multicast): self = .multicast
            default: self = .other(rawValue)
            }
        }
    }

    public var destination: IPAddress
    public var kind: Kind
    public var interfaceIndex: Int32
    public var interfaceName: String
    /// The gateway (RTA_GATEWAY, or RTA_VIA for an IPv4 route through an IPv6 next hop,
    /// RFC 5549); nil when the destination is on-link.
    public var gateway: IPAddress?
    /// The source address the kernel would use (RTA_PREFSRC).
    public var preferredSource: IPAddress?

    public init(
        destination: IPAddress, kind: Kind = .unicast, interfaceIndex: Int32,
        interfaceName: String, gateway: IPAddress? = nil, preferredSource: IPAddress? = nil
    ) {
        self.destination = destination
        self.kind = kind
        self.interfaceIndex = interfaceIndex
        self.interfaceName = interfaceName
        self.gateway = gateway
        self.preferredSource = preferredSource
    }

    /// The address whose link-layer address frames to `destination` are sent to: the
    /// gateway, or the destination itself when it is on-link.
    public var nextHop: IPAddress { gateway ?? destination }

    public var description: String {
        var text = "\(destination)"
        if let gateway { text += " via \(gateway)" }
        text += " dev \(interfaceName)"
        if let preferredSource { text += " src \(preferredSource)" }
        if kind != .unicast { text += " (\(kind))" }
        return text
    }

    /// Asks the kernel of the calling thread's network namespace for the route to
    /// `destination` (RTM_GETROUTE, as `ip route get`).
    public static func lookup(to destination: IPAddress) throws(NetlinkError) -> Route {
        try lookup(to: destination, using: NetlinkSocket())
    }

    /// `lookup(to:)` over `transport`, for callers that keep a socket open.
    public static func lookup(to destination: IPAddress, using transport: some NetlinkTransport)
        throws(NetlinkError) -> Route
    {
        let request = request(to: destination, sequence: transport.nextSequence())
        let reply = try transport.exchange(request)
        return try read(reply, answering: request, to: destination) { index in
            var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE))
            guard if_indextoname(UInt32(bitPattern: index), &name) != nil else { return nil }
            return String(
                decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// RTM_GETROUTE for one address: an `rtmsg` with the full prefix length and RTA_DST,
    /// nothing else (so the kernel answers with the route it would use, not a dump).
    static func request(to destination: IPAddress, sequence: UInt32) -> [UInt8] {
        var header = rtmsg()
        header.rtm_family = destination.family
        header.rtm_dst_len = destination.bitLength
        return NetlinkMessage.request(
            type: RTM_GETROUTE, flags: NLM_F_REQUEST, sequence: sequence,
            familyHeader: withUnsafeBytes(of: header) { Array($0) },
            attributes: [(Int(RTA_DST.rawValue), destination.bytes)])
    }

    /// Reads the kernel's answer to `request`; `interfaceName` maps an index to its name.
    static func read(
        _ reply: [UInt8], answering request: [UInt8], to destination: IPAddress,
        interfaceName: (Int32) -> String?
    ) throws(NetlinkError) -> Route {
        let answer: NetlinkMessage.Answer
        do {
            answer = try NetlinkMessage.answer(
                to: NetlinkMessage.sequence(of: request)!, in: reply, replyType: RTM_NEWROUTE,
                familyHeaderSize: MemoryLayout<rtmsg>.size)
        } catch {
            throw NetlinkError(error, request: request)
        }
        switch answer {
        case .refused(let errno, let message):
            switch errno {
            // ENETUNREACH: no route. EHOSTUNREACH/EACCES: `unreachable`/`prohibit` routes.
            // EINVAL: a `blackhole` route (the request itself is well formed).
            case ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL:
                throw .noRoute(to: destination, errno: errno, kernelMessage: message)
            default:
                throw .refused(
                    request: "route lookup for \(destination)", errno: errno,
                    kernelMessage: message)
            }
        case .acknowledged:
            throw NetlinkError(
                MalformedReply("an acknowledgement instead of a route"), request: request)
        case .message(let message):
            let kind = Kind(rawValue: message.familyHeader[7])
            guard let oif = message.attributes[UInt16(RTA_OIF.rawValue)], oif.count == 4 else {
                throw NetlinkError(
                    MalformedReply("a route without an output interface"), request: request)
            }
            let index = oif.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
            guard let name = interfaceName(index) else { throw .noSuchInterface(index: index) }
            var gateway = message.attributes[UInt16(RTA_GATEWAY.rawValue)].flatMap(
                IPAddress.init(bytes:))
            // struct rtvia: a host-order address family, then the address.
            if gateway == nil, let via = message.attributes[UInt16(RTA_VIA.rawValue)], via.count > 2
            {
                gateway = IPAddress(bytes: Array(via[2...]))
            }
            let source = message.attributes[UInt16(RTA_PREFSRC.rawValue)].flatMap(
                IPAddress.init(bytes:))
            return Route(
                destination: destination, kind: kind, interfaceIndex: index, interfaceName: name,
                gateway: gateway, preferredSource: source)
        }
    }
}
