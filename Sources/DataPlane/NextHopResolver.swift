import Forwarding
import Netlink
import Packet

/// Finds, for each locator, the Ethernet address the data plane's prebuilt outer header must
/// carry: the route to the VTEP gives the next hop (the VTEP itself, or the gateway), the
/// kernel's neighbour table its MAC. Multicast groups map to their MAC without asking.
///
/// Runs on the control plane, once a second and on every configuration change. A locator
/// whose next hop is not yet known is asked for (the kernel sends ARP or neighbour
/// solicitation) and left out: the data plane sends to it through the kernel's UDP path
/// meanwhile. A route through another interface than the underlay is reported, and the
/// locator also stays on the kernel path, which follows the route.
public struct NextHopResolver: Sendable {
    public let underlayIndex: Int32

    public init(underlayIndex: Int32) { self.underlayIndex = underlayIndex }

    public struct Outcome: Sendable {
        public var hops: [Locator: NextHop] = [:]
        /// Locators left on the kernel path, with the reason.
        public var unresolved: [Locator: Unresolved] = [:]

        public init(hops: [Locator: NextHop] = [:], unresolved: [Locator: Unresolved] = [:]) {
            self.hops = hops
            self.unresolved = unresolved
        }
    }

    /// Why a locator has no next hop yet.
    public enum Unresolved: Hashable, Sendable, CustomStringConvertible {
        /// The kernel was asked (ARP, neighbour solicitation) for this next hop's MAC: normal
        /// for a moment, a problem when it lasts.
        case awaitingNeighbour(IPAddress)
        /// The route to it leaves through another interface than the underlay.
        case routedVia(interface: String)
        /// The route or neighbour lookup failed.
        case lookupFailed(String)

        public var description: String {
            switch self {
            case .awaitingNeighbour(let hop):
                "no neighbour entry for next hop \(hop) yet (ARP/ND asked)"
            case .routedVia(let name): "routed via \(name), not the underlay interface"
            case .lookupFailed(let reason): reason
            }
        }
    }

    public func resolve(_ locators: [Locator]) -> Outcome {
        var outcome = Outcome()
        for locator in Set(locators) {
            if let hop = NextHop.multicast(locator.ip) {
                outcome.hops[locator] = hop
                continue
            }
            do {
                let route = try Route.lookup(to: locator.ip)
                guard route.interfaceIndex == underlayIndex else {
                    outcome.unresolved[locator] = .routedVia(interface: route.interfaceName)
                    continue
                }
                if let mac = try Neighbour.lookup(
                    route.nextHop, interfaceIndex: route.interfaceIndex)
                {
                    outcome.hops[locator] = NextHop(destination: mac)
                } else {
                    try Neighbour.solicit(route.nextHop, interfaceIndex: route.interfaceIndex)
                    outcome.unresolved[locator] = .awaitingNeighbour(route.nextHop)
                }
            } catch {
                outcome.unresolved[locator] = .lookupFailed("\(error)")
            }
        }
        return outcome
    }
}
