import Foundation
import Packet
import Testing

@testable import Appliance
@testable import ControlAPI

/// vtepd's control protocol on the wire: each command's exact request line and its shell
/// line, requests parsing back to the same command, results round-tripping, and the exact
/// words of every refusal, including bad values sent straight to the socket (bypassing vtepsh's
/// parser), which the commands' own types refuse by the same rules.
@Suite struct ProtocolTests {
    func parse(_ text: String) -> Result<ControlRequest, ControlRefusal> {
        ControlRequest.parse(Array(text.utf8))
    }

    func refusal(_ text: String) -> ControlRefusal? {
        if case .failure(let refusal) = parse(text) { return refusal }
        return nil
    }

    @Test func requestsParseWithOrWithoutArguments() throws {
        #expect(
            try parse(#"{"id":1,"command":"mac-table"}"#).get()
                == ControlRequest(id: 1, command: ShowMACTable()))
        #expect(
            try parse(#"{"command":"mac-table","id":2,"arguments":{"mac":"AA-BB-CC-DD-EE-0F"}}"#)
                .get()
                == ControlRequest(
                    id: 2, command: ShowMACTable(mac: MACAddress("aa:bb:cc:dd:ee:0f")!)))
        #expect(
            try parse(#"{"id":3,"command":"counters","arguments":{},"client":"vtepsh 1.0"}"#).get()
                == ControlRequest(id: 3, command: Counters()))
        #expect(
            try parse(#"{"id":-4,"command":"configuration","arguments":null}"#).get()
                == ControlRequest(id: -4, command: Configuration()))
        #expect(
            ControlRequest(id: 1, command: Counters())
                != ControlRequest(id: 1, command: Configuration()))
    }

    /// Every command's exact request line (id 9) and the line the shell types for it.
    static let table: [(String, String)] = [
        (#"{"id":9,"command":"mac-table"}"#, "show switch mac-table"),
        (
            #"{"id":9,"command":"mac-table","arguments":{"mac":"00:00:5e:00:53:01","switch":"web"}}"#,
            "show switch mac-table logical-switch web mac 00:00:5e:00:53:01"
        ),
        // A page of the API's (the shell asks for them itself): the same shell line.
        (
            #"{"id":9,"command":"mac-table","arguments":{"afterMAC":"00:00:5e:00:53:01","afterSwitch":"db","limit":4096,"switch":"web"}}"#,
            "show switch mac-table logical-switch web"
        ),
        (#"{"id":9,"command":"counters"}"#, "show switch statistics"),
        (#"{"id":9,"command":"configuration"}"#, "show configuration"),
        (#"{"id":9,"command":"problems"}"#, "show switch problems"),
        (
            #"{"id":9,"command":"names","arguments":{"kind":"logical-switches"}}"#,
            "names logical-switches"
        ),
        (#"{"id":9,"command":"switch"}"#, "show switch"),
        (#"{"id":9,"command":"system"}"#, "show system"),
        (#"{"id":9,"command":"restart-service"}"#, "restart service"),
        (#"{"id":9,"command":"reboot"}"#, "reboot"),
        (#"{"id":9,"command":"system-update"}"#, "show system update"),
        (
            #"{"id":9,"command":"update-system","arguments":{"file":"vtep-gateway_0.1.0+2_amd64.deb"}}"#,
            "update system vtep-gateway_0.1.0+2_amd64.deb"
        ),
        (#"{"id":9,"command":"clear-ntp-servers"}"#, "clear network ntp-servers"),
        (
            #"{"id":9,"command":"clear-interface-ip-config","arguments":{"interface":"eth1"}}"#,
            "clear network interface eth1 ip config"
        ),
        (
            #"{"id":9,"command":"audit-refused-input","arguments":{"line":"set hostname a;b","reason":"% Invalid input"}}"#,
            "set hostname a;b"
        ),
        (
            #"{"id":9,"command":"set-hostname","arguments":{"name":"gw1.example.net"}}"#,
            "set hostname gw1.example.net"
        ),
        (#"{"id":9,"command":"hostname"}"#, "show hostname"),
        (
            #"{"id":9,"command":"set-password","arguments":{"password":"s3cret pass\"word","user":"admin"}}"#,
            "set user admin password"
        ),
        (#"{"id":9,"command":"interfaces"}"#, "show network interfaces"),
        (
            #"{"id":9,"command":"interfaces","arguments":{"interface":"eth1"}}"#,
            "show network interface eth1"
        ),
        (
            #"{"id":9,"command":"set-interface-address","arguments":{"address":"192.0.2.10/24","interface":"eth1"}}"#,
            "set network interface eth1 ip config static 192.0.2.10 255.255.255.0"
        ),
        (
            #"{"id":9,"command":"set-interface-dhcp","arguments":{"interface":"eth1"}}"#,
            "set network interface eth1 ip config dhcp"
        ),
        (
            #"{"id":9,"command":"set-interface-mtu","arguments":{"interface":"eth1","mtu":9000}}"#,
            "set network interface eth1 mtu 9000"
        ),
        (
            #"{"id":9,"command":"set-interface-state","arguments":{"interface":"eth1","state":"down"}}"#,
            "set network interface eth1 down"
        ),
        (
            #"{"id":9,"command":"add-route","arguments":{"destination":"198.51.100.0/24","gateway":"192.0.2.1"}}"#,
            "add network route 198.51.100.0/24 192.0.2.1"
        ),
        (
            #"{"id":9,"command":"remove-route","arguments":{"gateway":"2001:db8::1"}}"#,
            "remove network route 2001:db8::1"
        ),
        (
            #"{"id":9,"command":"remove-route","arguments":{"destination":"2001:db8:1::/48","gateway":"2001:db8::1"}}"#,
            "remove network route 2001:db8:1::/48 2001:db8::1"
        ),
        (
            #"{"id":9,"command":"add-route","arguments":{"gateway":"192.0.2.1"}}"#,
            "add network route 192.0.2.1"
        ),
        (#"{"id":9,"command":"routes"}"#, "show network routes"),
        (#"{"id":9,"command":"clear-routes"}"#, "clear network routes"),
        (
            #"{"id":9,"command":"add-dns-server","arguments":{"server":"192.0.2.53"}}"#,
            "add network dns-server 192.0.2.53"
        ),
        (
            #"{"id":9,"command":"remove-dns-server","arguments":{"server":"2001:db8::53"}}"#,
            "remove network dns-server 2001:db8::53"
        ),
        (#"{"id":9,"command":"dns-servers"}"#, "show network dns-servers"),
        (#"{"id":9,"command":"clear-dns-servers"}"#, "clear network dns-servers"),
        (
            #"{"id":9,"command":"add-ntp-server","arguments":{"server":"pool.ntp.org"}}"#,
            "add network ntp-server pool.ntp.org"
        ),
        (
            #"{"id":9,"command":"remove-ntp-server","arguments":{"server":"192.0.2.123"}}"#,
            "remove network ntp-server 192.0.2.123"
        ),
        (#"{"id":9,"command":"ntp-servers"}"#, "show network ntp-servers"),
        (
            #"{"id":9,"command":"add-dns-search-domain","arguments":{"domain":"example.net"}}"#,
            "add network dns-search-domain example.net"
        ),
        (
            #"{"id":9,"command":"remove-dns-search-domain","arguments":{"domain":"example.org"}}"#,
            "remove network dns-search-domain example.org"
        ),
        (#"{"id":9,"command":"dns-search-domains"}"#, "show network dns-search-domains"),
        (#"{"id":9,"command":"clear-dns-search-domains"}"#, "clear network dns-search-domains"),
        (#"{"id":9,"command":"running-config"}"#, "show running-config"),
        (#"{"id":9,"command":"log"}"#, "show log"),
        (#"{"id":9,"command":"log","arguments":{"lines":20}}"#, "show log lines 20"),
        (
            #"{"id":9,"command":"add-logical-switch","arguments":{"name":"web","vni":5001}}"#,
            "add logical-switch web vni 5001"
        ),
        (
            #"{"id":9,"command":"remove-logical-switch","arguments":{"name":"web"}}"#,
            "remove logical-switch web"
        ),
        (
            #"{"id":9,"command":"remove-logical-switch","arguments":{"name":"web","vni":16777215}}"#,
            "remove logical-switch web vni 16777215"
        ),
        (
            #"{"id":9,"command":"set-replication","arguments":{"addresses":["239.1.1.1"],"mode":"multicast","switch":"web"}}"#,
            "set logical-switch web replication multicast 239.1.1.1"
        ),
        (
            #"{"id":9,"command":"set-replication","arguments":{"addresses":["192.0.2.2","2001:db8::2"],"mode":"head-end","switch":"web"}}"#,
            "set logical-switch web replication head-end 192.0.2.2,2001:db8::2"
        ),
        (
            #"{"id":9,"command":"set-replication","arguments":{"addresses":["192.0.2.9"],"mode":"service-node","switch":"web"}}"#,
            "set logical-switch web replication service-node 192.0.2.9"
        ),
        (
            #"{"id":9,"command":"set-encapsulation","arguments":{"encapsulation":"gre","switch":"web"}}"#,
            "set logical-switch web encapsulation gre"
        ),
        (
            #"{"id":9,"command":"bind-port","arguments":{"port":"eth1","switch":"web","vlan":0}}"#,
            "bind switch port eth1 vlan 0 logical-switch web"
        ),
        (
            #"{"id":9,"command":"unbind-port","arguments":{"port":"eth1","switch":"web","vlan":4094}}"#,
            "unbind switch port eth1 vlan 4094 logical-switch web"
        ),
        (
            #"{"id":9,"command":"add-remote-mac","arguments":{"mac":"00:00:5e:00:53:01","switch":"web","vtep":"192.0.2.2"}}"#,
            "add switch remote-mac web 00:00:5e:00:53:01 192.0.2.2"
        ),
        (
            #"{"id":9,"command":"add-remote-mac","arguments":{"ip":"10.0.0.2","mac":"00:00:5e:00:53:01","switch":"web","vtep":"192.0.2.2"}}"#,
            "add switch remote-mac web 00:00:5e:00:53:01 192.0.2.2 ip 10.0.0.2"
        ),
        (
            #"{"id":9,"command":"remove-remote-mac","arguments":{"mac":"00:00:5e:00:53:01","switch":"web","vtep":"2001:db8::2"}}"#,
            "remove switch remote-mac web 00:00:5e:00:53:01 2001:db8::2"
        ),
        (#"{"id":9,"command":"logical-switches"}"#, "show switch logical-switches"),
        (#"{"id":9,"command":"tunnels"}"#, "show switch tunnels"),
        (
            #"{"id":9,"command":"packet-trace","arguments":{"count":5,"port":"eth1","tunnel":false}}"#,
            "debug packet-trace port eth1 count 5"
        ),
        (
            #"{"id":9,"command":"packet-trace","arguments":{"count":1,"tunnel":true}}"#,
            "debug packet-trace tunnel count 1"
        ),
        (#"{"id":9,"command":"show-packet-trace"}"#, "show packet-trace"),
        (#"{"id":9,"command":"clear-packet-trace"}"#, "clear packet-trace"),
        (#"{"id":9,"command":"tech-support"}"#, "show tech-support"),
        (
            #"{"id":9,"command":"capture","arguments":{"count":50,"port":"eth1","seconds":10}}"#,
            "debug capture port eth1 count 50 seconds 10"
        ),
        (
            #"{"id":9,"command":"capture","arguments":{"count":1000,"seconds":60}}"#,
            "debug capture underlay count 1000 seconds 60"
        ),
        (#"{"id":9,"command":"captures"}"#, "show captures"),
        (
            #"{"id":9,"command":"set-bum-rate-limit","arguments":{"burst":500,"framesPerSecond":1000,"switch":"web"}}"#,
            "set logical-switch web storm-control 1000 burst 500"
        ),
        (
            #"{"id":9,"command":"clear-bum-rate-limit","arguments":{"switch":"web"}}"#,
            "clear logical-switch web storm-control"
        ),
        (
            #"{"id":9,"command":"set-arp-suppression","arguments":{"switch":"web"}}"#,
            "set logical-switch web arp-suppression"
        ),
        (
            #"{"id":9,"command":"clear-arp-suppression","arguments":{"switch":"web"}}"#,
            "clear logical-switch web arp-suppression"
        ),
        (
            #"{"id":9,"command":"set-metrics-listen","arguments":{"address":"192.0.2.10:9100"}}"#,
            "set metrics listen 192.0.2.10:9100"
        ),
        (
            #"{"id":9,"command":"set-metrics-listen","arguments":{"address":"[2001:db8::10]:9100"}}"#,
            "set metrics listen [2001:db8::10]:9100"
        ),
        (#"{"id":9,"command":"clear-metrics"}"#, "clear metrics"),
        (#"{"id":9,"command":"metrics"}"#, "show metrics"),
        (
            #"{"id":9,"command":"trace","arguments":{"destination":"00:00:5e:00:53:02","destinationIP":"192.0.2.2","destinationPort":443,"port":"eth1","source":"00:00:5e:00:53:01","sourceIP":"192.0.2.1","sourcePort":1000,"transport":"tcp","vlan":100}}"#,
            "trace port eth1 vlan 100 src 00:00:5e:00:53:01 dst 00:00:5e:00:53:02 ip 192.0.2.1 192.0.2.2 proto tcp sport 1000 dport 443"
        ),
        (#"{"id":9,"command":"switch-certificate"}"#, "show switch certificate"),
        (
            #"{"id":9,"command":"set-manager-cluster","arguments":{"addresses":["10.0.0.5","2001:db8::6"],"port":6640}}"#,
            "set switch manager-cluster 10.0.0.5,2001:db8::6 port 6640"
        ),
        (#"{"id":9,"command":"manager-cluster"}"#, "show switch manager-cluster"),
        (#"{"id":9,"command":"clear-manager-cluster"}"#, "clear switch manager-cluster"),
        (
            #"{"id":9,"command":"set-ca-certificate","arguments":{"pem":"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"}}"#,
            "set switch ca-certificate"
        ),
        (#"{"id":9,"command":"clear-ca-certificate"}"#, "clear switch ca-certificate"),
        (
            #"{"id":9,"command":"add-logical-router","arguments":{"name":"edge"}}"#,
            "add logical-router edge"
        ),
        (
            #"{"id":9,"command":"remove-logical-router","arguments":{"name":"edge"}}"#,
            "remove logical-router edge"
        ),
        (
            #"{"id":9,"command":"set-router-interface","arguments":{"address":"10.0.0.1/24","router":"edge","switch":"web"}}"#,
            "set logical-router edge interface web 10.0.0.1/24"
        ),
        (
            #"{"id":9,"command":"remove-router-interface","arguments":{"address":"10.0.0.1/24","router":"edge","switch":"web"}}"#,
            "remove logical-router edge interface web 10.0.0.1/24"
        ),
        (
            #"{"id":9,"command":"remove-router-interface","arguments":{"router":"edge","switch":"web"}}"#,
            "remove logical-router edge interface web"
        ),
        (
            #"{"id":9,"command":"add-router-route","arguments":{"next-hop":"192.0.2.1","prefix":"0.0.0.0/0","router":"edge"}}"#,
            "add logical-router edge route 0.0.0.0/0 192.0.2.1"
        ),
        (
            #"{"id":9,"command":"remove-router-route","arguments":{"next-hop":"192.0.2.1","prefix":"10.9.0.0/16","router":"edge"}}"#,
            "remove logical-router edge route 10.9.0.0/16 192.0.2.1"
        ),
        (
            #"{"id":9,"command":"add-router-nat","arguments":{"external":"192.0.2.10","internal":"10.0.0.0/24","router":"edge","type":"snat"}}"#,
            "add logical-router edge nat snat 10.0.0.0/24 192.0.2.10"
        ),
        (
            #"{"id":9,"command":"add-router-nat","arguments":{"external":"192.0.2.10:8080","internal":"10.0.0.5:80","protocol":"udp","router":"edge","type":"dnat"}}"#,
            "add logical-router edge nat dnat 192.0.2.10:8080 10.0.0.5:80 udp"
        ),
        (
            #"{"id":9,"command":"remove-router-nat","arguments":{"external":"192.0.2.11","internal":"10.0.0.5","router":"edge","type":"floating-ip"}}"#,
            "remove logical-router edge nat floating-ip 192.0.2.11 10.0.0.5"
        ),
        (
            #"{"id":9,"command":"remove-router-nat","arguments":{"external":"192.0.2.10:2222","internal":"10.0.0.5:22","protocol":"tcp","router":"edge","type":"dnat"}}"#,
            "remove logical-router edge nat dnat 192.0.2.10:2222 10.0.0.5:22 tcp"
        ),
        (#"{"id":9,"command":"logical-routers"}"#, "show logical-routers"),
        (
            #"{"id":9,"command":"set-router-session-limit","arguments":{"limit":1000,"router":"edge"}}"#,
            "set logical-router edge session-limit 1000"
        ),
        (
            #"{"id":9,"command":"clear-logical-router-sessions","arguments":{"name":"edge"}}"#,
            "clear logical-router edge sessions"
        ),
        (
            #"{"id":9,"command":"logical-router-sessions","arguments":{"limit":20,"name":"edge"}}"#,
            "show logical-router edge sessions limit 20"
        ),
        (
            #"{"id":9,"command":"logical-router","arguments":{"name":"edge"}}"#,
            "show logical-router edge"
        ),
    ]

    @Test func everyCommandHasItsExactWireFormAndShellLine() throws {
        var names: Set<String> = []
        for (wire, line) in Self.table {
            let request = try parse(wire).get()
            #expect(String(decoding: request.encoded(), as: UTF8.self) == wire)
            #expect(request.command.shellLine == line, "\(wire)")
            names.insert(request.command.name)
        }
        #expect(names == Set(ControlCommands.names))
        // Every argument a command declares is exercised by some line above.
        for type in ControlCommands.all {
            for argument in type.argumentNames {
                #expect(
                    Self.table.contains {
                        $0.0.contains(#""command":"\#(type.command)""#)
                            && $0.0.contains(#""\#(argument)":"#)
                    }, "\(type.command) \(argument)")
            }
        }
    }

    @Test func theDeclarationsAreConsistent() {
        #expect(Set(ControlCommands.names).count == ControlCommands.all.count)
        for type in ControlCommands.all {
            // A change answers {} and is audited; nothing else does either, but for the one
            // change that reports what it did.
            #expect(
                type.changesState
                    == (type.reply == .accepted
                        || type.command == ClearLogicalRouterSessions.command),
                "\(type.command)")
        }
        #expect(SetHostname.changesState && !ShowHostname.changesState)
        // Only the password and CA-certificate dialogues (the shell's own), the reboot the shell
        // confirms first, and the API's own reports have no shell grammar.
        #expect(
            Set(ControlCommands.all.filter { $0.erasedShell.isEmpty }.map { $0.command })
                == [
                    "set-password", "set-ca-certificate", "reboot", "configuration",
                    "audit-refused-input", "names",
                ])
    }

    @Test func wellFormedButWrongRequestsAreRefusedAndKeepTheConnection() {
        let cases: [(String, ControlRefusal)] = [
            (
                #"{"id":5,"command":"mac-tables"}"#,
                ControlRefusal(
                    id: 5,
                    message:
                        "unknown command \"mac-tables\"; commands: "
                        + ControlCommands.names.joined(separator: ", "),
                    closesConnection: false)
            ),
            (
                #"{"id":6,"command":"mac-table","arguments":{"switch":42}}"#,
                ControlRefusal(
                    id: 6, message: "argument \"switch\" of mac-table must be a string",
                    closesConnection: false)
            ),
            (
                #"{"id":7,"command":"mac-table","arguments":{"mac":"00:00:5e:00:53"}}"#,
                ControlRefusal(
                    id: 7,
                    message:
                        "mac-table: \"00:00:5e:00:53\" is not a MAC address (use aa:bb:cc:dd:ee:ff)",
                    closesConnection: false)
            ),
            (
                #"{"id":8,"command":"mac-table","arguments":{"swtich":"web","vni":5}}"#,
                ControlRefusal(
                    id: 8,
                    message:
                        "unknown arguments \"swtich\", \"vni\" for mac-table, which takes afterMAC,"
                        + " afterSwitch, limit, mac, switch",
                    closesConnection: false)
            ),
            (
                #"{"id":8,"command":"mac-table","arguments":{"limit":4097}}"#,
                ControlRefusal(
                    id: 8, message: "mac-table: limit 4097 is out of range (1–4096)",
                    closesConnection: false)
            ),
            (
                #"{"id":8,"command":"mac-table","arguments":{"afterSwitch":"web","afterMAC":"00:00:5e:00:53:01"}}"#,
                ControlRefusal(
                    id: 8, message: "mac-table: afterSwitch and afterMAC page: they need limit",
                    closesConnection: false)
            ),
            (
                #"{"id":8,"command":"mac-table","arguments":{"afterSwitch":"web","limit":5}}"#,
                ControlRefusal(
                    id: 8,
                    message: "mac-table: afterSwitch and afterMAC go together (the last row's)",
                    closesConnection: false)
            ),
            (
                #"{"id":9,"command":"counters","arguments":{"switch":"web"}}"#,
                ControlRefusal(
                    id: 9,
                    message: "unknown argument \"switch\" for counters, which takes no arguments",
                    closesConnection: false)
            ),
            (
                #"{"id":10,"command":"counters","arguments":["web"]}"#,
                ControlRefusal(
                    id: 10, message: "\"arguments\" must be a JSON object", closesConnection: false)
            ),
            (
                #"{"id":11,"command":7}"#,
                ControlRefusal(
                    id: 11,
                    message:
                        "request needs a string \"command\": one of "
                        + ControlCommands.names.joined(separator: ", "),
                    closesConnection: false)
            ),
            (
                #"{"id":"1","command":"counters"}"#,
                ControlRefusal(
                    id: nil, message: "request needs an integer \"id\"", closesConnection: false)
            ),
            (
                #"{"id":1.5,"command":"counters"}"#,
                ControlRefusal(
                    id: nil, message: "request needs an integer \"id\"", closesConnection: false)
            ),
            (
                #"{"command":"counters"}"#,
                ControlRefusal(
                    id: nil, message: "request needs an integer \"id\"", closesConnection: false)
            ),
            (
                #"[1,2,3]"#,
                ControlRefusal(
                    id: nil, message: "a request must be a JSON object with \"id\" and \"command\"",
                    closesConnection: false)
            ),
        ]
        for (line, expected) in cases {
            #expect(refusal(line) == expected, "\(line)")
        }
    }

    @Test func textThatIsNotJSONIsRefusedAndClosesTheConnection() {
        for line in ["garbage", #"{"id":1,"command":"counters""#, "{\"id\":1}}", "\u{0}"] {
            let refused = refusal(line)
            #expect(refused?.closesConnection == true, "\(line)")
            #expect(refused?.message.hasPrefix("request is not valid JSON") == true, "\(line)")
        }
        #expect(
            ControlRequest.parse([0x22, 0xC3, 0x28, 0x22])
                == .failure(
                    ControlRefusal(
                        id: nil, message: "request is not valid UTF-8", closesConnection: true)))
    }

    @Test func everyResultRoundTripsThroughItsWireForm() throws {
        let results: [(any ControlCommand, ControlResult, String?)] = [
            (ShowMACTable(), .macTable(Samples.macTable), nil),
            (Counters(), .counters(Samples.counters), nil),
            (Configuration(), .configuration(Samples.configuration), nil),
            (SetHostname(try Hostname("gw1")), .accepted, #"{"id":1,"ok":true,"result":{}}"#),
            (ShowHostname(), .lines(["gw1"]), #"{"id":1,"ok":true,"result":["gw1"]}"#),
            (
                ShowRunningConfig(),
                .lines(["set hostname gw1", "add logical-switch web vni 5001"]), nil
            ),
            (
                ShowInterfaces(),
                .interfaces([
                    InterfaceReport(
                        name: "eth1", adminState: "up", operationalState: "UP", mtu: 1500,
                        mac: "02:00:00:00:00:01", addresses: ["192.0.2.10/24"],
                        configured: "static 192.0.2.10/24", rxPackets: 7, txBytes: 99)
                ]), nil
            ),
            (
                ShowRoutes(),
                .routes([
                    RouteReport(
                        destination: "default", gateway: "192.0.2.1", interface: "eth1",
                        origin: "static", configured: true)
                ]),
                #"{"id":1,"ok":true,"result":[{"configured":true,"destination":"default","gateway":"192.0.2.1","interface":"eth1","origin":"static"}]}"#
            ),
            (
                ShowLogicalSwitches(),
                .logicalSwitches([
                    LogicalSwitchReport(
                        name: "web", vni: 5001, replication: "head-end", locators: ["192.0.2.2"],
                        encapsulation: "vxlan", bindings: ["eth1 vlan 0"], remoteMACs: 1)
                ]),
                #"{"id":1,"ok":true,"result":[{"bindings":["eth1 vlan 0"],"encapsulation":"vxlan","locators":["192.0.2.2"],"name":"web","remoteMACs":1,"replication":"head-end","vni":5001}]}"#
            ),
            (
                ShowTunnels(),
                .tunnels([
                    TunnelReport(
                        ip: "192.0.2.2", encapsulation: "vxlan", switches: ["web"], txFrames: 3,
                        rxFrames: 4)
                ]),
                #"{"id":1,"ok":true,"result":[{"encapsulation":"vxlan","ip":"192.0.2.2","rxFrames":4,"switches":["web"],"txFrames":3}]}"#
            ),
            (
                ShowTunnels(),
                .tunnels([
                    {
                        var row = TunnelReport(
                            ip: "192.0.2.2", encapsulation: "vxlan", switches: ["web"])
                        row.bfd = .init(
                            state: "down", remoteState: "down", forwarding: false,
                            diagnostic: "Control Detection Time Expired", flaps: 2)
                        return row
                    }()
                ]),
                #"{"id":1,"ok":true,"result":[{"bfd":{"diagnostic":"Control Detection Time Expired","flaps":2,"forwarding":false,"remoteState":"down","state":"down"},"encapsulation":"vxlan","ip":"192.0.2.2","rxFrames":0,"switches":["web"],"txFrames":0}]}"#
            ),
        ]
        for (command, result, wire) in results {
            let line = ControlResponse(id: 1, outcome: .success(result)).encoded()
            if let wire { #expect(String(decoding: line, as: UTF8.self) == wire) }
            #expect(try command.reply.decode(from: Data(line)) == result)
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
                #"{"id":1,"command":"add-remote-mac","arguments":{"switch":"web","mac":"01:00:5e:00:00:01","vtep":"192.0.2.2"}}"#,
                "add-remote-mac: 01:00:5e:00:00:01 is not a unicast MAC address"
            ),
            (
                #"{"id":1,"command":"add-remote-mac","arguments":{"switch":"web","mac":"00:00:5e:00:53:01","vtep":"::1"}}"#,
                "add-remote-mac: ::1 cannot be a VTEP: it is the loopback address"
            ),
            (
                #"{"id":1,"command":"add-remote-mac","arguments":{"switch":"web","mac":"00:00:5e:00:53:01","vtep":"192.0.2.2","ip":"224.0.0.1"}}"#,
                "add-remote-mac: 224.0.0.1 cannot be the host's address: it is a multicast group"
            ),
            (
                #"{"id":1,"command":"remove-remote-mac","arguments":{"switch":"web","mac":"00:00:5e:00:53:01","vtep":"192.0.2.2","ip":"10.0.0.2"}}"#,
                #"unknown argument "ip" for remove-remote-mac, which takes mac, switch, vtep"#
            ),
            (
                #"{"id":1,"command":"set-replication","arguments":{"switch":"web","mode":"head-end","addresses":["0.0.0.0"]}}"#,
                "set-replication: 0.0.0.0 cannot be a VTEP: it is the unspecified address"
            ),
            (
                #"{"id":1,"command":"add-dns-server","arguments":{"server":"ff02::1"}}"#,
                "add-dns-server: ff02::1 cannot be a DNS server: it is a multicast group"
            ),
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
                "set-hostname needs the argument \"name\""
            ),
            (
                #"{"id":1,"command":"set-metrics-listen","arguments":{"address":"192.0.2.10"}}"#,
                "\"192.0.2.10\" is not an IP address and port"
            ),
            (
                #"{"id":1,"command":"set-metrics-listen","arguments":{"address":"192.0.2.10:0"}}"#,
                "\"192.0.2.10:0\" is not an IP address and port"
            ),
            (
                #"{"id":1,"command":"set-metrics-listen","arguments":{"address":"2001:db8::1:9100"}}"#,
                "is not an IP address and port"
            ),
            (
                #"{"id":1,"command":"set-metrics-listen","arguments":{"address":"0.0.0.0:9100"}}"#,
                "set-metrics-listen: the metrics endpoint cannot listen on 0.0.0.0:9100: it is the"
                    + " unspecified address, which would listen on every address, the tunnel"
                    + " addresses too"
            ),
            (
                #"{"id":1,"command":"set-metrics-listen","arguments":{"address":"239.1.1.1:9100"}}"#,
                "cannot listen on 239.1.1.1:9100: it is a multicast group"
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

    @Test func counterAndConfigurationFieldNamesAreTheDocumentedOnes() {
        let counters = String(
            decoding: ControlResponse(id: 1, outcome: .success(.counters(Samples.counters)))
                .encoded(),
            as: UTF8.self)
        for field in [
            "switches", "ports", "vteps", "drops", "malformed", "name", "vni", "fromAccess",
            "fromTunnel", "toAccess", "encapsulated", "flooded", "learned", "moves",
            "learningRefused", "rxFrames", "txFrames", "ip", "encapsulation", "reason", "count",
            "offloads",
        ] {
            #expect(counters.contains("\"\(field)\":"), "\(field)")
        }
        let configuration = String(
            decoding: ControlResponse(
                id: 1, outcome: .success(.configuration(Samples.configuration))
            )
            .encoded(), as: UTF8.self)
        for field in [
            "physicalSwitch", "tunnelIPs", "underlay", "ports", "switches", "replication", "mode",
            "locators", "macAgeing", "macLimit", "allowedSources", "bindings", "switch", "vlan",
            "problems",
        ] {
            #expect(configuration.contains("\"\(field)\":"), "\(field)")
        }
        #expect(configuration.contains(#""mode":"head-end""#))
    }
}
