import Appliance
import ControlAPI
import Packet
import Shell

/// What the shell does for a command line: ask vtepd, or something of its own (help, the
/// password dialogue, the diagnostics it runs itself).
public enum ShellAction: Hashable, Sendable {
    case control(any ControlCommand)
    /// Ask for the new password twice (no echo), then send `set-password`.
    case password(user: UserName)
    /// Read the controllers' CA certificate (PEM lines up to an empty line), then send
    /// `set-ca-certificate`.
    case caCertificate
    case help
    case version
    case exit
    /// The lines typed in this session, oldest first.
    case history
    /// `terminal length N`: page output N rows at a time (0: never page).
    case terminalLength(Int)
    /// Run a diagnostic program with this argument vector (never a shell).
    case diagnostic([String])
    /// Ask `question`; send `command` only on "yes".
    case confirm(question: String, command: any ControlCommand)
    /// `copy running-config FILE`: save `show running-config` to a file in the home directory.
    case saveRunningConfig(file: String)
    /// `copy FILE running-config`: run each line of a file in the home directory.
    case restoreRunningConfig(file: String)

    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.control(let a), .control(let b)): a.isSame(as: b)
        case (.password(let a), .password(let b)): a == b
        case (.help, .help), (.version, .version), (.exit, .exit), (.history, .history),
            (.caCertificate, .caCertificate):
            true
        case (.diagnostic(let a), .diagnostic(let b)): a == b
        case (.terminalLength(let a), .terminalLength(let b)): a == b
        case (.confirm(let q, let a), .confirm(let r, let b)): q == r && a.isSame(as: b)
        case (.saveRunningConfig(let a), .saveRunningConfig(let b)): a == b
        case (.restoreRunningConfig(let a), .restoreRunningConfig(let b)): a == b
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .control(let command): hasher.combine(command)
        case .password(let user): hasher.combine(user)
        case .help: hasher.combine(1)
        case .version: hasher.combine(2)
        case .exit: hasher.combine(3)
        case .history: hasher.combine(4)
        case .diagnostic(let arguments): hasher.combine(arguments)
        case .terminalLength(let rows): hasher.combine(rows)
        case .caCertificate: hasher.combine(5)
        case .confirm(let question, let command):
            hasher.combine(question)
            hasher.combine(command)
        case .saveRunningConfig(let file):
            hasher.combine(6)
            hasher.combine(file)
        case .restoreRunningConfig(let file):
            hasher.combine(7)
            hasher.combine(file)
        }
    }
}

extension ShellAction {
    /// Whether the action shows something an output filter can apply to: a command for vtepd
    /// that is not a change, or the shell's own listings.
    public var showsOutput: Bool {
        switch self {
        case .control(let command): !command.changesState
        case .help, .version, .history: true
        case .password, .caCertificate, .exit, .diagnostic, .terminalLength, .confirm,
            .saveRunningConfig, .restoreRunningConfig:
            false
        }
    }
}

/// A line as the shell runs it: the action, and the output filters after it (`| include …`).
public struct ShellLine: Hashable, Sendable {
    public var action: ShellAction
    public var filters: [OutputFilter]

    public init(action: ShellAction, filters: [OutputFilter] = []) {
        self.action = action
        self.filters = filters
    }
}

/// A command the shell cannot run: why, in words.
public struct ShellFailure: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension CommandTree where Command == ShellAction {
    /// The appliance shell's commands: vtepd's (each declared with its wire form in
    /// `ControlCommands`) and the shell's own.
    public static let appliance = CommandTree(
        ControlCommands.shellDeclarations.map { $0.map { ShellAction.control($0) } }
            + shellCommands)
}

private let copyWord = Syntax.keyword("copy", help: "Save or restore the configuration")

/// What the shell does itself.
private let shellCommands: [CommandDeclaration<ShellAction>] = [
    CommandDeclaration(
        [
            Word.set, .keyword("user", help: "An appliance user"),
            .keyword("admin", help: "The administrator"),
            .keyword("password", help: "Change the password (asked twice, not echoed)"),
        ], summary: "Change the admin password (asked twice, not echoed, stored hashed)"
    ) { _ throws(CommandRefusal) in
        .password(user: try refusing { () throws(ApplianceSettingsError) in try UserName("admin") })
    },
    CommandDeclaration(SetCACertificate.syntax, summary: SetCACertificate.summary) { _ in
        .caCertificate
    },
    CommandDeclaration(
        [.keyword("reboot", help: "Restart the appliance (asks first)")],
        summary: "Reboot the appliance, after asking for confirmation"
    ) { _ in .confirm(question: "Reboot the appliance now? [yes/no]: ", command: Reboot()) },
    CommandDeclaration(
        [
            copyWord, .keyword("running-config", help: "The commands that rebuild this state"),
            .argument("FILE", .fileName, help: "A file in your home directory"),
        ], summary: "Save the running configuration to FILE in your home directory"
    ) { .saveRunningConfig(file: $0.text("FILE")) },
    CommandDeclaration(
        [
            copyWord,
            .argument(
                "FILE", .fileName, help: "A saved configuration in your home directory"),
            .keyword("running-config", help: "Apply to the running configuration"),
        ], summary: "Run every command of FILE (a saved configuration): restores it"
    ) { .restoreRunningConfig(file: $0.text("FILE")) },
    CommandDeclaration(
        [Word.show, .keyword("version", help: "Software version")],
        summary: "Show the software version"
    ) { _ in .version },
    CommandDeclaration(
        [Word.show, .keyword("history", help: "The lines typed in this session")],
        summary: "Show the lines typed in this session, oldest first"
    ) { _ in .history },
    CommandDeclaration(
        [
            .keyword("terminal", help: "This terminal's settings"),
            .keyword("length", help: "Rows per page of output"),
            .argument(
                "N", .integer(IntegerRange("row count", 0...512)),
                help: "Rows per page, 0 to never page"),
        ], summary: "Page output N rows at a time (0: never page)"
    ) { .terminalLength($0.integer("N")!) },
    CommandDeclaration(
        [.keyword("help", help: "List the commands")],
        summary: "List every command with what it does"
    ) { _ in .help },
    CommandDeclaration(
        [.keyword("exit", help: "Leave the shell")],
        summary: "Leave the shell (Ctrl-D on an empty line does the same)"
    ) { _ in .exit },
    CommandDeclaration(
        [
            .keyword("ping", help: "Send ICMP echo requests"), Slot.target,
            .optional([
                .keyword("count", help: "Number of echo requests"),
                .argument("N", .integer(.count), help: "Echo requests to send"),
            ]),
        ], summary: "Run ping(8) to HOST: N echo requests (default 5, at most 1000)"
    ) { .diagnostic(Diagnostics.pingArguments($0.host("HOST"), count: $0.integer("N"))) },
    CommandDeclaration(
        [.keyword("traceroute", help: "Trace the route to a host"), Slot.target],
        summary: "Run traceroute(8) to HOST: the routers on the path to it"
    ) { .diagnostic(Diagnostics.tracerouteArguments($0.host("HOST"))) },
]
