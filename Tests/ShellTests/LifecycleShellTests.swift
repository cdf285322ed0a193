import Appliance
import ControlAPI
import Foundation
import Shell
import ShellSession
import Synchronization
import Testing

/// The shell's side of the lifecycle commands: `reboot` asks first, `copy running-config FILE`
/// saves, `copy FILE running-config` replays a file line by line.
@Suite struct LifecycleShellTests {
    final class Recorder: Sendable {
        let sent = Mutex<[String]>([])
        let answer: Bool?
        let home: String
        init(answer: Bool?) {
            self.answer = answer
            home =
                NSTemporaryDirectory()
                + "vtep-shell-home-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try? FileManager.default.createDirectory(
                atPath: home, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: home) }

        var executor: ShellExecutor {
            ShellExecutor(
                environment: ShellEnvironment(
                    send: { command in
                        self.sent.withLock { $0.append(command.shellLine) }
                        switch command {
                        case is ShowRunningConfig:
                            return .success(
                                .lines(["set hostname gw7", "add dns-server 192.0.2.53"]))
                        case let c as SetHostname where c.name.text == "bad-one":
                            return .failure(
                                .refused(command: "set-hostname", message: "refused by vtepd"))
                        default: return .success(.accepted)
                        }
                    }, runDiagnostic: { _ in .success(0) }, localHostname: { "gw" },
                    version: "test", confirm: { _ in self.answer },
                    homeFiles: HomeFiles(directory: home)))
        }

        func run(_ line: String) -> ShellOutcome {
            switch executor.action(for: line, promptWidth: nil) {
            case .failure(let outcome): return outcome
            case .success(let parsed?): return executor.perform(parsed)
            case .success(nil): return ShellOutcome(text: "", succeeded: true)
            }
        }
    }

    @Test func rebootIsSentOnlyWhenConfirmed() {
        let yes = Recorder(answer: true)
        #expect(yes.run("reboot").succeeded)
        #expect(yes.sent.withLock { $0 } == ["reboot"])
        let no = Recorder(answer: false)
        #expect(no.run("reboot").text == "Not done.\n")
        #expect(no.sent.withLock { $0 }.isEmpty)
        let noTerminal = Recorder(answer: nil)
        let refused = noTerminal.run("reboot")
        #expect(!refused.succeeded && refused.text.contains("asks for confirmation"))
        #expect(noTerminal.sent.withLock { $0 }.isEmpty)
    }

    @Test func copyRunningConfigSavesToTheHomeDirectory() throws {
        let shell = Recorder(answer: nil)
        let outcome = shell.run("copy running-config backup.cfg")
        #expect(outcome.text == "Saved to \(shell.home)/backup.cfg.\n")
        #expect(
            try String(contentsOfFile: shell.home + "/backup.cfg", encoding: .utf8)
                == "set hostname gw7\nadd dns-server 192.0.2.53\n")
        let mode =
            try FileManager.default.attributesOfItem(atPath: shell.home + "/backup.cfg")[
                .posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func copyFileRunningConfigRunsEveryLineAndNamesTheRefusedOnes() throws {
        let shell = Recorder(answer: nil)
        try """
        # saved
        set hostname gw7

        set hostname bad-one
        sett hostname x
        set user admin password
        set hostname gw8
        """.write(toFile: shell.home + "/saved.cfg", atomically: true, encoding: .utf8)
        let outcome = shell.run("copy saved.cfg running-config")
        #expect(!outcome.succeeded)
        #expect(outcome.text.contains("line 4: % refused by vtepd"))
        #expect(outcome.text.contains("line 5: % Invalid input at 'sett'"))
        #expect(outcome.text.contains("line 6: skipped (passwords are set interactively)"))
        #expect(outcome.text.hasSuffix("2 commands applied.\n"))
        #expect(
            shell.sent.withLock { $0 }.filter { !$0.hasPrefix("audit") }.contains(
                "set hostname gw8"))
        let absent = shell.run("copy nothing.cfg running-config")
        #expect(absent.text == "% \(shell.home)/nothing.cfg does not exist\n")
    }
}
