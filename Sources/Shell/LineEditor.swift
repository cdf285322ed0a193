/// The shell's line editor: fed the bytes a terminal sends, it keeps the line being typed and
/// produces the bytes that make a VT100/xterm screen show it. No I/O of its own, so it runs
/// the same over a pty and in tests in memory (and is our own, not GPL readline).
///
/// Use: `startLine(prompt:)` shows a prompt; `feed(_:)` queues input; `nextEvent()` edits
/// until the line is done (Enter, Ctrl-C, Ctrl-D on an empty line) and returns that event, or
/// nil when the queued input is used up. After an event, input stays queued until the next
/// `startLine`, so typed-ahead lines wait for the command's output. `takeOutput()` drains the
/// screen bytes.
///
/// Keys (emacs bindings as in bash and Cisco IOS): printable text inserts at the cursor;
/// Backspace (0x7f, 0x08); Left/Right/Home/End in their CSI (`ESC [ D`, `ESC [ 1 ~`…) and SS3
/// (`ESC O D`…) forms; Delete (`ESC [ 3 ~`); Ctrl-A/E home/end, Ctrl-B/F left/right, Ctrl-K
/// kill to end, Ctrl-U kill to start, Ctrl-W kill the word before the cursor, Ctrl-L redraw;
/// Up/Down (and Ctrl-P/N) walk the history; Tab completes and `?` lists what may come next,
/// in command mode; Alt-b/Alt-f and Ctrl-Left/Ctrl-Right (also Alt-Left/Alt-Right) move by
/// word; Ctrl-R searches the history backwards as bash does (type to narrow, Ctrl-R again for
/// an older match, Enter runs it, Ctrl-G or Ctrl-C gives up, any other key edits it).
///
/// The screen model: one column per Unicode scalar, so wide (CJK) characters and combining
/// marks are shown misplaced; command lines are ASCII in practice. With `width` set (the
/// terminal's columns) a line longer than the terminal scrolls sideways within one row, as
/// on IOS and vtysh: `$` at either end marks text out of view, and the line is redrawn
/// whole after each key. `width` 0 (tests' default) draws incrementally with no limit.
public struct LineEditor {
    public enum Mode: Hashable, Sendable {
        /// A shell command: `?` and Tab help, the line goes into the history.
        case command
        /// Free text (a confirmation): `?` is a character, no history.
        case text
        /// A password: nothing is echoed, no history.
        case secret
    }

    public enum Event: Hashable, Sendable {
        /// Enter: the line as typed.
        case line(String)
        /// Ctrl-C: the line was abandoned.
        case cancelled
        /// Ctrl-D on an empty line: the user is done (exit).
        case endOfInput
    }

    private enum Escape {
        case none
        case escape
        case controlSequence([UInt8])
        /// The rest of a sequence too long to be a key, up to its final byte.
        case discarding
        case singleShift
    }

    public let tree: any CommandGrammar
    /// The most lines the history keeps; the oldest go first.
    public let historyLimit: Int
    public private(set) var history: [String] = []
    /// Malformed input thrown away: invalid UTF-8, C1 controls, overlong escape sequences.
    public private(set) var droppedBytes = 0

    private var buffer: [Unicode.Scalar] = []
    private var cursorIndex = 0
    private var prompt = ""
    private var mode = Mode.command
    private var active = false
    private var input: [UInt8] = []
    private var inputStart = 0
    private var output: [UInt8] = []
    private var escape = Escape.none
    private var pendingUTF8: [UInt8] = []
    private var expectedUTF8 = 0
    private var afterCarriageReturn = false
    private var historyIndex: Int?
    private var draft: [Unicode.Scalar] = []
    /// Ctrl-R: the text searched for, the history index of the match shown, and the line
    /// that was being edited before.
    private var search: (query: [Unicode.Scalar], match: Int?, saved: [Unicode.Scalar])?

    /// The terminal's width in columns; 0: unknown, draw without a limit. The session sets
    /// it from TIOCGWINSZ and again on SIGWINCH (`resize`).
    public private(set) var width = 0
    /// The first scalar of the line in view when it scrolls sideways.
    private var scroll = 0
    /// What the screen shows of the line, to redraw only after a change.
    private var drawn: (text: [Unicode.Scalar], cursor: Int)?

    /// Longest control sequence kept; anything longer is garbage, not a key.
    private static let maximumSequence = 16

    public init(tree: any CommandGrammar, historyLimit: Int = 500) {
        precondition(historyLimit > 0, "the history must hold at least one line")
        self.tree = tree
        self.historyLimit = historyLimit
    }

    /// The line being edited.
    public var line: String {
        var text = ""
        text.unicodeScalars.append(contentsOf: buffer)
        return text
    }

    /// The cursor's position in the line, in Unicode scalars.
    public var cursor: Int { cursorIndex }

    /// Whether Ctrl-R's reverse search is on.
    public var isSearching: Bool { search != nil }

    /// Whether a prompt is shown and input is being edited.
    public var isEditing: Bool { active }

    /// Shows `prompt` and starts an empty line.
    public mutating func startLine(prompt: String, mode: Mode = .command) {
        self.prompt = prompt
        self.mode = mode
        buffer = []
        cursorIndex = 0
        historyIndex = nil
        search = nil
        scroll = 0
        active = true
        output += Array(prompt.utf8)
        drawn = (Array(prompt.unicodeScalars), prompt.unicodeScalars.count)
    }

    /// The terminal is now `columns` wide (SIGWINCH): the line is drawn again to fit.
    public mutating func resize(columns: Int) {
        width = max(columns, 0)
        drawn = nil
        if active { redraw() }
    }

    /// Lines typed in earlier sessions, oldest first (the newest `historyLimit` are kept).
    public mutating func loadHistory(_ lines: [String]) {
        history = Array(lines.filter { !$0.isEmpty }.suffix(historyLimit))
    }

    /// Queues input bytes; a key split across two calls (an escape sequence, a UTF-8
    /// character) is put together.
    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        input.append(contentsOf: bytes)
    }

    /// Appends text to the screen output as it is (the caller's command output).
    public mutating func write(_ bytes: some Sequence<UInt8>) {
        output.append(contentsOf: bytes)
    }

    /// The screen bytes produced since the last call.
    public mutating func takeOutput() -> [UInt8] {
        defer { output.removeAll(keepingCapacity: true) }
        return output
    }

    /// Edits with the queued input until the line is done; nil when the input ran out first
    /// or no line is being edited.
    public mutating func nextEvent() -> Event? {
        defer {
            if inputStart == input.count {
                input.removeAll(keepingCapacity: true)
                inputStart = 0
            }
        }
        while active, inputStart < input.count {
            let byte = input[inputStart]
            inputStart += 1
            if let event = process(byte) {
                active = false
                return event
            }
            if width > 0, case .none = escape, pendingUTF8.isEmpty { redraw() }
        }
        return nil
    }

    // MARK: - Decoding

    private mutating func process(_ byte: UInt8) -> Event? {
        if afterCarriageReturn {
            afterCarriageReturn = false
            // A terminal may send CR LF or CR NUL (RFC 854) for one Enter.
            if byte == 0x0A || byte == 0x00 { return nil }
        }
        switch escape {
        case .none: break
        case .escape:
            switch byte {
            case UInt8(ascii: "["): escape = .controlSequence([])
            case UInt8(ascii: "O"): escape = .singleShift
            case 0x1B: break
            case UInt8(ascii: "b"):
                escape = .none
                wordLeft()
            case UInt8(ascii: "f"):
                escape = .none
                wordRight()
            default: escape = .none  // Other Meta-key combinations: none bound.
            }
            return nil
        case .controlSequence(var parameters):
            switch byte {
            case 0x40...0x7E:
                escape = .none
                controlSequence(parameters, final: byte)
            case 0x20...0x3F where parameters.count < Self.maximumSequence:
                parameters.append(byte)
                escape = .controlSequence(parameters)
            case 0x20...0x3F:
                escape = .discarding
                droppedBytes += parameters.count + 3
            default:
                // ECMA-48 allows only 0x20–0x7E inside a sequence; drop it and what came so far.
                escape = .none
                droppedBytes += parameters.count + 3
            }
            return nil
        case .discarding:
            droppedBytes += 1
            if !(0x20...0x3F).contains(byte) { escape = .none }
            return nil
        case .singleShift:
            escape = .none
            singleShift(byte)
            return nil
        }
        if search != nil, pendingUTF8.isEmpty, searchTook(byte) { return nil }
        if !pendingUTF8.isEmpty {
            if byte & 0xC0 == 0x80 {
                pendingUTF8.append(byte)
                if pendingUTF8.count == expectedUTF8 { finishUTF8() }
                return nil
            }
            droppedBytes += pendingUTF8.count
            pendingUTF8.removeAll()
        }
        switch byte {
        case 0x01: moveHome()
        case 0x02: moveLeft()
        case 0x03: return cancel()
        case 0x04:
            if buffer.isEmpty { return endOfInput() }
            deleteForward()
        case 0x05: moveEnd()
        case 0x06: moveRight()
        case 0x08, 0x7F: deleteBackward()
        case 0x09: if mode == .command { complete() }
        case 0x0A: return enter()
        case 0x0B: killToEnd()
        case 0x0C: clearScreen()
        case 0x0D:
            afterCarriageReturn = true
            return enter()
        case 0x0E: historyNext()
        case 0x10: historyPrevious()
        case 0x12: if mode == .command { startSearch() }
        case 0x15: killToStart()
        case 0x17: killWord()
        case 0x1B: escape = .escape
        case UInt8(ascii: "?") where mode == .command: help()
        case 0x20...0x7E: insert([Unicode.Scalar(byte)])
        case 0xC2...0xDF: beginUTF8(byte, length: 2)
        case 0xE0...0xEF: beginUTF8(byte, length: 3)
        case 0xF0...0xF4: beginUTF8(byte, length: 4)
        case 0x80...0xFF: droppedBytes += 1
        default: break  // Other C0 controls have no binding.
        }
        return nil
    }

    private mutating func beginUTF8(_ byte: UInt8, length: Int) {
        pendingUTF8 = [byte]
        expectedUTF8 = length
    }

    private mutating func finishUTF8() {
        defer { pendingUTF8.removeAll() }
        // Validation refuses overlong forms and surrogates (RFC 3629 §3).
        guard let text = String(validating: pendingUTF8, as: UTF8.self),
            let scalar = text.unicodeScalars.first, !isControl(scalar)
        else {
            droppedBytes += pendingUTF8.count
            return
        }
        insert([scalar])
    }

    /// ECMA-48 control sequences as xterm sends them for the editing keys.
    private mutating func controlSequence(_ parameters: [UInt8], final: UInt8) {
        switch (parameters, final) {
        case ([], UInt8(ascii: "A")): historyPrevious()
        case ([], UInt8(ascii: "B")): historyNext()
        case ([], UInt8(ascii: "C")): moveRight()
        case ([], UInt8(ascii: "D")): moveLeft()
        case ([], UInt8(ascii: "H")): moveHome()
        case ([], UInt8(ascii: "F")): moveEnd()
        // Ctrl- and Alt-Left/Right (xterm's modifier parameters 5 and 3): a word.
        case (Array("1;5".utf8), UInt8(ascii: "D")), (Array("1;3".utf8), UInt8(ascii: "D")):
            wordLeft()
        case (Array("1;5".utf8), UInt8(ascii: "C")), (Array("1;3".utf8), UInt8(ascii: "C")):
            wordRight()
        case (_, UInt8(ascii: "~")):
            switch parameters {
            case [UInt8(ascii: "1")], [UInt8(ascii: "7")]: moveHome()
            case [UInt8(ascii: "4")], [UInt8(ascii: "8")]: moveEnd()
            case [UInt8(ascii: "3")]: deleteForward()
            default: break
            }
        default: break  // Function keys, modified arrows, reports: not bound.
        }
    }

    /// SS3 forms, sent in the terminal's application cursor mode.
    private mutating func singleShift(_ final: UInt8) {
        switch final {
        case UInt8(ascii: "A"): historyPrevious()
        case UInt8(ascii: "B"): historyNext()
        case UInt8(ascii: "C"): moveRight()
        case UInt8(ascii: "D"): moveLeft()
        case UInt8(ascii: "H"): moveHome()
        case UInt8(ascii: "F"): moveEnd()
        default: break
        }
    }

    // MARK: - Editing

    private mutating func insert(_ scalars: [Unicode.Scalar]) {
        let at = cursorIndex
        buffer.insert(contentsOf: scalars, at: at)
        cursorIndex += scalars.count
        showTail(from: at, erase: false)
    }

    private mutating func deleteBackward() {
        guard cursorIndex > 0 else { return }
        cursorIndex -= 1
        buffer.remove(at: cursorIndex)
        emitLeft(1)
        showTail(from: cursorIndex, erase: true)
    }

    private mutating func deleteForward() {
        guard cursorIndex < buffer.count else { return }
        buffer.remove(at: cursorIndex)
        showTail(from: cursorIndex, erase: true)
    }

    private mutating func moveLeft() {
        guard cursorIndex > 0 else { return }
        cursorIndex -= 1
        emitLeft(1)
    }

    private mutating func moveRight() {
        guard cursorIndex < buffer.count else { return }
        cursorIndex += 1
        emitRight(1)
    }

    private mutating func moveHome() {
        emitLeft(cursorIndex)
        cursorIndex = 0
    }

    private mutating func moveEnd() {
        emitRight(buffer.count - cursorIndex)
        cursorIndex = buffer.count
    }

    private mutating func killToEnd() {
        guard cursorIndex < buffer.count else { return }
        buffer.removeSubrange(cursorIndex...)
        if width == 0, mode != .secret { emit("\u{1B}[K") }
    }

    /// Alt-b: to the start of this word or the one before.
    private mutating func wordLeft() {
        var index = cursorIndex
        while index > 0, buffer[index - 1] == " " { index -= 1 }
        while index > 0, buffer[index - 1] != " " { index -= 1 }
        emitLeft(cursorIndex - index)
        cursorIndex = index
    }

    /// Alt-f: to the end of this word or the next.
    private mutating func wordRight() {
        var index = cursorIndex
        while index < buffer.count, buffer[index] == " " { index += 1 }
        while index < buffer.count, buffer[index] != " " { index += 1 }
        emitRight(index - cursorIndex)
        cursorIndex = index
    }

    private mutating func killToStart() {
        guard cursorIndex > 0 else { return }
        buffer.removeSubrange(..<cursorIndex)
        emitLeft(cursorIndex)
        cursorIndex = 0
        showTail(from: 0, erase: true)
    }

    /// Ctrl-W as bash's unix-word-rubout: spaces before the cursor, then the word before them.
    private mutating func killWord() {
        var start = cursorIndex
        while start > 0, buffer[start - 1] == " " { start -= 1 }
        while start > 0, buffer[start - 1] != " " { start -= 1 }
        guard start < cursorIndex else { return }
        buffer.removeSubrange(start..<cursorIndex)
        emitLeft(cursorIndex - start)
        cursorIndex = start
        showTail(from: start, erase: true)
    }

    private mutating func clearScreen() {
        emit("\u{1B}[H\u{1B}[2J")
        showLine()
    }

    private mutating func historyPrevious() {
        guard mode == .command, !history.isEmpty else { return }
        let index = historyIndex ?? history.count
        guard index > 0 else { return }
        if historyIndex == nil { draft = buffer }
        historyIndex = index - 1
        replaceLine(with: Array(history[index - 1].unicodeScalars))
    }

    private mutating func historyNext() {
        guard let index = historyIndex else { return }
        if index + 1 < history.count {
            historyIndex = index + 1
            replaceLine(with: Array(history[index + 1].unicodeScalars))
        } else {
            historyIndex = nil
            replaceLine(with: draft)
        }
    }

    private mutating func replaceLine(with scalars: [Unicode.Scalar]) {
        emitLeft(cursorIndex)
        buffer = scalars
        cursorIndex = buffer.count
        showTail(from: 0, erase: true)
    }

    // MARK: - Reverse search (Ctrl-R)

    private mutating func startSearch() {
        guard search == nil else { return }
        search = ([], nil, buffer)
        showSearch()
    }

    /// A key while searching: true when the search took it. Keys it does not take end it
    /// with the match in the line, then act as usual (Enter runs the match).
    private mutating func searchTook(_ byte: UInt8) -> Bool {
        guard var current = search else { return false }
        switch byte {
        case 0x12:  // Ctrl-R: an older match of the same text.
            current.match =
                find(current.query, before: current.match)
                ?? current.match
            search = current
        case 0x07, 0x03:  // Ctrl-G, Ctrl-C: back to the line as it was.
            search = nil
            buffer = current.saved
            cursorIndex = buffer.count
            drawn = nil
            emit("\r\u{1B}[K")
            showLine()
            return true
        case 0x08, 0x7F:
            if !current.query.isEmpty { current.query.removeLast() }
            current.match = find(current.query, before: nil)
            search = current
        case 0x20...0x7E:
            current.query.append(Unicode.Scalar(byte))
            current.match = find(current.query, atOrBefore: current.match)
            search = current
        default:
            // Accept the match into the line and let the key act on it (Enter runs it).
            search = nil
            buffer = current.match.map { Array(history[$0].unicodeScalars) } ?? current.saved
            cursorIndex = buffer.count
            drawn = nil
            emit("\r\u{1B}[K")
            showLine()
            return false
        }
        showSearch()
        return true
    }

    /// The newest history line before `index` (nil: from the newest) containing `query`.
    private func find(_ query: [Unicode.Scalar], before index: Int?) -> Int? {
        let text = String(String.UnicodeScalarView(query))
        let end = index ?? history.count
        return (0..<end).last { text.isEmpty || history[$0].contains(text) }
    }

    /// As `find`, but `index` itself may still match (the query grew).
    private func find(_ query: [Unicode.Scalar], atOrBefore index: Int?) -> Int? {
        find(query, before: index.map { $0 + 1 })
    }

    private mutating func showSearch() {
        guard let current = search else { return }
        let query = String(String.UnicodeScalarView(current.query))
        let match = current.match.map { history[$0] } ?? ""
        var text = "(reverse-i-search)`\(query)': \(match)"
        if width > 1, text.unicodeScalars.count >= width {
            text = String(String.UnicodeScalarView(text.unicodeScalars.prefix(width - 1)))
        }
        emit("\r\u{1B}[K" + text)
        drawn = nil
    }

    // MARK: - Line events

    private mutating func enter() -> Event {
        emit("\r\n")
        let text = line
        if mode == .command, text.contains(where: { $0 != " " }), history.last != text {
            history.append(text)
            if history.count > historyLimit { history.removeFirst(history.count - historyLimit) }
        }
        return .line(text)
    }

    private mutating func cancel() -> Event {
        emit("^C\r\n")
        buffer = []
        cursorIndex = 0
        return .cancelled
    }

    private mutating func endOfInput() -> Event {
        emit("\r\n")
        return .endOfInput
    }

    // MARK: - Help and completion

    private mutating func help() {
        var text = ""
        text.unicodeScalars.append(contentsOf: buffer[..<cursorIndex])
        // Echoed only at the end of the line: in the middle it would overwrite a character
        // of the line left on the screen above the listing.
        emit(cursorIndex == buffer.count ? "?\r\n" : "\r\n")
        do {
            let entries = try tree.help(before: text)
            output += TerminalText.bytes(TerminalText.helpList(entries))
        } catch {
            output += TerminalText.bytes(error.description + "\n")
        }
        showLine()
    }

    private mutating func complete() {
        var text = ""
        text.unicodeScalars.append(contentsOf: buffer[..<cursorIndex])
        let completion = tree.complete(before: text)
        if !completion.insertion.isEmpty {
            insert(Array(completion.insertion.unicodeScalars))
        } else if !completion.candidates.isEmpty {
            emit("\r\n")
            output += TerminalText.bytes(completion.candidates.joined(separator: "  ") + "\n")
            showLine()
        } else {
            emit("\u{07}")
        }
    }

    // MARK: - Screen output

    /// The prompt and the whole line, the cursor put back where it is in the line; after
    /// anything that scrolled the line away.
    private mutating func showLine() {
        if width > 0 {
            drawn = nil
            redraw()
            return
        }
        output += Array(prompt.utf8)
        showTail(from: 0, erase: false)
    }

    /// With a width: the prompt and the part of the line in view, `$` where text is out of
    /// view, the cursor put where it belongs; nothing when the screen already shows that.
    private mutating func redraw() {
        guard width > 0, search == nil else { return }
        let promptScalars = Array(prompt.unicodeScalars)
        let text = mode == .secret ? [] : buffer
        let cursor = mode == .secret ? 0 : cursorIndex
        var view: [Unicode.Scalar]
        var column: Int
        // One column stays free: writing the last one would wrap on some terminals.
        let room = max(width - 1 - promptScalars.count, 8)
        if text.count <= room {
            scroll = 0
            view = text
            column = cursor
        } else {
            // Keep the cursor in view with a margin, `$` cells at the cut ends.
            if cursor < scroll + 1 { scroll = max(cursor - room / 2, 0) }
            if cursor > scroll + room - 2 {
                scroll = min(cursor - room + room / 2, text.count - room + 1)
            }
            scroll = max(0, min(scroll, max(text.count - room + 1, 0)))
            let end = min(scroll + room, text.count)
            view = Array(text[scroll..<end])
            if scroll > 0 { view[0] = "$" }
            if end < text.count { view[view.count - 1] = "$" }
            column = cursor - scroll
        }
        let screen = promptScalars + view
        let position = promptScalars.count + column
        if let drawn, drawn.text == screen, drawn.cursor == position { return }
        var bytes = "\r"
        bytes.unicodeScalars.append(contentsOf: screen)
        bytes += "\u{1B}[K\r"
        if position > 0 { bytes += "\u{1B}[\(position)C" }
        emit(bytes)
        drawn = (screen, position)
    }

    /// With the screen's cursor at `position`, rewrites the line from there to its end
    /// (erasing what is left of a longer old line) and moves the screen's cursor to the
    /// editor's.
    private mutating func showTail(from position: Int, erase: Bool) {
        guard mode != .secret, width == 0 else { return }
        for scalar in buffer[position...] { output += Array(String(scalar).utf8) }
        if erase { emit("\u{1B}[K") }
        emitLeft(buffer.count - cursorIndex)
    }

    private mutating func emitLeft(_ columns: Int) {
        guard mode != .secret, width == 0, columns > 0 else { return }
        emit(columns == 1 ? "\u{1B}[D" : "\u{1B}[\(columns)D")
    }

    private mutating func emitRight(_ columns: Int) {
        guard mode != .secret, width == 0, columns > 0 else { return }
        emit(columns == 1 ? "\u{1B}[C" : "\u{1B}[\(columns)C")
    }

    private mutating func emit(_ text: String) {
        output += Array(text.utf8)
    }
}
