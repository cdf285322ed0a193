import Foundation
import Testing

@testable import Appliance

/// NTP servers go to chronyd's sourcedir and chronyd is told to reload them. These tests use
/// no chronyd: VTEPSHTimeTests (GatewayTests) runs a real one, with a real NTP server.
@Suite("NTP servers: chrony's sources file and reload")
struct TimeServiceTests {
    private func settings(_ servers: [String]) throws -> ApplianceSettings {
        var settings = ApplianceSettings()
        for server in servers { try settings.addNTPServer(NTPServer(server)) }
        return settings
    }

    /// No command socket: chronyd is not running, so the file alone is written, and chronyd
    /// reads it when it starts.
    @Test func withoutChronydTheFileIsWritten() throws {
        try withTemporaryDirectory { root in
            let host = ApplianceHost(root: root)
            try host.apply(try settings(["192.0.2.123", "ntp.example.net"]), replacing: nil)
            let text = try #require(try AtomicFile.read(host.chronySourcesPath))
            #expect(
                String(decoding: text, as: UTF8.self)
                    == "# Written by vtepd from the appliance settings; change it with vtepsh.\n"
                    + "server 192.0.2.123 iburst\nserver ntp.example.net iburst\n")
            #expect(try host.chronySources() == nil)
        }
    }

    /// A command socket chronyc cannot talk to (a regular file where the socket should be):
    /// the reload is refused, the sources file is put back, and the report says the reload
    /// after the undo failed too, since chronyd cannot be reached to reload the old file.
    @Test func aRefusedReloadPutsTheOldSourcesBack() throws {
        try #require(
            access(ApplianceHost.chronyc, X_OK) == 0,
            "chronyc is missing: appliance/install-deps.sh installs chrony")
        try withTemporaryDirectory { root in
            let host = ApplianceHost(root: root)
            let old = try settings(["192.0.2.123"])
            try host.apply(old, replacing: nil)
            let before = try AtomicFile.read(host.chronySourcesPath)
            try AtomicFile.makeDirectories(root + "/run/chrony")
            try AtomicFile.write(Array("not a socket\n".utf8), to: host.chronySocketPath)

            let new = try settings(["192.0.2.123", "192.0.2.124"])
            var thrown: HostConfigurationError?
            do throws(HostConfigurationError) {
                try host.apply(new, replacing: old)
            } catch {
                thrown = error
            }
            let refusal = try #require(thrown)
            #expect(refusal.step == "reload chronyd's sources (chronyc reload sources)")
            guard case .timeService(let failure) = refusal.cause else {
                Issue.record("\(refusal)")
                return
            }
            #expect(failure.reason.contains("exited with status 1"), "\(failure)")
            #expect(try AtomicFile.read(host.chronySourcesPath) == before)
            #expect(refusal.rollbackFailures.count == 1, "\(refusal.rollbackFailures)")
            #expect(
                refusal.rollbackFailures.first?.hasPrefix("undo prepare chronyd's reload") == true)
        }
    }

    @Test func chronycSourceLines() throws {
        let synchronised = try #require(
            TimeSourceState(
                chronycCSV: "^,*,192.0.2.123,8,6,377,2,-0.000000219,0.000003337,0.000006063"))
        #expect(synchronised.address == "192.0.2.123")
        #expect(synchronised.state == "synchronised")
        #expect(synchronised.stratum == 8)
        #expect(synchronised.reach == "377")
        #expect(synchronised.lastSampleAge == "2")
        let unreachable = try #require(
            TimeSourceState(chronycCSV: "^,?,198.51.100.7,0,6,0,-,0.0,0.0,0.0"))
        #expect(unreachable.state == "unreachable")
        #expect(unreachable.lastSampleAge == nil)
        // Reference clocks and malformed lines are not servers.
        #expect(TimeSourceState(chronycCSV: "#,*,PPS,0,4,377,1,0,0,0") == nil)
        #expect(TimeSourceState(chronycCSV: "200 OK") == nil)
        #expect(TimeSourceState(chronycCSV: "") == nil)
    }

    @Test func aHungCommandIsKilled() throws {
        #expect(throws: HostCommandError.self) {
            try HostCommand.run("/bin/sleep", ["30"], timeout: .milliseconds(300))
        }
        #expect(try HostCommand.run("/bin/echo", ["a;b", "$(id)"]) == "a;b $(id)\n")
        #expect(throws: HostCommandError.self) { try HostCommand.run("/nonexistent", []) }
    }
}
