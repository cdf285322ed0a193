import Foundation
import NamespaceLab
import Netlink
import Packet
import Testing

/// What `ip -n NAMESPACE ARGS…` prints, for checking the kernel's state with a tool that is
/// not ours.
private func ipOutput(_ arguments: String...) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: NamespaceLab.ipCommand!)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw LabError(description: "ip \(arguments.joined(separator: " ")) failed")
    }
    return String(decoding: data, as: UTF8.self)
}

/// Catches a NetlinkError thrown by `body`, for checking refusals.
func refusal(_ body: () throws -> Void) -> NetlinkError? {
    do {
        try body()
        return nil
    } catch let error as NetlinkError {
        return error
    } catch {
        return nil
    }
}

@Suite("Netlink: host configuration through libnl-route-3, in a namespace")
struct HostNetworkTests {
    @Test func addressesLinkStateMTUAndRoutesReachTheKernel() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgnl") { lab in
            let namespace = try lab.namespace("h")
            let other = try lab.namespace("o")
            let (link, _) = try lab.veth("a", in: namespace, "b", in: other)
            try lab.ip("-n", namespace, "link", "set", link, "down")

            let index = try lab.inNamespace(namespace) { () throws -> Int32 in
                let network = try HostNetwork()
                let found = try #require(try network.link(named: link))
                #expect(!found.isAdministrativelyUp)
                #expect(found.mtu == 1500)
                #expect(found.macAddress != nil)
                try network.setLink(index: found.index, up: true, mtu: 1400)
                try network.addAddress(
                    HostAddress(
                        interfaceIndex: found.index, address: IPAddress("192.0.2.10")!,
                        prefixLength: 24))
                try network.addAddress(
                    HostAddress(
                        interfaceIndex: found.index, address: IPAddress("2001:db8:5::10")!,
                        prefixLength: 64))
                try network.addRoute(
                    HostRoute(
                        destination: IPPrefix("198.51.100.0/24")!,
                        gateway: IPAddress("192.0.2.1")))
                try network.addRoute(
                    HostRoute(
                        destination: IPPrefix("0.0.0.0/0")!, gateway: IPAddress("192.0.2.254")))
                return found.index
            }
            let addresses = try ipOutput("-n", namespace, "-o", "addr", "show", "dev", link)
            #expect(addresses.contains("inet 192.0.2.10/24"), "\(addresses)")
            #expect(addresses.contains("inet6 2001:db8:5::10/64"), "\(addresses)")
            let state = try ipOutput("-n", namespace, "-o", "link", "show", "dev", link)
            #expect(state.contains("mtu 1400"), "\(state)")
            #expect(state.contains("<BROADCAST,MULTICAST,UP"), "\(state)")
            let routes = try ipOutput("-n", namespace, "route", "show")
            #expect(
                routes.contains("198.51.100.0/24 via 192.0.2.1 dev \(link) proto static"),
                "\(routes)")
            #expect(
                routes.contains("default via 192.0.2.254 dev \(link) proto static"), "\(routes)")

            // Read back through our own API, then undo everything.
            let (readLinks, readRoutes) = try lab.inNamespace(namespace) {
                let network = try HostNetwork()
                return (try network.links(), try network.routes())
            }
            let readLink = try #require(readLinks.first { $0.name == link })
            #expect(readLink.index == index)
            #expect(readLink.mtu == 1400)
            #expect(readLink.isAdministrativelyUp)
            #expect(
                readLink.addresses.contains(
                    HostAddress(
                        interfaceIndex: index, address: IPAddress("192.0.2.10")!, prefixLength: 24))
            )
            #expect(readLinks.contains { $0.name == "lo" })
            #expect(
                readRoutes.contains {
                    $0.destination == IPPrefix("0.0.0.0/0")!
                        && $0.gateway == IPAddress("192.0.2.254")
                        && $0.origin == "static" && $0.interfaceIndex == index
                }, "\(readRoutes)")
            #expect(
                readRoutes.contains {
                    $0.destination == IPPrefix("192.0.2.0/24")! && $0.gateway == nil
                        && $0.origin == "kernel"
                }, "\(readRoutes)")

            try lab.inNamespace(namespace) {
                let network = try HostNetwork()
                try network.deleteRoute(
                    HostRoute(
                        destination: IPPrefix("0.0.0.0/0")!, gateway: IPAddress("192.0.2.254")))
                try network.deleteRoute(
                    HostRoute(
                        destination: IPPrefix("198.51.100.0/24")!, gateway: IPAddress("192.0.2.1")))
                try network.deleteAddress(
                    HostAddress(
                        interfaceIndex: index, address: IPAddress("192.0.2.10")!, prefixLength: 24))
                try network.setLink(index: index, up: false)
            }
            let after = try ipOutput("-n", namespace, "-o", "addr", "show", "dev", link)
            #expect(!after.contains("192.0.2.10"), "\(after)")
            let routesAfter = try ipOutput("-n", namespace, "route", "show")
            #expect(!routesAfter.contains("via"), "\(routesAfter)")
            let stateAfter = try ipOutput("-n", namespace, "-o", "link", "show", "dev", link)
            #expect(!stateAfter.contains(",UP"), "\(stateAfter)")
        }
    }

    /// fe80::/64 on each IPv6 interface: the same destination with different next hops,
    /// which libnl's cache keeps as one route; each is its own row, as `ip -6 route` shows.
    @Test func routesThatDifferOnlyInTheirInterfaceAreEachListed() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgll") { lab in
            let namespace = try lab.namespace("h")
            let other = try lab.namespace("o")
            let links = try (0..<3).map { n in
                try lab.veth("a\(n)", in: namespace, "b\(n)", in: other).0
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while try ipOutput("-n", namespace, "-6", "route", "show").components(
                separatedBy: "fe80::/64"
            ).count < 4 {
                guard ContinuousClock.now < deadline else {
                    throw LabError(description: "no fe80::/64 route on every link")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            let (routes, indices) = try lab.inNamespace(namespace) {
                let network = try HostNetwork()
                let indices = try links.map { try #require(try network.link(named: $0)).index }
                return (try network.routes(), indices)
            }
            let linkLocal = routes.filter { $0.destination == IPPrefix("fe80::/64")! }
            #expect(
                Set(linkLocal.compactMap(\.interfaceIndex)) == Set(indices), "\(linkLocal)")
            #expect(linkLocal.count == 3, "\(linkLocal)")
        }
    }

    /// The kernel's own errno and explanation come through, not libnl's coarser code.
    @Test func refusalsCarryTheKernelsErrno() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgnl") { lab in
            let namespace = try lab.namespace("r")
            let other = try lab.namespace("s")
            let (link, _) = try lab.veth("a", in: namespace, "b", in: other)
            try lab.ip("-n", namespace, "addr", "add", "192.0.2.10/24", "dev", link)
            let failures = try lab.inNamespace(namespace) { () throws -> [NetlinkError?] in
                let network = try HostNetwork()
                let index = try #require(try network.link(named: link)).index
                let existing = HostAddress(
                    interfaceIndex: index, address: IPAddress("192.0.2.10")!, prefixLength: 24)
                return [
                    // Gateway not on any connected network.
                    refusal {
                        try network.addRoute(
                            HostRoute(
                                destination: IPPrefix("198.51.100.0/24")!,
                                gateway: IPAddress("203.0.113.1")))
                    },
                    refusal { try network.addAddress(existing) },
                    refusal {
                        try network.deleteRoute(
                            HostRoute(
                                destination: IPPrefix("198.51.100.0/24")!,
                                gateway: IPAddress("192.0.2.1")))
                    },
                    refusal { try network.setLink(index: 9999, up: true) },
                    refusal { try network.setLink(index: index, mtu: 20) },
                    refusal {
                        try network.deleteAddress(
                            HostAddress(
                                interfaceIndex: index, address: IPAddress("192.0.2.99")!,
                                prefixLength: 24))
                    },
                ]
            }
            guard case .refused(let request, let errno, let message)? = failures[0] else {
                Issue.record("off-link gateway: \(String(describing: failures[0]))")
                return
            }
            #expect(errno == ENETUNREACH)
            #expect(request.contains("adding route 198.51.100.0/24 via 203.0.113.1"))
            print("off-link gateway: \(failures[0]!) [extended ack: \(message ?? "none")]")
            guard case .refused(_, let exists, _)? = failures[1] else {
                Issue.record("duplicate address: \(String(describing: failures[1]))")
                return
            }
            #expect(exists == EEXIST)
            guard case .refused(_, let missing, _)? = failures[2] else {
                Issue.record("missing route: \(String(describing: failures[2]))")
                return
            }
            #expect(missing == ESRCH)
            #expect(failures[3] == .noSuchInterface(index: 9999))
            guard case .refused(_, let tooSmall, _)? = failures[4] else {
                Issue.record("mtu 20: \(String(describing: failures[4]))")
                return
            }
            #expect(tooSmall == EINVAL)
            guard case .refused(_, let notThere, _)? = failures[5] else {
                Issue.record("missing address: \(String(describing: failures[5]))")
                return
            }
            #expect(notThere == EADDRNOTAVAIL)
        }
    }
}
