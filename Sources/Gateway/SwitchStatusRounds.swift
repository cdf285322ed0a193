import ControlAPI
import DataPlane
import Forwarding
import Logging
import SwitchControl
import Synchronization

/// The switch's faults, from the data plane's own state, as the forwarding core keeps its
/// MAC table's fault flags: a logical switch is at its limit from the round its
/// `learningRefused` counter grows until its entries fall below its `mac-limit` (they age
/// out); the table as a whole while it is full. `mac_table_exhaustion` while either holds;
/// `tunnel_exhaustion` while the discovered-VTEP table is full.
final class SwitchFaultWatch: Sendable {
    private let state = Mutex<(refused: [String: UInt64], atLimit: Set<String>)>(([:], []))

    /// The logical switches at their MAC limit, after the last round.
    var switchesAtLimit: Set<String> { state.withLock { $0.atLimit } }

    /// One round: the faults now.
    func faults(_ controller: GatewayController) async -> Set<SwitchStatus.SwitchFault> {
        let (tableFull, discovered) = await controller.dataPlane.inspect {
            ($0.statistics().macTableFull, $0.discoveredLocators.count)
        }
        let refused = Dictionary(
            (await controller.counters()).switches.map { ($0.name, $0.learningRefused) },
            uniquingKeysWith: max)
        let limits = Dictionary(
            (controller.currentSnapshot?.switches ?? []).compactMap { s in
                s.macLimit.map { (s.name, $0) }
            }, uniquingKeysWith: min)
        var atLimit = state.withLock { state in
            let grew = refused.filter { name, count in count > state.refused[name] ?? 0 }.keys
            state.refused = refused
            return state.atLimit.union(grew.filter { limits[$0] != nil })
        }
        // Lowered once the switch holds fewer entries than its limit (or has none any more).
        for name in atLimit {
            guard let limit = limits[name] else {
                atLimit.remove(name)
                continue
            }
            if let rows = try? await controller.macTable(ShowMACTable(logicalSwitch: name)),
                rows.count < limit
            {
                atLimit.remove(name)
            }
        }
        state.withLock { $0.atLimit = atLimit }
        var faults: Set<SwitchStatus.SwitchFault> = []
        if tableFull || !atLimit.isEmpty { faults.insert(.macTableExhaustion) }
        if discovered >= ForwardingEngine.defaultDiscoveredLocatorLimit {
            faults.insert(.tunnelExhaustion)
        }
        return faults
    }
}

/// Every `interval`, the switch's status (faults, tunnel IPs) written into its rows for a
/// controller; a change of faults is logged, a failure once until writing works again.
struct SwitchStatusRounds: Sendable {
    let controller: GatewayController
    let writer: SwitchStatusWriter
    let tunnelIPs: [String]
    let watch = SwitchFaultWatch()
    var interval: Duration = .seconds(2)
    let logger: Logger

    func run() async {
        var failing = false
        var faults: Set<SwitchStatus.SwitchFault> = []
        while !Task.isCancelled {
            let now = await watch.faults(controller)
            if now != faults {
                logger.notice(
                    "switch faults: \(now.isEmpty ? "none" : now.map(\.rawValue).sorted().joined(separator: ", "))",
                    metadata: ["at_mac_limit": "\(watch.switchesAtLimit.sorted())"])
                faults = now
            }
            do {
                try await writer.write(SwitchStatus(switchFaults: now, tunnelIPs: tunnelIPs))
                if failing { logger.notice("writing the switch's status works again") }
                failing = false
            } catch {
                if !failing { logger.error("\(error.message); retrying") }
                failing = true
            }
            try? await Task.sleep(for: interval)
        }
    }
}
