import Packet

/// Where a frame entered the gateway.
@frozen
public enum Ingress: Hashable, Sendable {
    /// From an access port; the VLAN comes from the frame's own tag (none or VID 0 = untagged).
    case access(PortIndex)
    /// Decapsulated from a tunnel: the outer source address, the encapsulation it arrived in,
    /// and the VNI (VXLAN VNI, NVGRE VSID or GRE key) from the tunnel header.
    case tunnel(source: IPAddress, encapsulation: Encapsulation, vni: VNI)
}

/// What to do with one frame.
@frozen
public enum Decision: Hashable, Sendable {
    /// Drop it; counted under `reason` (and, for `.malformed`, under the `Malformed` detail).
    case drop(DropReason, malformed: Malformed? = nil)
    /// Send it out of an access port, tagged with `vlan` (nil = untagged): the frame's own tag,
    /// if any, is replaced.
    case output(port: PortIndex, vlan: UInt16?)
    /// Send it, untagged, encapsulated with `vni` to one locator.
    case encapsulate(locator: LocatorIndex, vni: VNI)
    /// Send a copy to every member of the switch's `FloodList` except `excluding` (the ingress
    /// attachment, if the frame came from one), and, if `includeReplication`, an encapsulated
    /// copy with `vni` to each of its replication targets. Never set for frames from a tunnel
    /// (split horizon).
    case flood(
        switch: SwitchIndex, vni: VNI, excluding: AttachmentCircuit?, includeReplication: Bool)
    /// ARP and ND suppression: the frame is an ARP request or neighbour solicitation for an
    /// address that `mac` has; answer it on `mac`'s behalf
    /// (`NeighbourDiscovery.reply(to:header:answering:into:)`) out of access port `port`,
    /// tagged with `vlan` (where it came from), and send nothing else.
    case reply(port: PortIndex, vlan: UInt16?, mac: MACAddress)
}

/// Why a frame was dropped: the forwarding core's reasons, then the data plane worker's
/// (around the decision: receiving, sending, encapsulating), so every drop anywhere is
/// counted under one of these. Dense from 0 so counters are a flat array indexed by
/// `rawValue`; add new cases at the end.
public enum DropReason: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// The Ethernet header did not parse; `Decision.drop`'s `malformed` says why.
    case malformed
    /// No logical switch is bound to the ingress port and VLAN (this includes untagged frames
    /// on a port that has no untagged binding, and VID 4095).
    case noBinding
    /// A double-tagged frame on an access port. Bindings name one VLAN id (hardware_vtep
    /// `vlan_bindings`), so the gateway does not guess whether the inner or outer tag selects
    /// the switch.
    case qinqOnAccessPort
    /// The tunnel's outer source address and encapsulation are not a configured locator.
    case unknownSourceVTEP
    /// The tunnel header's VNI is not carried by any logical switch here.
    case unknownVNI
    /// The source VTEP is configured but not among the switch's accepted sources.
    case sourceVTEPNotAccepted
    /// A decapsulated inner frame carries a VLAN tag (RFC 7348 §6.1: such frames SHOULD be
    /// discarded).
    case taggedInnerFrame
    /// The source MAC is multicast or broadcast (IEEE 802.3 §3.2.3: never a source).
    case multicastSourceMAC
    /// The source MAC is 00:00:00:00:00:00.
    case zeroSourceMAC
    /// The destination is an IEEE 802.1Q reserved address, 01:80:c2:00:00:00–0f (STP, LACP,
    /// LLDP, 802.1X, pause), which a bridge never forwards.
    case reservedDestination
    /// The source MAC is owned by a static entry at another location; it is not moved.
    case staticMACConflict
    /// The destination is on the port and VLAN the frame came from; a bridge filters it.
    case sameInterface
    /// The destination is behind a tunnel and the frame came from one: split horizon.
    case tunnelToTunnel
    /// The frame is to be flooded, but the switch has no other attachment and no replication
    /// target.
    case noFloodTargets
    /// A VTEP not yet known sent into a multicast switch, and the engine's table of
    /// discovered VTEPs is full.
    case remoteVTEPLimit

    // The data plane worker's.

    /// Longer than a receive buffer: the kernel kept only its start.
    case truncated
    /// A tunnel packet whose outer source is one of our own addresses.
    case ownSource
    /// Too big for the underlay MTU once encapsulated: dropped, never fragmented (RFC 7348
    /// §4.3).
    case underlayTooBig
    /// A socket's send queue was full.
    case transmitQueueFull
    /// Lost in a send call that failed with an unexpected error (`io_error` counts the calls).
    case sendFailed
    /// Received on an access port the configuration does not name yet.
    case portNotConfigured
    /// Too long for the access port it is to leave by, once re-tagged.
    case tooBigForPort
    /// To a VTEP of an address family the gateway has no tunnel address of.
    case noLocalAddress
    /// To an access port or a VTEP that a configuration change removed while the frame was
    /// on its way.
    case destinationGone
    /// Dropped by the kernel before vtepd read it: an access port's receive queue was full.
    case accessReceiveOverrun
    /// Dropped by the kernel before vtepd read it: a tunnel socket's receive queue was full.
    case underlayReceiveOverrun
    /// A broadcast, unknown-unicast or multicast frame beyond the switch's BUM rate limit
    /// (storm control), dropped before replication.
    case bumRateLimited

    /// Whether the forwarding decision returns it (`Decision.drop`); the others the data
    /// plane's worker counts around the decision, while receiving, encapsulating or sending.
    public var isDecided: Bool {
        switch self {
        case .truncated, .underlayTooBig, .transmitQueueFull, .sendFailed, .portNotConfigured,
            .tooBigForPort, .noLocalAddress, .destinationGone, .accessReceiveOverrun,
            .underlayReceiveOverrun:
            false
        default: true
        }
    }

    /// What an operator reads in `show statistics` or a packet trace.
    public var description: String {
        switch self {
        case .malformed: "malformed Ethernet header"
        case .noBinding: "no logical switch bound to the port and VLAN"
        case .qinqOnAccessPort: "double-tagged (QinQ) frame on an access port"
        case .unknownSourceVTEP: "source VTEP is not a configured locator"
        case .unknownVNI: "VNI not configured on this gateway"
        case .sourceVTEPNotAccepted: "source VTEP not accepted for the logical switch"
        case .taggedInnerFrame: "VLAN-tagged frame inside a tunnel (RFC 7348 6.1)"
        case .multicastSourceMAC: "multicast or broadcast source MAC"
        case .zeroSourceMAC: "all-zeros source MAC"
        case .reservedDestination: "reserved IEEE 802.1Q destination (01:80:c2:00:00:0x)"
        case .staticMACConflict: "source MAC belongs to a static entry elsewhere"
        case .sameInterface: "destination is on the ingress port and VLAN"
        case .tunnelToTunnel: "destination is behind a tunnel, frame came from one"
        case .noFloodTargets: "flooded frame has no port or VTEP to go to"
        case .remoteVTEPLimit: "too many discovered remote VTEPs"
        case .truncated: "longer than a receive buffer"
        case .ownSource: "tunnel packet from one of our own addresses"
        case .underlayTooBig: "too big for the underlay MTU once encapsulated"
        case .transmitQueueFull: "send queue full"
        case .sendFailed: "lost in a failed send"
        case .portNotConfigured: "received on a port not yet configured"
        case .tooBigForPort: "too big for the outgoing access port"
        case .noLocalAddress: "no tunnel address of the VTEP's address family"
        case .destinationGone: "destination removed by a configuration change"
        case .accessReceiveOverrun: "access port receive queue full"
        case .underlayReceiveOverrun: "tunnel socket receive queue full"
        case .bumRateLimited: "broadcast, unknown-unicast or multicast beyond the rate limit"
        }
    }

    /// The snake_case name under which the counter is exported.
    public var counterName: String {
        switch self {
        case .malformed: "malformed"
        case .noBinding: "no_binding"
        case .qinqOnAccessPort: "qinq_on_access_port"
        case .unknownSourceVTEP: "unknown_source_vtep"
        case .unknownVNI: "unknown_vni"
        case .sourceVTEPNotAccepted: "source_vtep_not_accepted"
        case .taggedInnerFrame: "tagged_inner_frame"
        case .multicastSourceMAC: "multicast_source_mac"
        case .zeroSourceMAC: "zero_source_mac"
        case .reservedDestination: "reserved_destination"
        case .staticMACConflict: "static_mac_conflict"
        case .sameInterface: "same_interface"
        case .tunnelToTunnel: "tunnel_to_tunnel"
        case .noFloodTargets: "no_flood_targets"
        case .remoteVTEPLimit: "remote_vtep_limit"
        case .truncated: "truncated"
        case .ownSource: "own_source"
        case .underlayTooBig: "underlay_too_big"
        case .transmitQueueFull: "transmit_queue_full"
        case .sendFailed: "send_failed"
        case .portNotConfigured: "port_not_configured"
        case .tooBigForPort: "too_big_for_port"
        case .noLocalAddress: "no_local_address"
        case .destinationGone: "destination_gone"
        case .accessReceiveOverrun: "access_receive_overrun"
        case .underlayReceiveOverrun: "underlay_receive_overrun"
        case .bumRateLimited: "bum_rate_limited"
        }
    }
}

/// Counters of one logical switch. Every frame attributed to the switch is counted once under
/// `fromAccess` or `fromTunnel` and then once under exactly one of `toAccess`, `encapsulated`,
/// `flooded`, `neighbourAnswered` or `drops`.
public struct SwitchCounters: Hashable, Sendable {
    public var fromAccess: UInt64 = 0
    public var fromTunnel: UInt64 = 0
    public var toAccess: UInt64 = 0
    public var encapsulated: UInt64 = 0
    public var flooded: UInt64 = 0
    public var drops: UInt64 = 0
    /// New MAC entries learned.
    public var learned: UInt64 = 0
    /// Learned MACs that moved to another port, VLAN or VTEP.
    public var moves: UInt64 = 0
    /// Source MACs not learned because the switch or the table was at its limit.
    public var learningRefused: UInt64 = 0
    /// Bytes of the frames in `fromAccess` and `fromTunnel` (a super-frame's own length).
    public var bytesIn: UInt64 = 0
    /// ARP and ND suppression: requests from access ports answered by the gateway, and those
    /// it could not answer (address unknown), which were flooded (and are also in `flooded`,
    /// or in `drops` if flooding dropped them).
    public var neighbourAnswered: UInt64 = 0
    public var neighbourFlooded: UInt64 = 0

    public init() {}
}

/// A copy of all forwarding counters, for the control API.
public struct ForwardingStatistics: Hashable, Sendable {
    /// By `DropReason.rawValue`.
    public var drops: [UInt64]
    /// By `Malformed.rawValue`; their sum is `drops[DropReason.malformed.rawValue]`.
    public var malformed: [UInt64]
    /// Configured switches only.
    public var switches: [SwitchIndex: SwitchCounters]
    public var macEntries: Int
    /// The MAC table's fault flag: learning was refused because the table is full.
    public var macTableFull: Bool

    public func drops(_ reason: DropReason) -> UInt64 { drops[Int(reason.rawValue)] }
    public func malformed(_ reason: Malformed) -> UInt64 { malformed[Int(reason.rawValue)] }
}
