/// Why a command line was refused. Each case names the offending token and its column
/// (1-based, in characters), and says what was expected, so the operator can fix the line
/// without reading a manual.
public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A token that matches nothing the command allows at its position.
    case invalidInput(token: String, column: Int, reason: String)
    /// An abbreviation that matches more than one keyword (or argument kind).
    case ambiguous(token: String, column: Int, candidates: [String])
    /// The line ended where the command needs more; `column` is one past its end.
    case incomplete(after: String, column: Int, expected: String)
    /// The line matched a command, whose own types refuse a value (`CommandRefusal`).
    case refused(reason: String)

    /// Where the problem is, 1-based, for a `^` marker under the line.
    public var column: Int {
        switch self {
        case .invalidInput(_, let column, _), .ambiguous(_, let column, _),
            .incomplete(_, let column, _):
            column
        case .refused: 1
        }
    }

    /// The message, in the `% ` style of Cisco IOS and the NSX appliances.
    public var description: String {
        switch self {
        case .invalidInput(let token, let column, let reason):
            "% Invalid input at '\(shortened(token))' (column \(column)): \(reason)"
        case .ambiguous(let token, let column, let candidates):
            "% Ambiguous input at '\(shortened(token))' (column \(column)): could be "
                + candidates.joined(separator: ", ")
        case .incomplete(let after, _, let expected):
            "% Incomplete command after '\(after)': expected \(expected)"
        case .refused(let reason): "% \(visible(reason))"
        }
    }
}

/// A token as an error message shows it: escaped, and cut to its first 40 characters with
/// its length when longer, so that a pasted screenful is not echoed back whole.
func shortened(_ token: String) -> String {
    guard token.count > 40 else { return visible(token) }
    return visible(String(token.prefix(40))) + "…(\(token.count) characters)"
}

/// Control characters shown as escapes, so that an error message cannot itself move the
/// cursor or clear the screen.
func visible(_ text: String) -> String {
    var shown = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": shown += "\\n"
        case "\r": shown += "\\r"
        case "\t": shown += "\\t"
        default:
            if isControl(scalar) {
                shown += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                shown.unicodeScalars.append(scalar)
            }
        }
    }
    return shown
}

/// C0, DEL, C1 and the Unicode line and paragraph separators: never part of a token.
func isControl(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .control, .lineSeparator, .paragraphSeparator: true
    default: false
    }
}

/// A builder's refusal of a value its command's types do not accept, in words.
public struct CommandRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
