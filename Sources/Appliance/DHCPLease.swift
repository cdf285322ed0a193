import Packet

/// What a DHCP server granted an interface (RFC 2131, options of RFC 2132 and RFC 3397), as
/// vtepd applies it: the address, a default route through the first router, and DNS servers
/// and search domains beside the static ones. Never saved: a lease is asked for again after a
/// restart.
public struct DHCPLease: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4InterfaceAddress
    public var routers: [IPv4Address]
    public var dnsServers: [IPAddress]
    /// Option 15 (domain name) first, then option 119 (domain search).
    public var searchDomains: [DomainName]
    /// Option 51, in seconds.
    public var leaseSeconds: Int?
    /// Option 54: the server that granted it.
    public var server: IPv4Address?

    public init(
        address: IPv4InterfaceAddress, routers: [IPv4Address] = [], dnsServers: [IPAddress] = [],
        searchDomains: [DomainName] = [], leaseSeconds: Int? = nil, server: IPv4Address? = nil
    ) {
        self.address = address
        self.routers = routers
        self.dnsServers = dnsServers
        self.searchDomains = searchDomains
        self.leaseSeconds = leaseSeconds
        self.server = server
    }

    public var description: String {
        var text = "\(address)"
        if let router = routers.first { text += " router \(router)" }
        if !dnsServers.isEmpty {
            text += " dns \(dnsServers.map(\.description).joined(separator: ","))"
        }
        if let server { text += " from \(server)" }
        if let leaseSeconds { text += " lease \(leaseSeconds) s" }
        return text
    }
}

/// Why a DHCP client's report was refused. The values come from the network (the DHCP
/// server), so each is checked before anything is applied.
public struct DHCPEventError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// One report of the DHCP client (busybox udhcpc runs its script with the event as its
/// argument and the lease in its environment: udhcpc's `default.script`, README.udhcpc).
public enum DHCPEvent: Hashable, Sendable, CustomStringConvertible {
    /// The client starts or lost its lease: the interface must have no DHCP address.
    case deconfig
    /// A lease was obtained (`bound`) or extended (`renew`).
    case bound(DHCPLease, renewal: Bool)
    /// No server answered (`leasefail`).
    case noAnswer
    /// The server refused the address asked for (`nak`).
    case refused

    /// The names of the environment variables the hook passes on; every other variable of
    /// udhcpc's environment stays behind.
    public static let variables = [
        "interface", "ip", "mask", "router", "dns", "domain", "search", "lease", "serverid",
    ]

    /// The event from udhcpc's argument and environment. Refuses, with what was wrong, a value
    /// that is not what its option allows: such a lease is not applied at all.
    public init(udhcpcEvent event: String, environment: [String: String])
        throws(DHCPEventError)
    {
        switch event {
        case "deconfig": self = .deconfig
        case "leasefail": self = .noAnswer
        case "nak": self = .refused
        case "bound", "renew":
            self = .bound(try Self.lease(environment), renewal: event == "renew")
        default: throw DHCPEventError("unknown DHCP client event \"\(Self.printable(event))\"")
        }
    }

    private static func lease(_ environment: [String: String]) throws(DHCPEventError) -> DHCPLease {
        guard let ip = environment["ip"], let address = IPv4Address(ip) else {
            throw DHCPEventError(
                "the lease has no IPv4 address (ip=\(printable(environment["ip"])))")
        }
        guard let maskText = environment["mask"],
            maskText.utf8.allSatisfy({ (48...57).contains($0) }),
            let length = Int(maskText), (1...32).contains(length)
        else {
            throw DHCPEventError(
                "the lease has no usable subnet mask (mask=\(printable(environment["mask"])))")
        }
        let interfaceAddress: IPv4InterfaceAddress
        do {
            interfaceAddress = try IPv4InterfaceAddress(address: address, prefixLength: length)
        } catch {
            throw DHCPEventError("the leased address is not usable: \(error)")
        }
        func list(_ name: String) -> [Substring] {
            (environment[name] ?? "").split(separator: " ")
        }
        var routers: [IPv4Address] = []
        for text in list("router") {
            guard let router = IPv4Address(String(text)), router.rawValue != 0,
                !router.isMulticast, router.rawValue != UInt32.max
            else {
                throw DHCPEventError(
                    "the lease's router \"\(printable(String(text)))\" is not a unicast IPv4 address"
                )
            }
            routers.append(router)
        }
        var dns: [IPAddress] = []
        for text in list("dns") {
            guard let server = IPAddress(String(text)) else {
                throw DHCPEventError(
                    "the lease's DNS server \"\(printable(String(text)))\" is not an IP address")
            }
            if !dns.contains(server) { dns.append(server) }
        }
        var domains: [DomainName] = []
        for text in list("domain") + list("search") {
            // A search list entry may end with the root's dot (RFC 1035 §3.1).
            let name = text.hasSuffix(".") ? String(text.dropLast()) : String(text)
            guard let domain = try? DomainName(name) else {
                throw DHCPEventError(
                    "the lease's domain \"\(printable(name))\" is not a domain name")
            }
            if !domains.contains(domain) { domains.append(domain) }
        }
        var seconds: Int?
        if let text = environment["lease"] {
            guard text.utf8.allSatisfy({ (48...57).contains($0) }), let value = Int(text) else {
                throw DHCPEventError(
                    "the lease time \"\(printable(text))\" is not a number of seconds")
            }
            seconds = value
        }
        var server: IPv4Address?
        if let text = environment["serverid"] {
            guard let id = IPv4Address(text) else {
                throw DHCPEventError(
                    "the server identifier \"\(printable(text))\" is not an IPv4 address")
            }
            server = id
        }
        return DHCPLease(
            address: interfaceAddress, routers: routers, dnsServers: dns, searchDomains: domains,
            leaseSeconds: seconds, server: server)
    }

    /// A network-supplied value as it may be shown: at most 64 characters, control bytes
    /// escaped, so a server cannot write into the operator's terminal or the log.
    public static func printable(_ text: String?) -> String {
        guard let text else { return "(none)" }
        var shown = ""
        for scalar in text.unicodeScalars.prefix(64) {
            shown +=
                scalar.value < 0x20 || scalar.value == 0x7F
                ? "\\x" + String(scalar.value, radix: 16) : String(scalar)
        }
        return text.unicodeScalars.count > 64 ? shown + "…" : shown
    }

    public var description: String {
        switch self {
        case .deconfig: "deconfig"
        case .bound(let lease, let renewal): "\(renewal ? "renew" : "bound") \(lease)"
        case .noAnswer: "leasefail (no DHCP server answered)"
        case .refused: "nak (the server refused the address)"
        }
    }
}

/// The hook's message to vtepd: `KEY=VALUE` pairs, each ended by a NUL byte (an environment
/// string cannot hold one), `event` and `interface` among them.
public enum DHCPHookMessage {
    public static let maximumSize = 16384

    public static func encode(_ pairs: [(String, String)]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (key, value) in pairs {
            bytes += Array("\(key)=\(value)".utf8)
            bytes.append(0)
        }
        return bytes
    }

    /// The pairs of a message; nil when it is not one (no NUL at the end, a pair without `=`,
    /// a key twice, bytes that are not UTF-8).
    public static func decode(_ bytes: some BidirectionalCollection<UInt8>) -> [String: String]? {
        guard bytes.count <= maximumSize, bytes.last == 0 else { return nil }
        var pairs: [String: String] = [:]
        for field in bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast() {
            guard let equals = field.firstIndex(of: UInt8(ascii: "=")),
                let key = String(validating: field[field.startIndex..<equals], as: UTF8.self),
                let value = String(validating: field[field.index(after: equals)...], as: UTF8.self),
                !key.isEmpty, pairs[key] == nil
            else { return nil }
            pairs[key] = value
        }
        return pairs
    }
}
