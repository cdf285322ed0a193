import DataPlane
import Datapath
import Packet
import Routing

/// vtepd's netdev ingress table on the underlay (`vxlan-receive ring`): it drops the kernel's
/// copy of each unicast VXLAN datagram to a tunnel address before the kernel's IP input, once
/// the underlay's receive ring (`AccessPort.vxlanReceiver`, which sees frames before this
/// hook) has taken it. It matches exactly what the ring's socket filter accepts: frames of at
/// most `AccessPort.vxlanRingLongestFrame` bytes to this host's MAC, UDP to the VXLAN port in
/// an IPv4 packet to the tunnel address that is not a fragment, or in an IPv6 packet whose
/// next header is UDP. Installed before the ring opens (so no datagram is read twice),
/// replaced whole at start (one transaction), and removed when vtepd stops; a table a crashed
/// vtepd left is found and replaced, or removed when vtepd now reads through the sockets.
enum VXLANIngress {
    static let table = "vtepd_vxlan"

    /// The ruleset for `settings`, as one nft transaction that replaces any earlier table.
    static func ruleset(_ settings: DataPlaneSettings) -> String {
        var rules = [
            "add table netdev \(table)",
            "delete table netdev \(table)",
            "add table netdev \(table)",
            "add chain netdev \(table) ingress { type filter hook ingress device "
                + "\"\(settings.underlay)\" priority -500; policy accept; }",
        ]
        // At the ingress hook a frame's length no longer counts its Ethernet header.
        let longest = AccessPort.vxlanRingLongestFrame - 14
        if let v4 = settings.localIPv4 {
            rules.append(
                "add rule netdev \(table) ingress meta length <= \(longest) meta pkttype host"
                    + " ip daddr \(v4) ip frag-off & 0x3fff == 0 udp dport \(settings.vxlanPort)"
                    + " counter drop")
        }
        if let v6 = settings.localIPv6 {
            rules.append(
                "add rule netdev \(table) ingress meta length <= \(longest) meta pkttype host"
                    + " ip6 daddr \(v6) ip6 nexthdr udp udp dport \(settings.vxlanPort)"
                    + " counter drop")
        }
        return rules.joined(separator: "\n") + "\n"
    }

    static func install(_ settings: DataPlaneSettings) throws(RouterError) {
        _ = try Nftables.run(ruleset(settings))
    }

    /// Removes the table; returns whether there was one.
    @discardableResult
    static func remove() throws(RouterError) -> Bool {
        guard (try? Nftables.run("list table netdev \(table)\n")) != nil else { return false }
        _ = try Nftables.run("delete table netdev \(table)\n")
        return true
    }
}
