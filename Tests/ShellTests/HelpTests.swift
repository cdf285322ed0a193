import Appliance
import ControlAPI
import ShellSession
import Testing

@testable import Shell

private let tree = CommandTree<ShellAction>.appliance

@Suite("? help and Tab completion")
struct HelpTests {
    @Test func questionMarkAtTheStartListsEveryFirstKeyword() throws {
        let entries = try tree.help(before: "")
        #expect(
            entries.map(\.token) == [
                "add", "bind", "clear", "copy", "debug", "exit", "help", "ping", "reboot",
                "remove", "restart", "set", "show", "terminal", "trace", "traceroute", "unbind",
                "update",
            ])
        #expect(entries.first == HelpEntry("add", "Add a setting or an entry"))
    }

    @Test func questionMarkAfterAbbreviationListsTheNextTokens() throws {
        let entries = try tree.help(before: "sh ")
        #expect(
            entries == [
                HelpEntry("captures", "The packet capture files"),
                HelpEntry("history", "The lines typed in this session"),
                HelpEntry("hostname", "The appliance's host name"),
                HelpEntry("log", "The appliance's log"),
                HelpEntry(
                    "logical-router", "A logical router between logical switches, with NAT"),
                HelpEntry("logical-routers", "The logical routers and their state"),
                HelpEntry("metrics", "The Prometheus metrics endpoint (GET /metrics over HTTP)"),
                HelpEntry("network", "Host networking: interfaces, routes, DNS, NTP"),
                HelpEntry("packet-trace", "Each step of the next frames through the data plane"),
                HelpEntry("running-config", "The commands that rebuild the current configuration"),
                HelpEntry("switch", "The VTEP gateway"),
                HelpEntry("system", "Versions, uptime, clock, load and memory"),
                HelpEntry("tech-support", "Everything support asks for, at once"),
                HelpEntry("version", "Software version"),
            ])
    }

    @Test func questionMarkInsideAWordListsWhatItAbbreviates() throws {
        #expect(
            try tree.help(before: "sh net dns").map(\.token) == [
                "dns-search-domains", "dns-servers",
            ])
        #expect(try tree.help(before: "s").map(\.token) == ["set", "show"])
    }

    @Test func typedArgumentsShowTheirPlaceholderAndRange() throws {
        #expect(
            try tree.help(before: "add logical-switch web vni ")
                == [HelpEntry("N", "VXLAN network identifier (0–16777215)")])
        #expect(
            try tree.help(before: "add network route ")
                == [
                    HelpEntry("PREFIX", "Destination network, ADDRESS/LENGTH"),
                    HelpEntry("GATEWAY", "Next-hop router address"),
                ])
        #expect(
            try tree.help(before: "set network interface eth0 ")
                == [
                    HelpEntry("down", "Take the link down"),
                    HelpEntry("ip", "IPv4 addressing"),
                    HelpEntry("mtu", "Maximum transmission unit"),
                    HelpEntry("up", "Bring the link up"),
                ])
    }

    @Test func carriageReturnMarksACompleteLine() throws {
        #expect(try tree.help(before: "show version ") == [HelpEntry("<cr>", "Run the command")])
        #expect(
            try tree.help(before: "ping 192.0.2.1 ")
                == [
                    HelpEntry("count", "Number of echo requests"),
                    HelpEntry("<cr>", "Run the command"),
                ])
        // `sh net interface` goes on to an interface name; `sh net int` is ambiguous.
        #expect(
            try tree.help(before: "sh net interface ") == [HelpEntry("IF", "Interface name")])
        #expect(
            throws: ParseError.ambiguous(
                token: "int", column: 8, candidates: ["interface", "interfaces"])
        ) { try tree.help(before: "sh net int ") }
    }

    @Test func questionMarkAfterBadInputNamesIt() {
        #expect(
            throws: ParseError.invalidInput(
                token: "shw", column: 1,
                reason:
                    "expected one of: add, bind, clear, copy, debug, exit, help, ping, reboot, remove, restart, set, show, terminal, trace, traceroute, unbind, update"
            )
        ) {
            try tree.help(before: "shw ")
        }
        #expect(
            throws: ParseError.invalidInput(
                token: "vx", column: 5,
                reason:
                    "expected one of: captures, history, hostname, log, logical-router, logical-routers, metrics, network, packet-trace,"
                    + " running-config, switch, system, tech-support, version")
        ) {
            try tree.help(before: "sho vx")
        }
    }

    static let completions: [(String, Completion)] = [
        ("sh", Completion(insertion: "ow ")),
        ("SH", Completion(insertion: "ow ")),
        ("show", Completion(insertion: " ")),
        ("s", Completion(candidates: ["set", "show"])),
        (
            "",
            Completion(candidates: [
                "add", "bind", "clear", "copy", "debug", "exit", "help", "ping", "reboot",
                "remove", "restart", "set", "show", "terminal", "trace", "traceroute", "unbind",
                "update",
            ])
        ),
        ("show network d", Completion(insertion: "ns-se")),
        ("show network dns-se", Completion(candidates: ["dns-search-domains", "dns-servers"])),
        ("show network int", Completion(insertion: "erface")),
        ("show network interface", Completion(candidates: ["interface", "interfaces"])),
        ("show network interfaces", Completion(insertion: " ")),
        ("set hostname ", Completion(candidates: ["NAME"])),
        ("set hostname gw1", Completion(insertion: " ")),
        ("set hostname gw;", Completion(candidates: ["NAME"])),
        ("show version ", Completion()),
        ("shw ", Completion()),
        (
            "set logical-switch web encapsulation ",
            Completion(candidates: ["gre", "nvgre", "vxlan"])
        ),
        ("set logical-switch web encapsulation n", Completion(insertion: "vgre ")),
        ("add logical-switch web ", Completion(insertion: "vni ")),
        ("ping 192.0.2.1 ", Completion(insertion: "count ")),
        ("sh sw mac-table ", Completion(candidates: ["logical-switch", "mac"])),
        ("sh sw mac-table lo web m", Completion(insertion: "ac ")),
    ]

    @Test("Tab", arguments: completions)
    func tab(before: String, expected: Completion) {
        #expect(tree.complete(before: before) == expected)
    }

    @Test func helpListIsAligned() {
        let text = TerminalText.helpList([
            HelpEntry("N", "VXLAN network identifier (0–16777215)"),
            HelpEntry("<cr>", "Run the command"),
        ])
        #expect(text == "  N     VXLAN network identifier (0–16777215)\n  <cr>  Run the command\n")
    }

    @Test func terminalTextEscapesControlsAndUsesCRLF() {
        #expect(TerminalText.bytes("a\nb") == Array("a\r\nb".utf8))
        #expect(TerminalText.bytes("x\u{1B}]0;pwned\u{07}") == Array("x\\u{1b}]0;pwned\\u{7}".utf8))
        #expect(TerminalText.errorLine("no such switch web") == "% no such switch web\n")
        #expect(TerminalText.errorLine("% already") == "% already\n")
        #expect(
            TerminalText.details([("Name", "eth0"), ("MTU", "1500")]) == "Name: eth0\nMTU:  1500\n")
    }
}

/// `help` lists each command with its declaration's own summary: not the help of one of its
/// keywords (which serves `?` and says what the keyword is, e.g. `up` "Bring the link up"),
/// but what the command does, on one line.
@Suite("help: one summary line per command")
struct CommandListTests {
    /// Usage (up to 54 columns today) plus the summary stays readable on a wide terminal;
    /// a longer summary belongs in the README.
    static let longestSummary = 70

    @Test func everyDeclarationHasANonEmptyOneLineSummaryOfBoundedLength() {
        #expect(!tree.declarations.isEmpty)
        for declaration in tree.declarations {
            let summary = declaration.summary
            #expect(!summary.isEmpty, "\(declaration.usage) has no summary")
            #expect(
                summary.trimmingCharacters(in: .whitespaces) == summary,
                "\(declaration.usage): leading or trailing space in '\(summary)'")
            #expect(
                !summary.unicodeScalars.contains(where: isControl),
                "\(declaration.usage): summary has a line break or control character")
            #expect(
                summary.count <= Self.longestSummary,
                "\(declaration.usage): summary has \(summary.count) characters, at most \(Self.longestSummary)"
            )
            #expect(!summary.hasSuffix("."), "\(declaration.usage): no trailing period")
        }
    }

    @Test func noTwoDeclarationsShareASummary() {
        let byText = Dictionary(grouping: tree.declarations, by: \.summary)
        let shared = byText.filter { $0.value.count > 1 }.mapValues { $0.map(\.usage) }
        #expect(shared.isEmpty, "summaries used by more than one command: \(shared)")
    }

    /// The regression this replaces: a summary copied from a keyword's help says what the
    /// keyword is, not what the command does.
    @Test func noSummaryIsTheHelpOfOneOfItsOwnTokens() {
        func helps(_ syntax: [Syntax]) -> [String] {
            syntax.flatMap { element -> [String] in
                switch element {
                case .keyword(_, let help): [help]
                case .argument(_, _, let help): [help]
                case .choice(_, let choices): choices.map(\.help)
                case .optional(let inner): helps(inner)
                }
            }
        }
        for declaration in tree.declarations {
            #expect(
                !helps(declaration.syntax).contains(declaration.summary),
                "\(declaration.usage): summary '\(declaration.summary)' is a token's help text")
        }
    }

    @Test func helpListsEachUsageWithItsOwnSummaryOnOneAlignedLine() throws {
        let lines = tree.commandList.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "", "the listing ends with a newline")
        let entries = lines.dropLast()
        try #require(entries.count == tree.declarations.count)
        let width = tree.declarations.map(\.usage.count).max()!
        for (line, declaration) in zip(entries, tree.declarations) {
            let padding = String(repeating: " ", count: width - declaration.usage.count)
            #expect(line == "  " + declaration.usage + padding + "  " + declaration.summary)
        }
    }

    /// A few commands by their text, as an operator reads them.
    @Test(
        arguments: [
            (
                "show switch tunnels",
                "Show remote VTEPs, the switches that reach them, frames sent/received"
            ),
            (
                "set network interface IF up|down",
                "Set IF's administrative state: bring it up or take it down"
            ),
            (
                "set hostname NAME",
                "Set the host name at once; /etc/hostname and /etc/hosts follow"
            ),
            (
                "ping HOST [count N]",
                "Run ping(8) to HOST: N echo requests (default 5, at most 1000)"
            ),
            ("remove network route GATEWAY", "Remove the default route via GATEWAY"),
            ("help", "List every command with what it does"),
        ])
    func helpLineOf(usage: String, summary: String) throws {
        let line = try #require(
            tree.commandList.split(separator: "\n").first { $0.hasPrefix("  \(usage)  ") },
            "help lists no '\(usage)'")
        #expect(
            line.dropFirst(2 + usage.count).trimmingCharacters(in: .whitespaces) == summary)
    }
}
