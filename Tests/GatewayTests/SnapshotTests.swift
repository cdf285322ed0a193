import ControlAPI
import Forwarding
import HostConfiguration
import Packet
import PropertyChecks
import TestSupport
import Testing

@testable import DataPlane
@testable import Gateway
@testable import OVSDB
@testable import ProcessSpawning
@testable import SwitchControl

/// Builds `HardwareVTEP.Database` values row by row, as vtep-ctl would leave them.
struct DatabaseBuilder {
    var database = HardwareVTEP.Database()
    private var next = 1
    private var locatorByAddress: [String: UUID] = [:]

    mutating func id() -> UUID {
        defer { next += 1 }
        return UUID(String(format: "%08x-0000-4000-8000-000000000000", next))!
    }

    @discardableResult
    mutating func physicalSwitch(_ name: String, tunnelIPs: [String] = []) -> UUID {
        let uuid = id()
        database.physicalSwitches[uuid] = .init(
            uuid: uuid, name: name, description: "", tunnelIPs: tunnelIPs, ports: [])
        return uuid
    }

    @discardableResult
    mutating func port(_ name: String, on ps: UUID, bindings: [UInt16: UUID] = [:]) -> UUID {
        let uuid = id()
        database.physicalPorts[uuid] = .init(
            uuid: uuid, name: name, description: "", vlanBindings: bindings)
        database.physicalSwitches[ps]!.ports.append(uuid)
        return uuid
    }

    mutating func bind(_ port: UUID, vlan: UInt16, to ls: UUID) {
        database.physicalPorts[port]!.vlanBindings[vlan] = ls
    }

    @discardableResult
    mutating func logicalSwitch(
        _ name: String, key: Int?, mode: String? = nil, config: [String: String] = [:]
    ) -> UUID {
        let uuid = id()
        database.logicalSwitches[uuid] = .init(
            uuid: uuid, name: name, description: "", tunnelKey: key, replicationMode: mode,
            otherConfig: config)
        return uuid
    }

    mutating func locator(_ ip: String, encapsulation: String = "vxlan_over_ipv4") -> UUID {
        let key = encapsulation + "/" + ip
        if let known = locatorByAddress[key] { return known }
        let uuid = id()
        database.physicalLocators[uuid] = .init(
            uuid: uuid, dstIP: ip, encapsulationType: encapsulation)
        locatorByAddress[key] = uuid
        return uuid
    }

    mutating func ucast(
        _ mac: String, in ls: UUID, at ip: String, encapsulation: String = "vxlan_over_ipv4",
        ipaddr: String = ""
    ) {
        let uuid = id()
        database.ucastMacsRemote[uuid] = .init(
            uuid: uuid, mac: mac, logicalSwitch: ls,
            locator: locator(ip, encapsulation: encapsulation), ipaddr: ipaddr)
    }

    mutating func mcast(_ ips: [String], in ls: UUID, mac: String = "unknown-dst") {
        let set = id()
        database.physicalLocatorSets[set] = .init(
            uuid: set, locators: ips.map { locator($0) })
        let uuid = id()
        database.mcastMacsRemote[uuid] = .init(
            uuid: uuid, mac: mac, logicalSwitch: ls, locatorSet: set, ipaddr: "")
    }

    func snapshot(_ name: String = "ps0", local: [String] = ["10.0.0.1"]) -> GatewaySnapshot {
        GatewaySnapshot(
            database: database, physicalSwitch: name, localTunnelIPs: local.map { ip($0) })
    }
}

func ip(_ text: String) -> IPAddress { IPAddress(text)! }
func mac(_ text: String) -> MACAddress { MACAddress(text)! }
func vxlan(_ text: String) -> Locator { Locator(ip(text), .vxlan) }
func prefix(_ text: String) -> IPPrefix { IPPrefix(text)! }
func vni(_ n: UInt32) -> VNI { VNI(rawValue: n)! }

/// Our gateway ps0 (10.0.0.1) with ports p0 and p1, nothing bound.
func gateway() -> (DatabaseBuilder, ps: UUID, p0: UUID, p1: UUID) {
    var b = DatabaseBuilder()
    let ps = b.physicalSwitch("ps0", tunnelIPs: ["10.0.0.1"])
    let p0 = b.port("p0", on: ps)
    let p1 = b.port("p1", on: ps)
    return (b, ps, p0, p1)
}

/// One row in a table: a database, and what the snapshot of ps0 must hold.
struct SnapshotCase: Sendable, CustomTestStringConvertible {
    var name: String
    var database: HardwareVTEP.Database
    var switches: [LogicalSwitch]
    var bindings: [Binding]
    var locators: [Locator]
    var remoteMACs: [GatewaySnapshot.RemoteMAC] = []
    var problems: [String] = []
    var testDescription: String { name }
}

@Suite struct SnapshotTests {
    static let cases: [SnapshotCase] = {
        var cases: [SnapshotCase] = []

        do {
            var (b, _, p0, p1) = gateway()
            let ls0 = b.logicalSwitch("ls0", key: 5000, mode: "source_node")
            let ls1 = b.logicalSwitch("ls1", key: 5001, mode: "source_node")
            b.bind(p0, vlan: 0, to: ls0)
            b.bind(p0, vlan: 100, to: ls1)
            b.bind(p1, vlan: 200, to: ls0)
            // Our own address in the set is left out; the others sorted by address.
            b.mcast(["10.0.0.3", "10.0.0.1", "10.0.0.2"], in: ls0)
            b.ucast("00:00:5e:00:53:01", in: ls0, at: "10.0.0.4")
            b.ucast("00:00:5e:00:53:02", in: ls1, at: "10.0.0.2")
            cases.append(
                SnapshotCase(
                    name: "head-end replication (source_node)", database: b.database,
                    switches: [
                        LogicalSwitch(
                            name: "ls0", vni: vni(5000),
                            replication: .headEnd([vxlan("10.0.0.2"), vxlan("10.0.0.3")])),
                        LogicalSwitch(name: "ls1", vni: vni(5001), replication: .headEnd([])),
                    ],
                    bindings: [
                        Binding(port: "p0", vlan: nil, logicalSwitch: "ls0"),
                        Binding(port: "p0", vlan: 100, logicalSwitch: "ls1"),
                        Binding(port: "p1", vlan: 200, logicalSwitch: "ls0"),
                    ],
                    locators: [vxlan("10.0.0.2"), vxlan("10.0.0.3"), vxlan("10.0.0.4")],
                    remoteMACs: [
                        .init(
                            logicalSwitch: "ls0", mac: mac("00:00:5e:00:53:01"),
                            locator: vxlan("10.0.0.4")),
                        .init(
                            logicalSwitch: "ls1", mac: mac("00:00:5e:00:53:02"),
                            locator: vxlan("10.0.0.2")),
                    ]))
        }
        do {
            // vtep(5): an empty replication_mode means service_node.
            var (b, _, p0, _) = gateway()
            let ls0 = b.logicalSwitch("ls0", key: 7)
            b.bind(p0, vlan: 10, to: ls0)
            b.mcast(["192.0.2.9"], in: ls0)
            cases.append(
                SnapshotCase(
                    name: "service node by default", database: b.database,
                    switches: [
                        LogicalSwitch(
                            name: "ls0", vni: vni(7),
                            replication: .serviceNode([vxlan("192.0.2.9")]))
                    ],
                    bindings: [Binding(port: "p0", vlan: 10, logicalSwitch: "ls0")],
                    locators: [vxlan("192.0.2.9")]))
        }
        do {
            var (b, _, p0, _) = gateway()
            let ls0 = b.logicalSwitch("ls0", key: 7, mode: "service_node")
            b.bind(p0, vlan: 10, to: ls0)
            b.mcast(["192.0.2.20", "192.0.2.9"], in: ls0)
            cases.append(
                SnapshotCase(
                    name: "service nodes: all of them, lowest address first", database: b.database,
                    switches: [
                        LogicalSwitch(
                            name: "ls0", vni: vni(7),
                            replication: .serviceNode([vxlan("192.0.2.9"), vxlan("192.0.2.20")]))
                    ],
                    bindings: [Binding(port: "p0", vlan: 10, logicalSwitch: "ls0")],
                    locators: [vxlan("192.0.2.9"), vxlan("192.0.2.20")]))
        }
        do {
            var (b, _, p0, _) = gateway()
            let ls0 = b.logicalSwitch("ls0", key: 7, mode: "service_node")
            b.bind(p0, vlan: 10, to: ls0)
            cases.append(
                SnapshotCase(
                    name: "service node missing: BUM stays local", database: b.database,
                    switches: [LogicalSwitch(name: "ls0", vni: vni(7), replication: .headEnd([]))],
                    bindings: [Binding(port: "p0", vlan: 10, logicalSwitch: "ls0")],
                    locators: [],
                    problems: ["has no unknown-dst locator"]))
        }
        do {
            var (b, _, p0, p1) = gateway()
            let ls0 = b.logicalSwitch(
                "ls0", key: 100, mode: "source_node",
                config: [
                    "multicast-group": "239.1.1.1", "mac-ageing": "0", "mac-limit": "1000",
                    "allowed-sources": "10.0.0.0/24, 192.0.2.7",
                ])
            let ls1 = b.logicalSwitch("ls1", key: 101, config: ["multicast-group": "ff0e::db8:1"])
            b.bind(p0, vlan: 0, to: ls0)
            b.bind(p1, vlan: 0, to: ls1)
            // The multicast group wins over the unknown-dst set, whose VTEPs stay peers.
            b.mcast(["10.0.0.7"], in: ls0)
            cases.append(
                SnapshotCase(
                    name: "multicast groups and other_config", database: b.database,
                    switches: [
                        LogicalSwitch(
                            name: "ls0", vni: vni(100), replication: .multicast(vxlan("239.1.1.1")),
                            macAgeing: 0, macLimit: 1000,
                            acceptedSources: [prefix("10.0.0.0/24"), prefix("192.0.2.7")]),
                        LogicalSwitch(
                            name: "ls1", vni: vni(101),
                            replication: .multicast(vxlan("ff0e::db8:1"))),
                    ],
                    bindings: [
                        Binding(port: "p0", vlan: nil, logicalSwitch: "ls0"),
                        Binding(port: "p1", vlan: nil, logicalSwitch: "ls1"),
                    ],
                    locators: [vxlan("10.0.0.7")]))
        }
        do {
            // hardware_vtep has no vxlan_over_ipv6: an IPv6 dst_ip under vxlan_over_ipv4.
            var b = DatabaseBuilder()
            let ps = b.physicalSwitch("ps0", tunnelIPs: ["2001:db8::1"])
            let ls0 = b.logicalSwitch("ls0", key: 9, mode: "source_node")
            b.port("eth1", on: ps, bindings: [0: ls0])
            b.mcast(["2001:db8::2", "2001:db8::1"], in: ls0)
            b.ucast("02:00:00:00:00:0a", in: ls0, at: "2001:db8::3")
            cases.append(
                SnapshotCase(
                    name: "IPv6 locators", database: b.database,
                    switches: [
                        LogicalSwitch(
                            name: "ls0", vni: vni(9), replication: .headEnd([vxlan("2001:db8::2")]))
                    ],
                    bindings: [Binding(port: "eth1", vlan: nil, logicalSwitch: "ls0")],
                    locators: [vxlan("2001:db8::2"), vxlan("2001:db8::3")],
                    remoteMACs: [
                        .init(
                            logicalSwitch: "ls0", mac: mac("02:00:00:00:00:0a"),
                            locator: vxlan("2001:db8::3"))
                    ]))
        }
        do {
            // ARP and ND suppression: the switch's key, and each remote MAC's ipaddr (one
            // that is not a unicast address is reported; its MAC still installs).
            var (b, _, p0, _) = gateway()
            let ls0 = b.logicalSwitch(
                "ls0", key: 5000, mode: "source_node", config: ["arp-suppression": "true"])
            b.bind(p0, vlan: 0, to: ls0)
            b.ucast("02:00:00:00:00:0a", in: ls0, at: "10.0.0.2", ipaddr: "10.1.0.2")
            b.ucast("02:00:00:00:00:0b", in: ls0, at: "10.0.0.2", ipaddr: "fd01::2")
            b.ucast("02:00:00:00:00:0c", in: ls0, at: "10.0.0.2", ipaddr: "239.1.1.1")
            cases.append(
                SnapshotCase(
                    name: "ARP suppression and ipaddr", database: b.database,
                    switches: [
                        LogicalSwitch(
                            name: "ls0", vni: vni(5000), replication: .headEnd([]),
                            arpSuppression: true)
                    ],
                    bindings: [Binding(port: "p0", vlan: nil, logicalSwitch: "ls0")],
                    locators: [vxlan("10.0.0.2")],
                    remoteMACs: [
                        .init(
                            logicalSwitch: "ls0", mac: mac("02:00:00:00:00:0a"),
                            locator: vxlan("10.0.0.2"), ip: ip("10.1.0.2")),
                        .init(
                            logicalSwitch: "ls0", mac: mac("02:00:00:00:00:0b"),
                            locator: vxlan("10.0.0.2"), ip: ip("fd01::2")),
                        .init(
                            logicalSwitch: "ls0", mac: mac("02:00:00:00:00:0c"),
                            locator: vxlan("10.0.0.2")),
                    ],
                    problems: [
                        "Ucast_Macs_Remote 02:00:00:00:00:0c in logical switch ls0: ipaddr"
                            + " \"239.1.1.1\" is not a unicast IP address; the MAC is installed,"
                            + " ARP and ND suppression does not answer for it"
                    ]))
        }
        return cases
    }()

    @Test(arguments: cases) func databaseToSnapshot(_ c: SnapshotCase) throws {
        var db = c.database
        db.problems = []
        let snapshot = GatewaySnapshot(
            database: db, physicalSwitch: "ps0", localTunnelIPs: [ip("10.0.0.1")])
        #expect(snapshot.switches == c.switches)
        #expect(snapshot.bindings == c.bindings)
        #expect(snapshot.locators == c.locators)
        #expect(snapshot.remoteMACs == c.remoteMACs)
        #expect(snapshot.problems.count == c.problems.count, "\(snapshot.problems)")
        for expected in c.problems {
            #expect(snapshot.problems.contains { $0.contains(expected) }, "\(snapshot.problems)")
        }
        // It compiles for the forwarding core as it stands.
        let configuration = try snapshot.configuration(previous: nil)
        #expect(configuration.switches.compactMap { $0 }.map(\.name) == c.switches.map(\.name))
        #expect(configuration.bindings == c.bindings)
    }

    @Test func portsAndLocalAddresses() {
        var (b, ps, _, _) = gateway()
        b.port("p2", on: ps)
        b.database.physicalSwitches[ps]!.tunnelIPs.append("2001:db8::1")
        let snapshot = b.snapshot(local: ["10.0.0.9", "10.0.0.1"])
        #expect(snapshot.ports == ["p0", "p1", "p2"])
        #expect(snapshot.localTunnelIPs == [ip("10.0.0.1"), ip("10.0.0.9"), ip("2001:db8::1")])
        #expect(snapshot.physicalSwitch == "ps0")
        #expect(snapshot.problems == [])
    }

    // MARK: - Problems: each bad row is named, left out, and the rest keeps working

    /// A database whose ls-good is fine and whose ls-bad (bound on p1 VLAN 7) is changed by
    /// `spoil`; returns the snapshot.
    func spoiled(
        _ spoil: (inout DatabaseBuilder, _ bad: UUID, _ ps: UUID) -> Void
    ) -> GatewaySnapshot {
        var (b, ps, p0, p1) = gateway()
        let good = b.logicalSwitch("ls-good", key: 1, mode: "source_node")
        b.bind(p0, vlan: 0, to: good)
        b.mcast(["10.0.0.2"], in: good)
        b.ucast("02:00:00:00:00:01", in: good, at: "10.0.0.2")
        let bad = b.logicalSwitch("ls-bad", key: 2, mode: "source_node")
        b.bind(p1, vlan: 7, to: bad)
        spoil(&b, bad, ps)
        return b.snapshot()
    }

    func expectGoodSwitchWorks(
        _ s: GatewaySnapshot, sourceLocation: SourceLocation = #_sourceLocation
    )
        throws
    {
        #expect(
            s.switches.first { $0.name == "ls-good" }
                == LogicalSwitch(
                    name: "ls-good", vni: vni(1), replication: .headEnd([vxlan("10.0.0.2")])),
            sourceLocation: sourceLocation)
        #expect(
            s.remoteMACs(of: "ls-good")
                == [
                    .init(
                        logicalSwitch: "ls-good", mac: mac("02:00:00:00:00:01"),
                        locator: vxlan("10.0.0.2"))
                ],
            sourceLocation: sourceLocation)
        _ = try s.configuration(previous: nil)
    }

    /// Spoils ls-bad's row so that it is left out; checks the problem and ls-good.
    func expectLeftOut(
        _ problem: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ spoil: (inout HardwareVTEP.LogicalSwitch) -> Void
    ) throws {
        let s = spoiled { b, bad, _ in spoil(&b.database.logicalSwitches[bad]!) }
        #expect(
            !s.switches.contains { $0.name.hasPrefix("ls-bad") }, sourceLocation: sourceLocation)
        #expect(!s.bindings.contains { $0.port == "p1" }, sourceLocation: sourceLocation)
        #expect(s.problems.count == 1, "\(s.problems)", sourceLocation: sourceLocation)
        #expect(
            s.problems.first?.contains(problem) == true, "\(s.problems)",
            sourceLocation: sourceLocation)
        try expectGoodSwitchWorks(s, sourceLocation: sourceLocation)
    }

    @Test func logicalSwitchRowsLeftOut() throws {
        try expectLeftOut(
            "Logical_Switch ls-bad (bound on p1 VLAN 7) is not forwarded: it has no tunnel_key"
        ) {
            $0.tunnelKey = nil
        }
        try expectLeftOut("VNI 16777216 is out of range (0–16777215)") { $0.tunnelKey = 16_777_216 }
        try expectLeftOut("VNI -1 is out of range") { $0.tunnelKey = -1 }
        try expectLeftOut("other_config:mac-ageing=\"soon\" is not a number of seconds") {
            $0.otherConfig["mac-ageing"] = "soon"
        }
        try expectLeftOut("other_config:mac-ageing=\"-5\"") { $0.otherConfig["mac-ageing"] = "-5" }
        try expectLeftOut("other_config:mac-limit=\"-1\" is not a number of MAC entries") {
            $0.otherConfig["mac-limit"] = "-1"
        }
        try expectLeftOut("allowed-sources: \"10.0.0.1/24\" is not an address or prefix") {
            $0.otherConfig["allowed-sources"] = "10.0.0.0/8,10.0.0.1/24"
        }
        try expectLeftOut("allowed-sources: \"\" is not an address or prefix") {
            $0.otherConfig["allowed-sources"] = ""
        }
        try expectLeftOut("other_config:multicast-group=\"10.1.1.1\" is not a multicast address") {
            $0.otherConfig["multicast-group"] = "10.1.1.1"
        }
        try expectLeftOut("replication_mode \"flood\" is neither service_node nor source_node") {
            $0.replicationMode = "flood"
        }
        // The forwarding core's own refusal, in its words.
        try expectLeftOut("logical switch name \"ls-bad x\" is invalid") { $0.name = "ls-bad x" }
    }

    @Test func unknownOtherConfigKeyIsReportedNotFatal() throws {
        let s = spoiled { b, bad, _ in
            b.database.logicalSwitches[bad]!.otherConfig["mac_ageing"] = "5"
        }
        #expect(s.switches.map(\.name) == ["ls-bad", "ls-good"])
        #expect(s.problems.count == 1)
        #expect(
            s.problems.first?.contains("other_config:mac_ageing is not a key vtepd reads") == true)
        try expectGoodSwitchWorks(s)
    }

    @Test func duplicateVNIsForwardNeither() throws {
        let s = spoiled { b, bad, _ in
            b.database.logicalSwitches[bad]!.tunnelKey = 3
            let twin = b.logicalSwitch("ls-bad-twin", key: 3, mode: "source_node")
            let ps = b.database.physicalSwitches.values.first!
            b.bind(ps.ports[1], vlan: 8, to: twin)
        }
        #expect(s.switches.map(\.name) == ["ls-good"])
        #expect(
            s.problems == [
                "VNI 3 is the tunnel_key of logical switches ls-bad and ls-bad-twin; none of them is"
                    + " forwarded until each has its own"
            ])
        try expectGoodSwitchWorks(s)
    }

    /// ovsdb-server keeps Logical_Switch names unique (an index of vtep.ovsschema); rows
    /// that are not were a configuration the forwarding core refused whole
    /// (fuzz/crashes/ovsdb-rows/crash-3a4e0b01…).
    @Test func duplicateNamesForwardNeither() throws {
        let s = spoiled { b, bad, _ in
            let twin = b.logicalSwitch("ls-bad", key: 4, mode: "source_node")
            let ps = b.database.physicalSwitches.values.first!
            b.bind(ps.ports[1], vlan: 8, to: twin)
        }
        #expect(s.switches.map(\.name) == ["ls-good"])
        #expect(
            s.problems == [
                "2 bound Logical_Switch rows are named ls-bad; none of them is forwarded until the"
                    + " name is unique"
            ])
        _ = try s.configuration(previous: nil)
        try expectGoodSwitchWorks(s)
    }

    @Test func locatorAndMACRowsLeftOut() throws {
        let cases: [(String, (inout DatabaseBuilder, UUID) -> Void)] = [
            (
                "encapsulation_type \"stt_over_ipv4\", which vtepd does not speak",
                { b, bad in
                    b.ucast(
                        "02:00:00:00:00:02", in: bad, at: "10.0.0.5", encapsulation: "stt_over_ipv4"
                    )
                }
            ),
            (
                "dst_ip \"10.0.0.300\" is not an IP address",
                { b, bad in b.ucast("02:00:00:00:00:02", in: bad, at: "10.0.0.300") }
            ),
            (
                "127.0.0.1 (locator) is not a unicast address and cannot be a VTEP",
                { b, bad in b.ucast("02:00:00:00:00:02", in: bad, at: "127.0.0.1") }
            ),
            (
                "Ucast_Macs_Remote \"02:00:00:00:00\" in logical switch ls-bad is not a MAC address",
                { b, bad in b.ucast("02:00:00:00:00", in: bad, at: "10.0.0.5") }
            ),
            (
                "Ucast_Macs_Remote 01:00:5e:00:00:01 in logical switch ls-bad is not a unicast address",
                { b, bad in b.ucast("01:00:5e:00:00:01", in: bad, at: "10.0.0.5") }
            ),
            (
                "points at 10.0.0.1, which is this gateway's own tunnel address",
                { b, bad in b.ucast("02:00:00:00:00:02", in: bad, at: "10.0.0.1") }
            ),
            (
                "Ucast_Macs_Remote 02:00:00:00:00:02 in logical switch ls-bad is behind 10.0.0.5 and"
                    + " 10.0.0.6 at once",
                { b, bad in
                    b.ucast("02:00:00:00:00:02", in: bad, at: "10.0.0.5")
                    b.ucast("02:00:00:00:00:02", in: bad, at: "10.0.0.6")
                }
            ),
            (
                "Mcast_Macs_Remote 01:00:5e:01:02:03: per-group replication is not supported",
                { b, bad in b.mcast(["10.0.0.8"], in: bad, mac: "01:00:5e:01:02:03") }
            ),
            (
                "unknown-dst refers to Physical_Locator_Set row",
                { b, bad in
                    b.mcast(["10.0.0.8"], in: bad)
                    let row = b.database.mcastMacsRemote.values.first { $0.logicalSwitch == bad }!
                    b.database.physicalLocatorSets[row.locatorSet] = nil
                }
            ),
        ]
        for (problem, spoil) in cases {
            let s = spoiled { b, bad, _ in spoil(&b, bad) }
            // The switch stays; only the row is left out.
            #expect(s.switches.map(\.name) == ["ls-bad", "ls-good"], "\(problem)")
            #expect(s.remoteMACs(of: "ls-bad") == [], "\(problem)")
            #expect(s.problems.count == 1, "\(s.problems)")
            #expect(s.problems.first?.contains(problem) == true, "\(s.problems)")
            try expectGoodSwitchWorks(s)
        }
    }

    @Test func portRowsLeftOut() throws {
        let vlan4095 = spoiled { b, bad, _ in
            let p1 = b.database.physicalPorts.values.first { $0.name == "p1" }!.uuid
            b.bind(p1, vlan: 4095, to: bad)
        }
        #expect(vlan4095.bindings.map(\.vlan) == [nil, 7])
        #expect(
            vlan4095.problems == [
                "Physical_Port p1 binds VLAN 4095, which is reserved (IEEE 802.1Q); binding ignored"
            ])
        try expectGoodSwitchWorks(vlan4095)

        let twins = spoiled { b, bad, ps in b.port("p1", on: ps, bindings: [9: bad]) }
        #expect(twins.ports == ["p0"])
        #expect(twins.switches.map(\.name) == ["ls-good"])
        #expect(twins.problems.count == 1)
        #expect(twins.problems.first?.contains("has 2 ports named p1") == true)
        try expectGoodSwitchWorks(twins)

        let badName = spoiled { b, bad, ps in b.port("p 2", on: ps, bindings: [9: bad]) }
        #expect(badName.ports == ["p0", "p1"])
        #expect(badName.problems.first?.contains("port name \"p 2\" is invalid") == true)
        try expectGoodSwitchWorks(badName)

        let badTunnelIP = spoiled { b, _, ps in
            b.database.physicalSwitches[ps]!.tunnelIPs.append("ten")
        }
        #expect(
            badTunnelIP.problems == [
                "Physical_Switch ps0 tunnel_ips: \"ten\" is not an IP address; ignored"
            ])
        try expectGoodSwitchWorks(badTunnelIP)
    }

    @Test func everyBadRowAtOnceLeavesTheGoodOnesWorking() throws {
        let s = spoiled { b, bad, ps in
            b.database.logicalSwitches[bad]!.tunnelKey = nil
            let p1 = b.database.physicalPorts.values.first { $0.name == "p1" }!.uuid
            b.bind(p1, vlan: 4095, to: bad)
            b.port("p 2", on: ps)
            let good = b.database.logicalSwitches.values.first { $0.name == "ls-good" }!.uuid
            b.ucast("zz:00:00:00:00:01", in: good, at: "10.0.0.9")
            b.ucast("02:00:00:00:00:09", in: good, at: "10.0.0.300")
            b.database.logicalSwitches[good]!.otherConfig["colour"] = "blue"
        }
        #expect(s.problems.count == 6, "\(s.problems)")
        #expect(s.switches.map(\.name) == ["ls-good"])
        try expectGoodSwitchWorks(s)
    }

    @Test func missingPhysicalSwitch() throws {
        let (b, _, _, _) = gateway()
        let s = b.snapshot("ps-nope")
        #expect(s.switches == [] && s.ports == [] && s.bindings == [])
        #expect(
            s.problems == [
                "Physical_Switch ps-nope is not in the database: vtepd creates it at startup (or:"
                    + " vtep-ctl add-ps ps-nope); nothing is forwarded until it exists"
            ])
        _ = try s.configuration(previous: nil)
    }

    @Test func decodeProblemsOfTheDatabaseArePassedOn() {
        var (b, _, _, _) = gateway()
        b.database.problems = [
            .init(table: "Logical_Switch", uuid: b.id(), reason: "column name is missing")
        ]
        #expect(b.snapshot().problems.count == 1)
        #expect(b.snapshot().problems.first?.hasSuffix("column name is missing") == true)
    }

    @Test func configurationKeepsIndicesOfThePrevious() throws {
        var (b, _, p0, p1) = gateway()
        let ls0 = b.logicalSwitch("ls0", key: 1, mode: "source_node")
        b.bind(p1, vlan: 0, to: ls0)
        let first = try b.snapshot().configuration(previous: nil)
        let ls1 = b.logicalSwitch("a-first-by-name", key: 2, mode: "source_node")
        b.bind(p0, vlan: 0, to: ls1)
        let second = try b.snapshot().configuration(previous: first)
        #expect(
            first.switches.firstIndex { $0?.name == "ls0" }
                == second.switches.firstIndex { $0?.name == "ls0" })
    }

    // MARK: - Property: rows that are not ours never leak in

    @Test func unrelatedRowsNeverLeakIn() throws {
        var rng = SplitMix64(seed: 0x5EED_0F_6A7E_3A1)
        for iteration in 0..<200 {
            var b = DatabaseBuilder()
            let ps = b.physicalSwitch("ps0", tunnelIPs: ["10.0.0.1"])
            let ports = (0..<Int.random(in: 1...4, using: &rng)).map { b.port("p\($0)", on: ps) }
            var ours: [UUID] = []
            for n in 0..<Int.random(in: 0...4, using: &rng) {
                ours.append(randomSwitch(&b, "ls\(n)", key: 100 + n, &rng))
            }
            for ls in ours {
                let port = ports.randomElement(using: &rng)!
                b.bind(port, vlan: UInt16.random(in: 0...20, using: &rng), to: ls)
            }
            let before = b.snapshot()

            // Unrelated: other gateways (same port and switch names, same VNIs, even our own
            // locators), their switches, bindings, MACs; and switches bound nowhere, broken
            // ones included.
            for g in 0..<Int.random(in: 1...3, using: &rng) {
                let other = b.physicalSwitch("ps-other\(g)", tunnelIPs: ["10.9.0.\(g + 1)"])
                for n in 0..<Int.random(in: 1...3, using: &rng) {
                    let theirs = randomSwitch(&b, "their\(g)-\(n)", key: 100 + n, &rng)
                    b.port("p\(n)", on: other, bindings: [UInt16(n): theirs])
                }
            }
            for n in 0..<Int.random(in: 0...4, using: &rng) {
                let unbound = randomSwitch(
                    &b, "unbound\(n)", key: Bool.random(using: &rng) ? nil : 100, &rng)
                if Bool.random(using: &rng) {
                    b.database.logicalSwitches[unbound]!.otherConfig["mac-ageing"] = "never"
                }
            }
            let after = b.snapshot()
            #expect(after == before, "iteration \(iteration)")
            if after != before { return }
            _ = try after.configuration(previous: nil)
        }
    }

    /// A valid switch with random replication, other_config, remote MACs and locators.
    func randomSwitch(
        _ b: inout DatabaseBuilder, _ name: String, key: Int?, _ rng: inout SplitMix64
    ) -> UUID {
        var config: [String: String] = [:]
        if Bool.random(using: &rng) {
            config["mac-ageing"] = String(Int.random(in: 0...600, using: &rng))
        }
        if Bool.random(using: &rng) { config["allowed-sources"] = "10.0.0.0/16" }
        if Int.random(in: 0..<4, using: &rng) == 0 {
            config["multicast-group"] = "239.0.0.\(Int.random(in: 1...9, using: &rng))"
        }
        let ls = b.logicalSwitch(
            name, key: key, mode: ["service_node", "source_node", nil].randomElement(using: &rng)!,
            config: config)
        let vteps = (0..<Int.random(in: 0...3, using: &rng)).map { _ in
            "10.0.\(Int.random(in: 0...2, using: &rng)).\(Int.random(in: 1...9, using: &rng))"
        }
        if !vteps.isEmpty { b.mcast(Array(Set(vteps)).sorted(), in: ls) }
        for m in 0..<Int.random(in: 0...3, using: &rng) {
            b.ucast(
                String(format: "02:00:00:00:%02x:%02x", m, Int.random(in: 0...255, using: &rng)),
                in: ls, at: "10.0.1.\(m + 1)")
        }
        return ls
    }

    // MARK: - Property: what the shell and the socket accept, vtepd takes

    /// Remote MACs and replication targets as an admin might type them, hostile ones
    /// included: every command the protocol accepts (the shell's parser runs the same
    /// `validate()`) gives rows vtepd uses whole, with no problem reported.
    @Test func noAcceptedGatewayCommandLeavesAProblem() throws {
        let macs = [
            "00:00:5e:00:53:01", "02:11:22:33:44:55", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01",
            "33:33:00:00:00:01", "00:00:00:00:00:00",
        ]
        // Not 10.0.0.1: the gateway's own tunnel address is refused by vtepd's handler, which
        // knows it (ControlHandlerTests covers the table; the VTEPSH lab the refusal).
        let addresses = [
            "10.0.0.2", "192.0.2.7", "2001:db8::2", "0.0.0.0", "255.255.255.255", "239.1.1.1",
            "224.0.0.1", "127.0.0.1", "::", "::1", "ff02::1",
        ]
        var rng = SplitMix64(seed: 0xACC3_97ED)
        var accepted = 0
        var refused = 0
        for iteration in 0..<400 {
            let line: String
            switch Int.random(in: 0..<3, using: &rng) {
            case 0:
                let mac = macs.randomElement(using: &rng)!
                let vtep = addresses.randomElement(using: &rng)!
                line =
                    #"{"id":1,"command":"add-remote-mac","arguments":{"switch":"web","mac":"\#(mac)","vtep":"\#(vtep)"}}"#
            case 1:
                let list = (0..<Int.random(in: 1...3, using: &rng)).map { _ in
                    "\"" + addresses.randomElement(using: &rng)! + "\""
                }
                line =
                    #"{"id":1,"command":"set-replication","arguments":{"switch":"web","mode":"head-end","addresses":[\#(list.joined(separator: ","))]}}"#
            default:
                let node = addresses.randomElement(using: &rng)!
                line =
                    #"{"id":1,"command":"set-replication","arguments":{"switch":"web","mode":"service-node","addresses":["\#(node)"]}}"#
            }
            guard case .success(let request) = ControlRequest.parse(Array(line.utf8)) else {
                refused += 1
                continue
            }
            accepted += 1
            var b = DatabaseBuilder()
            let ps = b.physicalSwitch("ps0", tunnelIPs: ["10.0.0.1"])
            var mode = "source_node"
            var flood: [String] = []
            switch request.command {
            case let add as AddRemoteMAC:
                flood = ["10.0.0.2"]
                _ = add
            case let set as SetReplication:
                if case .serviceNode = set.replication { mode = "service_node" }
                flood = set.replication.addresses.map(\.description)
            default: Issue.record("unexpected \(line)")
            }
            let ls = b.logicalSwitch("web", key: 5000, mode: mode)
            b.port("p0", on: ps, bindings: [0: ls])
            b.mcast(flood, in: ls)
            if let add = request.command as? AddRemoteMAC {
                b.ucast(add.value.mac.description, in: ls, at: add.value.vtep.description)
            }
            let snapshot = b.snapshot()
            #expect(snapshot.problems == [], "iteration \(iteration): \(line)")
            #expect(throws: Never.self, "\(line)") { try snapshot.configuration(previous: nil) }
        }
        // Both sides were exercised.
        #expect(accepted > 50 && refused > 50)
    }
}
