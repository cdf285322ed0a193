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
        NetlinkMessage.request(
            type: RTM_NEWQDISC, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            sequence: sequence,
            familyHeader: tcmsg(interfaceIndex: interfaceIndex, handle: 0xFFFF_0000, parent: clsact, info: 0),
            attributes: [(tcaKind, cString("clsact"))])
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
        var mirred = [UInt8]()
        for word in [UInt32(0), 0, 4, 0, 0, 1, UInt32(bitPattern: redirectTo)] {
            withUnsafeBytes(of: word) { mirred += $0 }
        }
        let action = attribute(
            1,
            attribute(actKind, cString("mirred"))
                + attribute(actOptions, attribute(mirredParameters, mirred)))
        let options = attribute(u32Selector, selector) + attribute(u32Actions, action)
        // tcm_info: the priority in the upper half, the protocol (ETH_P_ALL, network order)
        // in the lower.
        let all = UInt32(UInt16(0x0003).bigEndian)  // ETH_P_ALL
        return NetlinkMessage.request(
            type: RTM_NEWTFILTER, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            sequence: sequence,
            familyHeader: tcmsg(interfaceIndex: interfaceIndex, handle: 0, parent: ingress, info: 1 << 16 | all),
            attributes: [(tcaKind, cString("u32")), (tcaOptions, options)])
    }

    /// struct tcmsg: family (AF_UNSPEC) and three pad bytes, ifindex, handle, parent, info.
    static func tcmsg(interfaceIndex: Int32, handle: UInt32, parent: UInt32, info: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4)
        for word in [UInt32(bitPattern: interfaceIndex), handle, parent, info] {
            withUnsafeBytes(of: word) { bytes += $0 }
        }
        return bytes
    }

    /// One netlink attribute (struct nlattr: length, type), padded to 4 bytes: nested
    /// attributes are built by putting attributes in the payload.
    static func attribute(_ type: Int, _ payload: [UInt8]) -> [UInt8] {
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt16(4 + payload.count)) { bytes += $0 }
        withUnsafeBytes(of: UInt16(type)) { bytes += $0 }
        bytes += payload
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    static func cString(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

    private static func exchange(_ request: [UInt8], _ transport: NetlinkTransport)
        throws(NetlinkError)
    {
        let reply = try transport.exchange(request)
        let answer: NetlinkMessage.Answer
        do {
            answer = try NetlinkMessage.answer(
                to: NetlinkMessage.sequence(of: request)!, in: reply, replyType: -1,
                familyHeaderSize: 20)
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
