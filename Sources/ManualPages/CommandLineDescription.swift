import Foundation

/// A program's command line as swift-argument-parser describes it (`_dumpHelp()`, the JSON of
/// `--experimental-dump-help`, which its own manual generator reads too): commands,
/// subcommands, and each one's options with their help. The manual pages list options from it,
/// so a page says what the parser accepts.
public struct CommandLineDescription: Sendable, Equatable {
    public var command: Command

    public struct Command: Sendable, Equatable, Decodable {
        public var commandName: String
        public var abstract: String?
        public var discussion: String?
        public var subcommands: [Command]?
        public var arguments: [Argument]?

        /// The subcommand named `name` (not the generated `help`).
        public func subcommand(_ name: String) -> Command? {
            subcommands?.first { $0.commandName == name }
        }

        /// The arguments shown in help, in declaration order, without `--help` and
        /// `--version` (every page says those once, in prose).
        public var options: [Argument] {
            (arguments ?? []).filter {
                $0.shouldDisplay && !["help", "version"].contains($0.preferredName?.name ?? "")
            }
        }
    }

    public struct Argument: Sendable, Equatable, Decodable {
        public struct Name: Sendable, Equatable, Decodable {
            public var kind: String
            public var name: String

            /// As typed: `--tunnel-ip`, `-c`, or a positional's name.
            public var spelled: String {
                switch kind {
                case "long": "--" + name
                case "short", "longWithSingleDash": "-" + name
                default: name
                }
            }
        }

        public var kind: String
        public var shouldDisplay: Bool
        public var isOptional: Bool
        public var isRepeating: Bool
        public var names: [Name]?
        public var preferredName: Name?
        public var valueName: String?
        public var defaultValue: String?
        public var abstract: String?
        public var discussion: String?

        public var isPositional: Bool { kind == "positional" }

        /// The long name without dashes (`tunnel-ip`), as vtepd.conf spells its keys.
        public var longName: String? { names?.first { $0.kind == "long" }?.name }

        /// How it is written in a synopsis or a tag: `--tunnel-ip TUNNEL-IP`, `-c C`,
        /// `--json`, `WHAT`.
        public var usage: String {
            if isPositional { return value }
            let name = (names ?? []).map(\.spelled).joined(separator: ", ")
            return kind == "flag" ? name : "\(name) \(value)"
        }

        /// The shortest form, for a synopsis: `--tunnel-ip TUNNEL-IP`, `-c C`, `--json`.
        public var shortUsage: String {
            if isPositional { return value }
            let name = names?.first?.spelled ?? ""
            return kind == "flag" ? name : "\(name) \(value)"
        }

        /// The value's placeholder in capitals (`TUNNEL-IP`); a list of choices as written
        /// (`shell|protocol|man`).
        var value: String {
            let name = valueName ?? preferredName?.name ?? "value"
            return name.contains("|") ? name : name.uppercased()
        }

        /// The option's help, its default (when the parser knows one) and whether it repeats.
        public var help: String {
            var text = abstract ?? ""
            if let discussion, !discussion.isEmpty { text += " " + discussion }
            if let defaultValue, !defaultValue.isEmpty, kind == "option" {
                text += " Default: \(defaultValue)."
            }
            if isRepeating && !isPositional { text += " May be given more than once." }
            return text
        }
    }

    private struct ToolInfo: Decodable {
        var command: Command
    }

    /// Reads `_dumpHelp()`'s JSON.
    public init(dumpedHelp json: String) throws {
        command = try JSONDecoder().decode(ToolInfo.self, from: Data(json.utf8)).command
    }

    /// A synopsis line: the command path, then each option (bracketed when optional, `...`
    /// when it repeats).
    public static func synopsis(_ path: String, _ command: Command) -> String {
        ([path]
            + command.options.map { argument in
                let usage = argument.shortUsage + (argument.isRepeating ? " ..." : "")
                return argument.isOptional ? "[\(usage)]" : usage
            }).joined(separator: " ")
    }

    /// Each option as a tagged paragraph.
    public static func options(_ command: Command) -> [ManualBlock] {
        command.options.map { .tagged($0.usage, $0.help) }
    }
}
