import ArgumentParser
import DaemonLogging
import DataPlane
import Foundation
import Gateway
import Logging
import OVSDB
import Packet
import ServiceLifecycle

/// vtepd: the VTEP gateway daemon. Thin by design (ARCHITECTURE.md): it parses bootstrap
/// settings, sets up logging, starts `GatewayDaemon` and runs its services in a
/// `ServiceGroup`, which stops them in order on SIGTERM or SIGINT.
@main
struct VTEPD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtepd",
        abstract: "VXLAN tunnel endpoint gateway programmed through OVSDB hardware_vtep.",
        subcommands: [Run.self, Show.self])
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway in the foreground until SIGTERM or SIGINT.")

    @Option(help: "Directory for the database, its socket and the control socket.")
    var stateRoot = "/var/lib/vtep-gateway"
    @Option(help: "Our Physical_Switch name (default: the host name).")
    var physicalSwitch: String?
    @Option(help: "Local VTEP address; give one IPv4 and/or one IPv6 address.")
    var tunnelIP: [String] = []
    @Option(help: "Underlay interface: tunnels leave and multicast groups are joined there.")
    var underlay: String
    @Option(help: "Access port (an interface); repeat for each.")
    var port: [String] = []
    @Option(
        help: ArgumentHelp(
            "External database (unix:PATH or tcp:IP:PORT; a cluster's members comma-separated,"
                + " tcp:A:6640,tcp:B:6640,tcp:C:6640) instead of our own ovsdb-server."))
    var database: String?
    @Option(help: "Extra remote for our own ovsdb-server, e.g. ptcp:6640 for a controller.")
    var databaseRemote: [String] = []
    @Option(help: "Control socket path (default: STATE-ROOT/vtepd.ctl).")
    var control: String?
    @Option(help: "VXLAN UDP port.") var vxlanPort: UInt16 = 4789
    @Option(help: "Outer TTL of unicast tunnel packets.") var ttl: UInt8 = 64
    @Option(help: "Outer TTL of packets to a multicast group.") var multicastTTL: UInt8 = 1
    @Option(
        help:
            "Where the appliance's files live (etc/hostname, etc/resolv.conf, …); a test sets a temporary directory."
    )
    var applianceRoot = "/"
    @Option(
        help:
            "Serve Prometheus metrics (GET /metrics) on IP:PORT, unless the shell's saved setting says otherwise (default: off)."
    )
    var metricsListen: String?
    @Option(help: "The least severe messages logged.")
    var logLevel: LogLevel = .info

    func validate() throws {
        let addresses = tunnelIP.compactMap(IPAddress.init)
        guard !tunnelIP.isEmpty else { throw ValidationError("give at least one --tunnel-ip") }
        var v4 = 0
        var v6 = 0
        for text in tunnelIP {
            switch IPAddress(text) {
            case .v4(let a)? where !a.isMulticast && a.rawValue != 0: v4 += 1
            case .v6(let a)? where !a.isMulticast && !(a.high == 0 && a.low == 0): v6 += 1
            default:
                throw ValidationError("--tunnel-ip \(text) is not a unicast IPv4 or IPv6 address")
            }
        }
        guard v4 <= 1, v6 <= 1 else {
            throw ValidationError("give at most one IPv4 and one IPv6 --tunnel-ip")
        }
        guard Set(port).count == port.count else {
            throw ValidationError("an access port is named twice")
        }
        guard !port.contains(underlay) else {
            throw ValidationError("\(underlay) cannot be both the underlay and an access port")
        }
        if let metricsListen {
            guard let endpoint = IPEndpoint(metricsListen) else {
                throw ValidationError(
                    "--metrics-listen \(metricsListen) is not IP:PORT (e.g. 192.0.2.10:9100)")
            }
            if addresses.contains(endpoint.address) {
                throw ValidationError(
                    "--metrics-listen \(metricsListen) is a tunnel address; give a management address"
                )
            }
        }
        if let database {
            do { _ = try Remote(database) } catch {
                throw ValidationError("--database \(database): \(error)")
            }
        }
    }

    /// A program installed beside vtepd (`/proc/self/exe`'s directory): the same build's.
    static func sibling(_ program: String) -> String {
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(program)
            .path
    }

    func run() async throws {
        DaemonLogging.bootstrap(
            level: logLevel.level, environment: ProcessInfo.processInfo.environment)
        let addresses = tunnelIP.compactMap(IPAddress.init)
        var settings = DataPlaneSettings(
            underlay: underlay,
            localIPv4: addresses.lazy.compactMap { if case .v4(let a) = $0 { a } else { nil } }
                .first,
            localIPv6: addresses.lazy.compactMap { if case .v6(let a) = $0 { a } else { nil } }
                .first)
        settings.vxlanPort = vxlanPort
        settings.unicastTTL = ttl
        settings.multicastTTL = multicastTTL
        var options = GatewayOptions(
            stateRoot: stateRoot,
            physicalSwitch: physicalSwitch ?? ProcessInfo.processInfo.hostName,
            tunnelIPs: addresses, ports: port, dataPlane: settings,
            controlSocket: control ?? stateRoot + "/vtepd.ctl",
            dhcpHook: Self.sibling("vtep-dhcp-event"))
        options.database = try database.map { try Remote($0) }
        options.databaseRemotes = databaseRemote
        options.applianceRoot = applianceRoot
        options.metricsListen = metricsListen.flatMap(IPEndpoint.init)

        let logger = Logger(label: "vtepd")
        let daemon: GatewayDaemon
        do {
            daemon = try await GatewayDaemon.start(options)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode.failure
        }
        var configuration = ServiceGroupConfiguration(
            services: daemon.services.map {
                .init(
                    service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "vtepd.lifecycle"))
        // A step that hangs (a child ignoring SIGTERM is SIGKILLed after 5 s already) must not
        // keep vtepd from exiting: what is left is cancelled.
        configuration.maximumGracefulShutdownDuration = .seconds(30)
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
        logger.notice("stopped")
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print vtepd's MAC table, counters or configuration from its control socket.")

    @Argument(help: "mac-table, counters or configuration") var what: String
    @Option(help: "Control socket path.") var control = "/var/lib/vtep-gateway/vtepd.ctl"
    @Option(name: .customLong("switch"), help: "mac-table: only this logical switch.")
    var logicalSwitch: String?
    @Option(help: "mac-table: only this MAC.") var mac: String?
    @Flag(help: "Print the JSON result instead of a table.") var json = false

    func validate() throws {
        guard ReportQuery.Report(rawValue: what) != nil else {
            throw ValidationError("show what? expected mac-table, counters or configuration")
        }
    }

    func run() async throws {
        let query = ReportQuery(
            report: ReportQuery.Report(rawValue: what)!, logicalSwitch: logicalSwitch, mac: mac,
            json: json)
        print(try await query.run(controlSocket: control), terminator: "")
    }
}

/// `--log-level`: swift-log's levels by their names.
struct LogLevel: ExpressibleByArgument {
    let level: Logger.Level
    static let info = LogLevel(level: .info)

    init(level: Logger.Level) { self.level = level }

    init?(argument: String) {
        guard let level = Logger.Level(rawValue: argument.lowercased()) else { return nil }
        self.level = level
    }

    var defaultValueDescription: String { level.rawValue }
    static var allValueStrings: [String] { Logger.Level.allCases.map(\.rawValue) }
}
