import Packet
import Routing
import Testing

@Suite("Logical router configuration")
struct LogicalRouterTests {
    static let interfaces = ["10.0.0.254/24": "tenant", "198.51.100.1/24": "uplink"]

    @Test("Interfaces, routes and NAT rules read from a Logical_Router row")
    func reads() throws {
        let router = try LogicalRouter(
            name: "r1", bindings: Self.interfaces, staticRoutes: ["0.0.0.0/0": "198.51.100.2"],
            otherConfig: [
                "snat:10.0.0.0/24": "198.51.100.10", "floating-ip:198.51.100.11": "10.0.0.5",
                "dnat:198.51.100.12:8080/udp": "10.0.0.6:53", "snat:10.0.0.0/25": "198.51.100.13",
                "description-of-something-else": "ignored",
            ])
        #expect(router.interfaces.map(\.logicalSwitch) == ["tenant", "uplink"])
        #expect(router.interfaces.map(\.addressText) == ["10.0.0.254/24", "198.51.100.1/24"])
        #expect(router.routes.map(\.description) == ["0.0.0.0/0 via 198.51.100.2"])
        // Floating IPs first, then port forwards, then SNAT by longest prefix.
        #expect(
            router.nat.map(\.key) == [
                "floating-ip:198.51.100.11", "dnat:198.51.100.12:8080/udp", "snat:10.0.0.0/25",
                "snat:10.0.0.0/24",
            ])
        #expect(
            router.nat.map(\.value) == [
                "10.0.0.5", "10.0.0.6:53", "198.51.100.13", "198.51.100.10",
            ])
        // External addresses that are not the uplink's own are added to it.
        #expect(
            router.natAddresses.map(\.address.description) == [
                "198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13",
            ])
        #expect(Set(router.natAddresses.map(\.interface.logicalSwitch)) == ["uplink"])
    }

    @Test("IPv6: routed on the interfaces' veths, one IPv4 and one IPv6 address per switch")
    func dualStack() throws {
        let router = try LogicalRouter(
            name: "r1",
            bindings: [
                "10.0.0.254/24": "tenant", "2001:db8:1::1/64": "tenant",
                "198.51.100.1/24": "uplink", "2001:db8:2::1/64": "uplink",
                "2001:db8:3::1/64": "v6only",
            ],
            staticRoutes: ["::/0": "2001:db8:2::2", "0.0.0.0/0": "198.51.100.2"],
            otherConfig: ["snat:10.0.0.0/24": "198.51.100.10"])
        #expect(
            router.interfaces.map(\.addressText) == [
                "10.0.0.254/24", "2001:db8:1::1/64", "198.51.100.1/24", "2001:db8:2::1/64",
                "2001:db8:3::1/64",
            ])
        // One veth per switch, shared by its two addresses.
        #expect(router.links.map(\.logicalSwitch) == ["tenant", "uplink", "v6only"])
        #expect(router.interfaces[0].port == router.interfaces[1].port)
        #expect(
            router.routes.map(\.description) == [
                "0.0.0.0/0 via 198.51.100.2", "::/0 via 2001:db8:2::2",
            ])
        #expect(router.interface(reaching: IPAddress("2001:db8:3::9")!)?.logicalSwitch == "v6only")
        // NAT is IPv4's: the ruleset is the same as without the IPv6 addresses.
        let v4 = try LogicalRouter(
            name: "r1", bindings: ["10.0.0.254/24": "tenant", "198.51.100.1/24": "uplink"],
            staticRoutes: [:], otherConfig: ["snat:10.0.0.0/24": "198.51.100.10"])
        #expect(
            NATRuleset.text(for: router, counters: [:]) == NATRuleset.text(for: v4, counters: [:]))
    }

    @Test("Interface MTU: a physical segment's, or the underlay's less the encapsulation")
    func linkMTU() {
        #expect(LinkMTU.tunnelOverhead(vxlan: true, greHeader: 8, ipv6: false) == 50)
        #expect(LinkMTU.tunnelOverhead(vxlan: true, greHeader: 8, ipv6: true) == 70)
        #expect(LinkMTU.tunnelOverhead(vxlan: false, greHeader: 8, ipv6: false) == 42)
        #expect(LinkMTU.tunnelOverhead(vxlan: false, greHeader: 16, ipv6: true) == 70)
        let mtus = ["eth0": 1500, "eth1": 9000, "small": 1300]
        let read = { (name: String) in mtus[name] }
        #expect(LinkMTU.underlay(less: 50).resolve(underlay: "eth0", interfaceMTU: read) == 1450)
        #expect(LinkMTU.underlay(less: 50).resolve(underlay: "eth1", interfaceMTU: read) == 8950)
        // Unknown underlay, or less than IPv6's minimum left: the veth default stays.
        #expect(LinkMTU.underlay(less: 50).resolve(underlay: nil, interfaceMTU: read) == nil)
        #expect(LinkMTU.underlay(less: 50).resolve(underlay: "small", interfaceMTU: read) == nil)
        #expect(
            LinkMTU.ports(["eth1", "eth0", "gone"]).resolve(underlay: nil, interfaceMTU: read)
                == 1500)
        #expect(LinkMTU.ports(["gone"]).resolve(underlay: "eth0", interfaceMTU: read) == nil)
    }

    @Test("Port names: derived from router and switch, 13 bytes, stable, distinct")
    func names() throws {
        let a = try LogicalRouter(
            name: "r1", bindings: Self.interfaces, staticRoutes: [:], otherConfig: [:])
        let again = try LogicalRouter(
            name: "r1", bindings: Self.interfaces, staticRoutes: [:], otherConfig: [:])
        let b = try LogicalRouter(
            name: "r2", bindings: Self.interfaces, staticRoutes: [:], otherConfig: [:])
        #expect(a == again)
        let ports = (a.interfaces + b.interfaces).map(\.port)
        #expect(Set(ports).count == 4)
        #expect(Set((a.interfaces + b.interfaces).map(\.mac)).count == 4)
        for i in a.interfaces + b.interfaces {
            #expect(i.port.utf8.count == 13 && i.inside.utf8.count == 13)
            #expect(i.port.utf8.count <= LogicalRouter.interfaceNameLimit)
            #expect(LogicalRouter.isRouterPort(i.port))
            #expect(i.inside.dropFirst(2) == i.port.dropFirst(2))
            // The inner end's MAC: locally administered unicast, from the same digits.
            #expect(i.mac.hasPrefix("02:") && i.mac.utf8.count == 17)
            #expect(i.mac.filter { $0 != ":" }.dropFirst(2) == i.port.dropFirst(2).prefix(10))
        }
        #expect(!LogicalRouter.isRouterPort("lo"))
        #expect(!LogicalRouter.isRouterPort("lrXXXXXXXXXXX"))
    }

    @Test(
        "Refused with the reason",
        arguments: [
            (
                ["10.0.0.1/24": "a", "10.0.0.129/25": "b"], [String: String](), [String: String](),
                "overlap"
            ),
            (
                ["10.0.0.1/24": "a"], ["0.0.0.0/0": "192.0.2.1"], [:],
                "on none of the router's interfaces"
            ),
            (["10.0.0.1/24": "a"], [:], ["snat:10.0.0.0/24": "192.0.2.10"], "uplink's subnet"),
            (
                ["10.0.0.1/24": "a"], [:], ["dnat:10.0.0.9/tcp": "10.0.0.2"],
                "needs an external port"
            ),
            (["10.0.0.1/24": "a"], [:], ["snat:10.0.0.1/24": "10.0.0.9"], "not an IPv4 prefix"),
            (["10.0.0.1": "a"], [:], [:], "is not IP/PREFIX"),
            (["10.0.0.1/24": "a", "10.0.1.1/24": "a"], [:], [:], "two interfaces"),
            (["2001:db8:1::1/64": "a", "2001:db8::1/32": "b"], [:], [:], "overlap"),
            (["2001:db8::1/64": "a", "2001:db8:1::1/64": "a"], [:], [:], "two interfaces"),
            (
                ["2001:db8::1/64": "a", "10.0.0.1/24": "b"], ["::/0": "2001:db8:9::1"], [:],
                "on none of the router's interfaces"
            ),
            // An IPv6 next hop is not reached through an IPv4 interface on its switch.
            (["10.0.0.1/24": "a"], ["2001:db8:5::/64": "2001:db8::2"], [:], "on none"),
            (["10.0.0.1/24": "a"], [:], ["session-limit": "0"], "not a number of sessions"),
        ] as [([String: String], [String: String], [String: String], String)])
    func refused(
        bindings: [String: String], routes: [String: String], other: [String: String],
        reason: String
    ) {
        #expect {
            try LogicalRouter(
                name: "r", bindings: bindings, staticRoutes: routes, otherConfig: other)
        } throws: { error in
            (error as? RouterError)?.description.contains(reason) == true
        }
    }

    @Test("Router names that cannot name a namespace are refused")
    func badNames() {
        for name in ["", "a/b", "..", String(repeating: "x", count: 33), "a b"] {
            #expect(throws: RouterError.self) { try LogicalRouter.validate(name: name) }
        }
        #expect(throws: Never.self) { try LogicalRouter.validate(name: "tenant-1.edge_2") }
    }

    @Test("The ruleset: one transaction, a counter and the rule's key on every rule")
    func ruleset() throws {
        let router = try LogicalRouter(
            name: "r1", bindings: Self.interfaces, staticRoutes: [:],
            otherConfig: [
                "snat:10.0.0.0/24": "198.51.100.10", "floating-ip:198.51.100.11": "10.0.0.5",
                "dnat:198.51.100.1:2222": "10.0.0.6:22", "dnat:198.51.100.14": "10.0.0.7",
            ])
        let uplink = router.interfaces[1].inside
        #expect(
            NATRuleset.text(for: router) == """
                flush ruleset
                table ip vtepd {
                    chain prerouting {
                        type nat hook prerouting priority dstnat; policy accept;
                        ip daddr 198.51.100.11 counter dnat to 10.0.0.5 comment "floating-ip:198.51.100.11"
                        ip daddr 198.51.100.14 counter dnat to 10.0.0.7 comment "dnat:198.51.100.14"
                        ip daddr 198.51.100.1 tcp dport 2222 counter dnat to 10.0.0.6:22 comment "dnat:198.51.100.1:2222/tcp"
                    }
                    chain postrouting {
                        type nat hook postrouting priority srcnat; policy accept;
                        oifname "\(uplink)" ip saddr 10.0.0.5 counter snat to 198.51.100.11 comment "floating-ip:198.51.100.11"
                        oifname "\(uplink)" ip saddr 10.0.0.0/24 counter snat to 198.51.100.10 comment "snat:10.0.0.0/24"
                    }
                }

                """)
    }

    @Test(
        "A session limit is a connlimit rule in the forward chain of an inet table (IPv4 and IPv6 sessions), counted"
    )
    func sessionLimit() throws {
        let router = try LogicalRouter(
            name: "r1", bindings: Self.interfaces, staticRoutes: [:],
            otherConfig: ["session-limit": "1000"])
        #expect(router.sessionLimit == 1000)
        #expect(
            NATRuleset.text(for: router, counters: ["forward session-limit": (3, 252)]).hasSuffix(
                """
                    chain postrouting {
                        type nat hook postrouting priority srcnat; policy accept;
                    }
                }
                table inet vtepd {
                    chain forward {
                        type filter hook forward priority filter; policy accept;
                        ct state new ct count over 1000 counter packets 3 bytes 252 drop comment "session-limit"
                    }
                }

                """))
    }

    @Test("A change that keeps the session limit swaps the NAT chains only")
    func natChainsAlone() throws {
        let router = try LogicalRouter(
            name: "r1", bindings: Self.interfaces, staticRoutes: [:],
            otherConfig: ["session-limit": "1000", "dnat:198.51.100.12": "10.0.0.7"])
        #expect(
            NATRuleset.natText(for: router, counters: ["prerouting dnat:198.51.100.12": (2, 120)])
                == """
                flush chain ip vtepd prerouting
                flush chain ip vtepd postrouting
                table ip vtepd {
                    chain prerouting {
                        type nat hook prerouting priority dstnat; policy accept;
                        ip daddr 198.51.100.12 counter packets 2 bytes 120 dnat to 10.0.0.7 comment "dnat:198.51.100.12"
                    }
                    chain postrouting {
                        type nat hook postrouting priority srcnat; policy accept;
                    }
                }

                """)
    }

    @Test("Counters per rule from libnftables' JSON listing")
    func counters() {
        let json = """
            {"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "ip", "name": "vtepd", "handle": 1}},
            {"rule": {"family": "ip", "table": "vtepd", "chain": "prerouting", "handle": 3,
              "comment": "floating-ip:198.51.100.11", "expr": [{"match": {"op": "==",
              "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.51.100.11"}},
              {"counter": {"packets": 2, "bytes": 168}}, {"dnat": {"addr": "10.0.0.5"}}]}},
            {"rule": {"family": "ip", "table": "vtepd", "chain": "postrouting", "handle": 4,
              "comment": "floating-ip:198.51.100.11", "expr": [{"counter": {"packets": 3, "bytes": 180}}]}},
            {"rule": {"family": "ip", "table": "vtepd", "chain": "postrouting", "handle": 5,
              "comment": "snat:10.0.0.0/24", "expr": [{"counter": {"packets": 0, "bytes": 0}}]}}]}
            """
        let counters = NATRuleset.counters(fromJSON: json)
        #expect(counters.count == 2)
        #expect(counters["floating-ip:198.51.100.11"]?.packets == 5)
        #expect(counters["floating-ip:198.51.100.11"]?.bytes == 348)
        #expect(counters["snat:10.0.0.0/24"]?.packets == 0)
        #expect(NATRuleset.counters(fromJSON: "not json").isEmpty)
        let rules = NATRuleset.ruleCounters(fromJSON: json)
        #expect(rules["prerouting floating-ip:198.51.100.11"]?.packets == 2)
        #expect(rules["postrouting floating-ip:198.51.100.11"]?.bytes == 180)
        #expect(rules.count == 3)
    }

    @Test("A rule that carries on across a ruleset swap keeps its count")
    func countersCarryOver() throws {
        let router = try LogicalRouter(
            name: "r1", bindings: Self.interfaces, staticRoutes: [:],
            otherConfig: [
                "snat:10.0.0.0/24": "198.51.100.10", "floating-ip:198.51.100.11": "10.0.0.5",
            ])
        let text = NATRuleset.text(
            for: router,
            counters: [
                "postrouting snat:10.0.0.0/24": (7, 420),
                "prerouting floating-ip:198.51.100.11": (2, 168),
                "postrouting snat:10.9.0.0/16": (5, 300),
            ])
        #expect(
            text.contains("ip saddr 10.0.0.0/24 counter packets 7 bytes 420 snat to 198.51.100.10"))
        #expect(
            text.contains("ip daddr 198.51.100.11 counter packets 2 bytes 168 dnat to 10.0.0.5"))
        #expect(text.contains("ip saddr 10.0.0.5 counter snat to 198.51.100.11"))
        #expect(!text.contains("10.9.0.0"))
    }
}
