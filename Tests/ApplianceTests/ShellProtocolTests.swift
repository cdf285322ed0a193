import Foundation
import Packet
import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

/// The shell's control commands on the wire: the exact request line of each, that it parses
/// back to the same command, and that bad values sent straight to the socket (bypassing
/// vtepsh's parser) are refused by the same rules.
@Suite struct ShellProtocolTests {
    static func interface(_ name: String) -> InterfaceName { try! InterfaceName(name) }
    static let eth1 = interface("eth1")

    /// Every new command and its exact wire form.
    static let table: [(ControlCommand, String)] = [
        (
            .setHostname(try! Hostname("gw1.example.net")),
            #"{"id":9,"command":"set-hostname","arguments":{"name":"gw1.example.net"}}"#
        ),
        (.hostname, #"{"id":9,"command":"hostname"}"#),
        (
            .setPassword(user: try! UserName("admin"), password: "s3cret pass\"word"),
            #"{"id":9,"command":"set-password","arguments":{"password":"s3cret pass\"word","user":"admin"}}"#
        ),
        (.interfaces(nil), #"{"id":9,"command":"interfaces"}"#),
        (.interfaces(eth1), #"{"id":9,"command":"interfaces","arguments":{"interface":"eth1"}}"#),
        (
            .setInterfaceAddress(eth1, try! IPv4InterfaceAddress("192.0.2.10/24")),
            #"{"id":9,"command":"set-interface-address","arguments":{"address":"192.0.2.10/24","interface":"eth1"}}"#
        ),
        (
            .setInterfaceDHCP(eth1),
            #"{"id":9,"command":"set-interface-dhcp","arguments":{"interface":"eth1"}}"#
        ),
        (
            .setInterfaceMTU(eth1, mtu: 9000),
            #"{"id":9,"command":"set-interface-mtu","arguments":{"interface":"eth1","mtu":9000}}"#
        ),
        (
            .setInterfaceState(eth1, up: false),
            #"{"id":9,"command":"set-interface-state","arguments":{"interface":"eth1","state":"down"}}"#
        ),
        (
            .addRoute(try! StaticRoute(destination: "198.51.100.0/24", gateway: "192.0.2.1")),
            #"{"id":9,"command":"add-route","arguments":{"destination":"198.51.100.0/24","gateway":"192.0.2.1"}}"#
        ),
        (
            .removeRoute(try! StaticRoute(destination: nil, gateway: "2001:db8::1")),
            #"{"id":9,"command":"remove-route","arguments":{"gateway":"2001:db8::1"}}"#
        ),
        (.routes, #"{"id":9,"command":"routes"}"#),
        (.clearRoutes, #"{"id":9,"command":"clear-routes"}"#),
        (
            .addDNSServer(IPAddress("192.0.2.53")!),
            #"{"id":9,"command":"add-dns-server","arguments":{"server":"192.0.2.53"}}"#
        ),
        (
            .removeDNSServer(IPAddress("2001:db8::53")!),
            #"{"id":9,"command":"remove-dns-server","arguments":{"server":"2001:db8::53"}}"#
        ),
        (.dnsServers, #"{"id":9,"command":"dns-servers"}"#),
        (.clearDNSServers, #"{"id":9,"command":"clear-dns-servers"}"#),
        (
            .addNTPServer(try! NTPServer("pool.ntp.org")),
            #"{"id":9,"command":"add-ntp-server","arguments":{"server":"pool.ntp.org"}}"#
        ),
        (
            .removeNTPServer(try! NTPServer("192.0.2.123")),
            #"{"id":9,"command":"remove-ntp-server","arguments":{"server":"192.0.2.123"}}"#
        ),
        (.ntpServers, #"{"id":9,"command":"ntp-servers"}"#),
        (
            .addSearchDomain(try! DomainName("example.net")),
            #"{"id":9,"command":"add-dns-search-domain","arguments":{"domain":"example.net"}}"#
        ),
        (
            .removeSearchDomain(try! DomainName("example.org")),
            #"{"id":9,"command":"remove-dns-search-domain","arguments":{"domain":"example.org"}}"#
        ),
        (.searchDomains, #"{"id":9,"command":"dns-search-domains"}"#),
        (.clearSearchDomains, #"{"id":9,"command":"clear-dns-search-domains"}"#),
        (.runningConfig, #"{"id":9,"command":"running-config"}"#),
        (.log(lines: nil), #"{"id":9,"command":"log"}"#),
        (.log(lines: 20), #"{"id":9,"command":"log","arguments":{"lines":20}}"#),
        (
            .addLogicalSwitch(name: "web", vni: 5001),
            #"{"id":9,"command":"add-logical-switch","arguments":{"name":"web","vni":5001}}"#
        ),
        (
            .removeLogicalSwitch(name: "web", vni: nil),
            #"{"id":9,"command":"remove-logical-switch","arguments":{"name":"web"}}"#
        ),
        (
            .removeLogicalSwitch(name: "web", vni: 16_777_215),
            #"{"id":9,"command":"remove-logical-switch","arguments":{"name":"web","vni":16777215}}"#
        ),
        (
            .setReplication(logicalSwitch: "web", .multicast(IPAddress("239.1.1.1")!)),
            #"{"id":9,"command":"set-replication","arguments":{"addresses":["239.1.1.1"],"mode":"multicast","switch":"web"}}"#
        ),
        (
            .setReplication(
                logicalSwitch: "web",
                .headEnd([IPAddress("192.0.2.2")!, IPAddress("2001:db8::2")!])),
            #"{"id":9,"command":"set-replication","arguments":{"addresses":["192.0.2.2","2001:db8::2"],"mode":"head-end","switch":"web"}}"#
        ),
        (
            .setReplication(logicalSwitch: "web", .serviceNode(IPAddress("192.0.2.9")!)),
            #"{"id":9,"command":"set-replication","arguments":{"addresses":["192.0.2.9"],"mode":"service-node","switch":"web"}}"#
        ),
        (
            .setEncapsulation(logicalSwitch: "web", .gre),
            #"{"id":9,"command":"set-encapsulation","arguments":{"encapsulation":"gre","switch":"web"}}"#
        ),
        (
            .bindPort(SwitchBinding(port: eth1, vlan: 0, logicalSwitch: "web")),
            #"{"id":9,"command":"bind-port","arguments":{"port":"eth1","switch":"web","vlan":0}}"#
        ),
        (
            .unbindPort(SwitchBinding(port: eth1, vlan: 4094, logicalSwitch: "web")),
            #"{"id":9,"command":"unbind-port","arguments":{"port":"eth1","switch":"web","vlan":4094}}"#
        ),
        (
            .addRemoteMAC(
                RemoteMAC(
                    logicalSwitch: "web", mac: MACAddress("00:00:5E:00:53:01")!,
                    vtep: IPAddress("192.0.2.2")!)),
            #"{"id":9,"command":"add-remote-mac","arguments":{"mac":"00:00:5e:00:53:01","switch":"web","vtep":"192.0.2.2"}}"#
        ),
        (
            .removeRemoteMAC(
                RemoteMAC(
                    logicalSwitch: "web", mac: MACAddress("00:00:5e:00:53:01")!,
                    vtep: IPAddress("2001:db8::2")!)),
            #"{"id":9,"command":"remove-remote-mac","arguments":{"mac":"00:00:5e:00:53:01","switch":"web","vtep":"2001:db8::2"}}"#
        ),
        (.logicalSwitches, #"{"id":9,"command":"logical-switches"}"#),
        (.tunnels, #"{"id":9,"command":"tunnels"}"#),
    ]

    @Test func everyShellCommandHasItsExactWireFormAndParsesBack() throws {
        var names: Set<String> = []
        for (command, wire) in Self.table {
            let request = ControlRequest(id: 9, command: command)
            #expect(String(decoding: request.encoded(), as: UTF8.self) == wire)
            #expect(try ControlRequest.parse(Array(wire.utf8)).get() == request, "\(wire)")
            names.insert(command.name)
        }
        // Every wire name is covered (the first three are the older commands' tests').
        #expect(
            names.union(["mac-table", "counters", "configuration"]) == Set(ControlCommand.names))
    }

    @Test func everyShellResultRoundTripsThroughItsWireForm() throws {
        let results: [(ControlCommand, ControlResult, String?)] = [
            (.setHostname(try Hostname("gw1")), .accepted, #"{"id":1,"ok":true,"result":{}}"#),
            (.hostname, .lines(["gw1"]), #"{"id":1,"ok":true,"result":["gw1"]}"#),
            (.runningConfig, .lines(["set hostname gw1", "add logical-switch web vni 5001"]), nil),
            (
                .interfaces(nil),
                .interfaces([
                    InterfaceReport(
                        name: "eth1", adminState: "up", operationalState: "UP", mtu: 1500,
                        mac: "02:00:00:00:00:01", addresses: ["192.0.2.10/24"],
                        configured: "static 192.0.2.10/24", rxPackets: 7, txBytes: 99)
                ]), nil
            ),
            (
                .routes,
                .routes([
                    RouteReport(
                        destination: "default", gateway: "192.0.2.1", interface: "eth1",
                        origin: "static", configured: true)
                ]),
                #"{"id":1,"ok":true,"result":[{"configured":true,"destination":"default","gateway":"192.0.2.1","interface":"eth1","origin":"static"}]}"#
            ),
            (
                .logicalSwitches,
                .logicalSwitches([
                    LogicalSwitchReport(
                        name: "web", vni: 5001, replication: "head-end", locators: ["192.0.2.2"],
                        encapsulation: "vxlan", bindings: ["eth1 vlan 0"], remoteMACs: 1)
                ]),
                #"{"id":1,"ok":true,"result":[{"bindings":["eth1 vlan 0"],"encapsulation":"vxlan","locators":["192.0.2.2"],"name":"web","remoteMACs":1,"replication":"head-end","vni":5001}]}"#
            ),
            (
                .tunnels,
                .tunnels([
                    TunnelReport(
                        ip: "192.0.2.2", encapsulation: "vxlan", switches: ["web"], txFrames: 3,
                        rxFrames: 4)
                ]),
                #"{"id":1,"ok":true,"result":[{"encapsulation":"vxlan","ip":"192.0.2.2","rxFrames":4,"switches":["web"],"txFrames":3}]}"#
            ),
        ]
        for (command, result, wire) in results {
            let line = ControlResponse(id: 1, outcome: .success(result)).encoded()
            if let wire { #expect(String(decoding: line, as: UTF8.self) == wire) }
            #expect(try command.decodeResult(from: Data(line)) == result)
        }
    }

    /// Strings an attacker would try in every string field.
    static let hostile = [
        "a;reboot", "$(reboot)", "`reboot`", "a\nb", "-rf", "../../etc/passwd", "a b", "",
    ]

    /// (command, the string argument under test, the other arguments it needs).
    static let stringFields: [(String, String, String)] = [
        ("set-hostname", "name", ""),
        ("set-password", "user", #","password":"long enough password""#),
        ("interfaces", "interface", ""),
        ("set-interface-dhcp", "interface", ""),
        ("set-interface-mtu", "interface", #","mtu":1500"#),
        ("set-interface-state", "interface", #","state":"up""#),
        ("set-interface-address", "address", #","interface":"eth1""#),
        ("add-route", "gateway", ""),
        ("add-route", "destination", #","gateway":"192.0.2.1""#),
        ("add-dns-server", "server", ""),
        ("add-ntp-server", "server", ""),
        ("add-dns-search-domain", "domain", ""),
        ("add-logical-switch", "name", #","vni":1"#),
        ("remove-logical-switch", "name", ""),
        ("set-encapsulation", "switch", #","encapsulation":"gre""#),
        ("set-encapsulation", "encapsulation", #","switch":"web""#),
        ("set-replication", "switch", #","mode":"service-node","addresses":["192.0.2.1"]"#),
        ("set-replication", "mode", #","switch":"web","addresses":["192.0.2.1"]"#),
        ("bind-port", "port", #","vlan":0,"switch":"web""#),
        ("bind-port", "switch", #","vlan":0,"port":"eth1""#),
        ("add-remote-mac", "switch", #","mac":"00:00:5e:00:53:01","vtep":"192.0.2.2""#),
        ("add-remote-mac", "mac", #","switch":"web","vtep":"192.0.2.2""#),
        ("add-remote-mac", "vtep", #","switch":"web","mac":"00:00:5e:00:53:01""#),
    ]

    @Test func hostileStringsSentStraightToTheSocketAreRefused() throws {
        let encoder = JSONEncoder()
        for (command, field, rest) in Self.stringFields {
            for text in Self.hostile {
                let value = String(decoding: try encoder.encode(text), as: UTF8.self)
                let line =
                    #"{"id":5,"command":"\#(command)","arguments":{"\#(field)":\#(value)\#(rest)}}"#
                guard case .failure(let refusal) = ControlRequest.parse(Array(line.utf8)) else {
                    Issue.record("accepted: \(line)")
                    continue
                }
                #expect(refusal.id == 5)
                #expect(!refusal.closesConnection)
                #expect(refusal.message.contains(command), "\(refusal.message)")
            }
        }
        // The password is free text (hashed, never placed in a file or a command line): it
        // may contain all of these.
        let line =
            #"{"id":1,"command":"set-password","arguments":{"user":"admin","password":"a;$(b)`c`-d../e"}}"#
        #expect(throws: Never.self) { try ControlRequest.parse(Array(line.utf8)).get() }
    }

    @Test func badNumbersAndShapesAreRefusedWithTheReason() {
        let cases: [(String, String)] = [
            (
                #"{"id":1,"command":"add-logical-switch","arguments":{"name":"web","vni":16777216}}"#,
                "VNI 16777216 is out of range (0–16777215)"
            ),
            (
                #"{"id":1,"command":"bind-port","arguments":{"port":"eth1","vlan":4095,"switch":"web"}}"#,
                "VLAN 4095 is out of range (0–4094)"
            ),
            (
                #"{"id":1,"command":"set-interface-mtu","arguments":{"interface":"eth1","mtu":"9000"}}"#,
                "argument \"mtu\" of set-interface-mtu must be an integer"
            ),
            (
                #"{"id":1,"command":"set-replication","arguments":{"switch":"web","mode":"multicast","addresses":["192.0.2.1"]}}"#,
                "192.0.2.1 is not a multicast group"
            ),
            (
                #"{"id":1,"command":"set-replication","arguments":{"switch":"web","mode":"head-end","addresses":"192.0.2.1"}}"#,
                "must be an array of strings"
            ),
            (
                #"{"id":1,"command":"set-hostname","arguments":{"name":"gw1","extra":1}}"#,
                "unknown argument \"extra\" for set-hostname"
            ),
            (
                #"{"id":1,"command":"set-hostname"}"#,
                "set-hostname needs the string argument \"name\""
            ),
        ]
        for (line, expected) in cases {
            guard case .failure(let refusal) = ControlRequest.parse(Array(line.utf8)) else {
                Issue.record("accepted: \(line)")
                continue
            }
            #expect(refusal.message.contains(expected), "\(refusal.message)")
        }
    }
}
