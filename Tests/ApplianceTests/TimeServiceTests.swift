import Foundation
import NamespaceLab
import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

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

    /// A datagram socket bound at `path` and kept open: what chronydListens() sees of a
    /// running chronyd.
    private func boundSocket(_ path: String) throws -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(fd >= 0 && bound == 0, "bind \(path): errno \(errno)")
        return fd
    }

    /// chronyd died and left its socket: it is not running, so the change is accepted and
    /// the file waits for its next start; nothing is asked of chronyc.
    ///
    /// The stale socket is a socket inode no socket is bound to, made by mknod(2). (Binding a
    /// socket and closing it is not enough: a child another test spawns at that moment holds
    /// a copy of the descriptor until its exec, and the socket stays alive, as CI once saw.)
    @Test func aStaleSocketCountsAsNotRunning() throws {
        try withTemporaryDirectory { root in
            let host = ApplianceHost(root: root, chronyc: "/nonexistent/chronyc")
            try AtomicFile.makeDirectories(root + "/run/chrony")
            try #require(
                mknod(host.chronySocketPath, S_IFSOCK | 0o600, 0) == 0, "mknod: errno \(errno)")
            #expect(!host.chronydListens())
            try host.apply(try settings(["192.0.2.123"]), replacing: nil)
            #expect(try AtomicFile.read(host.chronySourcesPath) != nil)
            #expect(try host.chronySources() == nil)
        }
    }

    /// chronyd refuses the new sources (played by a chronyc that fails while the file names
    /// 192.0.2.124): the change is refused, the old file is put back, and chronyd reloads it
    /// (the undo's reload runs after the file is restored, so it succeeds).
    @Test func aRefusedReloadPutsTheOldSourcesBack() throws {
        try withTemporaryDirectory { root in
            let chronyc = root + "/chronyc"
            let calls = root + "/calls"
            let sources = root + "/etc/chrony/sources.d/vtep-gateway.sources"
            try writeExecutable(
                """
                #!/bin/sh
                echo "$*" >> \(calls)
                if grep -q 192.0.2.124 \(sources); then echo "501 Not authorised"; exit 1; fi
                echo "200 OK"
                """, to: chronyc)
            let host = ApplianceHost(root: root, chronyc: chronyc)
            try AtomicFile.makeDirectories(root + "/run/chrony")
            let chronyd = try boundSocket(host.chronySocketPath)
            defer { close(chronyd) }
            let old = try settings(["192.0.2.123"])
            try host.apply(old, replacing: nil)
            let before = try AtomicFile.read(host.chronySourcesPath)

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
            #expect(failure.reason == "exited with status 1: 501 Not authorised", "\(failure)")
            #expect(try AtomicFile.read(host.chronySourcesPath) == before)
            #expect(refusal.rollbackFailures.isEmpty, "\(refusal.rollbackFailures)")
            // First apply, the refused one, the undo's: three reloads over the socket.
            let made = try String(contentsOfFile: calls, encoding: .utf8)
            #expect(
                made
                    == String(
                        repeating: "-h \(host.chronySocketPath) reload sources\n", count: 3))
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
