import Appliance
import ControlAPI
import Foundation
import HostConfiguration
import ProcessSpawning
import Shell
import ShellSession
import Synchronization
import Testing

/// The shell session in memory: terminal bytes in, screen bytes out, vtepd replaced by a
/// recorder. The pty tests (VTEPSHTests) run the same code against the real vtepd.
@Suite struct VTEPSHSessionTests {
    final class Recorder: Sendable {
        let sent = Mutex<[any ControlCommand]>([])
        var commands: [any ControlCommand] { sent.withLock { $0 } }
        /// The last command but the prompt's `show hostname`, asked after each command.
        var last: ShellAction? {
            commands.last { !($0 is ShowHostname) }.map { .control($0) }
        }

        var environment: ShellEnvironment {
            ShellEnvironment(
                send: { command in
                    self.sent.withLock { $0.append(command) }
                    switch command {
                    case is ShowHostname: return .success(.lines(["gw1"]))
                    case is ShowDNSServers: return .success(.lines(["192.0.2.53"]))
                    case is ShowLog: return .success(.lines((1...30).map { "entry \($0)" }))
                    case let names as ShowNames where names.kind == .ports:
                        return .success(.lines(["eth1", "eth2", "swp7"]))
                    case let names as ShowNames where names.kind == .logicalSwitches:
                        return .success(.lines(["web", "db"]))
                    case let names as ShowNames where names.kind == .macs:
                        return .success(.lines(["00:00:5e:00:53:01", "02:00:00:00:00:09"]))
                    case let add as AddLogicalSwitch where add.name == "taken":
                        return .failure(
                            .refused(
                                command: command.name,
                                message: "logical switch taken exists already"))
                    default: return .success(.accepted)
                    }
                },
                runDiagnostic: { arguments in .success(arguments.contains("192.0.2.99") ? 1 : 0) },
                localHostname: { "local" }, version: "test 1")
        }
    }

    final class Screen {
        var bytes: [UInt8] = []
    }

    func session(_ recorder: Recorder) -> (ShellSession, Screen) {
        let screen = Screen()
        let session = ShellSession(executor: ShellExecutor(environment: recorder.environment)) {
            bytes in screen.bytes += bytes
        }
        session.start()
        return (session, screen)
    }

    func text(_ screen: Screen) -> String {
        String(decoding: screen.bytes, as: UTF8.self)
    }

    @Test func abbreviatedCommandsGoToVTEPDAndTheirOutputIsShown() {
        let recorder = Recorder()
        let (session, screen) = session(recorder)
        #expect(text(screen) == "gw1> ")
        session.receive(Array("sh net dns-servers\r".utf8))
        #expect(recorder.last == .control(ShowDNSServers()))
        #expect(text(screen).hasSuffix("sh net dns-servers\r\n192.0.2.53\r\ngw1> "))
        session.receive(Array("add logical-s web vni 5001\r".utf8))
        #expect(recorder.last == .control(AddLogicalSwitch(name: "web", vni: 5001)))
        session.receive(Array("add logical-s taken vni 7\r".utf8))
        #expect(text(screen).contains("% logical switch taken exists already\r\ngw1> "))
        session.receive([0x04])
        #expect(session.isFinished)
    }

    @Test func badInputNamesTheTokenWithAMarkerAndSendsOnlyItsAuditNote() {
        let recorder = Recorder()
        let (session, screen) = session(recorder)
        let before = recorder.commands.count
        session.receive(Array("set hostname a;b\r".utf8))
        #expect(
            recorder.commands.dropFirst(before).map { ShellAction.control($0) } == [
                .control(
                    AuditRefusedInput(
                        line: "set hostname a;b",
                        reason:
                            "% Invalid input at 'a;b' (column 14): ';' is not allowed in a host name"
                            + " (letters, digits, '-' and '.')"))
            ])
        // "gw1> " is 5 wide, the token starts at column 14: the marker is under it.
        #expect(
            text(screen).contains(
                "\r\n" + String(repeating: " ", count: 18)
                    + "^\r\n% Invalid input at 'a;b' (column 14): ';' is not allowed"))
    }

    @Test func thePasswordIsAskedTwiceWithoutEchoAndSentOnlyWhenBothMatch() throws {
        let recorder = Recorder()
        let (session, screen) = session(recorder)
        session.receive(Array("set user admin password\r".utf8))
        #expect(text(screen).hasSuffix("New password: "))
        session.receive(Array("first secret\r".utf8))
        #expect(text(screen).hasSuffix("Retype new password: "))
        session.receive(Array("other secret\r".utf8))
        #expect(text(screen).contains("% the passwords differ; password not changed"))
        #expect(!recorder.commands.contains { $0 is SetPassword })

        session.receive(Array("set user admin password\rgood secret\rgood secret\r".utf8))
        #expect(
            recorder.last
                == .control(SetPassword(user: try UserName("admin"), password: "good secret")))
        #expect(text(screen).contains("Password changed.\r\ngw1> "))
        #expect(!text(screen).contains("secret"))

        // Ctrl-C abandons the dialogue.
        session.receive(Array("set user admin password\r".utf8) + [0x03])
        #expect(text(screen).hasSuffix("% password not changed\r\ngw1> "))
    }

    @Test func theCACertificateIsPastedUpToAnEmptyLineThenSent() throws {
        let recorder = Recorder()
        let (session, screen) = session(recorder)
        session.receive(Array("set switch ca-cert\r".utf8))
        #expect(
            text(screen).hasSuffix(
                "Paste the controllers' CA certificate (PEM), then an empty line:\r\n"))
        // A paste: `?` is text here, not help; nothing is sent before the empty line.
        session.receive(Array("-----BEGIN CERTIFICATE-----\rMIIB?x+/=\r".utf8))
        #expect(!recorder.commands.contains { $0 is SetCACertificate })
        session.receive(Array("-----END CERTIFICATE-----\r\r".utf8))
        #expect(
            recorder.last
                == .control(
                    SetCACertificate(
                        pem: "-----BEGIN CERTIFICATE-----\nMIIB?x+/=\n-----END CERTIFICATE-----\n"))
        )
        #expect(text(screen).hasSuffix("CA certificate installed.\r\ngw1> "))

        // Ctrl-C abandons it; nothing is sent.
        let sent = recorder.commands.filter { $0 is SetCACertificate }.count
        session.receive(
            Array("set switch ca-certificate\r-----BEGIN CERTIFICATE-----\r".utf8) + [0x03])
        #expect(text(screen).hasSuffix("% CA certificate not changed\r\ngw1> "))
        #expect(recorder.commands.filter { $0 is SetCACertificate }.count == sent)

        // Without a terminal (vtepsh -c, a script) the lines come from the input.
        var lines = [
            "", "-----BEGIN CERTIFICATE-----", "QUJD", "-----END CERTIFICATE-----", "", "show x",
        ][...]
        let outcome = session.executor.installCACertificate { lines.popFirst() }
        #expect(outcome.succeeded)
        #expect(
            recorder.last
                == .control(
                    SetCACertificate(
                        pem: "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n")))
        #expect(lines == ["show x"], "the script's next command is left for it")
    }

    @Test func helpQuestionMarkTabAndExit() {
        let recorder = Recorder()
        let (session, screen) = session(recorder)
        // `help` is longer than a 24-row page: `q` at `--More--` stops it; with paging off
        // it shows whole.
        session.receive(Array("help\r".utf8))
        #expect(text(screen).hasSuffix("--More--"))
        session.receive(Array("q".utf8))
        session.receive(Array("terminal length 0\rhelp\r".utf8))
        #expect(text(screen).contains("set hostname NAME"))
        #expect(text(screen).contains("show switch mac-table [logical-switch NAME] [mac MAC]"))
        session.receive(Array("sh\t".utf8))
        #expect(text(screen).hasSuffix("show "))
        session.receive(Array("net ?".utf8))
        #expect(text(screen).contains("interfaces"))
        session.receive([0x15] + Array("ping 192.0.2.99\r".utf8))
        #expect(text(screen).contains("% ping exited with status 1"))
        session.receive(Array("exit\r".utf8))
        #expect(session.isFinished)
    }

    @Test func diagnosticsGetAnArgumentVectorThatCannotBeAnOption() {
        #expect(
            Diagnostics.pingArguments(.name("gw.example.net"), count: 3)
                == ["ping", "-c", "3", "--", "gw.example.net"])
        #expect(Diagnostics.tracerouteArguments(.name("a.example")) == ["traceroute", "a.example"])
        #expect(throws: ParseError.self) { try CommandTree<ShellAction>.appliance.parse("ping -f") }
        #expect(throws: ParseError.self) {
            try CommandTree<ShellAction>.appliance.parse("ping a;reboot")
        }
    }

    @Test func outputFiltersApplyToWhatCommandsShow() {
        let recorder = Recorder()
        let (session, screen) = session(recorder)
        session.receive(Array("sh net dns-servers | include 53$\r".utf8))
        #expect(text(screen).hasSuffix("| include 53$\r\n192.0.2.53\r\ngw1> "))
        session.receive(Array("sh net dns-servers | exclude 192\r".utf8))
        #expect(text(screen).hasSuffix("| exclude 192\r\ngw1> "))
        session.receive(Array("show log | begin entry 29 | count\r".utf8))
        #expect(text(screen).hasSuffix("| count\r\n2\r\ngw1> "))
        let before = recorder.commands.filter { $0 is SetHostname }.count
        session.receive(Array("set hostname gw2 | count\r".utf8))
        #expect(text(screen).contains("% output filters (| …) follow commands that show something"))
        session.receive(Array("show log | grep x\r".utf8))
        #expect(text(screen).contains(#"% "| grep x" is not an output filter"#))
        session.receive(Array("show log | include [\r".utf8))
        #expect(text(screen).contains(#"% "[" is not a regular expression"#))
        #expect(recorder.commands.filter { $0 is SetHostname }.count == before)
        session.receive(Array("show log | ?".utf8))
        #expect(text(screen).contains("include") && text(screen).contains("count"))
    }

    @Test func longOutputIsPagedWithMore() {
        let recorder = Recorder()
        let (session, screen) = session(recorder)
        session.receive(Array("terminal length 5\r".utf8))
        session.receive(Array("show log\r".utf8))
        #expect(text(screen).hasSuffix("entry 3\r\nentry 4\r\n--More--"))
        #expect(!text(screen).contains("entry 5"))
        session.receive([0x20])  // space: the next page
        #expect(text(screen).hasSuffix("entry 8\r\n--More--"))
        #expect(!text(screen).contains("entry 9"))
        session.receive([0x0D])  // Enter: one line
        #expect(text(screen).hasSuffix("entry 9\r\n--More--"))
        session.receive(Array("q".utf8))
        #expect(text(screen).hasSuffix("gw1> ") && !text(screen).contains("entry 10"))
        // 0: never page.
        session.receive(Array("terminal length 0\rshow log\r".utf8))
        #expect(text(screen).hasSuffix("entry 30\r\ngw1> "))
    }

    @Test func tabAndQuestionMarkCompleteLiveNamesAndNeverAcceptAnUnknownOne() {
        let recorder = Recorder()
        let (session, screen) = session(recorder)
        session.receive(Array("bind switch port s\t".utf8))
        #expect(text(screen).hasSuffix("bind switch port swp7 "))
        session.receive(Array("vlan 0 logical-switch w\t".utf8))
        #expect(text(screen).hasSuffix("logical-switch web "))
        session.receive([0x15] + Array("bind switch port x\t".utf8))
        // Nothing matches: left as typed, the placeholder listed, no space added.
        #expect(text(screen).hasSuffix("PORT\r\ngw1> bind switch port x"))
        session.receive([0x15] + Array("bind switch port eth\t".utf8))
        #expect(text(screen).contains("eth1  eth2  PORT"))
        #expect(text(screen).hasSuffix("gw1> bind switch port eth"))
        session.receive([0x15] + Array("set logical-switch ?".utf8))
        #expect(text(screen).contains("web") && text(screen).contains("db"))
        // MACs from the MAC table.
        session.receive([0x15] + Array("show switch mac-table mac 02\t".utf8))
        #expect(text(screen).hasSuffix("mac 02:00:00:00:00:09 "))
        // A new switch's name is not completed from the existing ones.
        session.receive([0x15] + Array("add logical-switch w\t".utf8))
        #expect(text(screen).hasSuffix("[Kadd logical-switch w "))
    }

    @Test func historyIsKeptBetweenSessionsInAFileOnlyTheUserReads() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "vtepsh-history-\(getpid())-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let recorder = Recorder()
        let first = Screen()
        let one = ShellSession(
            executor: ShellExecutor(environment: recorder.environment),
            history: HistoryFile(path: path, limit: 3)
        ) { first.bytes += $0 }
        one.start()
        one.receive(Array("show hostname\rsh net dns-servers\rset hostname a;b\rshow log\r".utf8))
        #expect(
            try String(contentsOfFile: path, encoding: .utf8)
                == "sh net dns-servers\nset hostname a;b\nshow log\n")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]
        #expect(mode as? Int == 0o600)

        let second = Screen()
        let two = ShellSession(
            executor: ShellExecutor(environment: recorder.environment),
            history: HistoryFile(path: path, limit: 3)
        ) { second.bytes += $0 }
        two.start()
        two.receive(Array("\u{1B}[A\u{1B}[A".utf8))
        #expect(String(decoding: second.bytes, as: UTF8.self).hasSuffix("set hostname a;b\u{1B}[K"))
        two.receive(Array("\rshow history\r".utf8))
        #expect(
            String(decoding: second.bytes, as: UTF8.self).contains(
                "1  sh net dns-servers\r\n2  set hostname a;b\r\n3  show log\r\n4  set hostname a;b\r\n5  show history"
            ))
    }
}
