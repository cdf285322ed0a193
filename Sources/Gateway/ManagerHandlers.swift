import ControlAPI
import Foundation
import OVSDB
import SwitchControl

/// What the manager-cluster commands work on: the Manager rows (through the database), and,
/// when vtepd runs its own ovsdb-server, the switch's identity and that server (restarted
/// when the CA changes). With an external database (`--database`) the SSL settings are that
/// server's, not vtepd's: the certificate commands say so.
public struct ManagerAccess: Sendable {
    public var identity: SwitchIdentity?
    public var server: DatabaseServer?

    public init(identity: SwitchIdentity?, server: DatabaseServer?) {
        self.identity = identity
        self.server = server
    }

    public static let external = ManagerAccess(identity: nil, server: nil)

    func requireIdentity() throws(ControlFailure) -> (SwitchIdentity, DatabaseServer) {
        guard let identity, let server else {
            throw ControlFailure(
                "vtepd uses an external hardware_vtep database (--database): its ovsdb-server's"
                    + " key, certificate and CA are configured there, not by vtepd")
        }
        return (identity, server)
    }

    /// `show switch certificate`: the PEM, then its fingerprint.
    func certificate() async throws(ControlFailure) -> [String] {
        let (identity, _) = try requireIdentity()
        do {
            let pem = try identity.certificatePEM()
            let fingerprint = try await identity.fingerprint()
            return pem.split(separator: "\n").map(String.init) + [
                "", "SHA-256 fingerprint: \(fingerprint)",
            ]
        } catch {
            throw ControlFailure("\(error)")
        }
    }

    /// Installs or clears the CA, then restarts ovsdb-server so its SSL settings follow, and
    /// waits (a while) for `client` to be connected again, so the next command finds it.
    func changeCA(_ pem: String?, client: OVSDBClient) async throws(ControlFailure) {
        let (identity, server) = try requireIdentity()
        do {
            if let pem {
                try await identity.installCA(pem)
            } else {
                try identity.clearCA()
            }
        } catch {
            throw ControlFailure("\(error)")
        }
        do {
            try await server.restart()
        } catch {
            throw ControlFailure(
                "the CA was \(pem == nil ? "cleared" : "installed"), but ovsdb-server did not"
                    + " come back: \(error)")
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while await !client.isConnected, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// `show switch manager-cluster`: one row per Manager, then the CA in force and the last
    /// SSL failure ovsdb-server logged (why a controller is not connected).
    func report(_ cluster: ManagerCluster) async throws(ControlFailure) -> [String] {
        let connections = try await cluster.connections()
        var table = TextTable(columns: [
            .init("TARGET"), .init("SET BY"), .init("CONNECTED"), .init("STATE"),
            .init("FOR", .right), .init("LAST ERROR"),
        ])
        for connection in connections {
            let status = connection.status
            let since =
                connection.isConnected
                ? status["sec_since_connect"] : status["sec_since_disconnect"]
            table.append([
                connection.target, connection.ours ? "admin" : "controller",
                connection.isConnected ? "yes" : "no", status["state"] ?? "-",
                since.map { "\($0) s" } ?? "-", status["last_error"] ?? "-",
            ])
        }
        var lines =
            connections.isEmpty
            ? ["No controllers (set switch manager-cluster IP,IP… connects to them)."]
            : table.rendered().split(separator: "\n").map(String.init)
        guard let identity, let server else { return lines }
        lines.append("")
        if identity.hasInstalledCA {
            lines.append("Controllers' CA: installed (set switch ca-certificate)")
        } else if FileManager.default.fileExists(atPath: identity.bootstrapCACertificatePath) {
            lines.append(
                "Controllers' CA: trusted on first use, from the first controller that connected")
        } else {
            lines.append(
                "Controllers' CA: none yet; the first controller's CA will be trusted and kept")
        }
        if connections.contains(where: { !$0.isConnected }), let error = server.lastSSLError() {
            lines.append("Last SSL failure (ovsdb-server's log): \(error)")
        }
        return lines
    }

    /// The lines of the running configuration: the cluster, then the CA with its PEM and the
    /// empty line that ends it, as typed into the shell.
    func runningConfig(_ cluster: ManagerCluster) async throws(ControlFailure) -> [String] {
        var lines: [String] = []
        if let command = try await cluster.command() { lines.append(command.shellLine) }
        if let pem = identity?.installedCA() {
            lines.append(SetCACertificate(pem: pem).shellLine)
            lines += pem.split(separator: "\n").map(String.init) + [""]
        }
        return lines
    }
}

extension GatewayController {
    /// The manager-cluster commands' handlers.
    static func registerManagerCommands(
        in table: inout ControlHandlers, cluster: ManagerCluster, access: ManagerAccess
    ) {
        table.on(ShowSwitchCertificate.self) { _, _ throws(ControlFailure) in
            .lines(try await access.certificate())
        }
        table.on(SetManagerCluster.self) { command, _ throws(ControlFailure) in
            try await cluster.set(command)
            return .accepted
        }
        table.on(ClearManagerCluster.self) { _, _ throws(ControlFailure) in
            try await cluster.clear()
            return .accepted
        }
        table.on(ShowManagerCluster.self) { _, _ throws(ControlFailure) in
            .lines(try await access.report(cluster))
        }
        table.on(SetCACertificate.self) { command, _ throws(ControlFailure) in
            try await access.changeCA(command.pem, client: cluster.client)
            return .accepted
        }
        table.on(ClearCACertificate.self) { _, _ throws(ControlFailure) in
            try await access.changeCA(nil, client: cluster.client)
            return .accepted
        }
    }
}
