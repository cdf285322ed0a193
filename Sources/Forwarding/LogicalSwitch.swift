import Packet

/// A remote tunnel endpoint as the data plane addresses it: the underlay IP address of a VTEP
/// (or of a multicast group) and the encapsulation spoken to it. hardware_vtep's
/// Physical_Locator (dst_ip, encapsulation_type); GRE, NVGRE and IPv6 come from other_config.
public struct Locator: Hashable, Sendable, CustomStringConvertible {
    public var ip: IPAddress
    public var encapsulation: Encapsulation

    public init(_ ip: IPAddress, _ encapsulation: Encapsulation = .vxlan) {
        self.ip = ip
        self.encapsulation = encapsulation
    }

    public var description: String { "\(ip) (\(encapsulation))" }
}

/// How a logical switch delivers broadcast, unknown-unicast and multicast (BUM) frames to the
/// other VTEPs of its VNI.
public enum Replication: Hashable, Sendable {
    /// One copy to an underlay IP multicast group (RFC 7348 §4.2); the locator's address must
    /// be a multicast address.
    case multicast(Locator)
    /// One unicast copy to each listed VTEP (head-end or ingress replication); an empty list
    /// keeps BUM traffic local.
    case headEnd([Locator])
    /// One copy to a service node, which replicates to the others (hardware_vtep
    /// `replication_mode` "service_node"): of several, to the first whose tunnel is live
    /// (BFD forwarding, or no BFD session toward it), as NSX gateways pick one replicator,
    /// and to the first when none is. Frames a service node relays carry its address, not
    /// the original sender's, so their source MACs are not learned.
    case serviceNode([Locator])
}

/// A logical switch: one layer-2 broadcast domain carried between VTEPs under one VNI.
public struct LogicalSwitch: Hashable, Sendable {
    /// Unique, as in hardware_vtep's Logical_Switch `name`.
    public var name: String
    /// Unique (hardware_vtep `tunnel_key`).
    public var vni: VNI
    public var replication: Replication
    /// Seconds after which a learned MAC that has not been seen is forgotten; 0 = never.
    public var macAgeing: UInt32
    /// Most MAC entries (learned and static) this switch may hold before learning is refused;
    /// nil = bounded only by the gateway's total limit.
    public var macLimit: Int?
    /// Underlay prefixes of the VTEPs allowed to send into this switch (any encapsulation);
    /// nil = no restriction beyond the replication mode's own: a multicast switch accepts any
    /// VTEP on its VNI, since flood-and-learn (RFC 7348 §4.2) discovers its peers from their
    /// traffic, while head-end and service-node switches accept only configured locators.
    public var acceptedSources: [IPPrefix]?
    /// The encapsulation the switch's tunnels speak, sent and accepted: a tunnel packet whose
    /// VNI names this switch but which arrived in another encapsulation is dropped as an
    /// unknown VNI (VNIs stay unique across encapsulations), so a VTEP that is a locator of a
    /// VXLAN and a GRE switch can never send into one through the other. Its locators carry
    /// the same (vtepd: Logical_Switch `other_config:encapsulation`).
    public var encapsulation: Encapsulation
    /// GRE's optional fields on send (RFC 2784 checksum, RFC 2890 sequence number); accepted
    /// on receive whatever this says. Only for `encapsulation == .gre`: NVGRE forbids both
    /// (RFC 7637 §3.2).
    public var greOptions: GREOptions
    /// BUM storm control: broadcast, unknown-unicast and multicast frames beyond this are
    /// dropped (`bumRateLimited`) before replication; nil: no limit.
    public var bumRateLimit: RateLimit?
    /// ARP and ND suppression: ARP requests and neighbour solicitations from access ports
    /// for an address whose MAC is known behind a tunnel are answered here, not flooded.
    public var arpSuppression: Bool

    public init(
        name: String, vni: VNI, replication: Replication = .headEnd([]),
        macAgeing: UInt32 = MACTable.defaultAgeing, macLimit: Int? = nil,
        acceptedSources: [IPPrefix]? = nil, encapsulation: Encapsulation = .vxlan,
        greOptions: GREOptions = GREOptions(), bumRateLimit: RateLimit? = nil,
        arpSuppression: Bool = false
    ) {
        self.name = name
        self.vni = vni
        self.replication = replication
        self.macAgeing = macAgeing
        self.macLimit = macLimit
        self.acceptedSources = acceptedSources
        self.encapsulation = encapsulation
        self.greOptions = greOptions
        self.bumRateLimit = bumRateLimit
        self.arpSuppression = arpSuppression
    }
}

/// A token bucket: `framesPerSecond` on average, up to `burst` frames at once.
public struct RateLimit: Hashable, Sendable, CustomStringConvertible {
    public var framesPerSecond: UInt32
    public var burst: UInt32

    /// `burst` defaults to one second's worth.
    public init(framesPerSecond: UInt32, burst: UInt32? = nil) {
        self.framesPerSecond = framesPerSecond
        self.burst = max(1, burst ?? framesPerSecond)
    }

    public var description: String { "\(framesPerSecond) frames/s, burst \(burst)" }
}

/// What a GRE logical switch adds to the packets it sends.
public struct GREOptions: Hashable, Sendable {
    /// The C bit and a checksum over GRE header and payload (RFC 2784 §2.5).
    public var checksum: Bool
    /// The S bit and a sequence number counted per (VTEP, key) (RFC 2890 §2.2).
    public var sequence: Bool

    public init(checksum: Bool = false, sequence: Bool = false) {
        self.checksum = checksum
        self.sequence = sequence
    }
}

/// hardware_vtep's Physical_Port `vlan_bindings` entry: frames on `port` with VLAN id `vlan`
/// (nil or 0 = untagged and priority-tagged frames) belong to `logicalSwitch`.
public struct Binding: Hashable, Sendable, CustomStringConvertible {
    public var port: String
    public var vlan: UInt16?
    public var logicalSwitch: String

    public init(port: String, vlan: UInt16?, logicalSwitch: String) {
        self.port = port
        self.vlan = vlan == 0 ? nil : vlan
        self.logicalSwitch = logicalSwitch
    }

    public var description: String {
        "port \(port) \(vlanText(vlan)) → logical switch \(logicalSwitch)"
    }
}

func vlanText(_ vlan: UInt16?) -> String {
    if let vlan, vlan != 0 { "VLAN \(vlan)" } else { "untagged" }
}

/// A static remote MAC (hardware_vtep Ucast_Macs_Remote): `mac` in logical switch `logicalSwitch` is behind `locator`.
/// The data plane installs these with `ForwardingEngine.installStatic`.
public struct StaticRemoteMAC: Hashable, Sendable, CustomStringConvertible {
    public var logicalSwitch: String
    public var mac: MACAddress
    public var locator: Locator
    /// The host's IP address (Ucast_Macs_Remote `ipaddr`): what ARP and ND suppression
    /// answers for with `mac`.
    public var ip: IPAddress?

    public init(logicalSwitch: String, mac: MACAddress, locator: Locator, ip: IPAddress? = nil) {
        self.logicalSwitch = logicalSwitch
        self.mac = mac
        self.locator = locator
        self.ip = ip
    }

    public var description: String { "\(mac) in \(logicalSwitch) via \(locator)" }
}
