import Testing

@testable import Shell

private let tree = CommandTree.appliance

@Suite("? help and Tab completion")
struct HelpTests {
    @Test func questionMarkAtTheStartListsEveryFirstKeyword() throws {
        let entries = try tree.help(before: "")
        #expect(
            entries.map(\.token) == [
                "add", "bind", "clear", "exit", "help", "ping", "remove", "set", "show",
                "traceroute", "unbind",
            ])
        #expect(entries.first == HelpEntry("add", "Add a setting or an entry"))
    }

    @Test func questionMarkAfterAbbreviationListsTheNextTokens() throws {
        let entries = try tree.help(before: "sh ")
        #expect(
            entries == [
                HelpEntry("hostname", "The appliance's host name"),
                HelpEntry("log", "The appliance's log"),
                HelpEntry("network", "Host networking: interfaces, routes, DNS, NTP"),
                HelpEntry("running-config", "The commands that rebuild the current configuration"),
                HelpEntry("switch", "The VTEP gateway"),
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
        // `sh net int` ends `show network interfaces` or goes on to an interface name.
        #expect(
            try tree.help(before: "sh net int ")
                == [HelpEntry("IF", "Interface name"), HelpEntry("<cr>", "Run the command")])
    }

    @Test func questionMarkAfterBadInputNamesIt() {
        #expect(
            throws: ParseError.invalidInput(
                token: "shw", column: 1,
                reason:
                    "expected one of: add, bind, clear, exit, help, ping, remove, set, show, traceroute, unbind"
            )
        ) {
            try tree.help(before: "shw ")
        }
        #expect(
            throws: ParseError.invalidInput(
                token: "vx", column: 5,
                reason: "expected one of: hostname, log, network, running-config, switch, version")
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
                "add", "bind", "clear", "exit", "help", "ping", "remove", "set", "show",
                "traceroute", "unbind",
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
