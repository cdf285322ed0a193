import ArgumentParser
import DaemonLogging
import DataPlane
import Foundation
import Gateway
import Logging
import ManualPages
import OVSDB
import Packet
import ServiceLifecycle
import SystemdNotify

/// vtepd: the VTEP gateway daemon. Thin by design (ARCHITECTURE.md): it parses bootstrap
/// settings, sets up logging, starts `GatewayDaemon` and runs its services in a
/// `ServiceGroup`, which stops them in order on SIGTERM or SIGINT.
@main
struct VTEPD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtepd",
        abstract: "VXLAN tunnel endpoint gateway programmed through OVSDB hardware_vtep.",
        subcommands: [Run.self, Show.self])

    @Option(
        help: ArgumentHelp(
            "Print a manual page generated from vtepd's options and settings and exit: man, vtepd(8); conf, vtepd.conf(5).",
            valueName: "man|conf"))
    var reference: String?

    func run() async throws {
        let commandLine = try CommandLineDescription(dumpedHelp: Self._dumpHelp())
        switch reference {
        case "man"?: print(DaemonManual.daemonPage(commandLine: commandLine).roff, terminator: "")
        case "conf"?:
            print(try DaemonManual.configurationPage(commandLine: commandLine).roff, terminator: "")
        case let other?: throw ValidationError("--reference: \(other)? expected man or conf")
        case nil: throw CleanExit.helpRequest(self)
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway in the foreground until SIGTERM or SIGINT.",
        discussion: """
            Every option can also be set in the configuration file (KEY = VALUE, the option's \
            name without its dashes); the command line overrides the file, a list as a whole.
            """)

    @Option(
        help: """
            Configuration file (default: \(BootstrapSettings.defaultPath), read when it \
            exists; a file named here must exist).
            """)
    var config: String?
    @Option(
        help:
            "Directory for the database, its socket and the control socket (default: \(BootstrapSettings.defaultStateRoot))."
    )
    var stateRoot: String?
    @Option(help: "Our Physical_Switch name (default: the host name).")
    var physicalSwitch: String?
    @Option(help: "Local VTEP address; give one IPv4 and/or one IPv6 address.")
    var tunnelIP: [String] = []
    @Option(help: "Underlay interface: tunnels leave and multicast groups are joined there.")
    var underlay: String?
    @Option(help: "Access port (an interface); repeat for each.")
    var port: [String] = []
    @Option(help: "External database (unix:PATH or tcp:IP:PORT) instead of our own ovsdb-server.")
    var database: String?
    @Option(help: "Extra remote for our own ovsdb-server, e.g. ptcp:6640 for a controller.")
    var databaseRemote: [String] = []
    @Option(help: "Control socket path (default: STATE-ROOT/vtepd.ctl).")
    var control: String?
    @Option(help: "VXLAN UDP port (default: 4789).") var vxlanPort: String?
    @Option(help: "Outer TTL of unicast tunnel packets (default: 64).") var ttl: String?
    @Option(help: "Outer TTL of packets to a multicast group (default: 1).")
    var multicastTTL: String?
    @Option(
        help:
            "Where the appliance's files live (etc/hostname, etc/resolv.conf, …); a test sets a temporary directory."
    )
    var applianceRoot: String?
    @Option(
        help:
            "Serve Prometheus metrics (GET /metrics) on IP:PORT, unless the shell's saved setting says otherwise (default: off)."
    )
    var metricsListen: String?
    @Option(
        help:
            "Learned MAC entries across every logical switch, allocated at start (default: 1048576)."
    )
    var macTableLimit: String?
    @Option(
        help:
            "Microseconds the data-plane worker keeps polling after a frame before it sleeps: lower latency for that much CPU (default: 50; 0: off)."
    )
    var busyPollUs: String?
    @Option(
        help:
            "Real-time (SCHED_FIFO) priority of the data-plane worker thread, ahead of ordinary tasks as the kernel's own forwarding is: 1–99, or 0 to leave it under the scheduler vtepd was started with, normally the time-sharing one (default: 0). Shortens the latency tail on a busy machine."
    )
    var datapathPriority: String?
    @Option(
        help:
            "How VXLAN to the tunnel addresses is read: socket (the kernel's UDP sockets, after its IP input and the host firewall) or ring (unicast VXLAN from a receive ring on the underlay, the kernel's copy dropped at ingress: faster decapsulation; the firewall's input chain does not see it) (default: socket)."
    )
    var vxlanReceive: String?
    @Option(
        help:
            "How TCP super-frames leave toward VXLAN tunnels: tunnel-gso (whole, through a TAP device vtepd-gso redirected to the underlay, cut by the NIC or the kernel there: faster toward kernel VTEPs; Linux 6.17+), trains (cut here, sent as UDP GSO trains), or auto (tunnel-gso where the kernel and /dev/net/tun allow it, else trains, saying why in the log) (default: auto)."
    )
    var vxlanTransmit: String?
    @Option(
        help:
            "Where UDP GSO trains (a flow's VXLAN datagrams back to back, one packet through the kernel) are handed to the kernel: packet-socket (the underlay's packet socket, past the kernel's IP output; Linux 6.2+), udp-socket (a pool of 32 UDP sockets with UDP_SEGMENT, one per source port; Linux 4.18+), or auto (packet-socket on Linux 6.2 or later, else udp-socket) (default: auto)."
    )
    var vxlanTrains: String?
    @Option(
        help:
            "What logical routers' network namespaces are named with, before the router's name (default: vtep-lr-)."
    )
    var routerNamespacePrefix: String?
    @Option(
        help: """
            The least severe messages logged: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")) \
            (default: info).
            """)
    var logLevel: String?

    /// The options given, as settings: each through the parser the file's values go through.
    func commandLine() throws(BootstrapSettingsError) -> BootstrapSettings {
        var settings = BootstrapSettings()
        let given: [(BootstrapSettings.Key, [String])] = [
            (.stateRoot, stateRoot.map { [$0] } ?? []),
            (.physicalSwitch, physicalSwitch.map { [$0] } ?? []), (.tunnelIP, tunnelIP),
            (.underlay, underlay.map { [$0] } ?? []), (.port, port),
            (.database, database.map { [$0] } ?? []), (.databaseRemote, databaseRemote),
            (.control, control.map { [$0] } ?? []), (.vxlanPort, vxlanPort.map { [$0] } ?? []),
            (.ttl, ttl.map { [$0] } ?? []), (.multicastTTL, multicastTTL.map { [$0] } ?? []),
            (.applianceRoot, applianceRoot.map { [$0] } ?? []),
            (.logLevel, logLevel.map { [$0] } ?? []),
            (.metricsListen, metricsListen.map { [$0] } ?? []),
            (.macTableLimit, macTableLimit.map { [$0] } ?? []),
            (.busyPollUS, busyPollUs.map { [$0] } ?? []),
            (.datapathPriority, datapathPriority.map { [$0] } ?? []),
            (.vxlanReceive, vxlanReceive.map { [$0] } ?? []),
            (.vxlanTransmit, vxlanTransmit.map { [$0] } ?? []),
            (.vxlanTrains, vxlanTrains.map { [$0] } ?? []),
            (.routerNamespacePrefix, routerNamespacePrefix.map { [$0] } ?? []),
        ]
        for (key, values) in given where !values.isEmpty {
            do { try settings.set(key, values) } catch { throw .init("--\(error.reason)") }
        }
        return settings
    }

    /// The configuration file's settings with the command line's over them.
    func settings() throws -> BootstrapSettings {
        let path = config ?? BootstrapSettings.defaultPath
        var file = BootstrapSettings()
        if config != nil || FileManager.default.fileExists(atPath: path) {
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw ValidationError("cannot read the configuration file \(path): \(error)")
            }
            file = try BootstrapSettings(file: text, path: path)
        }
        return file.overridden(by: try commandLine())
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
        // First: a SIGTERM from here on stops vtepd in order, also during its start.
        let stopSignals: StopSignals
        do { stopSignals = try StopSignals.catchNow() } catch {
            FileHandle.standardError.write(Data("vtepd: \(error)\n".utf8))
            throw ExitCode.failure
        }
        let environment = ProcessInfo.processInfo.environment
        let settings: BootstrapSettings
        let options: GatewayOptions
        do {
            settings = try self.settings()
            options = try settings.gatewayOptions(
                hostName: ProcessInfo.processInfo.hostName,
                dhcpHook: Self.sibling("vtep-dhcp-event"))
        } catch {
            // EX_CONFIG (sysexits.h): the unit's RestartPreventExitStatus, so systemd does not
            // restart a vtepd that would only refuse the same settings again.
            FileHandle.standardError.write(Data("vtepd: \(error)\n".utf8))
            throw ExitCode(78)
        }
        DaemonLogging.bootstrap(level: settings.logLevel ?? .info, environment: environment)

        let logger = Logger(label: "vtepd")
        let daemon: GatewayDaemon
        do {
            daemon = try await GatewayDaemon.start(options)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode.failure
        }
        // First in the services, so the last to hear of a shutdown: a second signal while the
        // others stop changes nothing.
        var services: [any Service] = [stopSignals] + daemon.services
        if let notifier = SystemdNotifier(environment: environment) {
            services.append(
                ServiceManagerNotifications(
                    notifier: notifier,
                    watchdog: SystemdNotifier.watchdogInterval(environment: environment),
                    status:
                        "forwarding: underlay \(options.dataPlane.underlay), \(options.ports.count) access ports",
                    workerAnswers: { await daemon.workerAnswers() }))
        }
        var configuration = ServiceGroupConfiguration(
            services: services.map {
                .init(
                    service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup)
            },
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
        try await query.run(controlSocket: control) { print($0, terminator: "") }
    }
}
