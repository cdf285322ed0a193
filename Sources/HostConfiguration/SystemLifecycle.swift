import Glibc
import ProcessSpawning

/// The appliance's lifecycle through systemd: restarting vtepd, rebooting, installing a newer
/// vtep-gateway package. Each is handed to systemd as a transient unit (`systemd-run`), never
/// done by vtepd itself: a restart or an upgrade stops vtepd, so the job must live outside
/// vtepd's cgroup and sandbox, and the one-second delay lets vtepd answer the shell first.
public struct SystemLifecycle: Sendable {
    public static let package = "vtep-gateway"
    public static let service = "vtepd.service"

    /// Where a package is copied (root's, 0600) before it is installed, so that the file
    /// checked is the file installed.
    public var updateDirectory: String
    public var systemdRun = "/usr/bin/systemd-run"
    public var systemctl = "/usr/bin/systemctl"
    public var dpkg = "/usr/bin/dpkg"
    public var dpkgQuery = "/usr/bin/dpkg-query"
    public var dpkgDeb = "/usr/bin/dpkg-deb"
    public var aptGet = "/usr/bin/apt-get"

    public init(stateDirectory: String) {
        updateDirectory = stateDirectory + "/updates"
    }

    /// Restarts vtepd (a second from now, through systemd).
    public func restartService() throws(HostCommandError) {
        try later("vtep-gateway-restart", [systemctl, "restart", Self.service])
    }

    /// Reboots the appliance (a second from now, through systemd).
    public func reboot() throws(HostCommandError) {
        try later("vtep-gateway-reboot", [systemctl, "reboot"])
    }

    private func later(_ unit: String, _ command: [String]) throws(HostCommandError) {
        try HostCommand.run(
            systemdRun, ["--quiet", "--collect", "--unit=\(unit)", "--on-active=1"] + command)
    }

    /// The installed vtep-gateway's version, nil when dpkg does not know the package.
    public func installedVersion() -> String? {
        guard
            let text = try? HostCommand.run(
                dpkgQuery, ["--show", "--showformat=${Version}", Self.package])
        else { return nil }
        let version = text.trimmingBlanks
        return version.isEmpty ? nil : version
    }

    /// A package file's name and version (its control fields).
    public func packageFields(_ path: String) throws(HostCommandError) -> (
        package: String, version: String
    ) {
        let lines = try HostCommand.run(dpkgDeb, ["--field", path, "Package", "Version"])
            .split(separator: "\n")
        func field(_ name: String) -> String {
            lines.first { $0.hasPrefix(name + ": ") }.map { String($0.dropFirst(name.count + 2)) }?
                .trimmingBlanks ?? ""
        }
        return (field("Package"), field("Version"))
    }

    /// `show system update`: the installed version, then each package in `home` with its
    /// version and whether `update system` would take it.
    public func updateReport(home: String) -> [String] {
        let installed = installedVersion()
        var lines = ["installed: \(Self.package) \(installed ?? "(not installed by dpkg)")"]
        let files = Self.debFiles(in: home)
        if files.isEmpty {
            lines.append("no package in \(home): copy one there with scp, then: update system FILE")
        }
        for file in files {
            do {
                let fields = try packageFields(home + "/" + file)
                let verdict: String
                if fields.package != Self.package {
                    verdict = "not \(Self.package) (\(fields.package))"
                } else if let installed, !isNewer(fields.version, than: installed) {
                    verdict = "not newer"
                } else {
                    verdict = "can be installed"
                }
                lines.append("\(file): \(fields.package) \(fields.version), \(verdict)")
            } catch {
                lines.append("\(file): not a package (\(error.reason))")
            }
        }
        return lines
    }

    /// Checks `file` in `home` (a regular file, the vtep-gateway package, newer than the one
    /// installed), copies it where the admin cannot change it, and has systemd install it
    /// with apt (which refuses, changing nothing, when a dependency is missing). Returns the
    /// versions before and after.
    public func update(file: String, home: String, owner: UInt32) throws(SystemUpdateError) -> (
        from: String, to: String
    ) {
        let source = home + "/" + file
        var status = stat()
        guard lstat(source, &status) == 0 else {
            throw .init("\(source): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG, status.st_uid == owner else {
            throw .init("\(source) is not a regular file of yours")
        }
        try? makeDirectory(updateDirectory)
        let copy = updateDirectory + "/" + file
        do { try copyFile(source, copy) } catch {
            throw .init("cannot copy \(source) to \(copy): \(error)")
        }
        let fields: (package: String, version: String)
        do { fields = try packageFields(copy) } catch {
            unlink(copy)
            throw .init("\(file) is not a Debian package: \(error.reason)")
        }
        guard fields.package == Self.package else {
            unlink(copy)
            throw .init("\(file) is \(fields.package), not \(Self.package)")
        }
        let installed = installedVersion() ?? "none"
        if installed != "none", !isNewer(fields.version, than: installed) {
            unlink(copy)
            throw .init(
                "\(file) is version \(fields.version), not newer than the installed \(installed)")
        }
        do {
            try HostCommand.run(
                systemdRun,
                [
                    "--quiet", "--collect", "--unit=vtep-gateway-update", "--on-active=1",
                    "--setenv=DEBIAN_FRONTEND=noninteractive", aptGet, "install", "--yes",
                    "--quiet", "--no-install-recommends",
                    "--option=Dpkg::Options::=--force-confold",
                    "--option=Dpkg::Options::=--force-confdef", copy,
                ])
        } catch {
            throw .init("systemd did not take the update: \(error)")
        }
        return (installed, fields.version)
    }

    /// dpkg's own version order (`dpkg --compare-versions A gt B`).
    public func isNewer(_ candidate: String, than installed: String) -> Bool {
        (try? HostCommand.run(dpkg, ["--compare-versions", candidate, "gt", installed])) != nil
    }

    static func debFiles(in directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            // The name in place, never the whole 256-byte field (see AtomicFile.leftovers).
            let name = String(
                cString: (UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \.d_name)!)
                    .assumingMemoryBound(to: CChar.self))
            if name.hasSuffix(".deb"), !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    private func makeDirectory(_ path: String) throws(SystemUpdateError) {
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            throw .init("mkdir \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Copies without following a link at `source` (O_NOFOLLOW), to a 0600 file.
    private func copyFile(_ source: String, _ target: String) throws(SystemUpdateError) {
        let input = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard input >= 0 else { throw .init(String(cString: strerror(errno))) }
        defer { close(input) }
        unlink(target)
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw .init(String(cString: strerror(errno))) }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = read(input, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw .init(String(cString: strerror(errno))) }
            if count == 0 { break }
            var written = 0
            while written < count {
                let n = buffer[written..<count].withUnsafeBytes {
                    write(output, $0.baseAddress, $0.count)
                }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw .init(String(cString: strerror(errno))) }
                written += n
            }
        }
        guard fsync(output) == 0 else { throw .init(String(cString: strerror(errno))) }
    }
}

public struct SystemUpdateError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension StringProtocol {
    fileprivate var trimmingBlanks: String {
        String(
            self.drop(while: { $0 == " " || $0 == "\n" }).reversed().drop(while: {
                $0 == " " || $0 == "\n"
            }).reversed())
    }
}
