import Appliance
import ControlAPI
import Packet
import Shell

/// What the shell does for a command: ask vtepd, or something of its own (help, the
/// password dialogue, the diagnostics it runs itself).
public enum ShellAction: Hashable, Sendable {
    case control(ControlCommand)
    /// Ask for the new password twice (no echo), then send `set-password`.
    case password(user: UserName)
    case help
    case version
    case exit
    /// Run a diagnostic program with this argument vector (never a shell).
    case diagnostic([String])
}

/// A command the shell cannot send: a value the appliance's types refuse (they are stricter
/// than the parser in places, e.g. a host name's last label may not be all digits).
public struct ShellFailure: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension ShellCommand {
    /// The action for this command.
    public func action() throws(ShellFailure) -> ShellAction {
        func checked<T>(_ body: () throws(ApplianceSettingsError) -> T) throws(ShellFailure) -> T {
            do {
                return try body()
            } catch {
                throw ShellFailure(error.description)
            }
        }
        func name(_ text: String) throws(ShellFailure) -> InterfaceName {
            try checked { () throws(ApplianceSettingsError) in try InterfaceName(text) }
        }
        switch self {
        case .setHostname(let text):
            return .control(
                .setHostname(
                    try checked { () throws(ApplianceSettingsError) in try Hostname(text) }))
        case .showHostname: return .control(.hostname)
        case .setUserPassword(let user):
            return .password(
                user: try checked { () throws(ApplianceSettingsError) in try UserName(user) })
        case .showRunningConfig: return .control(.runningConfig)
        case .showVersion: return .version
        case .showLog(let lines): return .control(.log(lines: lines))
        case .help: return .help
        case .exit: return .exit
        case .showNetworkInterfaces: return .control(.interfaces(nil))
        case .showNetworkInterface(let text): return .control(.interfaces(try name(text)))
        case .setInterfaceStaticAddress(let interface, let address, let length):
            let name = try name(interface)
            return .control(
                .setInterfaceAddress(
                    name,
                    try checked { () throws(ApplianceSettingsError) in
                        try IPv4InterfaceAddress(address: address, prefixLength: length)
                    }))
        case .setInterfaceDHCP(let interface):
            return .control(.setInterfaceDHCP(try name(interface)))
        case .setInterfaceMTU(let interface, let mtu):
            return .control(.setInterfaceMTU(try name(interface), mtu: mtu))
        case .setInterfaceLinkState(let interface, let state):
            return .control(.setInterfaceState(try name(interface), up: state == .up))
        case .addRoute(let destination, let gateway):
            return .control(.addRoute(try route(destination, gateway)))
        case .removeRoute(let destination, let gateway):
            return .control(.removeRoute(try route(destination, gateway)))
        case .showRoutes: return .control(.routes)
        case .clearRoutes: return .control(.clearRoutes)
        case .addDNSServer(let ip): return .control(.addDNSServer(ip))
        case .removeDNSServer(let ip): return .control(.removeDNSServer(ip))
        case .showDNSServers: return .control(.dnsServers)
        case .clearDNSServers: return .control(.clearDNSServers)
        case .addNTPServer(let host):
            return .control(.addNTPServer(try ntp(host)))
        case .removeNTPServer(let host):
            return .control(.removeNTPServer(try ntp(host)))
        case .showNTPServers: return .control(.ntpServers)
        case .addDNSSearchDomain(let text):
            return .control(
                .addSearchDomain(
                    try checked { () throws(ApplianceSettingsError) in try DomainName(text) }))
        case .removeDNSSearchDomain(let text):
            return .control(
                .removeSearchDomain(
                    try checked { () throws(ApplianceSettingsError) in try DomainName(text) }))
        case .showDNSSearchDomains: return .control(.searchDomains)
        case .clearDNSSearchDomains: return .control(.clearSearchDomains)
        case .ping(let host, let count):
            return .diagnostic(Diagnostics.pingArguments(host, count: count))
        case .traceroute(let host): return .diagnostic(Diagnostics.tracerouteArguments(host))
        case .addLogicalSwitch(let name, let vni):
            return .control(.addLogicalSwitch(name: name, vni: vni))
        case .removeLogicalSwitch(let name, let vni):
            return .control(.removeLogicalSwitch(name: name, vni: vni))
        case .setReplication(let name, let replication):
            let setting: ReplicationSetting =
                switch replication {
                case .multicast(let group): .multicast(group)
                case .headEnd(let list): .headEnd(list)
                case .serviceNode(let node): .serviceNode(node)
                }
            return .control(.setReplication(logicalSwitch: name, setting))
        case .setEncapsulation(let name, let encapsulation):
            return .control(.setEncapsulation(logicalSwitch: name, encapsulation))
        case .bindSwitchPort(let port, let vlan, let ls):
            return .control(
                .bindPort(SwitchBinding(port: try name(port), vlan: vlan, logicalSwitch: ls)))
        case .unbindSwitchPort(let port, let vlan, let ls):
            return .control(
                .unbindPort(SwitchBinding(port: try name(port), vlan: vlan, logicalSwitch: ls)))
        case .addRemoteMAC(let ls, let mac, let vtep):
            return .control(.addRemoteMAC(RemoteMAC(logicalSwitch: ls, mac: mac, vtep: vtep)))
        case .removeRemoteMAC(let ls, let mac, let vtep):
            return .control(.removeRemoteMAC(RemoteMAC(logicalSwitch: ls, mac: mac, vtep: vtep)))
        case .showLogicalSwitches: return .control(.logicalSwitches)
        case .showMACTable(let ls, let mac):
            return .control(.macTable(MACTableQuery(logicalSwitch: ls, mac: mac?.description)))
        case .showTunnels: return .control(.tunnels)
        case .showStatistics: return .control(.counters)
        }
    }

    private func route(_ destination: IPPrefix?, _ gateway: IPAddress) throws(ShellFailure)
        -> StaticRoute
    {
        do {
            return try StaticRoute(
                destination: destination?.description, gateway: gateway.description)
        } catch {
            throw ShellFailure(error.description)
        }
    }

    private func ntp(_ host: RemoteHost) throws(ShellFailure) -> NTPServer {
        do {
            return try NTPServer(host.description)
        } catch {
            throw ShellFailure(error.description)
        }
    }
}
