import Appliance
import ControlAPI
import DaemonLogging
import DataPlane
import Forwarding
import Foundation
import Packet
import Routing
import SwitchControl
import Synchronization

/// Answers vtepd's control socket from the data plane and the latest snapshot: the MAC table,
/// the counters and the effective configuration. Reads go to the worker between batches
/// (`DataPlane.inspect`), so they never race the forwarding path.
public final class GatewayController: ControlHandler, Sendable {
    public let dataPlane: DataPlane
    /// The metrics endpoint and its setting.
    public let metrics = GatewayMetrics()
    private let state = Mutex<(snapshot: GatewaySnapshot?, problems: [String])>((nil, []))

    /// The handler of each command, and the appliance whose audit log records the changes:
    /// the data plane's reports from the start, the shell's commands once vtepd attaches the
    /// appliance settings and the hardware_vtep writer.
    private let handlers = Mutex<(table: ControlHandlers, appliance: ApplianceController?)>(
        (ControlHandlers(), nil))

    /// The parts whose failures `show configuration` lists beside the snapshot's problems:
    /// the database connection, the local-MAC publisher, next hops, data-plane I/O,
    /// supervised children.
    private let problemSources = Mutex<[@Sendable () async -> [String]]>([])

    /// Lines `show system` adds from the parts started after the controller (the control
    /// socket's refusals).
    private let systemSources = Mutex<[@Sendable () -> String]>([])

    public func reportSystem(from source: @escaping @Sendable () -> String) {
        systemSources.withLock { $0.append(source) }
    }

    /// When this vtepd started, for `show system`.
    private let started = (clock: ContinuousClock.now, date: Date())

    /// The traffic rates `show switch statistics`, `show switch tunnels` and `show network
    /// interface` add to their counters.
    public let rates = TrafficRates()

    /// `debug capture`'s files, under the state directory; nil without one (tests).
    public let captures: PacketCaptures?

    public init(dataPlane: DataPlane, stateRoot: String? = nil) {
        self.dataPlane = dataPlane
        captures = stateRoot.map { PacketCaptures(stateRoot: $0) }
        handlers.withLock {
            $0.table = Self.handlers(self, appliance: nil, database: nil, managers: .external)
        }
    }

    /// Where `show switch` and `configuration` read the database's state from.
    private let databaseState = Mutex<(@Sendable () async -> String)?>(nil)

    public func reportDatabaseState(from source: @escaping @Sendable () async -> String) {
        databaseState.withLock { $0 = source }
    }

    /// Adds `source` to what `show configuration`'s problems are gathered from.
    public func reportProblems(from source: @escaping @Sendable () async -> [String]) {
        problemSources.withLock { $0.append(source) }
    }

    /// Enables the shell's commands; until then they are refused with the reason. Returns
    /// the declared commands left without a handler (none when both are given).
    /// `managers`: the switch's identity and ovsdb-server, when vtepd runs its own.
    @discardableResult
    public func attach(
        appliance: ApplianceController?, database: SwitchDatabase?,
        managers: ManagerAccess = .external
    ) -> [String] {
        let table = Self.handlers(
            self, appliance: appliance, database: database, managers: managers)
        handlers.withLock { $0 = (table, appliance) }
        return table.missing
    }

    /// The table for what is attached: the reports always; the appliance's commands with the
    /// appliance; the gateway's writes and reports, and the running configuration, with both.
    static func handlers(
        _ controller: GatewayController, appliance: ApplianceController?,
        database: SwitchDatabase?, managers: ManagerAccess
    ) -> ControlHandlers {
        var table = commandHandlers(
            controller, appliance: appliance, database: database, managers: managers)
        let sections = table
        table.on(ShowTechSupport.self) { _, peer in
            .lines(await techSupport(controller, sections, peer))
        }
        return table
    }

    /// `show tech-support`: each report under its shell line, rendered as the shell renders
    /// it; a report not available yet (the database not attached) says so.
    static func techSupport(
        _ controller: GatewayController, _ table: ControlHandlers, _ peer: PeerCredentials
    ) async -> [String] {
        let reports: [any ControlCommand] = [
            ShowSystem(), ShowRunningConfig(), ShowSwitch(), ShowLogicalSwitches(),
            ShowTunnels(), Counters(), ShowProblems(), ShowInterfaces(), ShowRoutes(),
            ShowLog(lines: 100),
        ]
        var lines: [String] = []
        func section(_ title: String, _ body: [String]) {
            lines.append("===== \(title) =====")
            lines += body
            lines.append("")
        }
        for command in reports {
            guard let handler = table.handler(for: command) else {
                section(command.shellLine, ["(not available yet: vtepd is starting)"])
                continue
            }
            switch await handler(command, peer) {
            case .success(let undecorated):
                let result = controller.rates.decorate(undecorated)
                section(
                    command.shellLine,
                    TextReport.render(result).split(
                        separator: "\n", omittingEmptySubsequences: false
                    )
                    .map(String.init))
            case .failure(let failure):
                section(command.shellLine, ["% \(failure.message)"])
            }
        }
        // The MAC table summed up per logical switch: the whole of it can be a million rows.
        let perSwitch = await controller.macSummary()
        section(
            "MAC table summary",
            perSwitch.keys.sorted().map {
                "\($0): \(perSwitch[$0]!.local) local, \(perSwitch[$0]!.remote) remote"
            } + ["\(perSwitch.values.reduce(0) { $0 + $1.local + $1.remote }) entries in all"])
        section("vtepd's last log lines", DaemonLogging.recent.last(200))
        return lines
    }

    /// One sample of every counter `rates` keeps: the data plane's, and the interfaces' once
    /// the appliance is attached.
    public func sampleRates() async {
        let elapsed = started.clock.duration(to: .now).components
        let now = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        rates.record(await counters(), at: now)
        let table = handlers.withLock { $0.table }
        let query = ShowInterfaces()
        if let handler = table.handler(for: query),
            case .success(.interfaces(let rows)) = await handler(
                query, PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid()))
        {
            rates.record(rows, at: now)
        }
        rates.prune(before: now)
    }

    /// Every handler but `show tech-support`'s, for what is attached.
    static func commandHandlers(
        _ controller: GatewayController, appliance: ApplianceController?,
        database: SwitchDatabase?, managers: ManagerAccess
    ) -> ControlHandlers {
        var table = ControlHandlers()
        table.on(ShowMACTable.self) { query, _ throws(ControlFailure) in
            .macTable(try await controller.macTable(query))
        }
        table.on(Counters.self) { _, _ in .counters(await controller.counters()) }
        table.on(Configuration.self) { _, _ in .configuration(await controller.configuration()) }
        table.on(ShowProblems.self) { _, _ in .lines(await controller.configuration().problems) }
        table.on(ShowSwitch.self) { _, _ in .configuration(await controller.configuration()) }
        table.on(ShowSystem.self) { _, _ in .lines(controller.systemLines()) }
        table.on(DebugPacketTrace.self) { request, _ in
            let selector: TraceSelector =
                request.port.map { .port($0.text) } ?? (request.tunnel ? .tunnel : .any)
            let count = request.count
            return .lines([
                await controller.dataPlane.inspect { $0.startTrace(selector, count: count) }
            ])
        }
        table.on(DebugCapture.self) { request, _ throws(ControlFailure) in
            guard let captures = controller.captures else {
                throw ControlFailure("vtepd runs without a state directory for captures")
            }
            return .lines(try await captures.start(request, dataPlane: controller.dataPlane))
        }
        table.on(ShowCaptures.self) { _, _ throws(ControlFailure) in
            guard let captures = controller.captures else {
                throw ControlFailure("vtepd runs without a state directory for captures")
            }
            return .lines(captures.list())
        }
        table.on(ShowPacketTrace.self) { _, _ in
            let (frames, waiting) = await controller.dataPlane.inspect { $0.traces }
            var lines: [String] = []
            for frame in frames {
                lines.append("frame \(frame.number) (at \(frame.seconds) s)")
                lines += frame.steps.map { "  " + $0 }
            }
            lines.append(
                frames.isEmpty && waiting == 0
                    ? "no packet trace: start one with debug packet-trace"
                    : "\(frames.count) frames recorded, waiting for \(waiting) more")
            return .lines(lines)
        }
        table.on(ClearPacketTrace.self) { _, _ in
            await controller.dataPlane.inspect { $0.clearTrace() }
            return .lines(["packet trace stopped and cleared"])
        }
        table.on(TraceFrame.self) { request, _ throws(ControlFailure) in
            let transport: TraceProbe.Transport? =
                switch request.transport {
                case .tcp?: .tcp
                case .udp?: .udp
                case .icmp?: .icmp
                case nil: nil
                }
            let frame = TraceProbe.frame(
                vlan: request.vlan.map { UInt16($0) }, source: request.source,
                destination: request.destination,
                ip: request.sourceIP.flatMap { s in request.destinationIP.map { (s, $0) } },
                transport: transport, sourcePort: request.sourcePort.map { UInt16($0) },
                destinationPort: request.destinationPort.map { UInt16($0) })
            let name = request.port.text
            guard
                let steps = await controller.dataPlane.inspect({ $0.explain(frame, onPort: name) })
            else {
                throw ControlFailure("port \(name) is not an access port of this switch")
            }
            return .lines(steps)
        }
        table.on(ShowNames.self) { request, _ throws(ControlFailure) in
            .lines(
                try await controller.names(request.kind, appliance: appliance, database: database))
        }
        guard let appliance else { return table }
        appliance.register(in: &table)
        controller.metrics.register(in: &table, appliance: appliance)
        guard let database else { return table }
        let cluster = ManagerCluster(client: database.client)
        table.on(ShowRunningConfig.self) { _, _ throws(ControlFailure) in
            let gateway = try await database.commands()
            return .lines(
                (appliance.settings.commands + gateway).map(\.shellLine)
                    + (try await managers.runningConfig(cluster)))
        }
        registerManagerCommands(in: &table, cluster: cluster, access: managers)
        table.on(ShowLogicalSwitches.self) { _, _ throws(ControlFailure) in
            // The remote MACs in effect: rows vtepd ignores (see `show switch problems`) are
            // not counted.
            let snapshot = controller.state.withLock { $0.snapshot }
            return .logicalSwitches(
                try await database.logicalSwitches().map { row in
                    var row = row
                    row.remoteMACs = snapshot?.remoteMACs(of: row.name).count ?? 0
                    return row
                })
        }
        table.on(ShowTunnels.self) { _, _ throws(ControlFailure) in
            .tunnels(try await controller.tunnels(database))
        }
        /// A hardware_vtep write; `remotes` are the addresses it names as remote VTEPs, which
        /// must not be this gateway's own (vtepd would ignore the row).
        func write<C: ControlCommand>(
            _ type: C.Type, remotes: @escaping @Sendable (C) -> [IPAddress] = { _ in [] }
        ) {
            table.on(type) { command, _ throws(ControlFailure) in
                let settings = controller.dataPlane.settings
                let own = [
                    settings.localIPv4.map(IPAddress.v4), settings.localIPv6.map(IPAddress.v6),
                ]
                for address in remotes(command) where own.contains(address) {
                    throw ControlFailure(
                        "\(address) is this gateway's own tunnel address; a remote VTEP cannot"
                            + " have it")
                }
                guard try await database.execute(command) else {
                    throw ControlFailure("\(C.command) is not a command vtepd can run")
                }
                return .accepted
            }
        }
        write(AddLogicalSwitch.self)
        write(RemoveLogicalSwitch.self)
        write(SetReplication.self) { $0.replication.addresses }
        write(SetEncapsulation.self)
        write(SetBUMRateLimit.self)
        write(ClearBUMRateLimit.self)
        write(SetARPSuppression.self)
        write(ClearARPSuppression.self)
        write(BindPort.self)
        write(UnbindPort.self)
        write(AddRemoteMAC.self) { [$0.value.vtep] }
        write(RemoveRemoteMAC.self)
        write(AddLogicalRouter.self)
        write(RemoveLogicalRouter.self)
        write(SetRouterInterface.self)
        write(RemoveRouterInterface.self)
        write(AddRouterRoute.self)
        write(RemoveRouterRoute.self)
        write(AddRouterNAT.self)
        write(RemoveRouterNAT.self)
        write(SetRouterSessionLimit.self)
        table.on(ShowLogicalRouters.self) { _, _ throws(ControlFailure) in
            .lines(try await controller.routerList(database))
        }
        table.on(ShowLogicalRouter.self) { request, _ throws(ControlFailure) in
            .lines(try await controller.routerReport(request.name, database))
        }
        table.on(ShowLogicalRouterSessions.self) { request, _ throws(ControlFailure) in
            .lines(
                try await controller.routerSessions(
                    request.name, limit: request.limit ?? ShowLogicalRouterSessions.defaultLimit))
        }
        table.on(ClearLogicalRouterSessions.self) { request, _ throws(ControlFailure) in
            .lines(try await controller.clearRouterSessions(request.name))
        }
        return table
    }

    /// The routers vtepd builds; nil until vtepd attaches them.
    private let routerNamespaces = Mutex<RouterNamespaces?>(nil)

    public func attach(routers: RouterNamespaces) {
        routerNamespaces.withLock { $0 = routers }
    }

    /// `show logical-routers`: one line per router with what it has and whether it is built.
    func routerList(_ database: SwitchDatabase) async throws(ControlFailure) -> [String] {
        let rows = try await database.routers()
        guard !rows.isEmpty else {
            return ["no logical routers: add one with add logical-router NAME"]
        }
        let built = Set((routerNamespaces.withLock { $0 }?.routers ?? []).map(\.name))
        var table = TextTable(
            columns: [
                .init("Name"), .init("Interfaces", .right), .init("Routes", .right),
                .init("NAT rules", .right), .init("State"),
            ])
        for (row, router, problem) in rows {
            table.append([
                row.name, "\(row.switchBinding.count)", "\(row.staticRoutes.count)",
                "\(router?.nat.count ?? 0)",
                problem.map { "refused: \($0)" }
                    ?? (built.contains(row.name) ? "in force" : "being built"),
            ])
        }
        return table.rendered().split(separator: "\n").map(String.init)
    }

    /// `show logical-router NAME`: its namespace, interfaces, routes and NAT rules with the
    /// sessions each made (its counter in the router's ruleset).
    func routerReport(_ name: String, _ database: SwitchDatabase) async throws(ControlFailure)
        -> [String]
    {
        guard let entry = try await database.routers().first(where: { $0.row.name == name }) else {
            throw ControlFailure("no logical router named \(name)")
        }
        guard let router = entry.router else {
            return ["logical router \(name): not built: \(entry.problem ?? "?")"]
        }
        let namespaces = routerNamespaces.withLock { $0 }
        let isBuilt = namespaces?.routers.contains(router) == true
        var lines = [
            "logical router \(name): "
                + (isBuilt ? "in force" : "being built")
                + (namespaces.map { ", namespace \($0.namespace(of: name))" } ?? ""),
            "interfaces:",
        ]
        var interfaces = TextTable(
            columns: [.init("Logical switch"), .init("Address"), .init("Port"), .init("Inside")])
        for i in router.interfaces {
            interfaces.append([i.logicalSwitch, i.addressText, i.port, i.inside])
        }
        lines += interfaces.rendered().split(separator: "\n").map { "  " + $0 }
        lines.append(router.routes.isEmpty ? "routes: none" : "routes:")
        lines += router.routes.map { "  \($0)" }
        var counters: [String: (packets: UInt64, bytes: UInt64)] = [:]
        var unread: String?
        if isBuilt, let namespaces {
            // libnftables and the namespace's /proc block: read them on a thread of their own,
            // off the cooperative pool.
            typealias Reading = ([String: (packets: UInt64, bytes: UInt64)], Int)
            let result = await withCheckedContinuation {
                (done: CheckedContinuation<Result<Reading, RouterError>, Never>) in
                Thread.detachNewThread {
                    done.resume(
                        returning: Result { () throws(RouterError) -> Reading in
                            (
                                try namespaces.natCounters(of: name),
                                try namespaces.sessionCount(of: name)
                            )
                        })
                }
            }
            switch result {
            case .success(let (read, sessions)):
                counters = read
                lines.insert(
                    "sessions: \(sessions) (connections conntrack tracks in the router)", at: 1)
            case .failure(let error): unread = error.description
            }
        }
        if let limit = router.sessionLimit {
            let refused = counters[LogicalRouter.sessionLimitKey].map { "\($0.packets)" } ?? "-"
            lines.append("session limit: \(limit) (new sessions refused past it: \(refused))")
        }
        guard !router.nat.isEmpty else {
            return lines + ["NAT rules: none"] + (unread.map { ["counters not read: \($0)"] } ?? [])
        }
        lines.append("NAT rules (sessions: connections each rule translated):")
        var nat = TextTable(columns: [.init("Rule"), .init("Sessions", .right)])
        for rule in router.nat {
            nat.append([rule.description, counters[rule.key].map { "\($0.packets)" } ?? "-"])
        }
        lines += nat.rendered().split(separator: "\n").map { "  " + $0 }
        if let unread { lines.append("counters not read: \(unread)") }
        return lines
    }

    /// `show logical-router NAME sessions`: each connection both ways, as NAT made it.
    func routerSessions(_ name: String, limit: Int) async throws(ControlFailure) -> [String] {
        guard let namespaces = routerNamespaces.withLock({ $0 }) else {
            throw ControlFailure("logical routers are not running in this vtepd")
        }
        // The dump runs in the router's namespace, on a thread of its own.
        let result = await withCheckedContinuation {
            (done: CheckedContinuation<Result<[Session], RouterError>, Never>) in
            Thread.detachNewThread {
                done.resume(
                    returning: Result { () throws(RouterError) -> [Session] in
                        try namespaces.sessions(of: name, limit: limit)
                    })
            }
        }
        let sessions: [Session]
        switch result {
        case .success(let read): sessions = read
        case .failure(let error): throw ControlFailure(error.description)
        }
        guard !sessions.isEmpty else { return ["logical router \(name): no sessions"] }
        var table = TextTable(
            columns: [
                .init("Proto"), .init("Original"), .init("Reply"), .init("State"),
                .init("Expires", .right),
            ])
        for s in sessions {
            table.append([
                s.transportName, s.original.description, s.reply.description, s.tcpState ?? "",
                "\(s.expiresIn)s",
            ])
        }
        return table.rendered().split(separator: "\n").map(String.init)
            + (sessions.count == limit ? ["(the first \(limit); more with: limit N)"] : [])
    }

    /// `clear logical-router NAME sessions`: removes them, says how many.
    func clearRouterSessions(_ name: String) async throws(ControlFailure) -> [String] {
        guard let namespaces = routerNamespaces.withLock({ $0 }) else {
            throw ControlFailure("logical routers are not running in this vtepd")
        }
        let result = await withCheckedContinuation {
            (done: CheckedContinuation<Result<Int, RouterError>, Never>) in
            Thread.detachNewThread {
                done.resume(
                    returning: Result { () throws(RouterError) -> Int in
                        try namespaces.clearSessions(of: name)
                    })
            }
        }
        switch result {
        case .success(let removed):
            return [
                "logical router \(name): \(removed) session\(removed == 1 ? "" : "s") removed"
            ]
        case .failure(let error): throw ControlFailure(error.description)
        }
    }

    /// The snapshot in force (the last one the data plane took).
    var currentSnapshot: GatewaySnapshot? { state.withLock { $0.snapshot } }

    /// The control plane calls this with each snapshot it hands to the data plane (nil: the
    /// data plane refused the last one, and `problems` says why).
    public func update(snapshot: GatewaySnapshot?, problems: [String]) {
        state.withLock { $0 = (snapshot ?? $0.snapshot, problems) }
    }

    /// Runs a request with its command's handler; a change is written to the audit log with
    /// its outcome, under the user the kernel vouches for.
    public func handle(_ request: ControlRequest, from peer: PeerCredentials)
        async throws(ControlFailure) -> ControlResult
    {
        let command = request.command
        let (table, appliance) = handlers.withLock { $0 }
        guard let handler = table.handler(for: command) else {
            guard appliance != nil else {
                throw ControlFailure(
                    "vtepd runs without the appliance settings: they could not be loaded at"
                        + " start (vtepd's log says why)")
            }
            throw ControlFailure("the hardware_vtep database is not attached yet; retry")
        }
        guard command.changesState, let appliance else {
            return rates.decorate(try await handler(command, peer).get())
        }
        let result: ControlResult
        do {
            result = try await handler(command, peer).get()
        } catch {
            _ = appliance.record(command, peer: peer, result: .refused(error.message))
            throw error
        }
        if let problem = appliance.record(command, peer: peer, result: .accepted) {
            throw ControlFailure("the change was made, but \(problem)")
        }
        return result
    }

    /// What exists now of `kind`, sorted, for the shell's completion. What cannot be read
    /// (no database yet) is an empty list: completion is a convenience.
    func names(
        _ kind: ShowNames.Kind, appliance: ApplianceController?, database: SwitchDatabase?
    ) async throws(ControlFailure) -> [String] {
        switch kind {
        case .interfaces:
            // Netlink blocks: on the appliance's own thread, as its other work.
            guard let appliance else { return [] }
            let names = try? await appliance.offThePool { () throws(ControlFailure) in
                .lines(((try? appliance.host.interfaces()) ?? []).map(\.name).sorted())
            }
            guard case .lines(let list)? = names else { return [] }
            return list
        case .ports:
            return (state.withLock { $0.snapshot }?.ports ?? []).sorted()
        case .logicalSwitches:
            return ((try? await database?.logicalSwitches()) ?? []).map(\.name).sorted()
        case .vteps:
            return ((try? await database?.locatorUse()) ?? [:]).keys.sorted()
        case .macs:
            let rows =
                (try? await macPage(on: nil, after: nil, limit: ShowNames.maximumMACs)) ?? []
            return Array(Set(rows.map(\.mac)).sorted().prefix(ShowNames.maximumMACs))
        }
    }

    /// `show system`: vtepd's version, uptime, the clock, load and memory, from /proc.
    func systemLines() -> [String] {
        func read(_ path: String) -> String {
            (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        }
        func kibibytes(_ text: String, _ key: String) -> Int? {
            text.split(separator: "\n").first { $0.hasPrefix(key + ":") }?
                .split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        let uptime = Int((ContinuousClock.now - started.clock).components.seconds)
        let format = ISO8601DateFormatter()
        var lines = [
            "vtepd: \(Product.name) \(Product.versionAndBuild), pid \(getpid())",
            "started: \(format.string(from: started.date)) (up \(uptime / 86400)d"
                + " \(uptime % 86400 / 3600)h \(uptime % 3600 / 60)m \(uptime % 60)s)",
            "clock: \(format.string(from: Date()))",
        ]
        let load = read("/proc/loadavg").split(separator: " ").prefix(3)
        if load.count == 3 { lines.append("load: " + load.joined(separator: " ")) }
        let memory = read("/proc/meminfo")
        if let total = kibibytes(memory, "MemTotal"),
            let available = kibibytes(memory, "MemAvailable")
        {
            lines.append("memory: \(total / 1024) MiB, \(available / 1024) MiB available")
        }
        lines += systemSources.withLock { $0 }.map { $0() }
        if let resident = kibibytes(read("/proc/self/status"), "VmRSS") {
            lines.append("vtepd resident: \(resident / 1024) MiB")
        }
        return lines
    }

    /// `show switch tunnels`: the remote VTEPs the database reaches, with the data plane's
    /// frames to and from each.
    func tunnels(_ database: SwitchDatabase) async throws(ControlFailure) -> [TunnelReport] {
        let use = try await database.locatorUse()
        let plane = await counters()
        let sessions = await dataPlane.inspect { $0.bfdStatuses() }
        var rows: [String: TunnelReport] = [:]
        for (ip, entry) in use {
            rows[ip] = TunnelReport(
                ip: ip, encapsulation: entry.encapsulation, switches: entry.switches.sorted())
        }
        // A multicast group is a flooding destination, not a VTEP.
        for vtep in plane.vteps where IPAddress(vtep.ip)?.isMulticast != true {
            var row =
                rows[vtep.ip]
                ?? TunnelReport(ip: vtep.ip, encapsulation: vtep.encapsulation, switches: [])
            row.encapsulation = vtep.encapsulation
            row.txFrames += vtep.txFrames
            row.rxFrames += vtep.rxFrames
            rows[vtep.ip] = row
        }
        for session in sessions {
            let ip = "\(session.remote.ip)"
            let s = session.status
            rows[ip, default: TunnelReport(ip: ip, encapsulation: "vxlan", switches: [])].bfd =
                TunnelReport.BFD(
                    state: s.state.description, remoteState: s.remoteState.description,
                    forwarding: s.forwarding, diagnostic: s.diagnostic.description,
                    flaps: s.flapCount)
        }
        return rows.values.sorted { $0.ip < $1.ip }
    }

    /// `show switch mac-table`: one page of it (`ShowMACTable`), sorted by (switch name, MAC).
    /// A MAC filter is one lookup per switch; a listing is a page selected a slice of slots
    /// per worker turn (`MACTablePage`), so neither stalls forwarding nor holds more than a
    /// page, whatever the table holds. A configuration applied during a page's pass (switch
    /// and locator indices may change meaning) starts the page again.
    func macTable(_ query: ShowMACTable) async throws(ControlFailure) -> [MACTableRow] {
        let limit = query.limit ?? ShowMACTable.maximumRows + 1
        let after = query.afterSwitch.flatMap { name in query.afterMAC.map { (name, $0) } }
        let rows: [MACTableRow]
        if let mac = query.mac {
            rows = try await macRows(of: mac, on: query.logicalSwitch).filter { row in
                after.map { (row.logicalSwitch, mac) > $0 } ?? true
            }
        } else {
            rows = try await macPage(on: query.logicalSwitch, after: after, limit: limit)
        }
        if query.limit == nil && rows.count > ShowMACTable.maximumRows {
            throw ControlFailure(
                "the MAC table holds more than \(ShowMACTable.maximumRows) entries, more than one"
                    + " response carries: ask for it a page at a time (limit, afterSwitch,"
                    + " afterMAC), as vtepsh does")
        }
        return Array(rows.prefix(limit))
    }

    /// One MAC's entries, on one switch or on each, sorted by switch name.
    private func macRows(of mac: MACAddress, on wanted: String?) async throws(ControlFailure)
        -> [MACTableRow]
    {
        let rows: [MACTableRow]? = await dataPlane.inspect { worker in
            let c = worker.currentConfiguration
            if let wanted, c.switchIndex(named: wanted) == nil { return nil }
            let now = worker.secondsNow
            var rows: [MACTableRow] = []
            for (i, s) in c.switches.enumerated() {
                guard let s, wanted == nil || s.name == wanted else { continue }
                let sw = SwitchIndex(rawValue: UInt16(i))
                guard let entry = worker.macTable.lookup(mac, on: sw, now: now) else { continue }
                rows.append(Self.row(sw, mac, entry, worker: worker, now: now))
            }
            return rows.sorted { $0.logicalSwitch < $1.logicalSwitch }
        }
        guard let rows else { throw Self.noSwitch(wanted) }
        return rows
    }

    /// The `limit` entries after `after` in (switch name, MAC) order, of one switch or all.
    func macPage(
        on wanted: String?, after: (String, MACAddress)?, limit: Int, slice: Int = 1 << 16
    ) async throws(ControlFailure) -> [MACTableRow] {
        // Only one of the worker's turns or this task touches it at a time: each inspect is
        // awaited before the next.
        // The last slice's turn picks the page's entries and resolves their VTEPs; the rows
        // (strings) are made here, off the worker, from the configuration of that turn.
        final class Pass: @unchecked Sendable {
            var page: MACTablePage?
            var entries: [(SwitchIndex, MACAddress, MACTable.Entry, Locator?)] = []
            var configuration: ForwardingConfiguration?
            var now: UInt32 = 0
        }
        for _ in 0..<3 {
            let pass = Pass()
            var configuration: Int? = nil
            var consistent = true
            var cursor: Int? = 0
            while let from = cursor {
                let answer: (Int, Int?)? = await dataPlane.inspect { worker in
                    let c = worker.currentConfiguration
                    if pass.page == nil {
                        if let wanted, c.switchIndex(named: wanted) == nil { return nil }
                        pass.page = Self.page(c, wanted: wanted, after: after, limit: limit)
                    }
                    let now = worker.secondsNow
                    let next = worker.macTable.select(
                        now: now, from: from, count: slice, into: &pass.page!)
                    if next == nil {
                        pass.entries = pass.page!.finish().map { e in
                            var vtep: Locator?
                            if case .remote(let l) = e.entry.location { vtep = worker.locator(l) }
                            return (e.sw, e.mac, e.entry, vtep)
                        }
                        pass.configuration = c
                        pass.now = now
                    }
                    return (worker.configurationsApplied, next)
                }
                guard let (applied, next) = answer else { throw Self.noSwitch(wanted) }
                if configuration == nil { configuration = applied }
                consistent = consistent && configuration == applied
                cursor = next
            }
            if consistent, let c = pass.configuration {
                return pass.entries.map { sw, mac, entry, vtep in
                    Self.row(sw, mac, entry, configuration: c, vtep: vtep, now: pass.now)
                }
            }
        }
        throw ControlFailure("the configuration kept changing while the MAC table was read")
    }

    /// An empty page of `c`'s switches ranked by name (only `wanted` if given), its cursor the
    /// order key of `after`: entries of a switch named after `after`'s, or of the same switch
    /// with a greater MAC, follow it.
    static func page(
        _ c: ForwardingConfiguration, wanted: String?, after: (String, MACAddress)?, limit: Int
    ) -> MACTablePage {
        var listed: [(String, Int)] = []
        for (i, s) in c.switches.enumerated() {
            if let s, wanted == nil || s.name == wanted { listed.append((s.name, i)) }
        }
        listed.sort { $0.0 < $1.0 }
        var ranks = [UInt16](repeating: 0xFFFF, count: SwitchIndex.count + 1)
        for (rank, (_, i)) in listed.enumerated() { ranks[i] = UInt16(rank) }
        var key: UInt64? = nil
        if let (name, mac) = after {
            let rank = listed.firstIndex { $0.0 >= name } ?? listed.count
            if rank < listed.count && listed[rank].0 == name {
                key = UInt64(rank) << 48 | mac.rawValue
            } else if rank > 0 {
                key = UInt64(rank) << 48 &- 1
            }
        }
        return MACTablePage(limit: limit, ranks: ranks, after: key)
    }

    static func row(
        _ sw: SwitchIndex, _ mac: MACAddress, _ entry: MACTable.Entry, worker: DataPlane.Worker,
        now: UInt32
    ) -> MACTableRow {
        let vtep: Locator? =
            if case .remote(let l) = entry.location { worker.locator(l) } else { nil }
        return row(
            sw, mac, entry, configuration: worker.currentConfiguration, vtep: vtep, now: now)
    }

    /// The row of one MAC entry of switch `sw`, a remote entry's VTEP resolved (`vtep`);
    /// reads only `c`, which no worker changes, so it runs off the worker.
    static func row(
        _ sw: SwitchIndex, _ mac: MACAddress, _ entry: MACTable.Entry,
        configuration c: ForwardingConfiguration, vtep: Locator?, now: UInt32
    ) -> MACTableRow {
        let s = c.logicalSwitch(sw)
        let age = entry.isStatic ? nil : now &- entry.lastSeen
        switch entry.location {
        case .local(let a):
            return MACTableRow(
                logicalSwitch: s?.name ?? "?", vni: s?.vni.rawValue ?? 0, mac: mac.description,
                type: .local, isStatic: entry.isStatic, port: c.portName(a.port), vlan: a.vlan,
                age: age)
        case .remote:
            return MACTableRow(
                logicalSwitch: s?.name ?? "?", vni: s?.vni.rawValue ?? 0, mac: mac.description,
                type: .remote, isStatic: entry.isStatic, vtep: vtep?.ip.description, age: age)
        }
    }

    static func noSwitch(_ name: String?) -> ControlFailure {
        ControlFailure("no logical switch named \"\(name ?? "")\" is bound on this gateway")
    }

    /// Entries per logical switch the data plane forwards, local and remote, counted a slice
    /// of slots per worker turn: the MAC table summed up, without listing it.
    func macSummary(slice: Int = 1 << 16) async -> [String: (local: Int, remote: Int)] {
        var counts: [SwitchIndex: (local: Int, remote: Int)] = [:]
        var cursor: Int? = 0
        var names: [SwitchIndex: String] = [:]
        while let from = cursor {
            let (part, next, switches) = await dataPlane.inspect { worker in
                var part: [SwitchIndex: (local: Int, remote: Int)] = [:]
                let (entries, next) = worker.macEntries(from: from, count: slice)
                for (sw, _, entry) in entries {
                    if case .local = entry.location {
                        part[sw, default: (0, 0)].local += 1
                    } else {
                        part[sw, default: (0, 0)].remote += 1
                    }
                }
                var switches: [SwitchIndex: String] = [:]
                if next == nil {
                    for (i, s) in worker.currentConfiguration.switches.enumerated() {
                        if let s { switches[SwitchIndex(rawValue: UInt16(i))] = s.name }
                    }
                }
                return (part, next, switches)
            }
            counts.merge(part) { ($0.local + $1.local, $0.remote + $1.remote) }
            names = switches
            cursor = next
        }
        var result: [String: (local: Int, remote: Int)] = [:]
        for (sw, count) in counts {
            guard let name = names[sw] else { continue }
            result[name] = count
        }
        return result
    }

    /// The live entries of a switch (learned and static, not the expired ones ageing has not
    /// reclaimed yet), counted a slice of slots per worker turn; nil when no switch has the
    /// name. Only its count is carried, never the entries.
    func macCount(of name: String, slice: Int = 1 << 16) async -> Int? {
        var total = 0
        var cursor: Int? = 0
        while let from = cursor {
            let answer: (Int, Int?)? = await dataPlane.inspect { worker in
                guard let sw = worker.currentConfiguration.switchIndex(named: name) else {
                    return nil
                }
                let part = worker.macTable.liveCount(
                    of: sw, now: worker.secondsNow, from: from, count: slice)
                return (part.count, part.next)
            }
            guard let (count, next) = answer else { return nil }
            total += count
            cursor = next
        }
        return total
    }

    /// The MACs learned behind our ports, per logical switch the data plane forwards (each
    /// of them, with or without MACs): what `LocalMACPublisher` publishes. The worker reads
    /// the MAC table a slice of `slice` slots between two batches, so forwarding never stalls
    /// for the whole table (a full pass over the default table holding 1M entries takes
    /// about 20 ms, a slice under 0.5 ms: `bench`, "MACTable localMACs"). The
    /// slices are not one instant's view, which the next round corrects; a configuration
    /// applied during the pass (switch indices may change meaning) starts it again. Each
    /// switch's MACs are gathered into one array sized at the first slice and sorted once:
    /// 8 bytes a MAC (`SortedMACs`).
    ///
    /// A pass is skipped, and the last one's answer given again, while nothing it depends on
    /// changed: no local entry made, moved or removed, no configuration applied, none of the
    /// MACs it listed old enough to expire, and at most `reuseFor` seconds since it ran. So
    /// the publisher's round each second costs the worker one short look, not a pass over
    /// every slot (32 slices of the default table, each stalling forwarding about 0.1 ms).
    /// The answer kept shares its arrays with the one returned (8 bytes a local MAC).
    public func localMACs(slice: Int = 1 << 16, reuseFor: UInt32 = 30) async -> [String: SortedMACs]
    {
        if let last = lastLocalMACs.withLock({ $0 }) {
            let unchanged = await dataPlane.inspect { worker in
                let now = worker.secondsNow
                return worker.localMACVersion == last.version && now < last.expiring
                    && now &- last.at < reuseFor
            }
            if unchanged { return last.macs }
        }
        var found: [SwitchIndex: [MACAddress]] = [:]
        var names: [String: SwitchIndex] = [:]
        var version: LocalMACVersion? = nil
        var at: UInt32 = 0
        var expiring = UInt32.max
        for _ in 0..<3 {
            found = [:]
            version = nil
            expiring = .max
            var cursor: Int? = 0
            var consistent = true
            while let from = cursor {
                let (now, current, part, next, partExpiring, switches, sizes) =
                    await dataPlane.inspect {
                        worker in
                        let (macs, next, expiring) = worker.localMACs(from: from, count: slice)
                        var switches: [String: SwitchIndex] = [:]
                        var sizes: [SwitchIndex: Int] = [:]
                        for (i, s) in worker.currentConfiguration.switches.enumerated() {
                            guard let s else { continue }
                            let sw = SwitchIndex(rawValue: UInt16(i))
                            if next == nil { switches[s.name] = sw }
                            // Sized once, at the first slice: a million MACs not copied as the
                            // array grows.
                            if from == 0 { sizes[sw] = worker.macTable.count(of: sw) }
                        }
                        return (
                            worker.secondsNow, worker.localMACVersion, macs, next, expiring,
                            switches,
                            sizes
                        )
                    }
                for (sw, size) in sizes where size > 0 {
                    found[sw, default: []].reserveCapacity(size)
                }
                // The version as the pass began: a change during it, which a slice already
                // read may have missed, leaves the next call a different version.
                if version == nil {
                    version = current
                    at = now
                }
                consistent = consistent && version?.configurations == current.configurations
                expiring = min(expiring, partExpiring)
                for (sw, mac) in part { found[sw, default: []].append(mac) }
                names = switches
                cursor = next
            }
            if consistent { break }
        }
        var result: [String: SortedMACs] = [:]
        for (name, sw) in names {
            // Taken out of `found`, so each array is sorted where it is, not copied.
            result[name] = SortedMACs(found.removeValue(forKey: sw) ?? [])
        }
        let pass = version.map { (macs: result, version: $0, at: at, expiring: expiring) }
        lastLocalMACs.withLock { $0 = pass }
        localMACPassCount.add(1, ordering: .relaxed)
        return result
    }

    /// Passes `localMACs` made over the MAC table (not counting the answers it gave again).
    public var localMACPasses: Int { localMACPassCount.load(ordering: .relaxed) }
    private let localMACPassCount = Atomic<Int>(0)

    /// The last pass of `localMACs`: its answer, the version it began at, when (the worker's
    /// seconds) and the earliest second one of its MACs could expire.
    private let lastLocalMACs = Mutex<
        (macs: [String: SortedMACs], version: LocalMACVersion, at: UInt32, expiring: UInt32)?
    >(nil)

    func counters() async -> CountersReport {
        await dataPlane.inspect { worker in
            let c = worker.currentConfiguration
            let statistics = worker.statistics()
            let plane = worker.counters()
            var switches: [CountersReport.LogicalSwitch] = []
            for (i, s) in c.switches.enumerated() {
                guard let s else { continue }
                let k = statistics.switches[SwitchIndex(rawValue: UInt16(i))] ?? SwitchCounters()
                var row = CountersReport.LogicalSwitch(
                    name: s.name, vni: s.vni.rawValue, fromAccess: k.fromAccess,
                    fromTunnel: k.fromTunnel, toAccess: k.toAccess,
                    encapsulated: k.encapsulated, flooded: k.flooded, drops: k.drops,
                    learned: k.learned, moves: k.moves, learningRefused: k.learningRefused)
                row.bytesIn = k.bytesIn
                // Only while the switch suppresses: the fields say it does.
                if s.arpSuppression {
                    row.neighbourAnswered = k.neighbourAnswered
                    row.neighbourFlooded = k.neighbourFlooded
                }
                switches.append(row)
            }
            // Every drop, the forwarding core's and the worker's, under its reason.
            let drops = DropReason.allCases.map {
                CountersReport.ReasonCount(reason: $0.counterName, count: statistics.drops($0))
            }
            // `io_error` counts failed calls, not frames (those are `send_failed`).
            let ioErrors = CountersReport.ReasonCount(reason: "io_error", count: plane.ioErrors)
            var malformed: [CountersReport.ReasonCount] = []
            for reason in Malformed.allCases where statistics.malformed(reason) > 0 {
                malformed.append(
                    .init(reason: reason.counterName, count: statistics.malformed(reason)))
            }
            return CountersReport(
                switches: switches.sorted { $0.name < $1.name },
                ports: plane.ports.map {
                    var port = CountersReport.Port(
                        name: $0.name, rxFrames: $0.rxFrames, txFrames: $0.txFrames, drops: $0.drops
                    )
                    port.rxBytes = $0.rxBytes
                    port.txBytes = $0.txBytes
                    return port
                },
                vteps: plane.vteps.map {
                    var vtep = CountersReport.VTEP(
                        ip: $0.locator.ip.description,
                        encapsulation: $0.locator.encapsulation.description,
                        txFrames: $0.txFrames, rxFrames: $0.rxFrames, resolved: $0.resolved)
                    vtep.txBytes = $0.txBytes
                    vtep.rxBytes = $0.rxBytes
                    return vtep
                },
                drops: drops + [ioErrors], malformed: malformed,
                offloads: [
                    .init(reason: "super_frames_in", count: plane.superFramesIn),
                    .init(reason: "segments_out", count: plane.segmentsOut),
                    .init(reason: "trains_out", count: plane.trainsOut),
                    .init(reason: "trains_coalesced", count: plane.trainsCoalesced),
                    .init(reason: "tunnel_gso_out", count: plane.tunnelGSOOut),
                    .init(reason: "tunnel_gso_refused", count: plane.tunnelGSORefused),
                    .init(reason: "trains_in", count: plane.trainsIn),
                    .init(reason: "coalesced_frames_out", count: plane.coalescedFramesOut),
                    .init(reason: "coalesced_segments", count: plane.coalescedSegments),
                    .init(reason: "checksums_completed", count: plane.checksumsCompleted),
                ])
        }
    }

    func configuration() async -> ConfigurationReport {
        let (snapshot, ownProblems) = state.withLock { $0 }
        let planeProblems = await dataPlane.inspect { $0.configurationProblems }
        var sourceProblems: [String] = []
        for source in problemSources.withLock({ $0 }) { sourceProblems += await source() }
        let settings = dataPlane.settings
        var tunnelIPs: [String] = []
        if let v4 = settings.localIPv4 { tunnelIPs.append(v4.description) }
        if let v6 = settings.localIPv6 { tunnelIPs.append(v6.description) }
        func locator(_ l: Locator) -> ConfigurationReport.Locator {
            .init(ip: l.ip.description, encapsulation: l.encapsulation.description)
        }
        let switches = (snapshot?.switches ?? []).map { s -> ConfigurationReport.LogicalSwitch in
            let replication: ConfigurationReport.Replication
            switch s.replication {
            case .multicast(let g): replication = .init(mode: .multicast, locators: [locator(g)])
            case .headEnd(let list):
                replication = .init(mode: .headEnd, locators: list.map(locator))
            case .serviceNode(let list):
                replication = .init(mode: .serviceNode, locators: list.map(locator))
            }
            return .init(
                name: s.name, vni: s.vni.rawValue, replication: replication, macAgeing: s.macAgeing,
                macLimit: s.macLimit, allowedSources: s.acceptedSources?.map(\.description))
        }
        return ConfigurationReport(
            physicalSwitch: snapshot?.physicalSwitch ?? "", tunnelIPs: tunnelIPs,
            underlay: settings.underlay, vxlanPort: Int(settings.vxlanPort),
            database: await databaseState.withLock { $0 }?(),
            ports: snapshot?.ports ?? [], switches: switches,
            bindings: (snapshot?.bindings ?? []).map {
                .init(port: $0.port, vlan: $0.vlan, logicalSwitch: $0.logicalSwitch)
            },
            problems: (snapshot?.problems ?? []) + ownProblems + planeProblems + sourceProblems)
    }
}
