import Foundation
import Testing

/// An admin reaches vtepsh over OpenSSH, as on the appliance: `ssh admin@gw "COMMAND"` runs
/// one command with its exit status, `ssh -tt` gives the interactive shell, and nothing an
/// admin types reaches a POSIX shell. vtepd runs as in VTEPSHTests (its own network and UTS
/// namespaces, appliance files under a temporary root); sshd is the real /usr/sbin/sshd with
/// the appliance's drop-in, in the same network namespace (LabSSH says how vtepsh becomes the
/// login shell without touching this machine's accounts).
@Suite(.serialized) struct VTEPSHSSHTests {
    @Test func anAdminRunsCommandsAndASessionOverSSH() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            let vtepd = try site.startVTEPD()
            let ssh = try LabSSH(
                lab, in: site.namespace,
                loginShell: [
                    try ShellSite.executable("vtepsh").path, "--control", site.controlSocket,
                ])

            // One command: vtepd's host name (its own UTS namespace's), exit status 0.
            let expected = try site.shell(lab, "show hostname")
            #expect(!expected.isEmpty)
            let shown = try ssh.run("show hostname")
            #expect(shown.status == 0, "\(shown.errors)")
            #expect(shown.output == expected, "\(shown.output) \(shown.errors)")

            // A change over ssh is applied, saved, and audited as the user the kernel vouches
            // for on the control socket (root here, through sshd's session).
            let set = try ssh.run("set hostname ssh-gw")
            #expect(set.status == 0, "\(set.output)\(set.errors)")
            #expect(try ssh.run("show hostname").output == "ssh-gw\n")
            #expect(try site.savedSettingsText().contains("ssh-gw"))
            #expect(try site.file("etc/hostname") == "ssh-gw\n")
            let audit = try String(contentsOfFile: site.state + "/audit.log", encoding: .utf8)
            #expect(
                audit.contains("user=root uid=0 result=\"ok\" command=\"set hostname ssh-gw\""),
                "\(audit)")

            // A refused command: status 1 from vtepsh, carried by ssh, `% ` on stderr, and
            // nothing changed.
            let before = try site.snapshot(lab)
            let refused = try ssh.run("set hostname -gw")
            #expect(refused.status == 1, "\(refused.output)\(refused.errors)")
            #expect(refused.errors.hasPrefix("% "), "\(refused.errors)")
            #expect(refused.output.isEmpty, "\(refused.output)")
            let unknown = try ssh.run("show nonsense")
            #expect(unknown.status == 1 && unknown.errors.hasPrefix("% "), "\(unknown.errors)")

            // Shell syntax in a command is vtepsh input, not a shell's: each attempt is
            // refused with vtepsh's `% ` and its marker file never appears.
            let attempts: [(String) -> String] = [
                { "show hostname; touch \($0)" },
                { "show hostname $(touch \($0))" },
                { "show hostname `touch \($0)`" },
                { "set hostname x && touch \($0)" },
                { "show hostname | touch \($0)" },
                { "show hostname\ntouch \($0)" },
                { "touch \($0)" },
            ]
            for (n, attempt) in attempts.enumerated() {
                let marker = lab.file("injected-\(n)").path
                let command = attempt(marker)
                let result = try ssh.run(command)
                #expect(
                    result.status == 1 && result.errors.hasPrefix("% "),
                    "\(command.debugDescription): \(result.status) \(result.output)\(result.errors)"
                )
                #expect(
                    !FileManager.default.fileExists(atPath: marker),
                    "\(command.debugDescription) ran a shell command")
            }
            // A command that looks like an option lands on vtepsh's own command line
            // (`vtepsh -c "--control=..."`): it is still the command (`-c` takes it
            // unconditionally), refused by the shell's grammar; nothing runs (the snapshot below).
            let optionLike = try ssh.run("--control=/nonexistent -c set hostname decoy")
            #expect(optionLike.status == 1, "\(optionLike.output)\(optionLike.errors)")
            #expect(optionLike.errors.contains("% "), "\(optionLike.errors)")
            #expect(try site.snapshot(lab) == before)

            // What sshd applies to an admin (root is in vtep-admin here): the drop-in's.
            let effective = try ssh.effectiveConfiguration()
            for (keyword, value) in [
                ("permituserenvironment", "no"), ("disableforwarding", "yes"),
                ("allowtcpforwarding", "no"), ("allowstreamlocalforwarding", "no"),
                ("allowagentforwarding", "no"), ("x11forwarding", "no"), ("permittunnel", "no"),
                ("gatewayports", "no"), ("permituserrc", "no"), ("permittty", "yes"),
                ("permitemptypasswords", "no"),
            ] {
                #expect(
                    effective[keyword] == value,
                    "sshd -T: \(keyword) \(effective[keyword] ?? "unset")")
            }

            // The drop-in's Match Group vtep-admin: no forwarding. `-W` asks sshd for a
            // direct-tcpip channel to itself; allowed, it would print sshd's banner.
            let forwarded = try ssh.run(nil, options: ["-W", "\(ssh.address):\(ssh.port)"])
            #expect(forwarded.status != 0)
            #expect(!forwarded.output.contains("SSH-2.0-"), "\(forwarded.output)")
            #expect(
                forwarded.errors.contains("administratively prohibited"), "\(forwarded.errors)")

            // Interactive: ssh -tt on a pty, the remote vtepsh's prompt and line editor.
            let terminal = try LabTerminal(lab: lab, ssh.clientArguments(["-tt"]), in: ssh.client)
            defer { terminal.close() }
            try terminal.expect("ssh-gw> ")
            try terminal.type("sh host\r")
            try terminal.expect("ssh-gw\r\n")
            try terminal.expect("ssh-gw> ")
            try terminal.type("set host ssh-gw2\r")
            try terminal.expect("ssh-gw2> ")
            let typed = lab.file("typed-injection").path
            try terminal.type("sh host; touch \(typed)\r")
            try terminal.expect("% ")
            try terminal.expect("ssh-gw2> ")
            try terminal.type("exit\r")
            #expect(terminal.waitForExit() == 0, "\(terminal.screen)")
            #expect(!FileManager.default.fileExists(atPath: typed))
            #expect(try site.file("etc/hostname") == "ssh-gw2\n")

            // The PID the lab stops is sshd's own, the one in its PidFile.
            #expect(try ssh.pidFromFile() == ssh.sshd.pid)
            ssh.sshd.stop()
            #expect(!ssh.sshd.isRunning)
            #expect(vtepd.stop() == 0)
        }
    }
}
