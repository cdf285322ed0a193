import Packet
import TestSupport
import Testing

/// What ARP and neighbour discovery messages say (RFC 826, RFC 4861 §4.3, §4.4, §7.1), and
/// the answers written for them.
@Suite struct NeighbourDiscoveryTests {
    static let a = MACAddress(0x02, 0, 0, 0, 0, 0x0A)
    static let b = MACAddress(0x02, 0, 0, 0, 0, 0x0B)
    static let ipA = IPv4Address("10.1.0.1")!
    static let ipB = IPv4Address("10.1.0.2")!
    static let ip6A = IPv6Address("fd01::1")!
    static let ip6B = IPv6Address("fd01::2")!

    func message(_ frame: [UInt8]) -> NeighbourDiscovery.Message? {
        frame.withUnsafeBytes { raw in
            guard let header = try? EthernetHeader.parse(raw),
                NeighbourDiscovery.mayBeNeighbourMessage(raw, header: header)
            else { return nil }
            return NeighbourDiscovery.message(in: raw, header: header)
        }
    }

    @Test func arpRequestsRepliesAndAnnouncements() {
        #expect(
            message(NeighbourFrames.arpRequest(from: Self.a, Self.ipA, for: Self.ipB, vlan: 7))
                == .request(target: .v4(Self.ipB)))
        #expect(
            message(NeighbourFrames.arpRequest(from: Self.b, Self.ipB, for: Self.ipB))
                == .advertisement(address: .v4(Self.ipB), mac: Self.b), "gratuitous request")
        #expect(
            message(
                NeighbourFrames.arp(
                    ARPPacket.reply, sender: (Self.b, Self.ipB), target: (Self.a, Self.ipA),
                    to: Self.a)) == .advertisement(address: .v4(Self.ipB), mac: Self.b))
        // A probe (RFC 5227), a request for a multicast or loopback address, a sender MAC
        // that is multicast: nothing.
        #expect(
            message(
                NeighbourFrames.arpRequest(from: Self.a, IPv4Address(rawValue: 0), for: Self.ipB))
                == nil)
        #expect(
            message(
                NeighbourFrames.arpRequest(from: Self.a, Self.ipA, for: IPv4Address("224.0.0.1")!))
                == nil)
        #expect(
            message(
                NeighbourFrames.arpRequest(from: Self.a, Self.ipA, for: IPv4Address("127.0.0.1")!))
                == nil)
        #expect(
            message(NeighbourFrames.arpRequest(from: .broadcast, Self.ipA, for: Self.ipB)) == nil)
        // Truncated: nothing, no crash.
        #expect(
            message(
                Array(NeighbourFrames.arpRequest(from: Self.a, Self.ipA, for: Self.ipB).prefix(30)))
                == nil)
    }

    @Test func solicitationsAndAdvertisements() {
        let ns = NeighbourFrames.neighbourSolicitation(from: Self.a, Self.ip6A, for: Self.ip6B)
        #expect(message(ns) == .request(target: .v6(Self.ip6B)))
        #expect(
            message(NeighbourFrames.neighbourAdvertisement(from: Self.b, for: Self.ip6B))
                == .advertisement(address: .v6(Self.ip6B), mac: Self.b))
        // RFC 4861 §7.1.1: hop limit 255 and a valid checksum, or it is not a solicitation.
        #expect(
            message(
                NeighbourFrames.neighbourSolicitation(
                    from: Self.a, Self.ip6A, for: Self.ip6B, hopLimit: 254)) == nil)
        var corrupt = ns
        corrupt[corrupt.count - 1] ^= 0xFF
        #expect(message(corrupt) == nil)
        // Duplicate address detection: nothing to answer.
        #expect(
            message(
                NeighbourFrames.neighbourSolicitation(
                    from: Self.a, IPv6Address(high: 0, low: 0), for: Self.ip6B)) == nil)
        for cut in stride(from: 14, to: ns.count, by: 7) {
            #expect(message(Array(ns.prefix(cut))) == nil)
        }
    }

    func reply(_ request: [UInt8], _ mac: MACAddress) -> [UInt8] {
        var out = [UInt8](repeating: 0xEE, count: NeighbourDiscovery.maximumReplyLength)
        let length = request.withUnsafeBytes { raw in
            out.withUnsafeMutableBytes {
                NeighbourDiscovery.reply(
                    to: raw, header: try! EthernetHeader.parse(raw), answering: mac, into: $0)
            }
        }
        return Array(out.prefix(length))
    }

    @Test func theARPReplyIsTheHostsOwnAnswerPadded() {
        let answer = reply(
            NeighbourFrames.arpRequest(from: Self.a, Self.ipA, for: Self.ipB, vlan: 7), Self.b)
        #expect(
            answer
                == NeighbourFrames.arp(
                    ARPPacket.reply, sender: (Self.b, Self.ipB), target: (Self.a, Self.ipA),
                    to: Self.a) + [UInt8](repeating: 0, count: 18))
    }

    /// The advertisement reads back as what it answers, so its checksum, hop limit and
    /// option are valid; solicited and override flags set.
    @Test func theAdvertisementIsValidAndSolicited() {
        let answer = reply(
            NeighbourFrames.neighbourSolicitation(from: Self.a, Self.ip6A, for: Self.ip6B, vlan: 7),
            Self.b)
        #expect(answer.count == 86)
        #expect(message(answer) == .advertisement(address: .v6(Self.ip6B), mac: Self.b))
        #expect(answer[58] == 0x60, "S and O")
        #expect(Array(answer[0..<6]) == NeighbourFrames.bytes(Self.a))
        #expect(Array(answer[38..<54]) == NeighbourFrames.bytes(Self.ip6A))
    }
}
