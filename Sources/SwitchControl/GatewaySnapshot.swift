import Forwarding
import OVSDB
import Packet
import Routing

/// What the gateway forwards by, read from the hardware_vtep database for one Physical_Switch
/// (ours): the logical switches bound on our ports and only those, our ports, the VLAN
/// bindings, the remote VTEPs (locators) and the static remote MACs.
///
/// Pure and a value: the same database, switch name and local addresses always give an equal
/// snapshot (every list is sorted), so the control plane can skip a snapshot equal to the one
/// the data plane already has. A row that cannot be used is left out and described in
/// `problems`, in words an operator can act on; one bad row never stops the others. The keys
/// read beyond the standard schema are documented in docs/database.md.
public struct GatewaySnapshot: Hashable, Sendable {
    /// A Ucast_Macs_Remote row, as the data plane installs it.
    public typealias RemoteMAC = StaticRemoteMAC

    /// The `other_config` keys of Logical_Switch that vtepd reads (docs/database.md).
    public static let logicalSwitchKeys = [
        "multicast-group", "mac-ageing", "mac-limit", "allowed-sources", "encapsulation",
        "gre-checksum", "gre-sequence", "bum-rate-limit", "bum-burst", "arp-suppression",
    ]

    /// The largest BUM rate limit and burst, in frames (per second): far above any port's rate.
    public static let maximumBUMRate = 100_000_000

    /// What vtep(5) and Open vSwitch's own ovs-vtep assume when `replication_mode` is empty.
    public static let defaultReplicationMode = "service_node"

    /// Our Physical_Switch `name`.
    public var physicalSwitch: String
    /// Our tunnel addresses: the ones given at startup and Physical_Switch `tunnel_ips`.
    /// Never a replication target, peer or remote MAC locator.
    public var localTunnelIPs: [IPAddress]
    /// The logical switches bound on at least one of our ports, sorted by name. Their
    /// `acceptedSources` is `other_config:allowed-sources`.
    public var switches: [LogicalSwitch]
    /// The names of our Physical_Switch's ports, bound or not; sorted.
    public var ports: [String]
    /// Sorted by port, then VLAN (untagged first).
    public var bindings: [Binding]
    /// Every remote VTEP the database names for a bound switch (Ucast_Macs_Remote locators
    /// and `unknown-dst` locator sets), our own addresses left out; sorted.
    public var locators: [Locator]
    /// Sorted by switch, then MAC.
    public var remoteMACs: [RemoteMAC]
    /// The logical routers (every Logical_Router row that can be built), sorted by name.
    /// Each interface's `port` is among `ports`, bound untagged to its logical switch.
    public var routers: [LogicalRouter]
    /// The MTU rule of each router interface, by its data-plane port (`LinkMTU`).
    public var routerMTU: [String: LinkMTU] = [:]
    /// Rows left out or settings ignored, one sentence each; sorted.
    public var problems: [String]
    /// Tunnel `bfd_params` by remote VXLAN VTEP (one of `locators`), for those with a
    /// Tunnel row (vtepd creates one per remote VTEP, as ovs-vtep does).
    public var bfd: [Locator: BFDParameters] = [:]

    public init(
        physicalSwitch: String, localTunnelIPs: [IPAddress] = [], switches: [LogicalSwitch] = [],
        ports: [String] = [], bindings: [Binding] = [], locators: [Locator] = [],
        remoteMACs: [RemoteMAC] = [], routers: [LogicalRouter] = [], problems: [String] = []
    ) {
        self.routers = routers
        self.physicalSwitch = physicalSwitch
        self.localTunnelIPs = localTunnelIPs
        self.switches = switches
        self.ports = ports
        self.bindings = bindings
        self.locators = locators
        self.remoteMACs = remoteMACs
        self.problems = problems
    }

    /// Reads the snapshot for Physical_Switch `physicalSwitch` out of `database`.
    /// `localTunnelIPs` are our VTEP addresses from the command line; they are merged with
    /// the switch's `tunnel_ips`.
    public init(
        database: HardwareVTEP.Database, physicalSwitch: String, localTunnelIPs: [IPAddress]
    ) {
        var reader = SnapshotReader(database: database)
        self = reader.read(physicalSwitch: physicalSwitch, localTunnelIPs: localTunnelIPs)
    }

    /// Compiles the snapshot for the forwarding core, keeping `previous`'s indices. Rows the
    /// core would refuse were already left out, so this throws only for limits of the whole
    /// gateway (more than 65,535 switches, 4,096 ports, 2^24 locators).
    public func configuration(previous: ForwardingConfiguration?) throws(ConfigurationError)
        -> ForwardingConfiguration
    {
        try ForwardingConfiguration(
            switches: switches, ports: ports, bindings: bindings,
            locators: locators, previous: previous)
    }

    /// The remote MACs of one logical switch.
    public func remoteMACs(of logicalSwitch: String) -> [RemoteMAC] {
        remoteMACs.filter { $0.logicalSwitch == logicalSwitch }
    }
}

/// Reads one snapshot; keeps the problems found on the way.
private struct SnapshotReader {
    let database: HardwareVTEP.Database
    var problems: Set<String> = []
    var local: Set<IPAddress> = []
    /// Locator rows already resolved, per encapsulation: one Physical_Locator row (unique
    /// by address) serves every switch that reaches that VTEP, whatever each speaks (nil:
    /// unusable, problem already noted).
    var resolved: [ResolvedLocator: Locator?] = [:]

    struct ResolvedLocator: Hashable {
        var row: UUID
        var encapsulation: Encapsulation
    }

    init(database: HardwareVTEP.Database) {
        self.database = database
    }

    mutating func read(physicalSwitch name: String, localTunnelIPs: [IPAddress])
        -> GatewaySnapshot
    {
        problems.formUnion(database.problems.map(\.description))
        local = Set(localTunnelIPs)
        guard let ps = database.physicalSwitches.values.first(where: { $0.name == name }) else {
            problems.insert(
                "Physical_Switch \(name) is not in the database: vtepd creates it at startup"
                    + " (or: vtep-ctl add-ps \(name)); nothing is forwarded until it exists")
            return finish(GatewaySnapshot(physicalSwitch: name, localTunnelIPs: localTunnelIPs))
        }
        for text in ps.tunnelIPs {
            if let ip = IPAddress(text) {
                local.insert(ip)
            } else {
                problems.insert(
                    "Physical_Switch \(name) tunnel_ips: \"\(text)\" is not an IP address;"
                        + " ignored")
            }
        }

        // Our ports, and which logical switches they bind.
        var portsByName: [String: [HardwareVTEP.PhysicalPort]] = [:]
        for uuid in ps.ports {
            guard let port = database.physicalPorts[uuid] else {
                problems.insert(
                    "Physical_Switch \(name) lists Physical_Port row \(uuid), which is missing")
                continue
            }
            portsByName[port.name, default: []].append(port)
        }
        var ports: [HardwareVTEP.PhysicalPort] = []
        for (portName, rows) in portsByName {
            if rows.count > 1 {
                problems.insert(
                    "Physical_Switch \(name) has \(rows.count) ports named \(portName); none of"
                        + " them is used until the duplicates are removed")
                continue
            }
            do {
                _ = try ForwardingConfiguration(ports: [portName])
            } catch {
                problems.insert(
                    "Physical_Port \(portName) of Physical_Switch \(name) is ignored: \(error)")
                continue
            }
            ports.append(rows[0])
        }
        ports.sort { $0.name < $1.name }

        var uses: [UUID: [(port: String, vlan: UInt16)]] = [:]
        for port in ports {
            for (vlan, ls) in port.vlanBindings.sorted(by: { $0.key < $1.key }) {
                // IEEE 802.1Q Table 9-2: VID 4095 is reserved, never a VLAN.
                guard vlan < 4095 else {
                    problems.insert(
                        "Physical_Port \(port.name) binds VLAN \(vlan), which is reserved"
                            + " (IEEE 802.1Q); binding ignored")
                    continue
                }
                uses[ls, default: []].append((port.name, vlan))
            }
        }

        // Logical routers: each interface's outer veth end is an internal port, bound
        // untagged to the interface's switch (one per switch, whatever its addresses).
        var routers: [LogicalRouter] = []
        for row in database.logicalRouters.values.sorted(by: { $0.name < $1.name }) {
            var bindings: [String: String] = [:]
            var switchRows: [String: UUID] = [:]
            for (address, uuid) in row.switchBinding {
                guard let ls = database.logicalSwitches[uuid] else {
                    problems.insert(
                        "Logical_Router \(row.name) binds \(address) to Logical_Switch row"
                            + " \(uuid), which is missing; the router is not built")
                    bindings = [:]
                    break
                }
                bindings[address] = ls.name
                switchRows[ls.name] = uuid
            }
            guard bindings.count == row.switchBinding.count else { continue }
            do throws(RouterError) {
                let router = try LogicalRouter(
                    name: row.name, bindings: bindings, staticRoutes: row.staticRoutes,
                    otherConfig: row.otherConfig)
                for i in router.links {
                    uses[switchRows[i.logicalSwitch]!, default: []].append((i.port, 0))
                }
                routers.append(router)
            } catch {
                problems.insert("Logical_Router \(row.name) is not built: \(error)")
            }
        }

        // The bound logical switches.
        var switches: [LogicalSwitch] = []
        var peers: [String: [Locator]] = [:]
        for (uuid, boundOn) in uses {
            let places = boundOn.map { "\($0.port) \(vlanText($0.vlan))" }.joined(separator: ", ")
            guard let ls = database.logicalSwitches[uuid] else {
                problems.insert(
                    "\(places) bound to Logical_Switch row \(uuid), which is missing; ignored")
                continue
            }
            do throws(SnapshotProblem) {
                let (bound, itsPeers) = try boundSwitch(ls)
                switches.append(bound)
                peers[bound.name] = itsPeers
            } catch {
                problems.insert(
                    "Logical_Switch \(ls.name) (bound on \(places)) is not forwarded:"
                        + " \(error.reason)")
            }
        }
        // A name must name one switch, as vtep.ovsschema's index on Logical_Switch name makes
        // ovsdb-server ensure; rows that share one would make the whole configuration fail to
        // compile, so, as for a VNI, none of them is forwarded.
        let byName = Dictionary(grouping: switches, by: \.name)
        for (name, group) in byName where group.count > 1 {
            problems.insert(
                "\(group.count) bound Logical_Switch rows are named \(name); none of them is"
                    + " forwarded until the name is unique")
        }
        switches.removeAll { byName[$0.name]?.count != 1 }
        // A VNI must name one switch; which one the operator meant is unknowable, so none.
        let byVNI = Dictionary(grouping: switches, by: \.vni)
        for (vni, group) in byVNI where group.count > 1 {
            let names = group.map(\.name).sorted()
            problems.insert(
                "VNI \(vni) is the tunnel_key of logical switches \(names.joined(separator: " and "))"
                    + "; none of them is forwarded until each has its own")
        }
        switches = switches.filter { byVNI[$0.vni]?.count == 1 }.sorted { $0.name < $1.name }
        // GRE and NVGRE share one header: GRE key V is also NVGRE VSID V >> 8 with FlowID
        // V & 0xFF, so such a pair could not be told apart on the wire.
        let nvgreByVSID = Dictionary(
            grouping: switches.filter { $0.encapsulation == .nvgre }, by: \.vni.rawValue)
        var clashing: Set<String> = []
        for gre in switches where gre.encapsulation == .gre {
            guard let nvgre = nvgreByVSID[gre.vni.rawValue >> 8]?.first else { continue }
            clashing.formUnion([gre.name, nvgre.name])
            problems.insert(
                "GRE logical switch \(gre.name) (key \(gre.vni)) and NVGRE logical switch"
                    + " \(nvgre.name) (VSID \(nvgre.vni), keys \(nvgre.vni.rawValue << 8)–"
                    + "\(nvgre.vni.rawValue << 8 | 0xFF)) share a GRE key; neither is forwarded"
                    + " until one tunnel_key changes")
        }
        switches.removeAll { clashing.contains($0.name) }

        let kept = Set(switches.map(\.name))
        var bindings: [Binding] = []
        for (uuid, boundOn) in uses {
            guard let ls = database.logicalSwitches[uuid], kept.contains(ls.name) else {
                continue
            }
            for use in boundOn {
                bindings.append(Binding(port: use.port, vlan: use.vlan, logicalSwitch: ls.name))
            }
        }
        bindings.sort { ($0.port, $0.vlan ?? 0) < ($1.port, $1.vlan ?? 0) }

        // Router interfaces' MTU: a switch bound to a physical port takes its MTU; one
        // reached only through tunnels, the underlay's less the encapsulation, with an IPv6
        // outer header if any of the switch's remote VTEPs is IPv6 (or, while it has none,
        // if any of our tunnel addresses is).
        var routerMTU: [String: LinkMTU] = [:]
        let physical = Set(ports.map(\.name))
        func isIPv6(_ address: IPAddress) -> Bool {
            if case .v6 = address { true } else { false }
        }
        let ipv6Local = (localTunnelIPs + Array(local)).contains(where: isIPv6)
        let forwardedByName = Dictionary(
            switches.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for router in routers {
            for link in router.links {
                guard let ls = forwardedByName[link.logicalSwitch] else { continue }
                let bound = Set(
                    bindings.filter { $0.logicalSwitch == ls.name && physical.contains($0.port) }
                        .map(\.port)
                ).sorted()
                routerMTU[link.port] =
                    bound.isEmpty
                    ? .underlay(
                        less: LinkMTU.tunnelOverhead(
                            vxlan: ls.encapsulation == .vxlan,
                            greHeader: 8 + (ls.greOptions.checksum ? 4 : 0)
                                + (ls.greOptions.sequence ? 4 : 0),
                            ipv6: (peers[ls.name] ?? []).isEmpty
                                ? ipv6Local : peers[ls.name]!.contains { isIPv6($0.ip) }))
                    : .ports(bound)
            }
        }

        var snapshot = GatewaySnapshot(
            physicalSwitch: name, localTunnelIPs: localTunnelIPs + Array(local),
            switches: switches,
            ports: (ports.map(\.name) + routers.flatMap { $0.links.map(\.port) }).sorted(),
            bindings: bindings,
            locators: Array(Set(switches.flatMap { peers[$0.name] ?? [] })),
            remoteMACs: remoteMACs(of: switches), routers: routers, problems: [])
        snapshot.routerMTU = routerMTU
        var withBFD = snapshot
        withBFD.bfd = bfdParameters(snapshot.locators)
        return finish(withBFD)
    }

    /// The `bfd_params` of the Tunnel rows toward `remotes` (VXLAN only: BFD rides VNI 0).
    func bfdParameters(_ remotes: [Locator]) -> [Locator: BFDParameters] {
        var result: [Locator: BFDParameters] = [:]
        for tunnel in database.tunnels.values.sorted(by: { $0.uuid < $1.uuid }) {
            guard let row = database.physicalLocators[tunnel.remote],
                let ip = IPAddress(row.dstIP)
            else { continue }
            let remote = Locator(ip, .vxlan)
            guard remotes.contains(remote) else { continue }
            result[remote] = BFDParameters(tunnel.bfdParams)
        }
        return result
    }

    /// Sorts what the dictionaries left unordered and attaches the problems.
    func finish(_ snapshot: GatewaySnapshot) -> GatewaySnapshot {
        var snapshot = snapshot
        snapshot.localTunnelIPs = Array(Set(snapshot.localTunnelIPs)).sorted(by: ipOrder)
        snapshot.locators.sort(by: locatorOrder)
        snapshot.problems = problems.sorted()
        return snapshot
    }

    /// The switch as the forwarding core takes it, and the remote VTEPs the database names
    /// for it.
    mutating func boundSwitch(_ ls: HardwareVTEP.LogicalSwitch) throws(SnapshotProblem)
        -> (LogicalSwitch, [Locator])
    {
        guard let key = ls.tunnelKey else {
            throw SnapshotProblem(
                "it has no tunnel_key (VNI); set one: vtep-ctl set Logical_Switch \(ls.name)"
                    + " tunnel_key=VNI")
        }
        let vni: VNI
        do {
            vni = try VNI(validating: key)
        } catch {
            throw SnapshotProblem("tunnel_key: \(error)")
        }

        // other_config. A value that cannot be read leaves the switch out rather than falling
        // back to a default: a dropped allowed-sources would silently open the switch.
        let config = ls.otherConfig
        for key in config.keys.sorted() where !GatewaySnapshot.logicalSwitchKeys.contains(key) {
            problems.insert(
                "Logical_Switch \(ls.name) other_config:\(key) is not a key vtepd reads (it reads"
                    + " \(GatewaySnapshot.logicalSwitchKeys.joined(separator: ", "))); ignored")
        }
        var macAgeing = MACTable.defaultAgeing
        if let text = config["mac-ageing"] {
            guard let seconds = UInt32(text) else {
                throw SnapshotProblem(
                    "other_config:mac-ageing=\"\(text)\" is not a number of seconds (0 = never,"
                        + " at most 4294967295)")
            }
            macAgeing = seconds
        }
        var macLimit: Int?
        if let text = config["mac-limit"] {
            guard let limit = Int(text), limit >= 0 else {
                throw SnapshotProblem(
                    "other_config:mac-limit=\"\(text)\" is not a number of MAC entries (0 or more)")
            }
            macLimit = limit
        }
        var bumRateLimit: RateLimit?
        if let text = config["bum-rate-limit"] {
            guard let rate = Int(text), (1...GatewaySnapshot.maximumBUMRate).contains(rate) else {
                throw SnapshotProblem(
                    "other_config:bum-rate-limit=\"\(text)\" is not a number of frames per second"
                        + " (1–\(GatewaySnapshot.maximumBUMRate); remove the key for no limit)")
            }
            var burst: UInt32?
            if let text = config["bum-burst"] {
                guard let value = Int(text), (1...GatewaySnapshot.maximumBUMRate).contains(value)
                else {
                    throw SnapshotProblem(
                        "other_config:bum-burst=\"\(text)\" is not a number of frames"
                            + " (1–\(GatewaySnapshot.maximumBUMRate))")
                }
                burst = UInt32(value)
            }
            bumRateLimit = RateLimit(framesPerSecond: UInt32(rate), burst: burst)
        } else if config["bum-burst"] != nil {
            problems.insert(
                "Logical_Switch \(ls.name) other_config:bum-burst without bum-rate-limit; ignored")
        }
        var allowedSources: [IPPrefix]?
        if let text = config["allowed-sources"] {
            var prefixes: [IPPrefix] = []
            for item in text.split(separator: ",", omittingEmptySubsequences: false) {
                let trimmed = item.trimmingSpaces
                guard let prefix = IPPrefix(trimmed) else {
                    throw SnapshotProblem(
                        "other_config:allowed-sources: \"\(trimmed)\" is not an address or prefix"
                            + " (write 192.0.2.0/24, 2001:db8::/32 or 192.0.2.7, comma-separated;"
                            + " remove the key to accept every VTEP)")
                }
                prefixes.append(prefix)
            }
            allowedSources = prefixes
        }
        let encapsulation: Encapsulation
        switch config["encapsulation"] {
        case nil: encapsulation = .vxlan
        case let text?:
            guard let known = Self.encapsulation(named: text) else {
                throw SnapshotProblem(
                    "other_config:encapsulation=\"\(text)\" is not an encapsulation vtepd speaks"
                        + " (vxlan, gre or nvgre; remove the key for vxlan)")
            }
            encapsulation = known
        }
        var arpSuppression = false
        if let text = config["arp-suppression"] {
            guard let on = Bool(text) else {
                throw SnapshotProblem(
                    "other_config:arp-suppression=\"\(text)\" is neither true nor false")
            }
            arpSuppression = on
        }
        var greOptions = GREOptions()
        for (key, path) in [("gre-checksum", \GREOptions.checksum), ("gre-sequence", \.sequence)] {
            guard let text = config[key] else { continue }
            guard let on = Bool(text) else {
                throw SnapshotProblem("other_config:\(key)=\"\(text)\" is neither true nor false")
            }
            guard encapsulation == .gre else {
                problems.insert(
                    "Logical_Switch \(ls.name) other_config:\(key) applies to encapsulation=gre"
                        + " only (VXLAN has no such field; NVGRE forbids it, RFC 7637 §3.2);"
                        + " ignored")
                continue
            }
            greOptions[keyPath: path] = on
        }
        var group: IPAddress?
        if let text = config["multicast-group"] {
            guard let ip = IPAddress(text), ip.isMulticast else {
                throw SnapshotProblem(
                    "other_config:multicast-group=\"\(text)\" is not a multicast address"
                        + " (224.0.0.0/4 or ff00::/8)")
            }
            group = ip
            // The raw GRE sockets join no groups (only the VXLAN UDP sockets do), so the
            // flooded copies of other VTEPs would never arrive.
            guard encapsulation == .vxlan else {
                throw SnapshotProblem(
                    "other_config:multicast-group is for VXLAN switches only; a \(encapsulation)"
                        + " switch replicates with replication_mode (source_node or service_node)")
            }
        }

        // The switch's remote VTEPs.
        let unknownDestination = unknownDestinationLocators(of: ls)
        var peers = Set(unknownDestination)
        for mac in database.ucastMacsRemote.values where mac.logicalSwitch == ls.uuid {
            if let locator = locator(mac.locator, for: ls), !local.contains(locator.ip) {
                peers.insert(locator)
            }
        }

        let replication: Replication
        if let group {
            replication = .multicast(Locator(group, encapsulation))
        } else {
            let mode = ls.replicationMode ?? GatewaySnapshot.defaultReplicationMode
            switch mode {
            case "service_node":
                guard !unknownDestination.isEmpty else {
                    problems.insert(
                        "Logical_Switch \(ls.name) replicates through a service node, but has no"
                            + " unknown-dst locator: broadcast and unknown frames stay local"
                            + " (vtep-ctl add-mcast-remote \(ls.name) unknown-dst IP)")
                    replication = .headEnd([])
                    break
                }
                // Several: BUM goes to the first live one (BFD), lowest address first.
                replication = .serviceNode(unknownDestination)
            case "source_node":
                replication = .headEnd(unknownDestination)
            default:
                throw SnapshotProblem(
                    "replication_mode \"\(mode)\" is neither service_node nor source_node")
            }
        }

        let bound = LogicalSwitch(
            name: ls.name, vni: vni, replication: replication, macAgeing: macAgeing,
            macLimit: macLimit, acceptedSources: allowedSources, encapsulation: encapsulation,
            greOptions: greOptions, bumRateLimit: bumRateLimit,
            arpSuppression: arpSuppression)
        // What the forwarding core would refuse in this switch alone (its name, say) is
        // refused here, so that compiling the whole snapshot cannot fail on one row.
        do {
            _ = try ForwardingConfiguration(switches: [bound], locators: Array(peers))
        } catch {
            throw SnapshotProblem("\(error)")
        }
        return (bound, Array(peers))
    }

    /// The usable locators of the switch's Mcast_Macs_Remote `unknown-dst` rows, ours left
    /// out, sorted by address.
    mutating func unknownDestinationLocators(of ls: HardwareVTEP.LogicalSwitch) -> [Locator] {
        var locators: Set<Locator> = []
        let rows = database.mcastMacsRemote.values.filter { $0.logicalSwitch == ls.uuid }
        for row in rows.sorted(by: { $0.uuid < $1.uuid }) {
            guard row.mac == "unknown-dst" else {
                problems.insert(
                    "Logical_Switch \(ls.name) Mcast_Macs_Remote \(row.mac): per-group"
                        + " replication is not supported; those frames are flooded as"
                        + " unknown-dst")
                continue
            }
            guard let set = database.physicalLocatorSets[row.locatorSet] else {
                problems.insert(
                    "Logical_Switch \(ls.name) unknown-dst refers to Physical_Locator_Set row"
                        + " \(row.locatorSet), which is missing; ignored")
                continue
            }
            for uuid in set.locators {
                if let l = locator(uuid, for: ls), !local.contains(l.ip) { locators.insert(l) }
            }
        }
        return locators.sorted(by: locatorOrder)
    }

    /// The locator a Physical_Locator row names for switch `ls`, or nil (problem noted).
    mutating func locator(_ uuid: UUID, for ls: HardwareVTEP.LogicalSwitch) -> Locator? {
        let key = ResolvedLocator(row: uuid, encapsulation: encapsulation(of: ls))
        if let known = resolved[key] { return known }
        var result: Locator?
        defer { resolved[key] = result }
        guard let row = database.physicalLocators[uuid] else {
            problems.insert(
                "Logical_Switch \(ls.name) refers to Physical_Locator row \(uuid), which is"
                    + " missing; ignored")
            return nil
        }
        guard row.encapsulationType == "vxlan_over_ipv4" else {
            problems.insert(
                "Physical_Locator \(row.dstIP) has encapsulation_type"
                    + " \"\(row.encapsulationType)\", which vtepd does not speak (only"
                    + " vxlan_over_ipv4); ignored")
            return nil
        }
        // hardware_vtep has no vxlan_over_ipv6: an IPv6 dst_ip with vxlan_over_ipv4 means
        // VXLAN over IPv6 (docs/database.md).
        guard let ip = IPAddress(row.dstIP) else {
            problems.insert(
                "Physical_Locator dst_ip \"\(row.dstIP)\" is not an IP address; ignored")
            return nil
        }
        let candidate = Locator(ip, encapsulation(of: ls))
        do {
            _ = try ForwardingConfiguration(locators: [candidate])
        } catch {
            problems.insert("Physical_Locator \(row.dstIP) is ignored: \(error)")
            return nil
        }
        result = candidate
        return candidate
    }

    /// The encapsulation spoken to a switch's locators: Logical_Switch
    /// `other_config:encapsulation`, VXLAN without it. It is the switch's, not the locator
    /// row's: hardware_vtep's only encapsulation_type is vxlan_over_ipv4, and one
    /// Physical_Locator row (unique by address) is shared by every switch that reaches that
    /// VTEP. A value `boundSwitch` refuses never gets here (the switch is left out first).
    func encapsulation(of ls: HardwareVTEP.LogicalSwitch) -> Encapsulation {
        guard let text = ls.otherConfig["encapsulation"] else { return .vxlan }
        return Self.encapsulation(named: text) ?? .vxlan
    }

    /// `vxlan`, `gre` or `nvgre`, as docs/database.md spells them.
    static func encapsulation(named text: String) -> Encapsulation? {
        Encapsulation.allCases.first { $0.description == text }
    }

    mutating func remoteMACs(of switches: [LogicalSwitch])
        -> [GatewaySnapshot.RemoteMAC]
    {
        let names = Set(switches.map(\.name))
        var entries: [String: [MACAddress: Set<Locator>]] = [:]
        var addresses: [String: [MACAddress: IPAddress]] = [:]
        let rows = database.ucastMacsRemote.values.sorted { $0.uuid < $1.uuid }
        for row in rows {
            guard let ls = database.logicalSwitches[row.logicalSwitch], names.contains(ls.name)
            else { continue }
            guard let mac = MACAddress(row.mac) else {
                problems.insert(
                    "Ucast_Macs_Remote \"\(row.mac)\" in logical switch \(ls.name) is not a MAC"
                        + " address; ignored")
                continue
            }
            guard !mac.isMulticast, !mac.isZero else {
                problems.insert(
                    "Ucast_Macs_Remote \(mac) in logical switch \(ls.name) is not a unicast"
                        + " address; ignored (multicast MACs belong in Mcast_Macs_Remote)")
                continue
            }
            guard let locator = locator(row.locator, for: ls) else { continue }
            guard !local.contains(locator.ip) else {
                problems.insert(
                    "Ucast_Macs_Remote \(mac) in logical switch \(ls.name) points at \(locator.ip),"
                        + " which is this gateway's own tunnel address; ignored")
                continue
            }
            entries[ls.name, default: [:]][mac, default: []].insert(locator)
            guard !row.ipaddr.isEmpty else { continue }
            if let ip = IPAddress(row.ipaddr), !ip.isMulticast {
                addresses[ls.name, default: [:]][mac] = ip
            } else {
                problems.insert(
                    "Ucast_Macs_Remote \(mac) in logical switch \(ls.name): ipaddr \"\(row.ipaddr)\""
                        + " is not a unicast IP address; the MAC is installed, ARP and ND"
                        + " suppression does not answer for it")
            }
        }
        var result: [GatewaySnapshot.RemoteMAC] = []
        for (ls, macs) in entries {
            for (mac, locators) in macs {
                guard locators.count == 1, let locator = locators.first else {
                    let list = locators.sorted(by: locatorOrder).map { "\($0.ip)" }
                    problems.insert(
                        "Ucast_Macs_Remote \(mac) in logical switch \(ls) is behind"
                            + " \(list.joined(separator: " and ")) at once; ignored until one"
                            + " row is removed")
                    continue
                }
                result.append(
                    .init(
                        logicalSwitch: ls, mac: mac, locator: locator, ip: addresses[ls]?[mac]))
            }
        }
        return result.sorted { ($0.logicalSwitch, $0.mac) < ($1.logicalSwitch, $1.mac) }
    }
}

/// Why a row was left out; the reader prefixes the row's name.
private struct SnapshotProblem: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

extension IPAddress {
    /// IPv4 before IPv6, then by address.
    fileprivate var order: (UInt8, UInt64, UInt64) {
        switch self {
        case .v4(let a): (4, 0, UInt64(a.rawValue))
        case .v6(let a): (6, a.high, a.low)
        }
    }
}

private func ipOrder(_ a: IPAddress, _ b: IPAddress) -> Bool { a.order < b.order }

private func locatorOrder(_ a: Locator, _ b: Locator) -> Bool {
    (a.ip.order.0, a.ip.order.1, a.ip.order.2, a.encapsulation.rawValue)
        < (b.ip.order.0, b.ip.order.1, b.ip.order.2, b.encapsulation.rawValue)
}

private func vlanText(_ vlan: UInt16) -> String { vlan == 0 ? "untagged" : "VLAN \(vlan)" }

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
