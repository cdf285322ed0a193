import Foundation
import TestSupport

/// vtepd running in a site's gateway namespace, with its own ovsdb-server on
/// `stateRoot/db.sock`, configured through `vtep-ctl` as an operator or controller would.
///
/// Swapping a kernel VTEP for vtepd in a lab test is one line: `.kernel(vni: 5001)` becomes
/// `.gateway` in the topology, plus `let vtepd = try lab.startVTEPD(at: site, vni: 5001)`.
struct LabVTEPD: Sendable {
    let lab: Lab
    let site: LabSite
    let process: LabProcess
    let stateRoot: URL
    let physicalSwitch: String
    let logicalSwitch: String
    /// `--database`, when vtepd follows an external one (a cluster) instead of its own.
    var externalDatabase: String? = nil

    var database: String {
        externalDatabase ?? "unix:" + stateRoot.appendingPathComponent("db.sock").path
    }
    var controlSocket: String { stateRoot.appendingPathComponent("vtepd.ctl").path }

    /// Runs `vtep-ctl --db=unix:STATE/db.sock ARGUMENTS`.
    @discardableResult
    func control(_ arguments: [String]) throws -> LabCommandResult {
        try lab.execute(["vtep-ctl", "--db=\(database)"] + arguments)
    }

    /// `vtepd show WHAT --control STATE/vtepd.ctl [--json]`.
    func show(_ what: String, json: Bool = false) throws -> String {
        try lab.execute(
            [try LabVTEPD.executable().path, "show", what, "--control", controlSocket]
                + (json ? ["--json"] : [])
        ).output
    }

    /// The vtepd binary: `$VTEPD` when set, else the one built beside the test bundle.
    /// Throws when there is none, so a vtepd test fails loudly instead of skipping.
    static func executable() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["VTEPD"] {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw LabError(description: "VTEPD=\(path) is not an executable file")
            }
            return URL(fileURLWithPath: path)
        }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        for directory in [beside, beside.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("vtepd")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw LabError(
            description: "no vtepd binary beside \(beside.path); run `swift build --product vtepd` "
                + "or set VTEPD=/path/to/vtepd")
    }
}

extension Lab {
    /// Starts vtepd in `site`'s gateway namespace (`site.kind` must be `.gateway`), waits for
    /// its database and control socket, and binds the access port untagged (VLAN 0 in
    /// hardware_vtep's vlan_bindings) to logical switch `ls<VNI>` with tunnel_key `vni`.
    /// `stateRoot` (default: a new directory of the lab) holds its sockets; `environment`
    /// (`NAME=value`) is added to its environment; `log` takes its output. With `database`,
    /// vtepd follows that external database (`--database`) instead of starting its own.
    /// `configure: false` leaves the database as it is (a restart on the same state root).
    /// `launcher` (a command that execs the rest, such as `chrt --batch 0`) starts it.
    func startVTEPD(
        at site: LabSite, vni: Int, extraArguments: [String] = [], stateRoot: URL? = nil,
        environment: [String] = [], log: URL? = nil, database: String? = nil,
        configure: Bool = true, launcher: [String] = []
    ) throws -> LabVTEPD {
        guard site.kind == .gateway else {
            throw LabError(description: "site \(site.index) has a kernel VTEP, not a vtepd slot")
        }
        let stateRoot = stateRoot ?? file("vtepd-\(site.index)")
        try FileManager.default.createDirectory(at: stateRoot, withIntermediateDirectories: true)
        let physicalSwitch = prefix + "ps\(site.index)"
        let arguments =
            (environment.isEmpty ? [] : ["env"] + environment) + launcher + [
                try LabVTEPD.executable().path, "run", "--state-root", stateRoot.path,
                "--physical-switch", physicalSwitch, "--tunnel-ip", site.underlayIPv4,
                "--tunnel-ip", site.underlayIPv6, "--underlay", site.underlayInterface,
                "--port", site.accessInterface,
            ] + (database.map { ["--database", $0] } ?? []) + extraArguments
        let process = try start("vtepd-\(site.index)", arguments, in: site.namespace, log: log)
        let vtepd = LabVTEPD(
            lab: self, site: site, process: process, stateRoot: stateRoot,
            physicalSwitch: physicalSwitch, logicalSwitch: "ls\(vni)", externalDatabase: database)
        let sockets =
            (database == nil ? [stateRoot.appendingPathComponent("db.sock").path] : [])
            + [vtepd.controlSocket]
        try waitUntil(
            "vtepd to create \(sockets.joined(separator: " and "))", lastSeen: process.tail()
        ) {
            if sockets.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) { return true }
            try process.requireRunning()
            return false
        }
        guard configure else { return vtepd }
        try vtepd.control(["--may-exist", "add-ps", physicalSwitch])
        try vtepd.control(["--may-exist", "add-port", physicalSwitch, site.accessInterface])
        try vtepd.control(["--may-exist", "add-ls", vtepd.logicalSwitch])
        try vtepd.control(["set", "Logical_Switch", vtepd.logicalSwitch, "tunnel_key=\(vni)"])
        try vtepd.control([
            "bind-ls", physicalSwitch, site.accessInterface, "0", vtepd.logicalSwitch,
        ])
        return vtepd
    }
}
