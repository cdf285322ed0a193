import Packet
import PropertyBased
import PropertyChecks
import Testing

@Suite("Addresses: text and wire forms")
struct AddressTests {
    @Test(arguments: [
        ("224.0.0.1", true), ("239.255.255.255", true), ("223.255.255.255", false),
        ("240.0.0.0", false), ("ff02::1", true), ("ff00::", true), ("fe80::1", false),
        ("2001:db8::1", false),
    ])
    func ipMulticastGroupsOfBothFamilies(text: String, multicast: Bool) throws {
        #expect(try #require(IPAddress(text)).isMulticast == multicast)
    }

    @Test func macParsesBothSeparatorsAndCases() {
        #expect(MACAddress("00:11:22:33:44:55")?.rawValue == 0x0011_2233_4455)
        #expect(MACAddress("AA-bb-CC-dd-EE-ff")?.rawValue == 0xAABB_CCDD_EEFF)
        #expect(MACAddress("aa:bb:cc:dd:ee:ff")?.description == "aa:bb:cc:dd:ee:ff")
        #expect(MACAddress(0, 0x11, 0x22, 0x33, 0x44, 0x55).description == "00:11:22:33:44:55")
    }

    @Test(arguments: [
        "", "00:11:22:33:44", "00:11:22:33:44:55:66", "00:11:22:33:44-55", "0:11:22:33:44:55",
        "00:11:22:33:44:5g", "001122334455", "00::11:22:33:44:55",
    ])
    func macRefusesMalformedText(_ text: String) {
        #expect(MACAddress(text) == nil)
    }

    @Test func macBits() {
        #expect(MACAddress.broadcast.isBroadcast && MACAddress.broadcast.isMulticast)
        #expect(MACAddress("01:00:5e:00:00:01")!.isMulticast)
        #expect(!MACAddress("00:00:5e:00:00:01")!.isMulticast)
        #expect(MACAddress(rawValue: 0).isZero)
        #expect(MACAddress(rawValue: 0xFFFF_0011_2233_4455).rawValue == 0x0011_2233_4455)
        #expect(MACAddress(rawValue: 1) < MACAddress(rawValue: 2))
    }

    @Test func macWireRoundTripAtOddOffset() {
        let buffer = TestBuffer(count: 9)
        MACAddress("00:11:22:33:44:55")!.store(into: buffer.storage, at: 3)
        #expect(buffer.bytes(0..<9) == hex("000000 001122334455"))
        #expect(MACAddress(loadingFrom: buffer.raw, at: 3).description == "00:11:22:33:44:55")
    }

    @Test func macTextRoundTripProperty() {
        seededCheck(count: 500, seed: 0x11AC, Wire.mac) { mac in
            #expect(MACAddress(mac.description) == mac)
            let dashed = String(mac.description.map { $0 == ":" ? "-" : $0 }).uppercased()
            #expect(MACAddress(dashed) == mac)
        }
    }

    @Test func ipv4Text() {
        #expect(IPv4Address("10.0.0.1")?.rawValue == 0x0A00_0001)
        #expect(IPv4Address("255.255.255.255")?.rawValue == 0xFFFF_FFFF)
        #expect(IPv4Address(192, 168, 1, 254).description == "192.168.1.254")
        #expect(IPv4Address("0.0.0.0")?.rawValue == 0)
        for bad in [
            "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1..2.3", "1.2.3.4 ", "a.b.c.d",
        ] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
    }

    @Test func ipv4TextRoundTripProperty() {
        seededCheck(count: 500, seed: 0x1F4, Wire.ipv4) { address in
            #expect(IPv4Address(address.description) == address)
        }
    }

    /// RFC 5952 §4: the canonical forms, including §4.2.2 (no `::` for one zero group),
    /// §4.2.3 (the longest run, the first on a tie) and §5 (IPv4-mapped in mixed notation).
    @Test(arguments: [
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
        ("2001:DB8::AB", "2001:db8::ab"),
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("fe80::1:2", "fe80::1:2"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ])
    func ipv6CanonicalText(_ input: String, _ canonical: String) {
        #expect(IPv6Address(input)?.description == canonical)
    }

    @Test(arguments: [
        "", ":", ":::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "1:",
        ":1", "g::", "::1.2.3", "::256.1.1.1", "1:2:3:4:5:6:7:1.2.3.4", "fe80::1%eth0",
        "1:2:3:4:5:6:7:8::",
    ])
    func ipv6RefusesMalformedText(_ text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func ipv6TextRoundTripProperty() {
        seededCheck(count: 1000, seed: 0x6_5952, Wire.sparseIPv6) { address in
            let text = address.description
            #expect(IPv6Address(text) == address, "\(text)")
            // Canonical text never has a lone "::" for one group or uppercase.
            #expect(text == text.lowercased())
        }
        seededCheck(count: 300, seed: 0x6_0001, Wire.ipv6) { address in
            #expect(IPv6Address(address.description) == address)
        }
    }

    @Test func ipAddressPicksFamily() {
        #expect(IPAddress("10.1.2.3") == .v4(IPv4Address(10, 1, 2, 3)))
        #expect(IPAddress("2001:db8::5") == .v6(IPv6Address(high: 0x2001_0db8_0000_0000, low: 5)))
        #expect(IPAddress("2001:db8::5")?.description == "2001:db8::5")
        #expect(IPAddress("nonsense") == nil)
    }
}
