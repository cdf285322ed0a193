/// How the MTU of a router interface (both ends of its veth) is chosen: the router must not
/// send a packet its logical switch cannot carry, or vtepd drops it without a word; with the
/// right MTU the kernel in the router's namespace answers frag-needed (IPv4) or packet too
/// big (IPv6) instead, and the sender's path MTU adapts.
public enum LinkMTU: Hashable, Sendable, CustomStringConvertible {
    /// The switch is bound to these physical ports of the gateway: the router is a host on
    /// their Ethernet segment, which their MTU defines (the smallest of them).
    case ports([String])
    /// The switch reaches its other hosts only through tunnels: the underlay's MTU less what
    /// encapsulation adds to an inner IP packet (outer IP, UDP + VXLAN or GRE, inner
    /// Ethernet).
    case underlay(less: Int)

    public var description: String {
        switch self {
        case .ports(let ports): "the MTU of \(ports.joined(separator: ", "))"
        case .underlay(let less): "the underlay's MTU less \(less)"
        }
    }

    /// What the tunnels of a switch add to an inner IP packet: outer IPv4 (20) or IPv6 (40),
    /// then UDP (8) + VXLAN (8), or the GRE header (`greHeader`: 8 with the key, plus 4
    /// each for checksum and sequence number), and the inner Ethernet header (14).
    public static func tunnelOverhead(vxlan: Bool, greHeader: Int, ipv6: Bool) -> Int {
        (ipv6 ? 40 : 20) + (vxlan ? 16 : greHeader) + 14
    }

    /// The MTU, given how to read an interface's MTU in vtepd's namespace and the underlay's
    /// name; nil when what it depends on cannot be read.
    public func resolve(underlay: String?, interfaceMTU: (String) -> Int?) -> Int? {
        switch self {
        case .ports(let ports): ports.compactMap(interfaceMTU).min()
        case .underlay(let less):
            underlay.flatMap(interfaceMTU).map { $0 - less }.flatMap { $0 >= 1280 ? $0 : nil }
        }
    }
}
