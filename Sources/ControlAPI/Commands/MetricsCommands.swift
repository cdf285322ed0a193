import Appliance
import Packet
import Shell

// The Prometheus metrics endpoint: an appliance setting, saved and audited like the others;
// vtepd starts the listener before it saves, so a port in use is refused with nothing changed.

private let metricsWord = Syntax.keyword(
    "metrics", help: "The Prometheus metrics endpoint (GET /metrics over HTTP)")

public struct SetMetricsListen: ControlCommand {
    public static let command = "set-metrics-listen"
    public static let reply = ControlResult.Kind.accepted
    public var address: IPEndpoint
    public enum CodingKeys: String, CodingKey, CaseIterable { case address }
    public init(_ address: IPEndpoint) { self.address = address }
    public var shellLine: String { "set metrics listen \(address)" }
    public func validate() throws(ControlFailure) {
        do {
            try ApplianceSettings.checkMetricsListen(address)
        } catch {
            throw ControlFailure(error.description)
        }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.set, metricsWord,
                .keyword("listen", help: "Where the endpoint listens"),
                .argument(
                    "IP:PORT", .endpoint,
                    help: "An address of this host and a TCP port, e.g. 192.0.2.10:9100"),
            ],
            summary: "Serve Prometheus metrics on IP:PORT (never a tunnel address)"
        ) { Self($0.endpoint("IP:PORT")) }
    ]
}

public struct ClearMetrics: ControlCommand {
    public static let command = "clear-metrics"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "clear metrics" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.clear, metricsWord],
            summary: "Stop serving metrics, even where vtepd's --metrics-listen names one"
        ) { _ in Self() }
    ]
}

public struct ShowMetrics: ControlCommand {
    public static let command = "metrics"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show metrics" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, metricsWord],
            summary: "Show where metrics are served, why, and how many scrapes were answered"
        ) { _ in Self() }
    ]
}
