import Packet
import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

/// udhcpc's reports as vtepd reads them, and what a lease adds to the settings in force.
@Suite("DHCP: udhcpc's events and leases")
struct DHCPLeaseTests {
    let full = [
        "interface": "eth1", "ip": "198.51.100.50", "mask": "24",
        "router": "198.51.100.1 198.51.100.2", "dns": "198.51.100.53 2001:db8::53",
        "domain": "corp.example", "search": "lab.example. corp.example", "lease": "600",
        "serverid": "198.51.100.1",
    ]

    @Test func aBoundEventCarriesTheWholeLease() throws {
        let event = try DHCPEvent(udhcpcEvent: "bound", environment: full)
        guard case .bound(let lease, let renewal) = event else {
            Issue.record("\(event)")
            return
        }
        #expect(!renewal)
        #expect(lease.address == (try IPv4InterfaceAddress("198.51.100.50/24")))
        #expect(lease.routers == [IPv4Address("198.51.100.1")!, IPv4Address("198.51.100.2")!])
        #expect(lease.dnsServers == [IPAddress("198.51.100.53")!, IPAddress("2001:db8::53")!])
        // Option 15 first, then 119 without its root dot, each once.
        #expect(lease.searchDomains.map(\.text) == ["corp.example", "lab.example"])
        #expect(lease.leaseSeconds == 600)
        #expect(lease.server == IPv4Address("198.51.100.1"))
        guard case .bound(_, true) = try DHCPEvent(udhcpcEvent: "renew", environment: full) else {
            Issue.record("renew is not a renewal")
            return
        }
        #expect(try DHCPEvent(udhcpcEvent: "deconfig", environment: [:]) == .deconfig)
        #expect(try DHCPEvent(udhcpcEvent: "leasefail", environment: [:]) == .noAnswer)
        #expect(try DHCPEvent(udhcpcEvent: "nak", environment: [:]) == .refused)
    }

    /// Every value comes from a DHCP server: each bad one refuses the whole lease.
    @Test func badValuesFromTheServerAreRefused() {
        let bad: [(String, String?)] = [
            ("ip", nil), ("ip", "198.51.100.500"), ("ip", "0.0.0.0"), ("ip", "224.0.0.5"),
            ("mask", nil), ("mask", "0"), ("mask", "33"), ("mask", "255.255.255.0"),
            ("mask", "-1"), ("router", "198.51.100.1;reboot"), ("router", "255.255.255.255"),
            ("router", "0.0.0.0"), ("dns", "$(id)"), ("dns", "198.51.100.53\n"),
            ("domain", "../etc"), ("domain", "a b\u{1B}[2J"), ("search", "-x.example"),
            ("lease", "-5"), ("lease", "1e3"), ("serverid", "x"),
        ]
        for (key, value) in bad {
            var environment = full
            environment[key] = value
            #expect(throws: DHCPEventError.self, "\(key)=\(value ?? "(none)")") {
                try DHCPEvent(udhcpcEvent: "bound", environment: environment)
            }
        }
        #expect(throws: DHCPEventError.self) {
            try DHCPEvent(udhcpcEvent: "reboot; id", environment: full)
        }
        // What a server sent is shown escaped and cut short, never raw.
        #expect(DHCPEvent.printable("a\u{1B}[2J\nb") == "a\\x1b[2J\\xab")
        #expect(DHCPEvent.printable(String(repeating: "x", count: 100)).count == 65)
    }

    @Test func hookMessagesRoundTripAndJunkIsRefused() {
        let bytes = DHCPHookMessage.encode([("event", "bound"), ("ip", "198.51.100.50")])
        #expect(DHCPHookMessage.decode(bytes) == ["event": "bound", "ip": "198.51.100.50"])
        #expect(DHCPHookMessage.decode(Array("event=bound".utf8)) == nil)  // no NUL
        #expect(DHCPHookMessage.decode(Array("novalue\0".utf8)) == nil)
        #expect(DHCPHookMessage.decode(Array("a=1\0a=2\0".utf8)) == nil)
        #expect(DHCPHookMessage.decode([0xFF, 0x3D, 0x31, 0]) == nil)
        #expect(
            DHCPHookMessage.decode([UInt8](repeating: 0x41, count: 20000) + [0]) == nil)
    }

    @Test func aLeaseAddsAddressRouteAndResolversBesideTheStaticOnes() throws {
        var settings = ApplianceSettings()
        let eth1 = try InterfaceName("eth1")
        try settings.updateInterface(eth1) { $0.addressing = .dhcp }
        try settings.addDNSServer(#require(IPAddress("192.0.2.53")))
        guard case .bound(let lease, _) = try DHCPEvent(udhcpcEvent: "bound", environment: full)
        else { return }
        try settings.setLease(lease, on: eth1)
        #expect(settings.address(of: eth1) == lease.address)
        #expect(settings.effectiveRoutes.map(\.description) == ["default via 198.51.100.1"])
        #expect(
            settings.effectiveDNSServers.map(\.description)
                == ["192.0.2.53", "198.51.100.53", "2001:db8::53"])
        // A static default route wins over the lease's router.
        try settings.addRoute(StaticRoute(destination: nil, gateway: "192.0.2.1"))
        #expect(settings.effectiveRoutes.map(\.description) == ["default via 192.0.2.1"])
        // Leaving DHCP mode forgets the lease; a lease for a static interface is refused.
        let staticAddress = try IPv4InterfaceAddress("192.0.2.10/24")
        try settings.updateInterface(eth1) { $0.addressing = .staticIPv4(staticAddress) }
        #expect(settings.dhcpLeases.isEmpty)
        #expect(throws: ApplianceSettingsError.self) { try settings.setLease(lease, on: eth1) }
    }
}
