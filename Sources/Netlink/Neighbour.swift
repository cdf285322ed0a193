import CMnl
import Glibc
import Packet

/// An entry of the kernel's neighbour table (ARP for IPv4, NDP for IPv6) on one interface.
///
/// The data plane reads the next hop's MAC from here rather than resolving it itself: the
/// kernel already runs ARP/ND with its timers, probes and gratuitous-ARP handling, and
/// every other host tool (`ip neigh`) sees the same answer.
public struct Neighbour: Hashable, Sendable, CustomStringConvertible {
    /// ndm_state, the NUD_* bits of linux/neighbour.h.
    public struct State: OptionSet, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        public static let incomplete = State(rawValue: UInt16(NUD_INCOMPLETE))
        public static let reachable = State(rawValue: UInt16(NUD_REACHABLE))
        public static let stale = State(rawValue: UInt16(NUD_STALE))
        public static let delay = State(rawValue: UInt16(NUD_DELAY))
        public static let probe = State(rawValue: UInt16(NUD_PROBE))
        public static let failed = State(rawValue: UInt16(NUD_FAILED))
        public static let noARP = State(rawValue: UInt16(NUD_NOARP))
        public static let permanent = State(rawValue: UInt16(NUD_PERMANENT))

        /// States whose link-layer address the kernel itself would send to: confirmed
        /// (REACHABLE, PERMANENT, NOARP) or being re-confirmed while still used (STALE,
        /// DELAY, PROBE). INCOMPLETE and FAILED have none.
        public static let usable: State = [
            .reachable, .stale, .delay, .probe, .permanent, .noARP,
        ]

        public var isUsable: Bool { !isDisjoint(with: .usable) }

        public var description: String {
            let names: [(State, String)] = [
                (.incomplete, "INCOMPLETE"), (.reachable, "REACHABLE"), (.stale, "STALE"),
                (.delay, "DELAY"), (.probe, "PROBE"), (.failed, "FAILED"), (.noARP, "NOARP"),
                (.permanent, "PERMANENT"),
            ]
            let set = names.filter { contains($0.0) }.map(\.1)
            return set.isEmpty ? "NONE" : set.joined(separator: "|")
        }
    }

    public var address: IPAddress
    public var interfaceIndex: Int32
    /// NDA_LLADDR when it is an Ethernet address; nil before resolution and on interfaces
    /// without one.
    public var linkAddress: MACAddress?
    public var state: State

    public init(address: IPAddress, interfaceIndex: Int32, linkAddress: MACAddress?, state: State) {
        self.address = address
        self.interfaceIndex = interfaceIndex
        self.linkAddress = linkAddress
        self.state = state
    }

    public var description: String {
        "\(address) dev #\(interfaceIndex) lladdr \(linkAddress.map { "\($0)" } ?? "none") \(state)"
    }

    // MARK: - Lookup

    /// The Ethernet address to send frames for `address` to, when the kernel has a usable
    /// one (see `State.usable`); nil when the entry is absent, INCOMPLETE or FAILED. Call
    /// `solicit` to have the kernel resolve it.
    public static func lookup(_ address: IPAddress, interfaceIndex: Int32)
        throws(NetlinkError) -> MACAddress?
    {
        try lookup(address, interfaceIndex: interfaceIndex, using: NetlinkSocket())
    }

    /// `lookup(_:interfaceIndex:)` over `transport`.
    public static func lookup(
        _ address: IPAddress, interfaceIndex: Int32, using transport: some NetlinkTransport
    ) throws(NetlinkError) -> MACAddress? {
        guard let entry = try entry(address, interfaceIndex: interfaceIndex, using: transport),
            entry.state.isUsable
        else { return nil }
        return entry.linkAddress
    }

    /// The kernel's entry for `address` on the interface, whatever its state; nil when
    /// there is none (RTM_GETNEIGH for one entry, Linux 4.20 and later).
    public static func entry(
        _ address: IPAddress, interfaceIndex: Int32, using transport: some NetlinkTransport
    ) throws(NetlinkError) -> Neighbour? {
        let request = lookupRequest(
            address, interfaceIndex: interfaceIndex, sequence: transport.nextSequence())
        let answer = try answer(
            transport.exchange(request), to: request, replyType: RTM_NEWNEIGH)
        switch answer {
        case .refused(ENOENT, _):
            return nil
        case .refused(let errno, let message):
            throw failure(errno, message, "neighbour lookup for \(address)", interfaceIndex)
        case .acknowledged:
            throw NetlinkError(
                MalformedReply("an acknowledgement instead of an entry"), request: request)
        case .message(let message):
            let header = message.familyHeader.withUnsafeBytes { $0.loadUnaligned(as: ndmsg.self) }
            let link = message.attributes[UInt16(NDA_LLADDR)].flatMap { bytes in
                bytes.count == 6
                    ? MACAddress(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]) : nil
            }
            return Neighbour(
                address: address, interfaceIndex: header.ndm_ifindex, linkAddress: link,
                state: State(rawValue: header.ndm_state))
        }
    }

    // MARK: - Resolution

    /// Has the kernel start resolving `address` on the interface and returns at once: the
    /// entry is created if missing and sent through the kernel's own state machine as if a
    /// packet needed it (NTF_USE, as `ip neigh replace … use`), so an ARP request or
    /// neighbour solicitation goes out now, with the kernel's retries and timers. Poll
    /// `lookup` (or follow neighbour events) for the result. An entry that is already
    /// usable is left as it is (at most re-confirmed, STALE → DELAY).
    ///
    /// IPv6: the kernel sends a neighbour solicitation only from a valid link-local address
    /// of the interface (`ndisc_send_ns`); while that address is still tentative (DAD, about
    /// a second after the link comes up) the solicitation is silently skipped and the next
    /// retry, a second later, is the first on the wire.
    public static func solicit(_ address: IPAddress, interfaceIndex: Int32) throws(NetlinkError) {
        try solicit(address, interfaceIndex: interfaceIndex, using: NetlinkSocket())
    }

    /// `solicit(_:interfaceIndex:)` over `transport`.
    public static func solicit(
        _ address: IPAddress, interfaceIndex: Int32, using transport: some NetlinkTransport
    ) throws(NetlinkError) {
        let request = solicitRequest(
            address, interfaceIndex: interfaceIndex, sequence: transport.nextSequence())
        switch try answer(transport.exchange(request), to: request, replyType: Int(NLMSG_ERROR)) {
        case .acknowledged:
            return
        case .refused(let errno, let message):
            throw failure(errno, message, "neighbour solicitation for \(address)", interfaceIndex)
        case .message:
            throw NetlinkError(
                MalformedReply("a message instead of an acknowledgement"), request: request)
        }
    }

    // MARK: - Requests

    /// RTM_GETNEIGH for one entry: `ndmsg` with family and interface (state, flags and type
    /// must be zero, the kernel refuses anything else) and NDA_DST.
    static func lookupRequest(_ address: IPAddress, interfaceIndex: Int32, sequence: UInt32)
        -> [UInt8]
    {
        request(
            type: RTM_GETNEIGH, flags: NLM_F_REQUEST, address, interfaceIndex: interfaceIndex,
            state: 0, ndmFlags: 0, sequence: sequence)
    }

    /// RTM_NEWNEIGH with NLM_F_CREATE (an absent entry is made) but neither NLM_F_REPLACE
    /// nor NLM_F_EXCL, state INCOMPLETE and NTF_USE: the kernel then runs
    /// `neigh_event_send` on the entry instead of overwriting it (net/core/neighbour.c
    /// `neigh_add`), exactly what its own output path does for an unresolved next hop.
    static func solicitRequest(_ address: IPAddress, interfaceIndex: Int32, sequence: UInt32)
        -> [UInt8]
    {
        request(
            type: RTM_NEWNEIGH, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, address,
            interfaceIndex: interfaceIndex, state: UInt16(NUD_INCOMPLETE),
            ndmFlags: UInt8(cmnl_ntf_use), sequence: sequence)
    }

    private static func request(
        type: Int, flags: Int32, _ address: IPAddress, interfaceIndex: Int32, state: UInt16,
        ndmFlags: UInt8, sequence: UInt32
    ) -> [UInt8] {
        var header = ndmsg()
        header.ndm_family = address.family
        header.ndm_ifindex = interfaceIndex
        header.ndm_state = state
        header.ndm_flags = ndmFlags
        return NetlinkMessage.request(
            type: type, flags: flags, sequence: sequence,
            familyHeader: withUnsafeBytes(of: header) { Array($0) },
            attributes: [(NDA_DST, address.bytes)])
    }

    private static func answer(_ reply: [UInt8], to request: [UInt8], replyType: Int)
        throws(NetlinkError) -> NetlinkMessage.Answer
    {
        do {
            return try NetlinkMessage.answer(
                to: NetlinkMessage.sequence(of: request)!, in: reply, replyType: replyType,
                familyHeaderSize: MemoryLayout<ndmsg>.size)
        } catch {
            throw NetlinkError(error, request: request)
        }
    }

    private static func failure(
        _ errno: Int32, _ message: String?, _ request: String, _ interfaceIndex: Int32
    ) -> NetlinkError {
        errno == ENODEV
            ? .noSuchInterface(index: interfaceIndex)
            : .refused(request: request, errno: errno, kernelMessage: message)
    }
}
