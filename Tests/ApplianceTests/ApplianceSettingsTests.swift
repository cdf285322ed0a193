import Appliance
import ControlAPI
import Foundation
import HostConfiguration
import Packet
import ProcessSpawning
import Testing

/// The error `body` throws, or nil.
private func settingsError(_ body: () throws(ApplianceSettingsError) -> Void)
    -> ApplianceSettingsError?
{
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

@Suite("Appliance settings: values an operator types")
struct ApplianceSettingsValueTests {
    @Test(arguments: [
        ("gw1", "gw1"), ("GW-1", "gw-1"), ("gw1.example.net", "gw1.example.net"),
        ("a", "a"), ("1gw", "1gw"),
        (String(repeating: "a", count: 63), String(repeating: "a", count: 63)),
    ])
    func validHostnames(_ text: String, _ stored: String) throws {
        #expect(try Hostname(text).text == stored)
    }

    @Test(arguments: [
        ("", "empty"), ("-gw", "hyphen"), ("gw-", "hyphen"), ("gw_1", "\"_\""),
        ("gw..x", "empty label"),
        ("gw.", "empty label"), ("gw;reboot", "\";\""), ("gw$(id)", "\"$\""), ("gw\n", "byte 0xa"),
        ("../etc", "empty label"), ("10.0.0.1", "all digits"),
        (String(repeating: "a", count: 64), "63"),
        (String(repeating: "abcdefgh.", count: 8) + "x", "at most 64"), ("gw 1", "\" \""),
    ])
    func invalidHostnames(_ text: String, _ reasonContains: String) {
        let error = settingsError { () throws(ApplianceSettingsError) in _ = try Hostname(text) }
        guard case .invalidHostname(let refused, let reason)? = error else {
            Issue.record(
                "\(text.debugDescription) was accepted or gave \(String(describing: error))")
            return
        }
        #expect(refused == text)
        #expect(reason.contains(reasonContains), "\(reason)")
        #expect(error!.description.hasPrefix("\"\(text)\" is not a valid hostname: "))
    }

    @Test func hostnameShortName() throws {
        #expect(try Hostname("gw1.example.net").shortName == "gw1")
        #expect(try Hostname("gw1").shortName == "gw1")
    }

    @Test(arguments: [
        ("192.0.2.10", "255.255.255.0", "192.0.2.10/24"), ("10.1.2.3", "255.0.0.0", "10.1.2.3/8"),
        ("192.0.2.1", "255.255.255.254", "192.0.2.1/31"),
        ("192.0.2.0", "255.255.255.254", "192.0.2.0/31"),
        ("192.0.2.7", "255.255.255.255", "192.0.2.7/32"),
        ("172.16.0.1", "255.255.240.0", "172.16.0.1/20"),
    ])
    func addressesWithNetmasks(_ address: String, _ netmask: String, _ stored: String) throws {
        let parsed = try IPv4InterfaceAddress(address: address, netmask: netmask)
        #expect(parsed.description == stored)
        #expect(parsed.netmask.description == netmask)
        #expect(try IPv4InterfaceAddress(stored) == parsed)
    }

    @Test(arguments: [
        ("192.0.2.10", "255.0.255.0", "not a netmask"), ("192.0.2.10", "0.0.0.0", "not a netmask"),
        ("192.0.2.10", "24", "not a netmask"), ("192.0.2.10", "255.255.255.1", "not a netmask"),
        ("192.0.2.300", "255.255.255.0", "not an IPv4"),
        ("2001:db8::1", "255.255.255.0", "not an IPv4"),
        ("192.0.2.0", "255.255.255.0", "network address of 192.0.2.0/24"),
        ("192.0.2.255", "255.255.255.0", "broadcast address of 192.0.2.0/24"),
        ("127.0.0.5", "255.0.0.0", "loopback"), ("224.0.0.5", "255.255.255.0", "multicast"),
        ("0.0.0.0", "255.255.255.0", "no address"), ("-1", "255.255.255.0", "not an IPv4"),
    ])
    func refusedAddresses(_ address: String, _ netmask: String, _ messageContains: String) {
        let error = settingsError { () throws(ApplianceSettingsError) in
            _ = try IPv4InterfaceAddress(address: address, netmask: netmask)
        }
        #expect(
            error?.description.contains(messageContains) == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        ("eth0", true), ("breth0", true), ("eth1.100", true), ("vtep_uplink-1", true),
        ("", false), ("a234567890123456", false), ("eth0;ls", false), ("../x", false),
        ("..", false),
        ("-eth0", false), ("eth 0", false), ("eth0/1", false), ("eth:0", false),
    ])
    func interfaceNames(_ text: String, _ valid: Bool) {
        let error = settingsError { () throws(ApplianceSettingsError) in _ = try InterfaceName(text)
        }
        #expect((error == nil) == valid, "\(text.debugDescription): \(String(describing: error))")
    }

    @Test(arguments: [67, 65536, 0, -1])
    func refusedMTUs(_ mtu: Int) throws {
        var settings = try InterfaceSettings(name: InterfaceName("eth0"))
        #expect(
            settingsError { () throws(ApplianceSettingsError) in try settings.setMTU(mtu) }
                == .invalidMTU(mtu))
        #expect(settings.mtu == nil)
        #expect(
            ApplianceSettingsError.invalidMTU(mtu).description
                == "MTU \(mtu) is out of range (68–65535)")
    }

    @Test func routes() throws {
        let route = try StaticRoute(destination: "198.51.100.0/24", gateway: "192.0.2.1")
        #expect(route.description == "198.51.100.0/24 via 192.0.2.1")
        let defaultRoute = try StaticRoute(destination: nil, gateway: "192.0.2.1")
        #expect(defaultRoute.isDefault)
        #expect(defaultRoute.destination == IPPrefix("0.0.0.0/0"))
        #expect(
            try StaticRoute(destination: nil, gateway: "fd00::1").destination == IPPrefix("::/0"))
        let refusals: [(String?, String, String)] = [
            ("198.51.100.1/24", "192.0.2.1", "not a network prefix"),
            ("198.51.100.0", "192.0.2.1", "not a network prefix"),
            ("198.51.100.0/33", "192.0.2.1", "not a network prefix"),
            ("198.51.100.0/24", "fd00::1", "family"),
            ("198.51.100.0/24", "224.0.0.1", "multicast"),
            ("198.51.100.0/24", "0.0.0.0", "unspecified"),
            ("2001:db8::/32", "ff02::1", "multicast"),
            ("198.51.100.0/24", "gateway", "not an IP address"),
            (nil, "$(reboot)", "not an IP address"),
        ]
        for (destination, gateway, message) in refusals {
            let error = settingsError { () throws(ApplianceSettingsError) in
                _ = try StaticRoute(destination: destination, gateway: gateway)
            }
            #expect(
                error?.description.contains(message) == true,
                "\(destination ?? "-") \(gateway): \(String(describing: error))")
        }
    }

    @Test func ntpServersAndDomains() throws {
        #expect(try NTPServer("192.0.2.123") == .address(IPAddress("192.0.2.123")!))
        #expect(try NTPServer("2001:db8::123") == .address(IPAddress("2001:db8::123")!))
        #expect(
            try NTPServer("0.Debian.pool.ntp.org") == .host(DomainName("0.debian.pool.ntp.org")))
        for bad in ["10.0.0.300", "ntp;id", "-ntp", "", "ntp..org", "`id`", "a/b"] {
            #expect(
                settingsError { () throws(ApplianceSettingsError) in _ = try NTPServer(bad) }
                    == .invalidNTPServer(bad))
        }
        #expect(try DomainName("Example.NET").text == "example.net")
        #expect(
            settingsError { () throws(ApplianceSettingsError) in
                _ = try DomainName(String(repeating: "a.", count: 127) + "ab")
            } != nil)
    }

    @Test(arguments: [
        ("admin", true), ("_svc", true), ("op-1", true), ("Admin", false), ("1admin", false),
        ("ad min", false), ("", false), ("root;", false),
    ])
    func userNames(_ text: String, _ valid: Bool) {
        #expect(
            (settingsError { () throws(ApplianceSettingsError) in _ = try UserName(text) } == nil)
                == valid)
    }

    @Test func listsRefuseDuplicatesMissingEntriesAndOverflow() throws {
        var settings = ApplianceSettings()
        let before = settings
        let dns = ["192.0.2.53", "2001:db8::53", "198.51.100.53"].map { IPAddress($0)! }
        for server in dns { try settings.addDNSServer(server) }
        #expect(
            settingsError { () throws(ApplianceSettingsError) in try settings.addDNSServer(dns[0])
            }?.description == "DNS server 192.0.2.53 is already configured")
        #expect(
            settingsError { () throws(ApplianceSettingsError) in
                try settings.addDNSServer(IPAddress("203.0.113.53")!)
            }?.description.hasPrefix("at most 3 DNS servers") == true)
        #expect(
            settingsError { () throws(ApplianceSettingsError) in
                try settings.removeDNSServer(IPAddress("203.0.113.53")!)
            }?.description == "no DNS server 203.0.113.53 is configured")
        #expect(settings.dnsServers == dns)
        try settings.removeDNSServer(dns[1])
        #expect(settings.dnsServers == [dns[0], dns[2]])

        let route = try StaticRoute(destination: "198.51.100.0/24", gateway: "192.0.2.1")
        try settings.addRoute(route)
        let sameDestination = try StaticRoute(destination: "198.51.100.0/24", gateway: "192.0.2.2")
        #expect(
            settingsError { () throws(ApplianceSettingsError) in
                try settings.addRoute(sameDestination)
            } != nil)
        #expect(
            settingsError { () throws(ApplianceSettingsError) in
                try settings.removeRoute(sameDestination)
            } != nil)
        #expect(settings.routes == [route])

        for index in 0..<6 { try settings.addSearchDomain(DomainName("d\(index).example")) }
        #expect(
            settingsError { () throws(ApplianceSettingsError) in
                try settings.addSearchDomain(DomainName("d6.example"))
            } != nil)

        // The same address on two interfaces is refused and changes nothing.
        let address = try IPv4InterfaceAddress("192.0.2.10/24")
        try settings.updateInterface(InterfaceName("eth1")) { $0.addressing = .staticIPv4(address) }
        let snapshot = settings
        #expect(
            settingsError { () throws(ApplianceSettingsError) in
                try settings.updateInterface(InterfaceName("eth2")) {
                    $0.addressing = .staticIPv4(address)
                }
            } != nil)
        #expect(settings == snapshot)
        #expect(before != settings)
    }
}

@Suite("Appliance settings: the saved JSON form")
struct ApplianceSettingsJSONTests {
    static func sample() throws -> ApplianceSettings {
        var settings = ApplianceSettings(hostname: try Hostname("gw1.example.net"))
        try settings.updateInterface(InterfaceName("eth1")) {
            (interface) throws(ApplianceSettingsError) in
            interface.addressing = .staticIPv4(
                try IPv4InterfaceAddress(address: "192.0.2.10", netmask: "255.255.255.0"))
            try interface.setMTU(9000)
            interface.isUp = true
        }
        try settings.updateInterface(InterfaceName("eth0")) { $0.addressing = .dhcp }
        try settings.addRoute(StaticRoute(destination: nil, gateway: "192.0.2.1"))
        try settings.addRoute(StaticRoute(destination: "2001:db8:9::/48", gateway: "fd00::1"))
        try settings.addDNSServer(IPAddress("192.0.2.53")!)
        try settings.addSearchDomain(DomainName("example.net"))
        try settings.addNTPServer(NTPServer("pool.ntp.org"))
        try settings.addNTPServer(NTPServer("192.0.2.123"))
        settings.setUser(
            ApplianceUser(
                name: try UserName("admin"), passwordHash: try PasswordHash("$6$salt$hash")))
        return settings
    }

    static let sampleJSON = """
        {
          "dns_search_domains" : [
            "example.net"
          ],
          "dns_servers" : [
            "192.0.2.53"
          ],
          "hostname" : "gw1.example.net",
          "interfaces" : [
            {
              "ipv4" : "dhcp",
              "name" : "eth0"
            },
            {
              "admin_state" : "up",
              "ipv4" : "192.0.2.10/24",
              "mtu" : 9000,
              "name" : "eth1"
            }
          ],
          "ntp_servers" : [
            "pool.ntp.org",
            "192.0.2.123"
          ],
          "routes" : [
            {
              "destination" : "0.0.0.0/0",
              "gateway" : "192.0.2.1"
            },
            {
              "destination" : "2001:db8:9::/48",
              "gateway" : "fd00::1"
            }
          ],
          "schema_version" : 1,
          "users" : [
            {
              "name" : "admin",
              "password_hash" : "$6$salt$hash"
            }
          ]
        }

        """

    @Test func stableFormAndRoundTrip() throws {
        let settings = try Self.sample()
        let json = settings.json()
        #expect(String(decoding: json, as: UTF8.self) == Self.sampleJSON)
        let decoded = try ApplianceSettings(json: json)
        #expect(decoded == settings)
        #expect(decoded.json() == json)
        #expect(try ApplianceSettings(json: ApplianceSettings().json()) == ApplianceSettings())
    }

    @Test(arguments: [
        ("", "corrupt"),
        ("{\"schema_version\" : 1", "corrupt"),
        (
            "{\"schema_version\" : 2, \"interfaces\": [], \"routes\": [], \"dns_servers\": [], \"dns_search_domains\": [], \"ntp_servers\": [], \"users\": []}",
            "schema version 2"
        ),
        (
            "{\"schema_version\" : 1, \"hostname\": \"bad;name\", \"interfaces\": [], \"routes\": [], \"dns_servers\": [], \"dns_search_domains\": [], \"ntp_servers\": [], \"users\": []}",
            "not a valid hostname"
        ),
        (
            "{\"schema_version\" : 1, \"interfaces\": [{\"name\": \"eth0\", \"mtu\": 10}], \"routes\": [], \"dns_servers\": [], \"dns_search_domains\": [], \"ntp_servers\": [], \"users\": []}",
            "MTU 10"
        ),
        (
            "{\"schema_version\" : 1, \"interfaces\": [{\"name\": \"eth0\", \"admin_state\": \"sideways\"}], \"routes\": [], \"dns_servers\": [], \"dns_search_domains\": [], \"ntp_servers\": [], \"users\": []}",
            "admin_state of eth0 is \"sideways\" (expected up or down)"
        ),
        (
            "{\"schema_version\" : 1, \"interfaces\": [], \"routes\": [], \"dns_servers\": [\"x\"], \"dns_search_domains\": [], \"ntp_servers\": [], \"users\": []}",
            "not an IP address"
        ),
        ("{\"schema_version\" : 1, \"routes\": []}", "missing"),
    ])
    func corruptDocumentsAreRefusedWithTheReason(_ text: String, _ reasonContains: String) {
        do {
            _ = try ApplianceSettings(json: Array(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            guard case .corrupt(nil, let reason) = error else {
                Issue.record("\(error)")
                return
            }
            if reasonContains != "corrupt" {
                #expect(reason.contains(reasonContains), "\(reason)")
            }
        }
    }
}
