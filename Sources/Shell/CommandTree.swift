import Packet

/// One element of a command's declared syntax. As in FRR's `DEFUN`, a command is declared
/// once, every token with its help text, and the tree, the parser, `?` help, Tab completion
/// and the `help` listing all derive from that one declaration.
public indirect enum Syntax: Sendable {
    /// A literal word, matched by any unique prefix, case-insensitively.
    case keyword(String, help: String)
    /// A typed argument; `slot` names it for the builder and is its placeholder in help.
    case argument(String, ArgumentKind, help: String)
    /// One of several keywords (`up|down`); the chosen word is the value of `slot`.
    case choice(String, [Choice])
    /// Elements that may be left out together (`[lines N]`).
    case optional([Syntax])
}

public struct Choice: Hashable, Sendable {
    public var word: String
    public var help: String

    public init(_ word: String, _ help: String) {
        self.word = word
        self.help = help
    }
}

/// A command: its syntax, the line `help` shows for it, and how its matched arguments become
/// a `Command` (the shell's action; a control command for vtepd, most of them). The builder
/// may refuse values that the argument kinds let through but the command's own types do not
/// (a host name whose last label is all digits): the line is then refused as a parse error.
public struct CommandDeclaration<Command: Sendable>: Sendable {
    public var syntax: [Syntax]
    /// What the command does, in one line, as `help` lists it next to the usage. Its own
    /// text rather than a keyword's: a keyword's help serves `?` and is shared by every
    /// command through it (`up` says "Bring the link up", not what `set network interface
    /// IF up` changes), the way the NSX/NVP appliances' `help` describes each command.
    public var summary: String
    public var build: @Sendable (Arguments) throws(CommandRefusal) -> Command

    /// `summary` is required so that no command reaches `help` without its line.
    public init(
        _ syntax: [Syntax], summary: String,
        build: @escaping @Sendable (Arguments) throws(CommandRefusal) -> Command
    ) {
        self.syntax = syntax
        self.summary = summary
        self.build = build
    }

    /// The same declaration building something else from what this one builds.
    public func map<Other: Sendable>(_ transform: @escaping @Sendable (Command) -> Other)
        -> CommandDeclaration<Other>
    {
        let build = self.build
        return CommandDeclaration<Other>(syntax, summary: summary) {
            (arguments) throws(CommandRefusal) in transform(try build(arguments))
        }
    }

    /// The syntax as the `help` command lists it: `show log [lines N]`, `set ... up|down`.
    public var usage: String {
        func render(_ elements: [Syntax]) -> String {
            elements.map { element in
                switch element {
                case .keyword(let word, _): word
                case .argument(let slot, _, _): slot
                case .choice(_, let choices): choices.map(\.word).joined(separator: "|")
                case .optional(let inner): "[" + render(inner) + "]"
                }
            }.joined(separator: " ")
        }
        return render(syntax)
    }
}

/// The values an input line matched, by slot name. Builders read them with the accessor of
/// the slot's kind; the tree guarantees that a non-optional slot is present and typed as
/// declared, so a mismatch is a declaration bug (the tests build every command).
public struct Arguments: Sendable {
    var values: [String: ArgumentValue] = [:]

    public func has(_ slot: String) -> Bool { values[slot] != nil }

    public func text(_ slot: String) -> String {
        guard case .text(let text) = values[slot] else { mismatch(slot, "text") }
        return text
    }

    public func host(_ slot: String) -> RemoteHost {
        guard case .host(let host) = values[slot] else { mismatch(slot, "host") }
        return host
    }

    public func ipv4(_ slot: String) -> IPv4Address {
        guard case .ipv4(let address) = values[slot] else { mismatch(slot, "IPv4 address") }
        return address
    }

    public func prefixLength(_ slot: String) -> Int {
        guard case .prefixLength(let length) = values[slot] else { mismatch(slot, "netmask") }
        return length
    }

    public func ip(_ slot: String) -> IPAddress {
        guard case .ip(let address) = values[slot] else { mismatch(slot, "IP address") }
        return address
    }

    public func ipList(_ slot: String) -> [IPAddress] {
        guard case .ipList(let addresses) = values[slot] else { mismatch(slot, "address list") }
        return addresses
    }

    public func prefix(_ slot: String) -> IPPrefix? {
        guard let value = values[slot] else { return nil }
        guard case .prefix(let prefix) = value else { mismatch(slot, "prefix") }
        return prefix
    }

    public func endpoint(_ slot: String) -> IPEndpoint {
        guard case .endpoint(let endpoint) = values[slot] else { mismatch(slot, "IP:PORT") }
        return endpoint
    }

    public func mac(_ slot: String) -> MACAddress? {
        guard let value = values[slot] else { return nil }
        guard case .mac(let mac) = value else { mismatch(slot, "MAC address") }
        return mac
    }

    public func integer(_ slot: String) -> Int? {
        guard let value = values[slot] else { return nil }
        guard case .integer(let integer) = value else { mismatch(slot, "integer") }
        return integer
    }

    public func keyword(_ slot: String) -> String {
        guard case .keyword(let word) = values[slot] else { mismatch(slot, "keyword") }
        return word
    }

    private func mismatch(_ slot: String, _ kind: String) -> Never {
        preconditionFailure("command declaration bug: slot \(slot) is not a \(kind): \(values)")
    }
}

/// A possible next token, as `?` lists it: a keyword, an argument's placeholder, or `<cr>`
/// when the line is complete.
public struct HelpEntry: Hashable, Sendable {
    public var token: String
    public var help: String

    public init(_ token: String, _ help: String) {
        self.token = token
        self.help = help
    }
}

/// What Tab does: text to insert at the cursor (a keyword's rest and a space), or, when the
/// prefix is not unique, the candidates to list. Both empty: nothing fits (ring the bell).
public struct Completion: Hashable, Sendable {
    public var insertion: String
    public var candidates: [String]

    public init(insertion: String = "", candidates: [String] = []) {
        self.insertion = insertion
        self.candidates = candidates
    }
}

/// The commands as a tree of tokens: each edge a keyword or a typed argument, each node that
/// ends a command holding its builder.
/// What the line editor asks of a command tree: `?` help and Tab completion, whatever the
/// commands build.
public protocol CommandGrammar: Sendable {
    func help(before text: String) throws(ParseError) -> [HelpEntry]
    func complete(before text: String) -> Completion
}

public struct CommandTree<Command: Sendable>: CommandGrammar {
    enum Token: Sendable {
        case keyword(String, help: String, slot: String?)
        case argument(String, ArgumentKind, help: String)

        var display: String {
            switch self {
            case .keyword(let word, _, _): word
            case .argument(let slot, _, _): slot
            }
        }

        var help: String {
            switch self {
            case .keyword(_, let help, _): help
            case .argument(_, let kind, let help): kind.rangeHint.map { "\(help) (\($0))" } ?? help
            }
        }

        func isSameNode(as other: Token) -> Bool {
            switch (self, other) {
            case (.keyword(let a, _, _), .keyword(let b, _, _)): a == b
            case (.argument(let a, let kindA, _), .argument(let b, let kindB, _)):
                a == b && kindA == kindB
            default: false
            }
        }
    }

    struct Edge: Sendable {
        var token: Token
        var target: Int
    }

    struct Node: Sendable {
        var edges: [Edge] = []
        var build: (@Sendable (Arguments) throws(CommandRefusal) -> Command)?
    }

    /// A token of the input line with its 1-based column.
    struct Word {
        var text: String
        var column: Int
    }

    private(set) var nodes: [Node] = [Node()]
    public let declarations: [CommandDeclaration<Command>]

    /// Builds the tree. Declarations that collide (the same path twice, a keyword with two
    /// different help texts) are programming errors and stop the process: the tests build the
    /// shipped tree, so they cannot reach an appliance.
    public init(_ declarations: [CommandDeclaration<Command>]) {
        self.declarations = declarations
        for declaration in declarations {
            for path in Self.expand(declaration.syntax) {
                insert(path, build: declaration.build, usage: declaration.usage)
            }
        }
    }

    /// Every concrete token path of a syntax: optional parts present and absent, each word of
    /// a choice.
    static func expand(_ syntax: [Syntax]) -> [[Token]] {
        var paths: [[Token]] = [[]]
        for element in syntax {
            switch element {
            case .keyword(let word, let help):
                paths = paths.map { $0 + [.keyword(word, help: help, slot: nil)] }
            case .argument(let slot, let kind, let help):
                paths = paths.map { $0 + [.argument(slot, kind, help: help)] }
            case .choice(let slot, let choices):
                paths = paths.flatMap { path in
                    choices.map { path + [.keyword($0.word, help: $0.help, slot: slot)] }
                }
            case .optional(let inner):
                let tails = expand(inner)
                paths = paths.flatMap { path in [path] + tails.map { path + $0 } }
            }
        }
        return paths
    }

    private mutating func insert(
        _ path: [Token], build: @escaping @Sendable (Arguments) throws(CommandRefusal) -> Command,
        usage: String
    ) {
        var node = 0
        for token in path {
            if let edge = nodes[node].edges.first(where: { $0.token.isSameNode(as: token) }) {
                precondition(
                    edge.token.help == token.help,
                    "'\(token.display)' has two help texts: '\(edge.token.help)' and '\(token.help)' (in \(usage))"
                )
                node = edge.target
            } else {
                nodes.append(Node())
                nodes[node].edges.append(Edge(token: token, target: nodes.count - 1))
                node = nodes.count - 1
            }
        }
        precondition(nodes[node].build == nil, "command declared twice: \(usage)")
        nodes[node].build = build
    }

    // MARK: - Parsing

    /// Parses one line into its command; nil for a blank line.
    ///
    /// As FRR's command matcher, the whole line is matched: an abbreviation that fits several
    /// keywords is fine when only one of them leads to a command with the words that follow
    /// (`sh net int` is `show network interfaces`, `sh net int eth0` is `show network
    /// interface eth0`). When more than one does, or the line stops before they part, the
    /// line is ambiguous and the error names the word and its candidates.
    public func parse(_ line: String) throws(ParseError) -> Command? {
        let words = try Self.tokenize(line)
        guard let last = words.last else { return nil }
        let reached = try reach(words)
        let complete = reached.filter { nodes[$0.node].build != nil }
        if complete.count == 1, let build = nodes[complete[0].node].build {
            do {
                return try build(complete[0].arguments)
            } catch {
                throw .refused(reason: error.reason)
            }
        }
        if complete.count > 1 { throw ambiguity(complete, words) }
        if reached.count > 1 { throw ambiguity(reached, words) }
        throw .incomplete(
            after: words.map(\.text).joined(separator: " "),
            column: last.column + last.text.count + 1, expected: expected(at: reached[0].node))
    }

    /// One way through the tree that matches all the words so far.
    struct Reached {
        var node: Int
        var arguments: Arguments
        /// The token each word matched, as displayed.
        var path: [String]
    }

    /// Every node the words lead to; if none, the error of the attempt that got furthest.
    func reach(_ words: [Word]) throws(ParseError) -> [Reached] {
        var reached: [Reached] = []
        var failure: ParseError?
        func explore(_ index: Int, _ here: Reached) {
            guard index < words.count else {
                reached.append(here)
                return
            }
            let word = words[index]
            let edges: [Edge]
            do {
                edges = try candidates(for: word, at: here.node)
            } catch {
                if failure.map({ Self.rank(error) > Self.rank($0) }) ?? true { failure = error }
                return
            }
            for edge in edges {
                var next = here
                next.node = edge.target
                next.path.append(edge.token.display)
                switch edge.token {
                case .keyword(let chosen, _, let slot?):
                    next.arguments.values[slot] = .keyword(chosen)
                case .keyword: break
                case .argument(let slot, let kind, _):
                    // `candidates` returns only argument edges whose kind accepted the word.
                    if case .success(let value) = kind.parse(word.text) {
                        next.arguments.values[slot] = value
                    }
                }
                explore(index + 1, next)
            }
        }
        explore(0, Reached(node: 0, arguments: Arguments(), path: []))
        if reached.isEmpty, let failure { throw failure }
        return reached
    }

    /// Which of two failed attempts to report: the one that got further; at the same word, a
    /// specific refusal rather than "expected the end of the command".
    private static func rank(_ error: ParseError) -> (Int, Int) {
        if case .invalidInput(_, _, let reason) = error, reason == "expected the end of the command"
        {
            return (error.column, 0)
        }
        return (error.column, 1)
    }

    /// The ambiguity among several ways through: the first word where they part.
    private func ambiguity(_ ways: [Reached], _ words: [Word]) -> ParseError {
        let index = words.indices.first { index in
            Set(ways.map { $0.path[index] }).count > 1
        }!
        let candidates = Set(ways.map { $0.path[index] }).sorted()
        return .ambiguous(
            token: words[index].text, column: words[index].column, candidates: candidates)
    }

    /// Splits a line at spaces. Control characters (newline, tab, escape…) are refused here,
    /// wherever they are, so that no field can ever contain one.
    static func tokenize(_ line: String) throws(ParseError) -> [Word] {
        var words: [Word] = []
        var current = ""
        var start = 0
        var column = 0
        var control = false
        func finish() throws(ParseError) {
            guard !current.isEmpty else { return }
            if control {
                throw .invalidInput(
                    token: current, column: start,
                    reason: "control characters (newline, tab, escape) are not allowed")
            }
            words.append(Word(text: current, column: start))
            current = ""
        }
        for character in line {
            column += 1
            if character == " " {
                try finish()
                continue
            }
            if current.isEmpty { start = column }
            if character.unicodeScalars.contains(where: isControl) { control = true }
            current.append(character)
        }
        try finish()
        return words
    }

    /// The edges `word` may take at `node`: an exact keyword alone; else the one keyword it
    /// abbreviates; else every argument kind that accepts it. An abbreviation of several
    /// keywords is ambiguous here and now, as on IOS and vtysh: the words that follow never
    /// choose among them (`s h gw1` is not `set hostname gw1` because a name follows).
    func candidates(for word: Word, at node: Int) throws(ParseError) -> [Edge] {
        let edges = nodes[node].edges
        let lowered = word.text.lowercased()
        if let exact = edges.first(where: {
            if case .keyword(let keyword, _, _) = $0.token { keyword == lowered } else { false }
        }) {
            return [exact]
        }
        let abbreviated = edges.filter {
            if case .keyword(let keyword, _, _) = $0.token {
                keyword.hasPrefix(lowered)
            } else {
                false
            }
        }
        if abbreviated.count > 1 {
            throw .ambiguous(
                token: word.text, column: word.column,
                candidates: abbreviated.map(\.token.display).sorted())
        }
        if !abbreviated.isEmpty { return abbreviated }
        var refusals: [ArgumentRefusal] = []
        let candidates = edges.filter { edge in
            switch edge.token {
            case .keyword: return false
            case .argument(_, let kind, _):
                switch kind.parse(word.text) {
                case .success: return true
                case .failure(let refusal):
                    refusals.append(refusal)
                    return false
                }
            }
        }
        if !candidates.isEmpty { return candidates }
        // When no keyword is possible here and one argument kind has a specific refusal
        // ("VNI 16777216 is out of range", "10.0.0.1/8 has host bits set") rather than just
        // not recognising the word, that refusal says more than the list of expectations.
        let keywordPossible = edges.contains {
            if case .keyword = $0.token { true } else { false }
        }
        let specific = refusals.filter { !$0.description.hasPrefix("expected ") }
        let reason =
            if !keywordPossible && specific.count == 1 {
                specific[0].description
            } else if !keywordPossible && refusals.count == 1 {
                refusals[0].description
            } else {
                "expected \(expected(at: node))"
            }
        throw .invalidInput(token: word.text, column: word.column, reason: reason)
    }

    /// What may follow at `node`, in words: "one of: hostname, network", "a VNI from 0 to
    /// 16777215", "… or the end of the command".
    func expected(at node: Int) -> String { expected(at: [node]) }

    func expected(at nodes: [Int]) -> String {
        var keywords: [String] = []
        var parts: [String] = []
        for edge in nodes.flatMap({ self.nodes[$0].edges }) {
            switch edge.token {
            case .keyword(let word, _, _): if !keywords.contains(word) { keywords.append(word) }
            case .argument(_, let kind, _):
                if !parts.contains(kind.expectation) { parts.append(kind.expectation) }
            }
        }
        keywords.sort()
        if keywords.count == 1 {
            parts.insert("'\(keywords[0])'", at: 0)
        } else if keywords.count > 1 {
            parts.insert("one of: " + keywords.joined(separator: ", "), at: 0)
        }
        if nodes.contains(where: { self.nodes[$0].build != nil }) {
            parts.append("the end of the command")
        }
        return parts.joined(separator: "; or ")
    }

    // MARK: - Help and completion

    /// `help`: every command's usage and, aligned after it, its declaration's summary, in
    /// declaration order.
    public var commandList: String {
        TerminalText.helpList(declarations.map { HelpEntry($0.usage, $0.summary) })
    }

    /// `?`: the tokens that may come next after `text` (the line up to the cursor). If `text`
    /// ends inside a word, the keywords that word abbreviates and the arguments it may be
    /// the start of; `<cr>` when the line is already a complete command.
    public func help(before text: String) throws(ParseError) -> [HelpEntry] {
        try help(before: text, names: nil)
    }

    public func complete(before text: String) -> Completion { complete(before: text, names: nil) }

    /// `?`: what may come next, one line of help each; with `names`, the live names an
    /// argument may take (interfaces, ports, logical switches) after its placeholder.
    public func help(before text: String, names: NameSource?) throws(ParseError) -> [HelpEntry] {
        var words = try Self.tokenize(text)
        let partial = text.isEmpty || text.hasSuffix(" ") ? nil : words.popLast()
        let next = try following(words)
        let lowered = partial?.text.lowercased() ?? ""
        var keywords = next.edges.filter {
            if case .keyword(let word, _, _) = $0.edge.token {
                word.hasPrefix(lowered)
            } else {
                false
            }
        }
        keywords.sort { $0.edge.token.display < $1.edge.token.display }
        var entries = keywords.map { HelpEntry($0.edge.token.display, $0.edge.token.help) }
        for (edge, path) in next.edges {
            guard case .argument(let slot, let kind, _) = edge.token else { continue }
            entries.append(HelpEntry(slot, edge.token.help))
            for name in names?(path, slot, kind) ?? [] where name.hasPrefix(partial?.text ?? "") {
                entries.append(HelpEntry("  " + name, ""))
            }
        }
        if partial == nil, next.isComplete {
            entries.append(HelpEntry("<cr>", "Run the command"))
        }
        if entries.isEmpty, let partial {
            throw .invalidInput(
                token: partial.text, column: partial.column,
                reason: "expected \(expected(at: next.nodes))")
        }
        return entries
    }

    /// Tab: completes the keyword being typed when its prefix is unique (or extends it to the
    /// candidates' common prefix), and otherwise lists what may come next. With `names`, an
    /// argument that has live names completes the same way among them; a partial name that
    /// matches none is left as typed for the admin to finish, never accepted.
    public func complete(before text: String, names: NameSource?) -> Completion {
        guard var words = try? Self.tokenize(text) else { return Completion() }
        let partial = text.isEmpty || text.hasSuffix(" ") ? nil : words.popLast()
        guard let next = try? following(words) else { return Completion() }
        let typedText = partial?.text ?? ""
        var keywords: [String] = []
        var placeholders: [String] = []
        var named: [String] = []
        var hasNames = false
        var accepted = false
        for (edge, path) in next.edges {
            switch edge.token {
            case .keyword(let word, _, _):
                if word.hasPrefix(typedText.lowercased()) { keywords.append(word) }
            case .argument(let slot, let kind, _):
                placeholders.append(slot)
                if let known = names?(path, slot, kind) {
                    hasNames = true
                    named += known.filter { $0.hasPrefix(typedText) && !named.contains($0) }
                } else if let partial, case .success = kind.parse(partial.text) {
                    accepted = true
                }
            }
        }
        keywords.sort()
        named.sort()
        let typed = typedText.count
        let choices = keywords + named
        if choices.count == 1 && (partial != nil || placeholders.isEmpty || !named.isEmpty) {
            return Completion(insertion: String(choices[0].dropFirst(typed)) + " ")
        }
        if choices.count > 1 {
            let common = choices.dropFirst().reduce(choices[0]) { $0.commonPrefix(with: $1) }
            if common.count > typed {
                return Completion(insertion: String(common.dropFirst(typed)))
            }
            return Completion(candidates: choices + placeholders)
        }
        // A complete argument without live names gets its separating space; a name that
        // matches no live one is left as typed.
        if accepted && !hasNames { return Completion(insertion: " ") }
        return Completion(candidates: keywords + placeholders)
    }

    /// What may follow `words`, over every way through the tree they match, each edge with
    /// the path (tokens as displayed) that leads to it.
    private func following(_ words: [Word]) throws(ParseError) -> (
        nodes: [Int], edges: [(edge: Edge, path: [String])], isComplete: Bool
    ) {
        let reached = try reach(words)
        var nodes: [Int] = []
        var edges: [(edge: Edge, path: [String])] = []
        for way in reached where !nodes.contains(way.node) {
            nodes.append(way.node)
            for edge in self.nodes[way.node].edges
            where !edges.contains(where: { $0.edge.token.display == edge.token.display }) {
                edges.append((edge, way.path))
            }
        }
        return (nodes, edges, nodes.contains { self.nodes[$0].build != nil })
    }
}

/// Live names an argument may take, for `?` and Tab: given the path to it (its command's
/// tokens so far, as displayed), its slot and kind; nil when it has none.
public typealias NameSource =
    @Sendable (_ path: [String], _ slot: String, _ kind: ArgumentKind)
    -> [String]?

extension String {
    fileprivate func commonPrefix(with other: String) -> String {
        String(zip(self, other).prefix { $0 == $1 }.map(\.0))
    }
}
