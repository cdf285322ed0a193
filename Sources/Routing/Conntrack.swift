import Foundation
import Glibc
import Packet
import Synchronization

/// One connection conntrack tracks in a router: its original direction as the first packet
/// had it, and the reply direction as it comes back (after NAT, the two differ).
public struct Session: Hashable, Sendable {
    public struct Tuple: Hashable, Sendable, CustomStringConvertible {
        /// Both of one family: conntrack tracks IPv4 and IPv6 connections apart.
        public var source: IPAddress
        public var destination: IPAddress
        /// Ports for TCP and UDP; the echo identifier for ICMP and ICMPv6 (as source); nil
        /// otherwise.
        public var sourcePort: UInt16?
        public var destinationPort: UInt16?

        public var description: String {
            Self.endpoint(source, sourcePort) + " → " + Self.endpoint(destination, destinationPort)
        }

        /// An address with its port, an IPv6 one in brackets (RFC 5952 §6), so the port's
        /// colon cannot be read as part of it.
        private static func endpoint(_ address: IPAddress, _ port: UInt16?) -> String {
            guard let port else { return address.description }
            if case .v6 = address { return "[\(address)]:\(port)" }
            return "\(address):\(port)"
        }
    }

    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    public var transport: UInt8
    public var original: Tuple
    public var reply: Tuple
    /// TCP's conntrack state (`ESTABLISHED`, `TIME_WAIT`, …); nil for other protocols.
    public var tcpState: String?
    /// Seconds until conntrack forgets it, unless traffic refreshes it.
    public var expiresIn: UInt32

    public var transportName: String {
        switch transport {
        case 6: "tcp"
        case 17: "udp"
        case 1: "icmp"
        case 58: "icmpv6"
        default: "ip proto \(transport)"
        }
    }
}

/// Conntrack's netlink API (ctnetlink, `NETLINK_NETFILTER`): the connection table of a
/// router's namespace, IPv4 and IPv6 (the routed, untranslated IPv6 connections are tracked
/// too), dumped on a thread that entered it. No tool's output is parsed.
public enum Conntrack {
    /// The sessions in the namespace at `namespacePath`, at most `limit`.
    public static func sessions(inNamespace namespacePath: String, limit: Int)
        throws(RouterError) -> [Session]
    {
        try inNamespace(namespacePath) { socket throws(RouterError) in
            var sessions: [Session] = []
            try dump(socket) { attributes in
                if let session = session(attributes) { sessions.append(session) }
            }
            return Array(sessions.prefix(limit))
        }
    }

    /// Removes every session conntrack tracks in the namespace at `namespacePath` when the
    /// call starts, each by its original tuple and conntrack id (`IPCTNL_MSG_CT_DELETE`,
    /// acknowledged), and returns how many the kernel removed. One that ended on its own in
    /// between is not counted; one made after the dump stays.
    public static func clear(inNamespace namespacePath: String) throws(RouterError) -> Int {
        try inNamespace(namespacePath) { socket throws(RouterError) in
            var entries: [(tuple: ArraySlice<UInt8>, family: UInt8, id: ArraySlice<UInt8>?)] = []
            try dump(socket) { attributes in
                if let tuple = attributes[1], let family = family(ofTuple: tuple) {
                    entries.append((tuple, family, attributes[12]))
                }
            }
            var removed = 0
            var buffer = [UInt8](repeating: 0, count: 4096)
            for (index, entry) in entries.enumerated() {
                let sequence = UInt32(truncatingIfNeeded: index + 2)
                let message = deleteRequest(
                    sequence: sequence, family: entry.family, tuple: entry.tuple, id: entry.id)
                guard send(socket, message, message.count, 0) == message.count else {
                    throw RouterError("conntrack delete: \(String(cString: strerror(errno)))")
                }
                let n = recv(socket, &buffer, buffer.count, 0)
                guard n > 0 else {
                    throw RouterError("conntrack delete: \(String(cString: strerror(errno)))")
                }
                switch acknowledgement(buffer[..<n]) {
                case 0?: removed += 1
                case .some(-ENOENT): break  // it ended on its own meanwhile
                case let code?:
                    throw RouterError(
                        "conntrack delete refused: \(String(cString: strerror(-code)))")
                case nil: throw RouterError("conntrack delete: no acknowledgement")
                }
            }
            return removed
        }
    }

    /// Runs `body` with a ctnetlink socket opened on a thread inside the namespace.
    private static func inNamespace<T: Sendable>(
        _ namespacePath: String,
        _ body: @escaping @Sendable (Int32) throws(RouterError) -> T
    ) throws(RouterError) -> T {
        let result = Mutex<Result<T, RouterError>?>(nil)
        NamespaceThread.run(in: namespacePath) { entered in
            if let entered {
                result.withLock { $0 = .failure(entered) }
                return
            }
            let fd = socket(
                AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 12)
            guard fd >= 0 else {
                let error = RouterError("netlink socket: \(String(cString: strerror(errno)))")
                result.withLock { $0 = .failure(error) }
                return
            }
            defer { close(fd) }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            _ = setsockopt(
                fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let outcome = Result { () throws(RouterError) -> T in try body(fd) }
            result.withLock { $0 = outcome }
        }
        return try result.withLock { (r) throws(RouterError) -> T in
            guard let r else { throw RouterError("conntrack: the namespace thread did not run") }
            return try r.get()
        }
    }

    /// nlmsghdr + nfgenmsg asking for a dump of the whole table: type
    /// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET`, flags `NLM_F_REQUEST | NLM_F_DUMP`,
    /// family AF_UNSPEC (ctnetlink's dump then filters on no family: IPv4 and IPv6).
    static func request(sequence: UInt32) -> [UInt8] {
        header(length: 20, type: 1 << 8 | 1, flags: 0x1 | 0x300, sequence: sequence)
            + [UInt8(AF_UNSPEC), 0, 0, 0]  // nfgenmsg: family, version 0, res_id 0
    }

    /// A request to delete the session of `family` (AF_INET, AF_INET6) with original tuple
    /// `tuple` (the nested CTA_TUPLE_ORIG's value as the dump gave it) and, when given,
    /// conntrack id `id` (CTA_ID, so a newer session with the same tuple is left alone): type
    /// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE`, flags `NLM_F_REQUEST | NLM_F_ACK`.
    /// The family must be the session's: ctnetlink reads the tuple's addresses by it, and a
    /// delete of family AF_UNSPEC would not name one session.
    static func deleteRequest(
        sequence: UInt32, family: UInt8, tuple: ArraySlice<UInt8>, id: ArraySlice<UInt8>?
    ) -> [UInt8] {
        var attributes = attribute(1 | 0x8000, tuple)  // CTA_TUPLE_ORIG, nested
        if let id, id.count == 4 { attributes += attribute(12, id) }  // CTA_ID
        return header(
            length: UInt32(20 + attributes.count), type: 1 << 8 | 2, flags: 0x1 | 0x4,
            sequence: sequence) + [family, 0, 0, 0] + attributes
    }

    /// The family of a dumped CTA_TUPLE_ORIG by its addresses: CTA_IP_V4_SRC (1) AF_INET,
    /// CTA_IP_V6_SRC (3) AF_INET6; nil for neither (not a session we can name).
    static func family(ofTuple value: ArraySlice<UInt8>) -> UInt8? {
        let ip = nested(nested(value)[1])
        if ip[1]?.count == 4 { return UInt8(AF_INET) }
        if ip[3]?.count == 16 { return UInt8(AF_INET6) }
        return nil
    }

    private static func header(length: UInt32, type: UInt16, flags: UInt16, sequence: UInt32)
        -> [UInt8]
    {
        var bytes: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        append(length)
        append(type)
        append(flags)
        append(sequence)
        append(UInt32(0))  // port id: the kernel's
        return bytes
    }

    private static func attribute(_ type: UInt16, _ value: ArraySlice<UInt8>) -> [UInt8] {
        let length = 4 + value.count
        return [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(type & 0xFF), UInt8(type >> 8)]
            + value + [UInt8](repeating: 0, count: (4 - length % 4) % 4)
    }

    /// The error code of the first NLMSG_ERROR in `datagram` (0: an acknowledgement).
    static func acknowledgement(_ datagram: ArraySlice<UInt8>) -> Int32? {
        let bytes = Array(datagram)
        guard bytes.count >= 20, u16(bytes, 4) == 2 else { return nil }
        return Int32(bitPattern: u32(bytes, 16))
    }

    /// Sends the dump request on `socket` and hands each message's attributes to `each`.
    private static func dump(
        _ socket: Int32, _ each: ([UInt16: ArraySlice<UInt8>]) -> Void
    ) throws(RouterError) {
        let message = request(sequence: 1)
        guard send(socket, message, message.count, 0) == message.count else {
            throw RouterError("conntrack dump: \(String(cString: strerror(errno)))")
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(socket, &buffer, buffer.count, 0)
            guard n > 0 else {
                throw RouterError("conntrack dump: \(String(cString: strerror(errno)))")
            }
            switch parse(buffer[..<n], each: each) {
            case .more: continue
            case .done: return
            case .failed(let error): throw error
            }
        }
    }

    enum Progress: Equatable {
        case more, done
        case failed(RouterError)
    }

    /// Reads the messages of one datagram of the dump into `sessions`.
    static func parse(_ datagram: ArraySlice<UInt8>, into sessions: inout [Session]) -> Progress {
        var read: [Session] = []
        let progress = parse(datagram) { if let s = session($0) { read.append(s) } }
        sessions += read
        return progress
    }

    /// Hands the attributes of each message of one datagram of a dump to `each`.
    static func parse(
        _ datagram: ArraySlice<UInt8>, each: ([UInt16: ArraySlice<UInt8>]) -> Void
    ) -> Progress {
        let bytes = Array(datagram)
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(u32(bytes, offset))
            let type = u16(bytes, offset + 4)
            guard length >= 16, offset + length <= bytes.count else { return .done }
            switch type {
            case 3: return .done  // NLMSG_DONE
            case 2:  // NLMSG_ERROR
                let code = Int32(bitPattern: u32(bytes, offset + 16))
                if code != 0 {
                    return .failed(
                        RouterError("conntrack dump refused: \(String(cString: strerror(-code)))"))
                }
            default:
                // nlmsghdr (16) + nfgenmsg (4), then the attributes.
                each(attributes(bytes, from: offset + 20, to: offset + length))
            }
            offset += (length + 3) & ~3
        }
        return .more
    }

    /// Type (without the nested flag) → value bytes, of the attributes in `from..<to`.
    static func attributes(_ bytes: [UInt8], from: Int, to: Int) -> [UInt16: ArraySlice<UInt8>] {
        var result: [UInt16: ArraySlice<UInt8>] = [:]
        var offset = from
        while offset + 4 <= to {
            let length = Int(u16(bytes, offset))
            guard length >= 4, offset + length <= to else { break }
            result[u16(bytes, offset + 2) & 0x3FFF] = bytes[(offset + 4)..<(offset + length)]
            offset += (length + 3) & ~3
        }
        return result
    }

    private static func nested(_ value: ArraySlice<UInt8>?) -> [UInt16: ArraySlice<UInt8>] {
        guard let value else { return [:] }
        return attributes(Array(value), from: 0, to: value.count)
    }

    private static func tuple(_ value: ArraySlice<UInt8>?) -> (Tuple: Session.Tuple, proto: UInt8)?
    {
        let t = nested(value)
        let ip = nested(t[1])  // CTA_TUPLE_IP
        let proto = nested(t[2])  // CTA_TUPLE_PROTO
        // CTA_IP_V4_SRC/DST (1, 2: four bytes) or CTA_IP_V6_SRC/DST (3, 4: sixteen).
        func address(_ s: ArraySlice<UInt8>?) -> IPAddress? {
            guard let s else { return nil }
            let word = { (bytes: ArraySlice<UInt8>) in
                bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            }
            switch s.count {
            case 4: return .v4(IPv4Address(rawValue: UInt32(word(s))))
            case 16:
                return .v6(IPv6Address(high: word(s.prefix(8)), low: word(s.suffix(8))))
            default: return nil
            }
        }
        func family(_ a: IPAddress) -> Int32 {
            if case .v4 = a { return AF_INET }
            return AF_INET6
        }
        guard let number = proto[1]?.first,
            let source = address(ip[1]) ?? address(ip[3]),
            let destination = address(ip[2]) ?? address(ip[4]),
            family(source) == family(destination)
        else { return nil }
        func port(_ s: ArraySlice<UInt8>?) -> UInt16? {
            guard let s, s.count == 2 else { return nil }
            return UInt16(s.first!) << 8 | UInt16(s.last!)
        }
        // ICMP and ICMPv6: the echo identifier (CTA_PROTO_ICMP_ID 4, CTA_PROTO_ICMPV6_ID 7)
        // stands where a source port would.
        let sourcePort: UInt16? =
            switch number {
            case 1: port(proto[4])
            case 58: port(proto[7])
            default: port(proto[2])
            }
        return (
            Session.Tuple(
                source: source, destination: destination, sourcePort: sourcePort,
                destinationPort: number == 1 || number == 58 ? nil : port(proto[3])),
            number
        )
    }

    private static let tcpStates = [
        "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
        "TIME_WAIT", "CLOSE", "SYN_SENT2",
    ]

    /// A session from a message's attributes: CTA_TUPLE_ORIG (1), CTA_TUPLE_REPLY (2),
    /// CTA_PROTOINFO (4) › CTA_PROTOINFO_TCP (1) › CTA_PROTOINFO_TCP_STATE (1), CTA_TIMEOUT (7).
    static func session(_ a: [UInt16: ArraySlice<UInt8>]) -> Session? {
        guard let original = tuple(a[1]), let reply = tuple(a[2]) else { return nil }
        var state: String?
        if original.proto == 6, let s = nested(nested(a[4])[1])[1]?.first,
            Int(s) < tcpStates.count
        {
            state = tcpStates[Int(s)]
        }
        var timeout: UInt32 = 0
        if let t = a[7], t.count == 4 { timeout = t.reduce(0) { $0 << 8 | UInt32($1) } }
        return Session(
            transport: original.proto, original: original.Tuple, reply: reply.Tuple,
            tcpState: state, expiresIn: timeout)
    }

    private static func u16(_ b: [UInt8], _ i: Int) -> UInt16 {
        UInt16(b[i]) | UInt16(b[i + 1]) << 8
    }

    private static func u32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
}
