import ControlAPI
import DataPlane
import Forwarding
import HostConfiguration
import Logging
import Netlink
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
            if let count = await controller.macCount(of: name), count < limit {
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

/// Every `interval`, the switch's status (faults, management and tunnel IPs, each binding's
/// Logical_Binding_Stats) written into its
/// rows for a controller; a change of faults is logged, a failure once until writing works
/// again.
struct SwitchStatusRounds: Sendable {
    let controller: GatewayController
    let writer: SwitchStatusWriter
    let tunnelIPs: [String]
    /// The host's management addresses now; nil: unknown (the column is left alone).
    let managementIPs: @Sendable () async -> [String]?
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
                let counters = await controller.dataPlane.inspect { $0.bindingStatistics() }
                try await writer.write(
                    SwitchStatus(
                        switchFaults: now, managementIPs: await managementIPs(),
                        tunnelIPs: tunnelIPs,
                        bindingStats: counters.mapValues { byVLAN in
                            byVLAN.mapValues { c in
                                SwitchStatus.BindingStats(
                                    packetsFromLocal: Int(clamping: c.fromLocalFrames),
                                    bytesFromLocal: Int(clamping: c.fromLocalBytes),
                                    packetsToLocal: Int(clamping: c.toLocalFrames),
                                    bytesToLocal: Int(clamping: c.toLocalBytes))
                            }
                        }))
                if failing { logger.notice("writing the switch's status works again") }
                failing = false
            } catch {
                // Cancelled: vtepd stops, and stopping the client failed the write: not a fault.
                if Task.isCancelled { break }
                if !failing { logger.error("\(error.message); retrying") }
                failing = true
            }
            try? await Task.sleep(for: interval)
        }
    }
}

extension SwitchStatusRounds {
    /// The management addresses of a host whose links are `links`: every address a
    /// controller could reach the switch at, that is every address but loopback, link-local
    /// (169.254.0.0/16, fe80::/10) and the tunnel IPs (the underlay's VTEP addresses are
    /// `tunnel_ips`), sorted.
    static func managementIPs(of links: [HostLink], tunnelIPs: [String]) -> [String] {
        let tunnels = Set(tunnelIPs)
        let addresses = links.flatMap(\.addresses).map(\.address).filter { address in
            guard address.notAHostAddress == nil else { return false }
            switch address {
            case .v4(let a): return a.rawValue >> 16 != 0xA9FE
            case .v6(let a): return a.high >> 54 != 0xFE80 >> 6
            }
        }
        return Set(addresses.map(\.description)).subtracting(tunnels).sorted()
    }

    /// `managementIPs(of:)` of this host, read over netlink on the appliance's own thread.
    static func hostManagementIPs(_ appliance: ApplianceController, tunnelIPs: [String])
        async -> [String]?
    {
        let result = try? await appliance.offThePool { () throws(ControlFailure) in
            do {
                return .lines(
                    managementIPs(of: try appliance.host.interfaces(), tunnelIPs: tunnelIPs))
            } catch {
                throw ControlFailure("\(error)")
            }
        }
        guard case .lines(let addresses)? = result else { return nil }
        return addresses
    }
}
