import Glibc
import Packet
import Testing

@testable import Routing

/// ctnetlink's dump request and replies, byte for byte (linux/netfilter/nfnetlink_conntrack.h).
@Suite("Conntrack sessions over netlink")
struct ConntrackTests {
    @Test func theDumpRequestBytes() {
        #expect(
            Conntrack.request(sequence: 7) == [
                20, 0, 0, 0,  // length
                0x01, 0x01,  // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET
                0x01, 0x03,  // NLM_F_REQUEST | NLM_F_DUMP
                7, 0, 0, 0, 0, 0, 0, 0,  // sequence, port id
                0, 0, 0, 0,  // nfgenmsg: AF_UNSPEC (IPv4 and IPv6), version 0, res_id 0
            ])
    }

    /// One attribute: length, type (with the nested flag when `nested`), value, padding.
    static func attribute(_ type: UInt16, nested: Bool = false, _ value: [UInt8]) -> [UInt8] {
        let length = 4 + value.count
        let kind = type | (nested ? 0x8000 : 0)
        return [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(kind & 0xFF), UInt8(kind >> 8)]
            + value + [UInt8](repeating: 0, count: (4 - length % 4) % 4)
    }

    /// CTA_TUPLE_IP with CTA_IP_V4_SRC/DST (four bytes each) or CTA_IP_V6_SRC/DST (sixteen),
    /// and a TCP CTA_TUPLE_PROTO.
    static func tuple(_ source: [UInt8], _ destination: [UInt8], _ sport: UInt16, _ dport: UInt16)
        -> [UInt8]
    {
        let v6: UInt16 = source.count == 16 ? 2 : 0
        return attribute(
            1, nested: true, attribute(1 + v6, source) + attribute(2 + v6, destination))
            + attribute(
                2, nested: true,
                attribute(1, [6]) + attribute(2, [UInt8(sport >> 8), UInt8(sport & 0xFF)])
                    + attribute(3, [UInt8(dport >> 8), UInt8(dport & 0xFF)]))
    }

    static func message(type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = 16 + payload.count
        return [
            UInt8(length & 0xFF), UInt8(length >> 8), 0, 0, UInt8(type & 0xFF), UInt8(type >> 8),
            0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        ] + payload
    }

    @Test func aTCPSessionThroughSNATAndTheEndOfTheDump() {
        let attributes =
            Self.attribute(
                1, nested: true, Self.tuple([10, 0, 0, 1], [198, 51, 100, 2], 40000, 5201))
            + Self.attribute(
                2, nested: true, Self.tuple([198, 51, 100, 2], [198, 51, 100, 10], 5201, 40000))
            + Self.attribute(3, [0, 0, 0x01, 0x8E])
            + Self.attribute(
                4, nested: true, Self.attribute(1, nested: true, Self.attribute(1, [3])))
            + Self.attribute(7, [0, 6, 0x97, 0x80])
        let datagram =
            Self.message(type: 0x0100, [2, 0, 0, 0] + attributes)
            + Self.message(type: 3, [0, 0, 0, 0])
        var sessions: [Session] = []
        #expect(Conntrack.parse(datagram[...], into: &sessions) == .done)
        #expect(sessions.count == 1)
        let s = sessions[0]
        #expect(s.transportName == "tcp")
        #expect(s.original.description == "10.0.0.1:40000 → 198.51.100.2:5201")
        #expect(s.reply.description == "198.51.100.2:5201 → 198.51.100.10:40000")
        #expect(s.tcpState == "ESTABLISHED")
        #expect(s.expiresIn == 432_000)
    }

    @Test func theDeleteRequestCarriesTheTupleAndIDAsDumped() {
        let tuple = Self.tuple([10, 0, 0, 1], [198, 51, 100, 2], 40000, 5201)
        let id: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        let request = Conntrack.deleteRequest(
            sequence: 9, family: Conntrack.family(ofTuple: tuple[...])!, tuple: tuple[...],
            id: id[...])
        let attributes = Self.attribute(1, nested: true, tuple) + Self.attribute(12, id)
        #expect(
            request
                == [
                    UInt8(20 + attributes.count), 0, 0, 0,  // length
                    0x02, 0x01,  // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE
                    0x05, 0x00,  // NLM_F_REQUEST | NLM_F_ACK
                    9, 0, 0, 0, 0, 0, 0, 0,  // sequence, port id
                    2, 0, 0, 0,  // nfgenmsg: AF_INET
                ] + attributes)
        // Without an id (an older kernel's dump): the tuple alone.
        #expect(
            Conntrack.deleteRequest(sequence: 9, family: 2, tuple: tuple[...], id: nil).count
                == 20 + 4 + tuple.count)
    }

    static let inside6: [UInt8] =
        [0x20, 0x01, 0x0d, 0xb8, 0, 1] + [UInt8](repeating: 0, count: 9) + [5]
    static let outside6: [UInt8] =
        [0x20, 0x01, 0x0d, 0xb8, 0, 2] + [UInt8](repeating: 0, count: 9) + [2]

    @Test func anIPv6SessionIsReadAndDeletedAsIPv6() {
        // Routed, not translated: the reply is the original turned round.
        let original = Self.tuple(Self.inside6, Self.outside6, 40000, 80)
        let attributes =
            Self.attribute(1, nested: true, original)
            + Self.attribute(2, nested: true, Self.tuple(Self.outside6, Self.inside6, 80, 40000))
            + Self.attribute(
                4, nested: true, Self.attribute(1, nested: true, Self.attribute(1, [7])))
            + Self.attribute(7, [0, 0, 0, 120])
        let datagram = Self.message(type: 0x0100, [10, 0, 0, 0] + attributes)
        var sessions: [Session] = []
        #expect(Conntrack.parse(datagram[...], into: &sessions) == .more)
        #expect(sessions.count == 1)
        #expect(
            sessions.first?.original.description == "[2001:db8:1::5]:40000 → [2001:db8:2::2]:80")
        #expect(sessions.first?.reply.description == "[2001:db8:2::2]:80 → [2001:db8:1::5]:40000")
        #expect(sessions.first?.tcpState == "TIME_WAIT")
        // Deleted with its own family, AF_INET6 (10): ctnetlink reads the tuple by it.
        #expect(Conntrack.family(ofTuple: original[...]) == UInt8(AF_INET6))
        let request = Conntrack.deleteRequest(
            sequence: 3, family: UInt8(AF_INET6), tuple: original[...], id: nil)
        #expect(request[16] == 10)
        #expect(Array(request[24...]) == original)
    }

    @Test func anICMPv6EchoShowsItsIdentifier() {
        // CTA_TUPLE_PROTO: protocol 58, CTA_PROTO_ICMPV6_ID (7), type (8), code (9).
        let proto =
            Self.attribute(1, [58]) + Self.attribute(7, [0x12, 0x67]) + Self.attribute(8, [128])
            + Self.attribute(9, [0])
        let tuple = { (s: [UInt8], d: [UInt8]) in
            Self.attribute(1, nested: true, Self.attribute(3, s) + Self.attribute(4, d))
                + Self.attribute(2, nested: true, proto)
        }
        let attributes =
            Self.attribute(1, nested: true, tuple(Self.inside6, Self.outside6))
            + Self.attribute(2, nested: true, tuple(Self.outside6, Self.inside6))
        var sessions: [Session] = []
        _ = Conntrack.parse(
            Self.message(type: 0x0100, [10, 0, 0, 0] + attributes)[...], into: &sessions)
        #expect(sessions.first?.transportName == "icmpv6")
        #expect(sessions.first?.original.description == "[2001:db8:1::5]:4711 → 2001:db8:2::2")
    }

    @Test func aTupleOfMixedOrOddAddressesIsNoSession() {
        // A four-byte source with a sixteen-byte destination, and a five-byte address.
        let mixed =
            Self.attribute(
                1, nested: true,
                Self.attribute(
                    1, nested: true,
                    Self.attribute(1, [10, 0, 0, 1]) + Self.attribute(4, Self.outside6))
                    + Self.attribute(2, nested: true, Self.attribute(1, [6])))
        let odd = Self.attribute(
            1, nested: true,
            Self.attribute(
                1, nested: true,
                Self.attribute(1, [1, 2, 3, 4, 5]) + Self.attribute(2, [1, 2, 3, 4, 5])))
        var sessions: [Session] = []
        _ = Conntrack.parse(
            Self.message(type: 0x0100, [2, 0, 0, 0] + mixed + mixed)[...], into: &sessions)
        _ = Conntrack.parse(
            Self.message(type: 0x0100, [2, 0, 0, 0] + odd + odd)[...], into: &sessions)
        #expect(sessions.isEmpty)
        #expect(Conntrack.family(ofTuple: odd[4...]) == nil)
    }

    @Test func acknowledgementsAndRefusals() {
        let ok = Self.message(type: 2, [0, 0, 0, 0] + [UInt8](repeating: 0, count: 16))
        #expect(Conntrack.acknowledgement(ok[...]) == 0)
        let gone = Self.message(
            type: 2, [0xFE, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 16))
        #expect(Conntrack.acknowledgement(gone[...]) == -ENOENT)
        #expect(Conntrack.acknowledgement(Self.message(type: 3, [0, 0, 0, 0])[...]) == nil)
        #expect(Conntrack.acknowledgement([1, 2, 3][...]) == nil)
    }

    @Test func aRefusedDumpAndTruncatedAttributesAreNoCrash() {
        var sessions: [Session] = []
        // NLMSG_ERROR with -EPERM.
        let error = Self.message(
            type: 2, [0xFF, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 16))
        #expect(Conntrack.parse(error[...], into: &sessions) != .more)
        // An attribute that claims more bytes than there are: the message is skipped.
        let broken = Self.message(type: 0x0100, [2, 0, 0, 0, 200, 0, 1, 0x80])
        #expect(Conntrack.parse(broken[...], into: &sessions) == .more)
        #expect(sessions.isEmpty)
    }
}
