import CLinuxNet
import Glibc
import Packet

/// VXLAN super-packets handed to the kernel whole (`vxlan-transmit tunnel-gso`): a TAP device
/// of vtepd's own, written with the 24-byte virtio_net_hdr whose UDP-tunnel extension
/// (Linux 6.17+, `VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4` or `_IPV6`) says "a VXLAN packet around a TCP
/// super-frame: cut the inner TCP at `gso_size`". The kernel takes each write as a packet
/// received on the TAP, routes it to the underlay like any forwarded packet (so the host's
/// routes and neighbours choose the next hop), and keeps it one `SKB_GSO_UDP_TUNNEL` skb as
/// far as it can: a NIC with UDP-tunnel segmentation (or a veth) carries it whole, and a
/// kernel VTEP on the far side of a veth decapsulates it whole, as between two kernel VTEPs.
/// Without it a super-frame leaves as UDP GSO trains (`UnderlayPort.sendTrains`), which every
/// receiver other than a UDP_GRO socket cuts back into datagrams.
///
/// What the device needs of the host, set at open on this device only: IPv4 forwarding
/// (`net.ipv4.conf.DEVICE.forwarding`), packets from the host's own address accepted
/// (`accept_local`), no reverse-path filter on it (`rp_filter` 0; so the host-wide
/// `net.ipv4.conf.all.rp_filter` must not be strict, 1), and IPv6 off, or, for VXLAN over
/// IPv6, on without an address of its own and with `force_forwarding` (so the device sends
/// nothing of its own either way). The packets cross the host's forward chain (a firewall must accept
/// UDP to the VXLAN port from this device) and have their TTL lowered by one, which the
/// caller offsets (the hop limit over IPv6 too). The device lives as long as the descriptor: a crashed vtepd leaves none.
public final class TunnelGSOPort {
    public let interfaceName: String
    /// The device's MAC address: the destination of every frame written to it.
    public let hardwareAddress: MACAddress
    public let descriptor: Int32
    /// Whether VXLAN over IPv6 goes through the device too: asked for, and the kernel can
    /// forward IPv6 from this device alone (`force_forwarding`, Linux 6.17+).
    public let carriesIPv6: Bool

    /// Creates the device `name` (at most 15 bytes) and prepares the host for it; with
    /// `ipv6`, for VXLAN over IPv6 as well: IPv6 on the device without any address of its
    /// own (`addr_gen_mode` 1, no router advertisements, no autoconfiguration), so it sends
    /// nothing, and forwarding from it (`force_forwarding`).
    public init(name: String, ipv6: Bool = false) throws(SystemError) {
        let subject = SystemError.Subject.interface(name)
        var address: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        let descriptor = try withUnsafeMutableBytes(of: &address) {
            (raw) throws(SystemError) -> Int32 in
            let bytes = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            return try System.callBlocking("TUNSETIFF", subject: subject) {
                clinuxnet_open_tunnel_gso_tap(name, bytes)
            }
        }
        let six = "net/ipv6/conf/\(name)/"
        let withIPv6 = ipv6 && Self.readSysctl(six + "force_forwarding") != nil
        do {
            var settings = [
                ("net/ipv4/conf/\(name)/rp_filter", "0"),
                ("net/ipv4/conf/\(name)/accept_local", "1"),
                ("net/ipv4/conf/\(name)/forwarding", "1"),
            ]
            if withIPv6 {
                settings += [
                    (six + "addr_gen_mode", "1"), (six + "accept_ra", "0"),
                    (six + "autoconf", "0"), (six + "dad_transmits", "0"),
                    (six + "force_forwarding", "1"), (six + "disable_ipv6", "0"),
                ]
            } else if Self.readSysctl(six + "disable_ipv6") != nil {
                // A kernel without IPv6 has no disable_ipv6 to write.
                settings.append((six + "disable_ipv6", "1"))
            }
            for (key, value) in settings { try Self.writeSysctl(key, value, subject: subject) }
            _ = try System.callBlocking("SIOCSIFFLAGS", subject: subject) {
                clinuxnet_interface_up_noarp(name)
            }
        } catch {
            close(descriptor)
            throw error
        }
        carriesIPv6 = withIPv6
        interfaceName = name
        self.descriptor = descriptor
        hardwareAddress = withUnsafeBytes(of: address) { MACAddress(loadingFrom: $0, at: 0) }
    }

    deinit { close(descriptor) }

    /// Why this host cannot forward from the device whatever vtepd sets on it, or nil:
    /// strict reverse-path filtering host-wide (`net.ipv4.conf.all.rp_filter` 1) drops a
    /// packet whose source is a local address arriving on a device the route back to that
    /// address does not use, and the kernel applies the stricter of "all" and the device's.
    public static var hostRefusal: String? {
        if readSysctl("net/ipv4/conf/all/rp_filter") == "1" {
            return "net.ipv4.conf.all.rp_filter is 1 (strict reverse-path filtering)"
        }
        return nil
    }

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
