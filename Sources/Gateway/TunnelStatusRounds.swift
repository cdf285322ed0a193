import DataPlane
import Forwarding
import Logging
import SwitchControl

/// Keeps each remote VTEP's Tunnel row current: read from the worker every `interval` (a
/// cheap copy of the sessions between batches), written when a session's status changed or
/// the set of remote VTEPs did, and every `refresh` in any case (a controller may have
/// edited the rows). A failure is logged once until writing works again.
struct TunnelStatusRounds: Sendable {
    let controller: GatewayController
    let writer: TunnelStatusWriter
    var interval: Duration = .milliseconds(100)
    var refresh: Duration = .seconds(2)
    let logger: Logger

    func run() async {
        var failing = false
        var written: [TunnelStatus]? = nil
        var lastWrite = ContinuousClock.now
        while !Task.isCancelled {
            let wanted = await tunnels()
            if wanted != written || ContinuousClock.now - lastWrite >= refresh {
                do {
                    let changes = try await writer.write(wanted)
                    if !changes.isEmpty {
                        logger.info("tunnels: \(changes.joined(separator: "; "))")
                    }
                    written = wanted
                    lastWrite = .now
                    if failing { logger.notice("writing the tunnels' BFD status works again") }
                    failing = false
                } catch {
                    // Cancelled: vtepd stops, and stopping the client failed the write.
                    if Task.isCancelled { break }
                    if !failing { logger.error("\(error.message); retrying") }
                    failing = true
                    written = nil
                }
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// One per remote unicast VXLAN VTEP of the snapshot, with its session's status.
    func tunnels() async -> [TunnelStatus] {
        guard let snapshot = controller.currentSnapshot else { return [] }
        let remotes = snapshot.locators.filter { $0.encapsulation == .vxlan && !$0.ip.isMulticast }
        // The worker is asked only when a session may exist: every question is a wakeup
        // between its batches, ten a second here.
        let sessions =
            remotes.contains { snapshot.bfd[$0]?.enable ?? false }
            ? await controller.dataPlane.inspect { $0.bfdStatuses() } : []
        return remotes.map {
            remote in
            let enabled = snapshot.bfd[remote]?.enable ?? false
            return TunnelStatus(
                remote: "\(remote.ip)", enabled: enabled,
                bfd: enabled ? sessions.first { $0.remote == remote }?.status : nil)
        }
    }
}
