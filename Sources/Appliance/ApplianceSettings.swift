import Packet

/// An operator's value that the appliance refuses, worded so the operator can correct it.
public enum ApplianceSettingsError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidHostname(String, reason: String)
    case invalidDomainName(String, reason: String)
    case invalidInterfaceName(String, reason: String)
    case invalidIPv4Address(String)
    case invalidIPAddress(String)
    case invalidNetmask(String)
    case invalidInterfaceAddress(String, reason: String)
    case invalidMTU(Int)
    case invalidPrefix(String)
    case invalidGateway(String, reason: String)
    case invalidNTPServer(String)
    case invalidDNSServer(String, reason: String)
    case invalidUserName(String, reason: String)
    case invalidPasswordHash(reason: String)
    case invalidListenAddress(String, reason: String)
    /// `what` ("DNS server") `value` is configured already.
    case duplicate(what: String, value: String)
    /// No `what` `value` is configured, so it cannot be removed.
    case notConfigured(what: String, value: String)
    case tooMany(what: String, limit: Int, reason: String)
    /// A saved value outside its set: `field` of `owner` is `value`, `expected` lists the set.
    case invalidValue(field: String, owner: String, value: String, expected: String)

    public var description: String {
        switch self {
        case .invalidHostname(let text, let reason):
            return "\"\(text)\" is not a valid hostname: \(reason)"
        case .invalidDomainName(let text, let reason):
            return "\"\(text)\" is not a valid domain name: \(reason)"
        case .invalidInterfaceName(let text, let reason):
            return "\"\(text)\" is not a valid interface name: \(reason)"
        case .invalidIPv4Address(let text):
            return "\"\(text)\" is not an IPv4 address (expected dotted decimal, e.g. 192.0.2.10)"
        case .invalidIPAddress(let text):
            return "\"\(text)\" is not an IP address (expected e.g. 192.0.2.10 or 2001:db8::10)"
        case .invalidNetmask(let text):
            return "\"\(text)\" is not a netmask (expected contiguous ones, e.g. 255.255.255.0)"
        case .invalidInterfaceAddress(let text, let reason):
            return "\(text) cannot be an interface address: \(reason)"
        case .invalidMTU(let mtu):
            return "MTU \(mtu) is out of range (\(InterfaceSettings.mtuRange.lowerBound)–"
                + "\(InterfaceSettings.mtuRange.upperBound))"
        case .invalidPrefix(let text):
            return "\"\(text)\" is not a network prefix (expected e.g. 198.51.100.0/24, with the"
                + " host bits zero)"
        case .invalidGateway(let text, let reason):
            return "\(text) cannot be a gateway: \(reason)"
        case .invalidDNSServer(let text, let reason):
            return "\(text) cannot be a DNS server: \(reason)"
        case .invalidNTPServer(let text):
            return "\"\(text)\" is neither an IP address nor a host name"
        case .invalidUserName(let text, let reason):
            return "\"\(text)\" is not a valid user name: \(reason)"
        case .invalidPasswordHash(let reason):
            return "the password hash is not usable: \(reason)"
        case .invalidListenAddress(let text, let reason):
            return "the metrics endpoint cannot listen on \(text): \(reason)"
        case .duplicate(let what, let value):
            return "\(what) \(value) is already configured"
        case .notConfigured(let what, let value):
            return "no \(what) \(value) is configured"
        case .tooMany(let what, let limit, let reason):
            return "at most \(limit) \(what) can be configured (\(reason))"
        case .invalidValue(let field, let owner, let value, let expected):
            return "\(field) of \(owner) is \"\(value)\" (expected \(expected))"
        }
    }
}

/// A domain name: RFC 1123 §2.1 host-name syntax (letters, digits and hyphens; labels of 1–63
/// characters that neither start nor end with a hyphen; at most 253 characters), kept in
/// lowercase since DNS names compare case-insensitively (RFC 4343).
public struct DomainName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) throws(ApplianceSettingsError) {
        if let reason = Self.problem(text, maximumLength: 253) {
            throw .invalidDomainName(text, reason: reason)
        }
        self.text = text.lowercased()
    }

    init(validated text: String) { self.text = text.lowercased() }

    public var description: String { text }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.text < rhs.text }

    /// Why `text` is not an RFC 1123 host name, or nil if it is one. The last label must not
    /// be all digits (RFC 1123 §2.1), so that a mistyped address such as 10.0.0.300 is never
    /// taken for a name.
    static func problem(_ text: String, maximumLength: Int) -> String? {
        let bytes = Array(text.utf8)
        if bytes.isEmpty { return "it is empty" }
        if bytes.count > maximumLength {
            return "it is \(bytes.count) characters long (at most \(maximumLength))"
        }
        let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for label in labels {
            if label.isEmpty { return "it has an empty label (two dots, or a dot at an end)" }
            if label.count > 63 { return "a label is longer than 63 characters" }
            if label.first == UInt8(ascii: "-") || label.last == UInt8(ascii: "-") {
                return "a label starts or ends with a hyphen"
            }
            for byte in label where !isLetterOrDigit(byte) && byte != UInt8(ascii: "-") {
                return "only letters, digits, hyphens and dots are allowed"
                    + " (found \(describe(byte)))"
            }
        }
        if labels.last!.allSatisfy({ (48...57).contains($0) }) {
            return "the last label is all digits (is it a mistyped IP address?)"
        }
        return nil
    }
}

/// The appliance's hostname: an RFC 1123 name of at most 64 characters (HOST_NAME_MAX on
/// Linux, the limit of sethostname(2)).
public struct Hostname: Hashable, Sendable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) throws(ApplianceSettingsError) {
        if let reason = DomainName.problem(text, maximumLength: 64) {
            throw .invalidHostname(text, reason: reason)
        }
        self.text = text.lowercased()
    }

    /// The first label: what /etc/hosts lists as the short name.
    public var shortName: String { String(text.prefix { $0 != "." }) }
    public var description: String { text }
}

/// A network interface's name as the kernel accepts it (dev_valid_name in net/core/dev.c):
/// 1–15 bytes (IFNAMSIZ − 1), not "." or "..", no "/", ":" or whitespace. Stricter than the
/// kernel on purpose: only letters, digits, "-", "_" and ".", since names reach files and
/// command lines.
public struct InterfaceName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) throws(ApplianceSettingsError) {
        let bytes = Array(text.utf8)
        let reason: String? =
            if bytes.isEmpty {
                "it is empty"
            } else if bytes.count > 15 {
                "it is \(bytes.count) characters long (at most 15)"
            } else if text == "." || text == ".." {
                "it is a path component"
            } else if let bad = bytes.first(where: {
                !isLetterOrDigit($0) && $0 != UInt8(ascii: "-") && $0 != UInt8(ascii: "_")
                    && $0 != UInt8(ascii: ".")
            }) {
                "only letters, digits, \"-\", \"_\" and \".\" are allowed (found \(describe(bad)))"
            } else if bytes.first == UInt8(ascii: "-") {
                "it starts with \"-\""
            } else {
                nil
            }
        if let reason { throw .invalidInterfaceName(text, reason: reason) }
        self.text = text
    }

    public var description: String { text }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.text < rhs.text }
}

/// A static IPv4 address with its prefix length, as `ip addr` shows it (`192.0.2.10/24`):
/// unlike `IPPrefix`, the host bits are the point.
public struct IPv4InterfaceAddress: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv4Address
    public let prefixLength: Int

    /// Refuses addresses no interface can have: 0.0.0.0, loopback (127/8), multicast and
    /// class E (224/3), and, on prefixes of /30 or wider, the network and broadcast addresses
    /// (RFC 3021 lets /31 use both).
    public init(address: IPv4Address, prefixLength: Int) throws(ApplianceSettingsError) {
        let text = "\(address)/\(prefixLength)"
        guard (1...32).contains(prefixLength) else {
            throw .invalidInterfaceAddress(text, reason: "the prefix length must be 1–32")
        }
        let first = address.rawValue >> 24
        let reason: String? =
            if address.rawValue == 0 {
                "0.0.0.0 means \"no address\""
            } else if first == 127 {
                "127.0.0.0/8 is loopback"
            } else if first >= 224 {
                "224.0.0.0/3 is multicast or reserved"
            } else if prefixLength <= 30 {
                switch address.rawValue & ~(UInt32.max << UInt32(32 - prefixLength)) {
                case 0:
                    "it is the network address of \(IPPrefix(address: .v4(address), length: prefixLength)!)"
                case ~(UInt32.max << UInt32(32 - prefixLength)):
                    "it is the broadcast address of \(IPPrefix(address: .v4(address), length: prefixLength)!)"
                default: nil
                }
            } else {
                nil
            }
        if let reason { throw .invalidInterfaceAddress(text, reason: reason) }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// The shell's form: `192.0.2.10 255.255.255.0`.
    public init(address: String, netmask: String) throws(ApplianceSettingsError) {
        guard let ip = IPv4Address(address) else { throw .invalidIPv4Address(address) }
        guard let mask = IPv4Address(netmask) else { throw .invalidNetmask(netmask) }
        let ones = mask.rawValue.leadingZeroBitCount == 0 ? (~mask.rawValue).leadingZeroBitCount : 0
        // Contiguous: the ones, then only zeros (RFC 4632 §3.1 has no other kind).
        guard ones > 0, ones == 32 || mask.rawValue << UInt32(ones) == 0 else {
            throw .invalidNetmask(netmask)
        }
        try self.init(address: ip, prefixLength: ones)
    }

    /// `192.0.2.10/24`, as stored.
    public init(_ text: String) throws(ApplianceSettingsError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let ip = IPv4Address(String(parts[0])),
            parts[1].utf8.allSatisfy({ (48...57).contains($0) }), let length = Int(parts[1])
        else { throw .invalidInterfaceAddress(text, reason: "expected ADDRESS/LENGTH") }
        try self.init(address: ip, prefixLength: length)
    }

    public var netmask: IPv4Address {
        IPv4Address(rawValue: UInt32.max << UInt32(32 - prefixLength))
    }
    public var description: String { "\(address)/\(prefixLength)" }
}

/// One interface's settings; a nil property is left as the kernel has it.
public struct InterfaceSettings: Hashable, Sendable {
    /// RFC 791 requires every IPv4 link to carry 68 octets; 65535 is the largest IPv4 datagram.
    public static let mtuRange = 68...65535

    public enum Addressing: Hashable, Sendable {
        case staticIPv4(IPv4InterfaceAddress)
        /// Addresses come from a DHCP client; the appliance removes its static address.
        case dhcp
    }

    public let name: InterfaceName
    public var addressing: Addressing?
    public private(set) var mtu: Int?
    /// The administrative state: true for `up`, false for `down`.
    public var isUp: Bool?

    public init(
        name: InterfaceName, addressing: Addressing? = nil, mtu: Int? = nil, isUp: Bool? = nil
    )
        throws(ApplianceSettingsError)
    {
        self.name = name
        self.addressing = addressing
        self.isUp = isUp
        try setMTU(mtu)
    }

    public mutating func setMTU(_ mtu: Int?) throws(ApplianceSettingsError) {
        if let mtu, !Self.mtuRange.contains(mtu) { throw .invalidMTU(mtu) }
        self.mtu = mtu
    }

    /// The static address, if the interface has one.
    public var staticAddress: IPv4InterfaceAddress? {
        if case .staticIPv4(let address) = addressing { return address }
        return nil
    }
}

/// `add network route PREFIX GATEWAY`: traffic to `destination` goes to `gateway`, which must
/// be on-link (the kernel checks that when the route is applied).
public struct StaticRoute: Hashable, Sendable, CustomStringConvertible {
    public let destination: IPPrefix
    public let gateway: IPAddress

    public init(destination: IPPrefix, gateway: IPAddress) throws(ApplianceSettingsError) {
        let reason: String? =
            switch (destination.address, gateway) {
            case (.v4, .v6), (.v6, .v4): "it is not of the destination \(destination)'s family"
            case (_, .v4(let v4)) where v4.rawValue == 0: "it is the unspecified address"
            case (_, .v6(let v6)) where v6.high == 0 && v6.low == 0: "it is the unspecified address"
            case (_, .v4(let v4)) where v4.isMulticast || v4.rawValue == UInt32.max:
                "it is a multicast or broadcast address"
            case (_, .v6(let v6)) where v6.isMulticast: "it is a multicast address"
            default: nil
            }
        if let reason { throw .invalidGateway("\(gateway)", reason: reason) }
        self.destination = destination
        self.gateway = gateway
    }

    /// The shell's words: `PREFIX GATEWAY`, or `GATEWAY` alone for the default route of the
    /// gateway's family.
    public init(destination: String?, gateway: String) throws(ApplianceSettingsError) {
        guard let via = IPAddress(gateway) else { throw .invalidIPAddress(gateway) }
        let prefix: IPPrefix
        if let destination {
            guard let parsed = IPPrefix(destination), destination.contains("/") else {
                throw .invalidPrefix(destination)
            }
            prefix = parsed
        } else {
            switch via {
            case .v4: prefix = IPPrefix(address: .v4(IPv4Address(rawValue: 0)), length: 0)!
            case .v6: prefix = IPPrefix(address: .v6(IPv6Address(high: 0, low: 0)), length: 0)!
            }
        }
        try self.init(destination: prefix, gateway: via)
    }

    public var isDefault: Bool { destination.length == 0 }
    public var description: String { "\(isDefault ? "default" : "\(destination)") via \(gateway)" }
}

/// An NTP server: an address, or a host name the time daemon resolves.
public enum NTPServer: Hashable, Sendable, CustomStringConvertible {
    case address(IPAddress)
    case host(DomainName)

    public init(_ text: String) throws(ApplianceSettingsError) {
        if let address = IPAddress(text) {
            self = .address(address)
        } else if DomainName.problem(text, maximumLength: 253) == nil {
            self = .host(DomainName(validated: text))
        } else {
            throw .invalidNTPServer(text)
        }
    }

    public var description: String {
        switch self {
        case .address(let address): address.description
        case .host(let name): name.text
        }
    }
}

/// A login name in the portable form useradd(8) recommends: `[a-z_][a-z0-9_-]*`, at most 32.
public struct UserName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) throws(ApplianceSettingsError) {
        let bytes = Array(text.utf8)
        let reason: String? =
            if bytes.isEmpty || bytes.count > 32 {
                "it must be 1–32 characters long"
            } else if !(bytes[0] == UInt8(ascii: "_") || (97...122).contains(bytes[0])) {
                "it must start with a lowercase letter or \"_\""
            } else if let bad = bytes.first(where: {
                !((97...122).contains($0) || (48...57).contains($0) || $0 == UInt8(ascii: "_")
                    || $0 == UInt8(ascii: "-"))
            }) {
                "only lowercase letters, digits, \"_\" and \"-\" are allowed (found \(describe(bad)))"
            } else {
                nil
            }
        if let reason { throw .invalidUserName(text, reason: reason) }
        self.text = text
    }

    public var description: String { text }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.text < rhs.text }
}

/// An appliance user (the admin) and the crypt(5) hash of its password.
public struct ApplianceUser: Hashable, Sendable {
    public let name: UserName
    public var passwordHash: PasswordHash

    public init(name: UserName, passwordHash: PasswordHash) {
        self.name = name
        self.passwordHash = passwordHash
    }
}

/// Where vtepd serves its Prometheus metrics (`GET /metrics` over HTTP).
public enum MetricsSetting: Hashable, Sendable, CustomStringConvertible {
    /// No endpoint, even where vtepd's command line names one (`clear metrics`).
    case off
    case listen(IPEndpoint)

    /// The saved form: `off`, or the address as `IPEndpoint` writes it.
    public init(_ text: String) throws(ApplianceSettingsError) {
        if text == "off" {
            self = .off
            return
        }
        guard let endpoint = IPEndpoint(text) else {
            throw .invalidListenAddress(
                text, reason: "expected IP:PORT (port 1–65535), e.g. 192.0.2.10:9100")
        }
        try ApplianceSettings.checkMetricsListen(endpoint)
        self = .listen(endpoint)
    }

    public var description: String {
        switch self {
        case .off: "off"
        case .listen(let endpoint): endpoint.description
        }
    }
}

/// Everything the operator sets about the appliance host, as one value: what is saved, and
/// what `ApplianceHost.apply` makes the host match.
public struct ApplianceSettings: Hashable, Sendable {
    /// Incremented whenever the JSON form changes incompatibly; a newer file is refused, not
    /// guessed at.
    public static let schemaVersion = 1
    /// glibc's resolver uses the first three `nameserver` lines (MAXNS, resolv.conf(5)).
    public static let maximumDNSServers = 3
    /// The historical MAXDNSRCH of resolv.conf(5); other resolvers (musl, older glibc) stop
    /// there.
    public static let maximumSearchDomains = 6

    public var hostname: Hostname?
    /// Sorted by name, one per interface.
    public private(set) var interfaces: [InterfaceSettings] = []
    public private(set) var routes: [StaticRoute] = []
    public private(set) var dnsServers: [IPAddress] = []
    public private(set) var dnsSearchDomains: [DomainName] = []
    public private(set) var ntpServers: [NTPServer] = []
    /// Sorted by name.
    public private(set) var users: [ApplianceUser] = []
    /// The leases vtepd's DHCP clients hold, by interface: state of the moment, never saved
    /// (ApplianceSettingsJSON leaves them out). Only an interface configured for DHCP has one.
    public private(set) var dhcpLeases: [InterfaceName: DHCPLease] = [:]
    /// The metrics endpoint; nil: as vtepd's command line says (`--metrics-listen`, else off).
    public var metrics: MetricsSetting?

    public init(hostname: Hostname? = nil) { self.hostname = hostname }

    // MARK: Interfaces

    public func interface(_ name: InterfaceName) -> InterfaceSettings? {
        interfaces.first { $0.name == name }
    }

    /// Changes `name`'s settings through `body`, creating its entry if there is none.
    public mutating func updateInterface(
        _ name: InterfaceName,
        _ body: (inout InterfaceSettings) throws(ApplianceSettingsError) -> Void
    ) throws(ApplianceSettingsError) {
        var settings: InterfaceSettings
        if let existing = interface(name) {
            settings = existing
        } else {
            settings = try InterfaceSettings(name: name)
        }
        try body(&settings)
        if let address = settings.staticAddress,
            let other = interfaces.first(where: {
                $0.name != name && $0.staticAddress?.address == address.address
            })
        {
            throw .duplicate(what: "address", value: "\(address.address) (on \(other.name))")
        }
        interfaces.removeAll { $0.name == name }
        interfaces.append(settings)
        interfaces.sort { $0.name < $1.name }
        if settings.addressing != .dhcp { dhcpLeases[name] = nil }
    }

    // MARK: DHCP

    /// Records (or, with nil, forgets) the lease of an interface configured for DHCP.
    public mutating func setLease(_ lease: DHCPLease?, on name: InterfaceName)
        throws(ApplianceSettingsError)
    {
        guard interface(name)?.addressing == .dhcp else {
            throw .notConfigured(what: "DHCP addressing on interface", value: "\(name)")
        }
        dhcpLeases[name] = lease
    }

    /// The IPv4 address an interface should have: its static one, or its lease's.
    public func address(of name: InterfaceName) -> IPv4InterfaceAddress? {
        switch interface(name)?.addressing {
        case .staticIPv4(let address)?: address
        case .dhcp?: dhcpLeases[name]?.address
        case nil: nil
        }
    }

    /// The static routes, and a default route through each lease's first router unless a
    /// static IPv4 default route is configured (the operator's choice wins) or an earlier
    /// lease gave one already (the kernel takes one default route per metric).
    public var effectiveRoutes: [StaticRoute] {
        var all = routes
        for name in dhcpLeases.keys.sorted() {
            guard let router = dhcpLeases[name]?.routers.first,
                !all.contains(where: {
                    if case .v4 = $0.gateway { $0.isDefault } else { false }
                }),
                let route = try? StaticRoute(destination: nil, gateway: "\(router)")
            else { continue }
            all.append(route)
        }
        return all
    }

    /// The static DNS servers, then the leases', at most `maximumDNSServers` (the resolver
    /// reads no more).
    public var effectiveDNSServers: [IPAddress] {
        merged(dnsServers, \.dnsServers, limit: Self.maximumDNSServers)
    }

    /// The static search domains, then the leases', at most `maximumSearchDomains`.
    public var effectiveSearchDomains: [DomainName] {
        merged(dnsSearchDomains, \.searchDomains, limit: Self.maximumSearchDomains)
    }

    /// `statics`, then each lease's `leased` values (leases in interface order), each once.
    private func merged<T: Equatable>(
        _ statics: [T], _ leased: KeyPath<DHCPLease, [T]>, limit: Int
    ) -> [T] {
        var all = statics
        for name in dhcpLeases.keys.sorted() {
            for value in dhcpLeases[name]![keyPath: leased] where !all.contains(value) {
                all.append(value)
            }
        }
        return Array(all.prefix(limit))
    }

    // MARK: Routes

    public mutating func addRoute(_ route: StaticRoute) throws(ApplianceSettingsError) {
        // The kernel keys routes by destination (and metric): a second gateway for the same
        // prefix would be refused there, so it is refused here, before anything changes.
        if let existing = routes.first(where: { $0.destination == route.destination }) {
            throw .duplicate(what: "route", value: "to \(route.destination) (\(existing))")
        }
        routes.append(route)
    }

    public mutating func removeRoute(_ route: StaticRoute) throws(ApplianceSettingsError) {
        guard routes.contains(route) else { throw .notConfigured(what: "route", value: "\(route)") }
        routes.removeAll { $0 == route }
    }

    public mutating func clearRoutes() { routes = [] }

    // MARK: DNS

    /// A resolver's address: a host's (a local resolver on loopback, such as 127.0.0.53, is
    /// one), not unspecified, broadcast or multicast.
    public static func checkDNSServer(_ server: IPAddress) throws(ApplianceSettingsError) {
        if let reason = server.notAHostAddress, !reason.contains("loopback") {
            throw .invalidDNSServer("\(server)", reason: reason)
        }
    }

    public mutating func addDNSServer(_ server: IPAddress) throws(ApplianceSettingsError) {
        try Self.checkDNSServer(server)
        if dnsServers.contains(server) { throw .duplicate(what: "DNS server", value: "\(server)") }
        guard dnsServers.count < Self.maximumDNSServers else {
            throw .tooMany(
                what: "DNS servers", limit: Self.maximumDNSServers,
                reason: "the resolver uses only the first three; remove one first")
        }
        dnsServers.append(server)
    }

    public mutating func removeDNSServer(_ server: IPAddress) throws(ApplianceSettingsError) {
        guard dnsServers.contains(server) else {
            throw .notConfigured(what: "DNS server", value: "\(server)")
        }
        dnsServers.removeAll { $0 == server }
    }

    public mutating func clearDNSServers() { dnsServers = [] }

    public mutating func addSearchDomain(_ domain: DomainName) throws(ApplianceSettingsError) {
        if dnsSearchDomains.contains(domain) {
            throw .duplicate(what: "DNS search domain", value: "\(domain)")
        }
        guard dnsSearchDomains.count < Self.maximumSearchDomains else {
            throw .tooMany(
                what: "DNS search domains", limit: Self.maximumSearchDomains,
                reason: "resolvers other than recent glibc ignore the rest")
        }
        dnsSearchDomains.append(domain)
    }

    public mutating func removeSearchDomain(_ domain: DomainName) throws(ApplianceSettingsError) {
        guard dnsSearchDomains.contains(domain) else {
            throw .notConfigured(what: "DNS search domain", value: "\(domain)")
        }
        dnsSearchDomains.removeAll { $0 == domain }
    }

    public mutating func clearSearchDomains() { dnsSearchDomains = [] }

    // MARK: NTP

    public mutating func addNTPServer(_ server: NTPServer) throws(ApplianceSettingsError) {
        if ntpServers.contains(server) { throw .duplicate(what: "NTP server", value: "\(server)") }
        ntpServers.append(server)
    }

    public mutating func removeNTPServer(_ server: NTPServer) throws(ApplianceSettingsError) {
        guard ntpServers.contains(server) else {
            throw .notConfigured(what: "NTP server", value: "\(server)")
        }
        ntpServers.removeAll { $0 == server }
    }

    public mutating func clearNTPServers() { ntpServers = [] }

    // MARK: Metrics

    /// An address the metrics endpoint may listen on: one address of this host (loopback
    /// included), never the wildcard, which would take in the tunnel addresses too and serve
    /// the metrics to the overlay's underlay.
    public static func checkMetricsListen(_ endpoint: IPEndpoint) throws(ApplianceSettingsError) {
        if let reason = endpoint.address.notAHostAddress, !reason.contains("loopback") {
            let detail =
                reason.contains("unspecified")
                ? "it is the unspecified address, which would listen on every address, the"
                    + " tunnel addresses too; give the management interface's address"
                : reason
            throw .invalidListenAddress("\(endpoint)", reason: detail)
        }
    }

    // MARK: Users

    public func user(_ name: UserName) -> ApplianceUser? { users.first { $0.name == name } }

    /// Adds the user, or replaces its password hash.
    public mutating func setUser(_ user: ApplianceUser) {
        users.removeAll { $0.name == user.name }
        users.append(user)
        users.sort { $0.name < $1.name }
    }

    /// The same settings without users (so without password hashes).
    public var withoutUsers: ApplianceSettings {
        var copy = self
        copy.users = []
        return copy
    }
}

// MARK: - Character classes shared by the validators

private func isLetterOrDigit(_ byte: UInt8) -> Bool {
    (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
}

/// A byte as an operator can read it in an error message: `"/"`, or `byte 0x0a` for one that
/// does not print.
private func describe(_ byte: UInt8) -> String {
    (32...126).contains(byte)
        ? "\"\(Character(Unicode.Scalar(byte)))\"" : "byte 0x\(String(byte, radix: 16))"
}
