import Foundation
import Glibc
import NamespaceLab
import Netlink
import Testing

/// `TrafficControl.redirectIngress` against the kernel, in a namespace: what it installs, as
/// `tc` shows it, what it does to a packet, and its refusals.
@Suite("Netlink: an ingress redirect through traffic control, in a namespace")
struct TrafficControlTests {
    @Test func whatARedirectedDeviceReceivesLeavesTheOther() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgtc") { lab in
            let namespace = try lab.namespace("t", ipv6: false)
            let other = try lab.namespace("o", ipv6: false)
            // Frames sent from `b` arrive at `a`, whose ingress sends them out of `c`; `d`,
            // `c`'s peer, receives them.
            let (a, b) = try lab.veth("a", in: namespace, "b", in: other)
            let (c, d) = try lab.veth("c", in: namespace, "d", in: other)
            try lab.ip("-n", other, "addr", "add", "192.0.2.1/24", "dev", b)
            try lab.inNamespace(namespace) { () throws -> Void in
                try TrafficControl.redirectIngress(
                    from: Int32(if_nametoindex(a)), to: Int32(if_nametoindex(c)),
                    transport: NetlinkSocket())
            }
            let filters = try lab.ip("netns", "exec", namespace, "tc", "filter", "show", "dev", a, "ingress")
            #expect(filters.contains("u32"), "\(filters)")
            #expect(filters.contains("mirred (Egress Redirect to device \(c))"), "\(filters)")

            func received() throws -> Int {
                let line = try lab.ip("-n", other, "-s", "-o", "link", "show", "dev", d)
                // "… \    RX:  bytes packets … \    <bytes> <packets> …"
                let parts = line.components(separatedBy: "\\")
                guard let rx = parts.firstIndex(where: { $0.contains("RX:") }), rx + 1 < parts.count
                else { return -1 }
                let fields = parts[rx + 1].split(separator: " ")
                return fields.count > 1 ? Int(fields[1]) ?? -1 : -1
            }
            let before = try received()
            // Three broadcast pings out of b (no IPv6 in either namespace: nothing else moves).
            _ = try? lab.ip(
                "netns", "exec", other, "ping", "-b", "-c", "3", "-i", "0.2", "-W", "1",
                "192.0.2.255")
            #expect(try received() >= before + 3, "what a received did not leave c")

            // Refusals: the qdisc is there already; a device that does not exist.
            let again = refusal {
                try lab.inNamespace(namespace) { () throws -> Void in
                    try TrafficControl.redirectIngress(
                        from: Int32(if_nametoindex(a)), to: Int32(if_nametoindex(c)),
                        transport: NetlinkSocket())
                }
            }
            guard case .refused(let request, let errno, _) = again else {
                Issue.record("a second clsact qdisc was not refused: \(String(describing: again))")
                return
            }
            #expect(errno == EEXIST && request == "clsact qdisc (RTM_NEWQDISC)")
            let missing = refusal {
                try lab.inNamespace(namespace) { () throws -> Void in
                    try TrafficControl.redirectIngress(
                        from: 999_999, to: Int32(if_nametoindex(c)), transport: NetlinkSocket())
                }
            }
            #expect(missing != nil, "a redirect from a device that does not exist")
        }
    }
}
