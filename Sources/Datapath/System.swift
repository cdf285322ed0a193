import CLinuxNet
import Glibc

/// The outcome of a call on a non-blocking descriptor: it did its work, or it would have
/// had to wait. Worker loops treat "would block" as the normal end of a batch, not an error.
public enum IOResult<Value> {
    case processed(Value)
    case wouldBlock
}

extension IOResult: Sendable where Value: Sendable {}
extension IOResult: Equatable where Value: Equatable {}

/// A failed system call: which call, on what, and the errno it left.
///
/// The description is written for the operator who has to fix it ("interface br-nope does
/// not exist"), not for the programmer; `call` and `errno` are kept for code that reacts to
/// a particular failure (for example EMSGSIZE on send).
public struct SystemError: Error, Sendable, CustomStringConvertible {
    /// What the failing call was working on, so the message can name it.
    public enum Subject: Hashable, Sendable {
        case interface(String)
        case address(String)
        case path(String)
        case other(String)
    }

    /// The name of the call as in its man page, e.g. "bind".
    public let call: StaticString
    public let errno: Int32
    public let subject: Subject?

    public init(call: StaticString, errno: Int32, subject: Subject? = nil) {
        self.call = call
        self.errno = errno
        self.subject = subject
    }

    /// strerror(3) for `errno`.
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        switch (subject, errno) {
        case (.interface(let name)?, ENODEV), (.interface(let name)?, ENXIO):
            return "interface \(name) does not exist"
        case (.interface(let name)?, ENETDOWN):
            return "interface \(name) is down"
        case (.address(let address)?, EADDRINUSE):
            return "address \(address) is already in use by another socket"
        case (.address(let address)?, EADDRNOTAVAIL):
            return "address \(address) is not configured on any interface"
        case (.path(let path)?, ENOENT):
            return "\(path) does not exist"
        case (_, EPERM), (_, EACCES):
            return "\(call)\(subjectSuffix) is not permitted: \(reason)"
                + " (the data plane needs CAP_NET_RAW and CAP_NET_ADMIN)"
        default:
            return "\(call)\(subjectSuffix) failed: \(reason) (errno \(errno))"
        }
    }

    private var subjectSuffix: String {
        switch subject {
        case .interface(let name)?: " on interface \(name)"
        case .address(let address)?: " for address \(address)"
        case .path(let path)?: " on \(path)"
        case .other(let text)?: " for \(text)"
        case nil: ""
        }
    }
}

/// The one door to the kernel, after SwiftNIO's `System.swift`: every call goes through
/// `call(_:subject:_:)`, which retries EINTR (a signal is never a failure), reports
/// EAGAIN/EWOULDBLOCK as `.wouldBlock` (our descriptors are non-blocking), and turns any
/// other errno into a `SystemError` that names the call and what it was working on.
///
/// Failure is a return value of -1, as for nearly all of Linux's socket calls; wrap calls
/// that report failure differently (`if_nametoindex` returns 0) so that they return -1.
public enum System {
    /// The running kernel's release (`uname -r`: "6.1.0-28-amd64"), nil if uname fails.
    public static var kernelRelease: String? {
        var names = utsname()
        guard uname(&names) == 0 else { return nil }
        return withUnsafeBytes(of: &names.release) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    @inlinable
    @inline(__always)
    public static func call<Result: FixedWidthInteger>(
        _ name: StaticString, subject: SystemError.Subject? = nil, _ body: () -> Result
    ) throws(SystemError) -> IOResult<Result> {
        while true {
            let result = body()
            if result != -1 { return .processed(result) }
            let error = Glibc.errno
            switch error {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw SystemError(call: name, errno: error, subject: subject)
            }
        }
    }

    /// `call` for set-up calls on which "would block" cannot happen or is itself a failure.
    @inlinable
    public static func callBlocking<Result: FixedWidthInteger>(
        _ name: StaticString, subject: SystemError.Subject? = nil, _ body: () -> Result
    ) throws(SystemError) -> Result {
        switch try call(name, subject: subject, body) {
        case .processed(let result): return result
        case .wouldBlock: throw SystemError(call: name, errno: EAGAIN, subject: subject)
        }
    }

    /// A transmit-only AF_PACKET socket on the interface with `index`: bound with protocol
    /// 0, so the kernel registers no packet handler and it never receives (packet_do_bind),
    /// and binding fixes where frames go without a per-message address. With `vnetHeader`
    /// every frame written carries a virtio_net_hdr; with `qdiscBypass` frames skip the
    /// queueing discipline (see `AccessPort` and `UnderlayPort` for when that is wrong).
    /// `prepare` runs on the socket before it is bound (a transmit ring is set up there); the
    /// socket is closed when it throws.
    static func packetTransmitSocket(
        index: Int32, vnetHeader: Bool, qdiscBypass: Bool, subject: SystemError.Subject,
        prepare: (Int32) throws(SystemError) -> Void = { _ in }
    ) throws(SystemError) -> Int32 {
        let descriptor = try callBlocking("socket", subject: subject) {
            socket(
                AF_PACKET,
                clinuxnet_sock_raw | clinuxnet_sock_nonblock | clinuxnet_sock_cloexec, 0)
        }
        do {
            if vnetHeader {
                try setOption(
                    descriptor, level: clinuxnet_sol_packet, option: clinuxnet_packet_vnet_hdr,
                    value: Int32(1), name: "PACKET_VNET_HDR", subject: subject)
            }
            if qdiscBypass {
                try setOption(
                    descriptor, level: clinuxnet_sol_packet,
                    option: clinuxnet_packet_qdisc_bypass, value: Int32(1),
                    name: "PACKET_QDISC_BYPASS", subject: subject)
            }
            try prepare(descriptor)
            var address = sockaddr_ll()
            address.sll_family = UInt16(AF_PACKET)
            address.sll_protocol = 0
            address.sll_ifindex = index
            _ = try callBlocking("bind", subject: subject) {
                withUnsafePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                    }
                }
            }
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// setsockopt(2) for a plain value option.
    static func setOption<Value: BitwiseCopyable>(
        _ descriptor: Int32, level: Int32, option: Int32, value: Value,
        name: StaticString = "setsockopt", subject: SystemError.Subject? = nil
    ) throws(SystemError) {
        var value = value
        _ = try callBlocking(name, subject: subject) {
            setsockopt(
                descriptor, level, option, &value, socklen_t(MemoryLayout<Value>.size))
        }
    }

    /// Sizes a socket's kernel buffers. The data plane's sockets are read in batches by one
    /// thread, so the receive queue must absorb a burst for as long as the worker is busy
    /// with the other sockets: at the default (net.core.rmem_default, 208 KiB, about 90
    /// full-size frames) a TCP window's burst overflows it and the sender retransmits.
    /// SO_RCVBUFFORCE / SO_SNDBUFFORCE (CAP_NET_ADMIN) may exceed net.core.rmem_max; without
    /// the capability the plain options are used, which the kernel caps at the maximum.
    static func setBufferSizes(
        _ descriptor: Int32, receive: Int?, send: Int?, subject: SystemError.Subject? = nil
    ) throws(SystemError) {
        for (size, forced, plain) in [
            (receive, clinuxnet_so_rcvbufforce, SO_RCVBUF),
            (send, clinuxnet_so_sndbufforce, SO_SNDBUF),
        ] {
            guard let size, size > 0 else { continue }
            // The kernel doubles the value for its bookkeeping (socket(7)); ask for half.
            let value = Int32(clamping: size / 2)
            do {
                try setOption(
                    descriptor, level: SOL_SOCKET, option: forced, value: value, subject: subject)
            } catch  where error.errno == EPERM {
                try setOption(
                    descriptor, level: SOL_SOCKET, option: plain, value: value, subject: subject)
            }
        }
    }

    /// What the kernel dropped on this socket's way in since it was opened (sk_drops: a
    /// full receive queue, or memory pressure), from SO_MEMINFO; 0 where unsupported.
    public static func receiveDrops(_ descriptor: Int32) -> UInt64 {
        var info = [UInt32](repeating: 0, count: Int(clinuxnet_sk_meminfo_vars))
        var length = socklen_t(MemoryLayout<UInt32>.size * info.count)
        let result = info.withUnsafeMutableBytes {
            getsockopt(descriptor, SOL_SOCKET, clinuxnet_so_meminfo, $0.baseAddress, &length)
        }
        guard result == 0, Int(length) > MemoryLayout<UInt32>.size * Int(clinuxnet_sk_meminfo_drops)
        else { return 0 }
        return UInt64(info[Int(clinuxnet_sk_meminfo_drops)])
    }

    /// The drops counted in an AF_PACKET socket's statistics since they were last read
    /// (PACKET_STATISTICS, packet(7): reading them resets them); 0 when they cannot be read.
    static func packetStatisticsDrops(_ descriptor: Int32) -> UInt64 {
        var statistics = tpacket_stats()
        var length = socklen_t(MemoryLayout<tpacket_stats>.size)
        guard
            getsockopt(
                descriptor, clinuxnet_sol_packet, clinuxnet_packet_statistics, &statistics,
                &length) == 0
        else { return 0 }
        return UInt64(statistics.tp_drops)
    }

    /// if_nametoindex(3), which reports failure as 0 rather than -1.
    static func interfaceIndex(_ name: String) throws(SystemError) -> Int32 {
        guard name.utf8.count < IF_NAMESIZE, !name.isEmpty else {
            throw SystemError(call: "if_nametoindex", errno: ENODEV, subject: .interface(name))
        }
        return try callBlocking("if_nametoindex", subject: .interface(name)) {
            let index = if_nametoindex(name)
            return index == 0 ? -1 : Int32(bitPattern: index)
        }
    }
}

/// Network namespaces, for running a worker (or a test) inside one without moving the
/// whole process: setns(2) with CLONE_NEWNET changes only the calling thread.
public enum NetworkNamespace {
    /// Moves the calling thread into the namespace at `path` (e.g. /run/netns/NAME).
    /// Sockets created afterwards on this thread belong to that namespace.
    public static func enterOnCurrentThread(path: String) throws(SystemError) {
        let descriptor = try System.callBlocking("open", subject: .path(path)) {
            open(path, O_RDONLY | O_CLOEXEC)
        }
        defer { close(descriptor) }
        _ = try System.callBlocking("setns", subject: .path(path)) {
            clinuxnet_setns_net(descriptor)
        }
    }
}
