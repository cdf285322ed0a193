import Appliance
import ControlAPI
import DataPlane
import Datapath
import Forwarding
import Foundation
import HostConfiguration
import Logging
import OVSDB
import Packet
import Routing
import ServiceLifecycle
import SwitchControl
import Synchronization

/// What vtepd is started with (its command line and configuration file), checked.
public struct GatewayOptions: Sendable {
    public var stateRoot: String
    public var physicalSwitch: String
    public var tunnelIPs: [IPAddress]
    public var ports: [String]
    public var dataPlane: DataPlaneSettings
    /// An external database instead of our own ovsdb-server.
    public var database: Remote?
    /// Extra remotes for our own ovsdb-server.
    public var databaseRemotes: [String] = []
    public var controlSocket: String
    public var applianceRoot: String = "/"
    /// The udhcpc script (`vtep-dhcp-event`), installed beside vtepd.
    public var dhcpHook: String
    /// Where to serve Prometheus metrics while the appliance settings say nothing
    /// (`--metrics-listen`); nil: nowhere.
    public var metricsListen: IPEndpoint?
    /// Logical router R lives in network namespace `routerNamespacePrefix + R`.
    public var routerNamespacePrefix = "vtep-lr-"

    public init(
        stateRoot: String, physicalSwitch: String, tunnelIPs: [IPAddress], ports: [String],
        dataPlane: DataPlaneSettings, controlSocket: String, dhcpHook: String
    ) {
        self.stateRoot = stateRoot
        self.physicalSwitch = physicalSwitch
        self.tunnelIPs = tunnelIPs
        self.ports = ports
        self.dataPlane = dataPlane
        self.controlSocket = controlSocket
        self.dhcpHook = dhcpHook
    }
}

/// vtepd assembled: every part started, in the order they depend on each other, and handed
/// out as services for a `ServiceGroup`, which stops them in reverse order on SIGTERM or
/// SIGINT:
///
/// 1. the control socket: no more requests (its file is removed); the metrics endpoint;
/// 2. the hardware_vtep client and the local-MAC publisher;
/// 2a. the logical routers (namespaces, veths and their data-plane ports removed);
/// 3. the data-plane I/O error watch and the next-hop rounds;
/// 4. the data plane's worker (it leaves its multicast groups);
/// 5. the DHCP clients (killed, not released: their addresses stay for the next vtepd) and
///    the DHCP hook socket;
/// 6. our ovsdb-server (its socket goes with it).
///
/// Each stop is logged at info, so the order shows in the log.
public struct GatewayDaemon: Sendable {
    /// In start order; a `ServiceGroup` shuts them down last to first.
    public let services: [any Service]
    public let controller: GatewayController
    let dataPlane: DataPlane

    /// Returns once the data plane's worker has run a command between two batches: it is
    /// alive and taking commands (what vtepd's systemd watchdog pings stand for).
    public func workerAnswers() async { await dataPlane.inspect { _ in () } }

    /// Starts everything; on a failure, stops what was started and throws.
    public static func start(_ options: GatewayOptions) async throws -> GatewayDaemon {
        // Two arenas, not one per thread, and blocks of a megabyte or more (the publisher's
        // arrays at a million MACs, a listing's page) mapped on their own, so what is freed
        // goes back to the system: see `Allocator` (the publisher also trims after its large
        // rounds).
        Allocator.limitArenas(to: 2)
        Allocator.mapBlocks(from: 1 << 20)
        var started = Started()
        do {
            return try await start(options, &started)
        } catch {
            for service in started.services.reversed() { await service.stop() }
            throw error
        }
    }

    /// What `start` has started so far, to stop when a later step fails.
    private struct Started {
        var services: [any StoppableService] = []
    }

    private static func start(_ options: GatewayOptions, _ started: inout Started) async throws
        -> GatewayDaemon
    {
        let logger = Logger(label: "vtepd")
        try FileManager.default.createDirectory(
            atPath: options.stateRoot, withIntermediateDirectories: true)

        // The saved appliance settings first: the interfaces, addresses and routes the data
        // plane is about to use are among them.
        let applianceLogger = Logger(label: "vtepd.appliance")
        let appliance: ApplianceController?
        do {
            appliance = try ApplianceController(
                host: ApplianceHost(root: options.applianceRoot),
                store: ApplianceSettingsStore(stateDirectory: options.stateRoot),
                audit: AuditLog(path: options.stateRoot + "/audit.log"))
        } catch {
            applianceLogger.error(
                "the appliance settings are not in force and cannot be changed: \(error)")
            appliance = nil
        }
        do {
            try appliance?.restore()
        } catch {
            applianceLogger.error("restoring the saved appliance settings failed: \(error)")
        }

        let dataPlaneLogger = Logger(label: "vtepd.dataplane")
        // The kernel's copy of what the underlay's VXLAN ring reads is dropped from before the
        // ring opens, so no datagram is read twice; a table a crashed vtepd left goes. Where
        // nftables cannot hook the underlay's ingress, VXLAN comes through the sockets.
        var dataPlaneSettings = options.dataPlane
        if dataPlaneSettings.vxlanReceive == .ring {
            do {
                try VXLANIngress.install(dataPlaneSettings)
                dataPlaneLogger.notice(
                    "unicast VXLAN to the tunnel addresses is read from a receive ring on \(dataPlaneSettings.underlay); netdev table \(VXLANIngress.table) drops the kernel's copy at ingress (the host firewall's input chain does not see it)"
                )
            } catch {
                dataPlaneSettings.vxlanReceive = .socket
                dataPlaneLogger.warning(
                    "VXLAN is read through the UDP sockets, not a receive ring: the ingress table on \(dataPlaneSettings.underlay) could not be installed (\(error))"
                )
            }
        } else if try VXLANIngress.remove() {
            dataPlaneLogger.notice(
                "removed netdev table \(VXLANIngress.table), left by an earlier vtepd that read VXLAN from a ring"
            )
        }
        let dataPlane: DataPlane
        do {
            dataPlane = try DataPlane(settings: dataPlaneSettings, ports: options.ports)
        } catch {
            if dataPlaneSettings.vxlanReceive == .ring { _ = try? VXLANIngress.remove() }
            throw error
        }
        for note in dataPlane.startNotes { dataPlaneLogger.notice("\(note)") }
        for warning in dataPlane.startWarnings { dataPlaneLogger.warning("\(warning)") }
        let controller = GatewayController(dataPlane: dataPlane, stateRoot: options.stateRoot)
        let underlayIndex = try UnderlayPort(interface: options.dataPlane.underlay).interfaceIndex

        let remote: Remote
        var managers = ManagerAccess.external
        if let database = options.database {
            remote = database
        } else {
            // The switch's key and self-signed certificate, made at first start: ovsdb-server
            // needs them for the `ssl:` manager connections to its controllers.
            let identity = try SwitchIdentity(
                stateDirectory: options.stateRoot, commonName: options.physicalSwitch)
            if try await identity.prepare() {
                logger.notice(
                    "made the switch's private key and self-signed certificate",
                    metadata: ["certificate": "\(identity.certificatePath)"])
            }
            let server = try DatabaseServer(
                stateDirectory: options.stateRoot, extraRemotes: options.databaseRemotes,
                identity: identity)
            try await server.start()
            remote = server.remote
            managers = ManagerAccess(identity: identity, server: server)
            started.services.append(DatabaseServerService(server: server))
            controller.reportProblems { await server.problems }
        }

        // DHCP: udhcpc per interface in DHCP mode, its events through the hook socket.
        if let appliance {
            let dhcpLogger = Logger(label: "vtepd.dhcp")
            let hookSocket = options.stateRoot + "/dhcp-hook.sock"
            do {
                let hook = try DHCPHookServer(path: hookSocket) { pairs, peer in
                    appliance.dhcpEvent(pairs, from: peer)
                }
                let clients = DHCPClients(
                    hook: options.dhcpHook, hookSocket: hookSocket,
                    stateDirectory: options.stateRoot, logger: dhcpLogger)
                if let problem = clients.problem() { dhcpLogger.warning("\(problem)") }
                appliance.attach(dhcp: clients)
                started.services.append(DHCPService(clients: clients, hook: hook))
                controller.reportProblems { clients.problems }
            } catch {
                dhcpLogger.error("DHCP is not available: \(error)")
            }
        }

        let nextHops = UnderlayNextHops(
            dataPlane: dataPlane, resolver: NextHopResolver(underlayIndex: underlayIndex),
            logger: dataPlaneLogger)
        controller.reportProblems { nextHops.problems() }
        let ioErrors = DataPlaneIOErrors(dataPlane: dataPlane, logger: dataPlaneLogger)
        controller.reportProblems { ioErrors.problems() }

        // Logical routers: what an earlier vtepd left is removed first; the snapshot then
        // says which to build.
        let routers = RouterNamespaces(
            namespacePrefix: options.routerNamespacePrefix,
            ports: RouterNamespaces.Ports(
                add: { try await dataPlane.addPort($0) },
                remove: { await dataPlane.removePort($0) }),
            underlay: options.dataPlane.underlay, logger: Logger(label: "vtepd.routers"))
        for note in routers.removeLeftovers() { logger.notice("\(note)") }
        controller.attach(routers: routers)
        controller.reportProblems { routers.problems }

        let switchLogger = Logger(label: "vtepd.switch")
        let snapshotProblems = SnapshotProblems(logger: switchLogger)
        let bootstrap = try Bootstrap(
            physicalSwitch: options.physicalSwitch, tunnelIPs: options.tunnelIPs,
            ports: options.ports)
        let controlPlane = ControlPlane(
            remote: remote, bootstrap: bootstrap, logger: Logger(label: "vtepd.database")
        ) { snapshot in
            do {
                _ = try dataPlane.apply(
                    { previous in try snapshot.configuration(previous: previous) },
                    statics: snapshot.remoteMACs)
                dataPlane.configureBFD(snapshot.bfd)
                controller.update(snapshot: snapshot, problems: [])
                snapshotProblems.note(snapshot)
                routers.apply(snapshot.routers, mtu: snapshot.routerMTU)
            } catch {
                switchLogger.error(
                    "configuration refused, forwarding continues on the previous one: \(error)")
                controller.update(snapshot: nil, problems: ["configuration refused: \(error)"])
            }
            nextHops.set(snapshot)
        }
        controller.reportProblems { await controlPlane.connectionProblems }
        controller.reportDatabaseState { await controlPlane.databaseState }
        let unhandled = controller.attach(
            appliance: appliance,
            database: SwitchDatabase(
                client: controlPlane.client, physicalSwitch: options.physicalSwitch),
            managers: managers)
        // Every declared command has its handler once both are attached (a test checks the
        // table); one without is a build that must not run.
        precondition(
            appliance == nil || unhandled.isEmpty,
            "commands without a handler: \(unhandled.joined(separator: ", "))")

        let scheduling = dataPlane.start()
        if scheduling.refused {
            dataPlaneLogger.warning("\(scheduling.note)")
        } else {
            dataPlaneLogger.notice("\(scheduling.note)")
        }
        started.services.append(
            DataPlaneService(
                dataPlane: dataPlane, nextHops: nextHops, ioErrors: ioErrors, controller: controller
            ))
        started.services.append(RouterService(routers: routers))
        await controlPlane.start()
        // What is learned behind our ports, published to Ucast_Macs_Local for a controller.
        let publisher = LocalMACPublisher(
            client: controlPlane.client, tunnelIPs: options.tunnelIPs,
            learned: { await controller.localMACs() },
            databaseVersion: { await controlPlane.replicaUpdates })
        controller.reportProblems {
            await publisher.lastError.map {
                ["local MACs are not published to Ucast_Macs_Local: \($0)"]
            } ?? []
        }
        // Faults, management and tunnel IPs written back into our rows, for a controller.
        let status = SwitchStatusRounds(
            controller: controller,
            writer: SwitchStatusWriter(
                client: controlPlane.client, physicalSwitch: options.physicalSwitch),
            tunnelIPs: options.tunnelIPs.map(\.description),
            managementIPs: { [tunnelIPs = options.tunnelIPs.map(\.description)] in
                guard let appliance else { return nil }
                return await SwitchStatusRounds.hostManagementIPs(appliance, tunnelIPs: tunnelIPs)
            }, logger: switchLogger)
        // Tunnel rows per remote VTEP with their BFD status, as ovs-vtep keeps them.
        let tunnelRounds = options.tunnelIPs.first.map {
            TunnelStatusRounds(
                controller: controller,
                writer: TunnelStatusWriter(
                    client: controlPlane.client, physicalSwitch: options.physicalSwitch,
                    localIP: $0.description), logger: switchLogger)
        }
        started.services.append(
            SwitchService(
                controlPlane: controlPlane, publisher: publisher, status: status,
                tunnels: tunnelRounds, logger: switchLogger))
        // What the control socket and the database client refused to protect vtepd, counted
        // for `show system` and the metrics; the socket starts last, so its count of refused
        // connections is read through `controlServer` once it exists.
        let controlLogger = Logger(label: "vtepd.control")
        let controlRefusals = ControlRefusals(logger: controlLogger)
        let controlServer = Mutex<ControlServer?>(nil)
        @Sendable func limitRefusals() async -> [String: UInt64] {
            [
                "control_connections": UInt64(
                    controlServer.withLock { $0?.refusedConnections ?? 0 }),
                ControlRefusals.Kind.requestSize.rawValue: UInt64(
                    controlRefusals.count(.requestSize)),
                ControlRefusals.Kind.requestRate.rawValue: UInt64(
                    controlRefusals.count(.requestRate)),
                "ovsdb_message_size": UInt64(await controlPlane.oversizedMessages),
            ]
        }
        // Prometheus metrics, read from the worker between batches at each scrape.
        controller.metrics.configure(
            bootstrap: options.metricsListen, tunnelAddresses: options.tunnelIPs
        ) {
            // The controller connections: unknown (none) while the database cannot be read.
            let managers =
                (try? await ManagerCluster(client: controlPlane.client).connections()) ?? []
            return await controller.metricsSample(
                databaseConnected: await controlPlane.isConnected,
                localMACPublishing: await publisher.lastError == nil,
                managers: Dictionary(
                    managers.map { ($0.target, $0.isConnected) }, uniquingKeysWith: { a, _ in a }),
                limitRefusals: await limitRefusals())
        }
        controller.reportProblems { controller.metrics.problems() }
        await controller.metrics.start(saved: appliance?.settings.metrics)
        started.services.append(MetricsService(metrics: controller.metrics))
        let server = try await ControlServer.start(
            at: options.controlSocket, handler: controller, refusals: controlRefusals,
            logger: controlLogger)
        controlServer.withLock { $0 = server }
        started.services.append(ControlSocketService(server: server))
        controller.reportSystem {
            "control socket: \(server.refusedConnections) connections refused"
                + " (at most \(ControlServer.defaultMaximumConnections) at once),"
                + " \(controlRefusals.count(.requestSize)) request lines refused (longer than"
                + " \(ControlLineDecoder.defaultMaximumLength) bytes),"
                + " \(controlRefusals.count(.requestRate)) requests refused (beyond"
                + " \(RequestRate.standard) on a connection)"
        }
        logger.notice(
            "started",
            metadata: [
                "physical_switch": "\(options.physicalSwitch)",
                "underlay": "\(options.dataPlane.underlay)",
                "ports": "\(options.ports.joined(separator: ","))",
                "control": "\(options.controlSocket)",
                "database": "\(remote)",
            ])
        return GatewayDaemon(
            services: started.services, controller: controller, dataPlane: dataPlane)
    }
}

/// Logs each problem of the snapshots in force once, at warning, when it first appears (a row
/// left out, a setting ignored): `show configuration` lists them while they last, the log
/// says when they began.
final class SnapshotProblems: Sendable {
    private let logged = Mutex<Set<String>>([])
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func note(_ snapshot: GatewaySnapshot) {
        let fresh = logged.withLock { logged in
            defer { logged = Set(snapshot.problems) }
            return snapshot.problems.filter { !logged.contains($0) }
        }
        for problem in fresh { logger.warning("\(problem)") }
        logger.debug(
            "configuration applied",
            metadata: [
                "switches": "\(snapshot.switches.count)", "bindings": "\(snapshot.bindings.count)",
                "locators": "\(snapshot.locators.count)",
                "remote_macs": "\(snapshot.remoteMACs.count)",
            ])
    }
}

/// A part of vtepd that runs until graceful shutdown, then stops; `stop()` alone undoes a
/// start that failed later on.
protocol StoppableService: Service {
    func stop() async
}

extension StoppableService {
    /// Waits for graceful shutdown (or cancellation), then stops.
    public func run() async throws {
        try? await gracefulShutdown()
        await stop()
    }
}

/// Our ovsdb-server: stopped last, after everything that talks to it.
struct DatabaseServerService: StoppableService {
    let server: DatabaseServer
    func stop() async { await server.stop() }
}

/// The DHCP clients and their hook socket.
struct DHCPService: StoppableService {
    let clients: DHCPClients
    let hook: DHCPHookServer
    func stop() async {
        // Killed, not released: their leases and addresses stay for the next vtepd's
        // clients to ask for again.
        await clients.stopAll()
        hook.stop()
        Logger(label: "vtepd.dhcp").info("DHCP clients and hook socket stopped")
    }
}

/// The worker and the control-side rounds that serve it (next hops, I/O errors, the rates'
/// samples): the rounds stop first, then the worker.
struct DataPlaneService: StoppableService {
    let dataPlane: DataPlane
    let nextHops: UnderlayNextHops
    let ioErrors: DataPlaneIOErrors
    /// Samples the counters for the shell's rates.
    let controller: GatewayController

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await cancelWhenGracefulShutdownOrCancelled { await nextHops.run() } }
            group.addTask { await cancelWhenGracefulShutdownOrCancelled { await ioErrors.run() } }
            group.addTask {
                await cancelWhenGracefulShutdownOrCancelled {
                    await controller.rates.run { await controller.sampleRates() }
                }
            }
        }
        await stop()
    }

    func stop() async {
        await dataPlane.stop()
        Logger(label: "vtepd.dataplane").info("data plane stopped")
        if dataPlane.settings.vxlanReceive == .ring {
            do { try VXLANIngress.remove() } catch {
                Logger(label: "vtepd.dataplane").error(
                    "netdev table \(VXLANIngress.table) could not be removed: \(error)")
            }
        }
    }
}

/// The logical routers: their ports' MTUs follow the links' (a round a second); removed,
/// namespaces, veths and ports, before the worker stops.
struct RouterService: StoppableService {
    let routers: RouterNamespaces

    func run() async throws {
        await cancelWhenGracefulShutdownOrCancelled { await routers.followLinks() }
        await stop()
    }

    func stop() async {
        await routers.removeAll()
        Logger(label: "vtepd.routers").info("logical routers removed")
    }
}

/// Runs `body` until graceful shutdown or cancellation, whichever comes first.
func cancelWhenGracefulShutdownOrCancelled(_ body: @escaping @Sendable () async -> Void) async {
    await cancelWhenGracefulShutdown { await body() }
}

/// The hardware_vtep client, and the local-MAC publisher and the status rounds that write
/// through it.
struct SwitchService: StoppableService {
    let controlPlane: ControlPlane
    let publisher: LocalMACPublisher
    let status: SwitchStatusRounds
    let tunnels: TunnelStatusRounds?
    let logger: Logger

    func run() async throws {
        let publisher = self.publisher
        let logger = self.logger
        let publishing = Task {
            await publisher.run { problem in
                if let problem {
                    logger.error("publishing local MACs failed, retrying: \(problem)")
                } else {
                    logger.notice("publishing local MACs again")
                }
            }
        }
        let status = self.status
        let statusRounds = Task { await status.run() }
        let tunnels = self.tunnels
        let tunnelRounds = Task { await tunnels?.run() }
        try? await gracefulShutdown()
        publishing.cancel()
        statusRounds.cancel()
        tunnelRounds.cancel()
        // Stopping the client fails a transaction the publisher may still wait on.
        await stop()
        await publishing.value
        await statusRounds.value
        await tunnelRounds.value
    }

    func stop() async {
        await controlPlane.stop()
        logger.info("hardware_vtep client stopped")
    }
}

/// The metrics endpoint: stopped right after the control socket, before what it reads.
struct MetricsService: StoppableService {
    let metrics: GatewayMetrics
    func stop() async {
        await metrics.stop()
        Logger(label: "vtepd.metrics").info("metrics endpoint stopped")
    }
}

/// The control socket: the first to stop, so no request arrives while the rest stops.
struct ControlSocketService: StoppableService {
    let server: ControlServer
    func stop() async {
        await server.stop()
        Logger(label: "vtepd.control").info("control socket closed and removed")
    }
}
