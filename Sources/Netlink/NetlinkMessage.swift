import CMnl
import Glibc
import Packet

/// One rtnetlink message as this module reads it: the netlink header's fields, the
/// family header that follows it (`rtmsg`, `ndmsg`) as bytes, and the attributes by type.
/// Requests are built and replies walked with libmnl, which does the alignment and the
/// attribute length checks.
struct NetlinkMessage: Hashable {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var familyHeader: [UInt8]
    /// Attribute payloads by type (the nested and byte-order bits cleared). A repeated type
    /// keeps its last value; none of the attributes read here repeat.
    var attributes: [UInt16: [UInt8]]

    /// What answered a request.
    enum Answer: Hashable {
        case message(NetlinkMessage)
        /// NLMSG_ERROR with error 0: the request was carried out.
        case acknowledged
        /// NLMSG_ERROR: the kernel refused, with its errno and extended-ack text.
        case refused(errno: Int32, kernelMessage: String?)
    }

    // MARK: - Building requests

    /// A request of `type` carrying `familyHeader` and `attributes` in order. The port id
    /// is left 0 (the kernel knows who sent it), so the bytes depend only on the arguments.
    static func request(
        type: Int, flags: Int32, sequence: UInt32, familyHeader: [UInt8],
        attributes: [(type: Int, payload: [UInt8])]
    ) -> [UInt8] {
        request(type: type, flags: flags, sequence: sequence, familyHeader: familyHeader) {
            header in
            for attribute in attributes {
                attribute.payload.withUnsafeBytes {
                    mnl_attr_put(header, UInt16(attribute.type), $0.count, $0.baseAddress)
                }
            }
        }
    }

    /// The same, with the attributes put by `put` through libmnl (nested ones included:
    /// `mnl_attr_nest_start`, `mnl_attr_nest_end`).
    static func request(
        type: Int, flags: Int32, sequence: UInt32, familyHeader: [UInt8],
        put: (UnsafeMutablePointer<nlmsghdr>) -> Void
    ) -> [UInt8] {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 8)
        defer { storage.deallocate() }
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        let header = mnl_nlmsg_put_header(storage.baseAddress)!
        header.pointee.nlmsg_type = UInt16(type)
        header.pointee.nlmsg_flags = UInt16(flags)
        header.pointee.nlmsg_seq = sequence
        let extra = mnl_nlmsg_put_extra_header(header, familyHeader.count)!
        familyHeader.withUnsafeBytes {
            extra.copyMemory(from: $0.baseAddress!, byteCount: $0.count)
        }
        put(header)
        return Array(storage[0..<Int(header.pointee.nlmsg_len)])
    }

    /// The sequence number in the header of the first message of `datagram`.
    static func sequence(of datagram: [UInt8]) -> UInt32? {
        guard datagram.count >= MemoryLayout<nlmsghdr>.size else { return nil }
        return datagram.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self) }
    }

    /// Names a request for error messages, from its message type.
    static func describe(_ request: [UInt8]) -> String {
        guard request.count >= 6 else { return "rtnetlink request" }
        let type = Int(
            request.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt16.self) })
        switch type {
        case RTM_GETROUTE: return "route lookup (RTM_GETROUTE)"
        case RTM_GETNEIGH: return "neighbour lookup (RTM_GETNEIGH)"
        case RTM_NEWNEIGH: return "neighbour solicitation (RTM_NEWNEIGH)"
        case RTM_NEWQDISC: return "clsact qdisc (RTM_NEWQDISC)"
        case RTM_NEWTFILTER: return "ingress redirect filter (RTM_NEWTFILTER)"
        default: return "rtnetlink request of type \(type)"
        }
    }

    // MARK: - Reading replies

    /// Finds the answer to the request with `sequence` in `datagram`: a message of
    /// `replyType` whose family header is `familyHeaderSize` bytes, or an error/ack.
    /// Throws a reason (for `NetlinkError.malformedReply`) when nothing in the datagram
    /// reads as that answer.
    static func answer(
        to sequence: UInt32, in datagram: [UInt8], replyType: Int, familyHeaderSize: Int
    ) throws(MalformedReply) -> Answer {
        // libmnl reads headers in place; give it aligned memory whatever the array's.
        let storage = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(datagram.count, 1), alignment: 8)
        defer { storage.deallocate() }
        datagram.withUnsafeBytes { storage.copyMemory(from: $0) }
        var header = UnsafePointer(storage.baseAddress!.assumingMemoryBound(to: nlmsghdr.self))
        var remaining = Int32(datagram.count)
        var sawOurs = false
        // mnl_nlmsg_ok compares the message length as an `int`: a length of 2 GiB or more
        // reads as fitting, and mnl_nlmsg_next would then step out of the datagram.
        while mnl_nlmsg_ok(header, remaining), header.pointee.nlmsg_len <= UInt32(remaining) {
            defer { header = UnsafePointer(mnl_nlmsg_next(header, &remaining)!) }
            guard header.pointee.nlmsg_seq == sequence else { continue }
            sawOurs = true
            let type = Int(header.pointee.nlmsg_type)
            if type == NLMSG_ERROR {
                return try error(header)
            }
            guard type == replyType else { continue }
            guard mnl_nlmsg_get_payload_len(header) >= familyHeaderSize else {
                throw MalformedReply(
                    "a message of \(mnl_nlmsg_get_payload_len(header)) payload bytes, shorter"
                        + " than its \(familyHeaderSize)-byte header")
            }
            let payload = UnsafeRawPointer(mnl_nlmsg_get_payload(header)!)
            return .message(
                NetlinkMessage(
                    type: header.pointee.nlmsg_type, flags: header.pointee.nlmsg_flags,
                    sequence: header.pointee.nlmsg_seq,
                    familyHeader: Array(
                        UnsafeRawBufferPointer(start: payload, count: familyHeaderSize)),
                    attributes: attributes(of: header, after: familyHeaderSize)))
        }
        if remaining != 0 && !sawOurs {
            throw MalformedReply("\(remaining) bytes that are not a netlink message")
        }
        throw MalformedReply(sawOurs ? "no answer of the expected type" : "no answer")
    }

    /// An NLMSG_ERROR message: `struct nlmsgerr`, then (NLM_F_ACK_TLVS) attributes, the
    /// first of which we read being NLMSGERR_ATTR_MSG, the kernel's explanation.
    private static func error(_ header: UnsafePointer<nlmsghdr>) throws(MalformedReply) -> Answer {
        let payloadLength = Int(mnl_nlmsg_get_payload_len(header))
        guard payloadLength >= MemoryLayout<nlmsgerr>.size else {
            throw MalformedReply("an error message of \(payloadLength) bytes")
        }
        let report = UnsafeRawPointer(mnl_nlmsg_get_payload(header)!)
            .loadUnaligned(as: nlmsgerr.self)
        if report.error == 0 { return .acknowledged }
        // A negative errno (Linux's are 1...4095, MAX_ERRNO); anything else, Int32.min among
        // them, has no errno to report.
        guard (-4095 ... -1).contains(report.error) else {
            throw MalformedReply("an error message with error \(report.error), not an errno")
        }
        var kernelMessage: String?
        let flags = Int32(header.pointee.nlmsg_flags)
        if flags & cmnl_nlm_f_ack_tlvs != 0 {
            // Without NETLINK_CAP_ACK the failing request follows the header in full.
            let echoed =
                flags & cmnl_nlm_f_capped != 0
                ? 0 : Int(report.msg.nlmsg_len) - MemoryLayout<nlmsghdr>.size
            let offset = MemoryLayout<nlmsgerr>.size + max(echoed, 0)
            if offset <= payloadLength,
                let text = attributes(of: header, after: offset)[UInt16(NLMSGERR_ATTR_MSG.rawValue)]
            {
                kernelMessage = String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return .refused(errno: -report.error, kernelMessage: kernelMessage)
    }

    /// The attributes of the message after `offset` payload bytes; libmnl stops at the
    /// first one whose length does not fit. The end is the message's own length: libmnl's
    /// payload tail rounds it up to 4 bytes, past the datagram's end when the last message is
    /// not padded, and an attribute reaching into that padding was read beyond the buffer
    /// (fuzz/crashes/netlink/crash-ae4a1b0a…).
    private static func attributes(of header: UnsafePointer<nlmsghdr>, after offset: Int)
        -> [UInt16: [UInt8]]
    {
        var found: [UInt16: [UInt8]] = [:]
        let tail = UnsafeRawPointer(header) + Int(header.pointee.nlmsg_len)
        var attribute = UnsafePointer(
            mnl_nlmsg_get_payload_offset(header, offset)!.assumingMemoryBound(to: nlattr.self))
        while mnl_attr_ok(attribute, Int32(tail - UnsafeRawPointer(attribute))) {
            let length = Int(mnl_attr_get_payload_len(attribute))
            let payload = UnsafeRawPointer(mnl_attr_get_payload(attribute)!)
            found[mnl_attr_get_type(attribute)] = Array(
                UnsafeRawBufferPointer(start: payload, count: length))
            attribute = UnsafePointer(mnl_attr_next(attribute)!)
        }
        return found
    }
}

/// Why a reply could not be read.
struct MalformedReply: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

// MARK: - Addresses on the wire

extension IPAddress {
    /// AF_INET or AF_INET6, as rtmsg/ndmsg families are one byte.
    var family: UInt8 {
        switch self {
        case .v4: UInt8(AF_INET)
        case .v6: UInt8(AF_INET6)
        }
    }

    var bitLength: UInt8 {
        switch self {
        case .v4: 32
        case .v6: 128
        }
    }

    /// Network byte order, as in RTA_DST, RTA_GATEWAY, NDA_DST.
    var bytes: [UInt8] {
        switch self {
        case .v4(let address):
            return withUnsafeBytes(of: address.rawValue.bigEndian) { Array($0) }
        case .v6(let address):
            var bytes = [UInt8](repeating: 0, count: 16)
            bytes.withUnsafeMutableBytes { address.store(into: $0, at: 0) }
            return bytes
        }
    }

    /// An address of either family from its network-order bytes; nil for other lengths.
    init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4:
            self = .v4(
                IPv4Address(
                    rawValue: UInt32(
                        bigEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })))
        case 16:
            self = .v6(bytes.withUnsafeBytes { IPv6Address(loadingFrom: $0, at: 0) })
        default:
            return nil
        }
    }
}

extension NetlinkError {
    /// What every request does when the kernel's answer does not read.
    init(_ malformed: MalformedReply, request: [UInt8]) {
        self = .malformedReply(request: NetlinkMessage.describe(request), reason: malformed.reason)
    }
}
