import Appliance
import Packet
import Shell

// Joining a controller cluster: the switch's certificate for the controller's admin, the
// controllers ovsdb-server connects to over SSL (Global.managers), and the CA they must be
// signed by.

/// `show switch certificate`: the switch's self-signed certificate (PEM) and its SHA-256
/// fingerprint, to paste into the controller. Never the key.
public struct ShowSwitchCertificate: ControlCommand {
    public static let command = "switch-certificate"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show switch certificate" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.switchWord, Word.certificate],
            summary: "Show the switch's certificate and fingerprint, for its controllers"
        ) { _ in Self() }
    ]
}

/// One Manager row per controller, target `ssl:IP:PORT`, replacing the previous set (rows a
/// controller added itself are kept).
public struct SetManagerCluster: ControlCommand {
    public static let command = "set-manager-cluster"
    public static let reply = ControlResult.Kind.accepted
    /// The OVSDB port IANA assigned (RFC 7047 §6).
    public static let defaultPort = 6640
    public var addresses: [IPAddress]
    public var port: Int
    public enum CodingKeys: String, CodingKey, CaseIterable { case addresses, port }

    public init(addresses: [IPAddress], port: Int = defaultPort) {
        self.addresses = addresses
        self.port = port
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        addresses = try container.decode([IPAddress].self, forKey: .addresses)
        port = try container.decodeIfPresent(Int.self, forKey: .port) ?? Self.defaultPort
    }

    /// The port always written out, so the line says where the switch connects.
    public var shellLine: String {
        "set switch manager-cluster \(addresses.map(\.description).joined(separator: ",")) port \(port)"
    }

    /// The Manager targets, in the order given.
    public var targets: [String] { addresses.map { Self.target($0, port: port) } }

    /// `ssl:IP:PORT`, an IPv6 address in brackets (ovsdb-server(1)'s remote syntax).
    public static func target(_ address: IPAddress, port: Int) -> String {
        if case .v6 = address { return "ssl:[\(address)]:\(port)" }
        return "ssl:\(address):\(port)"
    }

    public func validate() throws(ControlFailure) {
        guard !addresses.isEmpty else {
            throw ControlFailure("give at least one controller address")
        }
        guard (1...65_535).contains(port) else {
            throw ControlFailure("port \(port) is out of range (1–65535)")
        }
        var seen: Set<IPAddress> = []
        for address in addresses {
            guard seen.insert(address).inserted else {
                throw ControlFailure("\(address) is listed twice")
            }
            if let reason = address.notAHostAddress {
                throw ControlFailure("\(address) cannot be a controller: \(reason)")
            }
        }
    }

    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.set, Word.switchWord, Word.managerCluster,
                .argument(
                    "IP,IP...", .ipAddressList,
                    help: "Controller addresses, comma-separated"),
                .optional([
                    .keyword("port", help: "The controllers' OVSDB SSL port (default 6640)"),
                    .argument(
                        "N", .integer(IntegerRange("port", 1...65_535)), help: "TCP port"),
                ]),
            ],
            summary: "Connect to these controllers over SSL, replacing the previous set"
        ) { Self(addresses: $0.ipList("IP,IP..."), port: $0.integer("N") ?? defaultPort) }
    ]
}

/// Per controller target: connected or not, the connection's state, last error and times
/// (Manager `is_connected` and `status`), and the CA in force.
public struct ShowManagerCluster: ControlCommand {
    public static let command = "manager-cluster"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show switch manager-cluster" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, Word.switchWord, Word.managerCluster],
            summary: "Show each controller connection: state, last error, since when"
        ) { _ in Self() }
    ]
}

/// Removes the Manager rows `set switch manager-cluster` made.
public struct ClearManagerCluster: ControlCommand {
    public static let command = "clear-manager-cluster"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "clear switch manager-cluster" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.clear, Word.switchWord, Word.managerCluster],
            summary: "Disconnect from the controllers set by set switch manager-cluster"
        ) { _ in Self() }
    ]
}

/// Installs the CA controllers must be signed by. The shell asks for the PEM (pasted, ended
/// by an empty line); the wire carries it in `pem`.
public struct SetCACertificate: ControlCommand {
    public static let command = "set-ca-certificate"
    public static let reply = ControlResult.Kind.accepted
    /// A CA certificate is a few kilobytes; a chain or a mistake is refused before it is read.
    public static let maximumLength = 65_536
    public var pem: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case pem }
    public init(pem: String) { self.pem = pem }
    /// The PEM follows the line (the shell asks for it), so it is not part of it.
    public var shellLine: String { "set switch ca-certificate" }
    public func validate() throws(ControlFailure) {
        guard pem.utf8.count <= Self.maximumLength else {
            throw ControlFailure(
                "the certificate is longer than \(Self.maximumLength) bytes; give one CA"
                    + " certificate")
        }
    }
    /// The shell's words (the dialogue is the shell's own, in ShellSession).
    public static let syntax: [Syntax] = [
        Word.set, Word.switchWord,
        .keyword(
            "ca-certificate",
            help: "The controllers' CA (pasted as PEM, ended by an empty line)"),
    ]
    public static let summary =
        "Require controllers signed by this CA (pasted PEM, then an empty line)"
}

/// Removes the installed CA (and the one trusted on first use): the first controller's CA is
/// trusted again.
public struct ClearCACertificate: ControlCommand {
    public static let command = "clear-ca-certificate"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "clear switch ca-certificate" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.clear, Word.switchWord,
                .keyword("ca-certificate", help: "The controllers' CA"),
            ],
            summary: "Forget the controllers' CA: trust the first controller's CA again"
        ) { _ in Self() }
    ]
}
