import Foundation

/// OVN's control plane as a gateway's controller: the northbound and southbound databases
/// (each an `ovsdb-server` on its schema), `ovn-northd` between them, and
/// `ovn-controller-vtep`, which binds a gateway's hardware_vtep database to OVN (vtep(5):
/// it registers the Physical_Switch as a chassis, sets each bound Logical_Switch's
/// `tunnel_key`, and writes Ucast_Macs_Remote / Mcast_Macs_Remote for the logical ports OVN
/// places on hypervisor chassis).
///
/// Every daemon runs with its own pidfile, control socket and log under the lab's directory
/// (never /var/run/ovn, ovn-ctl or systemd), started by the lab and stopped by PID when it
/// ends.
struct LabOVN: Sendable {
    let lab: Lab
    let directory: URL
    let namespace: String

    var northbound: String { "unix:" + directory.appendingPathComponent("nb.sock").path }
    var southbound: String { "unix:" + directory.appendingPathComponent("sb.sock").path }

    /// `ovn-nbctl --db=NB ARGUMENTS`.
    @discardableResult
    func nbctl(_ arguments: [String]) throws -> LabCommandResult {
        try lab.execute(
            ["ovn-nbctl", "--timeout=20", "--db=\(northbound)"] + arguments, in: namespace)
    }

    /// `ovn-sbctl --db=SB ARGUMENTS`.
    @discardableResult
    func sbctl(_ arguments: [String]) throws -> LabCommandResult {
        try lab.execute(
            ["ovn-sbctl", "--timeout=20", "--db=\(southbound)"] + arguments, in: namespace)
    }
}

extension Lab {
    /// Starts OVN's databases, ovn-northd and ovn-controller-vtep (on `vtepDatabase`, a
    /// gateway's hardware_vtep database, with `vtepOptions`: its SSL key, certificate and CAs
    /// for a `pssl:` one) in `namespace`.
    func startOVN(vtepDatabase: String, vtepOptions: [String] = [], in namespace: String) throws
        -> LabOVN
    {
        for tool in [
            "ovsdb-server", "ovsdb-tool", "ovn-northd", "ovn-controller-vtep", "ovn-nbctl",
            "ovn-sbctl",
        ] where Lab.executable(tool) == nil {
            throw LabError(
                description: "\(tool) is not installed: the OVN test needs Debian's ovn-central"
                    + " and ovn-controller-vtep (appliance/install-deps.sh)")
        }
        let directory = file("ovn")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        // The daemons put what is not given on the command line under these directories.
        let environment = ["OVS_RUNDIR", "OVS_LOGDIR", "OVN_RUNDIR", "OVN_LOGDIR"].map {
            "\($0)=\(directory.path)"
        }
        let common = { (name: String) in
            [
                "--pidfile=" + path("\(name).pid"), "--log-file=" + path("\(name).log"),
                "-vconsole:off", "-vsyslog:off",
            ]
        }
        for (name, schema) in [
            ("nb", "/usr/share/ovn/ovn-nb.ovsschema"), ("sb", "/usr/share/ovn/ovn-sb.ovsschema"),
        ] {
            guard FileManager.default.fileExists(atPath: schema) else {
                throw LabError(description: "\(schema) is missing (Debian ovn-common)")
            }
            try execute(["ovsdb-tool", "create", path("\(name).db"), schema])
            let server = try start(
                "ovsdb-server-\(name)",
                ["env"] + environment + [
                    "ovsdb-server", path("\(name).db"), "--remote=punix:" + path("\(name).sock"),
                    "--unixctl=" + path("ovsdb-server-\(name).ctl"),
                ] + common("ovsdb-server-\(name)"), in: namespace)
            try waitForSocket(path("\(name).sock"), of: server)
        }
        let ovn = LabOVN(lab: self, directory: directory, namespace: namespace)
        let northd = try start(
            "ovn-northd",
            ["env"] + environment + [
                "ovn-northd", "--ovnnb-db=\(ovn.northbound)", "--ovnsb-db=\(ovn.southbound)",
                "--unixctl=" + path("ovn-northd.ctl"),
            ] + common("ovn-northd"), in: namespace)
        try waitForSocket(path("ovn-northd.ctl"), of: northd)
        // ovn-controller-vtep takes no --unixctl: its control socket goes under OVN_RUNDIR.
        _ = try start(
            "ovn-controller-vtep",
            ["env"] + environment + [
                "ovn-controller-vtep", "--vtep-db=\(vtepDatabase)",
                "--ovnsb-db=\(ovn.southbound)",
            ] + vtepOptions + common("ovn-controller-vtep"), in: namespace)
        return ovn
    }
}
