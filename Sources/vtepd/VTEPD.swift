import Appliance
import ArgumentParser
import ControlAPI
import DataPlane
import Datapath
import Dispatch
import Forwarding
import Foundation
import Gateway
import HostConfiguration
import OVSDB
import Packet
import SwitchControl

/// vtepd: the VTEP gateway daemon. Thin by design (ARCHITECTURE.md): it parses bootstrap
/// settings, wires the `Gateway` pieces together and handles signals.
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
    @Option(help: "External database (unix:PATH or tcp:IP:PORT) instead of our own ovsdb-server.")
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

    func validate() throws {
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
        let name = physicalSwitch ?? ProcessInfo.processInfo.hostName
        try FileManager.default.createDirectory(
            atPath: stateRoot, withIntermediateDirectories: true)

        let log = Log()
        // The saved appliance settings first: the interfaces, addresses and routes the data
        // plane is about to use are among them.
        let appliance: ApplianceController?
        do {
            appliance = try ApplianceController(
                host: ApplianceHost(root: applianceRoot),
                store: ApplianceSettingsStore(stateDirectory: stateRoot),
                audit: AuditLog(path: stateRoot + "/audit.log"))
        } catch {
            log.say(
                "vtepd: the appliance settings are not in force and cannot be changed: \(error)")
            appliance = nil
        }
        do {
            try appliance?.restore()
        } catch {
            log.say("vtepd: restoring the saved appliance settings failed: \(error)")
        }

        let dataPlane = try DataPlane(settings: settings, ports: port)
        for note in dataPlane.startNotes { log.say("vtepd: \(note)") }
        let controller = GatewayController(dataPlane: dataPlane)
        let underlayIndex = try UnderlayPort(interface: underlay).interfaceIndex
        let resolver = NextHopResolver(underlayIndex: underlayIndex)

        var databaseServer: DatabaseServer? = nil
        let remote: Remote
        if let database {
            remote = try Remote(database)
        } else {
            let server = try DatabaseServer(stateDirectory: stateRoot, extraRemotes: databaseRemote)
            try await server.start()
            databaseServer = server
            remote = server.remote
        }

        let locators = Locators()
        let bootstrap = try Bootstrap(physicalSwitch: name, tunnelIPs: addresses, ports: port)
        let controlPlane = ControlPlane(remote: remote, bootstrap: bootstrap) { snapshot in
            do {
                _ = try dataPlane.apply(
                    { previous in try snapshot.configuration(previous: previous) },
                    statics: snapshot.remoteMACs)
                controller.update(snapshot: snapshot, problems: [])
            } catch {
                log.say("configuration refused, forwarding continues on the previous one: \(error)")
                controller.update(snapshot: nil, problems: ["configuration refused: \(error)"])
            }
            locators.set(snapshot)
        }

        let unhandled = controller.attach(
            appliance: appliance,
            database: SwitchDatabase(client: controlPlane.client, physicalSwitch: name))
        // Every declared command has its handler once both are attached (a test checks it);
        // one without is a build that must not run.
        precondition(
            appliance == nil || unhandled.isEmpty,
            "commands without a handler: \(unhandled.joined(separator: ", "))")
        // DHCP: udhcpc per interface in DHCP mode, its events through the hook socket.
        var dhcpClients: DHCPClients? = nil
        var dhcpHook: DHCPHookServer? = nil
        if let appliance {
            let hookSocket = stateRoot + "/dhcp-hook.sock"
            do {
                dhcpHook = try DHCPHookServer(path: hookSocket) { pairs, peer in
                    appliance.dhcpEvent(pairs, from: peer)
                }
                let clients = DHCPClients(
                    hook: Self.sibling("vtep-dhcp-event"), hookSocket: hookSocket,
                    stateDirectory: stateRoot, say: { log.say($0) })
                if let problem = clients.problem() { log.say("vtepd: DHCP: \(problem)") }
                appliance.attach(dhcp: clients)
                dhcpClients = clients
            } catch {
                log.say("vtepd: DHCP is not available: \(error)")
            }
        }
        dataPlane.start()
        await controlPlane.start()
        let controlPath = control ?? stateRoot + "/vtepd.ctl"
        let server = try await ControlServer.start(at: controlPath, handler: controller)
        log.say(
            "vtepd: physical switch \(name), underlay \(underlay), ports \(port.joined(separator: ",")),"
                + " control socket \(controlPath)")

        // What is learned behind our ports, published to Ucast_Macs_Local for a controller.
        let publisher = LocalMACPublisher(
            client: controlPlane.client, tunnelIPs: addresses,
            learned: { await controller.localMACs() },
            databaseVersion: { await controlPlane.replicaUpdates })
        let publishing = Task {
            await publisher.run { problem in
                if let problem {
                    log.say("vtepd: publishing local MACs failed, retrying: \(problem)")
                } else {
                    log.say("vtepd: publishing local MACs again")
                }
                controller.publishing(problem: problem)
            }
        }

        // Next hops: once a second, within 50 ms of each configuration, and every 250 ms while
        // a VTEP's is unknown (its frames take the kernel's slow path until then).
        let resolving = Task {
            var last: [Locator: NextHop] = [:]
            while !Task.isCancelled {
                let wanted = locators.all + (await dataPlane.inspect { $0.discoveredLocators })
                let outcome = resolver.resolve(wanted)
                if outcome.hops != last {
                    dataPlane.setNextHops(outcome.hops)
                    last = outcome.hops
                }
                let unresolved = Set(wanted).count > outcome.hops.count
                for _ in 0..<(unresolved ? 5 : 20) {
                    try? await Task.sleep(for: .milliseconds(50))
                    if Task.isCancelled || locators.changed() { break }
                }
            }
        }

        await Signals.wait(for: [SIGTERM, SIGINT])
        log.say("vtepd: stopping")
        resolving.cancel()
        publishing.cancel()
        await server.stop()
        // The DHCP clients are killed, not released: their leases and addresses stay for the
        // next vtepd's clients to ask for again.
        await dhcpClients?.stopAll()
        dhcpHook?.stop()
        // Stopping the database client fails a transaction the publisher may still wait on.
        await controlPlane.stop()
        await publishing.value
        await dataPlane.stop()
        await databaseServer?.stop()
        log.say("vtepd: stopped")
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
        guard ["mac-table", "counters", "configuration"].contains(what) else {
            throw ValidationError("show what? expected mac-table, counters or configuration")
        }
    }

    func run() async throws {
        let client = try await ControlClient.connect(to: control)
        defer { Task { await client.close() } }
        let command: any ControlCommand
        switch what {
        case "mac-table":
            let address = try mac.map { text in
                guard let address = MACAddress(text) else {
                    throw ValidationError(
                        "\"\(text)\" is not a MAC address (use aa:bb:cc:dd:ee:ff)")
                }
                return address
            }
            command = ShowMACTable(logicalSwitch: logicalSwitch, mac: address)
        case "counters": command = Counters()
        default: command = Configuration()
        }
        let result = try await client.send(command)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(TextReport.render(result), terminator: "")
        }
    }
}

/// The locators of the snapshot in force, for the next-hop resolver.
final class Locators: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Locator] = []
    private var fresh = false

    func set(_ snapshot: GatewaySnapshot) {
        var all = snapshot.locators
        for s in snapshot.switches {
            switch s.replication {
            case .multicast(let g): all.append(g)
            case .headEnd(let l): all += l
            case .serviceNode(let l): all.append(l)
            }
        }
        lock.withLock {
            list = all
            fresh = true
        }
    }

    var all: [Locator] { lock.withLock { list } }

    /// Whether a snapshot arrived since the last call.
    func changed() -> Bool {
        lock.withLock {
            defer { fresh = false }
            return fresh
        }
    }
}

struct Log: Sendable {
    func say(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}

enum Signals {
    /// Returns when one of `signals` arrives (they are blocked from default handling first).
    static func wait(for signals: [Int32]) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let once = Once(done)
            for s in signals {
                signal(s, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: s, queue: .main)
                source.setEventHandler { once.fire() }
                source.resume()
                Retained.sources.append(source)
            }
        }
    }

    final class Once: @unchecked Sendable {
        private var continuation: CheckedContinuation<Void, Never>?
        private let lock = NSLock()
        init(_ c: CheckedContinuation<Void, Never>) { continuation = c }
        func fire() {
            lock.withLock {
                continuation?.resume()
                continuation = nil
            }
        }
    }

    enum Retained {
        nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
    }
}
