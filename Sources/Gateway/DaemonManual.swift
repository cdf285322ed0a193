import ControlAPI
import ManualPages

/// vtepd's manual pages: vtepd(8) from its command line as its parser describes it, and
/// vtepd.conf(5) from the bootstrap settings (`BootstrapSettings.Key`), each key described by
/// the help of the `vtepd run` option of the same name. `vtepd --reference man|conf` prints
/// them; docs/man/ holds them and the Debian package installs them.
public enum DaemonManual {
    /// A setting of vtepd.conf without a `vtepd run` option of the same name: the file and
    /// the command line would no longer be one set of settings.
    public struct MissingOption: Error, CustomStringConvertible {
        public var key: String
        public var description: String {
            "vtepd.conf setting \(key) has no `vtepd run --\(key)` option to describe it"
        }
    }

    static let source = "\(Product.name) \(Product.version)"

    /// vtepd(8).
    public static func daemonPage(commandLine: CommandLineDescription) -> ManualPage {
        let root = commandLine.command
        let name = root.commandName
        var sections = [
            ManualSection(
                "Description",
                [
                    .paragraph(
                        "vtepd is the VTEP gateway's daemon. It bridges access ports, and VLANs "
                            + "of trunk ports, into VXLAN, GRE and NVGRE overlays, programmed "
                            + "through the OVSDB hardware_vtep database as a controller (NSX, "
                            + "OVN's ovn-controller-vtep) or vtep-ctl writes it. Without "
                            + "--database it starts Open vSwitch's ovsdb-server as a supervised "
                            + "child on STATE-ROOT/vtep.db, listening on STATE-ROOT/db.sock."),
                    .paragraph(
                        "It is also the appliance's configuration agent: vtepsh(1), the admin's "
                            + "shell, asks it over the control socket to change the host (host "
                            + "name, addresses, routes, DNS, NTP, the admin's password) and the "
                            + "gateway; vtepd applies, saves and audits each change."),
                    .paragraph(
                        "Settings come from \(BootstrapSettings.defaultPath) (vtepd.conf(5)); "
                            + "the command line overrides the file, a list as a whole."),
                ])
        ]
        for subcommand in root.subcommands ?? [] where subcommand.commandName != "help" {
            var blocks: [ManualBlock] = [.paragraph(subcommand.abstract ?? "")]
            if let discussion = subcommand.discussion, !discussion.isEmpty {
                blocks.append(.paragraph(discussion))
            }
            sections.append(
                ManualSection(
                    "\(name) \(subcommand.commandName)",
                    blocks + CommandLineDescription.options(subcommand)))
        }
        if !root.options.isEmpty {
            sections.append(ManualSection("Options", CommandLineDescription.options(root)))
        }
        sections += [
            ManualSection(
                "Signals",
                [
                    .tagged(
                        "SIGTERM, SIGINT",
                        "Stop in order: the control socket, the database client and local-MAC "
                            + "publisher, the data plane, the DHCP clients (their leases stay), "
                            + "then ovsdb-server; exit 0. Caught from vtepd's first step: one "
                            + "that comes during the start lets the start finish, then stops "
                            + "the same way.")
                ]),
            ManualSection(
                "Exit Status",
                [
                    .tagged("0", "Stopped by a signal."),
                    .tagged("1", "The gateway could not start (the reason is logged)."),
                    .tagged("64", "The command line was refused by the option parser."),
                    .tagged(
                        "78",
                        "The settings were refused (EX_CONFIG; the file, line and reason are "
                            + "printed): vtepd.service does not restart it."),
                ]),
            ManualSection(
                "Environment",
                [
                    .tagged(
                        "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
                        "Set by systemd: vtepd reports READY=1 once it forwards, and WATCHDOG=1 "
                            + "while its data-plane worker answers."),
                    .tagged(
                        "JOURNAL_STREAM",
                        "Set by systemd: when standard error is the journal, each log line "
                            + "starts with its syslog priority."),
                ]),
            ManualSection(
                "Files",
                [
                    .tagged(BootstrapSettings.defaultPath, "Bootstrap settings, vtepd.conf(5)."),
                    .tagged(
                        BootstrapSettings.defaultStateRoot,
                        "The state root: vtep.db and db.sock (the hardware_vtep database), "
                            + "vtepd.ctl (the control socket), appliance-settings.json, audit.log, "
                            + "the switch's switch-privkey.pem and switch-cert.pem, ca-cert.pem, "
                            + "captures/."),
                ]),
            ManualSection(
                "See Also",
                [
                    .paragraph(
                        "vtepd.conf(5), vtepsh(1), vtep-ctl(8), vtep(5), ovsdb-server(1), "
                            + "systemd.service(5)")
                ]),
        ]
        return ManualPage(
            name: name, section: "8", summary: root.abstract ?? "", source: source,
            synopsis: (root.subcommands ?? []).filter { $0.commandName != "help" }.map {
                CommandLineDescription.synopsis("\(name) \($0.commandName)", $0)
            } + (root.options.isEmpty ? [] : [CommandLineDescription.synopsis(name, root)]),
            sections: sections)
    }

    /// vtepd.conf(5): every bootstrap setting, described by its `vtepd run` option.
    public static func configurationPage(commandLine: CommandLineDescription) throws(MissingOption)
        -> ManualPage
    {
        let run = commandLine.command.subcommand("run")
        var settings: [ManualBlock] = []
        for key in BootstrapSettings.Key.allCases {
            guard let option = run?.options.first(where: { $0.longName == key.rawValue }) else {
                throw MissingOption(key: key.rawValue)
            }
            let value = (option.valueName ?? key.rawValue).uppercased()
            settings.append(
                .tagged(
                    key.isList ? "\(key.rawValue) = \(value) ..." : "\(key.rawValue) = \(value)",
                    option.abstract ?? ""))
        }
        return ManualPage(
            name: "vtepd.conf", section: "5", summary: "bootstrap settings of vtepd",
            source: source, synopsis: [BootstrapSettings.defaultPath],
            sections: [
                ManualSection(
                    "Description",
                    [
                        .paragraph(
                            "vtepd(8) reads its bootstrap settings from this file when it "
                                + "exists (vtepd run --config FILE names another, which must "
                                + "exist). Forwarding state is not here: it is in the "
                                + "hardware_vtep database."),
                        .paragraph(
                            "Each line is KEY = VALUE; # starts a comment, to the end of the "
                                + "line; blank lines are ignored. A key is the name of a vtepd run "
                                + "option without its dashes, and takes the values the option "
                                + "takes. A key that takes a list may repeat, or give several values "
                                + "separated by blanks; any other key may appear once. The "
                                + "command line overrides the file, a list as a whole."),
                        .paragraph(
                            "The first bad line refuses the whole file: vtepd prints the file, "
                                + "the line number and the reason, and exits with status 78."),
                    ]),
                ManualSection("Settings", settings),
                ManualSection(
                    "Example",
                    [
                        .example([
                            "# The underlay, our tunnel address on it, and two access ports.",
                            "underlay = eth1", "tunnel-ip = 192.0.2.1",
                            "port = eth2 eth3", "log-level = info",
                        ])
                    ]),
                ManualSection(
                    "Files",
                    [
                        .tagged(
                            BootstrapSettings.defaultPath,
                            "Installed by the package as a conffile: an upgrade keeps the "
                                + "admin's edits.")
                    ]),
                ManualSection("See Also", [.paragraph("vtepd(8), vtepsh(1)")]),
            ])
    }
}
