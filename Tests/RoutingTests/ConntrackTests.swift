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
                2, 0, 0, 0,  // nfgenmsg: AF_INET, version 0, res_id 0
            ])
    }

    /// One attribute: length, type (with the nested flag when `nested`), value, padding.
    static func attribute(_ type: UInt16, nested: Bool = false, _ value: [UInt8]) -> [UInt8] {
        let length = 4 + value.count
        let kind = type | (nested ? 0x8000 : 0)
        return [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(kind & 0xFF), UInt8(kind >> 8)]
            + value + [UInt8](repeating: 0, count: (4 - length % 4) % 4)
    }

    static func tuple(_ source: [UInt8], _ destination: [UInt8], _ sport: UInt16, _ dport: UInt16)
        -> [UInt8]
    {
        attribute(1, nested: true, attribute(1, source) + attribute(2, destination))
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
        let request = Conntrack.deleteRequest(sequence: 9, tuple: tuple[...], id: id[...])
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
            Conntrack.deleteRequest(sequence: 9, tuple: tuple[...], id: nil).count
                == 20 + 4 + tuple.count)
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
