import Appliance
import ControlAPI
import Foundation
import HostConfiguration
import ProcessSpawning
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

    /// `set user admin password` is the admin's SSH password: vtepd writes the hash into the
    /// appliance root's etc/shadow, and the real sshd (UsePAM no: getspnam(3) and crypt(3),
    /// as on any shadow host) takes it. The account starts as Debian's `useradd` leaves it,
    /// locked (`!`); other lines of the file must come out byte for byte.
    @Test func setUserAdminPasswordIsTheAdminsSSHPassword() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            let shadow = site.root + "/etc/shadow"
            let before = "root:*:20000:0:99999:7:::\n" + "daemon:*:20000:0:99999:7:::\n"
            let after = "nobody:*:20000:0:99999:7:::\n"
            try Data((before + "admin:!:20000:0:99999:7:::\n" + after).utf8).write(
                to: URL(fileURLWithPath: shadow))
            // Debian's: 0640 root:shadow.
            guard let group = getgrnam("shadow") else {
                throw LabError(description: "this machine has no group shadow (Debian's gid 42)")
            }
            let shadowGroup = group.pointee.gr_gid
            #expect(chown(shadow, 0, shadowGroup) == 0 && chmod(shadow, 0o640) == 0)
            let vtepd = try site.startVTEPD()
            let ssh = try LabSSH(
                lab, in: site.namespace,
                loginShell: [
                    try ShellSite.executable("vtepsh").path, "--control", site.controlSocket,
                ], passwordLogin: shadow)
            let password = "correct horse battery"
            let hostname = try site.shell(lab, "show hostname")

            // Locked: not even the password about to be set lets admin in.
            let locked = try ssh.runWithPassword(password, "show hostname")
            #expect(locked.status == 255, "\(locked.output)\(locked.errors)")
            #expect(locked.errors.contains("Permission denied"), "\(locked.errors)")
            #expect(locked.output.isEmpty)
            #expect(
                ssh.log().contains("User admin not allowed because account is locked"),
                "\(ssh.log())")

            // The console: vtepsh asks twice, without echo.
            let console = try LabTerminal.vtepsh(lab: lab, control: site.controlSocket)
            defer { console.close() }
            try console.expect("> ")
            try console.type("set user admin password\r")
            try console.expect("New password: ")
            try console.type(password + "\r")
            try console.expect("Retype new password: ")
            try console.type(password + "\r")
            try console.expect("Password changed.")
            try console.expect("> ")
            try console.type("exit\r")
            #expect(console.waitForExit() == 0)
            #expect(!console.screen.contains(password))

            // admin's fields 2 and 3 are the hash and today; every other byte is as it was,
            // and so are the mode and the owner.
            let written = try String(contentsOfFile: shadow, encoding: .utf8)
            #expect(written.hasPrefix(before) && written.hasSuffix(after), "\(written)")
            let line = written.dropFirst(before.utf8.count).dropLast(after.utf8.count)
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            #expect(fields.count == 9, "\(line)")
            let today = Int(time(nil)) / 86400
            if fields.count == 9 {
                #expect(fields[0] == "admin" && fields[1].hasPrefix("$y$"), "\(line)")
                #expect(Int(fields[2]) == today || Int(fields[2]) == today - 1, "\(line)")
                #expect(fields[3...].joined(separator: ":") == "0:99999:7:::\n", "\(line)")
                let hash = try? PasswordHash(String(fields[1]))
                #expect(hash?.verify(password) == true, "not a hash of the password: \(line)")
                // The saved settings hold the same hash.
                #expect(try site.savedSettingsText().contains(String(fields[1])))
            }
            var status = stat()
            #expect(stat(shadow, &status) == 0)
            #expect(status.st_mode & 0o7777 == 0o640 && status.st_uid == 0)
            #expect(status.st_gid == shadowGroup)
            // The new password lets admin in, to vtepsh.
            let login = try ssh.runWithPassword(password, "show hostname")
            #expect(login.status == 0, "\(login.output)\(login.errors)\n\(ssh.log())")
            #expect(login.output == hostname, "\(login.output)")
            #expect(ssh.log().contains("Accepted password for admin"), "\(ssh.log())")

            // A wrong one does not.
            let wrong = try ssh.runWithPassword("correct horse batterY", "show hostname")
            #expect(wrong.status == 255, "\(wrong.output)\(wrong.errors)")
            #expect(wrong.output.isEmpty)
            #expect(ssh.log().contains("Failed password for admin"), "\(ssh.log())")

            ssh.sshd.stop()
            #expect(!ssh.sshd.isRunning)
            #expect(vtepd.stop() == 0)
        }
    }
}
