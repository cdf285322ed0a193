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
/// - With `ringFrames`, frames are read from a TPACKET_V2 receive ring shared with the kernel
///   (PACKET_RX_RING) instead of with recvmmsg: the kernel copies each frame into the ring
///   as it arrives and frees its buffer at once, and the worker takes frames without a
///   syscall per batch, the queueing of a clone per frame or the freeing of it on the
///   worker's CPU (recvmmsg's share of the worker's time in the pps benchmark was about a
///   third). A ring frame holds `ringFrameSize` bytes with its header: a longer frame (a GRO
///   super-frame, a jumbo frame) is queued whole on the socket too (PACKET_COPY_THRESH) and
///   its ring frame marked TP_STATUS_COPY, and `receive` reads it with recvmsg in its turn.
///   The tag the kernel took off comes from the ring frame's header.
/// - With `vnetHeader` (PACKET_VNET_HDR), frames come and go as the kernel has them, with
///   a `VirtioNetHeader` in `PacketBatch.offload(slot)`: GRO and TSO super-frames up to 64 KB
///   (the batch's buffers must hold them) and checksums left to offload. Whatever offloads
///   the interface has on, nothing arrives cut short. Every frame sent carries the slot's
///   header too (`.plain` for a frame as it goes on the wire).
public final class AccessPort {
    public let interfaceName: String
    /// What errors of this port name: made once, so receiving builds nothing per batch.
    private let subject: SystemError.Subject
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
    ///   - ringFrames: frames of the receive ring (see above), rounded up to a whole block;
    ///     0 reads with recvmmsg.
    public init(
        interface: String, promiscuous: Bool = true, qdiscBypass: Bool = false,
        receiveBuffer: Int? = nil, vnetHeader: Bool = false, ringFrames: Int = 0
    ) throws(SystemError) {
        let subject = SystemError.Subject.interface(interface)
        let index = try System.interfaceIndex(interface)
        let descriptor = try System.callBlocking("socket", subject: subject) {
            socket(
                AF_PACKET,
                clinuxnet_sock_raw | clinuxnet_sock_nonblock | clinuxnet_sock_cloexec, 0)
        }
        var ring: UnsafeMutableRawBufferPointer?
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
            // Before bind: no frame may reach the socket's queue before the ring is there.
            if ringFrames > 0 {
                ring = try Self.mapRing(descriptor, frames: ringFrames, subject: subject)
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
            if let ring { munmap(ring.baseAddress, ring.count) }
            close(descriptor)
            throw error
        }
        var offloadDescriptor: Int32 = -1
        if vnetHeader && qdiscBypass {
            do {
                offloadDescriptor = try System.packetTransmitSocket(
                    index: index, vnetHeader: true, qdiscBypass: false, subject: subject)
            } catch {
                if let ring { munmap(ring.baseAddress, ring.count) }
                close(descriptor)
                throw error
            }
        }
        self.ring = ring
        self.ringFrameCount = (ring?.count ?? 0) / Self.ringFrameSize
        self.interfaceName = interface
        self.subject = subject
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
        if let ring { munmap(ring.baseAddress, ring.count) }
        close(descriptor)
        if offloadDescriptor >= 0 { close(offloadDescriptor) }
    }

    // MARK: - The receive ring

    /// Bytes per ring frame, its TPACKET_V2 header included: a frame of a 1500-byte MTU with
    /// a vnet header fits (the header and its alignment take 76 bytes before the frame).
    public static let ringFrameSize = 2048
    /// Bytes per ring block (a whole number of pages and of frames).
    static let ringBlockSize = 1 << 16

    /// The ring shared with the kernel; nil when the port reads with recvmmsg.
    private let ring: UnsafeMutableRawBufferPointer?
    private let ringFrameCount: Int
    /// The next ring frame to look at.
    private var ringIndex = 0
    /// Frames too long for a ring frame that the socket's queue, full, could not take whole:
    /// the ring holds only their start, which is dropped.
    private var ringQueueDrops: UInt64 = 0

    /// Whether frames come through a receive ring (see the type's notes).
    public var hasReceiveRing: Bool { ring != nil }

    /// Sets up a TPACKET_V2 receive ring of at least `frames` frames on `descriptor` and maps
    /// it. Frames too long for a ring frame are queued whole as well (PACKET_COPY_THRESH).
    private static func mapRing(_ descriptor: Int32, frames: Int, subject: SystemError.Subject)
        throws(SystemError) -> UnsafeMutableRawBufferPointer
    {
        try System.setOption(
            descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_version,
            value: Int32(clinuxnet_tpacket_v2), name: "PACKET_VERSION", subject: subject)
        let perBlock = ringBlockSize / ringFrameSize
        let blocks = max(1, (frames + perBlock - 1) / perBlock)
        let request = tpacket_req(
            tp_block_size: UInt32(ringBlockSize), tp_block_nr: UInt32(blocks),
            tp_frame_size: UInt32(ringFrameSize), tp_frame_nr: UInt32(blocks * perBlock))
        try System.setOption(
            descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_rx_ring,
            value: request, name: "PACKET_RX_RING", subject: subject)
        try System.setOption(
            descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_copy_thresh,
            value: Int32(1), name: "PACKET_COPY_THRESH", subject: subject)
        let bytes = blocks * ringBlockSize
        guard
            let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0),
            memory != MAP_FAILED
        else {
            throw SystemError(call: "mmap", errno: errno, subject: subject)
        }
        return UnsafeMutableRawBufferPointer(start: memory, count: bytes)
    }

    /// Takes up to `batch.capacity` frames from the ring into slots `0 ..< count`, in the
    /// order they arrived, handing each ring frame back as it is copied.
    private func receiveFromRing(
        _ ring: UnsafeMutableRawBufferPointer, into batch: PacketBatch
    ) throws(SystemError) -> Int {
        let prefix = vnetHeader ? VirtioNetHeader.length : 0
        var count = 0
        while count < batch.capacity {
            let frame = ring.baseAddress! + ringIndex * Self.ringFrameSize
            let status = clinuxnet_ring_status(frame)
            guard status & clinuxnet_tp_status_user != 0 else { break }
            if status & clinuxnet_tp_status_copy != 0 {
                // Too long for the ring: the whole frame waits on the socket's queue, in the
                // same order. None there (the queue was full): the ring's cut copy is dropped.
                if try batch.receiveOne(
                    on: descriptor, into: count, controlMessages: true, prefix: prefix,
                    subject: subject)
                {
                    restoreVLANTag(batch, count)
                    count += 1
                }
            } else {
                let header = frame.load(as: tpacket2_hdr.self)
                let mac = Int(header.tp_mac)
                let snapped = Int(header.tp_snaplen)
                if snapped < Int(header.tp_len) {
                    // Too long for the ring, and the full queue took no whole copy.
                    ringQueueDrops &+= 1
                } else if mac >= MemoryLayout<tpacket2_hdr>.size + prefix
                    && mac + snapped <= Self.ringFrameSize
                {
                    // The vnet header lies right in front of the frame (tpacket_rcv).
                    batch.placeFromRing(
                        frame + mac - prefix, length: snapped, prefix: prefix, into: count)
                    if status & clinuxnet_tp_status_vlan_valid != 0 {
                        let tpid =
                            status & clinuxnet_tp_status_vlan_tpid_valid != 0
                            ? header.tp_vlan_tpid : EtherType.vlan
                        insertTag(VLANTag(tpid: tpid, tci: header.tp_vlan_tci), batch, count)
                    }
                    count += 1
                }
            }
            clinuxnet_ring_release(frame)
            ringIndex = ringIndex + 1 == ringFrameCount ? 0 : ringIndex + 1
        }
        return count
    }

    /// Frames the kernel dropped because our receive queue (or ring) was full, since the port
    /// opened: a frame too long for the ring that the full queue could not take whole counts
    /// here too, and so does one that found every ring frame still ours.
    public var receiveDrops: UInt64 {
        if ring != nil {
            ringFullDrops &+= System.packetStatisticsDrops(descriptor)
        }
        return System.receiveDrops(descriptor) &+ ringQueueDrops &+ ringFullDrops
    }

    /// Frames dropped because the ring was full, read so far: tpacket_rcv counts them in the
    /// socket's packet statistics (tp_drops), not in sk_drops, and PACKET_STATISTICS hands
    /// its counts over and starts them again from 0, so they are summed here.
    private var ringFullDrops: UInt64 = 0

    /// Receives up to `batch.capacity` frames into slots `0 ..< count` and returns
    /// `count`, 0 when none are queued. Each frame starts at the batch's headroom, or 4
    /// bytes before it when its VLAN tag was restored.
    public func receive(into batch: PacketBatch) throws(SystemError) -> Int {
        if let ring { return try receiveFromRing(ring, into: batch) }
        let prefix = vnetHeader ? VirtioNetHeader.length : 0
        let count = try batch.receive(
            on: descriptor, names: false, controlMessages: true, prefix: prefix,
            subject: subject)
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
                insertTag(VLANTag(tpid: tpid, tci: auxiliary.tp_vlan_tci), batch, slot)
                return
            }
            control = clinuxnet_cmsg_nxthdr(header, message)
        }
    }

    /// Writes `tag` back into the frame of `slot`, in its headroom.
    private func insertTag(_ tag: VLANTag, _ batch: PacketBatch, _ slot: Int) {
        let start = batch.frameStart(slot)
        let length = batch.frameLength(slot)
        guard
            let newStart = try? VLANTag.insert(
                tag, into: batch.buffer(slot), frameStart: start, frameLength: length)
        else { return }
        batch.setFrame(slot, start: newStart, length: length + 4)
        // The offload header's offsets count from the frame's first byte.
        batch.offloads[slot] = batch.offloads[slot].shifted(by: 4)
        batch.restoredTPID[slot] = tag.tpid
        batch.restoredTCI[slot] = tag.tci
    }
}
