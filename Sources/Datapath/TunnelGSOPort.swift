import CLinuxNet
import Glibc
import Packet

/// VXLAN super-packets handed to the kernel whole (`vxlan-transmit tunnel-gso`): a TAP device
/// of vtepd's own, written with the 24-byte virtio_net_hdr whose UDP-tunnel extension
/// (Linux 6.17+, `VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4` or `_IPV6`) says "a VXLAN packet around a TCP
/// super-frame: cut the inner TCP at `gso_size`". The kernel takes each write as a packet
/// received on the TAP, and traffic control at the device's ingress sends it straight out of
/// the underlay as it is (`Netlink.TrafficControl.redirectIngress`, set up by the caller): no
/// routing, no forwarding, none of the host's netfilter chains but the underlay's egress
/// hooks, so the packet carries the next hop's MAC and the TTL the wire should see. It stays
/// one `SKB_GSO_UDP_TUNNEL` skb as far as it can: a NIC with UDP-tunnel segmentation (or a
/// veth) carries it whole, and a kernel VTEP on the far side of a veth decapsulates it whole,
/// as between two kernel VTEPs. Without it a super-frame leaves as UDP GSO trains
/// (`UnderlayPort.sendTrains`), which every receiver other than a UDP_GRO socket cuts back
/// into datagrams.
///
/// The device sends nothing of its own: IPv6 is off on it (no link-local address, no router
/// solicitations) and it is up without ARP. It lives as long as the descriptor: a crashed
/// vtepd leaves none.
public final class TunnelGSOPort {
    public let interfaceName: String
    public let interfaceIndex: Int32
    public let descriptor: Int32

    /// Creates the device `name` (at most 15 bytes), IPv6 off, and brings it up.
    public init(name: String) throws(SystemError) {
        let subject = SystemError.Subject.interface(name)
        let descriptor = try System.callBlocking("TUNSETIFF", subject: subject) {
            clinuxnet_open_tunnel_gso_tap(name)
        }
        let index: Int32
        do {
            // A kernel without IPv6 has no disable_ipv6 to write.
            let key = "net/ipv6/conf/\(name)/disable_ipv6"
            if Self.readSysctl(key) != nil { try Self.writeSysctl(key, "1", subject: subject) }
            _ = try System.callBlocking("SIOCSIFFLAGS", subject: subject) {
                clinuxnet_interface_up_noarp(name)
            }
            index = try System.interfaceIndex(name)
        } catch {
            close(descriptor)
            throw error
        }
        interfaceName = name
        interfaceIndex = index
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Writes one packet: `header` (the virtio_net_hdr, then the outer Ethernet, IP, UDP and
    /// VXLAN headers) followed by `first` and `second` (the inner frame, in two pieces when a
    /// VLAN tag is left out). Returns false when the device's queue would block; throws the
    /// kernel's refusal (EINVAL for a header it does not take).
    public func send(
        header: UnsafeRawBufferPointer, _ first: UnsafeRawBufferPointer,
        _ second: UnsafeRawBufferPointer
    ) throws(SystemError) -> Bool {
        var vectors = (
            iovec(iov_base: UnsafeMutableRawPointer(mutating: header.baseAddress), iov_len: header.count),
            iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress), iov_len: first.count),
            iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress), iov_len: second.count)
        )
        let count: Int32 = second.isEmpty ? 2 : 3
        let descriptor = self.descriptor
        let result: IOResult<Int>
        do {
            result = try withUnsafeMutableBytes(of: &vectors) { (raw) throws(SystemError) in
                let base = raw.baseAddress!.assumingMemoryBound(to: iovec.self)
                return try System.call("writev") { writev(descriptor, base, count) }
            }
        } catch {
            throw named(error)
        }
        switch result {
        case .processed: return true
        case .wouldBlock: return false
        }
    }

    /// The error with this device's name, built apart from `send` so the name is retained
    /// only on failure, never per packet.
    @inline(never)
    private func named(_ error: SystemError) -> SystemError {
        SystemError(call: error.call, errno: error.errno, subject: .interface(interfaceName))
    }

    static func readSysctl(_ key: String) -> String? {
        guard let file = fopen("/proc/sys/" + key, "re") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, 64, file) != nil else { return nil }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.trimmingSuffix { $0 == "\n" }
    }

    static func writeSysctl(
        _ key: String, _ value: String, subject: SystemError.Subject
    ) throws(SystemError) {
        let descriptor = try System.callBlocking("open", subject: .path("/proc/sys/" + key)) {
            open("/proc/sys/" + key, O_WRONLY | O_CLOEXEC)
        }
        defer { close(descriptor) }
        let written = value.utf8CString.withUnsafeBytes { raw in
            write(descriptor, raw.baseAddress, raw.count - 1)
        }
        if written < 0 {
            throw SystemError(call: "write", errno: Glibc.errno, subject: .path("/proc/sys/" + key))
        }
    }
}

extension String {
    fileprivate func trimmingSuffix(while drop: (Character) -> Bool) -> String {
        var text = self
        while let last = text.last, drop(last) { text.removeLast() }
        return text
    }
}
