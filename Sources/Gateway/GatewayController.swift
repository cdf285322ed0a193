import Appliance
import ControlAPI
import DataPlane
import Forwarding
import Packet
import SwitchControl
import Synchronization

/// Answers vtepd's control socket from the data plane and the latest snapshot: the MAC table,
/// the counters and the effective configuration. Reads go to the worker between batches
/// (`DataPlane.inspect`), so they never race the forwarding path.
public final class GatewayController: ControlHandler, Sendable {
    public let dataPlane: DataPlane
    private let state = Mutex<(snapshot: GatewaySnapshot?, problems: [String])>((nil, []))

    /// The shell's commands: the appliance settings and the hardware_vtep writer, attached by
    /// vtepd once both exist.
    private let shell = Mutex<(appliance: ApplianceController?, database: SwitchDatabase?)>(
        (nil, nil))

    /// The parts whose failures `show configuration` lists beside the snapshot's problems:
    /// the database connection, the local-MAC publisher, next hops, data-plane I/O,
    /// supervised children.
    private let problemSources = Mutex<[@Sendable () async -> [String]]>([])

    public init(dataPlane: DataPlane) { self.dataPlane = dataPlane }

    /// Adds `source` to what `show configuration`'s problems are gathered from.
    public func reportProblems(from source: @escaping @Sendable () async -> [String]) {
        problemSources.withLock { $0.append(source) }
    }

    /// Enables the shell's commands; until then they are refused with the reason.
    public func attach(appliance: ApplianceController?, database: SwitchDatabase?) {
        shell.withLock { $0 = (appliance, database) }
    }

    /// The control plane calls this with each snapshot it hands to the data plane (nil: the
    /// data plane refused the last one, and `problems` says why).
    public func update(snapshot: GatewaySnapshot?, problems: [String]) {
        state.withLock { $0 = (snapshot ?? $0.snapshot, problems) }
    }

    public func handle(_ request: ControlRequest, from peer: PeerCredentials)
        async throws(ControlFailure) -> ControlResult
    {
        switch request.command {
        case .macTable(let query): return .macTable(try await macTable(query))
        case .counters: return .counters(await counters())
        case .configuration: return .configuration(await configuration())
        default: return try await handleShellCommand(request.command, from: peer)
        }
    }

    /// The shell's commands: appliance settings to `ApplianceController`, gateway writes to
    /// `SwitchDatabase` (audited here), reports from both.
    func handleShellCommand(_ command: ControlCommand, from peer: PeerCredentials)
        async throws(ControlFailure) -> ControlResult
    {
        let (appliance, database) = shell.withLock { $0 }
        guard let appliance else {
            throw ControlFailure(
                "vtepd runs without the appliance settings: they could not be loaded at"
                    + " start (vtepd's log says why)")
        }
        if let result = try await appliance.handleOffThePool(command, from: peer) {
            return result
        }
        guard let database else {
            throw ControlFailure("the hardware_vtep database is not attached yet; retry")
        }
        switch command {
        case .runningConfig:
            let gateway = try await database.commands()
            return .lines((appliance.settings.commands + gateway).map(\.shellLine))
        case .logicalSwitches:
            return .logicalSwitches(try await database.logicalSwitches())
        case .tunnels:
            let use = try await database.locatorUse()
            let plane = await counters()
            var rows: [String: TunnelReport] = [:]
            for (ip, entry) in use {
                rows[ip] = TunnelReport(
                    ip: ip, encapsulation: entry.encapsulation, switches: entry.switches.sorted())
            }
            for vtep in plane.vteps {
                var row =
                    rows[vtep.ip]
                    ?? TunnelReport(ip: vtep.ip, encapsulation: vtep.encapsulation, switches: [])
                row.encapsulation = vtep.encapsulation
                row.txFrames += vtep.txFrames
                row.rxFrames += vtep.rxFrames
                rows[vtep.ip] = row
            }
            return .tunnels(rows.values.sorted { $0.ip < $1.ip })
        default:
            do throws(ControlFailure) {
                guard try await database.execute(command) else {
                    throw ControlFailure("\(command.name) is not a command vtepd can run")
                }
            } catch {
                _ = appliance.record(command, peer: peer, result: .refused(error.message))
                throw error
            }
            if let problem = appliance.record(command, peer: peer, result: .accepted) {
                throw ControlFailure("the change was written, but \(problem)")
            }
            return .accepted
        }
    }

    func macTable(_ query: MACTableQuery) async throws(ControlFailure) -> [MACTableRow] {
        var parsed: MACAddress? = nil
        if let text = query.mac {
            parsed = MACAddress(text)
            if parsed == nil {
                throw ControlFailure(
                    "\"\(text)\" is not a MAC address (expected aa:bb:cc:dd:ee:ff)")
            }
        }
        let mac = parsed
        let wanted = query.logicalSwitch
        // Read a slice of the table per worker turn, as `localMACs` does, so a large table
        // never stalls forwarding; a configuration applied during the pass (switch and
        // locator indices may change meaning) starts it again.
        var rows: [MACTableRow] = []
        for _ in 0..<3 {
            rows = []
            var configuration: Int? = nil
            var consistent = true
            var cursor: Int? = 0
            while let from = cursor {
                let answer: (Int, [MACTableRow], Int?)? = await dataPlane.inspect { worker in
                    let c = worker.currentConfiguration
                    if let wanted, c.switchIndex(named: wanted) == nil { return nil }
                    let now = worker.secondsNow
                    let (entries, next) = worker.macEntries(from: from, count: 1 << 16)
                    var part: [MACTableRow] = []
                    for (sw, entryMAC, entry) in entries where mac == nil || entryMAC == mac {
                        guard let s = c.logicalSwitch(sw), wanted == nil || s.name == wanted
                        else { continue }
                        let age = entry.isStatic ? nil : now &- entry.lastSeen
                        switch entry.location {
                        case .local(let a):
                            part.append(
                                MACTableRow(
                                    logicalSwitch: s.name, vni: s.vni.rawValue,
                                    mac: entryMAC.description, type: .local,
                                    isStatic: entry.isStatic, port: c.portName(a.port),
                                    vlan: a.vlan, age: age))
                        case .remote(let l):
                            part.append(
                                MACTableRow(
                                    logicalSwitch: s.name, vni: s.vni.rawValue,
                                    mac: entryMAC.description, type: .remote,
                                    isStatic: entry.isStatic,
                                    vtep: worker.locator(l)?.ip.description, age: age))
                        }
                    }
                    return (worker.configurationsApplied, part, next)
                }
                guard let (applied, part, next) = answer else {
                    throw ControlFailure(
                        "no logical switch named \"\(wanted ?? "")\" is bound on this gateway")
                }
                if configuration == nil { configuration = applied }
                consistent = consistent && configuration == applied
                rows += part
                cursor = next
            }
            if consistent { break }
        }
        return rows.sorted { ($0.logicalSwitch, $0.mac) < ($1.logicalSwitch, $1.mac) }
    }

    /// The MACs learned behind our ports, per logical switch the data plane forwards (each
    /// of them, with or without MACs): what `LocalMACPublisher` publishes. The worker reads
    /// the MAC table a slice of `slice` slots between two batches, so forwarding never stalls
    /// for the whole table (a full pass over the default table holding 1M entries takes
    /// about 20 ms, a slice under 0.5 ms: `bench`, "MACTable localMACs"). The
    /// slices are not one instant's view, which the next round corrects; a configuration
    /// applied during the pass (switch indices may change meaning) starts it again.
    public func localMACs(slice: Int = 1 << 16) async -> [String: Set<MACAddress>] {
        var result: [String: Set<MACAddress>] = [:]
        for _ in 0..<3 {
            var found: [SwitchIndex: Set<MACAddress>] = [:]
            var names: [String: SwitchIndex] = [:]
            var configuration: Int? = nil
            var cursor: Int? = 0
            var consistent = true
            while let from = cursor {
                let (applied, part, next, switches) = await dataPlane.inspect { worker in
                    let (macs, next) = worker.localMACs(from: from, count: slice)
                    var switches: [String: SwitchIndex] = [:]
                    if next == nil {
                        for (i, s) in worker.currentConfiguration.switches.enumerated() {
                            if let s { switches[s.name] = SwitchIndex(rawValue: UInt16(i)) }
                        }
                    }
                    return (worker.configurationsApplied, macs, next, switches)
                }
                if configuration == nil { configuration = applied }
                consistent = consistent && configuration == applied
                for (sw, mac) in part { found[sw, default: []].insert(mac) }
                names = switches
                cursor = next
            }
            result = names.mapValues { found[$0] ?? [] }
            if consistent { break }
        }
        return result
    }

    func counters() async -> CountersReport {
        await dataPlane.inspect { worker in
            let c = worker.currentConfiguration
            let statistics = worker.statistics()
            let plane = worker.counters()
            var switches: [CountersReport.LogicalSwitch] = []
            for (i, s) in c.switches.enumerated() {
                guard let s else { continue }
                let k = statistics.switches[SwitchIndex(rawValue: UInt16(i))] ?? SwitchCounters()
                switches.append(
                    .init(
                        name: s.name, vni: s.vni.rawValue, fromAccess: k.fromAccess,
                        fromTunnel: k.fromTunnel, toAccess: k.toAccess,
                        encapsulated: k.encapsulated, flooded: k.flooded, drops: k.drops,
                        learned: k.learned, moves: k.moves, learningRefused: k.learningRefused))
            }
            // Underlay datagrams the worker refused before the forwarding decision (a bad
            // VXLAN header) are malformed frames too: the `malformed` drop is the sum of every
            // malformed reason, as CountersReport.malformed promises.
            let malformedTunnel = plane.malformedTunnel.values.reduce(0, +)
            var drops = DropReason.allCases.map {
                CountersReport.ReasonCount(
                    reason: $0.counterName,
                    count: statistics.drops($0) + ($0 == .malformed ? malformedTunnel : 0))
            }
            // The data plane's own drops, before or after the forwarding decision.
            drops += [
                .init(
                    reason: "access_receive_overrun",
                    count: plane.ports.reduce(0) { $0 + $1.receiveOverruns }),
                .init(reason: "underlay_receive_overrun", count: plane.underlayReceiveOverruns),
                .init(reason: "underlay_too_big", count: plane.underlayTooBig),
                .init(reason: "truncated", count: plane.truncated),
                .init(reason: "transmit_queue_full", count: plane.transmitQueueFull),
                .init(reason: "own_source", count: plane.ownSource),
                .init(reason: "io_error", count: plane.ioErrors),
            ]
            var malformed: [CountersReport.ReasonCount] = []
            for reason in Malformed.allCases {
                let count = statistics.malformed(reason) + (plane.malformedTunnel[reason] ?? 0)
                if count > 0 { malformed.append(.init(reason: reason.counterName, count: count)) }
            }
            return CountersReport(
                switches: switches.sorted { $0.name < $1.name },
                ports: plane.ports.map {
                    .init(
                        name: $0.name, rxFrames: $0.rxFrames, txFrames: $0.txFrames, drops: $0.drops
                    )
                },
                vteps: plane.vteps.map {
                    .init(
                        ip: $0.locator.ip.description,
                        encapsulation: $0.locator.encapsulation.description,
                        txFrames: $0.txFrames, rxFrames: $0.rxFrames)
                },
                drops: drops, malformed: malformed,
                offloads: [
                    .init(reason: "super_frames_in", count: plane.superFramesIn),
                    .init(reason: "segments_out", count: plane.segmentsOut),
                    .init(reason: "trains_out", count: plane.trainsOut),
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
            case .serviceNode(let l):
                replication = .init(mode: .serviceNode, locators: [locator(l)])
            }
            return .init(
                name: s.name, vni: s.vni.rawValue, replication: replication, macAgeing: s.macAgeing,
                macLimit: s.macLimit, allowedSources: s.acceptedSources?.map(\.description))
        }
        return ConfigurationReport(
            physicalSwitch: snapshot?.physicalSwitch ?? "", tunnelIPs: tunnelIPs,
            underlay: settings.underlay, ports: snapshot?.ports ?? [], switches: switches,
            bindings: (snapshot?.bindings ?? []).map {
                .init(port: $0.port, vlan: $0.vlan, logicalSwitch: $0.logicalSwitch)
            },
            problems: (snapshot?.problems ?? []) + ownProblems + planeProblems + sourceProblems)
    }
}
