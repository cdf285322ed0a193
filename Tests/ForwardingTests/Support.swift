import Packet
import PropertyBased
import Testing

@testable import Forwarding

/// An Ethernet frame: destination, source, VLAN tags (outermost first, TPID 0x8100), IPv4
/// EtherType and a few payload bytes.
func frame(
    to destination: MACAddress, from source: MACAddress, vlans: [UInt16] = [],
    payload: Int = 46
) -> [UInt8] {
    var bytes: [UInt8] = []
    for mac in [destination, source] {
        for shift in stride(from: 40, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: mac.rawValue >> UInt64(shift)))
        }
    }
    for vid in vlans {
        bytes += [0x81, 0x00, UInt8(vid >> 8), UInt8(vid & 0xFF)]
    }
    bytes += [0x08, 0x00]
    bytes += [UInt8](repeating: 0x45, count: payload)
    return bytes
}

extension ForwardingEngine {
    func decide(_ ingress: Ingress, _ bytes: [UInt8], now: UInt32 = 0) -> Decision {
        bytes.withUnsafeBytes { decide(ingress, frame: $0, now: now) }
    }
}

func mac(_ last: UInt8, _ oui: UInt8 = 0x02) -> MACAddress {
    MACAddress(oui, 0, 0, 0, 0, last)
}

func ip(_ text: String) -> IPAddress { IPAddress(text)! }

func vni(_ value: Int) -> VNI { try! VNI(validating: value) }
