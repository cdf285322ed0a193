/// Text for the shell's terminal: error lines, `?` listings, label/value blocks, and the
/// conversion to the bytes a raw-mode terminal needs.
///
/// Tables (`show switch mac-table`…) use `TextTable` of the Appliance module, which renders
/// the control socket's reports; this module only adds what the shell itself prints.
public enum TerminalText {
    /// The bytes for a terminal in raw mode: each `\n` becomes `\r\n` (no tty layer adds the
    /// carriage return), and other control characters are shown as escapes, so that text
    /// from elsewhere (a database row, a host name) cannot move the cursor or retitle the
    /// terminal.
    public static func bytes(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.offset > 0 { bytes += [0x0D, 0x0A] }
            var shown = ""
            for scalar in line.element.unicodeScalars {
                if scalar == "\t" || !isControl(scalar) {
                    shown.unicodeScalars.append(scalar)
                } else {
                    shown += visible(String(scalar))
                }
            }
            bytes += Array(shown.utf8)
        }
        return bytes
    }

    /// An error as the shell prints it, `% ` first as on Cisco IOS and the NSX appliances,
    /// one line.
    public static func errorLine(_ message: String) -> String {
        let text = visible(message)
        return (text.hasPrefix("% ") ? text : "% " + text) + "\n"
    }

    /// A `^` under the offending column of a line typed after a prompt `promptWidth` wide.
    public static func marker(column: Int, promptWidth: Int) -> String {
        String(repeating: " ", count: max(0, promptWidth + column - 1)) + "^\n"
    }

    /// `?` output: two spaces, the token padded to the widest, two spaces, its help.
    public static func helpList(_ entries: [HelpEntry]) -> String {
        let width = entries.map(\.token.count).max() ?? 0
        return entries.map { entry in
            "  " + entry.token + String(repeating: " ", count: width - entry.token.count) + "  "
                + entry.help + "\n"
        }.joined()
    }

    /// `show network interface eth0` style: one `Label: value` line each, values aligned.
    public static func details(_ rows: [(label: String, value: String)]) -> String {
        let width = rows.map(\.label.count).max() ?? 0
        return rows.map { row in
            row.label + ":" + String(repeating: " ", count: width - row.label.count + 1)
                + row.value + "\n"
        }.joined()
    }
}
