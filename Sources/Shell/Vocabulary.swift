import Packet

// The words and argument slots the appliance's commands share, declared once so that `?`
// shows one help text for each. The commands themselves are declared with what they do:
// vtepd's in ControlAPI (`ControlCommands`), the shell's own in ShellSession. Names follow the
// NSX/NVP appliances where they have the command (`set hostname`, `show network interfaces`,
// `set network interface eth0 ip config static …`, `show switch mac-table`).

public enum Word {
    public static let add = Syntax.keyword("add", help: "Add a setting or an entry")
    public static let remove = Syntax.keyword("remove", help: "Remove a setting or an entry")
    public static let set = Syntax.keyword("set", help: "Change a setting")
    public static let show = Syntax.keyword("show", help: "Show configuration and state")
    public static let clear = Syntax.keyword(
        "clear", help: "Remove all entries of a list, or stop managing a setting")
    public static let bind = Syntax.keyword("bind", help: "Bind a port's VLAN to a logical switch")
    public static let unbind = Syntax.keyword("unbind", help: "Remove a port's VLAN binding")
    public static let network = Syntax.keyword(
        "network", help: "Host networking: interfaces, routes, DNS, NTP")
    public static let interface = Syntax.keyword("interface", help: "One network interface")
    public static let route = Syntax.keyword("route", help: "A static IP route")
    public static let routes = Syntax.keyword("routes", help: "The IP routes")
    public static let dnsServer = Syntax.keyword("dns-server", help: "A DNS resolver")
    public static let dnsServers = Syntax.keyword("dns-servers", help: "The DNS resolvers")
    public static let ntpServer = Syntax.keyword("ntp-server", help: "An NTP time server")
    public static let ntpServers = Syntax.keyword("ntp-servers", help: "The NTP time servers")
    public static let searchDomain = Syntax.keyword(
        "dns-search-domain", help: "A DNS search domain")
    public static let searchDomains = Syntax.keyword(
        "dns-search-domains", help: "The DNS search domains")
    public static let hostname = Syntax.keyword("hostname", help: "The appliance's host name")
    public static let logicalSwitch = Syntax.keyword(
        "logical-switch", help: "A logical switch (an overlay network, one VNI)")
    public static let switchWord = Syntax.keyword("switch", help: "The VTEP gateway")
    public static let vni = Syntax.keyword("vni", help: "The virtual network identifier")
    public static let vlan = Syntax.keyword("vlan", help: "An 802.1Q VLAN on the port")
    public static let port = Syntax.keyword("port", help: "A physical port of the gateway")
    public static let remoteMAC = Syntax.keyword(
        "remote-mac", help: "A static MAC address behind a remote VTEP")
    public static let certificate = Syntax.keyword(
        "certificate", help: "The switch's SSL certificate for its controllers")
    public static let managerCluster = Syntax.keyword(
        "manager-cluster", help: "The controllers the switch connects to over SSL")
}

public enum Slot {
    public static let interface = Syntax.argument("IF", .interfaceName, help: "Interface name")
    public static let switchName = Syntax.argument("NAME", .name, help: "Logical switch name")
    public static let vni = Syntax.argument("N", .integer(.vni), help: "VXLAN network identifier")
    public static let vlan = Syntax.argument("N", .integer(.vlan), help: "VLAN ID, 0 for untagged")
    public static let gateway = Syntax.argument(
        "GATEWAY", .ipAddress, help: "Next-hop router address")
    public static let destination = Syntax.argument(
        "PREFIX", .prefix, help: "Destination network, ADDRESS/LENGTH")
    public static let server = Syntax.argument(
        "IP", .ipAddress, help: "Server address, IPv4 or IPv6")
    public static let ntpHost = Syntax.argument("HOST", .host, help: "Server name or address")
    public static let domain = Syntax.argument("DOMAIN", .domain, help: "Domain name")
    public static let target = Syntax.argument(
        "HOST", .host, help: "Host name or IP address to reach")
}

extension Word {
    public static let replication = Syntax.keyword(
        "replication", help: "How broadcast and unknown frames reach remote VTEPs")
}

extension Slot {
    public static let remoteMACSwitch = Syntax.argument(
        "LOGICAL-SWITCH", .name, help: "Logical switch the MAC belongs to")
    public static let remoteMACAddress = Syntax.argument("MAC", .mac, help: "MAC address")
    public static let remoteVTEP = Syntax.argument(
        "VTEP-IP", .ipAddress, help: "Remote VTEP address")
    public static let port = Syntax.argument("PORT", .interfaceName, help: "Port name")
}
