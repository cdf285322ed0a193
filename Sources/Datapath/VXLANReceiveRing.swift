import CLinuxNet
import Packet

extension AccessPort {
    /// The longest frame (Ethernet header included) the underlay's VXLAN ring takes: what
    /// fits a ring frame with its headers. Longer ones (GRO trains of up to 64 KB, the GSO
    /// super-packets a veth neighbour hands over whole, jumbo frames) stay with the kernel's
    /// UDP input and reach the worker through the UDP_GRO socket, which reads a train with one
    /// copy and batches them, where the ring would queue each whole on the packet socket
    /// besides and hand it over with a recvmsg(2) of its own.
    public static let vxlanRingLongestFrame = 1_920

    /// A receive ring on the underlay that takes unicast VXLAN to our tunnel addresses as the
    /// wire has it, Ethernet header and all (`vxlan-receive ring`): only frames of at most
    /// `vxlanRingLongestFrame` bytes to this host's MAC, untagged, carrying UDP to `port` in
    /// an IPv4 packet to `localIPv4` that is not a fragment or an IPv6 packet to `localIPv6`
    /// whose next header is UDP (a socket filter, attached before the socket is bound). The
    /// kernel goes on delivering the same datagrams to the UDP socket unless something drops
    /// them before its IP input (vtepd's netdev ingress table, `VXLANIngress` in Gateway).
    /// Frames this host sends are never read back (PACKET_IGNORE_OUTGOING); each comes with
    /// its virtio_net_hdr, which says whether its checksum was verified.
    public static func vxlanReceiver(
        interface: String, localIPv4: IPv4Address?, localIPv6: IPv6Address?, port: UInt16,
        receiveBuffer: Int
    ) throws(SystemError) -> AccessPort {
        try AccessPort(
            interface: interface, promiscuous: false, receiveBuffer: receiveBuffer,
            vnetHeader: true, ringFrames: receiveBuffer / ringFrameSize
        ) { descriptor throws(SystemError) in
            let v6 = localIPv6 ?? IPv6Address(high: 0, low: 0)
            let words: [UInt32] = [
                UInt32(truncatingIfNeeded: v6.high >> 32), UInt32(truncatingIfNeeded: v6.high),
                UInt32(truncatingIfNeeded: v6.low >> 32), UInt32(truncatingIfNeeded: v6.low),
            ]
            _ = try System.callBlocking("SO_ATTACH_FILTER", subject: .interface(interface)) {
                clinuxnet_attach_vxlan_filter(
                    descriptor, localIPv4 == nil ? 0 : 1, localIPv4?.rawValue ?? 0,
                    localIPv6 == nil ? 0 : 1, words, port, UInt32(vxlanRingLongestFrame))
            }
        }
    }
}
