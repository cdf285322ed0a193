import Appliance
import ArgumentParser
import ControlAPI
import Glibc
import ManualPages
import Shell
import ShellSession

/// vtepsh: the appliance shell, a client of vtepd's control socket. Thin by design: the
/// session logic lives in `ShellSession`; here are the command line, the terminal and the
/// socket.
@main
struct VTEPSH: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtepsh",
        abstract: "The VTEP gateway appliance shell.",
        discussion:
            "Without -c: an interactive shell on the terminal. With -c: one command, exit status 0 or 1."
    )

    static let version = "\(Product.name) appliance shell (vtepsh) \(Product.versionAndBuild)"

    // `.unconditional`: as a login shell, sshd runs `vtepsh -c "COMMAND"` with whatever the
    // client sent; a command that looks like an option (`--control=...`, `--help`) must
    // still be the command, refused by the shell's grammar with `% `, not an option.
    @Option(
        name: .customShort("c"), parsing: .unconditional,
        help: ArgumentHelp(
            "Run one command and exit (0: done, 1: refused).", valueName: "command"))
    var command: String?
    @Option(help: "vtepd's control socket.")
    var control = "/var/lib/vtep-gateway/vtepd.ctl"
    @Option(
        help: ArgumentHelp(
            "Print a reference generated from the command declarations and exit.",
            valueName: "shell|protocol|man"))
    var reference: String?

    func run() throws {
        switch reference {
        case "shell"?:
            print(Reference.shell(), terminator: "")
            return
        case "protocol"?:
            print(Reference.protocolCommands(), terminator: "")
            return
        case "man"?:
            let commandLine = try CommandLineDescription(dumpedHelp: Self._dumpHelp())
            print(Reference.manualPage(commandLine: commandLine).roff, terminator: "")
            return
        case let other?:
            throw ValidationError("--reference: \(other)? expected shell, protocol or man")
        case nil: break
        }
        let path = control
        let environment = ShellEnvironment(
            send: { command in
                do throws(ControlClientError) {
                    return .success(try ControlClient.request(command, at: path))
                } catch {
                    return .failure(error)
                }
            },
            runDiagnostic: { arguments in
                Terminal.whileCooked { Diagnostics.run(arguments) }
            },
            localHostname: {
                var buffer = [CChar](repeating: 0, count: 256)
                return gethostname(&buffer, buffer.count) == 0 ? String(cString: buffer) : "vtep"
            },
            version: Self.version,
            confirm: { question in
                // `vtepsh -c` on a terminal (ssh -t): asked there, answered with a line.
                guard isatty(STDIN_FILENO) == 1 else { return nil }
                let bytes = Array(question.utf8)
                _ = bytes.withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                guard let answer = readLine() else { return false }
                return ["yes", "y"].contains(answer.lowercased().filter { $0 != " " && $0 != "\r" })
            })
        let executor = ShellExecutor(environment: environment)

        if let command {
            if command == Self.sftpServer { Self.execSFTPServer() }
            throw ExitCode(Self.runOne(command, executor))
        }
        guard isatty(STDIN_FILENO) == 1 else {
            // Not a terminal (a pipe): no raw mode or echo to manage, lines are read plainly.
            // Every line runs; the status is 1 if any was refused, and each refusal says which
            // line it was.
            var status: Int32 = 0
            var number = 0
            while let line = readLine() {
                number += 1
                if Self.runOne(line, executor, lineNumber: number) != 0 { status = 1 }
            }
            throw ExitCode(status)
        }
        try Terminal.enterRawMode()
        defer { Terminal.restore() }
        let session = ShellSession(executor: executor, history: HistoryFile.forCurrentUser()) {
            bytes in Terminal.write(bytes)
        }
        // Pages as tall as the terminal, lines as wide (TIOCGWINSZ); `terminal length N`
        // changes the first, SIGWINCH both widths.
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 {
            session.terminalLength = Int(size.ws_row)
        }
        if size.ws_col > 0 { session.resize(columns: Int(size.ws_col)) }
        Terminal.watchResizes()
        session.start()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !session.isFinished {
            // The terminal's input, or a resize (SIGWINCH's byte on the self-pipe): a signal
            // between two reads is never missed, as one interrupting read(2) could be.
            var fds = [
                pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0),
                pollfd(fd: Terminal.wakeup.read, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[1].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                _ = read(Terminal.wakeup.read, &drain, drain.count)
                var size = winsize()
                if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 {
                    session.resize(columns: Int(size.ws_col))
                }
            }
            guard fds[0].revents != 0 else { continue }
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            session.receive(buffer[0..<count])
        }
    }

    /// How scp and sftp reach the admin's home directory: sshd runs its sftp subsystem
    /// through the login shell, as `vtepsh -c /usr/lib/openssh/sftp-server` (Debian's
    /// sshd_config names that path, and OpenSSH 9.2 lets no drop-in replace a Subsystem). That
    /// exact line, and nothing else, starts the server, in the home directory. An admin can
    /// already install packages, so file access through it grants nothing more.
    static let sftpServer = "/usr/lib/openssh/sftp-server"

    static func execSFTPServer() -> Never {
        let home = HomeFiles.currentUser().directory
        let arguments = ["sftp-server", "-d", home]
        var argv = arguments.map { strdup($0) } + [nil]
        execv(sftpServer, &argv)
        let message = "% cannot start \(sftpServer): \(String(cString: strerror(errno)))\n"
        _ = Array(message.utf8).withUnsafeBytes {
            Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count)
        }
        Glibc.exit(1)
    }

    /// `-c`: one line; its output on stdout, errors on stderr; the exit status.
    static func runOne(_ line: String, _ executor: ShellExecutor, lineNumber: Int? = nil) -> Int32 {
        let outcome: ShellOutcome
        switch executor.action(for: line, promptWidth: nil) {
        case .failure(let failure): outcome = failure
        case .success(nil): return 0
        case .success(let line?) where line.action == .exit: return 0
        case .success(let line?) where line.action == .caCertificate:
            // The PEM follows on standard input (the next lines of a script), up to an empty line.
            outcome = executor.installCACertificate { readLine() }
        case .success(let line?):
            // As it comes: `show switch mac-table` a page at a time.
            let output = executor.output(of: line)
            while let part = output.next() {
                if !part.succeeded { return Self.write(part, lineNumber: lineNumber) }
                _ = Self.write(part, lineNumber: lineNumber)
            }
            return 0
        }
        return Self.write(outcome, lineNumber: lineNumber)
    }

    /// Writes an outcome: output on stdout, a refusal on stderr (with its line number, if
    /// given). Its exit status.
    static func write(_ outcome: ShellOutcome, lineNumber: Int?) -> Int32 {
        let prefix = outcome.succeeded ? "" : lineNumber.map { "line \($0): " } ?? ""
        let bytes = Array((prefix + outcome.text).utf8)
        _ = bytes.withUnsafeBytes {
            Glibc.write(outcome.succeeded ? STDOUT_FILENO : STDERR_FILENO, $0.baseAddress, $0.count)
        }
        return outcome.succeeded ? 0 : 1
    }
}

/// The controlling terminal's modes: raw while the line editor runs (it echoes and edits
/// itself), restored on exit, on SIGTERM/SIGHUP, and while a diagnostic runs.
enum Terminal {
    nonisolated(unsafe) static var original = termios()
    nonisolated(unsafe) static var raw = termios()
    nonisolated(unsafe) static var active = false

    static func enterRawMode() throws {
        guard tcgetattr(STDIN_FILENO, &original) == 0 else {
            throw ValidationError(
                "cannot read the terminal's settings: \(String(cString: strerror(errno)))")
        }
        raw = original
        cfmakeraw(&raw)
        active = true
        for signal in [SIGTERM, SIGHUP, SIGQUIT] {
            Glibc.signal(signal) { number in
                Terminal.restore()
                Glibc.signal(number, SIG_DFL)
                raise(number)
            }
        }
        guard tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0 else {
            active = false
            throw ValidationError(
                "cannot put the terminal in raw mode: \(String(cString: strerror(errno)))")
        }
    }

    /// SIGWINCH's self-pipe: the handler writes a byte (write(2) is async-signal-safe), the
    /// input loop polls the read end beside the terminal.
    nonisolated(unsafe) static var wakeup: (read: Int32, write: Int32) = (-1, -1)

    static func watchResizes() {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return }
        for fd in ends {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeup = (ends[0], ends[1])
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            var byte: UInt8 = 1
            _ = Glibc.write(Terminal.wakeup.write, &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(SIGWINCH, &action, nil)
    }

    /// Back to the modes the shell started with (async-signal-safe: tcsetattr only).
    static func restore() {
        guard active else { return }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
    }

    /// Runs `body` with the terminal's original modes (a child program expects a cooked
    /// terminal: `\n` to CR LF, Ctrl-C as SIGINT), then raw again.
    static func whileCooked<T>(_ body: () -> T) -> T {
        guard active else { return body() }
        tcsetattr(STDIN_FILENO, TCSADRAIN, &original)
        defer { tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) }
        return body()
    }

    static func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count)
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
