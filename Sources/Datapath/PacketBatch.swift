import CLinuxNet
import Glibc
import Packet

/// A UDP peer: the source of a received datagram, or the destination of one to send.
public struct UDPEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String {
        switch address {
        case .v4(let v4): "\(v4):\(port)"
        case .v6(let v6): "[\(v6)]:\(port)"
        }
    }
}

/// What a batch send did. Slots `0 ..< processed` were handled, in order: sent, or refused
/// as too big for the path (EMSGSIZE: with DF set the kernel refuses rather than fragments,
/// RFC 7348 §4.3). Slots from `processed` on were not attempted because the socket's send
/// queue was full; the caller retries them or counts them dropped.
public struct SendResult: Hashable, Sendable {
    public var processed: Int
    public var tooBig: Int

    public init(processed: Int = 0, tooBig: Int = 0) {
        self.processed = processed
        self.tooBig = tooBig
    }

    public var sent: Int { processed - tooBig }
}

/// A fixed set of packet buffers and everything recvmmsg/sendmmsg need to fill or drain
/// them in one call, all allocated once when the worker starts so the hot path never
/// allocates.
///
/// Each slot is one buffer of `bufferSize` bytes. Frames are received at `headroom` bytes
/// into their buffer, so that encapsulation can write outer headers in front of the inner
/// frame in place (`OuterHeaderTemplate.stamp` at `frameStart - headerLength`) and a
/// VLAN tag the kernel stripped can be put back without moving the payload. A slot's frame
/// is `buffer(slot)[frameStart(slot) ..< frameStart(slot) + frameLength(slot)]`; code that
/// rewrites a frame in place moves its start and length with `setFrame`.
///
/// A batch belongs to one worker thread; it is a class for its identity (it owns memory),
/// not to be shared.
public final class PacketBatch {
    public let capacity: Int
    public let bufferSize: Int
    public let headroom: Int

    /// Control-message room per slot: one PACKET_AUXDATA message with margin.
    static let controlSize = 64

    @usableFromInline let buffers: UnsafeMutableRawPointer
    @usableFromInline let messages: UnsafeMutablePointer<clinuxnet_mmsghdr>
    @usableFromInline let vectors: UnsafeMutablePointer<iovec>
    @usableFromInline let addresses: UnsafeMutablePointer<sockaddr_storage>
    @usableFromInline let control: UnsafeMutableRawPointer
    @usableFromInline let starts: UnsafeMutablePointer<Int32>
    @usableFromInline let lengths: UnsafeMutablePointer<Int32>
    /// The TPID of a tag the kernel had stripped and we restored; 0 when there was none.
    @usableFromInline let restoredTPID: UnsafeMutablePointer<UInt16>
    @usableFromInline let restoredTCI: UnsafeMutablePointer<UInt16>
    @usableFromInline let truncated: UnsafeMutablePointer<Bool>
    /// What the kernel knows of each frame beyond its bytes (a GSO super-frame, a checksum
    /// to finish; for a UDP_GRO read, the datagram size in `gsoSize`), and on sockets that
    /// take a virtio_net_hdr, what to send each frame with: `.plain` unless set.
    @usableFromInline let offloads: UnsafeMutablePointer<VirtioNetHeader>

    /// - Parameters:
    ///   - capacity: slots per batch; 64 amortises a syscall well without hurting latency.
    ///   - bufferSize: bytes per slot, headroom included. 2048 holds a 1500-byte frame plus
    ///     VXLAN-over-IPv6 outer headers (74 bytes with a tag).
    ///   - headroom: bytes kept free in front of each received frame; at least 4 (one VLAN
    ///     tag) and ideally the longest outer header this worker writes.
    public init(capacity: Int = 64, bufferSize: Int = 2048, headroom: Int = 128) {
        precondition(capacity > 0 && capacity <= 1024, "batch capacity \(capacity)")
        precondition(headroom >= 4 && headroom + 64 <= bufferSize, "headroom \(headroom)")
        self.capacity = capacity
        self.bufferSize = bufferSize
        self.headroom = headroom
        buffers = .allocate(byteCount: capacity * bufferSize, alignment: 64)
        buffers.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * bufferSize)
        messages = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        addresses = .allocate(capacity: capacity)
        control = .allocate(byteCount: capacity * Self.controlSize, alignment: 16)
        control.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * Self.controlSize)
        starts = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
        restoredTPID = .allocate(capacity: capacity)
        restoredTCI = .allocate(capacity: capacity)
        truncated = .allocate(capacity: capacity)
        offloads = .allocate(capacity: capacity)
        offloads.initialize(repeating: .plain, count: capacity)
        messages.initialize(repeating: clinuxnet_mmsghdr(), count: capacity)
        vectors.initialize(repeating: iovec(), count: capacity)
        addresses.initialize(repeating: sockaddr_storage(), count: capacity)
        starts.initialize(repeating: Int32(headroom), count: capacity)
        lengths.initialize(repeating: 0, count: capacity)
        restoredTPID.initialize(repeating: 0, count: capacity)
        restoredTCI.initialize(repeating: 0, count: capacity)
        truncated.initialize(repeating: false, count: capacity)
    }

    deinit {
        buffers.deallocate()
        messages.deallocate()
        vectors.deallocate()
        addresses.deallocate()
        control.deallocate()
        starts.deallocate()
        lengths.deallocate()
        restoredTPID.deallocate()
        restoredTCI.deallocate()
        truncated.deallocate()
        offloads.deallocate()
    }

    // MARK: - Per-slot access

    /// The whole buffer of `slot`, headroom included, for writing in place.
    @inlinable
    public func buffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        precondition(slot >= 0 && slot < capacity)
        return UnsafeMutableRawBufferPointer(
            start: buffers + slot * bufferSize, count: bufferSize)
    }

    @inlinable
    public func frameStart(_ slot: Int) -> Int { Int(starts[slot]) }

    @inlinable
    public func frameLength(_ slot: Int) -> Int { Int(lengths[slot]) }

    /// A read-only view of the frame in `slot`; valid until the batch is next received into.
    @inlinable
    public func frame(_ slot: Int) -> UnsafeRawBufferPointer {
        let start = frameStart(slot)
        return UnsafeRawBufferPointer(rebasing: buffer(slot)[start..<(start + frameLength(slot))])
    }

    /// Sets where the frame of `slot` lies in its buffer, after rewriting it in place.
    @inlinable
    public func setFrame(_ slot: Int, start: Int, length: Int) {
        precondition(slot >= 0 && slot < capacity)
        precondition(start >= 0 && length >= 0 && start + length <= bufferSize)
        starts[slot] = Int32(start)
        lengths[slot] = Int32(length)
    }

    /// Copies `bytes` into `slot` at the headroom: for building frames to send (tests, and
    /// control-plane packets such as ARP replies). Not for the forwarding path.
    public func copyFrame(_ bytes: UnsafeRawBufferPointer, into slot: Int) {
        precondition(bytes.count <= bufferSize - headroom, "frame of \(bytes.count) bytes")
        let destination = buffer(slot)
        destination.baseAddress!.advanced(by: headroom).copyMemory(
            from: bytes.baseAddress!, byteCount: bytes.count)
        setFrame(slot, start: headroom, length: bytes.count)
    }

    /// Puts `bytes` into `slot` as a receive would: at the headroom, with its sender and
    /// offload header, cut to the buffer and marked truncated when longer. For in-memory
    /// ports (the data plane's unit tests); sockets fill slots through recvmmsg.
    public func placeReceived(
        _ bytes: UnsafeRawBufferPointer, into slot: Int, source: UDPEndpoint?,
        offload: VirtioNetHeader
    ) {
        let room = bufferSize - headroom
        let kept = min(bytes.count, room)
        copyFrame(UnsafeRawBufferPointer(rebasing: bytes[0..<kept]), into: slot)
        truncated[slot] = bytes.count > room
        offloads[slot] = offload
        restoredTPID[slot] = 0
        restoredTCI[slot] = 0
        if let source {
            setDestination(source, for: slot)
        } else {
            UnsafeMutableRawPointer(addresses + slot).storeBytes(
                of: sa_family_t(AF_UNSPEC), as: sa_family_t.self)
        }
    }

    /// The 802.1Q/802.1ad tag the kernel had taken off this frame (into skb metadata, as
    /// it does on receive) and that `AccessPort.receive` put back into the frame; nil when
    /// the frame arrived with its tags in the bytes or had none.
    public func restoredVLAN(_ slot: Int) -> VLANTag? {
        restoredTPID[slot] == 0 ? nil : VLANTag(tpid: restoredTPID[slot], tci: restoredTCI[slot])
    }

    /// True when the datagram or frame was longer than the buffer and only its start was
    /// kept. The forwarding core must drop (and count) such a slot.
    @inlinable
    public func isTruncated(_ slot: Int) -> Bool { truncated[slot] }

    /// The offload state of the frame in `slot`: as received (`AccessPort` with a vnet
    /// header; `UDPTunnelSocket` with UDP GRO, where `gsoSize` is the size of each datagram of
    /// a coalesced read), or as set for sending with `setOffload`.
    @inlinable
    public func offload(_ slot: Int) -> VirtioNetHeader { offloads[slot] }

    /// Sends the frame in `slot` with `header` (a super-frame the kernel or the NIC segments,
    /// a checksum it finishes), on a socket that takes a virtio_net_hdr. Reset to `.plain`
    /// by every send.
    @inlinable
    public func setOffload(_ header: VirtioNetHeader, for slot: Int) {
        precondition(slot >= 0 && slot < capacity)
        offloads[slot] = header
    }

    /// The sender of the datagram in `slot`, for batches received on a `UDPTunnelSocket`.
    public func source(_ slot: Int) -> UDPEndpoint? {
        precondition(slot >= 0 && slot < capacity)
        return UnsafeRawPointer(addresses + slot).withMemoryRebound(
            to: sockaddr_storage.self, capacity: 1
        ) { storage in
            switch Int32(storage.pointee.ss_family) {
            case AF_INET:
                return UnsafeRawPointer(storage).withMemoryRebound(
                    to: sockaddr_in.self, capacity: 1
                ) { sin in
                    UDPEndpoint(
                        address: .v4(
                            IPv4Address(rawValue: UInt32(bigEndian: sin.pointee.sin_addr.s_addr))),
                        port: UInt16(bigEndian: sin.pointee.sin_port))
                }
            case AF_INET6:
                let address = IPv6Address(
                    loadingFrom: UnsafeRawBufferPointer(
                        start: UnsafeRawPointer(storage) + 8, count: 16),
                    at: 0)
                let port = UnsafeRawPointer(storage).load(fromByteOffset: 2, as: UInt16.self)
                return UDPEndpoint(address: .v6(address), port: UInt16(bigEndian: port))
            default:
                return nil
            }
        }
    }

    /// Where the datagram in `slot` is to be sent (`setDestination`): the same storage a
    /// receive fills with the sender.
    public func destination(_ slot: Int) -> UDPEndpoint? { source(slot) }

    /// Sets where `UDPTunnelSocket.send` sends the datagram in `slot`.
    public func setDestination(_ endpoint: UDPEndpoint, for slot: Int) {
        precondition(slot >= 0 && slot < capacity)
        let raw = UnsafeMutableRawPointer(addresses + slot)
        switch endpoint.address {
        case .v4(let address):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = endpoint.port.bigEndian
            sin.sin_addr.s_addr = address.rawValue.bigEndian
            raw.storeBytes(of: sin, as: sockaddr_in.self)
            messages[slot].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6(let address):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = endpoint.port.bigEndian
            raw.storeBytes(of: sin6, as: sockaddr_in6.self)
            address.store(into: UnsafeMutableRawBufferPointer(start: raw + 8, count: 16), at: 0)
            messages[slot].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    // MARK: - Message vectors for recvmmsg / sendmmsg

    /// Points every slot's message (or those of `slots`) at the space after its headroom,
    /// less `prefix` bytes in front for a virtio_net_hdr. The kernel rewrites msg_namelen,
    /// msg_controllen and msg_flags on each receive, so this runs per batch.
    func prepareForReceive(
        names: Bool, controlMessages: Bool, prefix: Int = 0, slots: Range<Int>? = nil
    ) {
        let room = bufferSize - headroom + prefix
        for slot in slots ?? 0..<capacity {
            vectors[slot] = iovec(
                iov_base: buffers + slot * bufferSize + headroom - prefix, iov_len: room)
            messages[slot].msg_hdr.msg_iov = vectors + slot
            messages[slot].msg_hdr.msg_iovlen = 1
            if names {
                messages[slot].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + slot)
                messages[slot].msg_hdr.msg_namelen = socklen_t(
                    MemoryLayout<sockaddr_storage>.size)
            } else {
                messages[slot].msg_hdr.msg_name = nil
                messages[slot].msg_hdr.msg_namelen = 0
            }
            if controlMessages {
                messages[slot].msg_hdr.msg_control = control + slot * Self.controlSize
                messages[slot].msg_hdr.msg_controllen = Self.controlSize
            } else {
                messages[slot].msg_hdr.msg_control = nil
                messages[slot].msg_hdr.msg_controllen = 0
            }
            messages[slot].msg_hdr.msg_flags = 0
            messages[slot].msg_len = 0
        }
    }

    /// Records lengths and flags of the `count` slots a receive filled; with a `prefix`
    /// (virtio_net_hdr) in front of each frame, loads it into `offload(slot)`.
    func finishReceive(count: Int, prefix: Int = 0, first: Int = 0) {
        for slot in first..<(first + count) {
            starts[slot] = Int32(headroom)
            let length = Int(messages[slot].msg_len) - prefix
            lengths[slot] = Int32(max(0, length))
            truncated[slot] =
                messages[slot].msg_hdr.msg_flags & clinuxnet_msg_trunc != 0 || length < 0
            restoredTPID[slot] = 0
            offloads[slot] =
                prefix == 0 || length < 0
                ? .plain
                : VirtioNetHeader.load(from: buffers + slot * bufferSize + headroom - prefix)
        }
    }

    /// Points slots `first ..< first + count` at their frames. Destinations (when `names`)
    /// were set with `setDestination`, which also set msg_namelen. With `vnetHeader`, each
    /// slot's `offload` is written into the 10 bytes in front of its frame, sent with it, and
    /// reset to `.plain`.
    func prepareForSend(from first: Int, count: Int, names: Bool, vnetHeader: Bool = false) {
        for slot in first..<(first + count) {
            var start = Int(starts[slot])
            var length = Int(lengths[slot])
            if vnetHeader {
                precondition(start >= VirtioNetHeader.length, "no headroom for a vnet header")
                start -= VirtioNetHeader.length
                length += VirtioNetHeader.length
                offloads[slot].store(to: buffers + slot * bufferSize + start)
                offloads[slot] = .plain
            }
            vectors[slot] = iovec(
                iov_base: buffers + slot * bufferSize + start, iov_len: length)
            messages[slot].msg_hdr.msg_iov = vectors + slot
            messages[slot].msg_hdr.msg_iovlen = 1
            messages[slot].msg_hdr.msg_name =
                names ? UnsafeMutableRawPointer(addresses + slot) : nil
            if !names { messages[slot].msg_hdr.msg_namelen = 0 }
            messages[slot].msg_hdr.msg_control = nil
            messages[slot].msg_hdr.msg_controllen = 0
            messages[slot].msg_hdr.msg_flags = 0
        }
    }

    /// Receives up to `capacity` messages on `descriptor` with recvmmsg into slots
    /// `0 ..< count` and returns `count`, 0 when none are queued: messages prepared
    /// (`prepareForReceive`), then lengths, flags and any `prefix` (virtio_net_hdr) recorded
    /// (`finishReceive`). The receive half of `send(on:)`, shared by every socket type.
    func receive(
        on descriptor: Int32, names: Bool, controlMessages: Bool, prefix: Int = 0,
        subject: SystemError.Subject? = nil
    ) throws(SystemError) -> Int {
        prepareForReceive(names: names, controlMessages: controlMessages, prefix: prefix)
        let outcome = try System.call("recvmmsg", subject: subject) {
            clinuxnet_recvmmsg(descriptor, messages, UInt32(capacity), 0)
        }
        guard case .processed(let received) = outcome else { return 0 }
        let count = Int(received)
        finishReceive(count: count, prefix: prefix)
        return count
    }

    /// Receives one message on `descriptor` into `slot` (recvmsg, as `receive` does for a
    /// whole batch); false when none is queued.
    func receiveOne(
        on descriptor: Int32, into slot: Int, controlMessages: Bool, prefix: Int = 0,
        subject: SystemError.Subject? = nil
    ) throws(SystemError) -> Bool {
        precondition(slot >= 0 && slot < capacity)
        prepareForReceive(
            names: false, controlMessages: controlMessages, prefix: prefix, slots: slot..<(slot + 1)
        )
        let outcome = try System.call("recvmsg", subject: subject) {
            clinuxnet_recvmmsg(descriptor, messages + slot, 1, 0)
        }
        guard case .processed(let received) = outcome, received == 1 else { return false }
        finishReceive(count: 1, prefix: prefix, first: slot)
        return true
    }

    /// Copies a frame the kernel wrote into a packet ring (`AccessPort`'s receive ring) into
    /// `slot` as a receive would: `prefix` bytes of virtio_net_hdr at `bytes`, the frame's
    /// `length` bytes after them, placed at the headroom; cut to the buffer and marked
    /// truncated when longer.
    func placeFromRing(_ bytes: UnsafeRawPointer, length: Int, prefix: Int, into slot: Int) {
        precondition(slot >= 0 && slot < capacity && length >= 0)
        let kept = min(length, bufferSize - headroom)
        let destination = buffers + slot * bufferSize + headroom - prefix
        destination.copyMemory(from: bytes, byteCount: prefix + kept)
        starts[slot] = Int32(headroom)
        lengths[slot] = Int32(kept)
        truncated[slot] = kept < length
        restoredTPID[slot] = 0
        offloads[slot] = prefix == 0 ? .plain : VirtioNetHeader.load(from: destination)
    }

    /// Sends slots `0 ..< count` with sendmmsg, skipping (and counting) each slot the
    /// kernel refuses with EMSGSIZE. sendmmsg reports an error only when it is hit on the
    /// first message of the call; after a partial send the next call starts at the failing
    /// message, so restarting at the first unsent slot sees every error exactly once.
    ///
    /// ENOBUFS (a full device or qdisc queue) ends the batch like "would block". Any other
    /// error is thrown only when no slot was handled yet; after progress it ends the batch
    /// and the caller, resending the rest, meets it again first if it persists. So a
    /// returned count is never lost to an error.
    /// With `from`, slots `from ..< from + count`; the result counts from `from`.
    func send(
        on descriptor: Int32, from start: Int = 0, count: Int, names: Bool,
        vnetHeader: Bool = false
    ) throws(SystemError) -> SendResult {
        precondition(start >= 0 && count >= 0 && start + count <= capacity)
        guard count > 0 else { return SendResult() }
        prepareForSend(from: start, count: count, names: names, vnetHeader: vnetHeader)
        var result = SendResult()
        while result.processed < count {
            let first = start + result.processed
            do {
                let outcome = try System.call("sendmmsg") {
                    clinuxnet_sendmmsg(
                        descriptor, messages + first, UInt32(start + count - first), 0)
                }
                guard case .processed(let sent) = outcome else { break }
                result.processed += Int(sent)
            } catch  where error.errno == EMSGSIZE {
                result.processed += 1
                result.tooBig += 1
            } catch  where error.errno == ENOBUFS || result.processed > 0 {
                break
            }
        }
        return result
    }
}
