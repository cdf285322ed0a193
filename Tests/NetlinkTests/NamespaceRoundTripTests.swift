import Foundation
import NamespaceLab
import Netlink
import Packet
import TestSupport
import Testing

/// The near end's addresses and routes: `near` (10.201.0.1, fd00:201::1) joined by a veth
/// to `far` (10.201.0.2, fd00:201::2, MAC 02:00:5e:20:01:02), plus routes through `far` to
/// 198.51.100.0/24 and 2001:db8:201::/64. No default route.
private struct Pair {
    let near: String
    let far: String
    let nearLink: String
    let farLink: String
    static let farMAC = MACAddress(0x02, 0x00, 0x5E, 0x20, 0x01, 0x02)

    init(_ lab: NamespaceLab) throws {
        near = try lab.namespace("n")
        far = try lab.namespace("f")
        // The kernel sends a neighbour solicitation only from a valid link-local address
        // (ndisc_send_ns) and drops it silently while that is tentative; without DAD the
        // veth's link-local is valid at once, as a long-up underlay's is.
        for namespace in [near, far] {
            try lab.ip(
                "netns", "exec", namespace, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
        }
        (nearLink, farLink) = try lab.veth("n", in: near, "f", in: far)
        try lab.ip("-n", far, "link", "set", farLink, "address", "\(Self.farMAC)")
        for (namespace, link, v4, v6) in [
            (near, nearLink, "10.201.0.1/24", "fd00:201::1/64"),
            (far, farLink, "10.201.0.2/24", "fd00:201::2/64"),
        ] {
            try lab.ip("-n", namespace, "addr", "add", v4, "dev", link)
            try lab.ip("-n", namespace, "addr", "add", v6, "dev", link, "nodad")
        }
        try lab.ip("-n", near, "route", "add", "198.51.100.0/24", "via", "10.201.0.2")
        try lab.ip("-n", near, "-6", "route", "add", "2001:db8:201::/64", "via", "fd00:201::2")
    }
}

private func interfaceIndex(_ name: String) -> Int32 { Int32(bitPattern: if_nametoindex(name)) }

@Suite("Netlink: round trips with the kernel in a namespace")
struct NamespaceRoundTripTests {
    @Test func routesWithAndWithoutGatewayAndMissingOnes() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgnl") { lab in
            let pair = try Pair(lab)
            let link = pair.nearLink
            let destinations = [
                "10.201.0.2", "198.51.100.7", "fd00:201::2", "2001:db8:201::9", "10.201.0.1",
            ].map { IPAddress($0)! }
            let (index, routes) = try lab.inNamespace(pair.near) { () throws -> (Int32, [Route]) in
                var routes: [Route] = []
                for destination in destinations { routes.append(try Route.lookup(to: destination)) }
                return (interfaceIndex(link), routes)
            }
            let expected = [
                Route(
                    destination: IPAddress("10.201.0.2")!, interfaceIndex: index,
                    interfaceName: link, preferredSource: IPAddress("10.201.0.1")),
                Route(
                    destination: IPAddress("198.51.100.7")!, interfaceIndex: index,
                    interfaceName: link, gateway: IPAddress("10.201.0.2"),
                    preferredSource: IPAddress("10.201.0.1")),
                Route(
                    destination: IPAddress("fd00:201::2")!, interfaceIndex: index,
                    interfaceName: link, preferredSource: IPAddress("fd00:201::1")),
                Route(
                    destination: IPAddress("2001:db8:201::9")!, interfaceIndex: index,
                    interfaceName: link, gateway: IPAddress("fd00:201::2"),
                    preferredSource: IPAddress("fd00:201::1")),
            ]
            #expect(Array(routes.prefix(4)) == expected)
            let nextHops = ["10.201.0.2", "10.201.0.2", "fd00:201::2", "fd00:201::2"]
            #expect(Array(routes.map(\.nextHop).prefix(4)) == nextHops.map { IPAddress($0)! })
            // One of our own addresses: a local route (through lo), nothing to resolve.
            #expect(routes[4].kind == .local)
            #expect(routes[4].interfaceName == "lo")

            let failures = try lab.inNamespace(pair.near) {
                ["203.0.113.9", "2001:db8:999::1"].map { (destination: String) -> NetlinkError? in
                    do {
                        _ = try Route.lookup(to: IPAddress(destination)!)
                        return nil
                    } catch let error as NetlinkError {
                        return error
                    } catch {
                        return nil
                    }
                }
            }
            for (failure, destination) in zip(failures, ["203.0.113.9", "2001:db8:999::1"]) {
                guard case .noRoute(let to, let errno, _)? = failure else {
                    Issue.record("lookup of \(destination): \(String(describing: failure))")
                    continue
                }
                #expect(to == IPAddress(destination))
                #expect(errno == ENETUNREACH)
                #expect(failure!.description.hasPrefix("no route to \(destination): "))
            }
        }
    }

    /// The next hop is unknown until solicited; after `solicit` the kernel resolves it by
    /// itself (ARP, neighbour discovery) and `lookup` returns the far end's MAC.
    @Test(arguments: ["10.201.0.2", "fd00:201::2"])
    func neighbourIsResolvedAfterSolicit(_ address: String) async throws {
        let nextHop = try #require(IPAddress(address))
        try await NamespaceLab.runOnOwnThread(tag: "vgnl") { lab in
            let pair = try Pair(lab)
            let link = pair.nearLink
            let (before, justAfter, resolved, polls) = try lab.inNamespace(pair.near) {
                let index = interfaceIndex(link)
                let socket = try NetlinkSocket()
                let before = try Neighbour.entry(nextHop, interfaceIndex: index, using: socket)
                try Neighbour.solicit(nextHop, interfaceIndex: index, using: socket)
                let justAfter = try Neighbour.entry(nextHop, interfaceIndex: index, using: socket)
                var polls = 0
                let resolved = try waitUntil("\(nextHop) to resolve") {
                    polls += 1
                    return try Neighbour.lookup(nextHop, interfaceIndex: index)
                }
                return (before, justAfter, resolved, polls)
            }
            #expect(
                before == nil, "the entry existed before solicit: \(String(describing: before))")
            let state = try #require(justAfter?.state, "solicit created no entry")
            // The reply may already have come back by the time we look.
            #expect(state == .incomplete || state == .reachable, "state \(state)")
            #expect(resolved == Pair.farMAC)
            print("\(address) resolved after \(polls) polls (state right after solicit: \(state))")
        }
    }

    /// Nobody answers for 10.201.0.77: the entry stays INCOMPLETE (then FAILED) and
    /// `lookup` keeps returning nil rather than a stale or zero MAC.
    @Test func unansweredSolicitationLeavesNoAddress() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgnl") { lab in
            let pair = try Pair(lab)
            let link = pair.nearLink
            let (entry, found, missingInterface) = try lab.inNamespace(pair.near) {
                let index = interfaceIndex(link)
                let silent = IPAddress("10.201.0.77")!
                try Neighbour.solicit(silent, interfaceIndex: index)
                // The far end answers for its own address on the same link: once that answer
                // is in, one for the silent address, solicited first, would be too.
                try Neighbour.solicit(IPAddress("10.201.0.2")!, interfaceIndex: index)
                try waitUntil("10.201.0.2 to resolve") {
                    try Neighbour.lookup(IPAddress("10.201.0.2")!, interfaceIndex: index) != nil
                }
                let socket = try NetlinkSocket()
                let entry = try Neighbour.entry(silent, interfaceIndex: index, using: socket)
                let found = try Neighbour.lookup(silent, interfaceIndex: index)
                var missingInterface: NetlinkError?
                do {
                    try Neighbour.solicit(silent, interfaceIndex: 9999)
                } catch let error as NetlinkError {
                    missingInterface = error
                }
                return (entry, found, missingInterface)
            }
            let state = try #require(entry?.state)
            #expect(state == .incomplete || state == .failed, "state \(state)")
            #expect(entry?.linkAddress == nil)
            #expect(found == nil)
            #expect(missingInterface == .noSuchInterface(index: 9999))
        }
    }
}
