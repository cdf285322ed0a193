import Foundation

/// The address family VTEPs of a topology tunnel over. Every underlay port has both an IPv4
/// and an IPv6 address; the family picks which one is the tunnel IP.
enum LabUnderlayFamily: Sendable {
    case ipv4
    case ipv6

    /// Inner MTU of the hosts: 1500 less the VXLAN overhead over this family's underlay
    /// (RFC 7348 §4.3: outer Ethernet is not counted; IPv4 20 + UDP 8 + VXLAN 8 + inner
    /// Ethernet 14 = 50 bytes; IPv6 40 + 8 + 8 + 14 = 70 bytes).
    var innerMTU: Int { self == .ipv4 ? 1450 : 1430 }
}

/// Whether a topology's veths keep the offloads Linux gives them.
enum LabOffloads: Sendable, Equatable {
    /// Every veth keeps its defaults (transmit checksum offload, TSO, GSO and GRO on), as
    /// users keep them on their NICs: hosts hand their gateway GRO/TSO super-frames with
    /// checksums left to finish, and receive what the gateway merged.
    case on
    /// Transmit checksum offload, TSO, GSO and GRO off on every veth of the topology (host,
    /// access, underlay and the switch's ports): a lab standing for NICs without offloads,
    /// where every frame is a plain frame with a real checksum.
    case off
}

/// What sits in a site's gateway namespace between its host and the underlay.
enum LabSiteKind: Sendable, Equatable {
    /// The Linux kernel's vxlan device `vxlan0` (UDP port 4789, learning on) and a bridge
    /// `br0` joining it to the access veth. With `group`, BUM traffic goes to that IP
    /// multicast group on the underlay; without, it goes to the `00:00:00:00:00:00` entries
    /// of `vxlan0` (head-end replication).
    case kernel(vni: Int, group: String? = nil)
    /// Nothing yet: an access veth to the host and an underlay veth with the tunnel IP, for
    /// vtepd (`Lab.startVTEPD`).
    case gateway
}

/// One site: a host namespace behind a gateway namespace, whose underlay port hangs off the
/// underlay switch.
struct LabSite: Sendable {
    let index: Int
    let kind: LabSiteKind
    let family: LabUnderlayFamily
    /// The gateway namespace (kernel VTEP or vtepd).
    let namespace: String
    let hostNamespace: String
    /// In `namespace`: the underlay veth, holding `underlayIPv4` and `underlayIPv6`.
    let underlayInterface: String
    /// In `namespace`: the access veth towards the host.
    let accessInterface: String
    /// In `hostNamespace`: the host's veth.
    let hostInterface: String
    let underlayIPv4: String
    let underlayIPv6: String
    let hostIPv4: String
    /// Fixed per site, so tests can name what each VTEP must learn.
    let hostMAC: String

    /// The local VTEP IP in the topology's family.
    var tunnelIP: String { family == .ipv4 ? underlayIPv4 : underlayIPv6 }
}

/// An underlay "switch" (a Linux bridge in its own namespace) joining the sites' underlay
/// ports, with a kernel VTEP or a vtepd slot at each site.
struct LabTopology: Sendable {
    let family: LabUnderlayFamily
    let offloads: LabOffloads
    let switchNamespace: String
    /// In `switchNamespace`, the bridge port of each site, indexed like `sites`.
    let switchPorts: [String]
    let sites: [LabSite]
}

extension Lab {
    /// Builds the underlay switch and one site per element of `kinds` (at most 9).
    ///
    /// Addresses: site i has underlay 192.0.2.i/24 and 2001:db8::i/64 (documentation ranges,
    /// RFC 5737 and RFC 3849), host 10.0.0.i/24 with MAC 02:00:0a:00:00:0i. The switch's
    /// bridge floods multicast to every port (snooping off), like a switch without IGMP
    /// snooping, so multicast-group tests do not depend on report timing.
    ///
    /// Offloads stay on unless `offloads` is `.off` (see `LabOffloads`).
    func topology(
        _ kinds: [LabSiteKind], family: LabUnderlayFamily = .ipv4, offloads: LabOffloads = .on
    ) throws -> LabTopology {
        guard (1...9).contains(kinds.count) else {
            throw LabError(description: "a lab topology has 1 to 9 sites, not \(kinds.count)")
        }
        let switchNamespace = try namespace("sw", ipv6: false)
        try execute(
            [
                "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0",
                "stp_state", "0",
            ], in: switchNamespace)
        try execute(["ip", "link", "set", "br0", "up"], in: switchNamespace)
        var sites: [LabSite] = []
        var switchPorts: [String] = []
        for (offset, kind) in kinds.enumerated() {
            let i = offset + 1
            let gateway = try namespace("g\(i)")
            // Hosts speak IPv4 only: their IPv6 chatter would be flooded through the tunnels.
            let host = try namespace("h\(i)", ipv6: false)
            let (underlay, switchPort) = try veth(
                "u\(i)", in: gateway, "w\(i)", in: switchNamespace)
            try execute(["ip", "link", "set", switchPort, "master", "br0"], in: switchNamespace)
            try apply(offloads, to: underlay, in: gateway)
            try apply(offloads, to: switchPort, in: switchNamespace)
            let site = LabSite(
                index: i, kind: kind, family: family, namespace: gateway, hostNamespace: host,
                underlayInterface: underlay, accessInterface: prefix + "a\(i)",
                hostInterface: prefix + "e\(i)", underlayIPv4: "192.0.2.\(i)",
                underlayIPv6: "2001:db8::\(i)", hostIPv4: "10.0.0.\(i)",
                hostMAC: "02:00:0a:00:00:0\(i)")
            try execute(
                ["ip", "addr", "add", "\(site.underlayIPv4)/24", "dev", underlay], in: gateway)
            try execute(
                ["ip", "addr", "add", "\(site.underlayIPv6)/64", "dev", underlay, "nodad"],
                in: gateway)
            try veth(
                "e\(i)", in: host, "a\(i)", in: gateway, mtu: family.innerMTU, up: false)
            // Link-local addresses on the access side would make the site itself send
            // router solicitations and MLD reports into the overlay; set before the link
            // comes up, when the kernel would make one.
            try execute(
                ["ip", "link", "set", site.accessInterface, "addrgenmode", "none"], in: gateway)
            try execute(["ip", "link", "set", site.accessInterface, "up"], in: gateway)
            try execute(["ip", "link", "set", site.hostInterface, "up"], in: host)
            try execute(
                ["ip", "link", "set", site.hostInterface, "address", site.hostMAC], in: host)
            try execute(
                ["ip", "addr", "add", "\(site.hostIPv4)/24", "dev", site.hostInterface], in: host)
            try apply(offloads, to: site.hostInterface, in: host)
            try apply(offloads, to: site.accessInterface, in: gateway)
            if case .kernel(let vni, let group) = kind {
                try kernelVTEP(site, vni: vni, group: group)
            }
            sites.append(site)
            switchPorts.append(switchPort)
        }
        let topology = LabTopology(
            family: family, offloads: offloads, switchNamespace: switchNamespace,
            switchPorts: switchPorts, sites: sites)
        try warmUnderlay(topology)
        return topology
    }

    /// Turns `interface`'s offloads off when `offloads` is `.off`; leaves them as Linux set
    /// them when `.on`. For links a test adds to a topology, so they match its other veths.
    func apply(_ offloads: LabOffloads, to interface: String, in namespace: String) throws {
        if offloads == .off { try plainFrames(interface, in: namespace) }
    }

    /// `vxlan0` (with `dstport 4789` given explicitly: the kernel's default is the pre-IANA
    /// 8472) and `br0` in the site's gateway namespace.
    private func kernelVTEP(_ site: LabSite, vni: Int, group: String?) throws {
        var vxlan = [
            "ip", "link", "add", "vxlan0", "type", "vxlan", "id", "\(vni)", "local", site.tunnelIP,
            "dstport", "4789", "dev", site.underlayInterface, "learning",
        ]
        if let group { vxlan += ["group", group] }
        let ns = site.namespace
        try execute(vxlan, in: ns)
        try execute(["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0"], in: ns)
        for link in ["vxlan0", "br0"] {
            try execute(["ip", "link", "set", link, "addrgenmode", "none"], in: ns)
        }
        try execute(["ip", "link", "set", "vxlan0", "master", "br0"], in: ns)
        try execute(["ip", "link", "set", site.accessInterface, "master", "br0"], in: ns)
        try execute(["ip", "link", "set", "vxlan0", "up"], in: ns)
        try execute(["ip", "link", "set", "br0", "up"], in: ns)
    }

    /// Every site pings every other site's tunnel IP once, so underlay neighbours are resolved
    /// and the switch has learned every port's MAC before a test counts frames: a VXLAN frame
    /// to one VTEP then reaches that VTEP's port only, never a flood.
    func warmUnderlay(_ topology: LabTopology) throws {
        for site in topology.sites {
            for other in topology.sites where other.index != site.index {
                let result = try ping(
                    from: site.namespace, to: other.tunnelIP, count: 1, reply: .seconds(5))
                guard result.received == 1 else {
                    throw LabError(
                        description: "underlay: site \(site.index) cannot reach \(other.tunnelIP)")
                }
            }
        }
    }

    /// Sends broadcast, unknown-unicast and multicast frames of `site`'s kernel VTEP also to
    /// each of `remotes` (head-end replication): one `bridge fdb append 00:00:00:00:00:00
    /// dst IP` per remote. For a vtepd site, the same in hardware_vtep terms: the logical
    /// switch's `replication_mode=source_node` (head-end; the schema's default, service_node,
    /// relays through one remote and learns nothing from it) and one `vtep-ctl
    /// add-mcast-remote LS unknown-dst IP` per remote.
    func replicate(from site: LabSite, to remotes: [LabSite], vtepd: LabVTEPD? = nil) throws {
        switch site.kind {
        case .kernel:
            for remote in remotes {
                try execute(
                    [
                        "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0", "dst",
                        remote.tunnelIP,
                    ], in: site.namespace)
            }
        case .gateway:
            guard let vtepd else {
                throw LabError(description: "site \(site.index) is a vtepd slot; pass its LabVTEPD")
            }
            try vtepd.control([
                "set", "Logical_Switch", vtepd.logicalSwitch, "replication_mode=source_node",
            ])
            for remote in remotes {
                try vtepd.control([
                    "add-mcast-remote", vtepd.logicalSwitch, "unknown-dst", remote.tunnelIP,
                ])
            }
        }
    }
}
