/// The tunnel encapsulations a locator can use. Forwarding names a locator's encapsulation
/// with this; `OuterHeaderTemplate` builds the matching outer headers.
public enum Encapsulation: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// RFC 7348: outer IP + UDP (destination port 4789) + 8-byte VXLAN header, 24-bit VNI.
    case vxlan
    /// RFC 2784 / RFC 2890 GRE carrying transparent Ethernet bridging (0x6558), the VNI in
    /// the 32-bit key.
    case gre
    /// RFC 7637 NVGRE: GRE with the key split into a 24-bit VSID and an 8-bit FlowID.
    case nvgre

    public var description: String {
        switch self {
        case .vxlan: "vxlan"
        case .gre: "gre"
        case .nvgre: "nvgre"
        }
    }
}
