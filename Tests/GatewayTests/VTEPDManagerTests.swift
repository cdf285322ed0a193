import Foundation
import TestSupport
import Testing

/// vtepd joining a controller over SSL, as an admin does it from vtepsh: `show switch
/// certificate` for the controller, `set switch ca-certificate`, `set switch manager-cluster`.
/// The controllers are real: `ovsdb-client monitor pssl:…` and OVN's `ovn-controller-vtep
/// --vtep-db=pssl:…`, listening in the gateway's namespace; their keys and certificates come
/// from Open vSwitch's `ovs-pki` (controllerca signs the controller, switchca plays another
/// organisation's CA). Every process is the lab's, stopped by PID.
@Suite("vtepd joins a controller cluster over SSL", .serialized)
struct VTEPDManagerTests {
    static let port = 16640

    /// The controllers' PKI (`ovs-pki init`) with a controller certificate signed by
    /// controllerca and a rogue one signed by switchca.
    struct PKI {
        let directory: URL
        var controllerCA: String {
            directory.appendingPathComponent("controllerca/cacert.pem").path
        }
        func key(_ name: String) -> String {
            directory.appendingPathComponent("\(name)-privkey.pem").path
        }
        func certificate(_ name: String) -> String {
            directory.appendingPathComponent("\(name)-cert.pem").path
        }

        init(_ lab: Lab) throws {
            guard Lab.executable("ovs-pki") != nil, Lab.executable("ovsdb-client") != nil else {
                throw LabError(
                    description: "ovs-pki and ovsdb-client are not installed: the manager tests"
                        + " need Debian's openvswitch-common (appliance/install-deps.sh)")
            }
            directory = lab.file("pki")
            let log = lab.file("ovs-pki.log").path
            try lab.execute(["ovs-pki", "init", "--dir=\(directory.path)", "-l", log])
            for (name, ca) in [("controller", "controller"), ("rogue", "switch")] {
                // In the directory: the name becomes the certificate's CN (at most 64 bytes).
                try lab.execute([
                    "env", "-C", directory.path, "ovs-pki", "--dir=\(directory.path)", "-l", log,
                    "req+sign", name, ca,
                ])
            }
        }
    }

    /// `vtepsh -c LINE` against `vtepd`, with `input` as its standard input.
    @discardableResult
    static func shell(_ lab: Lab, _ vtepd: LabVTEPD, _ line: String, input: URL? = nil) throws
        -> String
    {
        try lab.execute(
            [
                try ShellSite.executable("vtepsh").path, "--control", vtepd.controlSocket, "-c",
                line,
            ],
            input: input
        ).output
    }

    /// The switch's certificate as `show switch certificate` prints it, in a file for the
    /// controller's `--ca-cert`; checks the fingerprint line against openssl and sha256sum.
    static func switchCertificate(_ lab: Lab, _ vtepd: LabVTEPD) throws -> URL {
        let shown = try shell(lab, vtepd, "show switch certificate")
        #expect(!shown.contains("PRIVATE"), "\(shown)")
        let lines = shown.split(separator: "\n").map(String.init)
        let begin = try #require(lines.firstIndex(of: "-----BEGIN CERTIFICATE-----"))
        let end = try #require(lines.firstIndex(of: "-----END CERTIFICATE-----"))
        let file = lab.file("switch-cert.pem")
        try Data((lines[begin...end].joined(separator: "\n") + "\n").utf8).write(to: file)
        let der = lab.file("switch-cert.der")
        try lab.execute(["openssl", "x509", "-in", file.path, "-outform", "DER", "-out", der.path])
        let sum = try lab.execute(["sha256sum", der.path]).output.prefix(64).uppercased()
        let expected = stride(from: 0, to: 64, by: 2).map {
            let start = sum.index(sum.startIndex, offsetBy: $0)
            return String(sum[start..<sum.index(start, offsetBy: 2)])
        }.joined(separator: ":")
        #expect(lines.contains("SHA-256 fingerprint: \(expected)"), "\(shown)")
        return file
    }

    /// The row of `target` in `show switch manager-cluster`, split in words.
    static func connection(_ lab: Lab, _ vtepd: LabVTEPD, _ target: String) throws -> [String]? {
        try shell(lab, vtepd, "show switch manager-cluster").split(separator: "\n")
            .first { $0.hasPrefix(target + " ") }?.split(separator: " ").map(String.init)
    }

    @Test(
        "ovsdb-client over pssl sees our rows after set switch manager-cluster; it restarts and vtepd keeps forwarding; a controller of another CA is refused and why is shown"
    )
    func ovsdbClientControllerOverSSL() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try lab.replicate(from: b, to: [a])
            try lab.warmUnderlay(topology)
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3).received == 3)

            let pki = try PKI(lab)
            let switchCertificate = try Self.switchCertificate(lab, vtepd)
            // The admin installs the controllers' CA, pasted after the command.
            let shown = try Self.shell(
                lab, vtepd, "set switch ca-certificate",
                input: URL(fileURLWithPath: pki.controllerCA))
            #expect(shown == "", "\(shown)")

            let target = "ssl:\(a.underlayIPv4):\(Self.port)"
            func controller(_ name: String) throws -> (LabProcess, URL) {
                let output = lab.file("\(name)-monitor.out")
                let process = try lab.start(
                    name,
                    [
                        "ovsdb-client", "--private-key=\(pki.key(name))",
                        "--certificate=\(pki.certificate(name))",
                        "--ca-cert=\(switchCertificate.path)", "monitor",
                        "pssl:\(Self.port):\(a.underlayIPv4)", "hardware_vtep", "Physical_Switch",
                        "name", "tunnel_ips",
                    ], in: a.namespace, output: output)
                return (process, output)
            }
            func seen(_ output: URL) -> String {
                (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            }

            var (monitor, output) = try controller("controller")
            try Self.shell(
                lab, vtepd, "set switch manager-cluster \(a.underlayIPv4) port \(Self.port)")
            try waitUntil(
                "the controller sees our Physical_Switch over SSL", lastSeen: seen(output)
            ) {
                seen(output).contains(vtepd.physicalSwitch)
                    && seen(output).contains(a.underlayIPv4)
            }
            try waitUntil("show switch manager-cluster reports the connection") {
                let row = try Self.connection(lab, vtepd, target)
                return row?[1] == "admin" && row?[2] == "yes" && row?[3] == "ACTIVE"
            }

            // The controller goes away: the status says so, vtepd forwards on.
            monitor.stop()
            try waitUntil("show switch manager-cluster reports the loss") {
                let row = try Self.connection(lab, vtepd, target)
                return row?[2] == "no" && row?[3] != "ACTIVE"
            }
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3).received == 3)
            (monitor, output) = try controller("controller")
            try waitUntil("the controller sees our rows again", lastSeen: seen(output)) {
                seen(output).contains(vtepd.physicalSwitch)
            }
            try waitUntil("show switch manager-cluster reports the reconnection") {
                try Self.connection(lab, vtepd, target)?[2] == "yes"
            }
            monitor.stop()

            // A controller whose certificate another CA signed: refused, and the reason shown.
            (monitor, output) = try controller("rogue")
            try waitUntil(
                "show switch manager-cluster names the refused certificate",
                lastSeen: try Self.shell(lab, vtepd, "show switch manager-cluster")
            ) {
                let report = try Self.shell(lab, vtepd, "show switch manager-cluster")
                let row = try Self.connection(lab, vtepd, target)
                return report.contains("certificate verify failed") && row?[2] == "no"
            }
            #expect(!seen(output).contains(vtepd.physicalSwitch), "\(seen(output))")
            #expect(try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 3).received == 3)
            monitor.stop()

            // The configuration shows the cluster and the CA (its PEM as pasted), never a key.
            let running = try Self.shell(lab, vtepd, "show running-config")
            let ca = try String(contentsOfFile: pki.controllerCA, encoding: .utf8)
            // ovs-pki's file has openssl's text before the PEM block: only the block is kept.
            let caLines = ca.split(separator: "\n").map(String.init)
            let caBody = try caLines[
                try #require(caLines.firstIndex(of: "-----BEGIN CERTIFICATE-----"))..<#require(
                    caLines.firstIndex(of: "-----END CERTIFICATE-----"))
            ].dropFirst()
            #expect(!caBody.isEmpty && !running.contains("Signature Algorithm"))
            #expect(
                running.contains("set switch manager-cluster \(a.underlayIPv4) port \(Self.port)\n")
            )
            #expect(running.contains("set switch ca-certificate\n-----BEGIN CERTIFICATE-----\n"))
            #expect(caBody.allSatisfy { running.contains($0) })
            let key = try String(
                contentsOf: vtepd.stateRoot.appendingPathComponent("switch-privkey.pem"),
                encoding: .utf8)
            let keyBody = key.split(separator: "\n").filter { !$0.hasPrefix("-----") }
            #expect(keyBody.count > 10)
            for text in [
                running, try Self.shell(lab, vtepd, "show log"), vtepd.process.tail(lines: 100_000),
                try String(
                    contentsOf: vtepd.stateRoot.appendingPathComponent("ovsdb-server.log"),
                    encoding: .utf8),
            ] {
                #expect(!text.contains("PRIVATE KEY") && !keyBody.contains { text.contains($0) })
            }
            #expect(try Self.shell(lab, vtepd, "show log").contains("set switch manager-cluster"))

            // Cleared: no Manager row of ours is left.
            try Self.shell(lab, vtepd, "clear switch manager-cluster")
            #expect(try vtepd.control(["get-manager"]).output == "")
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "ovn-controller-vtep over pssl, trusted on first use: OVN programs vtepd through the manager connection and a ping crosses"
    )
    func ovnControllerVTEPOverSSL() async throws {
        try await Lab.runOnOwnThread { lab in
            let vni = 1000
            let (topology, vtepd) = try VTEPDOVNTests.gatewayWaitingForOVN(lab, vni: vni)
            let a = topology.sites[0]
            let pki = try PKI(lab)
            let switchCertificate = try Self.switchCertificate(lab, vtepd)
            let bootstrap = vtepd.stateRoot.appendingPathComponent("bootstrap-ca-cert.pem")
            #expect(
                try Self.shell(lab, vtepd, "show switch manager-cluster").contains(
                    "Controllers' CA: none yet"))

            // No CA installed: the first controller's (sent in its chain, --peer-ca-cert) is
            // trusted and kept.
            let ovn = try lab.startOVN(
                vtepDatabase: "pssl:\(Self.port):\(a.underlayIPv4)",
                vtepOptions: [
                    "--private-key=\(pki.key("controller"))",
                    "--certificate=\(pki.certificate("controller"))",
                    "--ca-cert=\(switchCertificate.path)", "--peer-ca-cert=\(pki.controllerCA)",
                ], in: a.namespace)
            try Self.shell(
                lab, vtepd, "set switch manager-cluster \(a.underlayIPv4) port \(Self.port)")
            // ovsdb-server creates the file, then writes the certificate into it (OVS's
            // lib/stream-ssl.c do_ca_cert_bootstrap: open O_CREAT|O_EXCL, then
            // PEM_write_X509): wait for the whole block, not for the file alone.
            try waitUntil("ovsdb-server keeps the controllers' CA it was shown first") {
                ((try? String(contentsOf: bootstrap, encoding: .utf8)) ?? "")
                    .contains("-----END CERTIFICATE-----")
            }
            let kept = try String(contentsOf: bootstrap, encoding: .utf8)
            let ca = try String(contentsOfFile: pki.controllerCA, encoding: .utf8)
            let block = { (text: String) in
                text.split(separator: "\n").drop { !$0.hasPrefix("-----BEGIN") }
                    .filter { !$0.hasPrefix("-----") }
            }
            #expect(!block(kept).isEmpty && block(kept) == block(ca))

            try VTEPDOVNTests.programAndCross(lab, topology, vtepd, ovn, vni: vni)
            let report = try Self.shell(lab, vtepd, "show switch manager-cluster")
            #expect(report.contains("Controllers' CA: trusted on first use"), "\(report)")
            // ovsdb-server refreshes a Manager's status every few seconds, and the bootstrap
            // dropped the first connection: the row says connected once it catches up.
            let target = "ssl:\(a.underlayIPv4):\(Self.port)"
            try waitUntil(
                "the Manager row to say connected", timeout: .seconds(20),
                lastSeen: try Self.shell(lab, vtepd, "show switch manager-cluster")
            ) { try Self.connection(lab, vtepd, target)?[2] == "yes" }
            try vtepd.process.requireRunning()
        }
    }
}
