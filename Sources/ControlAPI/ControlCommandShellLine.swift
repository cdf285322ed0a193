import Appliance

extension ControlCommand {
    /// The command as the shell types it, for the audit log and `show running-config`.
    /// Never contains a password.
    public var shellLine: String {
        func interface(_ name: InterfaceName) -> String { "set network interface \(name)" }
        func route(_ r: StaticRoute) -> String {
            r.isDefault ? "\(r.gateway)" : "\(r.destination) \(r.gateway)"
        }
        switch self {
        case .macTable(let query):
            return "show switch mac-table"
                + (query.logicalSwitch.map { " logical-switch \($0)" } ?? "")
                + (query.mac.map { " mac \($0)" } ?? "")
        case .counters: return "show switch statistics"
        case .configuration: return "show configuration"
        case .setHostname(let name): return "set hostname \(name)"
        case .hostname: return "show hostname"
        case .setPassword(let user, _): return "set user \(user) password"
        case .interfaces(let name):
            return name.map { "show network interface \($0)" } ?? "show network interfaces"
        case .setInterfaceAddress(let name, let address):
            return "\(interface(name)) ip config static \(address.address) \(address.netmask)"
        case .setInterfaceDHCP(let name): return "\(interface(name)) ip config dhcp"
        case .setInterfaceMTU(let name, let mtu): return "\(interface(name)) mtu \(mtu)"
        case .setInterfaceState(let name, let up): return "\(interface(name)) \(up ? "up" : "down")"
        case .addRoute(let r): return "add network route \(route(r))"
        case .removeRoute(let r): return "remove network route \(route(r))"
        case .routes: return "show network routes"
        case .clearRoutes: return "clear network routes"
        case .addDNSServer(let ip): return "add network dns-server \(ip)"
        case .removeDNSServer(let ip): return "remove network dns-server \(ip)"
        case .dnsServers: return "show network dns-servers"
        case .clearDNSServers: return "clear network dns-servers"
        case .addNTPServer(let server): return "add network ntp-server \(server)"
        case .removeNTPServer(let server): return "remove network ntp-server \(server)"
        case .ntpServers: return "show network ntp-servers"
        case .addSearchDomain(let domain): return "add network dns-search-domain \(domain)"
        case .removeSearchDomain(let domain): return "remove network dns-search-domain \(domain)"
        case .searchDomains: return "show network dns-search-domains"
        case .clearSearchDomains: return "clear network dns-search-domains"
        case .runningConfig: return "show running-config"
        case .log(let lines): return "show log" + (lines.map { " lines \($0)" } ?? "")
        case .addLogicalSwitch(let name, let vni): return "add logical-switch \(name) vni \(vni)"
        case .removeLogicalSwitch(let name, let vni):
            return "remove logical-switch \(name)" + (vni.map { " vni \($0)" } ?? "")
        case .setReplication(let name, let setting):
            let addresses = setting.addresses.map(\.description).joined(separator: ",")
            return "set logical-switch \(name) replication \(setting.mode) \(addresses)"
        case .setEncapsulation(let name, let encapsulation):
            return "set logical-switch \(name) encapsulation \(encapsulation)"
        case .bindPort(let b):
            return "bind switch port \(b.port) vlan \(b.vlan) logical-switch \(b.logicalSwitch)"
        case .unbindPort(let b):
            return "unbind switch port \(b.port) vlan \(b.vlan) logical-switch \(b.logicalSwitch)"
        case .addRemoteMAC(let m):
            return "add switch remote-mac \(m.logicalSwitch) \(m.mac) \(m.vtep)"
        case .removeRemoteMAC(let m):
            return "remove switch remote-mac \(m.logicalSwitch) \(m.mac) \(m.vtep)"
        case .logicalSwitches: return "show switch logical-switches"
        case .tunnels: return "show switch tunnels"
        }
    }
}
