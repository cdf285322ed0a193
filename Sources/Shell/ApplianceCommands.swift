import Packet

// The appliance's commands, each declared once. Names follow the NSX/NVP appliances where
// they have the command (`set hostname`, `show network interfaces`, `set network interface
// eth0 ip config static …`, `show switch mac-table`); keywords shared by several commands
// are declared once below, so that `?` shows one help text for each.

private enum Word {
    static let add = Syntax.keyword("add", help: "Add a setting or an entry")
    static let remove = Syntax.keyword("remove", help: "Remove a setting or an entry")
    static let set = Syntax.keyword("set", help: "Change a setting")
    static let show = Syntax.keyword("show", help: "Show configuration and state")
    static let clear = Syntax.keyword("clear", help: "Remove all entries of a list")
    static let bind = Syntax.keyword("bind", help: "Bind a port's VLAN to a logical switch")
    static let unbind = Syntax.keyword("unbind", help: "Remove a port's VLAN binding")
    static let network = Syntax.keyword(
        "network", help: "Host networking: interfaces, routes, DNS, NTP")
    static let interface = Syntax.keyword("interface", help: "One network interface")
    static let route = Syntax.keyword("route", help: "A static IP route")
    static let routes = Syntax.keyword("routes", help: "The static IP routes")
    static let dnsServer = Syntax.keyword("dns-server", help: "A DNS resolver")
    static let dnsServers = Syntax.keyword("dns-servers", help: "The DNS resolvers")
    static let ntpServer = Syntax.keyword("ntp-server", help: "An NTP time server")
    static let ntpServers = Syntax.keyword("ntp-servers", help: "The NTP time servers")
    static let searchDomain = Syntax.keyword("dns-search-domain", help: "A DNS search domain")
    static let searchDomains = Syntax.keyword("dns-search-domains", help: "The DNS search domains")
    static let hostname = Syntax.keyword("hostname", help: "The appliance's host name")
    static let logicalSwitch = Syntax.keyword(
        "logical-switch", help: "A logical switch (an overlay network, one VNI)")
    static let switchWord = Syntax.keyword("switch", help: "The VTEP gateway")
    static let vni = Syntax.keyword("vni", help: "The virtual network identifier")
    static let vlan = Syntax.keyword("vlan", help: "An 802.1Q VLAN on the port")
    static let port = Syntax.keyword("port", help: "A physical port of the gateway")
    static let remoteMAC = Syntax.keyword(
        "remote-mac", help: "A static MAC address behind a remote VTEP")
}

private enum Slot {
    static let interface = Syntax.argument("IF", .interfaceName, help: "Interface name")
    static let switchName = Syntax.argument("NAME", .name, help: "Logical switch name")
    static let vni = Syntax.argument("N", .integer(.vni), help: "VXLAN network identifier")
    static let vlan = Syntax.argument("N", .integer(.vlan), help: "VLAN ID, 0 for untagged")
    static let gateway = Syntax.argument("GATEWAY", .ipAddress, help: "Next-hop router address")
    static let destination = Syntax.argument(
        "PREFIX", .prefix, help: "Destination network, ADDRESS/LENGTH")
    static let server = Syntax.argument("IP", .ipAddress, help: "Server address, IPv4 or IPv6")
    static let ntpHost = Syntax.argument("HOST", .host, help: "Server name or address")
    static let domain = Syntax.argument("DOMAIN", .domain, help: "Domain name")
    static let target = Syntax.argument("HOST", .host, help: "Host name or IP address to reach")
}

extension CommandTree {
    /// The appliance shell's commands.
    public static let appliance = CommandTree(applianceCommands)

    static let applianceCommands: [CommandDeclaration] =
        applianceSettings + networkCommands + gatewayCommands
}

private let applianceSettings: [CommandDeclaration] = [
    CommandDeclaration(
        [
            Word.set, Word.hostname, .argument("NAME", .hostname, help: "New host name (RFC 1123)"),
        ], summary: "Set the host name at once; /etc/hostname and /etc/hosts follow"
    ) { .setHostname($0.text("NAME")) },
    CommandDeclaration([Word.show, Word.hostname], summary: "Show the appliance's host name") { _ in
        .showHostname
    },
    CommandDeclaration(
        [
            Word.set, .keyword("user", help: "An appliance user"),
            .keyword("admin", help: "The administrator"),
            .keyword("password", help: "Change the password (asked twice, not echoed)"),
        ], summary: "Change the admin password (asked twice, not echoed, stored hashed)"
    ) { _ in .setUserPassword(user: "admin") },
    CommandDeclaration(
        [
            Word.show,
            .keyword("running-config", help: "The commands that rebuild the current configuration"),
        ], summary: "Show the commands that rebuild the current configuration"
    ) { _ in .showRunningConfig },
    CommandDeclaration(
        [Word.show, .keyword("version", help: "Software version")],
        summary: "Show the software version"
    ) { _ in
        .showVersion
    },
    CommandDeclaration(
        [
            Word.show, .keyword("log", help: "The appliance's log"),
            .optional([
                .keyword("lines", help: "Show only the last lines"),
                .argument("N", .integer(.lines), help: "Number of lines"),
            ]),
        ], summary: "Show the audit log of changes: the last N entries (default 50)"
    ) { .showLog(lines: $0.integer("N")) },
    CommandDeclaration(
        [.keyword("help", help: "List the commands")],
        summary: "List every command with what it does"
    ) { _ in .help },
    CommandDeclaration(
        [.keyword("exit", help: "Leave the shell")],
        summary: "Leave the shell (Ctrl-D on an empty line does the same)"
    ) { _ in .exit },
    CommandDeclaration(
        [
            .keyword("ping", help: "Send ICMP echo requests"), Slot.target,
            .optional([
                .keyword("count", help: "Number of echo requests"),
                .argument("N", .integer(.count), help: "Echo requests to send"),
            ]),
        ], summary: "Run ping(8) to HOST: N echo requests (default 5, at most 1000)"
    ) { .ping($0.host("HOST"), count: $0.integer("N")) },
    CommandDeclaration(
        [.keyword("traceroute", help: "Trace the route to a host"), Slot.target],
        summary: "Run traceroute(8) to HOST: the routers on the path to it"
    ) { .traceroute($0.host("HOST")) },
]

private let networkCommands: [CommandDeclaration] = [
    CommandDeclaration(
        [
            Word.show, Word.network, .keyword("interfaces", help: "All network interfaces"),
        ], summary: "List all interfaces: admin and link state, MTU, MAC, addresses"
    ) { _ in .showNetworkInterfaces },
    CommandDeclaration(
        [Word.show, Word.network, Word.interface, Slot.interface],
        summary: "Show one interface: state, configured addressing and counters"
    ) { .showNetworkInterface($0.text("IF")) },
    CommandDeclaration(
        [
            Word.set, Word.network, Word.interface, Slot.interface,
            .keyword("ip", help: "IPv4 addressing"),
            .keyword("config", help: "How the interface gets its address"),
            .keyword("static", help: "A fixed address"),
            .argument("IP", .ipv4Address, help: "IPv4 address"),
            .argument("NETMASK", .ipv4Netmask, help: "Netmask, e.g. 255.255.255.0"),
        ], summary: "Give IF a fixed IPv4 address and netmask (replaces DHCP)"
    ) {
        .setInterfaceStaticAddress(
            interface: $0.text("IF"), address: $0.ipv4("IP"),
            prefixLength: $0.prefixLength("NETMASK"))
    },
    CommandDeclaration(
        [
            Word.set, Word.network, Word.interface, Slot.interface,
            .keyword("ip", help: "IPv4 addressing"),
            .keyword("config", help: "How the interface gets its address"),
            .keyword("dhcp", help: "An address from a DHCP server"),
        ], summary: "Take IF's IPv4 address from DHCP (its static address is removed)"
    ) { .setInterfaceDHCP(interface: $0.text("IF")) },
    CommandDeclaration(
        [
            Word.set, Word.network, Word.interface, Slot.interface,
            .keyword("mtu", help: "Maximum transmission unit"),
            .argument("N", .integer(.mtu), help: "MTU in bytes"),
        ], summary: "Set IF's MTU in bytes (68–65535)"
    ) { .setInterfaceMTU(interface: $0.text("IF"), mtu: $0.integer("N")!) },
    CommandDeclaration(
        [
            Word.set, Word.network, Word.interface, Slot.interface,
            .choice(
                "STATE",
                [Choice("up", "Bring the link up"), Choice("down", "Take the link down")]),
        ], summary: "Set IF's administrative state: bring it up or take it down"
    ) {
        .setInterfaceLinkState(interface: $0.text("IF"), LinkState(rawValue: $0.keyword("STATE"))!)
    },

    CommandDeclaration(
        [Word.add, Word.network, Word.route, Slot.destination, Slot.gateway],
        summary: "Add a static route to PREFIX via GATEWAY"
    ) { .addRoute(destination: $0.prefix("PREFIX"), gateway: $0.ip("GATEWAY")) },
    CommandDeclaration(
        [Word.add, Word.network, Word.route, Slot.gateway],
        summary: "Add the default route via GATEWAY (IPv4 or IPv6, by its family)"
    ) { .addRoute(destination: nil, gateway: $0.ip("GATEWAY")) },
    CommandDeclaration(
        [Word.remove, Word.network, Word.route, Slot.destination, Slot.gateway],
        summary: "Remove the static route to PREFIX via GATEWAY"
    ) { .removeRoute(destination: $0.prefix("PREFIX"), gateway: $0.ip("GATEWAY")) },
    CommandDeclaration(
        [Word.remove, Word.network, Word.route, Slot.gateway],
        summary: "Remove the default route via GATEWAY"
    ) { .removeRoute(destination: nil, gateway: $0.ip("GATEWAY")) },
    CommandDeclaration(
        [Word.show, Word.network, Word.routes],
        summary: "Show the main routing table; CONFIGURED marks the appliance's routes"
    ) { _ in .showRoutes },
    CommandDeclaration(
        [Word.clear, Word.network, Word.routes],
        summary: "Remove every static route the appliance configured"
    ) { _ in .clearRoutes },

    CommandDeclaration(
        [Word.add, Word.network, Word.dnsServer, Slot.server],
        summary: "Add a DNS resolver to /etc/resolv.conf (at most 3)"
    ) { .addDNSServer($0.ip("IP")) },
    CommandDeclaration(
        [Word.remove, Word.network, Word.dnsServer, Slot.server],
        summary: "Remove a DNS resolver from /etc/resolv.conf"
    ) { .removeDNSServer($0.ip("IP")) },
    CommandDeclaration(
        [Word.show, Word.network, Word.dnsServers], summary: "List the configured DNS resolvers"
    ) { _ in .showDNSServers },
    CommandDeclaration(
        [Word.clear, Word.network, Word.dnsServers], summary: "Remove every configured DNS resolver"
    ) { _ in .clearDNSServers },

    CommandDeclaration(
        [Word.add, Word.network, Word.ntpServer, Slot.ntpHost],
        summary: "Add an NTP server (name or address) for systemd-timesyncd"
    ) { .addNTPServer($0.host("HOST")) },
    CommandDeclaration(
        [Word.remove, Word.network, Word.ntpServer, Slot.ntpHost],
        summary: "Remove an NTP server from systemd-timesyncd's list"
    ) { .removeNTPServer($0.host("HOST")) },
    CommandDeclaration(
        [Word.show, Word.network, Word.ntpServers], summary: "List the configured NTP servers"
    ) { _ in .showNTPServers },

    CommandDeclaration(
        [Word.add, Word.network, Word.searchDomain, Slot.domain],
        summary: "Add a DNS search domain to /etc/resolv.conf (at most 6)"
    ) { .addDNSSearchDomain($0.text("DOMAIN")) },
    CommandDeclaration(
        [Word.remove, Word.network, Word.searchDomain, Slot.domain],
        summary: "Remove a DNS search domain from /etc/resolv.conf"
    ) { .removeDNSSearchDomain($0.text("DOMAIN")) },
    CommandDeclaration(
        [Word.show, Word.network, Word.searchDomains],
        summary: "List the configured DNS search domains"
    ) { _ in
        .showDNSSearchDomains
    },
    CommandDeclaration(
        [Word.clear, Word.network, Word.searchDomains],
        summary: "Remove every configured DNS search domain"
    ) { _ in
        .clearDNSSearchDomains
    },
]

private let gatewayCommands: [CommandDeclaration] = [
    CommandDeclaration(
        [Word.add, Word.logicalSwitch, Slot.switchName, Word.vni, Slot.vni],
        summary: "Create logical switch NAME with VNI N (its tunnel key, 0–16777215)"
    ) { .addLogicalSwitch(name: $0.text("NAME"), vni: $0.integer("N")!) },
    CommandDeclaration(
        [
            Word.remove, Word.logicalSwitch, Slot.switchName,
            .optional([
                .keyword("vni", help: "Remove only if the switch has this VNI"), Slot.vni,
            ]),
        ], summary: "Delete a logical switch with its bindings and MACs (only if VNI is N)"
    ) { .removeLogicalSwitch(name: $0.text("NAME"), vni: $0.integer("N")) },
    CommandDeclaration(
        [
            Word.set, Word.logicalSwitch, Slot.switchName, replication,
            .keyword("multicast", help: "Flood to an IP multicast group"),
            .argument("GROUP", .multicastGroup, help: "Multicast group address"),
        ], summary: "Flood NAME's BUM traffic to multicast GROUP"
    ) { .setReplication(logicalSwitch: $0.text("NAME"), .multicast(group: $0.ip("GROUP"))) },
    CommandDeclaration(
        [
            Word.set, Word.logicalSwitch, Slot.switchName, replication,
            .keyword("head-end", help: "Send a copy to each remote VTEP in a list"),
            .argument("IP,IP...", .ipAddressList, help: "Remote VTEP addresses, comma-separated"),
        ], summary: "Flood NAME's BUM traffic as a copy to each listed VTEP (head-end)"
    ) { .setReplication(logicalSwitch: $0.text("NAME"), .headEnd($0.ipList("IP,IP..."))) },
    CommandDeclaration(
        [
            Word.set, Word.logicalSwitch, Slot.switchName, replication,
            .keyword("service-node", help: "Send one copy to a replicating service node"),
            .argument("IP", .ipAddress, help: "Service node address"),
        ], summary: "Flood NAME's BUM traffic through one replicating service node"
    ) { .setReplication(logicalSwitch: $0.text("NAME"), .serviceNode($0.ip("IP"))) },
    CommandDeclaration(
        [
            Word.set, Word.logicalSwitch, Slot.switchName,
            .keyword("encapsulation", help: "The tunnel encapsulation to remote VTEPs"),
            .choice(
                "ENCAPSULATION",
                [
                    Choice("vxlan", "VXLAN, UDP port 4789 (RFC 7348)"),
                    Choice("gre", "GRE with the VNI in the key (RFC 2784, RFC 2890)"),
                    Choice("nvgre", "NVGRE (RFC 7637)"),
                ]),
        ], summary: "Set NAME's tunnel encapsulation to remote VTEPs: VXLAN, GRE or NVGRE"
    ) { arguments in
        let word = arguments.keyword("ENCAPSULATION")
        return .setEncapsulation(
            logicalSwitch: arguments.text("NAME"),
            Encapsulation.allCases.first { $0.description == word }!)
    },
    CommandDeclaration(
        [
            Word.bind, Word.switchWord, Word.port,
            .argument("PORT", .interfaceName, help: "Port name"), Word.vlan, Slot.vlan,
            Word.logicalSwitch, Slot.switchName,
        ], summary: "Bind VLAN N of PORT (0 = untagged) to a logical switch"
    ) {
        .bindSwitchPort(
            port: $0.text("PORT"), vlan: $0.integer("N")!, logicalSwitch: $0.text("NAME"))
    },
    CommandDeclaration(
        [
            Word.unbind, Word.switchWord, Word.port,
            .argument("PORT", .interfaceName, help: "Port name"), Word.vlan, Slot.vlan,
            Word.logicalSwitch, Slot.switchName,
        ], summary: "Remove the binding of VLAN N of PORT to a logical switch"
    ) {
        .unbindSwitchPort(
            port: $0.text("PORT"), vlan: $0.integer("N")!, logicalSwitch: $0.text("NAME"))
    },
    CommandDeclaration(
        [
            Word.add, Word.switchWord, Word.remoteMAC, remoteMACSwitch, remoteMACAddress,
            remoteVTEP,
        ], summary: "Add a static MAC on LOGICAL-SWITCH behind the remote VTEP at VTEP-IP"
    ) {
        .addRemoteMAC(
            logicalSwitch: $0.text("LOGICAL-SWITCH"), mac: $0.mac("MAC")!, vtep: $0.ip("VTEP-IP"))
    },
    CommandDeclaration(
        [
            Word.remove, Word.switchWord, Word.remoteMAC, remoteMACSwitch, remoteMACAddress,
            remoteVTEP,
        ], summary: "Remove a static remote MAC from LOGICAL-SWITCH"
    ) {
        .removeRemoteMAC(
            logicalSwitch: $0.text("LOGICAL-SWITCH"), mac: $0.mac("MAC")!, vtep: $0.ip("VTEP-IP"))
    },
    CommandDeclaration(
        [
            Word.show, Word.switchWord,
            .keyword("logical-switches", help: "Logical switches with their VNI and replication"),
        ], summary: "List logical switches: VNI, replication, encapsulation, bindings"
    ) { _ in .showLogicalSwitches },
    CommandDeclaration(
        [
            Word.show, Word.switchWord,
            .keyword("mac-table", help: "Local and remote MAC addresses"),
            .optional([
                .keyword("logical-switch", help: "Only this logical switch"),
                .argument("NAME", .name, help: "Logical switch name"),
            ]),
            .optional([
                .keyword("mac", help: "Only this MAC address"),
                .argument("MAC", .mac, help: "MAC address"),
            ]),
        ], summary: "Show local and remote MACs, of one logical switch or MAC if given"
    ) { .showMACTable(logicalSwitch: $0.has("NAME") ? $0.text("NAME") : nil, mac: $0.mac("MAC")) },
    CommandDeclaration(
        [
            Word.show, Word.switchWord, .keyword("tunnels", help: "Remote VTEPs and their tunnels"),
        ], summary: "Show remote VTEPs, the switches that reach them, frames sent/received"
    ) { _ in .showTunnels },
    CommandDeclaration(
        [
            Word.show, Word.switchWord, .keyword("statistics", help: "Frame and drop counters"),
        ], summary: "Show the data plane's frame and drop counters"
    ) { _ in .showStatistics },
]

private let replication = Syntax.keyword(
    "replication", help: "How broadcast and unknown frames reach remote VTEPs")
private let remoteMACSwitch = Syntax.argument(
    "LOGICAL-SWITCH", .name, help: "Logical switch the MAC belongs to")
private let remoteMACAddress = Syntax.argument("MAC", .mac, help: "MAC address")
private let remoteVTEP = Syntax.argument("VTEP-IP", .ipAddress, help: "Remote VTEP address")
