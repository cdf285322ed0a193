import Datapath
import Forwarding
import Packet

/// Which frames `debug packet-trace` records.
public enum TraceSelector: Hashable, Sendable {
    /// Every frame, from any access port or tunnel.
    case any
    /// Frames received on this access port.
    case port(String)
    /// Frames decapsulated from a tunnel (VXLAN, GRE or NVGRE).
    case tunnel
}

/// One frame as the worker received, decided and handled it: each step in words, as VPP's
/// `show trace` and Open vSwitch's `ofproto/trace` list them.
public struct FrameTrace: Hashable, Sendable {
    /// 1 for the first frame recorded since the trace was started.
    public var number: Int
    /// Seconds since vtepd started.
    public var seconds: UInt32
    public var steps: [String]
}

/// The worker's record of traced frames: off (one comparison per frame) until started with a
/// count, then each selected frame's steps until the count is used up. Recording allocates
/// (it is a debugging aid); nothing is allocated while it is off.
struct TraceRecorder {
    var remaining = 0
    var selector = TraceSelector.any
    /// The worker port the selector names, -1 for none (`.port` of a port not opened).
    var port = -1
    var recorded: [FrameTrace] = []
    var started = 0
    static let maximum = 1000
}

/// Words for what the worker saw and did, shared by the live trace and the hypothetical one.
enum TraceText {
    /// The Ethernet header, its tags, and the IPv4/IPv6 and transport header if any.
    static func headers(_ frame: UnsafeRawBufferPointer) -> String {
        let ethernet: EthernetHeader
        do { ethernet = try EthernetHeader.parse(frame) } catch {
            return "\(frame.count) bytes, \(error)"
        }
        var text = "\(frame.count) bytes, \(ethernet.source) → \(ethernet.destination)"
        if let tag = ethernet.outerTag { text += ", VLAN \(tag.vid)" }
        if let tag = ethernet.innerTag { text += ", inner VLAN \(tag.vid)" }
        let at = ethernet.payloadOffset
        switch ethernet.etherType {
        case EtherType.ipv4:
            let ip: IPv4Header
            do { ip = try IPv4Header.parse(frame, at: at) } catch { return text + ", \(error)" }
            text += ", IPv4 \(ip.source) → \(ip.destination)"
            text += transport(frame, ip.protocol, at: ip.payloadOffset)
        case EtherType.ipv6:
            let ip: IPv6Header
            do { ip = try IPv6Header.parse(frame, at: at) } catch { return text + ", \(error)" }
            text += ", IPv6 \(ip.source) → \(ip.destination)"
            text += transport(frame, ip.upperLayerProtocol, at: ip.upperLayerOffset)
        case EtherType.arp:
            text += ", ARP"
        default:
            text += ", EtherType 0x\(String(ethernet.etherType, radix: 16))"
        }
        return text
    }

    private static func transport(_ frame: UnsafeRawBufferPointer, _ proto: UInt8, at: Int)
        -> String
    {
        let name: String
        switch proto {
        case IPProtocol.tcp: name = "TCP"
        case IPProtocol.udp: name = "UDP"
        case 1: return " ICMP"
        case 58: return " ICMPv6"
        default: return " protocol \(proto)"
        }
        guard at + 4 <= frame.count else { return " \(name)" }
        let source = UInt16(frame[at]) << 8 | UInt16(frame[at + 1])
        let destination = UInt16(frame[at + 2]) << 8 | UInt16(frame[at + 3])
        return " \(name) \(source) → \(destination)"
    }

    static func ingress(_ ingress: Ingress, _ configuration: ForwardingConfiguration) -> String {
        switch ingress {
        case .access(let port):
            "received on port \(configuration.portName(port) ?? "#\(port.rawValue)")"
        case .tunnel(let source, let encapsulation, let vni):
            "received from VTEP \(source) over \(encapsulation), VNI \(vni.rawValue)"
        }
    }

    static func vlan(_ vlan: UInt16?) -> String { vlan.map { "VLAN \($0)" } ?? "untagged" }

    /// The logical switch and what the MAC table says of the destination, read after the
    /// decision (so after the source was learned).
    static func lookup(
        _ ingress: Ingress, _ frame: UnsafeRawBufferPointer, _ engine: ForwardingEngine,
        now: UInt32
    ) -> [String] {
        let c = engine.configuration
        guard let ethernet = try? EthernetHeader.parse(frame) else { return [] }
        let sw: SwitchIndex?
        switch ingress {
        case .access(let port):
            sw = c.boundSwitch(port: port, vlan: ethernet.outerTag?.vid)
            guard let sw, let s = c.logicalSwitch(sw) else {
                return [
                    "no logical switch is bound to this port and \(vlan(ethernet.outerTag?.vid))"
                ]
            }
            _ = s
        case .tunnel(_, _, let vni):
            sw = c.switchIndex(for: vni)
        }
        guard let sw, let s = c.logicalSwitch(sw) else {
            return ["no logical switch carries this VNI"]
        }
        var steps = ["logical switch \(s.name) (VNI \(s.vni.rawValue), \(s.encapsulation))"]
        if ethernet.destination.isMulticast, s.arpSuppression,
            case .request(let target)? = NeighbourDiscovery.message(in: frame, header: ethernet)
        {
            steps.append(
                engine.neighbours.lookup(sw, target).map {
                    "ARP/ND request for \(target): the neighbour table has \($0)"
                } ?? "ARP/ND request for \(target), not in the neighbour table: flood")
        } else if ethernet.destination.isMulticast {
            steps.append("destination \(ethernet.destination) is broadcast or multicast: flood")
        } else if let entry = engine.macTable.lookup(ethernet.destination, on: sw, now: now) {
            steps.append(
                "destination \(ethernet.destination) is known: \(location(entry.location, c, engine))"
                    + (entry.isStatic ? " (static)" : ""))
        } else {
            steps.append("destination \(ethernet.destination) is unknown: flood")
        }
        return steps
    }

    static func location(
        _ location: MACLocation, _ c: ForwardingConfiguration, _ engine: ForwardingEngine
    ) -> String {
        switch location {
        case .local(let a):
            "port \(c.portName(a.port) ?? "#\(a.port.rawValue)") \(vlan(a.vlan == 0 ? nil : a.vlan))"
        case .remote(let l):
            "behind VTEP \(engine.locator(l)?.description ?? "#\(l.rawValue)")"
        }
    }

    /// The decision in words; for a flood, where the copies go.
    static func decision(
        _ decision: Decision, _ c: ForwardingConfiguration, _ engine: ForwardingEngine
    ) -> String {
        switch decision {
        case .drop(let reason, let malformed):
            return "decision: drop, \(reason.counterName) (\(reason)"
                + (malformed.map { ": \($0)" } ?? "") + ")"
        case .output(let port, let vlan):
            return
                "decision: deliver to port \(c.portName(port) ?? "#\(port.rawValue)") \(Self.vlan(vlan))"
        case .encapsulate(let locator, let vni):
            return
                "decision: encapsulate to VTEP \(engine.locator(locator)?.description ?? "#\(locator.rawValue)"), VNI \(vni.rawValue)"
        case .reply(let port, let vlan, let mac):
            return "decision: answer (ARP/ND suppression) for \(mac), the reply to port"
                + " \(c.portName(port) ?? "#\(port.rawValue)") \(Self.vlan(vlan))"
        case .flood(let sw, let vni, let excluding, let replicate):
            guard let list = c.floodList(of: sw) else { return "decision: flood (switch gone)" }
            var targets = list.members.filter { $0 != excluding }.map {
                "port \(c.portName($0.port) ?? "#\($0.port.rawValue)") \(vlan($0.vlan == 0 ? nil : $0.vlan))"
            }
            if replicate {
                targets += list.replication.map {
                    "VTEP \(engine.locator($0)?.description ?? "#\($0.rawValue)")"
                }
            }
            return "decision: flood in VNI \(vni.rawValue) to "
                + (targets.isEmpty ? "nothing" : targets.joined(separator: ", "))
        }
    }
}

/// A frame built from an operator's description, for `trace port …`: Ethernet (with an
/// 802.1Q tag when `vlan` is set and not 0), then, given addresses, an IPv4 or IPv6 header and
/// a TCP, UDP or ICMP echo header with valid lengths and checksums. Not for the wire.
public enum TraceProbe {
    public enum Transport: Sendable { case tcp, udp, icmp }

    public static func frame(
        vlan: UInt16?, source: MACAddress, destination: MACAddress,
        ip: (source: IPAddress, destination: IPAddress)?, transport: Transport?,
        sourcePort: UInt16?, destinationPort: UInt16?
    ) -> [UInt8] {
        var bytes = mac(destination) + mac(source)
        if let vlan, vlan != 0 { bytes += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] }
        guard let ip else {
            // An untyped frame: the local-experimental EtherType (IEEE 802 §9.2.2), padded.
            return bytes + [0x88, 0xB5] + [UInt8](repeating: 0, count: 46)
        }
        let isIPv6: Bool
        switch ip.source {
        case .v4: isIPv6 = false
        case .v6: isIPv6 = true
        }
        let proto: UInt8
        var l4: [UInt8]
        switch transport ?? .udp {
        case .udp:
            proto = IPProtocol.udp
            l4 = ports(sourcePort, destinationPort) + [0, 8, 0, 0]
        case .tcp:
            proto = IPProtocol.tcp
            // SYN, data offset 5 words, window 65535.
            l4 =
                ports(sourcePort, destinationPort) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]
                + [0xFF, 0xFF, 0, 0, 0, 0]
        case .icmp:
            proto = isIPv6 ? 58 : 1
            l4 = [isIPv6 ? 128 : 8, 0, 0, 0, 0, 1, 0, 1]
        }
        var sum = InternetChecksum()
        switch (ip.source, ip.destination) {
        case (.v4(let s), .v4(let d)):
            bytes += [0x08, 0x00]
            var header: [UInt8] = [
                0x45, 0, 0, UInt8(20 + l4.count), 0, 0, 0x40, 0, 64, proto, 0, 0,
            ]
            header += word(s.rawValue) + word(d.rawValue)
            let check = header.withUnsafeBytes { InternetChecksum.checksum($0) }
            header[10] = UInt8(check >> 8)
            header[11] = UInt8(check & 0xFF)
            bytes += header
            if proto != 1 {
                sum.addIPv4PseudoHeader(
                    source: s, destination: d, protocol: proto, length: UInt16(l4.count))
            }
        case (.v6(let s), .v6(let d)):
            bytes += [0x86, 0xDD, 0x60, 0, 0, 0, 0, UInt8(l4.count), proto, 64]
            bytes += address(s) + address(d)
            sum.addIPv6PseudoHeader(
                source: s, destination: d, nextHeader: proto, length: UInt32(l4.count))
        default:
            return bytes + [0x88, 0xB5] + [UInt8](repeating: 0, count: 46)
        }
        l4.withUnsafeBytes { sum.add($0) }
        let check = proto == IPProtocol.udp ? UDPHeader.checksumField(sum) : sum.checksum
        let at = proto == IPProtocol.tcp ? 16 : (proto == IPProtocol.udp ? 6 : 2)
        l4[at] = UInt8(check >> 8)
        l4[at + 1] = UInt8(check & 0xFF)
        return bytes + l4
    }

    private static func mac(_ m: MACAddress) -> [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: m.rawValue >> UInt64(40 - 8 * $0)) }
    }

    private static func word(_ w: UInt32) -> [UInt8] {
        [UInt8(w >> 24), UInt8(w >> 16 & 0xFF), UInt8(w >> 8 & 0xFF), UInt8(w & 0xFF)]
    }

    private static func address(_ a: IPv6Address) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { a.store(into: $0, at: 0) }
        return bytes
    }

    private static func ports(_ source: UInt16?, _ destination: UInt16?) -> [UInt8] {
        let s = source ?? 49152
        let d = destination ?? 80
        return [UInt8(s >> 8), UInt8(s & 0xFF), UInt8(d >> 8), UInt8(d & 0xFF)]
    }
}
