import Packet
import PropertyBased
import Testing

@testable import Forwarding

/// Runs `body` on `count` values of `input`, drawn from a generator seeded with `seed`, so every
/// run of the suite checks the same cases. Stops at the first failing case and records the
/// seed and iteration that reproduce it.
///
/// (swift-property-based's `.fixedSeed` trait is meant for reproducing one failure: it runs a
/// single case and records an issue when that case passes, so it cannot mark a passing test.)
func fixedSeedCheck<Value, Shrinks>(
    seed: (UInt64, UInt64, UInt64, UInt64), count: Int, input: Generator<Value, Shrinks>,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: (Value) -> String?
) {
    var rng = Xoshiro(seed: seed)
    for iteration in 0..<count {
        let value = input.run(using: &rng)
        if let problem = body(value) {
            Issue.record(
                "seed \(seed), iteration \(iteration): \(problem)", sourceLocation: sourceLocation)
            return
        }
    }
}

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
