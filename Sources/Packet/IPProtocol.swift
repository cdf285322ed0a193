/// IANA "Assigned Internet Protocol Numbers": the IPv4 Protocol and IPv6 Next Header values
/// this module dispatches on.
public enum IPProtocol {
    public static let hopByHopOptions: UInt8 = 0
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let dccp: UInt8 = 33
    public static let routing: UInt8 = 43
    public static let fragment: UInt8 = 44
    public static let gre: UInt8 = 47
    public static let encapsulatingSecurityPayload: UInt8 = 50
    public static let authenticationHeader: UInt8 = 51
    public static let icmpv6: UInt8 = 58
    public static let noNextHeader: UInt8 = 59
    public static let destinationOptions: UInt8 = 60
    public static let mobility: UInt8 = 135
    public static let udpLite: UInt8 = 136
    public static let sctp: UInt8 = 132
    public static let hostIdentity: UInt8 = 139
    public static let shim6: UInt8 = 140

    /// Transport protocols that begin with a 16-bit source and destination port, the fields
    /// a flow hash spreads on.
    @inlinable
    public static func hasPorts(_ value: UInt8) -> Bool {
        value == tcp || value == udp || value == sctp || value == udpLite || value == dccp
    }
}
