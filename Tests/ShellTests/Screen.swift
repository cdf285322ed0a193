import Appliance
import ControlAPI
import ShellSession

@testable import Shell

/// A small VT100 screen, enough to replay what the line editor writes: printable text
/// overwrites at the cursor, CR, LF, BS, BEL, CSI n C / n D (cursor right/left), CSI K (erase
/// to end of line), CSI H + CSI 2 J (clear). Anything else fails the test that fed it.
struct Screen {
    /// Written cells; nil where nothing is (erased or never written).
    var rows: [[Unicode.Scalar?]] = [[]]
    var row = 0
    var column = 0
    var unknown: [String] = []
    /// The rightmost column ever written, 0-based: what a terminal of that width would wrap.
    var widest = -1

    private var pending: [UInt8] = []

    mutating func apply(_ bytes: [UInt8]) {
        pending += bytes
        var index = 0
        while index < pending.count {
            let byte = pending[index]
            switch byte {
            case 0x1B:
                guard index + 1 < pending.count else {
                    pending = Array(pending[index...])
                    return
                }
                guard pending[index + 1] == UInt8(ascii: "[") else {
                    unknown.append("ESC \(pending[index + 1])")
                    index += 2
                    continue
                }
                var end = index + 2
                while end < pending.count, !(0x40...0x7E).contains(pending[end]) { end += 1 }
                guard end < pending.count else {
                    pending = Array(pending[index...])
                    return
                }
                let parameters = String(decoding: pending[(index + 2)..<end], as: UTF8.self)
                let final = Character(Unicode.Scalar(pending[end]))
                let count = Int(parameters) ?? 1
                switch (final, parameters) {
                case ("C", _): column += count
                case ("D", _): column = max(0, column - count)
                case ("K", ""):
                    if rows[row].count > column { rows[row].removeSubrange(column...) }
                case ("H", ""):
                    row = 0
                    column = 0
                case ("J", "2"): rows = [[]]
                default: unknown.append("CSI \(parameters)\(final)")
                }
                index = end + 1
            case 0x0D:
                column = 0
                index += 1
            case 0x0A:
                row += 1
                if rows.count <= row { rows.append([]) }
                index += 1
            case 0x08:
                column = max(0, column - 1)
                index += 1
            case 0x07:
                index += 1
            case 0x00..<0x20, 0x7F:
                unknown.append("control \(byte)")
                index += 1
            default:
                let length =
                    byte < 0x80 ? 1 : byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2
                guard index + length <= pending.count else {
                    pending = Array(pending[index...])
                    return
                }
                let scalar = String(decoding: pending[index..<(index + length)], as: UTF8.self)
                    .unicodeScalars.first!
                while rows[row].count <= column { rows[row].append(nil) }
                rows[row][column] = scalar
                widest = max(widest, column)
                column += 1
                index += length
            }
        }
        pending = []
    }

    /// The current row as text, up to its last written cell; nil cells inside show as '·'.
    var currentLine: String {
        var text = ""
        let cells = rows[row]
        let last = cells.lastIndex { $0 != nil } ?? -1
        for cell in cells.prefix(last + 1) { text.unicodeScalars.append(cell ?? "·") }
        return text
    }
}
