import Packet
import Testing

@Suite("IP prefixes (CIDR)") struct IPPrefixTests {
    @Test(arguments: [
        ("10.0.0.0/24", "10.0.0.0/24"), ("10.1.2.3", "10.1.2.3/32"), ("0.0.0.0/0", "0.0.0.0/0"),
        ("fd00::/64", "fd00::/64"), ("2001:db8::1", "2001:db8::1/128"), ("::/0", "::/0"),
        ("fd00:1:2:3:4::/80", "fd00:1:2:3:4::/80"),
    ])
    func parsesAndPrints(text: String, printed: String) throws {
        let prefix = try #require(IPPrefix(text))
        #expect(prefix.description == printed)
    }

    @Test(arguments: [
        "", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.1/24", "10.0.0.0/-1", "10.0.0.0/+8",
        "10.0.0.0/24/1", "fd00::1/64", "fd00::/129", "banana", "10.0.0.0/ 24",
    ])
    func refusesMalformedText(text: String) {
        #expect(IPPrefix(text) == nil)
    }

    @Test func containment() throws {
        let v4 = try #require(IPPrefix("192.168.16.0/20"))
        #expect(v4.contains(IPAddress("192.168.16.1")!))
        #expect(v4.contains(IPAddress("192.168.31.255")!))
        #expect(!v4.contains(IPAddress("192.168.32.0")!))
        #expect(!v4.contains(IPAddress("192.168.15.255")!))
        #expect(!v4.contains(IPAddress("::ffff:192.168.16.1")!))
        #expect(try #require(IPPrefix("0.0.0.0/0")).contains(IPAddress("255.255.255.255")!))

        let v6 = try #require(IPPrefix("fd00:0:0:ff00::/72"))
        #expect(v6.contains(IPAddress("fd00:0:0:ff00::1")!))
        // /72 = the first four groups and the top byte of the fifth.
        #expect(!v6.contains(IPAddress("fd00:0:0:ffff:ffff::")!))
        #expect(!v6.contains(IPAddress("fd00:0:0:ff00:100::")!))
        #expect(v6.contains(IPAddress("fd00:0:0:ff00:ff:ffff:ffff:ffff")!))
        #expect(!v6.contains(IPAddress("fd00:0:0:fe00::")!))
        #expect(!v6.contains(IPAddress("fd00:0:1:ff00::")!))
        #expect(!v6.contains(IPAddress("10.0.0.1")!))
        let host = try #require(IPPrefix("fd00::5"))
        #expect(host.contains(IPAddress("fd00::5")!))
        #expect(!host.contains(IPAddress("fd00::4")!))
    }

    @Test func clearsHostBitsWhenBuiltFromValues() throws {
        let prefix = try #require(IPPrefix(address: IPAddress("10.9.8.7")!, length: 8))
        #expect(prefix.description == "10.0.0.0/8")
        #expect(IPPrefix(address: IPAddress("10.9.8.7")!, length: 33) == nil)
        #expect(IPPrefix(address: IPAddress("::1")!, length: 129) == nil)
    }
}
