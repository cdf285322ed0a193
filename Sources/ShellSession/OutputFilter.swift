import ControlAPI
import Foundation
import Shell

/// `| include REGEX`, `| exclude REGEX`, `| begin REGEX` and `| count` after a command that
/// shows something, as on IOS and vtysh: applied to its output line by line, in order.
/// REGEX is a Swift regular expression (the syntax of Perl, PCRE and ICU for what an admin
/// types: `.`, `*`, `^`, `$`, `[...]`, `|`, `\d`), matched anywhere in the line.
public enum OutputFilter: Hashable, Sendable {
    case include(String)
    case exclude(String)
    /// From the first matching line on.
    case begin(String)
    /// The number of lines, instead of them.
    case count

    /// Splits `line` at ` | `: the command, then its filters. A filter that is not one of
    /// these, or a pattern that does not compile, is refused.
    public static func split(_ line: String) throws(ShellFailure) -> (
        command: String, filters: [OutputFilter]
    ) {
        let parts = line.components(separatedBy: " | ")
        var filters: [OutputFilter] = []
        for part in parts.dropFirst() {
            let words = part.trimmingCharacters(in: .whitespaces)
            let (name, pattern) =
                words.firstIndex(of: " ").map {
                    (
                        String(words[..<$0]),
                        String(words[$0...]).trimmingCharacters(in: .whitespaces)
                    )
                } ?? (words, "")
            let filter: OutputFilter
            switch (name.lowercased(), pattern.isEmpty) {
            case ("include", false), ("i", false), ("inc", false): filter = .include(pattern)
            case ("exclude", false), ("e", false), ("exc", false): filter = .exclude(pattern)
            case ("begin", false), ("b", false), ("beg", false): filter = .begin(pattern)
            case ("count", true), ("c", true), ("cou", true): filter = .count
            case ("include", true), ("exclude", true), ("begin", true):
                throw ShellFailure("| \(name) needs a regular expression")
            default:
                throw ShellFailure(
                    "\"| \(part.prefix(40))\" is not an output filter: use | include REGEX,"
                        + " | exclude REGEX, | begin REGEX or | count")
            }
            if case .include(let p) = filter, (try? Regex(p)) == nil { throw bad(p) }
            if case .exclude(let p) = filter, (try? Regex(p)) == nil { throw bad(p) }
            if case .begin(let p) = filter, (try? Regex(p)) == nil { throw bad(p) }
            filters.append(filter)
        }
        return (parts[0], filters)
    }

    private static func bad(_ pattern: String) -> ShellFailure {
        ShellFailure("\"\(pattern.prefix(40))\" is not a regular expression")
    }

    /// `text`'s lines through `filters`, in order.
    public static func apply(_ filters: [OutputFilter], to text: String) -> String {
        guard !filters.isEmpty else { return text }
        var stream = Stream(filters)
        return stream.pass(text, last: true)
    }

    /// Filters applied to output that comes a part at a time (`show switch mac-table` a page at
    /// a time): the same lines as `apply` over the parts joined, each part's as soon as it can
    /// be known (`count` says its number after the last part).
    public struct Stream {
        let filters: [OutputFilter]
        var regexes: [Regex<AnyRegexOutput>?]
        var begun: [Bool]
        var counted: [Int]

        public init(_ filters: [OutputFilter]) {
            self.filters = filters
            regexes = filters.map { filter in
                switch filter {
                // Compiled once already by `split`.
                case .include(let p), .exclude(let p), .begin(let p): try! Regex(p)
                case .count: nil
                }
            }
            begun = filters.map { _ in false }
            counted = filters.map { _ in 0 }
        }

        /// The lines of `text`, a part of the output, that pass; `last`: no part follows.
        public mutating func pass(_ text: String, last: Bool) -> String {
            guard !filters.isEmpty else { return text }
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(
                String.init)
            if lines.last == "" { lines.removeLast() }
            for (index, filter) in filters.enumerated() {
                switch filter {
                case .include:
                    lines = lines.filter { $0.contains(regexes[index]!) }
                case .exclude:
                    lines = lines.filter { !$0.contains(regexes[index]!) }
                case .begin:
                    if !begun[index] {
                        lines = Array(lines.drop { !$0.contains(regexes[index]!) })
                        begun[index] = !lines.isEmpty
                    }
                case .count:
                    counted[index] += lines.count
                    lines = last ? ["\(counted[index])"] : []
                }
            }
            return lines.map { $0 + "\n" }.joined()
        }
    }
}

/// The shell's grammar for the line editor: the command tree, and after ` | ` the output
/// filters, for `?` and Tab.
public struct ShellGrammar: CommandGrammar {
    public let tree: CommandTree<ShellAction>
    /// Live names for arguments (nil: none).
    public let names: NameSource?

    public init(_ tree: CommandTree<ShellAction>, names: NameSource? = nil) {
        self.tree = tree
        self.names = names
    }

    /// The kind of live names an argument takes, by its slot and the command's path: an
    /// interface, a port, an existing logical switch (not the new one `add logical-switch`
    /// names), a remote VTEP.
    public static func nameKind(path: [String], slot: String, kind: ArgumentKind)
        -> ShowNames.Kind?
    {
        switch slot {
        case "IF": return .interfaces
        case "PORT": return .ports
        case "LOGICAL-SWITCH": return .logicalSwitches
        case "VTEP-IP": return .vteps
        case "MAC" where kind == .mac: return .macs
        case "NAME" where kind == .name && path.last == "logical-switch" && path.first != "add":
            return .logicalSwitches
        default: return nil
        }
    }

    /// Names from vtepd through `send`, for `names`.
    public static func names(
        _ send:
            @escaping @Sendable (any ControlCommand) -> Result<ControlResult, ControlClientError>
    ) -> NameSource {
        { path, slot, kind in
            guard let wanted = nameKind(path: path, slot: slot, kind: kind),
                case .success(.lines(let names)) = send(ShowNames(wanted))
            else { return nil }
            return names
        }
    }

    static let filters = [
        HelpEntry("begin", "Show from the first line matching a regular expression"),
        HelpEntry("count", "Count the lines"),
        HelpEntry("exclude", "Leave out the lines matching a regular expression"),
        HelpEntry("include", "Show only the lines matching a regular expression"),
    ]

    /// The text after the last ` | `, when there is one.
    static func filterPart(_ text: String) -> Substring? {
        guard let bar = text.range(of: " | ", options: .backwards) else { return nil }
        return text[bar.upperBound...]
    }

    public func help(before text: String) throws(ParseError) -> [HelpEntry] {
        guard let part = Self.filterPart(text) else {
            return try tree.help(before: text, names: names)
        }
        if part.contains(" ") {
            let name = part.prefix { $0 != " " }
            return name.hasPrefix("c")
                ? [HelpEntry("<cr>", "Run the command")]
                : [HelpEntry("REGEX", "A regular expression, matched anywhere in the line")]
        }
        return Self.filters.filter { $0.token.hasPrefix(part.lowercased()) }
    }

    public func complete(before text: String) -> Completion {
        guard let part = Self.filterPart(text) else {
            return tree.complete(before: text, names: names)
        }
        guard !part.contains(" ") else { return Completion() }
        let matches = Self.filters.map(\.token).filter { $0.hasPrefix(part.lowercased()) }
        if matches.count == 1 {
            return Completion(insertion: String(matches[0].dropFirst(part.count)) + " ")
        }
        return Completion(candidates: matches)
    }
}
