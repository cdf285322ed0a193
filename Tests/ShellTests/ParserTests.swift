import Appliance
import ControlAPI
import Packet
import ShellSession
import Testing

@testable import Shell

private let tree = CommandTree<ShellAction>.appliance

private func ip(_ text: String) -> IPAddress { IPAddress(text)! }
private func mac(_ text: String) -> MACAddress { MACAddress(text)! }

@Suite("Parser")
struct ParserTests {
    /// Accepted lines and what they do, written as the canonical line of the command (its
    /// running-config and audit form, which carries every argument) or, for the shell's own
    /// commands, what they run.
    static let accepted: [(String, String)] = [
        ("set hostname gw1", "set hostname gw1"),
        ("set hostname gw1.example.net", "set hostname gw1.example.net"),
        ("show hostname", "show hostname"),
        ("sh host", "show hostname"),
        ("SHOW HOSTNAME", "show hostname"),
        ("   show    hostname  ", "show hostname"),
        ("set user admin password", "set user admin password"),
        ("se us ad pa", "set user admin password"),
        ("show network interfaces", "show network interfaces"),
        ("sh net interfaces", "show network interfaces"),
        ("sh net interface eth0", "show network interface eth0"),
        ("sh net interfaces", "show network interfaces"),
        ("sh ho", "show hostname"),
        ("sh sw prob", "show switch problems"),
        ("show switch", "show switch"),
        ("sh sys", "show system"),
        ("sh hist", "show history"),
        ("term len 0", "terminal length 0"),
        ("clear network ntp-servers", "clear network ntp-servers"),
        ("cl net int eth1 ip con", "clear network interface eth1 ip config"),
        ("add network dns-server 127.0.0.53", "add network dns-server 127.0.0.53"),
        ("show network interface interfaces", "show network interface interfaces"),
        ("show network interface breth0.100", "show network interface breth0.100"),
        (
            "set network interface eth0 ip config static 192.0.2.10 255.255.255.0",
            "set network interface eth0 ip config static 192.0.2.10 255.255.255.0"
        ),
        (
            "set net int eth1 ip con st 10.1.2.2 255.255.255.252",
            "set network interface eth1 ip config static 10.1.2.2 255.255.255.252"
        ),
        (
            "set network interface eth0 ip config static 10.0.0.1 255.255.255.255",
            "set network interface eth0 ip config static 10.0.0.1 255.255.255.255"
        ),
        ("set network interface eth0 ip config dhcp", "set network interface eth0 ip config dhcp"),
        ("set network interface eth0 mtu 9000", "set network interface eth0 mtu 9000"),
        ("set network interface eth0 mtu 68", "set network interface eth0 mtu 68"),
        ("set network interface eth0 up", "set network interface eth0 up"),
        ("set net int eth0 d", "set network interface eth0 down"),
        ("add network route 10.0.0.0/8 192.0.2.1", "add network route 10.0.0.0/8 192.0.2.1"),
        ("add network route 192.0.2.1", "add network route 192.0.2.1"),
        ("add network route 2001:db8::/32 fe80::1", "add network route 2001:db8::/32 fe80::1"),
        ("remove network route 10.0.0.0/8 192.0.2.1", "remove network route 10.0.0.0/8 192.0.2.1"),
        ("rem net rou 192.0.2.1", "remove network route 192.0.2.1"),
        ("show network routes", "show network routes"),
        ("clear network routes", "clear network routes"),
        ("add network dns-server 192.0.2.53", "add network dns-server 192.0.2.53"),
        ("add network dns-server 2001:db8::53", "add network dns-server 2001:db8::53"),
        ("remove network dns-server 192.0.2.53", "remove network dns-server 192.0.2.53"),
        ("show network dns-servers", "show network dns-servers"),
        ("clear network dns-servers", "clear network dns-servers"),
        ("add network ntp-server pool.ntp.org", "add network ntp-server pool.ntp.org"),
        ("add network ntp-server 192.0.2.123", "add network ntp-server 192.0.2.123"),
        ("remove network ntp-server pool.ntp.org", "remove network ntp-server pool.ntp.org"),
        ("show network ntp-servers", "show network ntp-servers"),
        (
            "add network dns-search-domain corp.example",
            "add network dns-search-domain corp.example"
        ),
        (
            "remove network dns-search-domain corp.example",
            "remove network dns-search-domain corp.example"
        ),
        ("show network dns-search-domains", "show network dns-search-domains"),
        ("clear network dns-search-domains", "clear network dns-search-domains"),
        ("show running-config", "show running-config"),
        ("sh run", "show running-config"),
        ("show version", "show version"),
        ("show log", "show log"),
        ("show log lines 50", "show log lines 50"),
        ("help", "help"),
        ("exit", "exit"),
        ("ping 192.0.2.1", "DIAG ping -c 5 -- 192.0.2.1"),
        ("ping gw2.example.net count 3", "DIAG ping -c 3 -- gw2.example.net"),
        ("ping ::1 c 1000", "DIAG ping -c 1000 -- ::1"),
        ("traceroute 198.51.100.7", "DIAG traceroute 198.51.100.7"),
        ("add logical-switch web vni 5000", "add logical-switch web vni 5000"),
        ("add logical-s web vni 16777215", "add logical-switch web vni 16777215"),
        ("add logical-switch web vni 0", "add logical-switch web vni 0"),
        ("remove logical-switch web", "remove logical-switch web"),
        ("remove logical-switch web vni 5000", "remove logical-switch web vni 5000"),
        (
            "set logical-switch web replication multicast 239.1.1.1",
            "set logical-switch web replication multicast 239.1.1.1"
        ),
        (
            "set logical-switch web replication multicast ff0e::1:1",
            "set logical-switch web replication multicast ff0e::1:1"
        ),
        (
            "set logical-switch web replication head-end 192.0.2.2,192.0.2.3,2001:db8::4",
            "set logical-switch web replication head-end 192.0.2.2,192.0.2.3,2001:db8::4"
        ),
        (
            "set logical-switch web replication head-end 192.0.2.2",
            "set logical-switch web replication head-end 192.0.2.2"
        ),
        (
            "set logical-s web rep se 192.0.2.9",
            "set logical-switch web replication service-node 192.0.2.9"
        ),
        (
            "set logical-switch web encapsulation vxlan",
            "set logical-switch web encapsulation vxlan"
        ),
        ("set logical-switch web enc g", "set logical-switch web encapsulation gre"),
        ("set logical-switch web enc nv", "set logical-switch web encapsulation nvgre"),
        (
            "bind switch port eth1 vlan 100 logical-switch web",
            "bind switch port eth1 vlan 100 logical-switch web"
        ),
        (
            "unbind switch port eth1 vlan 0 logical-switch web",
            "unbind switch port eth1 vlan 0 logical-switch web"
        ),
        (
            "add switch remote-mac web 00:11:22:33:44:55 192.0.2.2",
            "add switch remote-mac web 00:11:22:33:44:55 192.0.2.2"
        ),
        (
            "add switch remote-mac web 00:11:22:33:44:55 192.0.2.2 ip fd00::5",
            "add switch remote-mac web 00:11:22:33:44:55 192.0.2.2 ip fd00::5"
        ),
        (
            "remove switch remote-mac web 00-11-22-AA-BB-CC 2001:db8::2",
            "remove switch remote-mac web 00:11:22:aa:bb:cc 2001:db8::2"
        ),
        ("show switch logical-switches", "show switch logical-switches"),
        ("add logical-r edge", "add logical-router edge"),
        ("remove logical-router edge", "remove logical-router edge"),
        (
            "set logical-r edge int web 10.0.0.1/24",
            "set logical-router edge interface web 10.0.0.1/24"
        ),
        ("remove logical-r edge int web", "remove logical-router edge interface web"),
        (
            "add logical-router edge route 10.9.0.0/16 10.0.0.2",
            "add logical-router edge route 10.9.0.0/16 10.0.0.2"
        ),
        (
            "add logical-router edge nat snat 10.0.0.0/24 192.0.2.10",
            "add logical-router edge nat snat 10.0.0.0/24 192.0.2.10"
        ),
        (
            "add logical-router edge nat dnat 192.0.2.10:2222 10.0.0.5:22",
            "add logical-router edge nat dnat 192.0.2.10:2222 10.0.0.5:22"
        ),
        (
            "add logical-router edge nat dnat 192.0.2.10:53 10.0.0.5 u",
            "add logical-router edge nat dnat 192.0.2.10:53 10.0.0.5 udp"
        ),
        (
            "remove logical-router edge nat floating-ip 192.0.2.11 10.0.0.5",
            "remove logical-router edge nat floating-ip 192.0.2.11 10.0.0.5"
        ),
        ("show logical-routers", "show logical-routers"),
        ("show logical-router edge", "show logical-router edge"),
        ("show logical-router edge sess", "show logical-router edge sessions"),
        ("set logical-router edge session-limit 0", "set logical-router edge session-limit 0"),
        ("sh logical-router edge sess lim 5", "show logical-router edge sessions limit 5"),
        ("clear logical-router edge sess", "clear logical-router edge sessions"),
        ("show switch mac-table", "show switch mac-table"),
        ("sh sw mac-t lo web", "show switch mac-table logical-switch web"),
        (
            "show switch mac-table mac 00:11:22:33:44:55",
            "show switch mac-table mac 00:11:22:33:44:55"
        ),
        (
            "show switch mac-table logical-switch web mac 00:11:22:33:44:55",
            "show switch mac-table logical-switch web mac 00:11:22:33:44:55"
        ),
        ("show switch tunnels", "show switch tunnels"),
        ("show switch statistics", "show switch statistics"),
        ("show switch certificate", "show switch certificate"),
        ("sh sw cert", "show switch certificate"),
        (
            "set switch manager-cluster 10.0.0.5,10.0.0.6",
            "set switch manager-cluster 10.0.0.5,10.0.0.6 port 6640"
        ),
        (
            "set sw manager 2001:db8::5 port 16640",
            "set switch manager-cluster 2001:db8::5 port 16640"
        ),
        ("show switch manager-cluster", "show switch manager-cluster"),
        ("clear switch manager-cluster", "clear switch manager-cluster"),
        ("set switch ca-certificate", "set switch ca-certificate"),
        ("clear switch ca-certificate", "clear switch ca-certificate"),
        ("restart service", "restart service"),
        ("res serv", "restart service"),
        ("reboot", "CONFIRM reboot"),
        ("show system update", "show system update"),
        (
            "update system vtep-gateway_0.1.0+2_amd64.deb",
            "update system vtep-gateway_0.1.0+2_amd64.deb"
        ),
        ("copy running-config backup.cfg", "copy running-config backup.cfg"),
        ("copy backup.cfg running-config", "copy backup.cfg running-config"),
    ]

    /// What an action does, in words: the command's canonical line.
    static func canonical(_ action: ShellAction) -> String {
        switch action {
        case .control(let command): command.shellLine
        case .password(let user): "set user \(user) password"
        case .caCertificate: "set switch ca-certificate"
        case .help: "help"
        case .version: "show version"
        case .exit: "exit"
        case .history: "show history"
        case .terminalLength(let rows): "terminal length \(rows)"
        case .diagnostic(let arguments): "DIAG " + arguments.joined(separator: " ")
        case .confirm(_, let command): "CONFIRM " + command.shellLine
        case .saveRunningConfig(let file): "copy running-config \(file)"
        case .restoreRunningConfig(let file): "copy \(file) running-config"
        }
    }

    @Test("accepted lines and their commands", arguments: accepted)
    func acceptedLines(line: String, expected: String) throws {
        let action = try #require(try tree.parse(line))
        #expect(Self.canonical(action) == expected)
        // The canonical line of a command for vtepd is a line the shell takes, for the same
        // command: what `show running-config` prints can be typed back.
        if case .control = action {
            #expect(try tree.parse(expected) == action, "\(expected)")
        }
    }

    @Test func valuesTheCommandsTypesRefuseAreRefusedAtParse() {
        #expect(
            throws: ParseError.refused(
                reason:
                    "10.1.2.3/30 cannot be an interface address: it is the broadcast address of 10.1.2.0/30"
            )
        ) {
            try tree.parse("set net int eth1 ip con st 10.1.2.3 255.255.255.252")
        }
    }

    @Test func blankLinesAreNoCommand() throws {
        #expect(try tree.parse("") == nil)
        #expect(try tree.parse("    ") == nil)
    }

    static let refused: [(String, String)] = [
        (
            "set network interface eth0 ip config static fo 255.255.255.0",
            "% Invalid input at 'fo' (column 45): expected an IPv4 address, e.g. 192.0.2.1"
        ),
        (
            "shw version",
            "% Invalid input at 'shw' (column 1): expected one of: add, bind, clear, copy, debug, exit, help, ping, reboot, remove, restart, set, show, terminal, trace, traceroute, unbind, update"
        ),
        ("s", "% Ambiguous input at 's' (column 1): could be set, show"),
        (
            "set hostname " + String(repeating: "x;", count: 5000),
            "% Invalid input at '" + String(repeating: "x;", count: 20)
                + "…(10000 characters)' (column 14): ';' is not allowed in a host name (letters, digits, '-' and '.')"
        ),
        // What vtepd would ignore or refuse is refused at the prompt, in vtepd's words.
        (
            "add logical-router edge nat dnat 192.0.2.10 10.0.0.5 tcp",
            "% a protocol or an internal port needs an external port"
        ),
        (
            "set logical-router edge interface web 10.0.0.1/33",
            "% Invalid input at '10.0.0.1/33' (column 39): the prefix length of 10.0.0.1/33 must be 0–32"
        ),
        (
            "add switch remote-mac web ff:ff:ff:ff:ff:ff 192.0.2.2",
            "% ff:ff:ff:ff:ff:ff is not a unicast MAC address (broadcast and multicast MACs are flooded by the switch's replication; 00:00:00:00:00:00 is no address)"
        ),
        (
            "add switch remote-mac web 00:00:5e:00:53:01 239.1.1.1",
            "% 239.1.1.1 cannot be a VTEP: it is a multicast group"
        ),
        (
            "set logical-switch web replication head-end 192.0.2.2,239.1.1.1",
            "% 239.1.1.1 cannot be a VTEP: it is a multicast group"
        ),
        (
            "set switch manager-cluster 10.0.0.5,10.0.0.5",
            "% Invalid input at '10.0.0.5,10.0.0.5' (column 28): 10.0.0.5 is listed twice"
        ),
        (
            "set switch manager-cluster 239.1.1.1",
            "% 239.1.1.1 cannot be a controller: it is a multicast group"
        ),
        (
            "set logical-switch web replication service-node 255.255.255.255",
            "% 255.255.255.255 cannot be a VTEP: it is the broadcast address"
        ),
        (
            "add network dns-server 0.0.0.0",
            "% 0.0.0.0 cannot be a DNS server: it is the unspecified address"
        ),
        // An abbreviation of several keywords is ambiguous whatever follows it: the words
        // after it never choose (a name after `s h` must not turn a show into a change).
        ("s h", "% Ambiguous input at 's' (column 1): could be set, show"),
        ("s hostname", "% Ambiguous input at 's' (column 1): could be set, show"),
        ("s h gw1", "% Ambiguous input at 's' (column 1): could be set, show"),
        ("sh net int", "% Ambiguous input at 'int' (column 8): could be interface, interfaces"),
        ("sh net in eth0", "% Ambiguous input at 'in' (column 8): could be interface, interfaces"),
        (
            "show x",
            "% Invalid input at 'x' (column 6): expected one of: captures, history, hostname, log, logical-router, logical-routers, metrics, network, packet-trace, running-config, switch, system, tech-support, version"
        ),
        (
            "show n",
            "% Incomplete command after 'show n': expected one of: dns-search-domains, dns-servers, interface, interfaces, ntp-servers, routes"
        ),
        (
            "set network interface eth0 i",
            "% Incomplete command after 'set network interface eth0 i': expected 'config'"
        ),
        (
            "show network interface eth0;",
            "% Invalid input at 'eth0;' (column 24): ';' is not allowed in an interface name (letters, digits, '.', '_' and '-')"
        ),
        (
            "show network dns-s",
            "% Ambiguous input at 'dns-s' (column 14): could be dns-search-domains, dns-servers"
        ),

        (
            "add logical-switch web vni 16777216",
            "% Invalid input at '16777216' (column 28): VNI 16777216 is out of range (0–16777215)"
        ),
        (
            "add logical-switch web vni -1",
            "% Invalid input at '-1' (column 28): expected a VNI from 0 to 16777215"
        ),
        (
            "add logical-switch web vni 99999999999999999999999",
            "% Invalid input at '99999999999999999999999' (column 28): VNI 99999999999999999999999 is out of range (0–16777215)"
        ),
        (
            "bind switch port eth1 vlan 4095 logical-switch web",
            "% Invalid input at '4095' (column 28): VLAN 4095 is out of range (0–4094)"
        ),
        (
            "set network interface eth0 mtu 67",
            "% Invalid input at '67' (column 32): MTU 67 is out of range (68–65535)"
        ),
        (
            "ping 192.0.2.1 count 0",
            "% Invalid input at '0' (column 22): count 0 is out of range (1–1000)"
        ),
        (
            "set network interface eth0 ip config static 10.0.0.1 255.0.255.0",
            "% Invalid input at '255.0.255.0' (column 54): 255.0.255.0 is not a netmask: the one bits must be contiguous and not all zero, e.g. 255.255.255.0"
        ),
        (
            "set network interface eth0 ip config static 10.0.0.1 0.0.0.0",
            "% Invalid input at '0.0.0.0' (column 54): 0.0.0.0 is not a netmask: the one bits must be contiguous and not all zero, e.g. 255.255.255.0"
        ),
        (
            "set network interface eth0 ip config static 10.0.0.1 24",
            "% Invalid input at '24' (column 54): expected an IPv4 netmask, e.g. 255.255.255.0"
        ),
        (
            "set network interface eth0 ip config static 2001:db8::1 255.255.255.0",
            "% Invalid input at '2001:db8::1' (column 45): expected an IPv4 address, e.g. 192.0.2.1"
        ),
        (
            "add network route 10.0.0.1/8 192.0.2.1",
            "% Invalid input at '10.0.0.1/8' (column 19): 10.0.0.1/8 has host bits set; the network is 10.0.0.0/8"
        ),
        (
            "add network route 10.0.0.0/33 192.0.2.1",
            "% Invalid input at '10.0.0.0/33' (column 19): the prefix length of 10.0.0.0/33 must be 0–32"
        ),
        (
            "remove network route 2001:db8::/129 fe80::1",
            "% Invalid input at '2001:db8::/129' (column 22): the prefix length of 2001:db8::/129 must be 0–128"
        ),
        (
            "add network route fo",
            "% Invalid input at 'fo' (column 19): expected a CIDR prefix, e.g. 10.0.0.0/24; or an IP address, e.g. 192.0.2.1"
        ),
        (
            "add network route 10.0.0.0/8 gw",
            "% Invalid input at 'gw' (column 30): expected an IP address, e.g. 192.0.2.1"
        ),
        (
            "set logical-switch web replication multicast 192.0.2.1",
            "% Invalid input at '192.0.2.1' (column 46): 192.0.2.1 is not a multicast group (224.0.0.0/4 or ff00::/8), e.g. 239.1.1.1"
        ),
        (
            "set logical-switch web replication head-end 192.0.2.2,,192.0.2.3",
            "% Invalid input at '192.0.2.2,,192.0.2.3' (column 45): '' is not an IP address; expected a comma-separated list of IP addresses, e.g. 192.0.2.1,192.0.2.2"
        ),
        (
            "set logical-switch web replication head-end 192.0.2.2,192.0.2.2",
            "% Invalid input at '192.0.2.2,192.0.2.2' (column 45): 192.0.2.2 is listed twice"
        ),
        (
            "set logical-switch web encapsulation ipip",
            "% Invalid input at 'ipip' (column 38): expected one of: gre, nvgre, vxlan"
        ),
        (
            "add switch remote-mac web 00:11:22:33:44 192.0.2.2",
            "% Invalid input at '00:11:22:33:44' (column 27): expected a MAC address, e.g. 00:11:22:33:44:55"
        ),
        (
            "set hostname gw_1",
            "% Invalid input at 'gw_1' (column 14): '_' is not allowed in a host name (letters, digits, '-' and '.')"
        ),
        (
            "set hostname 192.0.2.1",
            "% Invalid input at '192.0.2.1' (column 14): a host name cannot be an IPv4 address"
        ),
        (
            "set hostname gw-.example",
            "% Invalid input at 'gw-.example' (column 14): the label 'gw-' must not start or end with '-'"
        ),
        (
            "set hostname gw..example",
            "% Invalid input at 'gw..example' (column 14): 'gw..example' has an empty label (two dots, or a dot at an end)"
        ),
        (
            "set hostname " + String(repeating: "a", count: 65),
            "% Invalid input at '\(String(repeating: "a", count: 40))…(65 characters)' (column 14): a host name is at most 64 characters, this one has 65"
        ),
        (
            "add network dns-search-domain \(String(repeating: "a", count: 64)).example",
            "% Invalid input at '\(String(repeating: "a", count: 40))…(72 characters)' (column 31): the label '\(String(repeating: "a", count: 64))' is longer than 63 characters"
        ),
        (
            "show network interface abcdefghijklmnop",
            "% Invalid input at 'abcdefghijklmnop' (column 24): an interface name is at most 15 characters, this one has 16"
        ),
        (
            "show network interface ..",
            "% Invalid input at '..' (column 24): '..' is not a valid interface name"
        ),
        (
            "show version now",
            "% Invalid input at 'now' (column 14): expected the end of the command"
        ),
        (
            "set metrics listen 192.0.2.10",
            "% Invalid input at '192.0.2.10' (column 20): expected IP:PORT with a port from 1 to 65535, e.g. 192.0.2.1:9100 or [2001:db8::1]:9100"
        ),
        (
            "set metrics listen 0.0.0.0:9100",
            "% the metrics endpoint cannot listen on 0.0.0.0:9100: it is the unspecified address, which would listen on every address, the tunnel addresses too; give the management interface's address"
        ),
        (
            "show log lines",
            "% Incomplete command after 'show log lines': expected a line count from 1 to 100000"
        ),
        (
            "set",
            "% Incomplete command after 'set': expected one of: hostname, logical-router, logical-switch, metrics, network, switch, user"
        ),
        (
            "add logical-switch web",
            "% Incomplete command after 'add logical-switch web': expected 'vni'"
        ),
        (
            "set hostname gw1\nreboot",
            "% Invalid input at 'gw1\\nreboot' (column 14): control characters (newline, tab, escape) are not allowed"
        ),
        (
            "show\thostname",
            "% Invalid input at 'show\\thostname' (column 1): control characters (newline, tab, escape) are not allowed"
        ),
        (
            "show hostname \u{1B}[2J",
            "% Invalid input at '\\u{1b}[2J' (column 15): control characters (newline, tab, escape) are not allowed"
        ),
        (
            "set hostname gw1 gw2",
            "% Invalid input at 'gw2' (column 18): expected the end of the command"
        ),
        (
            "ping 192.0.2.1 count 3 count 4",
            "% Invalid input at 'count' (column 24): expected the end of the command"
        ),
        (
            "show log lines 5 lines 6",
            "% Invalid input at 'lines' (column 18): expected the end of the command"
        ),
        (
            "ping 192.0.2.1 3",
            "% Invalid input at '3' (column 16): expected 'count'; or the end of the command"
        ),
        (
            "ping 1.2.3",
            "% Invalid input at '1.2.3' (column 6): expected a host name or IP address, e.g. ntp.example.net"
        ),
        (
            "add network ntp-server fe80::1%eth0",
            "% Invalid input at 'fe80::1%eth0' (column 24): expected a host name or IP address, e.g. ntp.example.net"
        ),
        (
            "show switch mac-table mac 00:11:22:33:44:55 logical-switch web",
            "% Invalid input at 'logical-switch' (column 45): expected the end of the command"
        ),
        (
            "set logical-switch wéb encapsulation vxlan",
            "% Invalid input at 'wéb' (column 20): 'é' is not allowed in a name (letters, digits, '.', '_' and '-')"
        ),
    ]

    @Test("refused lines name the token, its column and what was expected", arguments: refused)
    func refusedLines(line: String, message: String) {
        #expect(throws: (any Error).self) { try tree.parse(line) }
        do throws(ParseError) {
            _ = try tree.parse(line)
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func errorColumnPointsAtTheToken() {
        let line = "set network interface eth0 mtu 1"
        do throws(ParseError) {
            _ = try tree.parse(line)
            Issue.record("accepted \(line)")
        } catch {
            let start = line.index(line.startIndex, offsetBy: error.column - 1)
            #expect(line[start...] == "1")
            #expect(
                TerminalText.marker(column: error.column, promptWidth: 4)
                    == String(repeating: " ", count: 4 + 31) + "^\n")
        }
    }
}

/// Every declared command, its syntax enumerated from the tree itself, so that a new command
/// is covered without editing these tests.
@Suite("Declared commands")
struct DeclaredCommandTests {
    /// One concrete input per path of every declaration: keywords in full, each argument its
    /// kind's example.
    static func samples() -> [(line: [String], tokens: [CommandTree<ShellAction>.Token])] {
        CommandTree<ShellAction>.appliance.declarations.flatMap { declaration in
            CommandTree<ShellAction>.expand(declaration.syntax).map { path in
                (
                    path.map { token -> String in
                        switch token {
                        case .keyword(let word, _, _): word
                        case .argument(_, let kind, _): kind.example
                        }
                    }, path
                )
            }
        }
    }

    @Test func everyCommandParsesFromItsExample() throws {
        let samples = Self.samples()
        #expect(samples.count > 50)
        var commands = Set<ShellAction>()
        for sample in samples {
            let line = sample.line.joined(separator: " ")
            let command = try #require(try tree.parse(line), "\(line)")
            commands.insert(command)
        }
        // Every path is a different command (no two declarations collapse into one value).
        #expect(commands.count == samples.count)
    }

    @Test func everyCommandParsesFromItsShortestAbbreviations() throws {
        for sample in Self.samples() {
            var node = 0
            var words: [String] = []
            for (token, word) in zip(sample.tokens, sample.line) {
                let edges = tree.nodes[node].edges
                if case .keyword(let keyword, _, _) = token {
                    let others = edges.compactMap { edge -> String? in
                        if case .keyword(let other, _, _) = edge.token, other != keyword {
                            return other
                        }
                        return nil
                    }
                    var length = 1
                    while others.contains(where: { $0.hasPrefix(keyword.prefix(length)) })
                        && length < keyword.count
                    {
                        length += 1
                    }
                    words.append(String(keyword.prefix(length)))
                } else {
                    words.append(word)
                }
                node = edges.first { $0.token.display == token.display }!.target
            }
            let full = try tree.parse(sample.line.joined(separator: " "))
            let short = words.joined(separator: " ")
            #expect(try tree.parse(short) == full, "\(short)")
        }
    }

    @Test func argumentsAtOneNodeNeverAcceptEachOther() {
        for node in tree.nodes {
            let arguments = node.edges.compactMap { edge -> ArgumentKind? in
                if case .argument(_, let kind, _) = edge.token { kind } else { nil }
            }
            let keywords = node.edges.compactMap { edge -> String? in
                if case .keyword(let word, _, _) = edge.token { word } else { nil }
            }
            for kind in arguments {
                for other in arguments where other != kind {
                    if case .success = other.parse(kind.example) {
                        Issue.record("\(other) also accepts \(kind)'s example \(kind.example)")
                    }
                }
                for keyword in keywords {
                    if case .success = kind.parse(keyword) {
                        Issue.record("\(kind) accepts the sibling keyword \(keyword)")
                    }
                }
            }
        }
    }

    @Test func everyTokenHasHelp() {
        for node in tree.nodes {
            for edge in node.edges {
                #expect(edge.token.help.count >= 8, "\(edge.token.display): '\(edge.token.help)'")
            }
        }
    }

    @Test func usageListsEveryDeclarationOnce() {
        let usage = CommandTree<ShellAction>.appliance.declarations.map(\.usage)
        #expect(Set(usage).count == usage.count)
        #expect(usage.contains("show log [lines N]"))
        #expect(usage.contains("set network interface IF up|down"))
        #expect(usage.contains("set logical-switch NAME encapsulation vxlan|gre|nvgre"))
        #expect(usage.contains("show switch mac-table [logical-switch NAME] [mac MAC]"))
    }

    /// The injection test: every string argument of every command, tried with shell syntax,
    /// option-looking and path-looking values. Each is refused, naming the token.
    static let hostile = [
        ";", "a;reboot", "$(reboot)", "a$(id)", "`id`", "a`id`", "a\nb", "\n", "a\rb",
        "-f", "--help", "-", "../etc", "../../etc/passwd", "a/../b", "/etc/passwd", "a|b", "a&b",
        "a>b", "a<b", "$HOME", "a'b", "a\"b", "a\\b", "*", "a b", "\u{0}", "a\u{7F}b",
        "a\u{1B}[2Jb", "é",
    ]

    @Test func everyStringArgumentRefusesShellAndPathSyntax() {
        var tried = 0
        var kinds = Set<ArgumentKind>()
        for sample in Self.samples() {
            for (index, token) in sample.tokens.enumerated() {
                guard case .argument(_, let kind, _) = token, kind.isString else { continue }
                kinds.insert(kind)
                for value in Self.hostile {
                    var words = sample.line
                    words[index] = value
                    let line = words.joined(separator: " ")
                    tried += 1
                    do throws(ParseError) {
                        let command = try tree.parse(line)
                        Issue.record(
                            "accepted \(line.debugDescription) as \(String(describing: command))")
                    } catch {
                        // The message names the offending token (escaped) and its column.
                        let bad = value.split(separator: " ").last.map(String.init) ?? value
                        #expect(
                            error.description.contains("'\(visible(value))'")
                                || error.description.contains("'\(visible(bad))'")
                                || (value.contains(" ")
                                    && error.description.contains("end of the command")),
                            "\(line.debugDescription): \(error)")
                    }
                }
            }
        }
        #expect(kinds == [.name, .hostname, .host, .domain, .interfaceName, .fileName])
        #expect(tried > 500)
    }

    @Test("each string kind refuses each hostile value on its own")
    func stringKindsRefuseHostileValues() {
        for kind in [ArgumentKind.name, .hostname, .host, .domain, .interfaceName] {
            for value in Self.hostile {
                if case .success(let parsed) = kind.parse(value) {
                    Issue.record("\(kind) accepted \(value.debugDescription) as \(parsed)")
                }
            }
            #expect(throws: Never.self) { try kind.parse(kind.example).get() }
        }
    }
}
