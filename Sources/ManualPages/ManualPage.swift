/// A manual page in man(7)'s roff, written from sections of prose, tagged items and examples.
/// The pages of vtepd(8), vtepd.conf(5) and vtepsh(1) are built from the programs' own
/// sources (their option parsers, the shell's command declarations, the bootstrap settings),
/// so a page never drifts from what it documents; `DocumentationTests` compare docs/man/ with
/// what the programs print.
public struct ManualPage: Sendable, Equatable {
    /// The page's name, as `man NAME` finds it: `vtepd`, `vtepd.conf`.
    public var name: String
    /// The manual section: "1" (user commands), "5" (file formats), "8" (system administration).
    public var section: String
    /// The one line after the name in NAME, as apropos(1) shows it.
    public var summary: String
    /// Centre footer: the product and its version.
    public var source: String
    /// Synopsis lines, each a command line or a file path; bold as man-pages(7) asks.
    public var synopsis: [String]
    public var sections: [ManualSection]

    public init(
        name: String, section: String, summary: String, source: String, synopsis: [String],
        sections: [ManualSection]
    ) {
        self.name = name
        self.section = section
        self.summary = summary
        self.source = source
        self.synopsis = synopsis
        self.sections = sections
    }

    /// The page as man(7) source. No date (the page is generated and compared byte for byte; a
    /// date would make every build's page differ).
    public var roff: String {
        var lines = [
            ".\\\" Generated from the program's sources; do not edit. See docs/contributing.md.",
            ".TH \(Self.quoted(name.uppercased())) \(section) \"\" \(Self.quoted(source)) "
                + Self.quoted(Self.manualTitles[section] ?? "VTEP Gateway Manual"),
            ".SH NAME",
            "\(Self.escaped(name)) \\- \(Self.escaped(Self.nameLine(summary)))",
            ".SH SYNOPSIS",
        ]
        for (index, line) in synopsis.enumerated() {
            if index > 0 { lines.append(".br") }
            lines.append(".B \(Self.escaped(line))")
        }
        for section in sections {
            lines.append(".SH \(Self.escaped(section.heading.uppercased()))")
            var previousWasTagged = false
            for block in section.blocks {
                switch block {
                case .paragraph(let text):
                    if previousWasTagged || lines.last?.hasPrefix(".SH") == false {
                        lines.append(".PP")
                    }
                    lines.append(Self.escaped(text))
                    previousWasTagged = false
                case .tagged(let tag, let text):
                    lines += [".TP", ".B \(Self.escaped(tag))", Self.escaped(text)]
                    previousWasTagged = true
                case .example(let exampleLines):
                    lines += [".PP", ".nf", ".RS 4"]
                    lines += exampleLines.map(Self.escaped)
                    lines += [".RE", ".fi"]
                    previousWasTagged = false
                case .subheading(let text):
                    lines.append(".SS \(Self.escaped(text))")
                    previousWasTagged = false
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// NAME's description as man-pages(7) writes it: no final period, lower case unless it
    /// starts with an acronym ("The VTEP gateway appliance shell." → "the VTEP gateway …").
    static func nameLine(_ summary: String) -> String {
        var text = summary.hasSuffix(".") ? String(summary.dropLast()) : summary
        let letters = Array(text.prefix(2))
        if letters.count == 2, letters[0].isUppercase, letters[1].isLowercase {
            text = text.prefix(1).lowercased() + text.dropFirst()
        }
        return text
    }

    static let manualTitles = [
        "1": "User Commands", "5": "File Formats Manual", "8": "System Manager's Manual",
    ]

    /// Text as roff reads it literally: a backslash is `\e`; a line starting with `.` or `'`
    /// (a request) is guarded by `\&`; a hyphen that starts a word (an option's `-`, `--`) is
    /// `\-`, a minus sign man(7) keeps unbroken and copyable, while hyphens inside words stay
    /// hyphens.
    public static func escaped(_ text: String) -> String {
        var result = ""
        var previous: Character? = nil
        for character in text {
            switch character {
            case "\\": result += "\\e"
            case "-"
            where previous == nil || previous == "-" || !(previous!.isLetter || previous!.isNumber):
                result += "\\-"
            case "\n": result += " "
            default: result.append(character)
            }
            previous = character
        }
        if result.hasPrefix(".") || result.hasPrefix("'") { result = "\\&" + result }
        return result
    }

    private static func quoted(_ text: String) -> String {
        "\"" + escaped(text).replacingOccurrences(of: "\"", with: "\\(dq") + "\""
    }
}

/// One `.SH` section of a page.
public struct ManualSection: Sendable, Equatable {
    public var heading: String
    public var blocks: [ManualBlock]

    public init(_ heading: String, _ blocks: [ManualBlock]) {
        self.heading = heading
        self.blocks = blocks
    }
}

public enum ManualBlock: Sendable, Equatable {
    /// A paragraph, filled by the formatter.
    case paragraph(String)
    /// A tagged paragraph: an option, a key or a command, and what it does.
    case tagged(String, String)
    /// Lines shown as typed, unfilled and indented.
    case example([String])
    /// A `.SS` heading inside the section.
    case subheading(String)
}
