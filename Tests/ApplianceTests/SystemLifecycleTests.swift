import Foundation
import HostConfiguration
import Testing

/// `restart service`, `reboot` and `update system` hand systemd a transient unit; here a
/// stand-in systemd-run records what it was asked, and dpkg-deb builds real packages.
@Suite(.serialized) struct SystemLifecycleTests {
    let root: String
    let home: String
    let recorded: String
    var lifecycle: SystemLifecycle

    init() throws {
        root = NSTemporaryDirectory() + "vtep-lifecycle-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        home = root + "/home"
        recorded = root + "/systemd-run.args"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let fake = root + "/systemd-run"
        try "#!/bin/sh\nprintf '%s\\n' \"$@\" > \(recorded)\n".write(
            toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        // The installed version, as dpkg-query would print it.
        let query = root + "/dpkg-query"
        try "#!/bin/sh\nprintf '0.1.0+5'\n".write(toFile: query, atomically: true, encoding: .utf8)
        chmod(query, 0o755)
        lifecycle = SystemLifecycle(stateDirectory: root)
        lifecycle.systemdRun = fake
        lifecycle.dpkgQuery = query
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: root) }

    /// A minimal binary package named `name` at `version`, as `file` in the home directory.
    func makePackage(_ name: String, _ version: String, file: String) throws {
        let tree = root + "/pkg-\(name)-\(version)"
        try FileManager.default.createDirectory(
            atPath: tree + "/DEBIAN", withIntermediateDirectories: true)
        try """
        Package: \(name)
        Version: \(version)
        Architecture: all
        Maintainer: test <test@localhost>
        Description: test

        """.write(toFile: tree + "/DEBIAN/control", atomically: true, encoding: .utf8)
        let build = Process()
        build.executableURL = URL(fileURLWithPath: "/usr/bin/dpkg-deb")
        build.arguments = ["--build", tree, home + "/" + file]
        build.standardOutput = FileHandle.nullDevice
        try build.run()
        build.waitUntilExit()
        try #require(build.terminationStatus == 0)
    }

    func arguments() throws -> [String] {
        try String(contentsOfFile: recorded, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test func restartAndRebootAreSystemdJobsASecondLater() throws {
        defer { cleanUp() }
        try lifecycle.restartService()
        #expect(
            try arguments() == [
                "--quiet", "--collect", "--unit=vtep-gateway-restart", "--on-active=1",
                "/usr/bin/systemctl", "restart", "vtepd.service",
            ])
        try lifecycle.reboot()
        #expect(try arguments().suffix(2) == ["/usr/bin/systemctl", "reboot"])
    }

    @Test func aNewerPackageIsCopiedAndInstalledByApt() throws {
        defer { cleanUp() }
        try makePackage("vtep-gateway", "0.1.0+6", file: "new.deb")
        let report = lifecycle.updateReport(home: home)
        #expect(report.first == "installed: vtep-gateway 0.1.0+5")
        #expect(report.contains("new.deb: vtep-gateway 0.1.0+6, can be installed"))
        let versions = try lifecycle.update(file: "new.deb", home: home, owner: getuid())
        #expect(versions.from == "0.1.0+5" && versions.to == "0.1.0+6")
        let args = try arguments()
        #expect(args.contains("--unit=vtep-gateway-update"))
        #expect(args.contains("/usr/bin/apt-get") && args.contains("install"))
        #expect(args.last == root + "/updates/new.deb")
        #expect(FileManager.default.contentsEqual(atPath: home + "/new.deb", andPath: root + "/updates/new.deb"))
    }

    @Test func refusedUpdatesChangeNothing() throws {
        defer { cleanUp() }
        try makePackage("vtep-gateway", "0.1.0+5", file: "same.deb")
        try makePackage("other", "9", file: "other.deb")
        try "not a package".write(toFile: home + "/junk.deb", atomically: true, encoding: .utf8)
        symlink(home + "/same.deb", home + "/link.deb")
        func refusal(_ file: String) -> String? {
            do {
                _ = try lifecycle.update(file: file, home: home, owner: getuid())
                return nil
            } catch { return error.reason }
        }
        #expect(refusal("same.deb") == "same.deb is version 0.1.0+5, not newer than the installed 0.1.0+5")
        #expect(refusal("other.deb") == "other.deb is other, not vtep-gateway")
        #expect(refusal("junk.deb")?.hasPrefix("junk.deb is not a Debian package") == true)
        #expect(refusal("link.deb") == "\(home)/link.deb is not a regular file of yours")
        #expect(refusal("absent.deb")?.hasSuffix("No such file or directory") == true)
        #expect(!FileManager.default.fileExists(atPath: recorded), "systemd-run was never asked")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: root + "/updates")) ?? []
        #expect(left.isEmpty, "\(left)")
        let report = lifecycle.updateReport(home: home)
        #expect(report.contains("same.deb: vtep-gateway 0.1.0+5, not newer"))
        #expect(report.contains("other.deb: other 9, not vtep-gateway (other)"))
    }
}
