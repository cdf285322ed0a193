import Packet

/// A whole number argument with the quantity it counts and its allowed range, so that a
/// refusal can say "VNI 16777216 is out of range (0–16777215)".
public struct IntegerRange: Hashable, Sendable {
    /// What the number is, as an operator calls it: "VNI", "VLAN", "MTU".
    public var quantity: String
    public var bounds: ClosedRange<Int>

    public init(_ quantity: String, _ bounds: ClosedRange<Int>) {
        self.quantity = quantity
        self.bounds = bounds
    }

    /// RFC 7348 §5: the VNI is 24 bits.
    public static let vni = IntegerRange("VNI", 0...16_777_215)
    /// IEEE 802.1Q: 12-bit VLAN ID, 4095 reserved; 0 means untagged (priority-tagged).
    public static let vlan = IntegerRange("VLAN", 0...4094)
    /// RFC 791: every IPv4 host must handle 68 octets; 65535 is the IPv4 total-length limit.
    public static let mtu = IntegerRange("MTU", 68...65_535)
    /// Echo requests per `ping`: bounded so that a typo cannot run for hours.
    public static let count = IntegerRange("count", 1...1000)
    /// Log lines per `show log`.
    public static let lines = IntegerRange("line count", 1...100_000)
}

/// The type of a typed argument token. Each kind parses its text into a typed
/// `ArgumentValue`, so the executor never re-parses strings, and refuses anything else with a
/// reason an operator can act on.
///
/// The string kinds (`name`, `hostname`, `host`, `domain`, `interfaceName`) allow only
/// letters, digits and a few punctuation marks, never a leading `-`: values end up in argument
/// vectors (`ping`), file contents (`resolv.conf`) and database rows, and none of them may be
/// mistaken for an option, a path or shell syntax.
public enum ArgumentKind: Hashable, Sendable {
    /// A name of our own choosing (a logical switch): letters, digits, `.`, `_`, `-`; 1–64.
    case name
    /// The appliance's host name: RFC 1123 §2.1 labels, at most 64 characters
    /// (HOST_NAME_MAX, sethostname(2)).
    case hostname
    /// A host to reach: an IPv4 or IPv6 address or an RFC 1123 host name (ping, NTP).
    case host
    /// A DNS domain (search domains): RFC 1123 labels, at most 253 characters.
    case domain
    /// A Linux network interface: 1–15 characters (IFNAMSIZ − 1), as dev_valid_name() in
    /// net/core/dev.c allows, restricted further to letters, digits, `.`, `_`, `-`.
    case interfaceName
    /// A file in the admin's home directory (a package copied over with scp, a saved
    /// configuration): letters, digits, `.`, `_`, `-`, `+`, `~`; 1–128; never a path, never
    /// starting with `.` or `-`.
    case fileName
    case ipv4Address
    /// A dotted IPv4 netmask with contiguous one bits, `255.255.255.0`; parsed to a length.
    case ipv4Netmask
    /// An IPv4 or IPv6 address.
    case ipAddress
    /// A comma-separated list of IPv4 or IPv6 addresses, no spaces, no duplicates.
    case ipAddressList
    /// An IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast group address.
    case multicastGroup
    /// A CIDR prefix `ADDRESS/LENGTH` with the host bits clear.
    case prefix
    /// An IEEE 802 MAC address, `00:11:22:33:44:55`.
    case mac
    /// An address and port to listen on, `192.0.2.1:9100` or `[2001:db8::1]:9100`.
    case endpoint
    /// An interface's address with its prefix length, host bits set: `10.0.0.1/24`.
    case interfaceAddress
    /// An IPv4 address with an optional port, `192.0.2.10` or `192.0.2.10:8080` (NAT).
    case natAddress
    case integer(IntegerRange)

    /// Whether values of this kind are free text (as opposed to addresses and numbers); these
    /// are the fields the injection tests try.
    public var isString: Bool {
        switch self {
        case .name, .hostname, .host, .domain, .interfaceName, .fileName: true
        default: false
        }
    }

    /// What the token should be, for error messages: "an IPv4 address, e.g. 192.0.2.1".
    public var expectation: String {
        switch self {
        case .integer(let range):
            "a \(range.quantity) from \(range.bounds.lowerBound) to \(range.bounds.upperBound)"
        default: "\(noun), e.g. \(example)"
        }
    }

    /// The kind of value, with its article: "an IPv4 address".
    public var noun: String {
        switch self {
        case .name: "a name"
        case .hostname: "a host name"
        case .host: "a host name or IP address"
        case .domain: "a domain name"
        case .interfaceName: "an interface name"
        case .fileName: "a file name"
        case .ipv4Address: "an IPv4 address"
        case .ipv4Netmask: "an IPv4 netmask"
        case .ipAddress: "an IP address"
        case .ipAddressList: "a comma-separated list of IP addresses"
        case .multicastGroup: "a multicast group address"
        case .prefix: "a CIDR prefix"
        case .mac: "a MAC address"
        case .endpoint: "an IP address and port"
        case .interfaceAddress: "an address with its prefix length"
        case .natAddress: "an IPv4 address with an optional port"
        case .integer(let range): "a \(range.quantity)"
        }
    }

    /// A valid value, for help, error messages and tests.
    public var example: String {
        switch self {
        case .name: "web-tier"
        case .hostname: "gw1.example.net"
        case .host: "ntp.example.net"
        case .domain: "example.net"
        case .interfaceName: "eth0"
        case .fileName: "vtep-gateway_0.1.0+2_amd64.deb"
        case .ipv4Address: "192.0.2.1"
        case .ipv4Netmask: "255.255.255.0"
        case .ipAddress: "192.0.2.1"
        case .ipAddressList: "192.0.2.1,192.0.2.2"
        case .multicastGroup: "239.1.1.1"
        case .prefix: "10.0.0.0/24"
        case .mac: "00:11:22:33:44:55"
        case .endpoint: "192.0.2.1:9100"
        case .interfaceAddress: "10.0.0.1/24"
        case .natAddress: "192.0.2.10:8080"
        case .integer(let range): String(range.bounds.lowerBound)
        }
    }

    /// The allowed range appended to the help text of numbers, as Cisco prints `<1-4094>`.
    var rangeHint: String? {
        guard case .integer(let range) = self else { return nil }
        return "\(range.bounds.lowerBound)–\(range.bounds.upperBound)"
    }

    /// Parses `text` into a typed value, or says why not.
    public func parse(_ text: String) -> Result<ArgumentValue, ArgumentRefusal> {
        switch self {
        case .name:
            return checkedText(text, maximumLength: 64, allowed: isNameCharacter).map(
                ArgumentValue.text)
        case .interfaceName:
            if text == "." || text == ".." {
                return .failure(ArgumentRefusal("'\(text)' is not a valid interface name"))
            }
            return checkedText(text, maximumLength: 15, allowed: isNameCharacter).map(
                ArgumentValue.text)
        case .fileName:
            if text.hasPrefix(".") {
                return .failure(ArgumentRefusal("a file name must not start with '.'"))
            }
            // `copy running-config FILE` and `copy FILE running-config` stay unambiguous.
            if text == "running-config" {
                return .failure(
                    ArgumentRefusal("running-config names the running configuration, not a file"))
            }
            return checkedText(text, maximumLength: 128, allowed: isFileNameCharacter).map(
                ArgumentValue.text)
        case .hostname:
            if IPv4Address(text) != nil {
                // RFC 1123 §2.1: a host name never has the dotted-decimal form.
                return .failure(ArgumentRefusal("a host name cannot be an IPv4 address"))
            }
            return checkedDomain(text, maximumLength: 64).map(ArgumentValue.text)
        case .domain:
            return checkedDomain(text, maximumLength: 253).map(ArgumentValue.text)
        case .host:
            if let address = IPAddress(text) { return .success(.host(.address(address))) }
            if text.contains(":") || text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
                return .failure(refusal())
            }
            return checkedDomain(text, maximumLength: 253).map { .host(.name($0)) }
        case .ipv4Address:
            guard let address = IPv4Address(text) else { return .failure(refusal()) }
            return .success(.ipv4(address))
        case .ipv4Netmask:
            guard let mask = IPv4Address(text) else { return .failure(refusal()) }
            let ones =
                mask.rawValue.leadingZeroBitCount == 0 ? (~mask.rawValue).leadingZeroBitCount : 0
            guard ones > 0, ones == 32 || mask.rawValue << ones == 0 else {
                return .failure(
                    ArgumentRefusal(
                        "\(text) is not a netmask: the one bits must be contiguous and not all zero, e.g. 255.255.255.0"
                    ))
            }
            return .success(.prefixLength(ones))
        case .ipAddress:
            guard let address = IPAddress(text) else { return .failure(refusal()) }
            return .success(.ip(address))
        case .ipAddressList:
            var addresses: [IPAddress] = []
            for item in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let address = IPAddress(String(item)) else {
                    return .failure(
                        ArgumentRefusal("'\(item)' is not an IP address; expected \(expectation)"))
                }
                if addresses.contains(address) {
                    return .failure(ArgumentRefusal("\(address) is listed twice"))
                }
                addresses.append(address)
            }
            return .success(.ipList(addresses))
        case .multicastGroup:
            guard let address = IPAddress(text) else { return .failure(refusal()) }
            guard address.isMulticast else {
                return .failure(
                    ArgumentRefusal(
                        "\(text) is not a multicast group (224.0.0.0/4 or ff00::/8), e.g. \(example)"
                    ))
            }
            return .success(.ip(address))
        case .prefix:
            guard let slash = text.firstIndex(of: "/"),
                let address = IPAddress(String(text[..<slash]))
            else { return .failure(refusal()) }
            let lengthText = text[text.index(after: slash)...]
            let maximum = if case .v4 = address { 32 } else { 128 }
            guard !lengthText.isEmpty, lengthText.count <= 3, lengthText.allSatisfy(\.isASCII),
                let length = Int(lengthText), length >= 0, length <= maximum
            else {
                return .failure(
                    ArgumentRefusal("the prefix length of \(text) must be 0–\(maximum)"))
            }
            guard let prefix = IPPrefix(text) else {
                let network = IPPrefix(address: address, length: length)!
                return .failure(
                    ArgumentRefusal(
                        "\(text) has host bits set; the network is \(network)"))
            }
            return .success(.prefix(prefix))
        case .mac:
            guard let mac = MACAddress(text) else { return .failure(refusal()) }
            return .success(.mac(mac))
        case .endpoint:
            guard let endpoint = IPEndpoint(text) else {
                return .failure(
                    ArgumentRefusal(
                        "expected IP:PORT with a port from 1 to 65535, e.g. \(example) or"
                            + " [2001:db8::1]:9100"))
            }
            return .success(.endpoint(endpoint))
        case .interfaceAddress:
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let address = IPAddress(String(parts[0])) else {
                return .failure(refusal())
            }
            let maximum = if case .v4 = address { 32 } else { 128 }
            guard !parts[1].isEmpty, parts[1].utf8.count <= 3,
                parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let length = Int(parts[1]), length <= maximum
            else {
                return .failure(
                    ArgumentRefusal("the prefix length of \(text) must be 0–\(maximum)"))
            }
            return .success(.text("\(address)/\(length)"))
        case .natAddress:
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let address = IPv4Address(String(parts[0])) else {
                return .failure(refusal())
            }
            guard parts.count == 2 else { return .success(.text("\(address)")) }
            guard parts[1].utf8.count <= 5, parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let port = Int(parts[1]), (1...65_535).contains(port)
            else {
                return .failure(ArgumentRefusal("the port of \(text) must be 1–65535"))
            }
            return .success(.text("\(address):\(port)"))
        case .integer(let range):
            guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                return .failure(refusal())
            }
            guard text.utf8.count <= 18, let value = Int(text), range.bounds.contains(value) else {
                return .failure(
                    ArgumentRefusal(
                        "\(range.quantity) \(text) is out of range (\(range.bounds.lowerBound)–\(range.bounds.upperBound))"
                    ))
            }
            return .success(.integer(value))
        }
    }

    private func refusal() -> ArgumentRefusal { ArgumentRefusal("expected \(expectation)") }

    /// The checks every free-text kind shares, in the order an operator can best act on: the
    /// characters that would be dangerous elsewhere are named first.
    private func checkedText(
        _ text: String, maximumLength: Int, allowed: (Character) -> Bool
    ) -> Result<String, ArgumentRefusal> {
        if text.isEmpty { return .failure(refusal()) }
        if text.hasPrefix("-") {
            // A leading '-' would be read as an option by ping, traceroute and friends.
            return .failure(ArgumentRefusal("\(noun) must not start with '-'"))
        }
        if let bad = text.first(where: { !allowed($0) }) {
            let shown =
                bad.unicodeScalars.allSatisfy { $0.properties.generalCategory == .control }
                ? bad.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }
                    .joined()
                : "'\(bad)'"
            return .failure(
                ArgumentRefusal("\(shown) is not allowed in \(noun) (\(allowedDescription))"))
        }
        if text.count > maximumLength {
            return .failure(
                ArgumentRefusal(
                    "\(noun) is at most \(maximumLength) characters, this one has \(text.count)"))
        }
        return .success(text)
    }

    /// RFC 1123 §2.1 (and RFC 952): labels of letters, digits and hyphens, 1–63 characters,
    /// neither starting nor ending with a hyphen, joined by dots.
    private func checkedDomain(_ text: String, maximumLength: Int) -> Result<
        String, ArgumentRefusal
    > {
        checkedText(text, maximumLength: maximumLength, allowed: isDomainCharacter).flatMap {
            text in
            for label in text.split(separator: ".", omittingEmptySubsequences: false) {
                if label.isEmpty {
                    return .failure(
                        ArgumentRefusal(
                            "'\(text)' has an empty label (two dots, or a dot at an end)"))
                }
                if label.count > 63 {
                    return .failure(
                        ArgumentRefusal("the label '\(label)' is longer than 63 characters"))
                }
                if label.hasPrefix("-") || label.hasSuffix("-") {
                    return .failure(
                        ArgumentRefusal("the label '\(label)' must not start or end with '-'"))
                }
            }
            return .success(text)
        }
    }

    private var allowedDescription: String {
        switch self {
        case .hostname, .host, .domain: "letters, digits, '-' and '.'"
        case .fileName: "letters, digits, '.', '_', '-', '+' and '~'"
        default: "letters, digits, '.', '_' and '-'"
        }
    }
}

private func isNameCharacter(_ c: Character) -> Bool {
    c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-")
}

private func isFileNameCharacter(_ c: Character) -> Bool {
    isNameCharacter(c) || c == "+" || c == "~"
}

private func isDomainCharacter(_ c: Character) -> Bool {
    c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "-")
}

/// Why an argument's text was refused, in words an operator can act on.
public struct ArgumentRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A host to reach: an address, or a name the resolver will look up.
public enum RemoteHost: Hashable, Sendable, CustomStringConvertible {
    case address(IPAddress)
    case name(String)

    public var description: String {
        switch self {
        case .address(let address): address.description
        case .name(let name): name
        }
    }
}

/// A parsed argument; `Arguments` hands these to the command builders.
public enum ArgumentValue: Hashable, Sendable {
    case text(String)
    case host(RemoteHost)
    case ipv4(IPv4Address)
    /// A netmask, as its prefix length.
    case prefixLength(Int)
    case ip(IPAddress)
    case ipList([IPAddress])
    case prefix(IPPrefix)
    case mac(MACAddress)
    case endpoint(IPEndpoint)
    case integer(Int)
    /// The keyword chosen among a `one of` token's words.
    case keyword(String)
}
