import CLinuxNet
import Glibc
import Packet

/// An access port: one Linux interface whose frames the gateway bridges into overlays,
/// opened as an AF_PACKET raw socket that sees every frame on the wire (ETH_P_ALL,
/// promiscuous), and a transmit-only one that sends whole frames out of it (see
/// `sendDescriptor` for why not the same).
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
/// - With `transmitRingFrames`, frames on the wire's scale (no offload, within the MTU and
///   a ring frame) leave through a TPACKET_V2 transmit ring (PACKET_TX_RING) on a second,
///   transmit-only socket: `send` copies each into the next free ring frame and hands them
///   all to the kernel with one send(2), which spares sendmmsg's per-message work (copying
///   and checking each msghdr and iovec from user memory). Super-frames and longer frames go
///   through the socket as before, after the ring's frames, so the batch's order holds. See
///   `send` for a full ring, and `mapRing` for why the kernel copies each ring frame.
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
    ///   - transmitRingFrames: frames of the transmit ring (see above), rounded up to a whole
    ///     block; 0 sends every frame with sendmmsg.
    ///   - filter: attaches a socket filter to the new socket before it is bound, so no frame
    ///     the filter would refuse is ever queued (`vxlanReceiver`).
    public init(
        interface: String, promiscuous: Bool = true, qdiscBypass: Bool = false,
        receiveBuffer: Int? = nil, vnetHeader: Bool = false, ringFrames: Int = 0,
        transmitRingFrames: Int = 0,
        filter: ((_ descriptor: Int32) throws(SystemError) -> Void)? = nil
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
            try filter?(descriptor)
            // Before bind: no frame may reach the socket's queue before the ring is there.
            if ringFrames > 0 {
                ring = try Self.mapRing(
                    descriptor, transmit: false, frames: ringFrames, subject: subject)
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
        var sendDescriptor: Int32 = -1
        var offloadDescriptor: Int32 = -1
        var transmitDescriptor: Int32 = -1
        var transmitRing: UnsafeMutableRawBufferPointer?
        var mtu = 0
        do {
            sendDescriptor = try System.packetTransmitSocket(
                index: index, vnetHeader: vnetHeader, qdiscBypass: qdiscBypass, subject: subject)
            if vnetHeader && qdiscBypass {
                offloadDescriptor = try System.packetTransmitSocket(
                    index: index, vnetHeader: true, qdiscBypass: false, subject: subject)
            }
            if transmitRingFrames > 0 {
                // With a vnet header: see `mapRing` for why each ring frame carries one.
                transmitDescriptor = try System.packetTransmitSocket(
                    index: index, vnetHeader: true, qdiscBypass: qdiscBypass, subject: subject
                ) { socket throws(SystemError) in
                    transmitRing = try Self.mapRing(
                        socket, transmit: true, frames: transmitRingFrames, subject: subject)
                    // Send-buffer room for every ring frame in flight, so the ring, not the
                    // buffer, is what runs out.
                    try System.setBufferSizes(
                        socket, receive: nil, send: 2 * transmitRing!.count, subject: subject)
                }
                mtu = Int(
                    try System.callBlocking("SIOCGIFMTU", subject: subject) {
                        clinuxnet_interface_mtu(descriptor, interface)
                    })
            }
        } catch {
            if let transmitRing { munmap(transmitRing.baseAddress, transmitRing.count) }
            if transmitDescriptor >= 0 { close(transmitDescriptor) }
            if offloadDescriptor >= 0 { close(offloadDescriptor) }
            if sendDescriptor >= 0 { close(sendDescriptor) }
            if let ring { munmap(ring.baseAddress, ring.count) }
            close(descriptor)
            throw error
        }
        self.sendDescriptor = sendDescriptor
        self.ring = ring
        self.ringFrameCount = (ring?.count ?? 0) / Self.ringFrameSize
        self.transmitRing = transmitRing
        self.transmitFrameCount = (transmitRing?.count ?? 0) / Self.ringFrameSize
        self.transmitDescriptor = transmitDescriptor
        self.interfaceName = interface
        self.subject = subject
        self.interfaceIndex = index
        self.descriptor = descriptor
        self.vnetHeader = vnetHeader
        self.offloadDescriptor = offloadDescriptor
        self.transmitRingLimit = Self.transmitRingLimit(mtu: mtu)
    }

    /// The transmit-only socket frames leave through (protocol 0: it receives nothing), with
    /// `descriptor`'s vnet header and qdisc bypass. Not `descriptor` itself: the worker's
    /// epoll waits on that one, and each frame's buffer freed after the send then wakes the
    /// socket's wait queue for write space (`sock_def_write_space`: two locks taken and
    /// released per frame, about 5 % of the worker's decapsulation profile in the pps
    /// benchmark); nothing ever waits on this one.
    private let sendDescriptor: Int32

    /// The socket frames with an offload leave through when the main one bypasses the
    /// qdisc; -1 when there is none (every frame leaves through `sendDescriptor`).
    private let offloadDescriptor: Int32

    /// Turns the qdisc bypass of plain frames off while `tapped` (and back on after): frames
    /// sent through the bypass never reach packet taps (net/core/dev.c `dev_direct_xmit`
    /// skips `dev_queue_xmit_nit`), so a capture on the port would miss what vtepd sends.
    public func setTapped(_ tapped: Bool) throws(SystemError) {
        guard offloadDescriptor >= 0 else { return }
        for socket in [sendDescriptor, transmitDescriptor] where socket >= 0 {
            try System.setOption(
                socket, level: clinuxnet_sol_packet, option: clinuxnet_packet_qdisc_bypass,
                value: Int32(tapped ? 0 : 1), name: "PACKET_QDISC_BYPASS",
                subject: .interface(interfaceName))
        }
    }

    /// The interface's current MTU: the largest IP packet of a frame sent out of it (a
    /// super-frame's segments included). Read it between batches, not per frame.
    /// Reading it also sets the longest frame the transmit ring takes (see `send`).
    public var mtu: Int {
        get throws(SystemError) {
            let mtu = Int(
                try System.callBlocking("SIOCGIFMTU", subject: .interface(interfaceName)) {
                    clinuxnet_interface_mtu(descriptor, interfaceName)
                })
            transmitRingLimit = Self.transmitRingLimit(mtu: mtu)
            return mtu
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
        close(sendDescriptor)
        if offloadDescriptor >= 0 { close(offloadDescriptor) }
        if let transmitRing { munmap(transmitRing.baseAddress, transmitRing.count) }
        if transmitDescriptor >= 0 { close(transmitDescriptor) }
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

    /// Whether the ring's next frame is ours to read: one load from shared memory.
    @inline(__always)
    public var hasRingFrame: Bool {
        guard let ring else { return false }
        return clinuxnet_ring_status(ring.baseAddress! + ringIndex * Self.ringFrameSize)
            & clinuxnet_tp_status_user != 0
    }

    /// Sets up a TPACKET_V2 ring of at least `frames` frames on `descriptor` and maps it.
    ///
    /// A receive ring: frames too long for a ring frame are queued whole as well
    /// (PACKET_COPY_THRESH).
    ///
    /// A transmit ring: PACKET_LOSS makes the kernel skip a frame it cannot send rather than
    /// stop the ring at it for good (`send` puts in the ring only frames the kernel takes).
    /// Each ring frame starts with a virtio_net_hdr whose `hdr_len` is the frame's length, so
    /// the kernel copies the whole frame into its buffer (tpacket_snd's `copylen`), as
    /// sendmmsg does. Without it the kernel sends the ring's pages themselves and marks the
    /// ring frame free when the first owner of the buffer lets go, and on a veth that is the
    /// peer's IP input (`skb_orphan` in ip_rcv_core), before a socket there has read the
    /// bytes: the next frame written into the ring frame would change what it reads.
    private static func mapRing(
        _ descriptor: Int32, transmit: Bool, frames: Int, subject: SystemError.Subject
    ) throws(SystemError) -> UnsafeMutableRawBufferPointer {
        try System.setOption(
            descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_version,
            value: Int32(clinuxnet_tpacket_v2), name: "PACKET_VERSION", subject: subject)
        let perBlock = ringBlockSize / ringFrameSize
        let blocks = max(1, (frames + perBlock - 1) / perBlock)
        let request = tpacket_req(
            tp_block_size: UInt32(ringBlockSize), tp_block_nr: UInt32(blocks),
            tp_frame_size: UInt32(ringFrameSize), tp_frame_nr: UInt32(blocks * perBlock))
        if transmit {
            try System.setOption(
                descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_loss,
                value: Int32(1), name: "PACKET_LOSS", subject: subject)
            try System.setOption(
                descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_tx_ring,
                value: request, name: "PACKET_TX_RING", subject: subject)
        } else {
            try System.setOption(
                descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_rx_ring,
                value: request, name: "PACKET_RX_RING", subject: subject)
            try System.setOption(
                descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_copy_thresh,
                value: Int32(1), name: "PACKET_COPY_THRESH", subject: subject)
        }
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
    ///
    /// With a transmit ring, runs of frames it takes go into it and runs of the others through
    /// the socket, once the ring's earlier frames have gone. A frame the ring has no free
    /// frame for, after one send(2) to drain it, ends the batch as a full send queue does
    /// (the caller counts the rest). Ring frames the kernel could not take yet (a full device
    /// queue: tpacket_snd stops and keeps them) stay in the ring, counted as sent, and go
    /// first with the next send or `sendWaiting`; until then nothing passes them.
    public func send(_ batch: PacketBatch, count: Int) throws(SystemError) -> SendResult {
        guard let transmitRing else { return try sendQueued(batch, from: 0, count: count) }
        // The errno of a failed send(2) of the ring, 0 for none.
        var failure: Int32 = 0
        let result = try sendInRuns(from: 0, to: count, alike: { takesRing(batch, $0) }) {
            start, end, ringed throws(SystemError) -> SendResult? in
            if ringed {
                return SendResult(
                    processed: placeInRing(transmitRing, batch, from: start, to: end, &failure))
            }
            // The ring's frames go first: the socket's path must not pass them.
            let drained = drainTransmitRing(transmitRing)
            if drained != 0 { failure = drained }
            guard requested == 0 else { return nil }
            return try sendQueued(batch, from: start, count: end - start)
        }
        let drained = drainTransmitRing(transmitRing)
        if drained != 0 { failure = drained }
        // As sendmmsg: an error is reported only when nothing was handled; else the next
        // send meets it again first.
        if result.processed == 0 && failure != 0 {
            throw SystemError(call: "send", errno: failure, subject: subject)
        }
        return result
    }

    /// Hands the kernel the ring frames it could not take at the last `send` (its device
    /// queue was full); an error is met again by the next `send`.
    public func sendWaiting() {
        if let transmitRing, requested > 0 { _ = drainTransmitRing(transmitRing) }
    }

    /// Sends slots `first ..< first + count` through the socket (sendmmsg).
    private func sendQueued(_ batch: PacketBatch, from first: Int, count: Int)
        throws(SystemError) -> SendResult
    {
        guard offloadDescriptor >= 0 else {
            return try batch.send(
                on: sendDescriptor, from: first, count: count, names: false,
                vnetHeader: vnetHeader)
        }
        // Plain frames through the bypass, offloaded ones through the queue.
        return try sendInRuns(
            from: first, to: first + count, alike: { batch.offloads[$0] == .plain }
        ) { start, end, plain throws(SystemError) -> SendResult? in
            try batch.send(
                on: plain ? sendDescriptor : offloadDescriptor, from: start, count: end - start,
                names: false, vnetHeader: true)
        }
    }

    /// Sends slots `first ..< limit` in runs of slots alike (`alike`), each with `sendRun`
    /// (start, end, what the run's slots are), in the batch's order. A run cut short, or
    /// `sendRun` returning nil, ends the batch (as "would block" does); an error is thrown
    /// only when no slot was handled yet, as sendmmsg's are.
    @inline(__always)
    private func sendInRuns(
        from first: Int, to limit: Int, alike: (Int) -> Bool,
        _ sendRun: (Int, Int, Bool) throws(SystemError) -> SendResult?
    ) throws(SystemError) -> SendResult {
        var result = SendResult()
        var start = first
        while start < limit {
            let kind = alike(start)
            var end = start + 1
            while end < limit && alike(end) == kind { end += 1 }
            let run: SendResult
            do {
                guard let sent = try sendRun(start, end, kind) else { break }
                run = sent
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

    // MARK: - The transmit ring

    /// The ring frames to send through, shared with the kernel; nil when every frame goes
    /// through the socket.
    private let transmitRing: UnsafeMutableRawBufferPointer?
    private let transmitFrameCount: Int
    /// The transmit-only socket of the ring; -1 when there is none.
    private let transmitDescriptor: Int32
    /// The next ring frame to fill.
    private var transmitIndex = 0
    /// The ring frames handed to the kernel that it may not have taken yet: `requested` of
    /// them from `requestedFrom` on, up to `transmitIndex`.
    private var requestedFrom = 0
    private var requested = 0
    /// The longest frame the ring takes: one of the MTU (a longer one goes through the socket,
    /// which refuses it as too big), at most what a ring frame holds after its vnet header.
    private var transmitRingLimit: Int

    /// Whether frames leave through a transmit ring (see the type's notes).
    public var hasTransmitRing: Bool { transmitRing != nil }
    /// Ring frames handed to the kernel that it has not taken yet (see `send`).
    public var waitingFrames: Int { requested }

    static func transmitRingLimit(mtu: Int) -> Int {
        min(
            mtu + 14,  // an untagged Ethernet header, as the kernel allows (packet_snd)
            ringFrameSize - Int(clinuxnet_tpacket2_tx_data_offset) - VirtioNetHeader.length)
    }

    /// Whether the frame in `slot` goes through the transmit ring: no offload to send with it
    /// (a super-frame, a checksum to finish), and short enough (`transmitRingLimit`).
    @inline(__always)
    private func takesRing(_ batch: PacketBatch, _ slot: Int) -> Bool {
        (!vnetHeader || batch.offloads[slot] == .plain)
            && batch.frameLength(slot) <= transmitRingLimit
    }

    /// Copies slots `first ..< end` into the ring's next free frames, in order, and returns
    /// how many it placed: fewer when the ring stays full after a send(2) to drain it (whose
    /// errno, when it failed other than for a full queue, goes to `failure`).
    @inline(never)
    private func placeInRing(
        _ ring: UnsafeMutableRawBufferPointer, _ batch: PacketBatch, from first: Int,
        to end: Int, _ failure: inout Int32
    ) -> Int {
        let base = ring.baseAddress!
        let data = Int(clinuxnet_tpacket2_tx_data_offset)
        var slot = first
        while slot < end {
            var frame = base + transmitIndex * Self.ringFrameSize
            if requested == transmitFrameCount
                || clinuxnet_ring_status(frame) != clinuxnet_tp_status_available
            {
                let drained = drainTransmitRing(ring)
                if drained != 0 { failure = drained }
                frame = base + transmitIndex * Self.ringFrameSize
                guard
                    requested < transmitFrameCount
                        && clinuxnet_ring_status(frame) == clinuxnet_tp_status_available
                else { break }
            }
            let length = batch.frameLength(slot)
            // hdr_len = the whole frame: the kernel copies it (see `mapRing`).
            VirtioNetHeader(headerLength: UInt16(length)).store(to: frame + data)
            (frame + data + VirtioNetHeader.length).copyMemory(
                from: batch.buffers + slot * batch.bufferSize + batch.frameStart(slot),
                byteCount: length)
            clinuxnet_ring_request(frame, UInt32(VirtioNetHeader.length + length))
            requested += 1
            transmitIndex = transmitIndex + 1 == transmitFrameCount ? 0 : transmitIndex + 1
            slot += 1
        }
        return slot - first
    }

    /// Hands the kernel the ring frames requested (one send(2) for them all) and forgets
    /// those it took; `requested` is 0 after it when it took them all. Returns the errno of a
    /// failed send other than for a full queue, else 0.
    @inline(never)
    private func drainTransmitRing(_ ring: UnsafeMutableRawBufferPointer) -> Int32 {
        guard requested > 0 else { return 0 }
        var failure: Int32 = 0
        if Glibc.send(transmitDescriptor, nil, 0, clinuxnet_msg_dontwait) < 0 {
            let code = errno
            if code != EAGAIN && code != EWOULDBLOCK && code != ENOBUFS && code != EINTR {
                failure = code
            }
        }
        // The kernel takes ring frames in order and marks each it took SENDING, then
        // AVAILABLE when its copy is freed.
        let base = ring.baseAddress!
        while requested > 0 {
            let status = clinuxnet_ring_status(base + requestedFrom * Self.ringFrameSize)
            if status & clinuxnet_tp_status_send_request != 0 { break }
            requested -= 1
            requestedFrom = requestedFrom + 1 == transmitFrameCount ? 0 : requestedFrom + 1
        }
        return failure
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
