/// An IP address and a TCP or UDP port, as RFC 3986 §3.2.2 writes them: `192.0.2.1:9100`, or
/// `[2001:db8::1]:9100` with the IPv6 address in brackets (its colons would be ambiguous).
public struct IPEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Parses `IPv4:PORT` or `[IPv6]:PORT`; the port is 1–65535 in decimal, no sign or
    /// leading zero, since port 0 asks the kernel to choose one.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let host = text[..<colon]
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.first != "0",
            portText.utf8.allSatisfy({ (48...57).contains($0) }), let port = Int(portText),
            (1...65535).contains(port)
        else { return nil }
        let address: IPAddress?
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count > 2 {
            address = IPv6Address(String(host.dropFirst().dropLast())).map(IPAddress.v6)
        } else {
            address = IPv4Address(String(host)).map(IPAddress.v4)
        }
        guard let address else { return nil }
        self.init(address: address, port: UInt16(port))
    }

    public var description: String {
        switch address {
        case .v4(let a): "\(a):\(port)"
        case .v6(let a): "[\(a)]:\(port)"
        }
    }
}
