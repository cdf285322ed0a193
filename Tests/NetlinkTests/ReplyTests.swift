import Glibc
import Packet
import Testing

@testable import Netlink

/// A transport that checks each request against the expected bytes and answers with a
/// recorded reply, so parsing is tested exactly without a kernel.
final class ReplayTransport: NetlinkTransport {
    let portID: UInt32 = 0x1234
    private var sequence: UInt32 = 0
    private var replies: [[UInt8]]
    private(set) var requests: [[UInt8]] = []

    init(replies: [[UInt8]]) { self.replies = replies }

    func nextSequence() -> UInt32 {
        sequence += 1
        return sequence
    }

    func exchange(_ request: [UInt8]) throws(NetlinkError) -> [UInt8] {
        requests.append(request)
        guard !replies.isEmpty else { throw .noReply(request: NetlinkMessage.describe(request)) }
        return replies.removeFirst()
    }
}

/// Little-endian field bytes, as netlink carries them on this host.
private func le16(_ value: UInt16) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}
private func le32(_ value: UInt32) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// One netlink attribute, padded to 4 bytes.
private func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
    let bytes = le16(UInt16(4 + payload.count)) + le16(type) + payload
    return bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
}

/// One netlink message addressed to port 0x1234.
private func message(type: UInt16, flags: UInt16 = 0, sequence: UInt32, body: [UInt8]) -> [UInt8] {
    le32(UInt32(16 + body.count)) + le16(type) + le16(flags) + le32(sequence) + le32(0x1234)
        + body
}

/// NLMSG_ERROR as Linux sends it with NETLINK_CAP_ACK and NETLINK_EXT_ACK: the negative
/// errno, the failing request's header, then NLMSGERR_ATTR_MSG.
private func errorReply(sequence: UInt32, errno: Int32, text: String?, request: [UInt8]) -> [UInt8]
{
    var body = le32(UInt32(bitPattern: -errno)) + Array(request[0..<16])
    var flags: UInt16 = 0x100  // NLM_F_CAPPED
    if let text {
        flags |= 0x200  // NLM_F_ACK_TLVS
        body += attribute(1, Array(text.utf8) + [0])
    }
    return message(type: 2, flags: flags, sequence: sequence, body: body)
}

private let interfaceNames: @Sendable (Int32) -> String? = { $0 == 5 ? "uplink0" : nil }

@Suite("Netlink: reading replies")
struct ReplyTests {
    /// `ip route get 198.51.100.7` through a gateway: RTM_NEWROUTE with table, dst, oif,
    /// prefsrc, gateway and uid, as Linux 6.x answers.
    @Test func routeThroughGateway() throws {
        let destination = IPAddress("198.51.100.7")!
        let request = Route.request(to: destination, sequence: 9)
        let rtmsg: [UInt8] = [2, 32, 0, 0, 254, 0, 0, 1] + le32(0x200)  // RTM_F_CLONED
        let reply = message(
            type: 24, sequence: 9,
            body: rtmsg + attribute(15, le32(254)) + attribute(1, [198, 51, 100, 7])
                + attribute(4, le32(5)) + attribute(7, [192, 0, 2, 1])
                + attribute(5, [192, 0, 2, 254]) + attribute(25, le32(0)))
        let route = try Route.read(
            reply, answering: request, to: destination, interfaceName: interfaceNames)
        #expect(
            route
                == Route(
                    destination: destination, interfaceIndex: 5, interfaceName: "uplink0",
                    gateway: IPAddress("192.0.2.254"), preferredSource: IPAddress("192.0.2.1")))
        #expect(route.nextHop == IPAddress("192.0.2.254"))
        #expect(route.description == "198.51.100.7 via 192.0.2.254 dev uplink0 src 192.0.2.1")
    }

    /// An IPv4 route through an IPv6 next hop (RFC 5549) names it in RTA_VIA.
    @Test func routeViaIPv6NextHop() throws {
        let destination = IPAddress("198.51.100.7")!
        let request = Route.request(to: destination, sequence: 1)
        let via = le16(UInt16(AF_INET6)) + IPAddress("fe80::1")!.bytes
        let reply = message(
            type: 24, sequence: 1,
            body: [2, 32, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0] + attribute(4, le32(5))
                + attribute(18, via))
        let route = try Route.read(
            reply, answering: request, to: destination, interfaceName: interfaceNames)
        #expect(route.gateway == IPAddress("fe80::1"))
        #expect(route.nextHop == IPAddress("fe80::1"))
    }

    @Test func onLinkRouteHasNoGatewayAndItsNextHopIsTheDestination() throws {
        let destination = IPAddress("2001:db8::9")!
        let request = Route.request(to: destination, sequence: 1)
        let reply = message(
            type: 24, sequence: 1,
            body: [10, 128, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0] + attribute(4, le32(5))
                + attribute(7, IPAddress("2001:db8::1")!.bytes))
        let route = try Route.read(
            reply, answering: request, to: destination, interfaceName: interfaceNames)
        #expect(route.gateway == nil)
        #expect(route.nextHop == destination)
        #expect(route.preferredSource == IPAddress("2001:db8::1"))
    }

    @Test func missingRouteIsNamedWithTheKernelsWords() throws {
        let destination = IPAddress("203.0.113.9")!
        let request = Route.request(to: destination, sequence: 1)
        let reply = errorReply(
            sequence: 1, errno: ENETUNREACH, text: "no route in table", request: request)
        let error = #expect(throws: NetlinkError.self) {
            try Route.read(
                reply, answering: request, to: destination, interfaceName: interfaceNames)
        }
        #expect(
            error
                == .noRoute(to: destination, errno: ENETUNREACH, kernelMessage: "no route in table")
        )
        #expect(
            error?.description
                == "no route to 203.0.113.9: Network is unreachable (kernel: no route in table)"
                + " (add a route to it, or a default route, on the underlay)")
    }

    @Test func routeToAVanishedInterfaceIsNamed() throws {
        let destination = IPAddress("192.0.2.7")!
        let request = Route.request(to: destination, sequence: 1)
        let reply = message(
            type: 24, sequence: 1,
            body: [2, 32, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0] + attribute(4, le32(77)))
        #expect(throws: NetlinkError.noSuchInterface(index: 77)) {
            try Route.read(
                reply, answering: request, to: destination, interfaceName: interfaceNames)
        }
    }

    /// Replies that do not answer the request are reported, never trusted or trapped on.
    @Test(
        arguments: [
            (
                "stale sequence",
                message(type: 24, sequence: 8, body: [UInt8](repeating: 0, count: 12))
            ),
            ("short header", message(type: 24, sequence: 1, body: [2, 32])),
            ("garbage", [UInt8](repeating: 0xFF, count: 7)),
            ("empty", []),
            ("length past the end", le32(200) + le16(24) + le16(0) + le32(1) + le32(0x1234)),
            (
                // libmnl's mnl_nlmsg_ok reads the length as an int: 2 GiB or more fitted, and
                // the walk jumped out of the datagram (fuzz/crashes/netlink/crash-6095b40e…).
                "length of 4 GiB less 65,500",
                le32(0xFFFF_0024) + le16(24) + le16(0) + le32(7) + le32(0x1234)
                    + [UInt8](repeating: 0, count: 20)
            ),
            (
                // -Int32.min overflowed (fuzz/crashes/netlink/crash-3bcaa419…).
                "error of Int32.min",
                message(
                    type: 2, flags: 0x100, sequence: 1,
                    body: le32(0x8000_0000) + le32(16) + [UInt8](repeating: 0, count: 12))
            ),
            (
                "positive error",
                message(
                    type: 2, flags: 0x100, sequence: 1,
                    body: le32(5) + le32(16) + [UInt8](repeating: 0, count: 12))
            ),
            (
                "route without interface",
                message(type: 24, sequence: 1, body: [2, 32, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0])
            ),
        ] as [(String, [UInt8])])
    func malformedRouteReplies(_ name: String, _ reply: [UInt8]) throws {
        let destination = IPAddress("192.0.2.7")!
        let request = Route.request(to: destination, sequence: 1)
        let error = #expect(throws: NetlinkError.self, "\(name)") {
            try Route.read(
                reply, answering: request, to: destination, interfaceName: interfaceNames)
        }
        guard case .malformedReply(let what, _)? = error else {
            Issue.record("\(name): \(String(describing: error))")
            return
        }
        #expect(what == "route lookup (RTM_GETROUTE)")
    }

    @Test func neighbourStates() throws {
        let address = IPAddress("10.0.0.2")!
        let mac: [UInt8] = [0x02, 0, 0x5E, 0, 0x53, 0x01]
        func reply(state: UInt16, sequence: UInt32, lladdr: Bool = true) -> [UInt8] {
            let ndmsg: [UInt8] = [2, 0, 0, 0] + le32(5) + le16(state) + [0, 1]
            return message(
                type: 28, sequence: sequence,
                body: ndmsg + attribute(1, address.bytes) + (lladdr ? attribute(2, mac) : [])
                    + attribute(4, le32(1)))
        }
        let states: [(UInt16, Bool)] = [
            (0x01, false), (0x02, true), (0x04, true), (0x08, true), (0x10, true),
            (0x20, false), (0x40, true), (0x80, true),
        ]
        let transport = ReplayTransport(
            replies: states.enumerated().map { reply(state: $1.0, sequence: UInt32($0 + 1)) })
        for (state, usable) in states {
            let found = try Neighbour.lookup(address, interfaceIndex: 5, using: transport)
            #expect(
                found == (usable ? MACAddress(0x02, 0, 0x5E, 0, 0x53, 0x01) : nil), "state \(state)"
            )
        }
        #expect(
            transport.requests.first
                == Neighbour.lookupRequest(address, interfaceIndex: 5, sequence: 1))
        // An INCOMPLETE entry has no link-layer address at all.
        let incomplete = ReplayTransport(replies: [reply(state: 0x01, sequence: 1, lladdr: false)])
        let entry = try Neighbour.entry(address, interfaceIndex: 5, using: incomplete)
        #expect(
            entry
                == Neighbour(
                    address: address, interfaceIndex: 5, linkAddress: nil, state: .incomplete))
        #expect(entry?.state.description == "INCOMPLETE")
    }

    /// A neighbour reply whose length is not a multiple of 4 and whose last attribute
    /// reaches into the padding it lacks: the attribute is not read (it was read past the
    /// datagram's end, fuzz/crashes/netlink/crash-ae4a1b0a…).
    @Test func anAttributeIntoMissingPaddingIsNotRead() throws {
        let address = IPAddress("10.0.0.2")!
        // A REACHABLE entry whose NDA_LLADDR claims 10 bytes (a MAC) of which the datagram
        // holds 9: libmnl's 4-byte-aligned tail would have let the sixth MAC byte be read
        // from beyond the datagram.
        let ndmsg: [UInt8] = [2, 0, 0, 0] + le32(5) + le16(0x02) + [0, 1]
        let reply = message(
            type: 28, sequence: 1,
            body: ndmsg + attribute(1, address.bytes) + le16(10) + le16(2) + [2, 0, 0x5E, 0, 0x53])
        #expect(reply.count % 4 == 1)
        let transport = ReplayTransport(replies: [reply])
        let entry = try Neighbour.entry(address, interfaceIndex: 5, using: transport)
        #expect(entry?.address == address)
        #expect(entry?.linkAddress == nil, "a MAC read past the datagram: \(String(describing: entry))")
    }

    @Test func absentNeighbourIsNilAndOtherRefusalsAreErrors() throws {
        let address = IPAddress("10.0.0.2")!
        let request = Neighbour.lookupRequest(address, interfaceIndex: 5, sequence: 1)
        let absent = ReplayTransport(replies: [
            errorReply(
                sequence: 1, errno: ENOENT, text: "Neighbour entry not found", request: request)
        ])
        #expect(try Neighbour.lookup(address, interfaceIndex: 5, using: absent) == nil)
        let noDevice = ReplayTransport(replies: [
            errorReply(sequence: 1, errno: ENODEV, text: nil, request: request)
        ])
        #expect(throws: NetlinkError.noSuchInterface(index: 5)) {
            try Neighbour.lookup(address, interfaceIndex: 5, using: noDevice)
        }
        let denied = ReplayTransport(replies: [
            errorReply(sequence: 1, errno: EPERM, text: nil, request: request)
        ])
        let error = #expect(throws: NetlinkError.self) {
            try Neighbour.lookup(address, interfaceIndex: 5, using: denied)
        }
        #expect(
            error?.description
                == "neighbour lookup for 10.0.0.2 is not permitted: Operation not permitted"
                + " (vtepd needs CAP_NET_ADMIN)")
    }

    @Test func solicitationIsAcknowledged() throws {
        let address = IPAddress("fd00::2")!
        let request = Neighbour.solicitRequest(address, interfaceIndex: 5, sequence: 1)
        let ack = message(
            type: 2, flags: 0x100, sequence: 1, body: le32(0) + Array(request[0..<16]))
        let transport = ReplayTransport(replies: [ack])
        try Neighbour.solicit(address, interfaceIndex: 5, using: transport)
        #expect(transport.requests == [request])
    }
}
