import CLinuxNet
import Glibc
import Packet

/// An access port: one Linux interface whose frames the gateway bridges into overlays,
/// opened as an AF_PACKET raw socket that sees every frame on the wire (ETH_P_ALL,
/// promiscuous) and sends whole frames out of it.
///
/// - Frames arrive exactly as on the wire. The kernel's receive path takes the outer
///   802.1Q/802.1ad tag off into packet metadata (it does so in software even on veth,
///   `skb_vlan_untag`), and NICs with VLAN offload do it in hardware; with PACKET_AUXDATA
///   the tag comes back as a control message and `receive` writes it back into the frame
///   in the slot's headroom, so the forwarding core classifies (port, VLAN) from the bytes
///   alone. `PacketBatch.restoredVLAN` says when that happened.
/// - PACKET_IGNORE_OUTGOING: frames this host transmits on the interface (ours, and the
///   kernel stack's) are never read back as input, which would otherwise loop every flood.
/// - The socket is created with protocol 0, which receives nothing, and only starts
///   receiving when `bind` names the interface, so no frame from another interface can
///   slip into the queue in between.
/// - Non-blocking: `receive` returns 0 when nothing is queued; wait for readability on
///   `descriptor` (epoll) between batches.
/// - With `vnetHeader` (PACKET_VNET_HDR), frames come and go as the kernel has them, with
///   a `VirtioNetHeader` in `PacketBatch.offload(slot)`: GRO and TSO super-frames up to 64 KB
///   (the batch's buffers must hold them) and checksums left to offload. Whatever offloads
///   the interface has on, nothing arrives cut short. Every frame sent carries the slot's
///   header too (`.plain` for a frame as it goes on the wire).
public final class AccessPort {
    public let interfaceName: String
    public let interfaceIndex: Int32
    /// The socket, for epoll; owned by this port and closed when it goes.
    public let descriptor: Int32

    /// Opens the access port on `interface`.
    ///
    /// - Parameters:
    ///   - promiscuous: receive frames addressed to any MAC (an L2 gateway must).
    ///   - qdiscBypass: PACKET_QDISC_BYPASS hands frames straight to the driver, skipping
    ///     the interface's queueing discipline (faster; loses shaping, and packet taps such
    ///     as tcpdump no longer see what we send).
    ///   - receiveBuffer: bytes of kernel receive queue (see `System.setBufferSizes`); nil
    ///     keeps the system default.
    ///   - vnetHeader: read and write frames with a virtio_net_hdr (see above). With
    ///     `qdiscBypass` too, frames that carry an offload (a super-frame, a checksum to
    ///     finish) leave through a second socket without the bypass, because the direct
    ///     transmit path drops a super-frame it has to segment for a device without TSO
    ///     (net/core/dev.c `dev_direct_xmit`); `send` keeps the batch's order across both.
    public init(
        interface: String, promiscuous: Bool = true, qdiscBypass: Bool = false,
        receiveBuffer: Int? = nil, vnetHeader: Bool = false
    ) throws(SystemError) {
        let subject = SystemError.Subject.interface(interface)
        let index = try System.interfaceIndex(interface)
        let descriptor = try System.callBlocking("socket", subject: subject) {
            socket(
                AF_PACKET,
                clinuxnet_sock_raw | clinuxnet_sock_nonblock | clinuxnet_sock_cloexec, 0)
        }
        do {
            try System.setOption(
                descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_auxdata,
                value: Int32(1), subject: subject)
            try System.setOption(
                descriptor, level: clinuxnet_sol_packet,
                option: clinuxnet_packet_ignore_outgoing, value: Int32(1), subject: subject)
            try System.setBufferSizes(
                descriptor, receive: receiveBuffer, send: nil, subject: subject)
            if vnetHeader {
                try System.setOption(
                    descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_vnet_hdr,
                    value: Int32(1), name: "PACKET_VNET_HDR", subject: subject)
            }
            if qdiscBypass {
                try System.setOption(
                    descriptor, level: clinuxnet_sol_packet,
                    option: clinuxnet_packet_qdisc_bypass, value: Int32(1), subject: subject)
            }
            var address = sockaddr_ll()
            address.sll_family = UInt16(AF_PACKET)
            address.sll_protocol = UInt16(clinuxnet_eth_p_all).bigEndian
            address.sll_ifindex = index
            _ = try System.callBlocking("bind", subject: subject) {
                withUnsafePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                    }
                }
            }
            if promiscuous {
                var membership = packet_mreq()
                membership.mr_ifindex = index
                membership.mr_type = UInt16(clinuxnet_packet_mr_promisc)
                try System.setOption(
                    descriptor, level: clinuxnet_sol_packet,
                    option: clinuxnet_packet_add_membership, value: membership,
                    subject: subject)
            }
        } catch {
            close(descriptor)
            throw error
        }
        var offloadDescriptor: Int32 = -1
        if vnetHeader && qdiscBypass {
            do {
                offloadDescriptor = try System.packetTransmitSocket(
                    index: index, vnetHeader: true, qdiscBypass: false, subject: subject)
            } catch {
                close(descriptor)
                throw error
            }
        }
        self.interfaceName = interface
        self.interfaceIndex = index
        self.descriptor = descriptor
        self.vnetHeader = vnetHeader
        self.offloadDescriptor = offloadDescriptor
    }

    /// The socket frames with an offload leave through when the main one bypasses the
    /// qdisc; -1 when there is none (every frame leaves through `descriptor`).
    private let offloadDescriptor: Int32

    /// Turns the qdisc bypass of plain frames off while `tapped` (and back on after): frames
    /// sent through the bypass never reach packet taps (net/core/dev.c `dev_direct_xmit`
    /// skips `dev_queue_xmit_nit`), so a capture on the port would miss what vtepd sends.
    public func setTapped(_ tapped: Bool) throws(SystemError) {
        guard offloadDescriptor >= 0 else { return }
        try System.setOption(
            descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_qdisc_bypass,
            value: Int32(tapped ? 0 : 1), name: "PACKET_QDISC_BYPASS",
            subject: .interface(interfaceName))
    }

    /// The interface's current MTU: the largest IP packet of a frame sent out of it (a
    /// super-frame's segments included). Read it between batches, not per frame.
    public var mtu: Int {
        get throws(SystemError) {
            Int(
                try System.callBlocking("SIOCGIFMTU", subject: .interface(interfaceName)) {
                    clinuxnet_interface_mtu(descriptor, interfaceName)
                })
        }
    }

    /// Whether frames carry a virtio_net_hdr (see `init`).
    public let vnetHeader: Bool

    /// Turns large receive offload off on `interface`, as the kernel's bridge does on its
    /// ports: LRO rebuilds frames in a way that cannot be segmented again, so they cannot be
    /// forwarded (GRO's can). Returns true when it was on and is now off.
    public static func disableLRO(on interface: String) throws(SystemError) -> Bool {
        let subject = SystemError.Subject.interface(interface)
        let descriptor = try System.callBlocking("socket", subject: subject) {
            socket(AF_INET, clinuxnet_sock_dgram | clinuxnet_sock_cloexec, 0)
        }
        defer { close(descriptor) }
        return try System.callBlocking("ETHTOOL_SFLAGS", subject: subject) {
            clinuxnet_interface_disable_lro(descriptor, interface)
        } == 1
    }

    deinit {
        close(descriptor)
        if offloadDescriptor >= 0 { close(offloadDescriptor) }
    }

    /// Frames the kernel dropped because our receive queue was full, since the port opened.
    public var receiveDrops: UInt64 { System.receiveDrops(descriptor) }

    /// Receives up to `batch.capacity` frames into slots `0 ..< count` and returns
    /// `count`, 0 when none are queued. Each frame starts at the batch's headroom, or 4
    /// bytes before it when its VLAN tag was restored.
    public func receive(into batch: PacketBatch) throws(SystemError) -> Int {
        let prefix = vnetHeader ? VirtioNetHeader.length : 0
        let count = try batch.receive(
            on: descriptor, names: false, controlMessages: true, prefix: prefix,
            subject: .interface(interfaceName))
        for slot in 0..<count {
            restoreVLANTag(batch, slot)
        }
        return count
    }

    /// Sends the frames in slots `0 ..< count` out of the interface, in order.
    public func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        guard offloadDescriptor >= 0 else {
            return try batch.send(
                on: descriptor, count: count, names: false, vnetHeader: vnetHeader)
        }
        // Runs of plain frames through the bypass, runs of offloaded ones through the queue,
        // in the batch's order; a run cut short ends the batch (as "would block" does).
        var result = SendResult()
        var start = 0
        while start < count {
            let plain = batch.offloads[start] == .plain
            var end = start + 1
            while end < count && (batch.offloads[end] == .plain) == plain { end += 1 }
            let run: SendResult
            do {
                run = try batch.send(
                    on: plain ? descriptor : offloadDescriptor, from: start, count: end - start,
                    names: false, vnetHeader: true)
            } catch {
                if result.processed > 0 { break }
                throw error
            }
            result.processed += run.processed
            result.tooBig += run.tooBig
            if run.processed < end - start { break }
            start = end
        }
        return result
    }

    /// Puts back the tag the kernel moved into skb metadata (tpacket_auxdata), so the
    /// frame is as it was on the wire. Without TP_STATUS_VLAN_TPID_VALID (old kernels)
    /// the TPID is 802.1Q's.
    private func restoreVLANTag(_ batch: PacketBatch, _ slot: Int) {
        // msg_hdr is the first member of mmsghdr.
        let header = UnsafeMutableRawPointer(batch.messages + slot)
            .assumingMemoryBound(to: msghdr.self)
        var control = clinuxnet_cmsg_firsthdr(header)
        while let message = control {
            if message.pointee.cmsg_level == clinuxnet_sol_packet
                && message.pointee.cmsg_type == clinuxnet_packet_auxdata
                && message.pointee.cmsg_len
                    >= clinuxnet_cmsg_len(MemoryLayout<tpacket_auxdata>.size)
            {
                let data = UnsafeRawPointer(clinuxnet_cmsg_data(message)!)
                let auxiliary = data.loadUnaligned(as: tpacket_auxdata.self)
                guard auxiliary.tp_status & clinuxnet_tp_status_vlan_valid != 0 else { return }
                let tpid =
                    auxiliary.tp_status & clinuxnet_tp_status_vlan_tpid_valid != 0
                    ? auxiliary.tp_vlan_tpid : EtherType.vlan
                let tag = VLANTag(tpid: tpid, tci: auxiliary.tp_vlan_tci)
                let start = batch.frameStart(slot)
                let length = batch.frameLength(slot)
                guard
                    let newStart = try? VLANTag.insert(
                        tag, into: batch.buffer(slot), frameStart: start, frameLength: length)
                else { return }
                batch.setFrame(slot, start: newStart, length: length + 4)
                // The offload header's offsets count from the frame's first byte.
                batch.offloads[slot] = batch.offloads[slot].shifted(by: 4)
                batch.restoredTPID[slot] = tpid
                batch.restoredTCI[slot] = auxiliary.tp_vlan_tci
                return
            }
            control = clinuxnet_cmsg_nxthdr(header, message)
        }
    }
}
