import Foundation

/// What the documentation tests read of Markdown: shell examples, relative links and the
/// anchors GitHub gives headings. Fenced code blocks hold no links or headings.
enum Markdown {
    struct Example: Equatable {
        var line: String
        var lineNumber: Int
    }

    struct Link: Equatable {
        var target: String
        var lineNumber: Int
    }

    /// The convention of the docs: in a ```` ```vtepsh ```` block, a line that starts with a
    /// prompt (`gw1> `) is a command as typed on the appliance, a trailing comment after two
    /// blanks (`  # …`) left out; other lines are the output it shows.
    static func shellExamples(in text: String) -> [Example] {
        var examples: [Example] = []
        var inBlock = false
        for (index, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") {
                inBlock = !inBlock && line == "```vtepsh"
                continue
            }
            guard inBlock, let prompt = line.range(of: "> "),
                line[..<prompt.lowerBound].allSatisfy({
                    $0.isLetter || $0.isNumber || $0 == "-" || $0 == "."
                }), prompt.lowerBound != line.startIndex
            else { continue }
            var command = String(line[prompt.upperBound...])
            if let comment = command.range(of: "  #") {
                command = String(command[..<comment.lowerBound])
            }
            examples.append(
                Example(line: command.trimmingCharacters(in: .whitespaces), lineNumber: index + 1))
        }
        return examples
    }

    /// Lines outside fenced code blocks: as written, and with inline code spans blanked.
    static func prose(_ text: String) -> [(raw: String, line: String, number: Int)] {
        var lines: [(String, String, Int)] = []
        var fenced = false
        for (index, raw) in text.components(separatedBy: "\n").enumerated() {
            if raw.trimmingCharacters(in: .whitespaces).hasPrefix("```") {
                fenced.toggle()
                continue
            }
            if fenced { continue }
            var line = ""
            var inCode = false
            for character in raw {
                if character == "`" { inCode.toggle() }
                line.append(inCode || character == "`" ? " " : character)
            }
            lines.append((raw, line, index + 1))
        }
        return lines
    }

    /// Targets of `[text](target)` and `![alt](target)`.
    static func links(in text: String) -> [Link] {
        var links: [Link] = []
        for (_, line, number) in prose(text) {
            var rest = line[...]
            while let open = rest.range(of: "](") {
                let after = rest[open.upperBound...]
                guard let close = after.firstIndex(of: ")") else { break }
                let target = after[..<close].split(separator: " ").first.map(String.init) ?? ""
                if !target.isEmpty { links.append(Link(target: target, lineNumber: number)) }
                rest = after[close...]
            }
        }
        return links
    }

    /// The anchors of the headings, as GitHub makes them: lower case, punctuation but `-` and
    /// `_` removed, blanks as `-`; a repeated one gets `-1`, `-2`.
    static func anchors(in text: String) -> [String] {
        var seen: [String: Int] = [:]
        var anchors: [String] = []
        for (line, _, _) in prose(text) where line.hasPrefix("#") {
            let title = line.drop { $0 == "#" }
            guard title.first == " " else { continue }
            let slug = String(
                title.trimmingCharacters(in: .whitespaces).lowercased().compactMap {
                    character -> Character? in
                    if character == " " { return "-" }
                    return character.isLetter || character.isNumber || character == "-"
                        || character == "_" ? character : nil
                })
            let count = seen[slug, default: 0]
            seen[slug] = count + 1
            anchors.append(count == 0 ? slug : "\(slug)-\(count)")
        }
        return anchors
    }
}
