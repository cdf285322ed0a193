import Appliance
import ControlAPI
import DataPlane
import Foundation
import Gateway
import HostConfiguration
import Packet
import ProcessSpawning
import SwitchControl
import Synchronization
import Testing

/// vtepd's start re-applies the saved settings; a password the shadow file cannot take must
/// not cost the appliance the rest of them.
@Suite struct ApplianceRestoreTests {
    /// A temporary appliance root and state directory, removed afterwards.
    private func withDirectories(_ body: (String, String) throws -> Void) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "vtep-restore-\(getpid())-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(
            atPath: base + "/root/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            atPath: base + "/state", withIntermediateDirectories: true)
        try body(base + "/root", base + "/state")
    }

    private func controller(root: String, state: String, kernelName: KernelName)
        throws -> ApplianceController
    {
        // The kernel's hostname behind closures: this test runs in the machine's own UTS
        // namespace and must not rename it.
        let host = ApplianceHost(
            root: root,
            kernelHostname: KernelHostname(
                get: { kernelName.name.withLock { $0 } },
                set: { name in
                    kernelName.name.withLock { $0 = name }
                    return 0
                }))
        return try ApplianceController(
            host: host, store: ApplianceSettingsStore(stateDirectory: state),
            audit: AuditLog(path: state + "/audit.log"))
    }

    @Test func aPasswordShadowCannotTakeCostsOnlyThePassword() throws {
        try withDirectories { root, state in
            var saved = ApplianceSettings(hostname: try Hostname("gw-restored"))
            try saved.addDNSServer(#require(IPAddress("192.0.2.53")))
            saved.setUser(
                ApplianceUser(
                    name: try UserName("admin"),
                    passwordHash: try PasswordHash(hashing: "correct horse")))
            try ApplianceSettingsStore(stateDirectory: state).save(saved)
            let kernelName = KernelName()

            // No etc/shadow under the root: the password cannot be written.
            let appliance = try controller(root: root, state: state, kernelName: kernelName)
            var thrown: HostConfigurationError?
            do throws(HostConfigurationError) {
                try appliance.restore()
            } catch {
                thrown = error
            }
            let refusal = try #require(thrown)
            guard case .shadow = refusal.cause else {
                Issue.record("\(refusal)")
                return
            }
            // Everything else is in force.
            #expect(kernelName.name.withLock { $0 } == "gw-restored")
            let hostname = try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8)
            #expect(hostname == "gw-restored\n")
            let resolv = try String(contentsOfFile: root + "/etc/resolv.conf", encoding: .utf8)
            #expect(resolv.contains("nameserver 192.0.2.53\n"))

            // With the account there, the next start writes the hash too.
            try AtomicFile.write(
                Array("admin:!:20000:0:99999:7:::\n".utf8), to: root + "/etc/shadow",
                mode: 0o640)
            try appliance.restore()
            let shadow = try String(contentsOfFile: root + "/etc/shadow", encoding: .utf8)
            #expect(shadow.hasPrefix("admin:\(saved.users[0].passwordHash.text):"), "\(shadow)")
        }
    }
}

/// A stand-in for the kernel's hostname.
private final class KernelName: Sendable {
    let name = Mutex("before")
}
