import Appliance
import ControlAPI
import Foundation
import HostConfiguration
import ProcessSpawning
import TestSupport
import Testing

/// vtepsh end to end: vtepd in a network namespace of its own (and a UTS namespace of its
/// own, so `set hostname` never renames this machine), its appliance files under a temporary
/// root, and vtepsh driven through a real pty as an operator types, or with `-c`. Every check
/// looks at the real thing: `ip -n NS addr/route`, the files under the root, `vtep-ctl`.
@Suite(.serialized) struct VTEPSHTests {
    @Test func anOperatorSessionThroughAPtyConfiguresTheApplianceAndSurvivesARestart()
        async throws
    {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            var vtepd = try site.startVTEPD()
            let pty = try LabTerminal.vtepsh(lab: lab, control: site.controlSocket)
            defer { pty.close() }
            let port = site.port

            try pty.expect("> ")
            // Abbreviations, and a prompt that follows the host name.
            try pty.type("set host gw-test\r")
            try pty.expect("gw-test> ")
            #expect(try site.file("etc/hostname") == "gw-test\n")
            #expect(
                try lab.execute(["nsenter", "-t", "\(vtepd.pid)", "-u", "hostname"]).output
                    == "gw-test\n")

            // Tab completes a unique keyword; `?` lists what may follow.
            try pty.type("sh\t")
            try pty.expect("show ")
            try pty.type("net ?")
            try pty.expect("interfaces")
            try pty.expect("All network interfaces")
            try pty.expect("gw-test> show net ")  // the line, shown again under the list
            try pty.type("\u{15}")  // Ctrl-U: clear the line

            try pty.type("set net int \(port) ip con stat 10.9.0.1 255.255.255.0\r")
            try pty.expect("gw-test> ")
            try pty.type("set net int \(port) mtu 1400\r")
            try pty.expect("gw-test> ")
            try pty.type("add net route 10.77.0.0/16 10.9.0.254\r")
            try pty.expect("gw-test> ")
            try pty.type("add net dns-server 192.0.2.53\r")
            try pty.expect("gw-test> ")
            try pty.type("add net dns-search-domain example.net\r")
            try pty.expect("gw-test> ")
            try pty.type("add net ntp pool.ntp.org\r")
            try pty.expect("gw-test> ")
            try site.checkNetwork(lab)
            try pty.type("sh net interface \(port)\r")
            let details = try pty.expect("gw-test> ")
            #expect(details.contains("Configured:  static 10.9.0.1/24"), "\(details)")
            #expect(details.contains("MTU:         1400"), "\(details)")

            // ping runs with the terminal cooked for it, and the shell carries on after.
            try pty.type("ping 127.0.0.1 count 1\r")
            try pty.expect("1 packets transmitted, 1 received")
            try pty.expect("gw-test> ")

            // The gateway, in hardware_vtep as vtep-ctl writes it.
            try pty.type("add logical-s web vni 5001\r")
            try pty.expect("gw-test> ")
            // Tab completes the port and the logical switch from vtepd's live state.
            try pty.type("bind sw port \(port.prefix(port.count - 1))\t")
            try pty.expect("bind sw port \(port) ")
            try pty.type("vlan 0 log w\t")
            try pty.expect("log web ")
            try pty.type("\r")
            try pty.expect("gw-test> ")
            try pty.type("set logical-s web repl head 192.0.2.2,192.0.2.3\r")
            try pty.expect("gw-test> ")
            try pty.type("add sw remote-mac web 00:00:5e:00:53:01 192.0.2.2\r")
            try pty.expect("gw-test> ")
            try site.checkDatabase(lab)

            // vtep-ctl's own change shows in the shell.
            try site.vtepCtl(lab, ["add-ls", "db"])
            try site.vtepCtl(lab, ["set", "Logical_Switch", "db", "tunnel_key=6000"])
            try pty.type("sh sw logical-switches\r")
            let switches = try pty.expect("gw-test> ")
            #expect(switches.contains("db      6000  service-node"), "\(switches)")
            #expect(switches.contains("web     5001  head-end 192.0.2.2 192.0.2.3"), "\(switches)")

            try pty.type("sh run\r")
            let running = try pty.expect("gw-test> ")
            for line in [
                "set hostname gw-test",
                "set network interface \(port) ip config static 10.9.0.1 255.255.255.0",
                "set network interface \(port) mtu 1400",
                "add network route 10.77.0.0/16 10.9.0.254",
                "add network dns-server 192.0.2.53", "add network ntp-server pool.ntp.org",
                "add logical-switch web vni 5001", "add logical-switch db vni 6000",
                "set logical-switch web replication head-end 192.0.2.2,192.0.2.3",
                "bind switch port \(port) vlan 0 logical-switch web",
                "add switch remote-mac web 00:00:5e:00:53:01 192.0.2.2",
            ] {
                #expect(
                    running.contains(line + "\r\n"), "running-config lacks \(line):\n\(running)")
            }

            // The password: asked twice, never echoed, stored as a yescrypt hash.
            try pty.type("set user admin password\r")
            try pty.expect("New password: ")
            try pty.type("correct horse\r")
            try pty.expect("Retype new password: ")
            try pty.type("correct horse\r")
            try pty.expect("Password changed.")
            try pty.expect("gw-test> ")
            #expect(!pty.screen.contains("correct horse"))
            let saved = try site.savedSettingsText()
            #expect(saved.contains("\"password_hash\" : \"$y$"), "\(saved)")
            #expect(!saved.contains("correct horse"))
            // …and in shadow(5) under the root, where sshd and login read it: the same hash,
            // the other accounts' lines untouched.
            let shadow = try site.file("etc/shadow").split(separator: "\n")
            let admin = try #require(shadow.first { $0.hasPrefix("admin:") })
            let hash = admin.split(separator: ":", omittingEmptySubsequences: false)[1]
            #expect(hash.hasPrefix("$y$") && saved.contains("\"\(hash)\""), "\(admin)")
            #expect(shadow.first == "root:*:20000:0:99999:7:::")

            // A bad token is named, with a marker; nothing changes.
            try pty.type("set hostname bad;name\r")
            let refused = try pty.expect("gw-test> ")
            #expect(
                refused.contains("% Invalid input at 'bad;name' (column 14): ';' is not allowed"),
                "\(refused)")
            // vtepd's refusal, in its words.
            try pty.type("add net route 10.77.0.0/16 10.9.0.253\r")
            #expect(try pty.expect("gw-test> ").contains("% route to 10.77.0.0/16"))

            // The audit log, with the peer's user from SO_PEERCRED; no password in it.
            try pty.type("show log\r")
            let log = try pty.expect("gw-test> ")
            #expect(
                log.contains("user=root uid=0 result=\"ok\" command=\"set hostname gw-test\""),
                "\(log)")
            #expect(log.contains("command=\"set user admin password\""))
            #expect(log.contains("result=\"refused: route to 10.77.0.0/16"))
            #expect(!log.contains("horse"))

            try pty.type("exit\r")
            #expect(pty.waitForExit() == 0)

            // Restart on a host that forgot everything: vtepd puts it all back.
            #expect(vtepd.stop() == 0)
            try lab.execute(["ip", "addr", "flush", "dev", port], in: site.namespace)
            try lab.execute(["ip", "link", "set", port, "mtu", "1500"], in: site.namespace)
            try FileManager.default.removeItem(atPath: site.root + "/etc/hostname")
            try FileManager.default.removeItem(atPath: site.root + "/etc/resolv.conf")
            vtepd = try site.startVTEPD()
            try site.checkNetwork(lab)
            try site.checkDatabase(lab)
            #expect(try site.shell(lab, "show hostname") == "gw-test\n")
            #expect(
                try lab.execute(["nsenter", "-t", "\(vtepd.pid)", "-u", "hostname"]).output
                    == "gw-test\n")
            #expect(try site.shell(lab, "show running-config") == running.runningConfigLines)
            #expect(vtepd.stop() == 0)
        }
    }

    @Test func hostileArgumentsAreRefusedByTheShellAndByTheSocketAndChangeNothing() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            _ = try site.startVTEPD()
            try site.shell(lab, "add logical-switch web vni 5001")
            let marker = lab.directory.appendingPathComponent("pwned").path
            let hostile = [
                "x;touch \(marker)", "$(touch \(marker))", "`touch \(marker)`", "x\ntouch",
                "-f", "../../etc/passwd", "x|touch", "x&&touch",
            ]
            // Every string argument of every command kind.
            let templates = [
                "set hostname %", "show network interface %", "set network interface % mtu 1400",
                "set network interface % up", "set network interface % ip config dhcp",
                "add network ntp-server %", "add network dns-search-domain %",
                "remove network dns-search-domain %", "add logical-switch % vni 7",
                "remove logical-switch %", "set logical-switch % encapsulation gre",
                "bind switch port % vlan 0 logical-switch web",
                "bind switch port \(site.port) vlan 0 logical-switch %",
                "add switch remote-mac % 00:00:5e:00:53:01 192.0.2.2",
                "show switch mac-table logical-switch %", "ping %", "traceroute %",
                "add network dns-server %", "add network route %",
            ]
            let before = try site.snapshot(lab)
            for template in templates {
                for value in hostile {
                    let line = template.replacingOccurrences(of: "%", with: value)
                    let result = try lab.attempt(
                        [
                            try ShellSite.executable("vtepsh").path, "--control",
                            site.controlSocket, "-c", line,
                        ])
                    #expect(result.status == 1, "accepted: \(line)")
                    #expect(result.errors.hasPrefix("% "), "\(line): \(result.errors)")
                }
            }
            // Straight to the socket, bypassing vtepsh's parser.
            for (command, field, rest) in [
                ("set-hostname", "name", ""), ("add-ntp-server", "server", ""),
                ("add-dns-search-domain", "domain", ""),
                ("add-logical-switch", "name", #","vni":7"#),
                ("set-interface-mtu", "interface", #","mtu":1400"#),
                ("bind-port", "port", #","vlan":0,"switch":"web""#),
                ("bind-port", "switch", #","vlan":0,"port":"\#(site.port)""#),
                ("add-remote-mac", "switch", #","mac":"00:00:5e:00:53:01","vtep":"192.0.2.2""#),
            ] {
                for value in hostile {
                    let json = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
                    let response = try site.raw(
                        #"{"id":4,"command":"\#(command)","arguments":{"\#(field)":\#(json)\#(rest)}}"#
                    )
                    #expect(
                        response.hasPrefix(#"{"id":4,"ok":false,"error":""#),
                        "\(command) \(value): \(response)")
                }
            }
            #expect(try site.snapshot(lab) == before)
            #expect(!FileManager.default.fileExists(atPath: marker))
        }
    }

    /// An 80 × 24 terminal: a 200-column line scrolls within one row and Ctrl-A Ctrl-K clears
    /// it from the screen; long output stops at `--More--`; the history is in the user's home.
    @Test func anEightyColumnTerminal() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            let vtepd = try site.startVTEPD()
            let pty = try LabTerminal.vtepsh(
                lab: lab, control: site.controlSocket, size: (24, 80))
            let start = try pty.expect("> ")
            let prompt = String(start.split(separator: "\n").last ?? "")
            let long = "set hostname " + String(repeating: "a", count: 187)
            try pty.type(long)
            let typed = try pty.expect(String(repeating: "a", count: 60))
            // Never more than 79 printable characters in a row without the cursor moving.
            let runs = typed.split { $0 == "\r" || $0 == "\n" || $0 == "\u{1B}" }
            #expect(runs.allSatisfy { $0.count < 80 }, "\(runs.map(\.count).max() ?? 0)")
            // Ctrl-A Ctrl-K: the row is the prompt alone again, nothing of the old line left.
            try pty.type("\u{01}\u{0B}")
            try pty.expect("\r\(prompt)\u{1B}[K\r\u{1B}[\(prompt.count)C")
            // `help` is taller than 24 rows.
            try pty.type("help\r")
            try pty.expect("--More--")
            try pty.type("q")
            try pty.expect("> ")
            // An abbreviation of two keywords is refused whatever follows it. (Each key redraws
            // the line with its prompt: wait for what follows Enter, not for "> ".)
            try pty.type("s h gw1\r")
            try pty.expect("% Ambiguous input at 's' (column 1): could be set, show")
            // Output filters.
            try pty.type("show network interfaces | include ^lo | count\r")
            try pty.expect("\r\n1\r\n")
            // Narrower (SIGWINCH): the empty line is drawn again at once, then long lines
            // keep within 40 columns.
            try pty.resize(rows: 24, columns: 40)
            try pty.expect("\r\(prompt)\u{1B}[K\r\u{1B}[\(prompt.count)C")
            try pty.type("add network dns-search-domain " + String(repeating: "b", count: 90))
            let narrow = try pty.expect(String(repeating: "b", count: 20))
            let narrowRuns = narrow.split { $0 == "\r" || $0 == "\n" || $0 == "\u{1B}" }
            #expect(narrowRuns.allSatisfy { $0.count < 40 }, "\(narrow.debugDescription)")
            try pty.type("\u{03}")
            try pty.expect("> ")
            try pty.type("exit\r")
            #expect(pty.waitForExit() == 0)
            #expect(vtepd.stop() == 0)
        }
    }

    /// Lines piped in all run; the status is 1 when any was refused, each refusal names its
    /// line, and what vtepsh refused itself is in vtepd's audit log. The system and switch
    /// views, and the two `clear` commands that stop managing a setting.
    @Test func pipedRefusalsCountAndAreAuditedAndTheSystemViews() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            let vtepd = try site.startVTEPD()
            let script = lab.file("piped")
            try Data(
                "add logical-switch web vni 5001\nset hostname a;b\nshow hostname\n".utf8
            ).write(to: script)
            let piped = try lab.attempt(
                [try ShellSite.executable("vtepsh").path, "--control", site.controlSocket],
                input: script)
            #expect(piped.status == 1)
            #expect(piped.errors.hasPrefix("line 2: % Invalid input at 'a;b'"), "\(piped.errors)")
            #expect(piped.output.hasSuffix("\n"), "the third line ran: \(piped.output)")
            #expect(try site.shell(lab, "show switch logical-switches").contains("web"))
            let log = try site.shell(lab, "show log")
            #expect(
                log.contains(#"result="refused: % Invalid input at 'a;b'"#)
                    && log.contains(#"command="set hostname a;b""#), "\(log)")

            let system = try site.shell(lab, "show system")
            #expect(system.hasPrefix("vtepsh: VTEP Gateway appliance shell (vtepsh) "), "\(system)")
            for field in [
                "vtepd: VTEP Gateway ", "started: ", "clock: ", "load: ", "memory: ",
                "control socket: 0 connections refused (at most 64 at once)",
            ] {
                #expect(system.contains(field), "\(field) in \(system)")
            }
            let switchView = try site.shell(lab, "show switch")
            #expect(switchView.contains("Physical switch: ps1"), "\(switchView)")
            #expect(switchView.contains("VXLAN port: 4789"), "\(switchView)")
            #expect(switchView.contains("Database: connected to unix:"), "\(switchView)")

            try site.shell(lab, "add network ntp-server 192.0.2.123")
            try site.shell(
                lab, "set network interface \(site.port) ip config static 10.9.0.1 255.255.255.0")
            try site.shell(lab, "clear network ntp-servers")
            try site.shell(lab, "clear network interface \(site.port) ip config")
            let running = try site.shell(lab, "show running-config")
            #expect(!running.contains("ntp-server") && !running.contains("ip config"), "\(running)")
            // As IOS's `no ip address`: the address the appliance configured goes with it.
            let addresses = try lab.execute(
                ["ip", "-o", "-4", "addr", "show", "dev", site.port], in: site.namespace
            ).output
            #expect(!addresses.contains("10.9.0.1"), "\(addresses)")
            #expect(vtepd.stop() == 0)
        }
    }

    /// `show tech-support`: every report under its heading, the MAC table summed up, vtepd's
    /// last log lines; no password, hash or private key anywhere in it.
    @Test func techSupportHasEveryReportAndNoSecret() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            let vtepd = try site.startVTEPD()
            try site.shell(lab, "add logical-switch web vni 5001")
            // The password as the interactive shell sends it (vtepsh -c cannot ask for one).
            let answer = try site.raw(
                #"{"id":1,"command":"set-password","arguments":{"user":"admin","password":"TopSecret-42"}}"#
            )
            #expect(answer.contains(#""ok":true"#), "\(answer)")
            let shadow = try site.file("etc/shadow")
            let hash = try #require(
                shadow.split(separator: "\n").first { $0.hasPrefix("admin:") }?
                    .split(separator: ":")[1])
            #expect(hash.hasPrefix("$y$"), "a password was set: \(shadow)")

            let text = try site.shell(lab, "show tech-support")
            for heading in [
                "show system", "show running-config", "show switch", "show switch logical-switches",
                "show switch tunnels", "show switch statistics", "show switch problems",
                "show network interfaces", "show network routes", "MAC table summary",
                "vtepd's last log lines",
            ] {
                #expect(text.contains("===== \(heading) =====\n"), "\(heading)")
            }
            #expect(text.contains("add logical-switch web vni 5001"), "\(text)")
            #expect(text.contains("Physical switch: ps1"), "\(text)")
            #expect(text.contains("entries in all"), "\(text)")
            #expect(text.contains("vtepd."), "log lines with their labels: \(text)")
            #expect(!text.contains(String(hash)) && !text.contains("TopSecret-42"))
            #expect(!text.contains("PRIVATE KEY"))
            #expect(vtepd.stop() == 0)
        }
    }

    /// What vtepd would ignore is refused at the prompt (its own tunnel address as a remote
    /// VTEP is known only to vtepd); what a controller or vtep-ctl wrote that vtepd ignores is
    /// listed by `show switch problems` and left out of `show switch logical-switches`' count.
    @Test func whatVTEPDWouldIgnoreIsRefusedOrListedAsAProblem() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            let vtepd = try site.startVTEPD()
            try site.shell(lab, "add logical-switch web vni 5001")
            try site.shell(lab, "bind switch port \(site.port) vlan 0 logical-switch web")
            let before = try site.snapshot(lab)
            for line in [
                "add switch remote-mac web 00:00:5e:00:53:01 192.0.2.1",
                "set logical-switch web replication head-end 192.0.2.2,192.0.2.1",
                "add switch remote-mac web ff:ff:ff:ff:ff:ff 192.0.2.2",
            ] {
                let result = try lab.attempt(
                    [
                        try ShellSite.executable("vtepsh").path, "--control", site.controlSocket,
                        "-c", line,
                    ])
                #expect(result.status == 1, "accepted: \(line)")
                #expect(result.errors.hasPrefix("% "), "\(line): \(result.errors)")
            }
            let own = try lab.attempt(
                [
                    try ShellSite.executable("vtepsh").path, "--control", site.controlSocket,
                    "-c", "add switch remote-mac web 00:00:5e:00:53:01 192.0.2.1",
                ])
            #expect(own.errors.contains("192.0.2.1 is this gateway's own tunnel address"))
            #expect(try site.snapshot(lab) == before)

            // vtep-ctl (a controller) writes one good and one broadcast remote MAC.
            try site.shell(lab, "add switch remote-mac web 00:00:5e:00:53:01 192.0.2.2")
            try site.vtepCtl(lab, ["add-ucast-remote", "web", "ff:ff:ff:ff:ff:ff", "192.0.2.3"])
            try waitUntil("vtepd reports the broadcast remote MAC") {
                try site.shell(lab, "show switch problems").contains("ff:ff:ff:ff:ff:ff")
            }
            let table = try site.raw(#"{"id":2,"command":"mac-table"}"#)
            #expect(table.components(separatedBy: #""type":"remote""#).count == 2, "\(table)")
            // The names the shell completes: the MAC table's, the switches, the VTEPs.
            #expect(
                try site.raw(#"{"id":3,"command":"names","arguments":{"kind":"macs"}}"#)
                    .contains("00:00:5e:00:53:01"))
            #expect(
                try site.raw(#"{"id":4,"command":"names","arguments":{"kind":"logical-switches"}}"#)
                    .contains(#""web""#))
            #expect(
                try site.raw(#"{"id":5,"command":"names","arguments":{"kind":"vteps"}}"#)
                    .contains("192.0.2.2"))
            let report = try site.raw(#"{"id":1,"command":"logical-switches"}"#)
            #expect(report.contains(#""remoteMACs":1"#), "\(report)")
            #expect(vtepd.stop() == 0)
        }
    }

    /// SIGKILL vtepd at random moments while a client saves settings as fast as it can: the
    /// saved file is always one whole settings document (the old or a new one), and the next
    /// vtepd starts from it.
    @Test func killingVTEPDDuringSavesNeverLeavesAPartialFile() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            var generator = SplitMix64(seed: 0x5eed_7e95)
            var sent: Set<String> = []
            var lastSaved: String? = nil
            var roundsThatSaved = 0
            for round in 0..<30 {
                let vtepd = try site.startVTEPD()
                // It starts from what was saved.
                let shown = try site.shell(lab, "show hostname")
                if let lastSaved { #expect(shown == lastSaved + "\n", "round \(round)") }
                let names = (0..<400).map { "r\(round)-n\($0)" }
                sent.formUnion(names)
                let script = lab.file("saves-\(round)")
                try names.map { "set hostname \($0)\n" }.joined()
                    .write(to: script, atomically: true, encoding: .utf8)
                let saverLog = lab.file("saver-\(round).log")
                let saver = LabProcess(
                    name: "saver",
                    pid: try lab.spawn(
                        [try ShellSite.executable("vtepsh").path, "--control", site.controlSocket],
                        in: nil, input: script, output: saverLog, errors: saverLog),
                    log: saverLog)
                Thread.sleep(forTimeInterval: Double.random(in: 0.05...0.6, using: &generator))
                #expect(vtepd.stop(signal: SIGKILL) == 128 + SIGKILL)
                saver.stop(signal: SIGKILL)
                let settings = try ApplianceSettingsStore(stateDirectory: site.state).load()
                if let name = settings?.hostname?.text {
                    #expect(
                        sent.contains(name), "round \(round): saved hostname \(name) was never sent"
                    )
                    if name.hasPrefix("r\(round)-") { roundsThatSaved += 1 }
                    lastSaved = name
                }
            }
            // The kills fell among saves, not before the first of a round.
            #expect(roundsThatSaved >= 20, "only \(roundsThatSaved) of 30 rounds saved anything")
            let vtepd = try site.startVTEPD()
            if let lastSaved { #expect(try site.shell(lab, "show hostname") == lastSaved + "\n") }
            #expect(vtepd.stop() == 0)
            // Each vtepd stopped the ovsdb-server its killed predecessor left; the last one
            // stopped its own.
            if let text = try? String(
                contentsOfFile: site.state + "/ovsdb-server.pid", encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                kill(pid, 0) == 0
            {
                Issue.record("ovsdb-server \(pid) outlived the last vtepd")
                kill(pid, SIGKILL)
            }
        }
    }
}

/// One gateway namespace with an access port and an underlay, vtepd's state and appliance
/// root, for the shell tests.
struct ShellSite {
    let lab: Lab
    let namespace: String
    let port: String
    let underlay: String
    let state: String
    let root: String
    var controlSocket: String { state + "/vtepd.ctl" }

    init(_ lab: Lab) throws {
        self.lab = lab
        namespace = try lab.namespace("g")
        (port, _) = try lab.veth("p", in: namespace, "q", in: namespace)
        (underlay, _) = try lab.veth("u", in: namespace, "v", in: namespace)
        try lab.execute(["ip", "addr", "add", "192.0.2.1/24", "dev", underlay], in: namespace)
        state = lab.file("state").path
        root = lab.file("root").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            atPath: root + "/etc", withIntermediateDirectories: true)
        // The appliance's accounts, as first boot leaves them: admin exists, with no usable
        // password until `set user admin password`.
        try AtomicFile.write(
            Array("root:*:20000:0:99999:7:::\nadmin:!:20000:0:99999:7:::\n".utf8),
            to: root + "/etc/shadow", mode: 0o640)
    }

    /// vtepd in the namespace, in a UTS namespace of its own (`unshare --uts` execs it, so
    /// the PID is vtepd's); returns once its control socket answers.
    func startVTEPD() throws -> LabProcess {
        let socket = controlSocket
        try? FileManager.default.removeItem(atPath: socket)
        let process = try lab.start(
            "vtepd",
            [
                "unshare", "--uts", try Self.executable("vtepd").path, "run", "--state-root", state,
                "--physical-switch", "ps1", "--tunnel-ip", "192.0.2.1", "--underlay", underlay,
                "--port", port, "--appliance-root", root,
            ], in: namespace)
        try waitUntil("vtepd to answer on \(socket)", lastSeen: process.tail()) {
            try process.requireRunning()
            guard FileManager.default.fileExists(atPath: socket),
                let result = try? lab.attempt(
                    [
                        try Self.executable("vtepsh").path, "--control", socket, "-c",
                        "show switch logical-switches",
                    ])
            else { return false }
            return result.status == 0
        }
        return process
    }

    /// `vtepsh -c LINE`: its output; throws when it fails.
    @discardableResult
    func shell(_ lab: Lab, _ line: String) throws -> String {
        try lab.execute([
            try Self.executable("vtepsh").path, "--control", controlSocket, "-c", line,
        ]).output
    }

    @discardableResult
    func vtepCtl(_ lab: Lab, _ arguments: [String]) throws -> String {
        try lab.execute(["vtep-ctl", "--db=unix:\(state)/db.sock"] + arguments).output
    }

    func file(_ path: String) throws -> String {
        try String(contentsOfFile: root + "/" + path, encoding: .utf8)
    }

    func savedSettingsText() throws -> String {
        try String(contentsOfFile: state + "/" + ApplianceSettingsStore.fileName, encoding: .utf8)
    }

    /// What the namespace's kernel and the files under the root say.
    func checkNetwork(_ lab: Lab) throws {
        let addresses = try lab.execute(["ip", "-o", "addr", "show", "dev", port], in: namespace)
            .output
        #expect(addresses.contains("inet 10.9.0.1/24"), "\(addresses)")
        let link = try lab.execute(["ip", "-o", "link", "show", "dev", port], in: namespace).output
        #expect(link.contains("mtu 1400"), "\(link)")
        let routes = try lab.execute(["ip", "route"], in: namespace).output
        #expect(
            routes.contains("10.77.0.0/16 via 10.9.0.254 dev \(port) proto static"), "\(routes)")
        let resolv = try file("etc/resolv.conf")
        #expect(
            resolv.contains("nameserver 192.0.2.53\n") && resolv.contains("search example.net\n"),
            "\(resolv)")
        #expect(
            try file("etc/chrony/sources.d/vtep-gateway.sources").contains(
                "server pool.ntp.org iburst\n"))
        #expect(try file("etc/hosts").contains("127.0.1.1\tgw-test\n"))
    }

    /// What vtep-ctl, the reference client, reads from the database.
    func checkDatabase(_ lab: Lab) throws {
        let switches = try vtepCtl(lab, ["list", "Logical_Switch", "web"])
        #expect(switches.contains("tunnel_key          : 5001"), "\(switches)")
        #expect(switches.contains("replication_mode    : source_node"), "\(switches)")
        #expect(try vtepCtl(lab, ["list-bindings", "ps1", port]).contains("0000 web"))
        let macs = try vtepCtl(lab, ["list-remote-macs", "web"])
        #expect(macs.contains("00:00:5e:00:53:01 -> vxlan_over_ipv4/192.0.2.2"), "\(macs)")
        #expect(macs.contains("unknown-dst -> vxlan_over_ipv4/192.0.2.2"), "\(macs)")
        #expect(macs.contains("unknown-dst -> vxlan_over_ipv4/192.0.2.3"), "\(macs)")
    }

    /// Everything a refused command could have changed.
    func snapshot(_ lab: Lab) throws -> [String] {
        [
            try shell(lab, "show running-config"),
            (try? savedSettingsText()) ?? "none",
            try lab.execute(["ip", "-4", "addr"], in: namespace).output,
            try lab.execute(["ip", "route"], in: namespace).output,
            try vtepCtl(lab, ["list", "Logical_Switch"]),
            // The configuration, not what vtepd's status rounds keep current (vlan_stats,
            // port_fault_status), which may change between two snapshots.
            try vtepCtl(
                lab, ["--columns=_uuid,name,description,vlan_bindings", "list", "Physical_Port"]),
            (try? FileManager.default.contentsOfDirectory(atPath: root + "/etc").sorted().joined(
                separator: ",")) ?? "",
        ]
    }

    /// One request line straight to the control socket; the response line.
    func raw(_ line: String) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LabError(description: "socket: \(errno)") }
        defer { Glibc.close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (i, byte) in controlSocket.utf8.enumerated() { path[i] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            throw LabError(description: "connect \(controlSocket): \(errno)")
        }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array((line + "\n").utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw LabError(description: "write to the control socket failed")
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !response.contains(0x0A) {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { throw LabError(description: "no response to \(line)") }
            response += buffer[0..<count]
        }
        return String(decoding: response.prefix { $0 != 0x0A }, as: UTF8.self)
    }

    /// A binary built beside the test bundle (`$VTEPD`/`$VTEPSH` override it).
    static func executable(_ name: String) throws -> URL {
        do { return try builtProduct(name) } catch {
            throw LabError(description: "\(error)")
        }
    }
}

extension LabTerminal {
    /// vtepsh on a pseudo-terminal, as an operator at the console runs it.
    static func vtepsh(
        lab: Lab, control: String, size: (rows: UInt16, columns: UInt16)? = nil
    ) throws -> LabTerminal {
        try LabTerminal(
            lab: lab, [try ShellSite.executable("vtepsh").path, "--control", control], in: nil,
            size: size)
    }
}

extension String {
    /// The running-config lines of a screen capture, as `vtepsh -c` prints them.
    fileprivate var runningConfigLines: String {
        let lines = replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n")
            .filter { !$0.hasSuffix("> ") && !$0.contains("sh run") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The module split's promise, checked on the binaries: the unprivileged shell links no
/// netlink, libmnl or libcrypt (those are vtepd's, which must link them for the check to mean
/// anything).
@Suite struct VTEPSHLinkageTests {
    static let privileged = ["libnl-3", "libnl-route-3", "libmnl", "libcrypt"]

    static func linkedLibraries(_ binary: URL) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(Lab.executable("ldd")))
        process.arguments = [binary.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "ldd \(binary.path) failed")
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            $0.split(separator: " ").first.map { String($0.trimmingCharacters(in: .whitespaces)) }
        }
    }

    static func privilegedLibraries(_ binary: URL) throws -> [String] {
        try linkedLibraries(binary).filter { library in
            privileged.contains { library.hasPrefix($0 + ".so") }
        }
    }

    @Test func vtepshLinksNothingPrivileged() throws {
        #expect(try Self.privilegedLibraries(ShellSite.executable("vtepsh")) == [])
    }

    @Test func vtepdLinksWhatTheCheckLooksFor() throws {
        #expect(
            Set(
                try Self.privilegedLibraries(ShellSite.executable("vtepd")).map {
                    String($0.prefix { $0 != "." })
                }) == Set(Self.privileged))
    }
}
