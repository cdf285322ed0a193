import Appliance
import ControlAPI
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

    public init(
        send: @escaping @Sendable (any ControlCommand) -> Result<ControlResult, ControlClientError>,
        runDiagnostic: @escaping @Sendable ([String]) -> Result<Int32, ShellFailure>,
        localHostname: @escaping @Sendable () -> String, version: String
    ) {
        self.send = send
        self.runDiagnostic = runDiagnostic
        self.localHostname = localHostname
        self.version = version
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

    /// The line's action, or the error to print (with a `^` under the offending column when
    /// `promptWidth` is given).
    public func action(for line: String, promptWidth: Int?) -> Result<ShellAction?, ShellOutcome> {
        do {
            return .success(try tree.parse(line))
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
            return .failure(
                ShellOutcome(text: TerminalText.errorLine("\(error)"), succeeded: false))
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
        case .password, .exit, .history:
            return ShellOutcome(
                text: TerminalText.errorLine("this command needs the interactive shell"),
                succeeded: false)
        }
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

/// The interactive shell over a byte stream: terminal bytes in (`receive`), screen bytes out
/// (`write`). No terminal of its own, so tests drive it in memory and vtepsh over a tty.
public final class ShellSession {
    private enum Stage {
        case command
        /// Asking for `user`'s new password; `first` once it was typed once.
        case password(user: UserName, first: String?)
    }

    public let executor: ShellExecutor
    private var editor: LineEditor
    private let write: ([UInt8]) -> Void
    private var stage = Stage.command
    private var prompt = "> "
    public private(set) var isFinished = false

    public init(executor: ShellExecutor, write: @escaping ([UInt8]) -> Void) {
        self.executor = executor
        self.editor = LineEditor(tree: executor.tree)
        self.write = write
    }

    /// Shows the first prompt.
    public func start() {
        prompt = executor.prompt()
        editor.startLine(prompt: prompt)
        flush()
    }

    /// Takes terminal input; runs each line completed by it.
    public func receive(_ bytes: some Sequence<UInt8>) {
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
        case (.command, .endOfInput):
            finish()
            return
        case (.command, .cancelled):
            break
        case (.command, .line(let line)):
            switch executor.action(for: line, promptWidth: prompt.count) {
            case .failure(let outcome): show(outcome.text)
            case .success(nil): break
            case .success(.exit?):
                finish()
                return
            case .success(.password(let user)?):
                stage = .password(user: user, first: nil)
            case .success(.history?):
                show(
                    editor.history.enumerated().map { "\($0.offset + 1)  \($0.element)\n" }
                        .joined())
            case .success(let action?):
                show(executor.perform(action).text)
                // vtepd may have been restarted, or the name changed by another admin.
                prompt = executor.prompt()
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
        case .command: editor.startLine(prompt: prompt)
        case .password(_, nil): editor.startLine(prompt: "New password: ", mode: .secret)
        case .password(_, _?): editor.startLine(prompt: "Retype new password: ", mode: .secret)
        }
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
