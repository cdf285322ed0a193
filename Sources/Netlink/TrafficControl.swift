import CMnl
import Glibc

/// Traffic control through rtnetlink, as `tc` does it: what `vxlan-transmit tunnel-gso` needs
/// to send a device's received packets straight out of another device.
public enum TrafficControl {
    /// Every packet received on interface `from` is sent out of interface `to` as it is, by
    /// the kernel's traffic control at `from`'s ingress (a `clsact` qdisc, a `u32` filter
    /// that matches everything and a `mirred` egress-redirect action, as
    /// `tc qdisc add dev FROM clsact; tc filter add dev FROM ingress protocol all u32 match
    /// u32 0 0 action mirred egress redirect dev TO`): no routing, no forwarding, no
    /// netfilter forward chain, and a GSO packet stays one packet for `to` to segment or
    /// carry. The qdisc, and with it the filter, goes with the device. Throws the kernel's
    /// refusal (for instance EEXIST for a clsact qdisc already there, or ENOENT and EOPNOTSUPP
    /// without u32 or mirred in the kernel).
    public static func redirectIngress(
        from: Int32, to: Int32, transport: NetlinkTransport
    ) throws(NetlinkError) {
        try exchange(qdiscRequest(interfaceIndex: from, sequence: transport.nextSequence()), transport)
        try exchange(
            filterRequest(interfaceIndex: from, redirectTo: to, sequence: transport.nextSequence()),
            transport)
    }

    // TC_H_CLSACT and TC_H_MIN_INGRESS (linux/pkt_sched.h): the clsact qdisc's parent, and
    // its ingress hook.
    static let clsact: UInt32 = 0xFFFF_FFF1
    static let ingress: UInt32 = 0xFFFF_FFF2
    // Attribute numbers (linux/rtnetlink.h, linux/pkt_cls.h, linux/tc_act/tc_mirred.h).
    static let tcaKind = 1, tcaOptions = 2
    static let u32Selector = 5, u32Actions = 7
    static let actKind = 1, actOptions = 2
    static let mirredParameters = 2

    /// RTM_NEWQDISC: a clsact qdisc on the interface.
    static func qdiscRequest(interfaceIndex: Int32, sequence: UInt32) -> [UInt8] {
        build(
            type: RTM_NEWQDISC, sequence: sequence, interfaceIndex: interfaceIndex,
            handle: 0xFFFF_0000, parent: clsact, info: 0
        ) { header in
            mnl_attr_put_strz(header, UInt16(tcaKind), "clsact")
        }
    }

    /// RTM_NEWTFILTER: at the ingress hook, priority 1, every protocol, a u32 filter whose one
    /// key (mask 0) matches every packet, and its action: mirred, egress redirect to
    /// `redirectTo`, the packet stolen.
    static func filterRequest(interfaceIndex: Int32, redirectTo: Int32, sequence: UInt32) -> [UInt8] {
        // struct tc_u32_sel: flags (TC_U32_TERMINAL), offshift, nkeys 1, a pad byte, offmask,
        // off, offoff, hoff, hmask; then struct tc_u32_key: mask, val, off, offmask, all 0.
        var selector = [UInt8](repeating: 0, count: 16 + 16)
        selector[0] = 1
        selector[2] = 1
        // struct tc_mirred: index, capab, action (TC_ACT_STOLEN 4), refcnt, bindcnt, eaction
        // (TCA_EGRESS_REDIR 1), ifindex.
        let mirred: [UInt32] = [0, 0, 4, 0, 0, 1, UInt32(bitPattern: redirectTo)]
        // tcm_info: the priority in the upper half, the protocol (ETH_P_ALL, network order)
        // in the lower.
        let all = UInt32(UInt16(0x0003).bigEndian)
        return build(
            type: RTM_NEWTFILTER, sequence: sequence, interfaceIndex: interfaceIndex, handle: 0,
            parent: ingress, info: 1 << 16 | all
        ) { header in
            mnl_attr_put_strz(header, UInt16(tcaKind), "u32")
            let options = mnl_attr_nest_start(header, UInt16(tcaOptions))
            selector.withUnsafeBytes {
                mnl_attr_put(header, UInt16(u32Selector), $0.count, $0.baseAddress)
            }
            let actions = mnl_attr_nest_start(header, UInt16(u32Actions))
            let first = mnl_attr_nest_start(header, 1)
            mnl_attr_put_strz(header, UInt16(actKind), "mirred")
            let parameters = mnl_attr_nest_start(header, UInt16(actOptions))
            mirred.withUnsafeBytes {
                mnl_attr_put(header, UInt16(mirredParameters), $0.count, $0.baseAddress)
            }
            for nest in [parameters, first, actions, options] { mnl_attr_nest_end(header, nest) }
        }
    }

    /// A request with a `struct tcmsg` (family AF_UNSPEC) and the attributes `attributes`
    /// puts, as libmnl lays them out (nested ones included).
    private static func build(
        type: Int, sequence: UInt32, interfaceIndex: Int32, handle: UInt32, parent: UInt32,
        info: UInt32, _ attributes: (UnsafeMutablePointer<nlmsghdr>) -> Void
    ) -> [UInt8] {
        var family = tcmsg()
        family.tcm_family = UInt8(AF_UNSPEC)
        family.tcm_ifindex = interfaceIndex
        family.tcm_handle = handle
        family.tcm_parent = parent
        family.tcm_info = info
        return NetlinkMessage.request(
            type: type, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            sequence: sequence, familyHeader: withUnsafeBytes(of: family) { Array($0) },
            put: attributes)
    }

    private static func exchange(_ request: [UInt8], _ transport: NetlinkTransport)
        throws(NetlinkError)
    {
        let reply = try transport.exchange(request)
        let answer: NetlinkMessage.Answer
        do {
            answer = try NetlinkMessage.answer(
                to: NetlinkMessage.sequence(of: request)!, in: reply, replyType: -1,
                familyHeaderSize: MemoryLayout<tcmsg>.size)
        } catch {
            throw NetlinkError(error, request: request)
        }
        switch answer {
        case .acknowledged: return
        case .refused(let errno, let message):
            throw .refused(
                request: NetlinkMessage.describe(request), errno: errno, kernelMessage: message)
        case .message:
            throw .malformedReply(
                request: NetlinkMessage.describe(request), reason: "a message instead of an acknowledgement")
        }
    }
}
