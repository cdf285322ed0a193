import Appliance
import ControlAPI
import Foundation
import Shell

/// How a command turned out, for the screen and for `vtepsh -c`'s exit status.
public struct ShellOutcome: Error, Hashable, Sendable {
    public var text: String
    public var succeeded: Bool

    public init(text: String, succeeded: Bool) {
        self.text = text
        self.succeeded = succeeded
    }
}

/// What the shell needs from the outside: a way to vtepd, and one to run diagnostics. Tests
/// put in-memory versions here; vtepsh the control socket and posix_spawn.
public struct ShellEnvironment: Sendable {
    public var send: @Sendable (any ControlCommand) -> Result<ControlResult, ControlClientError>
    /// Runs a diagnostic with the terminal as its input and output; its exit status.
    public var runDiagnostic: @Sendable ([String]) -> Result<Int32, ShellFailure>
    /// The host name for the prompt when vtepd cannot say.
    public var localHostname: @Sendable () -> String
    public var version: String
    /// Outside the interactive session (`vtepsh -c`): asks a yes/no question on the terminal;
    /// nil when there is no terminal to ask on.
    public var confirm: @Sendable (String) -> Bool?
    /// The files of `copy running-config FILE` and `copy FILE running-config`: in the user's
    /// home directory, which is where scp puts them.
    public var homeFiles: HomeFiles

    public init(
        send: @escaping @Sendable (any ControlCommand) -> Result<ControlResult, ControlClientError>,
        runDiagnostic: @escaping @Sendable ([String]) -> Result<Int32, ShellFailure>,
        localHostname: @escaping @Sendable () -> String, version: String,
        confirm: @escaping @Sendable (String) -> Bool? = { _ in nil },
        homeFiles: HomeFiles = .currentUser()
    ) {
        self.send = send
        self.runDiagnostic = runDiagnostic
        self.localHostname = localHostname
        self.version = version
        self.confirm = confirm
        self.homeFiles = homeFiles
    }
}

/// Runs one command line: parse, act, text. Shared by the interactive session and
/// `vtepsh -c`, so both behave alike.
public struct ShellExecutor: Sendable {
    public let tree: CommandTree<ShellAction>
    public let environment: ShellEnvironment

    public init(tree: CommandTree<ShellAction> = .appliance, environment: ShellEnvironment) {
        self.tree = tree
        self.environment = environment
    }

    /// The line's action and output filters, or the error to print (with a `^` under the
    /// offending column when `promptWidth` is given).
    public func action(for line: String, promptWidth: Int?) -> Result<ShellLine?, ShellOutcome> {
        do {
            let (command, filters) = try OutputFilter.split(line)
            guard let action = try tree.parse(command) else { return .success(nil) }
            if !filters.isEmpty && !action.showsOutput {
                throw ShellFailure("output filters (| …) follow commands that show something")
            }
            return .success(ShellLine(action: action, filters: filters))
        } catch let error as ParseError {
            // Refused here, it never reaches vtepd as a command: its audit log still records
            // the attempt (escaped and cut there), whatever vtepd says to the note.
            _ = environment.send(AuditRefusedInput(line: line, reason: error.description))
            let marker = promptWidth.map {
                TerminalText.marker(column: error.column, promptWidth: $0)
            }
            return .failure(
                ShellOutcome(
                    text: (marker ?? "") + TerminalText.errorLine(error.description),
                    succeeded: false))
        } catch {
            _ = environment.send(AuditRefusedInput(line: line, reason: "\(error)"))
            return .failure(
                ShellOutcome(text: TerminalText.errorLine("\(error)"), succeeded: false))
        }
    }

    /// Runs a line that needs no dialogue, its filters applied to what it shows.
    public func perform(_ line: ShellLine) -> ShellOutcome {
        let output = self.output(of: line)
        var outcome = ShellOutcome(text: "", succeeded: true)
        while let part = output.next() {
            outcome.text += part.text
            outcome.succeeded = outcome.succeeded && part.succeeded
        }
        return outcome
    }

    /// Runs a line that needs no dialogue; what it shows comes a part at a time from the
    /// result, filtered. `show switch mac-table` comes a page of vtepd's
    /// (`ShowMACTable.maximumRows` entries) at a time, asked for only when the one before is
    /// taken: a pager shows the first screen of a million entries at once, `vtepsh -c`
    /// streams them, and neither holds more than a page. Everything else is one part.
    public func output(of line: ShellLine) -> ShellOutput {
        guard case .control(let command) = line.action, var query = command as? ShowMACTable,
            query.limit == nil
        else {
            let outcome = perform(line.action)
            var filters = OutputFilter.Stream(line.filters)
            var done = false
            return ShellOutput {
                guard !done else { return nil }
                done = true
                guard outcome.succeeded else { return outcome }
                return ShellOutcome(text: filters.pass(outcome.text, last: true), succeeded: true)
            }
        }
        query.limit = ShowMACTable.maximumRows
        var next: ShowMACTable? = query
        var table = TextReport.MACTableText()
        var filters = OutputFilter.Stream(line.filters)
        let send = environment.send
        return ShellOutput {
            guard let page = next else { return nil }
            next = nil
            switch send(page) {
            case .success(.macTable(let rows)):
                next = page.page(after: rows)
                let text = table.page(rows, last: next == nil)
                return ShellOutcome(text: filters.pass(text, last: next == nil), succeeded: true)
            case .success:
                return ShellOutcome(
                    text: TerminalText.errorLine("mac-table returned another command's result"),
                    succeeded: false)
            case .failure(.refused(_, let message)):
                return ShellOutcome(text: TerminalText.errorLine(message), succeeded: false)
            case .failure(let error):
                return ShellOutcome(
                    text: TerminalText.errorLine(error.description), succeeded: false)
            }
        }
    }

    /// Runs an action that needs no dialogue (not `.password`, not `.exit`).
    public func perform(_ action: ShellAction) -> ShellOutcome {
        switch action {
        case .control(let command): return send(command)
        case .help:
            return ShellOutcome(text: tree.commandList, succeeded: true)
        case .version:
            return ShellOutcome(text: environment.version + "\n", succeeded: true)
        case .diagnostic(let arguments):
            switch environment.runDiagnostic(arguments) {
            case .success(0): return ShellOutcome(text: "", succeeded: true)
            case .success(let status):
                return ShellOutcome(
                    text: TerminalText.errorLine("\(arguments[0]) exited with status \(status)"),
                    succeeded: false)
            case .failure(let failure):
                return ShellOutcome(text: TerminalText.errorLine(failure.message), succeeded: false)
            }
        case .confirm(let question, let command):
            switch environment.confirm(question) {
            case true?: return send(command)
            case false?:
                return ShellOutcome(text: "Not done.\n", succeeded: true)
            case nil:
                return ShellOutcome(
                    text: TerminalText.errorLine(
                        "this command asks for confirmation: run it on a terminal (ssh -t)"),
                    succeeded: false)
            }
        case .saveRunningConfig(let file):
            let outcome = send(ShowRunningConfig())
            guard outcome.succeeded else { return outcome }
            switch environment.homeFiles.write(file, outcome.text) {
            case .success(let path):
                return ShellOutcome(text: "Saved to \(path).\n", succeeded: true)
            case .failure(let failure):
                return ShellOutcome(text: TerminalText.errorLine(failure.message), succeeded: false)
            }
        case .restoreRunningConfig(let file):
            switch environment.homeFiles.read(file) {
            case .success(let text): return restore(text)
            case .failure(let failure):
                return ShellOutcome(text: TerminalText.errorLine(failure.message), succeeded: false)
            }
        case .password, .caCertificate, .exit, .history, .terminalLength:
            return ShellOutcome(
                text: TerminalText.errorLine("this command needs the interactive shell"),
                succeeded: false)
        }
    }

    /// `set switch ca-certificate` without a terminal (`vtepsh -c`, a script): the PEM is
    /// read from `nextLine` up to an empty line or the end of input, then sent.
    public func installCACertificate(reading nextLine: () -> String?) -> ShellOutcome {
        var lines: [String] = []
        while let line = nextLine() {
            if Self.isBlank(line) {
                if lines.isEmpty { continue }
                break
            }
            lines.append(line)
        }
        return send(SetCACertificate(pem: lines.joined(separator: "\n") + "\n"))
    }

    /// An empty line ends a pasted certificate (blank lines before it are skipped).
    static func isBlank(_ line: String) -> Bool {
        line.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" }
    }

    /// `copy FILE running-config`: each line run as if typed, in order; every line is tried,
    /// and each refusal says which line it was. The password dialogue cannot run from a file:
    /// its line is skipped and said so (passwords are kept in place, never in the file).
    func restore(_ text: String) -> ShellOutcome {
        var output = ""
        var succeeded = true
        var applied = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated()
        {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix("!") { continue }
            switch action(for: trimmed, promptWidth: nil) {
            case .failure(let refusal):
                succeeded = false
                output += "line \(index + 1): " + refusal.text
            case .success(nil): continue
            case .success(let parsed?):
                if case .password = parsed.action {
                    output += "line \(index + 1): skipped (passwords are set interactively)\n"
                    continue
                }
                let outcome = perform(parsed)
                if outcome.succeeded {
                    applied += 1
                } else {
                    succeeded = false
                    output += "line \(index + 1): " + outcome.text
                }
            }
        }
        return ShellOutcome(
            text: output + "\(applied) command\(applied == 1 ? "" : "s") applied.\n",
            succeeded: succeeded)
    }

    /// Sends a command to vtepd and renders its result.
    public func send(_ command: any ControlCommand) -> ShellOutcome {
        switch environment.send(command) {
        case .success(let result):
            // `show system`: the shell's own version first, then vtepd's view.
            let own = command is ShowSystem ? "vtepsh: \(environment.version)\n" : ""
            return ShellOutcome(text: own + TextReport.render(result), succeeded: true)
        case .failure(.refused(_, let message)):
            return ShellOutcome(text: TerminalText.errorLine(message), succeeded: false)
        case .failure(let error):
            return ShellOutcome(text: TerminalText.errorLine(error.description), succeeded: false)
        }
    }

    /// `HOSTNAME> `, the host name as vtepd has it.
    public func prompt() -> String {
        if case .success(.lines(let lines)) = environment.send(ShowHostname()),
            let name = lines.first,
            !name.isEmpty
        {
            return name + "> "
        }
        return environment.localHostname() + "> "
    }
}

/// What a command line shows, a part at a time (`ShellExecutor.output(of:)`): each `next()`
/// runs what the part needs (a request to vtepd); nil after the last. A part that did not
/// succeed (a refusal) is the last.
public final class ShellOutput {
    private let produce: () -> ShellOutcome?
    private var finished = false

    public init(_ produce: @escaping () -> ShellOutcome?) { self.produce = produce }

    public func next() -> ShellOutcome? {
        guard !finished, let part = produce() else {
            finished = true
            return nil
        }
        if !part.succeeded { finished = true }
        return part
    }
}

/// The interactive shell over a byte stream: terminal bytes in (`receive`), screen bytes out
/// (`write`). No terminal of its own, so tests drive it in memory and vtepsh over a tty.
public final class ShellSession {
    private enum Stage {
        case command
        /// Asking for `user`'s new password; `first` once it was typed once.
        case password(user: UserName, first: String?)
        /// Reading a pasted CA certificate, up to an empty line: the lines so far.
        case certificate([String])
        /// Output longer than a page: the lines not shown yet and where more come from,
        /// `--More--` waiting for a key.
        case paging([String], ShellOutput)
        /// Asked `question`; `command` is sent on "yes".
        case confirming(question: String, command: any ControlCommand)
    }

    /// Rows of the terminal: output longer than this is shown a page at a time with
    /// `--More--` (space: the next page, Enter: the next line, q or Ctrl-C: stop). 0 never
    /// pages. vtepsh sets it from the terminal's size; `terminal length N` changes it.
    public var terminalLength = 24

    public let executor: ShellExecutor
    private var editor: LineEditor
    private let write: ([UInt8]) -> Void
    private var stage = Stage.command
    private var prompt = "> "
    public private(set) var isFinished = false

    /// Where the history is kept between sessions; nil: not kept.
    private let historyFile: HistoryFile?

    public init(
        executor: ShellExecutor, history: HistoryFile? = nil,
        write: @escaping ([UInt8]) -> Void
    ) {
        self.executor = executor
        self.historyFile = history
        self.editor = LineEditor(
            tree: ShellGrammar(executor.tree, names: ShellGrammar.names(executor.environment.send)))
        self.write = write
        if let history { editor.loadHistory(history.load()) }
    }

    /// The terminal is now `columns` wide (at start, and on SIGWINCH).
    public func resize(columns: Int) {
        editor.resize(columns: columns)
        flush()
    }

    /// Shows the first prompt.
    public func start() {
        prompt = executor.prompt()
        editor.startLine(prompt: prompt)
        flush()
    }

    /// Takes terminal input; runs each line completed by it.
    public func receive(_ bytes: some Sequence<UInt8>) {
        var bytes = Array(bytes)
        while case .paging = stage, !bytes.isEmpty {
            page(key: bytes.removeFirst())
        }
        editor.feed(bytes)
        while !isFinished, let event = editor.nextEvent() {
            flush()
            handle(event)
            flush()
        }
        flush()
    }

    private func handle(_ event: LineEditor.Event) {
        switch (stage, event) {
        case (.paging, _):
            return
        case (.command, .endOfInput):
            finish()
            return
        case (.command, .cancelled):
            break
        case (.command, .line(let line)):
            if let historyFile, editor.history.last == line { historyFile.save(editor.history) }
            switch executor.action(for: line, promptWidth: prompt.count) {
            case .failure(let outcome): show(outcome.text)
            case .success(nil): break
            case .success(let line?) where line.action == .exit:
                finish()
                return
            case .success(let line?):
                if case .password(let user) = line.action {
                    stage = .password(user: user, first: nil)
                    break
                }
                if line.action == .caCertificate {
                    show("Paste the controllers' CA certificate (PEM), then an empty line:\n")
                    stage = .certificate([])
                    break
                }
                if case .confirm(let question, let command) = line.action {
                    stage = .confirming(question: question, command: command)
                    break
                }
                if line.action == .history {
                    show(
                        OutputFilter.apply(
                            line.filters,
                            to: editor.history.enumerated().map {
                                "\($0.offset + 1)  \($0.element)\n"
                            }.joined()))
                    break
                }
                if case .terminalLength(let rows) = line.action {
                    terminalLength = rows
                    break
                }
                showPaged(executor.output(of: line))
                if case .paging = stage { return }
                // vtepd may have been restarted, or the name changed by another admin.
                prompt = executor.prompt()
            }
        case (.certificate, .cancelled), (.certificate, .endOfInput):
            stage = .command
            show(TerminalText.errorLine("CA certificate not changed"))
        case (.certificate(let lines), .line(let line)):
            if !ShellExecutor.isBlank(line) {
                stage = .certificate(lines + [line])
            } else if !lines.isEmpty {
                stage = .command
                let outcome = executor.send(
                    SetCACertificate(pem: lines.joined(separator: "\n") + "\n"))
                show(outcome.succeeded ? "CA certificate installed.\n" : outcome.text)
            }
        case (.confirming, .cancelled), (.confirming, .endOfInput):
            stage = .command
            show("Not done.\n")
        case (.confirming(_, let command), .line(let answer)):
            stage = .command
            if ["yes", "y"].contains(answer.trimmingCharacters(in: .whitespaces).lowercased()) {
                show(executor.send(command).text)
            } else {
                show("Not done.\n")
            }
        case (.password, .cancelled), (.password, .endOfInput):
            stage = .command
            show(TerminalText.errorLine("password not changed"))
        case (.password(let user, nil), .line(let first)):
            stage = .password(user: user, first: first)
        case (.password(let user, let first?), .line(let second)):
            stage = .command
            if first != second {
                show(TerminalText.errorLine("the passwords differ; password not changed"))
            } else {
                let outcome = executor.send(SetPassword(user: user, password: second))
                show(outcome.succeeded ? "Password changed.\n" : outcome.text)
            }
        }
        switch stage {
        case .paging: return
        case .command: editor.startLine(prompt: prompt)
        case .password(_, nil): editor.startLine(prompt: "New password: ", mode: .secret)
        case .password(_, _?): editor.startLine(prompt: "Retype new password: ", mode: .secret)
        case .certificate: editor.startLine(prompt: "", mode: .text)
        case .confirming(let question, _): editor.startLine(prompt: question)
        }
    }

    /// Shows `output`, a page at a time when it is longer than the terminal; its parts are
    /// asked for only as the pages need them.
    private func showPaged(_ output: ShellOutput) {
        guard terminalLength > 1 else {
            while let part = output.next() { show(part.text) }
            return
        }
        let page = terminalLength - 1
        var lines = Self.lines(from: output, atLeast: terminalLength, into: [])
        guard lines.count >= terminalLength else {
            show(lines.map { $0 + "\n" }.joined())
            return
        }
        show(lines.prefix(page).map { $0 + "\n" }.joined())
        lines.removeFirst(page)
        stage = .paging(lines, output)
        show(Self.more)
    }

    /// `lines` and then the lines of `output`'s next parts, until there are `count` of them or
    /// no more parts.
    private static func lines(from output: ShellOutput, atLeast count: Int, into lines: [String])
        -> [String]
    {
        var lines = lines
        while lines.count < count, let part = output.next() {
            var more = part.text.split(separator: "\n", omittingEmptySubsequences: false).map(
                String.init)
            if more.last == "" { more.removeLast() }
            lines += more
        }
        return lines
    }

    static let more = "--More--"

    /// One key at `--More--`: space the next page, Enter the next line, q or Ctrl-C stop
    /// (any other key: the next page, as `more` does). Stopping asks vtepd for nothing more.
    private func page(key: UInt8) {
        guard case .paging(let held, let output) = stage else { return }
        // Erase `--More--` first.
        show("\r" + String(repeating: " ", count: Self.more.count) + "\r")
        let shown: Int
        switch key {
        case UInt8(ascii: "q"), UInt8(ascii: "Q"), 0x03: shown = -1
        case 0x0D, 0x0A: shown = 1
        default: shown = max(terminalLength - 1, 1)
        }
        var left: [String] = []
        if shown > 0 {
            // One line beyond what is shown: whether `--More--` comes again.
            let rest = Self.lines(from: output, atLeast: shown + 1, into: held)
            show(rest.prefix(shown).map { $0 + "\n" }.joined())
            left = Array(rest.dropFirst(shown))
        }
        if left.isEmpty {
            stage = .command
            editor.startLine(prompt: prompt)
        } else {
            stage = .paging(left, output)
            show(Self.more)
        }
        flush()
    }

    private func finish() {
        isFinished = true
        flush()
    }

    private func show(_ text: String) {
        editor.write(TerminalText.bytes(text))
    }

    private func flush() {
        let bytes = editor.takeOutput()
        if !bytes.isEmpty { write(bytes) }
    }
}
