import Packet
import Testing

@testable import Forwarding

@Suite("Configuration validation")
struct ConfigurationTests {
    typealias L = Lab

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var switches: [LogicalSwitch] = Lab.switches
        var ports: [String] = Lab.ports
        var bindings: [Binding] = Lab.bindings
        var locators: [Locator] = []
        var error: ConfigurationError
        var message: String
        var testDescription: String { name }
    }

    static let web = LogicalSwitch(name: "web", vni: vni(5000))

    static let cases: [Case] = [
        Case(
            name: "duplicate VNI",
            switches: [web, LogicalSwitch(name: "db", vni: vni(5000))], bindings: [],
            error: .duplicateVNI(vni(5000), first: "web", second: "db"),
            message: "VNI 5000 is used by both logical switch web and logical switch db"),
        Case(
            name: "duplicate switch name",
            switches: [web, LogicalSwitch(name: "web", vni: vni(1))], bindings: [],
            error: .duplicateSwitchName("web"), message: "logical switch web is defined twice"),
        Case(
            name: "empty switch name", switches: [LogicalSwitch(name: "", vni: vni(1))],
            bindings: [], error: .invalidSwitchName(""),
            message: "logical switch name \"\" is invalid: it must be 1–64 printable characters"
                + " without spaces"),
        Case(
            name: "negative MAC limit",
            switches: [LogicalSwitch(name: "web", vni: vni(1), macLimit: -1)], bindings: [],
            error: .negativeMACLimit(switch: "web", limit: -1),
            message: "MAC limit -1 of logical switch web is negative"),
        Case(
            name: "duplicate port", ports: ["eth0", "eth0"], bindings: [],
            error: .duplicatePort("eth0"), message: "port eth0 is listed twice"),
        Case(
            name: "port name with a space", ports: ["eth 0"], bindings: [],
            error: .invalidPortName("eth 0"),
            message: "port name \"eth 0\" is invalid: it must be 1–64 printable characters"
                + " without spaces"),
        Case(
            name: "binding conflict",
            bindings: Lab.bindings + [Binding(port: "eth0", vlan: 100, logicalSwitch: "db")],
            error: .bindingConflict(
                Binding(port: "eth0", vlan: 100, logicalSwitch: "db"), existing: "web"),
            message: "port eth0 VLAN 100 is already bound to logical switch web"),
        Case(
            name: "untagged and VLAN 0 are the same binding",
            bindings: Lab.bindings + [Binding(port: "eth1", vlan: 0, logicalSwitch: "web")],
            error: .bindingConflict(
                Binding(port: "eth1", vlan: nil, logicalSwitch: "web"), existing: "db"),
            message: "port eth1 untagged is already bound to logical switch db"),
        Case(
            name: "VLAN 4095",
            bindings: [Binding(port: "eth0", vlan: 4095, logicalSwitch: "web")],
            error: .vlanOutOfRange(Binding(port: "eth0", vlan: 4095, logicalSwitch: "web")),
            message: "VLAN 4095 on port eth0 is out of range (1–4094, or 0 for untagged)"),
        Case(
            name: "unknown port",
            bindings: [Binding(port: "eth9", vlan: 7, logicalSwitch: "web")],
            error: .unknownPort(Binding(port: "eth9", vlan: 7, logicalSwitch: "web")),
            message: "cannot bind port eth9 VLAN 7 to logical switch web: there is no port eth9"),
        Case(
            name: "unknown switch",
            bindings: [Binding(port: "eth0", vlan: 7, logicalSwitch: "nope")],
            error: .unknownSwitch(Binding(port: "eth0", vlan: 7, logicalSwitch: "nope")),
            message: "cannot bind port eth0 VLAN 7 to logical switch nope: there is no logical"
                + " switch nope"),
        Case(
            name: "multicast head-end VTEP",
            switches: [
                LogicalSwitch(
                    name: "web", vni: vni(1), replication: .headEnd([Locator(ip("224.0.0.5"))]))
            ], bindings: [],
            error: .locatorNotUnicast(
                Locator(ip("224.0.0.5")), role: "head-end VTEP of logical switch web"),
            message: "224.0.0.5 (head-end VTEP of logical switch web) is not a unicast address"
                + " and cannot be a VTEP"),
        Case(
            name: "duplicate head-end VTEP",
            switches: [
                LogicalSwitch(
                    name: "web", vni: vni(1),
                    replication: .headEnd([Locator(ip("10.0.0.2")), Locator(ip("10.0.0.2"))]))
            ], bindings: [],
            error: .duplicateHeadEnd(Locator(ip("10.0.0.2")), switch: "web"),
            message: "VTEP 10.0.0.2 (vxlan) is listed twice in the replication list of"
                + " logical switch web"),
        Case(
            name: "unicast multicast group",
            switches: [
                LogicalSwitch(
                    name: "web", vni: vni(1), replication: .multicast(Locator(ip("10.0.0.2"))))
            ], bindings: [],
            error: .groupNotMulticast(Locator(ip("10.0.0.2")), switch: "web"),
            message: "multicast replication group 10.0.0.2 of logical switch web is not a"
                + " multicast address (224.0.0.0/4 or ff00::/8)"),
        Case(
            name: "unspecified service node",
            switches: [
                LogicalSwitch(
                    name: "web", vni: vni(1), replication: .serviceNode([Locator(ip("::"))]))
            ], bindings: [],
            error: .locatorNotUnicast(
                Locator(ip("::")), role: "service node of logical switch web"),
            message: ":: (service node of logical switch web) is not a unicast address and cannot"
                + " be a VTEP"),
        Case(
            name: "broadcast locator", bindings: [], locators: [Locator(ip("255.255.255.255"))],
            error: .locatorNotUnicast(Locator(ip("255.255.255.255")), role: "locator"),
            message: "255.255.255.255 (locator) is not a unicast address and cannot be a VTEP"),
    ]

    @Test("refused input", arguments: cases)
    func refused(_ c: Case) {
        #expect(throws: c.error) {
            try ForwardingConfiguration(
                switches: c.switches, ports: c.ports, bindings: c.bindings, locators: c.locators)
        }
        #expect(c.error.description == c.message)
    }

    @Test func vniRange() throws {
        #expect(throws: ConfigurationError.vniOutOfRange(16_777_216)) {
            try VNI(validating: 16_777_216)
        }
        #expect(
            ConfigurationError.vniOutOfRange(16_777_216).description
                == "VNI 16777216 is out of range (0–16777215)")
        #expect(throws: ConfigurationError.vniOutOfRange(-1)) { try VNI(validating: -1) }
        #expect(try VNI(validating: 0).rawValue == 0)
        #expect(try VNI(validating: 16_777_215).rawValue == 0xFF_FFFF)
        #expect(VNI(rawValue: 0x100_0000) == nil)
    }

    @Test func repeatedIdenticalBindingIsAccepted() throws {
        let c = try ForwardingConfiguration(
            switches: L.switches, ports: L.ports, bindings: L.bindings + [L.bindings[0]])
        #expect(c.bindings.count == L.bindings.count)
    }

    @Test func compiledTables() throws {
        let c = L.configuration()
        #expect(c.boundSwitch(port: L.eth1, vlan: nil) == L.db)
        #expect(c.boundSwitch(port: L.eth1, vlan: 0) == L.db)
        #expect(c.boundSwitch(port: L.eth1, vlan: 100) == L.web)
        #expect(c.boundSwitch(port: L.eth0, vlan: nil) == nil)
        #expect(c.boundSwitch(port: 99, vlan: 100) == nil)
        #expect(c.boundSwitch(port: L.eth0, vlan: 4095) == nil)
        for (i, s) in L.switches.enumerated() {
            #expect(c.switchIndex(for: s.vni) == SwitchIndex(rawValue: UInt16(i)))
            #expect(c.vni(of: SwitchIndex(rawValue: UInt16(i))) == s.vni)
        }
        #expect(c.switchIndex(for: vni(1)) == nil)
        #expect(c.locatorIndex(of: Locator(ip("10.0.0.2"), .gre)) == nil)
        #expect(c.locatorIndex(of: L.vtep4) != nil)
        let restricted = L.restricted
        #expect(c.accepts(c.locatorIndex(of: L.vtep2)!, into: restricted))
        #expect(!c.accepts(c.locatorIndex(of: L.vtep3)!, into: restricted))
        #expect(c.accepts(c.locatorIndex(of: L.vtep3)!, into: L.web))
        #expect(c.floodList(of: 999) == nil)
    }

    @Test func manySwitchesResolveByVNI() throws {
        let switches = (0..<3000).map {
            LogicalSwitch(name: "ls\($0)", vni: vni($0 * 5557 % 16_777_216))
        }
        let c = try ForwardingConfiguration(switches: switches)
        for (i, s) in switches.enumerated() {
            #expect(c.switchIndex(for: s.vni)?.rawValue == UInt16(i))
        }
    }
}
