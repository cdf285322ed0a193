import Packet

/// Every command the appliance shell accepts, as a typed value: the parser produces it, the
/// executor switches over it and never sees the command's text.
public enum ShellCommand: Hashable, Sendable {
    // MARK: Appliance
    case setHostname(String)
    case showHostname
    /// `set user admin password`: the shell then asks for the password twice, without echo.
    case setUserPassword(user: String)
    case showRunningConfig
    case showVersion
    /// `show log [lines N]`; nil: the default amount.
    case showLog(lines: Int?)
    case help
    case exit

    // MARK: Network interfaces
    case showNetworkInterfaces
    case showNetworkInterface(String)
    /// `set network interface IF ip config static IP NETMASK`, the netmask as its length.
    case setInterfaceStaticAddress(interface: String, address: IPv4Address, prefixLength: Int)
    case setInterfaceDHCP(interface: String)
    case setInterfaceMTU(interface: String, mtu: Int)
    case setInterfaceLinkState(interface: String, LinkState)

    // MARK: Routes, DNS, NTP
    /// `add network route [PREFIX] GATEWAY`; a nil destination is the default route.
    case addRoute(destination: IPPrefix?, gateway: IPAddress)
    case removeRoute(destination: IPPrefix?, gateway: IPAddress)
    case showRoutes
    case clearRoutes
    case addDNSServer(IPAddress)
    case removeDNSServer(IPAddress)
    case showDNSServers
    case clearDNSServers
    case addNTPServer(RemoteHost)
    case removeNTPServer(RemoteHost)
    case showNTPServers
    case addDNSSearchDomain(String)
    case removeDNSSearchDomain(String)
    case showDNSSearchDomains
    case clearDNSSearchDomains

    // MARK: Diagnostics (run with an argument vector, never a shell)
    /// `ping HOST [count N]`; nil: the default count.
    case ping(RemoteHost, count: Int?)
    case traceroute(RemoteHost)

    // MARK: The gateway (hardware_vtep database, as vtep-ctl writes it)
    case addLogicalSwitch(name: String, vni: Int)
    /// `remove logical-switch NAME [vni N]`: with a VNI, removal happens only if it matches.
    case removeLogicalSwitch(name: String, vni: Int?)
    case setReplication(logicalSwitch: String, Replication)
    case setEncapsulation(logicalSwitch: String, Encapsulation)
    case bindSwitchPort(port: String, vlan: Int, logicalSwitch: String)
    case unbindSwitchPort(port: String, vlan: Int, logicalSwitch: String)
    case addRemoteMAC(logicalSwitch: String, mac: MACAddress, vtep: IPAddress)
    case removeRemoteMAC(logicalSwitch: String, mac: MACAddress, vtep: IPAddress)
    case showLogicalSwitches
    case showMACTable(logicalSwitch: String?, mac: MACAddress?)
    case showTunnels
    case showStatistics
}

public enum LinkState: String, Hashable, Sendable {
    case up
    case down
}

/// How a logical switch floods broadcast, unknown unicast and multicast frames.
public enum Replication: Hashable, Sendable {
    /// One copy to an IP multicast group (RFC 7348 §4.2).
    case multicast(group: IPAddress)
    /// A copy to each listed VTEP.
    case headEnd([IPAddress])
    /// One copy to a service node, which replicates (hardware_vtep `service_node`).
    case serviceNode(IPAddress)
}
