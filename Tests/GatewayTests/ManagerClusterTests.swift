import ControlAPI
import Foundation
import Netlink
import OVSDB
import Packet
import TestSupport
import Testing

@testable import Gateway
@testable import ProcessSpawning
@testable import SwitchControl

/// The switch's identity (key, self-signed certificate, controllers' CA) with the real
/// openssl, and the Manager rows of `set switch manager-cluster` in a real ovsdb-server, read
/// back with vtep-ctl.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ManagerClusterTests {
    /// A CA certificate made by openssl for the test, in `directory`.
    static func makeCA(in directory: String, name: String) async throws -> String {
        let (key, certificate) = (directory + "/\(name)-key.pem", directory + "/\(name)-cert.pem")
        try await ChildProcess.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
                "/CN=\(name)", "-keyout", key, "-out", certificate,
            ])
        return try String(contentsOfFile: certificate, encoding: .utf8)
    }

    func mode(_ path: String) throws -> Int {
        try #require(
            (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?
                .intValue)
    }

    @Test func identityIsMadeOncePrivateAndItsFingerprintIsTheCertificatesSHA256() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        let state = fixture.directory + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let identity = try SwitchIdentity(stateDirectory: state, commonName: "ps0")
        #expect(try await identity.prepare())
        #expect(try mode(identity.privateKeyPath) == 0o600)
        let key = try String(contentsOfFile: identity.privateKeyPath, encoding: .utf8)
        #expect(key.contains("PRIVATE KEY"))
        let pem = try identity.certificatePEM()
        #expect(pem.hasPrefix("-----BEGIN CERTIFICATE-----") && !pem.contains("PRIVATE"))

        // Kept across restarts: a second start makes nothing, the files are the same.
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o644], ofItemAtPath: identity.privateKeyPath)
        #expect(try await identity.prepare() == false)
        #expect(try String(contentsOfFile: identity.privateKeyPath, encoding: .utf8) == key)
        #expect(try identity.certificatePEM() == pem)
        #expect(try mode(identity.privateKeyPath) == 0o600, "a widened key is made private again")

        // The fingerprint is SHA-256 over the DER, as sha256sum computes it on openssl's DER.
        let der = fixture.directory + "/cert.der"
        try await ChildProcess.run(
            "/usr/bin/openssl",
            ["x509", "-in", identity.certificatePath, "-outform", "DER", "-out", der])
        let sum = try await ChildProcess.run("/usr/bin/sha256sum", [der])
        let hex = String(sum.prefix(64)).uppercased()
        let pairs = stride(from: 0, to: 64, by: 2).map {
            let start = hex.index(hex.startIndex, offsetBy: $0)
            return String(hex[start..<hex.index(start, offsetBy: 2)])
        }
        #expect(try await identity.fingerprint() == pairs.joined(separator: ":"))
        // The subject is the physical switch.
        let subject = try await identity.summary(of: identity.certificatePath)
        #expect(subject.first?.contains("CN") == true && subject.first?.contains("ps0") == true)
    }

    @Test func onlyOneValidCertificateIsInstalledAsTheCAAndARefusalChangesNothing() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        let state = fixture.directory + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let identity = try SwitchIdentity(stateDirectory: state, commonName: "ps0")
        #expect(
            identity.serverArguments.last == "--bootstrap-ca-cert=\(state)/bootstrap-ca-cert.pem")
        let ca = try await Self.makeCA(in: fixture.directory, name: "ca1")
        let other = try await Self.makeCA(in: fixture.directory, name: "ca2")
        try await identity.installCA(ca)
        #expect(identity.installedCA() == ca)
        #expect(identity.serverArguments.last == "--ca-cert=\(state)/ca-cert.pem")

        let key = try String(
            contentsOfFile: fixture.directory + "/ca2-key.pem", encoding: .utf8)
        let lines = ca.split(separator: "\n")
        let broken =
            ([lines[0]] + [String(repeating: "QUFB", count: 16)[...]] + [lines.last!])
            .joined(separator: "\n")
        let refused: [(String, String)] = [
            ("", "no certificate was given"),
            ("hello\n", "that is not a PEM certificate"),
            (ca + other, "2 certificates were given"),
            (key, "only a certificate is accepted, not BEGIN PRIVATE KEY"),
            (other + key, "only a certificate is accepted"),
            (broken, "that is not a valid X.509 certificate"),
            (
                ca.replacingOccurrences(of: "MII", with: "M*I"),
                "the certificate's body is not base64"
            ),
        ]
        for (text, reason) in refused {
            let error = await #expect(throws: SwitchIdentityError.self) {
                try await identity.installCA(text)
            }
            #expect(error.map { "\($0)".contains(reason) } == true, "\(String(describing: error))")
            #expect(identity.installedCA() == ca, "refused input changed the CA: \(reason)")
        }
        // The text openssl -text and ovs-pki print before the block is left out.
        try await identity.installCA("Certificate:\n    Data:\n        Version: 3 (0x2)\n" + ca)
        #expect(identity.installedCA() == ca)
        // Surrounding blank lines and trailing spaces, as a paste has them, are fine.
        try await identity.installCA("\n  " + other.replacingOccurrences(of: "\n", with: "  \n"))
        #expect(identity.installedCA() == other)

        FileManager.default.createFile(
            atPath: identity.bootstrapCACertificatePath, contents: Data(ca.utf8))
        try identity.clearCA()
        #expect(identity.installedCA() == nil)
        #expect(!FileManager.default.fileExists(atPath: identity.bootstrapCACertificatePath))
        #expect(identity.serverArguments.last?.hasPrefix("--bootstrap-ca-cert=") == true)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: state).filter {
            $0.hasPrefix(".")
        }
        #expect(leftovers == [])
    }

    @Test func ovsdbServerRunsWithTheIdentityAndARestartForANewCAIsNoDeath() async throws {
        let fixture = try ServerFixture()
        defer { fixture.remove() }
        let state = fixture.directory + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let identity = try SwitchIdentity(stateDirectory: state, commonName: "ps0")
        try await identity.prepare()
        let server = try DatabaseServer(
            stateDirectory: state, stopTimeout: .seconds(2), identity: identity)
        try await server.start()
        func commandLine() async throws -> [String] {
            let pid = try #require(await server.pid)
            let data = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        }
        do {
            let words = try await commandLine()
            #expect(words.contains("--private-key=\(identity.privateKeyPath)"))
            #expect(words.contains("--certificate=\(identity.certificatePath)"))
            #expect(words.contains("--bootstrap-ca-cert=\(identity.bootstrapCACertificatePath)"))
            let first = try #require(await server.pid)

            try await identity.installCA(try await Self.makeCA(in: fixture.directory, name: "ca"))
            try await server.restart()
            let second = try #require(await server.pid)
            #expect(second != first && !processExists(first))
            #expect(try await commandLine().contains("--ca-cert=\(identity.caCertificatePath)"))
            #expect(await server.deaths == 0)
            #expect(await server.problems.isEmpty)
            #expect(DatabaseServer.accepts(server.socketPath))
            // The key is not in ovsdb-server's log.
            let key = try String(contentsOfFile: identity.privateKeyPath, encoding: .utf8)
            let body = key.split(separator: "\n")[1]
            #expect(!server.logTail(lines: 1000).contains(body))
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test func aSetReplacesOurRowsKeepsTheControllersAndClearLeavesOnlyTheirs() async throws {
        try await withServer { fixture in
            let client = try await fixture.connectedClient()
            defer { Task { await client.stop() } }
            let cluster = ManagerCluster(client: client)
            // No Global row yet: refused, with the reason.
            let error = await #expect(throws: ControlFailure.self) {
                try await cluster.set(SetManagerCluster(addresses: [IPAddress("10.0.0.5")!]))
            }
            #expect(error?.message.contains("no Global row") == true)
            try await fixture.vtepCtl("add-ps", "ps0")

            let two = SetManagerCluster(
                addresses: [IPAddress("10.0.0.5")!, IPAddress("2001:db8::6")!])
            try await cluster.set(two)
            #expect(
                try await fixture.vtepCtl("get-manager")
                    == "ssl:10.0.0.5:6640\nssl:[2001:db8::6]:6640\n")
            #expect(try await cluster.command() == two)

            // The controller adds its third member, as a controller writes it.
            try await fixture.vtepCtl(
                "--", "--id=@m", "create", "Manager", "target=\"ssl:10.0.0.7:6640\"", "--", "add",
                "Global", ".", "managers", "@m")
            let rows = try await cluster.connections()
            #expect(
                rows.map(\.target) == [
                    "ssl:10.0.0.5:6640", "ssl:10.0.0.7:6640", "ssl:[2001:db8::6]:6640",
                ])
            #expect(rows.map(\.ours) == [true, false, true])
            #expect(rows.allSatisfy { !$0.isConnected })

            // A new set: 10.0.0.6 replaces the IPv6 member, 10.0.0.5 stays (its row too), the
            // controller's member stays; the port is the one given.
            let before = try await fixture.vtepCtl(
                "--bare", "--columns=_uuid", "find", "Manager", "target=\"ssl:10.0.0.7:6640\"")
            try await cluster.set(
                SetManagerCluster(
                    addresses: [IPAddress("10.0.0.5")!, IPAddress("10.0.0.7")!], port: 6640))
            #expect(
                try await fixture.vtepCtl("get-manager")
                    == "ssl:10.0.0.5:6640\nssl:10.0.0.7:6640\n")
            #expect(
                try await fixture.vtepCtl(
                    "--bare", "--columns=_uuid", "find", "Manager", "target=\"ssl:10.0.0.7:6640\"")
                    == before, "the controller's row is kept, now ours too")
            try await cluster.set(
                SetManagerCluster(addresses: [IPAddress("10.0.0.9")!], port: 16640))
            #expect(try await fixture.vtepCtl("get-manager") == "ssl:10.0.0.9:16640\n")
            #expect(
                try await cluster.command()
                    == SetManagerCluster(addresses: [IPAddress("10.0.0.9")!], port: 16640))

            try await fixture.vtepCtl(
                "--", "--id=@m", "create", "Manager", "target=\"ssl:10.0.0.8:6640\"", "--", "add",
                "Global", ".", "managers", "@m")
            try await cluster.clear()
            #expect(try await fixture.vtepCtl("get-manager") == "ssl:10.0.0.8:6640\n")
            #expect(try await cluster.command() == nil)
            // Twice is harmless.
            try await cluster.clear()
            #expect(try await fixture.vtepCtl("get-manager") == "ssl:10.0.0.8:6640\n")
        }
    }

    @Test func targetsAreParsedBack() {
        #expect(ManagerCluster.parse("ssl:10.0.0.5:6640")! == (IPAddress("10.0.0.5")!, 6640))
        #expect(
            ManagerCluster.parse("ssl:[2001:db8::1]:16640")! == (IPAddress("2001:db8::1")!, 16640))
        #expect(ManagerCluster.parse("tcp:10.0.0.5:6640") == nil)
        #expect(ManagerCluster.parse("ssl:10.0.0.5") == nil)
        #expect(
            SetManagerCluster.target(IPAddress("2001:db8::1")!, port: 6640)
                == "ssl:[2001:db8::1]:6640")
    }
}

/// What a controller reads back: faults, tunnel IPs, a refused binding's port fault, written
/// into a real ovsdb-server and read with vtep-ctl.
@Suite(.serialized, .timeLimit(.minutes(1))) struct SwitchStatusTests {
    @Test func faultsAndTunnelIPsAreWrittenOnlyWhenTheyDifferAndARefusedBindingFaultsItsPort()
        async throws
    {
        try await withServer { fixture in
            let client = try await fixture.connectedClient()
            defer { Task { await client.stop() } }
            let writer = SwitchStatusWriter(client: client, physicalSwitch: "ps0")
            let calm = SwitchStatus(tunnelIPs: ["10.0.0.1"])
            // No Physical_Switch yet: nothing to write.
            #expect(try await writer.write(calm) == [])
            try await fixture.vtepCtl("add-ps", "ps0")
            try await fixture.vtepCtl("add-port", "ps0", "p0")
            try await fixture.vtepCtl("add-port", "ps0", "p1")
            try await fixture.vtepCtl("add-ls", "ls0")
            try await fixture.vtepCtl("bind-ls", "ps0", "p0", "100", "ls0")
            #expect(try await writer.write(calm) == ["tunnel_ips"])
            #expect(try await writer.write(calm) == [], "unchanged rows are not rewritten")

            let faulty = SwitchStatus(
                switchFaults: [.macTableExhaustion, .tunnelExhaustion],
                managementIPs: ["192.0.2.9"],
                tunnelIPs: ["10.0.0.1"])
            #expect(try await writer.write(faulty) == ["switch_fault_status", "management_ips"])
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "ps0", "switch_fault_status")
                    == "[mac_table_exhaustion, tunnel_exhaustion]\n")
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "ps0", "management_ips")
                    == "[\"192.0.2.9\"]\n")
            // Someone removes our tunnel IP and adds one: ours comes back, theirs stays.
            try await fixture.vtepCtl("set", "Physical_Switch", "ps0", "tunnel_ips=\"10.0.0.7\"")
            #expect(try await writer.write(faulty) == ["tunnel_ips"])
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "ps0", "tunnel_ips")
                    == "[\"10.0.0.1\", \"10.0.0.7\"]\n")
            #expect(try await writer.write(calm) == ["switch_fault_status"])
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "ps0", "switch_fault_status")
                    == "[]\n")

            // VLAN 4095 is reserved: the binding is refused, its port (only) faulted; a fault
            // someone else raised on the port stays.
            try await fixture.vtepCtl("bind-ls", "ps0", "p1", "4095", "ls0")
            try await fixture.vtepCtl("set", "Physical_Port", "p1", "port_fault_status=other")
            #expect(try await writer.write(calm) == ["port_fault_status of p1"])
            #expect(
                try await fixture.vtepCtl("get", "Physical_Port", "p1", "port_fault_status")
                    == "[invalid_vlan_map, other]\n")
            #expect(
                try await fixture.vtepCtl("get", "Physical_Port", "p0", "port_fault_status")
                    == "[]\n")
            try await fixture.vtepCtl("unbind-ls", "ps0", "p1", "4095")
            #expect(try await writer.write(calm) == ["port_fault_status of p1"])
            #expect(
                try await fixture.vtepCtl("get", "Physical_Port", "p1", "port_fault_status")
                    == "[other]\n")
        }
    }
}

extension SwitchStatusTests {
    /// Logical_Binding_Stats: a row per binding, made on first write and referenced from the
    /// port's `vlan_stats`, rewritten only when a counter moved; a VLAN not bound gets none.
    @Test func bindingStatisticsAreWrittenPerBindingAndOnlyWhenTheyMove() async throws {
        try await withServer { fixture in
            let client = try await fixture.connectedClient()
            defer { Task { await client.stop() } }
            let writer = SwitchStatusWriter(client: client, physicalSwitch: "ps0")
            try await fixture.vtepCtl("add-ps", "ps0")
            try await fixture.vtepCtl("add-port", "ps0", "p0")
            try await fixture.vtepCtl("add-ls", "ls0")
            try await fixture.vtepCtl("bind-ls", "ps0", "p0", "100", "ls0")
            _ = try await writer.write(SwitchStatus(tunnelIPs: ["10.0.0.1"]))
            func status(_ n: Int) -> SwitchStatus {
                SwitchStatus(
                    tunnelIPs: ["10.0.0.1"],
                    bindingStats: [
                        "p0": [
                            100: .init(
                                packetsFromLocal: n, bytesFromLocal: 100 * n, packetsToLocal: 2 * n,
                                bytesToLocal: 200 * n),
                            // Not bound: no row.
                            200: .init(
                                packetsFromLocal: 1, bytesFromLocal: 1, packetsToLocal: 1,
                                bytesToLocal: 1),
                        ]
                    ])
            }
            #expect(try await writer.write(status(3)) == ["Logical_Binding_Stats of p0 vlan 100"])
            let row = try await fixture.vtepCtl("get", "Physical_Port", "p0", "vlan_stats:100")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let values = try await fixture.vtepCtl("list", "Logical_Binding_Stats", row)
            for field in [
                "packets_from_local  : 3", "bytes_from_local    : 300", "packets_to_local    : 6",
                "bytes_to_local      : 600",
            ] {
                #expect(values.contains(field), "\(field) in \(values)")
            }
            #expect(try await writer.write(status(3)) == [], "unchanged: not rewritten")
            #expect(try await writer.write(status(4)) == ["Logical_Binding_Stats of p0 vlan 100"])
            #expect(
                try await fixture.vtepCtl("get", "Physical_Port", "p0", "vlan_stats:100")
                    .trimmingCharacters(in: .whitespacesAndNewlines) == row, "the same row")
            #expect(
                try await fixture.vtepCtl("get", "Logical_Binding_Stats", row, "packets_from_local")
                    == "4\n")
        }
    }
}

extension SwitchStatusTests {
    @Test func managementAddressesLeaveOutLoopbackLinkLocalAndTunnelIPs() {
        let addresses = [
            "127.0.0.1", "::1", "169.254.3.4", "fe80::1", "febf::1", "10.0.0.1", "192.0.2.9",
            "2001:db8::9", "fec0::1",
        ].map { HostAddress(interfaceIndex: 1, address: IPAddress($0)!, prefixLength: 24) }
        let link = HostLink(
            index: 1, name: "eth0", isAdministrativelyUp: true, hasCarrier: true,
            operationalState: "up", mtu: 1500, macAddress: nil,
            counters: HostLinkCounters(), addresses: addresses)
        #expect(
            SwitchStatusRounds.managementIPs(of: [link, link], tunnelIPs: ["10.0.0.1"])
                == ["192.0.2.9", "2001:db8::9", "fec0::1"])
    }
}
