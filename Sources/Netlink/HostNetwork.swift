import CNLRoute
import Glibc
import Packet

/// One network interface as `show network interfaces` reports it.
public struct HostLink: Hashable, Sendable, CustomStringConvertible {
    public var index: Int32
    public var name: String
    /// IFF_UP: the administrator's choice (`ip link set … up`).
    public var isAdministrativelyUp: Bool
    /// IFF_LOWER_UP: the driver reports a carrier.
    public var hasCarrier: Bool
    /// RFC 2863 operational state (IF_OPER_*) as `ip link` prints it: `UP`, `DOWN`,
    /// `UNKNOWN`, `LOWERLAYERDOWN`, …
    public var operationalState: String
    public var mtu: Int
    /// nil for links without an Ethernet address (loopback has an all-zero one, kept).
    public var macAddress: MACAddress?
    public var counters: HostLinkCounters
    public var addresses: [HostAddress]

    public init(
        index: Int32, name: String, isAdministrativelyUp: Bool, hasCarrier: Bool,
        operationalState: String, mtu: Int, macAddress: MACAddress?,
        counters: HostLinkCounters, addresses: [HostAddress]
    ) {
        self.index = index
        self.name = name
        self.isAdministrativelyUp = isAdministrativelyUp
        self.hasCarrier = hasCarrier
        self.operationalState = operationalState
        self.mtu = mtu
        self.macAddress = macAddress
        self.counters = counters
        self.addresses = addresses
    }

    public var description: String {
        var text = "\(index): \(name) \(isAdministrativelyUp ? "up" : "down")"
        text += " state \(operationalState) mtu \(mtu)"
        if let macAddress { text += " link/ether \(macAddress)" }
        for address in addresses { text += " \(address.address)/\(address.prefixLength)" }
        return text
    }
}

/// The kernel's per-interface counters (IFLA_STATS64).
public struct HostLinkCounters: Hashable, Sendable {
    public var receivedPackets: UInt64
    public var receivedBytes: UInt64
    public var receiveErrors: UInt64
    public var receiveDropped: UInt64
    public var sentPackets: UInt64
    public var sentBytes: UInt64
    public var sendErrors: UInt64
    public var sendDropped: UInt64

    public init(
        receivedPackets: UInt64 = 0, receivedBytes: UInt64 = 0, receiveErrors: UInt64 = 0,
        receiveDropped: UInt64 = 0, sentPackets: UInt64 = 0, sentBytes: UInt64 = 0,
        sendErrors: UInt64 = 0, sendDropped: UInt64 = 0
    ) {
        self.receivedPackets = receivedPackets
        self.receivedBytes = receivedBytes
        self.receiveErrors = receiveErrors
        self.receiveDropped = receiveDropped
        self.sentPackets = sentPackets
        self.sentBytes = sentBytes
        self.sendErrors = sendErrors
        self.sendDropped = sendDropped
    }
}

/// An address assigned to an interface: `10.0.0.5/24 dev eth1` (the host bits are kept,
/// unlike `IPPrefix`).
public struct HostAddress: Hashable, Sendable, CustomStringConvertible {
    public var interfaceIndex: Int32
    public var address: IPAddress
    public var prefixLength: Int

    public init(interfaceIndex: Int32, address: IPAddress, prefixLength: Int) {
        self.interfaceIndex = interfaceIndex
        self.address = address
        self.prefixLength = prefixLength
    }

    public var description: String { "\(address)/\(prefixLength) (interface \(interfaceIndex))" }
}

/// A route of the main table, as `show network routes` lists it and as the appliance adds
/// and removes its static routes.
public struct HostRoute: Hashable, Sendable, CustomStringConvertible {
    public var destination: IPPrefix
    /// nil for a directly connected (on-link) route.
    public var gateway: IPAddress?
    /// The outgoing interface; for routes the appliance adds, nil lets the kernel find the
    /// interface on which the gateway is on-link.
    public var interfaceIndex: Int32?
    /// The routing protocol that installed it (rtnetlink.h RTPROT_*): `kernel` for the
    /// prefix routes of addresses, `static` for ours, `boot` for iproute2's default.
    public var origin: String
    /// RTA_PRIORITY (`metric` in `ip route`).
    public var metric: UInt32

    public init(
        destination: IPPrefix, gateway: IPAddress? = nil, interfaceIndex: Int32? = nil,
        origin: String = "static", metric: UInt32 = 0
    ) {
        self.destination = destination
        self.gateway = gateway
        self.interfaceIndex = interfaceIndex
        self.origin = origin
        self.metric = metric
    }

    public var description: String {
        var text = destination.length == 0 ? "default" : "\(destination)"
        if let gateway { text += " via \(gateway)" }
        if let interfaceIndex { text += " dev #\(interfaceIndex)" }
        return text + " proto \(origin)"
    }
}

/// The host's interfaces, addresses and routes through libnl-route-3, in the network
/// namespace of the thread that opens it (like every socket): open it on the thread that has
/// entered the namespace, and use it from that thread only.
///
/// Each change is one request that the kernel acknowledges or refuses; a refusal is thrown
/// as `NetlinkError.refused` with the kernel's errno and its extended-ack text, never the
/// lossy libnl error code.
public final class HostNetwork {
    private let socket: OpaquePointer
    /// Where the error callback leaves the kernel's answer to the request in flight.
    private let refusal: Refusal

    public init(timeoutMilliseconds: Int = 5000) throws(NetlinkError) {
        guard let socket = nl_socket_alloc() else {
            throw .socket(call: "nl_socket_alloc", errno: ENOMEM)
        }
        let connected = nl_connect(socket, NETLINK_ROUTE)
        if connected < 0 {
            nl_socket_free(socket)
            throw .socket(call: "connect", errno: Self.errno(forLibnl: connected))
        }
        let descriptor = nl_socket_get_fd(socket)
        // The kernel's explanation of a refusal ("Nexthop has invalid gateway") comes as an
        // extended-ack attribute (netlink(7) NETLINK_EXT_ACK); best effort, as in
        // NetlinkSocket.
        var on: Int32 = 1
        _ = setsockopt(descriptor, SOL_NETLINK, cnlroute_netlink_ext_ack, &on, 4)
        _ = setsockopt(descriptor, SOL_NETLINK, cnlroute_netlink_cap_ack, &on, 4)
        var timeout = timeval(
            tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        _ = setsockopt(
            descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.socket = socket
        self.refusal = Refusal()
        _ = nl_socket_modify_err_cb(
            socket, NL_CB_CUSTOM, recordRefusal, Unmanaged.passUnretained(refusal).toOpaque())
    }

    deinit {
        nl_socket_free(socket)
    }

    // MARK: - Reading

    /// Every link with its addresses and counters, by index.
    public func links() throws(NetlinkError) -> [HostLink] {
        let addresses = try self.addresses()
        var cache: OpaquePointer?
        let status = rtnl_link_alloc_cache(socket, AF_UNSPEC, &cache)
        guard status >= 0, let cache else {
            throw refused("listing links (RTM_GETLINK)", status)
        }
        defer { nl_cache_free(cache) }
        var links: [HostLink] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            let link = current
            let index = Int32(rtnl_link_get_ifindex(link))
            let flags = rtnl_link_get_flags(link)
            var mac: MACAddress?
            if let address = rtnl_link_get_addr(link), nl_addr_get_len(address) == 6 {
                let bytes = UnsafeRawBufferPointer(
                    start: nl_addr_get_binary_addr(address), count: 6)
                mac = MACAddress(loadingFrom: bytes, at: 0)
            }
            var stateText = [CChar](repeating: 0, count: 32)
            rtnl_link_operstate2str(rtnl_link_get_operstate(link), &stateText, stateText.count)
            links.append(
                HostLink(
                    index: index,
                    name: rtnl_link_get_name(link).map { String(cString: $0) } ?? "#\(index)",
                    isAdministrativelyUp: flags & UInt32(cnlroute_iff_up) != 0,
                    hasCarrier: flags & UInt32(cnlroute_iff_lower_up) != 0,
                    operationalState: String(
                        decoding: stateText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                        as: UTF8.self
                    ).uppercased(),
                    mtu: Int(rtnl_link_get_mtu(link)),
                    macAddress: mac,
                    counters: HostLinkCounters(
                        receivedPackets: rtnl_link_get_stat(link, RTNL_LINK_RX_PACKETS),
                        receivedBytes: rtnl_link_get_stat(link, RTNL_LINK_RX_BYTES),
                        receiveErrors: rtnl_link_get_stat(link, RTNL_LINK_RX_ERRORS),
                        receiveDropped: rtnl_link_get_stat(link, RTNL_LINK_RX_DROPPED),
                        sentPackets: rtnl_link_get_stat(link, RTNL_LINK_TX_PACKETS),
                        sentBytes: rtnl_link_get_stat(link, RTNL_LINK_TX_BYTES),
                        sendErrors: rtnl_link_get_stat(link, RTNL_LINK_TX_ERRORS),
                        sendDropped: rtnl_link_get_stat(link, RTNL_LINK_TX_DROPPED)),
                    addresses: addresses.filter { $0.interfaceIndex == index }))
            object = nl_cache_get_next(current)
        }
        return links.sorted { $0.index < $1.index }
    }

    /// The link called `name`, or nil if this namespace has none.
    public func link(named name: String) throws(NetlinkError) -> HostLink? {
        try links().first { $0.name == name }
    }

    /// Every IPv4 and IPv6 address of every link.
    public func addresses() throws(NetlinkError) -> [HostAddress] {
        var cache: OpaquePointer?
        let status = rtnl_addr_alloc_cache(socket, &cache)
        guard status >= 0, let cache else {
            throw refused("listing addresses (RTM_GETADDR)", status)
        }
        defer { nl_cache_free(cache) }
        var addresses: [HostAddress] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            let entry = current
            if let local = rtnl_addr_get_local(entry), let address = Self.ipAddress(local) {
                addresses.append(
                    HostAddress(
                        interfaceIndex: Int32(rtnl_addr_get_ifindex(entry)), address: address,
                        prefixLength: Int(rtnl_addr_get_prefixlen(entry))))
            }
            object = nl_cache_get_next(current)
        }
        return addresses
    }

    /// Every route of an RTM_GETROUTE dump, each message parsed on its own: libnl's route
    /// cache keys routes by destination, table, TOS and metric, so it keeps one of the
    /// fe80::/64 routes of several IPv6 interfaces and drops the others. The caller puts them.
    /// On a socket of its own, whose sequence numbers the raw reads cannot put out of step
    /// with the requests of `socket`.
    private func routeObjects() throws(NetlinkError) -> [OpaquePointer] {
        guard let socket = nl_socket_alloc() else {
            throw .socket(call: "nl_socket_alloc", errno: ENOMEM)
        }
        defer { nl_socket_free(socket) }
        let connected = nl_connect(socket, NETLINK_ROUTE)
        if connected < 0 { throw .socket(call: "connect", errno: Self.errno(forLibnl: connected)) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(
            nl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout,
            socklen_t(MemoryLayout<timeval>.size))
        var request = rtmsg()
        request.rtm_family = UInt8(AF_UNSPEC)
        let sent = withUnsafeMutableBytes(of: &request) {
            nl_send_simple(socket, cnlroute_rtm_getroute, NLM_F_DUMP, $0.baseAddress, $0.count)
        }
        guard sent >= 0 else { throw refused("listing routes (RTM_GETROUTE)", sent) }
        var objects: [OpaquePointer] = []
        var done = false
        while !done {
            var peer = sockaddr_nl()
            var buffer: UnsafeMutablePointer<UInt8>?
            let received = nl_recv(socket, &peer, &buffer, nil)
            guard received > 0, let buffer else {
                for object in objects { rtnl_route_put(object) }
                throw refused("listing routes (RTM_GETROUTE)", received)
            }
            defer { free(buffer) }
            var remaining = received
            var header: UnsafeMutablePointer<nlmsghdr>? = UnsafeMutableRawPointer(buffer)
                .assumingMemoryBound(to: nlmsghdr.self)
            while let current = header, nlmsg_ok(current, remaining) != 0 {
                switch Int32(current.pointee.nlmsg_type) {
                case cnlroute_nlmsg_done: done = true
                case cnlroute_nlmsg_error:
                    // struct nlmsgerr: the negative errno first.
                    // As NetlinkMessage reads it: a negative errno, in a message long enough
                    // to hold one (the netlink fuzz target found -Int32.min trapping there).
                    let code =
                        Int(current.pointee.nlmsg_len) >= MemoryLayout<nlmsghdr>.size + 4
                        ? UnsafeRawPointer(current).advanced(by: MemoryLayout<nlmsghdr>.size)
                            .loadUnaligned(as: Int32.self) : Int32.min
                    done = true
                    if code != 0 {
                        for object in objects { rtnl_route_put(object) }
                        guard (-4095 ... -1).contains(code) else {
                            throw .malformedReply(
                                request: "listing routes (RTM_GETROUTE)",
                                reason: "an error message without an errno")
                        }
                        throw .refused(
                            request: "listing routes (RTM_GETROUTE)", errno: -code,
                            kernelMessage: nil)
                    }
                case cnlroute_rtm_newroute:
                    var route: OpaquePointer?
                    if rtnl_route_parse(current, &route) >= 0, let route { objects.append(route) }
                default: break
                }
                header = nlmsg_next(current, &remaining)
            }
        }
        return objects
    }

    /// The unicast routes of the main table (what `ip route` and `ip -6 route` list).
    public func routes() throws(NetlinkError) -> [HostRoute] {
        let objects = try routeObjects()
        defer { for object in objects { rtnl_route_put(object) } }
        var routes: [HostRoute] = []
        for route in objects {
            guard rtnl_route_get_table(route) == RT_TABLE_MAIN.rawValue,
                rtnl_route_get_type(route) == UInt8(RTN_UNICAST),
                let destination = rtnl_route_get_dst(route).flatMap(Self.prefix)
            else { continue }
            var originText = [CChar](repeating: 0, count: 32)
            rtnl_route_proto2str(Int32(rtnl_route_get_protocol(route)), &originText, 32)
            let origin = String(
                decoding: originText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                as: UTF8.self)
            // libnl's cache merges routes that differ only in their next hop (fe80::/64 on
            // every IPv6 interface) into one object with several: one row per next hop, as
            // `ip route` shows them.
            let hops = Int(rtnl_route_get_nnexthops(route))
            for n in 0..<max(hops, 1) {
                var gateway: IPAddress?
                var interfaceIndex: Int32?
                if n < hops, let hop = rtnl_route_nexthop_n(route, Int32(n)) {
                    gateway = rtnl_route_nh_get_gateway(hop).flatMap(Self.ipAddress)
                    let index = rtnl_route_nh_get_ifindex(hop)
                    if index > 0 { interfaceIndex = Int32(index) }
                }
                routes.append(
                    HostRoute(
                        destination: destination, gateway: gateway,
                        interfaceIndex: interfaceIndex, origin: origin,
                        metric: rtnl_route_get_priority(route)))
            }
        }
        return routes
    }

    // MARK: - Changing

    /// Assigns `address` (RTM_NEWADDR, as `ip addr add`); EEXIST if the link has it already.
    public func addAddress(_ address: HostAddress) throws(NetlinkError) {
        try change(address, adding: true)
    }

    /// Removes `address` (RTM_DELADDR, as `ip addr del`); EADDRNOTAVAIL if the link lacks it.
    public func deleteAddress(_ address: HostAddress) throws(NetlinkError) {
        try change(address, adding: false)
    }

    /// Sets the link's administrative state and/or MTU (rtnl_link_change: RTM_NEWLINK, as
    /// `ip link set dev X up|down mtu N`). A nil argument leaves that property alone.
    public func setLink(index: Int32, up: Bool? = nil, mtu: Int? = nil) throws(NetlinkError) {
        let what = [up.map { $0 ? "up" : "down" }, mtu.map { "mtu \($0)" }].compactMap { $0 }
        let request = "setting interface \(index) \(what.joined(separator: " ")) (RTM_NEWLINK)"
        if let mtu, !(0...Int(UInt32.max)).contains(mtu) {
            throw .refused(request: request, errno: EINVAL, kernelMessage: "MTU out of range")
        }
        var original: OpaquePointer?
        refusal.reset()
        let found = rtnl_link_get_kernel(socket, index, nil, &original)
        guard found >= 0, let original else {
            if refusal.errno == ENODEV || found == -NLE_OBJ_NOTFOUND || found == -NLE_NODEV {
                throw .noSuchInterface(index: index)
            }
            throw refused(request, found)
        }
        defer { rtnl_link_put(original) }
        guard let wanted = rtnl_link_alloc() else { throw .socket(call: "alloc", errno: ENOMEM) }
        defer { rtnl_link_put(wanted) }
        if let up {
            if up {
                rtnl_link_set_flags(wanted, UInt32(cnlroute_iff_up))
            } else {
                rtnl_link_unset_flags(wanted, UInt32(cnlroute_iff_up))
            }
        }
        if let mtu { rtnl_link_set_mtu(wanted, UInt32(mtu)) }
        refusal.reset()
        let status = rtnl_link_change(socket, original, wanted, 0)
        if status < 0 { throw refused(request, status) }
    }

    /// Adds `route` to the main table with protocol `static` (RTM_NEWROUTE with NLM_F_EXCL,
    /// as `ip route add`); EEXIST if the table has that destination and metric already,
    /// ENETUNREACH if the gateway is not on-link.
    public func addRoute(_ route: HostRoute) throws(NetlinkError) {
        try change(route, adding: true)
    }

    /// Removes `route` from the main table (RTM_DELROUTE, as `ip route del`); ESRCH if the
    /// table has no such route.
    public func deleteRoute(_ route: HostRoute) throws(NetlinkError) {
        try change(route, adding: false)
    }

    // MARK: - Internals

    private func change(_ address: HostAddress, adding: Bool) throws(NetlinkError) {
        let request =
            (adding ? "adding address " : "deleting address ")
            + "\(address.address)/\(address.prefixLength) on interface \(address.interfaceIndex)"
            + (adding ? " (RTM_NEWADDR)" : " (RTM_DELADDR)")
        guard let entry = rtnl_addr_alloc() else { throw .socket(call: "alloc", errno: ENOMEM) }
        defer { rtnl_addr_put(entry) }
        let local = try Self.nlAddress(address.address, prefixLength: address.prefixLength)
        defer { nl_addr_put(local) }
        rtnl_addr_set_ifindex(entry, address.interfaceIndex)
        rtnl_addr_set_family(entry, nl_addr_get_family(local))
        let set = rtnl_addr_set_local(entry, local)
        if set < 0 { throw refused(request, set) }
        rtnl_addr_set_prefixlen(entry, Int32(address.prefixLength))
        refusal.reset()
        let status =
            adding
            ? rtnl_addr_add(socket, entry, cnlroute_nlm_f_excl) : rtnl_addr_delete(socket, entry, 0)
        if status < 0 {
            if refusal.errno == ENODEV { throw .noSuchInterface(index: address.interfaceIndex) }
            throw refused(request, status)
        }
    }

    private func change(_ route: HostRoute, adding: Bool) throws(NetlinkError) {
        let request =
            (adding ? "adding route " : "deleting route ") + route.description
            + (adding ? " (RTM_NEWROUTE)" : " (RTM_DELROUTE)")
        guard let entry = rtnl_route_alloc() else { throw .socket(call: "alloc", errno: ENOMEM) }
        defer { rtnl_route_put(entry) }
        let destination = try Self.nlAddress(
            route.destination.address, prefixLength: route.destination.length)
        defer { nl_addr_put(destination) }
        rtnl_route_set_family(entry, UInt8(nl_addr_get_family(destination)))
        rtnl_route_set_table(entry, RT_TABLE_MAIN.rawValue)
        rtnl_route_set_type(entry, UInt8(RTN_UNICAST))
        rtnl_route_set_scope(
            entry, UInt8((route.gateway == nil ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE).rawValue))
        rtnl_route_set_protocol(entry, UInt8(RTPROT_STATIC))
        if route.metric != 0 { rtnl_route_set_priority(entry, route.metric) }
        let set = rtnl_route_set_dst(entry, destination)
        if set < 0 { throw refused(request, set) }
        if route.gateway != nil || route.interfaceIndex != nil {
            // Owned by the route once added (rtnl_route_add_nexthop); freed with it.
            guard let hop = rtnl_route_nh_alloc() else {
                throw .socket(call: "alloc", errno: ENOMEM)
            }
            if let gateway = route.gateway {
                guard let via = try? Self.nlAddress(gateway, prefixLength: nil) else {
                    rtnl_route_nh_free(hop)
                    throw .refused(request: request, errno: EINVAL, kernelMessage: nil)
                }
                rtnl_route_nh_set_gateway(hop, via)
                nl_addr_put(via)
            }
            if let index = route.interfaceIndex { rtnl_route_nh_set_ifindex(hop, index) }
            rtnl_route_add_nexthop(entry, hop)
        }
        refusal.reset()
        let status =
            adding
            ? rtnl_route_add(socket, entry, cnlroute_nlm_f_excl)
            : rtnl_route_delete(socket, entry, 0)
        if status < 0 { throw refused(request, status) }
    }

    /// The kernel's own errno and message when it refused; otherwise the libnl code's nearest
    /// errno (a failure inside libnl, before or after the kernel answered).
    private func refused(_ request: String, _ libnlStatus: Int32) -> NetlinkError {
        if refusal.errno != 0 {
            return .refused(request: request, errno: refusal.errno, kernelMessage: refusal.message)
        }
        let libnlText = String(cString: nl_geterror(libnlStatus))
        return .refused(
            request: request, errno: Self.errno(forLibnl: libnlStatus),
            kernelMessage: "libnl: \(libnlText)")
    }

    /// libnl's negative NLE_* codes back to the errno they most likely came from (its
    /// nl_syserr2nlerr in reverse), for failures that never reached our error callback.
    private static func errno(forLibnl status: Int32) -> Int32 {
        switch -status {
        case NLE_NOMEM: ENOMEM
        case NLE_EXIST: EEXIST
        case NLE_NOADDR: EADDRNOTAVAIL
        case NLE_OBJ_NOTFOUND: ENOENT
        case NLE_AGAIN: EAGAIN
        case NLE_NOACCESS: EACCES
        case NLE_PERM: EPERM
        case NLE_BUSY: EBUSY
        case NLE_RANGE: ERANGE
        case NLE_NODEV: ENODEV
        case NLE_OPNOTSUPP: EOPNOTSUPP
        case NLE_AF_NOSUPPORT: EAFNOSUPPORT
        case NLE_INTR: EINTR
        default: EINVAL
        }
    }

    /// An nl_addr for `address` (AF_INET or AF_INET6, network byte order), with
    /// `prefixLength` when given. The caller puts it.
    private static func nlAddress(_ address: IPAddress, prefixLength: Int?) throws(NetlinkError)
        -> OpaquePointer
    {
        var bytes = [UInt8](repeating: 0, count: 16)
        let family: Int32
        let count: Int
        switch address {
        case .v4(let v4):
            family = AF_INET
            count = 4
            bytes.withUnsafeMutableBytes {
                $0.storeBytes(of: v4.rawValue.bigEndian, as: UInt32.self)
            }
        case .v6(let v6):
            family = AF_INET6
            count = 16
            bytes.withUnsafeMutableBytes { v6.store(into: $0, at: 0) }
        }
        guard
            let built = bytes.withUnsafeMutableBytes({
                nl_addr_build(family, $0.baseAddress, count)
            })
        else { throw .socket(call: "nl_addr_build", errno: ENOMEM) }
        if let prefixLength { nl_addr_set_prefixlen(built, Int32(prefixLength)) }
        return built
    }

    private static func ipAddress(_ address: OpaquePointer) -> IPAddress? {
        guard let start = nl_addr_get_binary_addr(address) else { return nil }
        let bytes = UnsafeRawBufferPointer(start: start, count: Int(nl_addr_get_len(address)))
        switch (nl_addr_get_family(address), bytes.count) {
        case (AF_INET, 4):
            return .v4(
                IPv4Address(rawValue: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))))
        case (AF_INET6, 16):
            return .v6(IPv6Address(loadingFrom: bytes, at: 0))
        default:
            return nil
        }
    }

    /// A route's destination; libnl reports the default route as an empty address of
    /// prefix length 0.
    private static func prefix(_ address: OpaquePointer) -> IPPrefix? {
        let length = Int(nl_addr_get_prefixlen(address))
        if let ip = ipAddress(address) { return IPPrefix(address: ip, length: length) }
        switch nl_addr_get_family(address) {
        case AF_INET: return IPPrefix(address: .v4(IPv4Address(rawValue: 0)), length: 0)
        case AF_INET6: return IPPrefix(address: .v6(IPv6Address(high: 0, low: 0)), length: 0)
        default: return nil
        }
    }
}

/// The kernel's refusal of the request in flight, as the error callback found it.
private final class Refusal {
    var errno: Int32 = 0
    var message: String?

    func reset() {
        errno = 0
        message = nil
    }
}

/// libnl's error callback (nl_recvmsg_err_cb_t): keeps the kernel's errno, which libnl would
/// otherwise fold into a coarser NLE_* code, and the extended-ack message (netlink(7)), then
/// stops the receive so the request fails.
private let recordRefusal:
    @convention(c) (
        UnsafeMutablePointer<sockaddr_nl>?, UnsafeMutablePointer<nlmsgerr>?,
        UnsafeMutableRawPointer?
    ) -> Int32 = { _, error, context in
        guard let error, let context else { return Int32(NL_STOP.rawValue) }
        let refusal = Unmanaged<Refusal>.fromOpaque(context).takeUnretainedValue()
        refusal.errno = -error.pointee.error
        refusal.message = extendedAckMessage(error)
        return Int32(NL_STOP.rawValue)
    }

/// NLMSGERR_ATTR_MSG of an error message, if the kernel sent one. The nlmsgerr sits right
/// after the netlink header; with NLM_F_CAPPED only the request's header follows, otherwise
/// the whole request; the attributes come after that (NLM_F_ACK_TLVS).
private func extendedAckMessage(_ error: UnsafeMutablePointer<nlmsgerr>) -> String? {
    let headerSize = MemoryLayout<nlmsghdr>.size
    let base = UnsafeRawPointer(error) - headerSize
    let header = base.loadUnaligned(as: nlmsghdr.self)
    guard Int32(header.nlmsg_flags) & cnlroute_nlm_f_ack_tlvs != 0 else { return nil }
    let total = Int(header.nlmsg_len)
    var offset = headerSize + MemoryLayout<nlmsgerr>.size
    if Int32(header.nlmsg_flags) & cnlroute_nlm_f_capped == 0 {
        offset += Int(error.pointee.msg.nlmsg_len) - headerSize
    }
    while offset + 4 <= total {
        let length = Int(base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        let type = Int32(base.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self))
        guard length >= 4, offset + length <= total else { return nil }
        if type & 0x3FFF == cnlroute_nlmsgerr_attr_msg {
            let text = UnsafeRawBufferPointer(start: base + offset + 4, count: length - 4)
            return String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
        }
        offset += (length + 3) & ~3
    }
    return nil
}
