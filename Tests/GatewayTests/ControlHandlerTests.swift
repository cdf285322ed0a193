import Appliance
import ControlAPI
import DataPlane
import Foundation
import Gateway
import HostConfiguration
import NamespaceLab
import OVSDB
import Packet
import SwitchControl
import Testing

/// Every command declared in ControlAPI has its handler in the table vtepd builds, and only
/// the data plane's reports run before the appliance and the database are attached.
@Suite struct ControlHandlerTests {
    /// A data plane on a veth of a namespace of the test's, tunnel address 192.0.2.1: its
    /// sockets open, but the worker is never started, so it forwards nothing.
    static func idleDataPlane(tag: String) throws -> DataPlane {
        try NamespaceLab.run(tag: tag) { lab in
            let namespace = try lab.namespace("n")
            let (underlay, _) = try lab.veth("u", in: namespace, "p", in: namespace)
            return try lab.inNamespace(namespace) {
                Handed(
                    value: try DataPlane(
                        settings: DataPlaneSettings(
                            underlay: underlay, localIPv4: IPv4Address(192, 0, 2, 1),
                            localIPv6: nil),
                        ports: []))
            }.value
        }
    }

    @Test func everyDeclaredCommandHasAHandlerOnceBothAreAttached() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "vtep-handlers-\(getpid())-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(
            atPath: base + "/state", withIntermediateDirectories: true)
        let controller = GatewayController(dataPlane: try Self.idleDataPlane(tag: "hd"))
        let appliance = try ApplianceController(
            host: ApplianceHost(
                root: base,
                kernelHostname: KernelHostname(get: { "test" }, set: { _ in 0 })),
            store: ApplianceSettingsStore(stateDirectory: base + "/state"),
            audit: AuditLog(path: base + "/state/audit.log"))
        // Never started: it does not connect.
        let database = SwitchDatabase(
            client: OVSDBClient(remote: .unix(path: base + "/none.sock"), monitoring: []),
            physicalSwitch: "ps")

        let reports = [
            "mac-table", "counters", "configuration", "problems", "switch", "system", "names",
            "packet-trace", "show-packet-trace", "clear-packet-trace", "trace", "capture",
            "captures",
            "tech-support",
        ]
        #expect(
            controller.attach(appliance: nil, database: nil)
                == ControlCommands.names.filter { !reports.contains($0) })
        // The appliance's own commands work without the database.
        let withoutDatabase = controller.attach(appliance: appliance, database: nil)
        #expect(withoutDatabase.contains("bind-port") && !withoutDatabase.contains("set-hostname"))
        #expect(!withoutDatabase.contains("set-metrics-listen"))
        #expect(controller.attach(appliance: appliance, database: database) == [])

        // With an external database (no identity of vtepd's), the certificate commands say
        // whose SSL settings they are, and the refusal is audited.
        let peer = PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid())
        for command: any ControlCommand in [
            ShowSwitchCertificate(), ClearCACertificate(), SetCACertificate(pem: "x"),
        ] {
            do {
                _ = try await controller.handle(ControlRequest(id: 1, command: command), from: peer)
                Issue.record("\(command.name) was not refused")
            } catch {
                #expect(error.message.contains("external hardware_vtep database"), "\(error)")
            }
        }
        let audit = try String(contentsOfFile: base + "/state/audit.log", encoding: .utf8)
        #expect(audit.contains("clear switch ca-certificate") && audit.contains("refused"))
    }
}
