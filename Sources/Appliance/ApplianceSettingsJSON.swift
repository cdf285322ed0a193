import Foundation
import Packet

/// The saved form of `ApplianceSettings`: JSON with sorted keys, every value as the text the
/// operator typed (addresses, prefixes, names), so the file is stable (the same settings give
/// the same bytes) and readable:
///
/// ```json
/// {
///   "dns_search_domains" : [ "example.net" ],
///   "dns_servers" : [ "192.0.2.53" ],
///   "hostname" : "gw1",
///   "interfaces" : [ { "admin_state" : "up", "ipv4" : "192.0.2.10/24", "mtu" : 9000, "name" : "eth1" } ],
///   "metrics" : "192.0.2.10:9100",
///   "ntp_servers" : [ "pool.ntp.org" ],
///   "routes" : [ { "destination" : "0.0.0.0/0", "gateway" : "192.0.2.1" } ],
///   "schema_version" : 1,
///   "users" : [ { "name" : "admin", "password_hash" : "$y$…" } ]
/// }
/// ```
///
/// `ipv4` is `dhcp` or `ADDRESS/LENGTH`; an absent key means "leave as the kernel has it".
/// `metrics` is `off` or `IP:PORT`; absent, vtepd's `--metrics-listen` decides.
/// Decoding validates every value again, so a hand-edited file is held to the shell's rules.
extension ApplianceSettings: Codable {
    private struct Document: Codable {
        var schemaVersion: Int
        var hostname: String?
        var interfaces: [Interface]
        var routes: [Route]
        var dnsServers: [String]
        var dnsSearchDomains: [String]
        var ntpServers: [String]
        var users: [User]
        var metrics: String?

        enum CodingKeys: String, CodingKey {
            case schemaVersion = "schema_version"
            case hostname, interfaces, routes, users, metrics
            case dnsServers = "dns_servers"
            case dnsSearchDomains = "dns_search_domains"
            case ntpServers = "ntp_servers"
        }
    }

    private struct Interface: Codable {
        var name: String
        var ipv4: String?
        var mtu: Int?
        var adminState: String?

        enum CodingKeys: String, CodingKey {
            case name, ipv4, mtu
            case adminState = "admin_state"
        }
    }

    private struct Route: Codable {
        var destination: String
        var gateway: String
    }

    private struct User: Codable {
        var name: String
        var passwordHash: String

        enum CodingKeys: String, CodingKey {
            case name
            case passwordHash = "password_hash"
        }
    }

    public func encode(to encoder: any Encoder) throws {
        let document = Document(
            schemaVersion: Self.schemaVersion,
            hostname: hostname?.text,
            interfaces: interfaces.map { settings in
                let ipv4: String? =
                    switch settings.addressing {
                    case .staticIPv4(let address): address.description
                    case .dhcp: "dhcp"
                    case nil: nil
                    }
                return Interface(
                    name: settings.name.text, ipv4: ipv4, mtu: settings.mtu,
                    adminState: settings.isUp.map { $0 ? "up" : "down" })
            },
            routes: routes.map {
                Route(destination: "\($0.destination)", gateway: "\($0.gateway)")
            },
            dnsServers: dnsServers.map(\.description),
            dnsSearchDomains: dnsSearchDomains.map(\.text),
            ntpServers: ntpServers.map(\.description),
            users: users.map { User(name: $0.name.text, passwordHash: $0.passwordHash.text) },
            metrics: metrics?.description)
        try document.encode(to: encoder)
    }

    public init(from decoder: any Decoder) throws {
        let document = try Document(from: decoder)
        guard document.schemaVersion == Self.schemaVersion else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: [],
                    debugDescription: "schema version \(document.schemaVersion) is not the"
                        + " supported \(Self.schemaVersion) (written by another release?)"))
        }
        do throws(ApplianceSettingsError) {
            self.init(
                hostname: try document.hostname.map { (text) throws(ApplianceSettingsError) in
                    try Hostname(text)
                })
            for entry in document.interfaces {
                let name = try InterfaceName(entry.name)
                let addressing: InterfaceSettings.Addressing? =
                    switch entry.ipv4 {
                    case nil: nil
                    case "dhcp": .dhcp
                    case let text?: .staticIPv4(try IPv4InterfaceAddress(text))
                    }
                let isUp: Bool? =
                    switch entry.adminState {
                    case nil: nil
                    case "up": true
                    case "down": false
                    case let other?:
                        throw .invalidValue(
                            field: "admin_state", owner: "\(name)", value: other,
                            expected: "up or down")
                    }
                try updateInterface(name) { (settings) throws(ApplianceSettingsError) in
                    settings.addressing = addressing
                    settings.isUp = isUp
                    try settings.setMTU(entry.mtu)
                }
            }
            for route in document.routes {
                try addRoute(StaticRoute(destination: route.destination, gateway: route.gateway))
            }
            for server in document.dnsServers {
                guard let address = IPAddress(server) else { throw .invalidIPAddress(server) }
                try addDNSServer(address)
            }
            for domain in document.dnsSearchDomains { try addSearchDomain(DomainName(domain)) }
            for server in document.ntpServers { try addNTPServer(NTPServer(server)) }
            metrics = try document.metrics.map { (text) throws(ApplianceSettingsError) in
                try MetricsSetting(text)
            }
            for user in document.users {
                setUser(
                    ApplianceUser(
                        name: try UserName(user.name),
                        passwordHash: try PasswordHash(user.passwordHash)))
            }
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "\(error)"))
        }
    }

    /// The saved bytes: sorted keys, pretty-printed, ending in a newline.
    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        // Encoding plain strings, integers and arrays cannot fail.
        return Array(try! encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    /// Reads the saved form; `reason` says what is wrong with a file that is not one.
    public init(json bytes: [UInt8]) throws(ApplianceSettingsStoreError) {
        do {
            self = try JSONDecoder().decode(ApplianceSettings.self, from: Data(bytes))
        } catch let DecodingError.dataCorrupted(context) {
            let underlying = (context.underlyingError).map { ": \($0)" } ?? ""
            throw .corrupt(path: nil, reason: context.debugDescription + underlying)
        } catch let DecodingError.keyNotFound(key, _) {
            throw .corrupt(path: nil, reason: "the key \"\(key.stringValue)\" is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw .corrupt(
                path: nil,
                reason:
                    "a value has the wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
            )
        } catch {
            throw .corrupt(path: nil, reason: "\(error)")
        }
    }
}
