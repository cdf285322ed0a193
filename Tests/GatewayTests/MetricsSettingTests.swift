import Appliance
import ControlAPI
import DataPlane
import Foundation
import Gateway
import HostConfiguration
import MetricsEndpoint
import Packet
import TestSupport
import Testing

/// `set metrics listen`, `clear metrics` and `show metrics` through vtepd's control handler:
/// the listener follows the setting, bad input changes nothing, the setting is saved with the
/// appliance settings and a new vtepd (a restart) serves as it says.
@Suite struct MetricsSettingTests {
    @Test func theListenerFollowsTheSavedSettingAndRefusalsChangeNothing() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "vtep-metrics-\(getpid())-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let state = base + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        // The worker never runs: these commands do not read it.
        let plane = try ControlHandlerTests.idleDataPlane(tag: "ms")
        func appliance() throws -> ApplianceController {
            try ApplianceController(
                host: ApplianceHost(
                    root: base, kernelHostname: KernelHostname(get: { "test" }, set: { _ in 0 })),
                store: ApplianceSettingsStore(stateDirectory: state),
                audit: AuditLog(path: state + "/audit.log"))
        }
        let tunnel = IPAddress.v4(IPv4Address(192, 0, 2, 1))
        let controller = GatewayController(dataPlane: plane)
        controller.attach(appliance: try appliance(), database: nil)
        controller.metrics.configure(bootstrap: nil, tunnelAddresses: [tunnel]) {
            Issue.record("no scrape is expected here")
            return MetricsSample(
                counters: CountersReport(switches: [], ports: [], vteps: [], drops: []),
                macEntries: [:], databaseConnected: false, localMACPublishing: false,
                workerBatches: 0, workerBusySeconds: 0)
        }
        let peer = PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid())
        func run(_ command: any ControlCommand) async -> Result<ControlResult, ControlFailure> {
            do throws(ControlFailure) {
                return .success(
                    try await controller.handle(ControlRequest(id: 1, command: command), from: peer)
                )
            } catch {
                return .failure(error)
            }
        }
        func saved() throws -> String {
            try String(contentsOfFile: state + "/appliance-settings.json", encoding: .utf8)
        }

        let port = try freeLoopbackPort()
        let endpoint = IPEndpoint(address: .v4(IPv4Address(127, 0, 0, 1)), port: port)
        #expect(
            try await run(ShowMetrics()).get()
                == .lines(["off: no address is configured (set metrics listen IP:PORT)"]))
        #expect(try await run(SetMetricsListen(endpoint)).get() == .accepted)
        #expect(canConnect(toLoopbackPort: port))
        #expect(try saved().contains(#""metrics" : "127.0.0.1:\#(port)""#))
        guard case .lines(let shown) = try await run(ShowMetrics()).get() else {
            Issue.record("show metrics is not lines")
            return
        }
        #expect(
            shown.first == "listening on 127.0.0.1:\(port): GET http://127.0.0.1:\(port)/metrics")
        // The same address again: saved, the listener kept.
        #expect(try await run(SetMetricsListen(endpoint)).get() == .accepted)
        #expect(canConnect(toLoopbackPort: port))

        // A port another program holds: refused, the old listener and the setting kept.
        let holder = try loopbackListener()
        defer { close(holder.fd) }
        let taken = IPEndpoint(address: .v4(IPv4Address(127, 0, 0, 1)), port: holder.port)
        let before = try saved()
        let refusal = await run(SetMetricsListen(taken))
        #expect(
            refusal.failureMessage
                == "cannot listen on 127.0.0.1:\(holder.port): port \(holder.port) is in use by another program"
        )
        #expect(try saved() == before)
        #expect(canConnect(toLoopbackPort: port))
        // A tunnel address of this gateway: refused, nothing changed.
        let onTunnel = await run(SetMetricsListen(IPEndpoint(address: tunnel, port: 9100)))
        #expect(
            onTunnel.failureMessage?.hasPrefix("192.0.2.1 is a tunnel address of this gateway")
                == true)
        #expect(try saved() == before)
        // Both refusals are in the audit log with their reasons.
        let audit = try String(contentsOfFile: state + "/audit.log", encoding: .utf8)
        #expect(audit.contains(#"result="refused: cannot listen on 127.0.0.1:\#(holder.port)"#))
        #expect(audit.contains(#"command="set metrics listen 192.0.2.1:9100""#))
        #expect(
            try appliance().settings.commands.map(\.shellLine).contains(
                "set metrics listen \(endpoint)"))

        // A restart: a new vtepd reads the saved setting, over its command line's address.
        let restarted = GatewayMetrics()
        let other = IPEndpoint(
            address: .v4(IPv4Address(127, 0, 0, 1)), port: try freeLoopbackPort())
        restarted.configure(bootstrap: other, tunnelAddresses: [tunnel]) {
            MetricsSample(
                counters: CountersReport(switches: [], ports: [], vteps: [], drops: []),
                macEntries: [:], databaseConnected: false, localMACPublishing: false,
                workerBatches: 0, workerBusySeconds: 0)
        }
        await controller.metrics.stop()
        try await waitUntilClosed(loopbackPort: port)
        await restarted.start(saved: try appliance().settings.metrics)
        #expect(canConnect(toLoopbackPort: port) && !canConnect(toLoopbackPort: other.port))
        await restarted.stop()
        try await waitUntilClosed(loopbackPort: port)
        await controller.metrics.start(saved: try appliance().settings.metrics)

        // `clear metrics`: stopped and saved as off, which a restart keeps even though the
        // command line names an address.
        #expect(try await run(ClearMetrics()).get() == .accepted)
        try await waitUntilClosed(loopbackPort: port)
        #expect(try saved().contains(#""metrics" : "off""#))
        #expect(try appliance().settings.metrics == .off)
        #expect(try appliance().settings.commands.map(\.shellLine).contains("clear metrics"))
        await restarted.start(saved: try appliance().settings.metrics)
        #expect(!canConnect(toLoopbackPort: other.port))
        // Nothing saved: the command line's address is served.
        await restarted.start(saved: nil)
        #expect(canConnect(toLoopbackPort: other.port))
        await restarted.stop()
    }
}

extension Result where Failure == ControlFailure {
    var failureMessage: String? {
        if case .failure(let failure) = self { return failure.message }
        return nil
    }
}
