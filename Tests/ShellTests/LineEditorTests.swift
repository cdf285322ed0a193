import Appliance
import ControlAPI
import PropertyBased
import PropertyChecks
import ShellSession
import Testing

@testable import Shell

private let esc = "\u{1B}"

/// Feeds `input` to a fresh editor showing `gw> ` and returns the events and every byte
/// written to the screen, as text.
private func session(
    _ input: [UInt8], mode: LineEditor.Mode = .command, editor: inout LineEditor
) -> (events: [LineEditor.Event], screen: String) {
    var events: [LineEditor.Event] = []
    editor.startLine(prompt: "gw> ", mode: mode)
    editor.feed(input)
    while let event = editor.nextEvent() {
        events.append(event)
        editor.startLine(prompt: "gw> ", mode: mode)
    }
    return (events, String(decoding: editor.takeOutput(), as: UTF8.self))
}

private func session(_ input: String, mode: LineEditor.Mode = .command) -> (
    events: [LineEditor.Event], screen: String, editor: LineEditor
) {
    var editor = LineEditor(tree: CommandTree<ShellAction>.appliance)
    let (events, screen) = session(Array(input.utf8), mode: mode, editor: &editor)
    return (events, screen, editor)
}

@Suite("Line editor: bytes in, screen bytes out")
struct LineEditorTests {
    @Test func typingEchoes() {
        let run = session("show")
        #expect(run.screen == "gw> show")
        #expect(run.editor.line == "show")
        #expect(run.editor.cursor == 4)
        #expect(run.events.isEmpty)
    }

    @Test func insertInTheMiddleRewritesTheTail() {
        let run = session("ab\(esc)[DX")
        #expect(run.screen == "gw> ab\(esc)[DXb\(esc)[D")
        #expect(run.editor.line == "aXb")
        #expect(run.editor.cursor == 2)
    }

    @Test func backspaceBothCodes() {
        let atEnd = session("abc\u{7F}")
        #expect(atEnd.screen == "gw> abc\(esc)[D\(esc)[K")
        #expect(atEnd.editor.line == "ab")
        let inside = session("abc\(esc)[D\(esc)[D\u{08}")
        #expect(inside.screen == "gw> abc\(esc)[D\(esc)[D\(esc)[Dbc\(esc)[K\(esc)[2D")
        #expect(inside.editor.line == "bc")
        #expect(inside.editor.cursor == 0)
        let atStart = session("\u{7F}\u{08}a")
        #expect(atStart.screen == "gw> a")
    }

    @Test(
        "Home and End in every form",
        arguments: [
            "\(esc)[H", "\(esc)[1~", "\(esc)[7~", "\(esc)OH", "\u{01}",
        ])
    func home(key: String) {
        let run = session("abc" + key + "X")
        #expect(run.screen == "gw> abc\(esc)[3DXabc\(esc)[3D")
        #expect(run.editor.line == "Xabc")
        #expect(run.editor.cursor == 1)
    }

    @Test(
        "End in every form",
        arguments: ["\(esc)[F", "\(esc)[4~", "\(esc)[8~", "\(esc)OF", "\u{05}"])
    func end(key: String) {
        let run = session("abc\u{01}" + key + "X")
        #expect(run.screen == "gw> abc\(esc)[3D\(esc)[3CX")
        #expect(run.editor.line == "abcX")
    }

    @Test(
        "Left and Right in every form",
        arguments: [
            ("\(esc)[D", "\(esc)[C"), ("\(esc)OD", "\(esc)OC"), ("\u{02}", "\u{06}"),
        ])
    func leftRight(left: String, right: String) {
        let run = session("ab" + left + left + left + right + "X")
        // The third Left at column 0 and nothing else moves the cursor past the line.
        #expect(run.screen == "gw> ab\(esc)[D\(esc)[D\(esc)[CXb\(esc)[D")
        #expect(run.editor.line == "aXb")
        let pastEnd = session("ab" + right)
        #expect(pastEnd.screen == "gw> ab")
    }

    @Test func deleteKeyAndCtrlD() {
        let run = session("abc\u{01}\(esc)[3~")
        #expect(run.screen == "gw> abc\(esc)[3Dbc\(esc)[K\(esc)[2D")
        #expect(run.editor.line == "bc")
        let ctrlD = session("abc\u{01}\u{04}")
        #expect(ctrlD.editor.line == "bc")
        #expect(ctrlD.events.isEmpty)
        let atEnd = session("abc\(esc)[3~")
        #expect(atEnd.screen == "gw> abc")
    }

    @Test func ctrlDOnAnEmptyLineEndsInput() {
        let run = session("\u{04}")
        #expect(run.events == [.endOfInput])
        #expect(run.screen == "gw> \r\ngw> ")
    }

    @Test func killKeys() {
        let toEnd = session("show version\u{01}\(esc)[C\(esc)[C\u{0B}")
        #expect(toEnd.editor.line == "sh")
        #expect(toEnd.screen.hasSuffix("\(esc)[C\(esc)[C\(esc)[K"))
        let toStart = session("show version\(esc)[D\(esc)[D\u{15}")
        #expect(toStart.editor.line == "on")
        #expect(toStart.editor.cursor == 0)
        #expect(toStart.screen == "gw> show version\(esc)[D\(esc)[D\(esc)[10Don\(esc)[K\(esc)[2D")
        let word = session("show  version  \u{17}")
        #expect(word.editor.line == "show  ")
        #expect(word.screen == "gw> show  version  \(esc)[9D\(esc)[K")
        let twice = session("show version\u{17}\u{17}")
        #expect(twice.editor.line == "")
    }

    @Test func ctrlLRedrawsOnAClearScreen() {
        let run = session("abc\(esc)[D\u{0C}")
        #expect(run.screen == "gw> abc\(esc)[D\(esc)[H\(esc)[2Jgw> abc\(esc)[D")
    }

    @Test func enterYieldsTheLineAndTypeAheadWaitsForTheNextPrompt() {
        var editor = LineEditor(tree: CommandTree<ShellAction>.appliance)
        editor.startLine(prompt: "gw> ")
        editor.feed(Array("show version\r\nshow host".utf8))
        #expect(editor.nextEvent() == .line("show version"))
        #expect(String(decoding: editor.takeOutput(), as: UTF8.self) == "gw> show version\r\n")
        // Until the next prompt the rest stays queued: the command's output comes first.
        #expect(editor.nextEvent() == nil)
        #expect(editor.takeOutput().isEmpty)
        editor.write(Array("Version 1.0\r\n".utf8))
        editor.startLine(prompt: "gw> ")
        #expect(editor.nextEvent() == nil)
        #expect(editor.line == "show host")
        #expect(
            String(decoding: editor.takeOutput(), as: UTF8.self) == "Version 1.0\r\ngw> show host")
    }

    @Test(
        "CR, LF, CR LF and CR NUL are one Enter each", arguments: ["\r", "\n", "\r\n", "\r\u{0}"])
    func enterForms(enter: String) {
        let run = session("a" + enter + "b" + enter)
        #expect(run.events == [.line("a"), .line("b")])
        #expect(run.screen == "gw> a\r\ngw> b\r\ngw> ")
    }

    @Test func ctrlCCancels() {
        let run = session("show ver\u{03}")
        #expect(run.events == [.cancelled])
        #expect(run.screen == "gw> show ver^C\r\ngw> ")
        #expect(run.editor.line == "")
        #expect(run.editor.history.isEmpty)
    }

    @Test func historyUpDownWithoutConsecutiveDuplicates() {
        var editor = LineEditor(tree: CommandTree<ShellAction>.appliance, historyLimit: 3)
        _ = session(Array("show version\rshow version\rshow hostname\r   \r".utf8), editor: &editor)
        #expect(editor.history == ["show version", "show hostname"])
        _ = editor.takeOutput()
        editor.feed(Array("dra\(esc)[A".utf8))
        #expect(editor.nextEvent() == nil)
        #expect(editor.line == "show hostname")
        #expect(
            String(decoding: editor.takeOutput(), as: UTF8.self)
                == "dra\(esc)[3Dshow hostname\(esc)[K")
        editor.feed(Array("\(esc)OA\(esc)[A".utf8))
        _ = editor.nextEvent()
        #expect(editor.line == "show version")
        editor.feed(Array("\(esc)[B".utf8))
        _ = editor.nextEvent()
        #expect(editor.line == "show hostname")
        editor.feed(Array("\(esc)[B".utf8))
        _ = editor.nextEvent()
        #expect(editor.line == "dra")
        // Bounded: the oldest line goes.
        _ = editor.takeOutput()
        editor.feed(Array("\u{15}a\rb\rc\r".utf8))
        while editor.nextEvent() != nil { editor.startLine(prompt: "gw> ") }
        #expect(editor.history == ["a", "b", "c"])
    }

    @Test func questionMarkShowsHelpAndKeepsTheLine() {
        let run = session("sh?")
        #expect(
            run.screen
                == "gw> sh?\r\n"
                + "  show  Show configuration and state\r\n"
                + "gw> sh")
        #expect(run.editor.line == "sh")
        let complete = session("show version ?")
        #expect(
            complete.screen == "gw> show version ?\r\n  <cr>  Run the command\r\ngw> show version ")
        let inside = session("show version\u{01}\(esc)[C\(esc)[C?")
        // Help for the cursor's position ("sh"), then the whole line back, cursor in place.
        #expect(
            inside.screen
                == "gw> show version\(esc)[12D\(esc)[C\(esc)[C\r\n"
                + "  show  Show configuration and state\r\n"
                + "gw> show version\(esc)[10D")
        #expect(inside.editor.line == "show version")
        #expect(inside.editor.cursor == 2)
        let bad = session("shw ?")
        #expect(
            bad.screen
                == "gw> shw ?\r\n"
                + "% Invalid input at 'shw' (column 1): expected one of: add, bind, clear, copy, debug, exit, help, ping, reboot, remove, restart, set, show, terminal, trace, traceroute, unbind, update\r\n"
                + "gw> shw ")
    }

    @Test func tabCompletesOrLists() {
        let unique = session("sh\t")
        #expect(unique.screen == "gw> show ")
        #expect(unique.editor.line == "show ")
        let listed = session("s\t")
        #expect(listed.screen == "gw> s\r\nset  show\r\ngw> s")
        let nothing = session("show version \t")
        #expect(nothing.screen == "gw> show version \u{07}")
        let abbreviated = session("sh net dns-se\t")
        #expect(
            abbreviated.screen
                == "gw> sh net dns-se\r\ndns-search-domains  dns-servers\r\ngw> sh net dns-se")
    }

    @Test func secretModeEchoesNothing() {
        let run = session("pass?\u{7F}\u{7F}w\(esc)[Dord\t\r", mode: .secret)
        // `?` is a character here; Left still moves (unseen) and Tab does nothing.
        #expect(run.events == [.line("pasordw")])
        #expect(run.screen == "gw> \r\ngw> ")
        #expect(run.editor.history.isEmpty)
        let cancelled = session("secret\u{03}", mode: .secret)
        #expect(cancelled.screen == "gw> ^C\r\ngw> ")
    }

    @Test func textModeTakesQuestionMarksLiterally() {
        let run = session("yes?\r", mode: .text)
        #expect(run.events == [.line("yes?")])
        #expect(run.screen == "gw> yes?\r\ngw> ")
        #expect(run.editor.history.isEmpty)
    }

    @Test func keysSplitAcrossReadsAreJoined() {
        let whole = Array("ab\(esc)[Dé€😀\(esc)[3~\(esc)OH".utf8)
        var reference = LineEditor(tree: CommandTree<ShellAction>.appliance)
        let expected = session(whole, editor: &reference)
        for split in 1..<whole.count {
            var editor = LineEditor(tree: CommandTree<ShellAction>.appliance)
            editor.startLine(prompt: "gw> ")
            editor.feed(whole[..<split])
            #expect(editor.nextEvent() == nil)
            editor.feed(whole[split...])
            #expect(editor.nextEvent() == nil)
            #expect(String(decoding: editor.takeOutput(), as: UTF8.self) == expected.screen)
            #expect(editor.line == reference.line)
            #expect(editor.cursor == reference.cursor)
        }
        #expect(reference.line == "aé€😀")
        #expect(reference.cursor == 0)
    }

    @Test func malformedBytesAreCountedAndDropped() {
        var editor = LineEditor(tree: CommandTree<ShellAction>.appliance)
        // A stray continuation byte, 0xFF, an overlong "/" (C0 AF), an overlong 3-byte form,
        // a lead byte cut short by ASCII, a C1 control (U+0085), an unbound escape sequence
        // and one too long to be a key.
        let bytes: [UInt8] =
            [0x80, 0xFF, 0xC0, 0xAF, 0xE0, 0x80, 0x80, 0xC3, UInt8(ascii: "a"), 0xC2, 0x85]
            + Array("\(esc)[5~\(esc)[\(String(repeating: "1", count: 40))~".utf8)
        let run = session(bytes, editor: &editor)
        #expect(editor.line == "a")
        #expect(editor.droppedBytes == 1 + 1 + 2 + 3 + 1 + 2 + 43)
        #expect(run.events.isEmpty)
    }
}

/// A terminal of a known width: long lines scroll sideways in one row, Ctrl-R, word moves.
@Suite("Line editor on a terminal of a width")
struct LineEditorWidthTests {
    /// Feeds `bytes` one at a time, checking after each that nothing is written at or past
    /// the terminal's last column; returns the screen.
    static func run(_ editor: inout LineEditor, _ screen: inout Screen, _ bytes: [UInt8])
        -> [LineEditor.Event]
    {
        var events: [LineEditor.Event] = []
        for byte in bytes {
            editor.feed([byte])
            while let event = editor.nextEvent() {
                events.append(event)
                editor.startLine(prompt: "gw> ")
            }
            screen.apply(editor.takeOutput())
            if editor.width > 0 {
                #expect(screen.widest < editor.width - 1, "wrote column \(screen.widest)")
            }
        }
        return events
    }

    @Test func aLineWiderThanTheTerminalScrollsInOneRowAndEditsCleanly() {
        var editor = LineEditor(tree: CommandTree<ShellAction>.appliance)
        var screen = Screen()
        editor.resize(columns: 80)
        editor.startLine(prompt: "gw> ")
        let long = "set hostname " + String(repeating: "a", count: 187)
        _ = Self.run(&editor, &screen, Array(long.utf8))
        #expect(editor.line == long)
        // The end in view, `$` for what is cut off on the left, the cursor after the text.
        #expect(screen.currentLine.hasPrefix("gw> $aaa"), "\(screen.currentLine)")
        #expect(screen.currentLine.count <= 79)
        #expect(screen.column == screen.currentLine.count)
        #expect(screen.rows.count == 1, "one row, no wrapping")
        // Ctrl-A: the start in view, `$` for the rest.
        _ = Self.run(&editor, &screen, [0x01])
        #expect(screen.currentLine.hasPrefix("gw> set hostname aaa"))
        #expect(screen.currentLine.hasSuffix("$"))
        #expect(screen.column == 4)
        // Ctrl-K: the whole line gone from the screen too, not half of it.
        _ = Self.run(&editor, &screen, [0x0B])
        #expect(screen.currentLine == "gw> ")
        let events = Self.run(&editor, &screen, Array("show version\r".utf8))
        #expect(events == [.line("show version")])
        // Moving left through a long line keeps the cursor in view.
        _ = Self.run(&editor, &screen, Array(long.utf8) + Array(repeating: 0x02, count: 120))
        #expect(editor.cursor == long.count - 120)
        let column = screen.column
        #expect(column >= 4 && column < 79)
        #expect(screen.rows[screen.row][column] == "a")
        // A narrower terminal (SIGWINCH): drawn again within it.
        editor.resize(columns: 40)
        screen.apply(editor.takeOutput())
        screen.widest = -1
        _ = Self.run(&editor, &screen, [0x05])
        #expect(screen.currentLine.count <= 39)
        #expect(screen.unknown.isEmpty, "\(screen.unknown)")
    }

    @Test func ctrlRFindsTheNewestMatchThenOlderOnesAndEnterRunsIt() {
        var editor = LineEditor(tree: CommandTree<ShellAction>.appliance)
        editor.loadHistory(["show hostname", "show version", "set hostname gw1"])
        var screen = Screen()
        editor.resize(columns: 80)
        editor.startLine(prompt: "gw> ")
        _ = LineEditorWidthTests.run(&editor, &screen, [0x12] + Array("host".utf8))
        #expect(screen.currentLine == "(reverse-i-search)`host': set hostname gw1")
        _ = LineEditorWidthTests.run(&editor, &screen, [0x12])
        #expect(screen.currentLine == "(reverse-i-search)`host': show hostname")
        let events = LineEditorWidthTests.run(&editor, &screen, [0x0D])
        #expect(events == [.line("show hostname")])
        // Ctrl-G gives up: the line as it was.
        _ = LineEditorWidthTests.run(&editor, &screen, Array("sh".utf8) + [0x12, 0x76, 0x07])
        #expect(!editor.isSearching)
        #expect(editor.line == "sh")
        #expect(screen.currentLine == "gw> sh")
        // Another key takes the match into the line to edit.
        _ = LineEditorWidthTests.run(&editor, &screen, [0x15, 0x12] + Array("ver".utf8) + [0x05])
        #expect(editor.line == "show version")
        #expect(screen.currentLine == "gw> show version")
    }

    @Test func altBAndAltFMoveByWord() {
        var editor = LineEditor(tree: CommandTree<ShellAction>.appliance)
        var screen = Screen()
        editor.startLine(prompt: "gw> ")
        _ = LineEditorWidthTests.run(&editor, &screen, Array("show network  routes".utf8))
        editor.feed(Array("\u{1B}b".utf8))
        _ = editor.nextEvent()
        #expect(editor.cursor == 14)
        editor.feed(Array("\u{1B}[1;5D\u{1B}b".utf8))
        _ = editor.nextEvent()
        #expect(editor.cursor == 0)
        editor.feed(Array("\u{1B}f\u{1B}[1;3C".utf8))
        _ = editor.nextEvent()
        #expect(editor.cursor == 12)
    }
}

/// The editor against a model of the line, over random key sequences split at random points.
@Suite("Line editor properties")
struct LineEditorPropertyTests {
    enum Action {
        case insert(String)
        case backspace, delete, left, right, home, end, killToEnd, killToStart, killWord
        case redraw, up, down, tab, help, ctrlD, enter, cancel, unbound, wordLeft, wordRight
    }

    static let keys: [(bytes: [UInt8], action: Action)] = {
        let table: [(String, Action)] = [
            ("a", .insert("a")), ("z", .insert("z")), (" ", .insert(" ")), ("1", .insert("1")),
            ("sh", .insert("sh")), ("net ", .insert("net ")), ("é", .insert("é")),
            ("€", .insert("€")), ("😀", .insert("😀")),
            ("\u{7F}", .backspace), ("\u{08}", .backspace), ("\(esc)[3~", .delete),
            ("\(esc)[D", .left), ("\(esc)OD", .left), ("\u{02}", .left),
            ("\(esc)[C", .right), ("\(esc)OC", .right), ("\u{06}", .right),
            ("\(esc)[H", .home), ("\(esc)[1~", .home), ("\(esc)[7~", .home), ("\(esc)OH", .home),
            ("\u{01}", .home),
            ("\(esc)[F", .end), ("\(esc)[4~", .end), ("\(esc)[8~", .end), ("\(esc)OF", .end),
            ("\u{05}", .end),
            ("\u{0B}", .killToEnd), ("\u{15}", .killToStart), ("\u{17}", .killWord),
            ("\u{0C}", .redraw), ("\(esc)[A", .up), ("\(esc)OA", .up), ("\u{10}", .up),
            ("\(esc)[B", .down), ("\(esc)OB", .down), ("\u{0E}", .down),
            ("\t", .tab), ("?", .help), ("\u{04}", .ctrlD), ("\r", .enter), ("\n", .enter),
            ("\r\n", .enter), ("\u{03}", .cancel),
            ("\(esc)b", .wordLeft), ("\(esc)[1;5D", .wordLeft), ("\(esc)[1;3D", .wordLeft),
            ("\(esc)f", .wordRight), ("\(esc)[1;5C", .wordRight), ("\(esc)[1;3C", .wordRight),
            ("\(esc)[5~", .unbound), ("\(esc)[1;2C", .unbound), ("\(esc)OP", .unbound),
            ("\u{07}", .unbound),
        ]
        return table.map { (Array($0.0.utf8), $0.1) }
    }()

    /// The specification of the line, written plainly.
    struct Model {
        var line: [Unicode.Scalar] = []
        var cursor = 0
        var history: [String] = []
        var index: Int?
        var draft: [Unicode.Scalar] = []
        var events: [LineEditor.Event] = []
        let limit: Int

        var text: String {
            var text = ""
            text.unicodeScalars.append(contentsOf: line)
            return text
        }

        mutating func apply(_ action: Action) {
            switch action {
            case .insert(let text):
                line.insert(contentsOf: text.unicodeScalars, at: cursor)
                cursor += text.unicodeScalars.count
            case .backspace:
                if cursor > 0 {
                    cursor -= 1
                    line.remove(at: cursor)
                }
            case .delete:
                if cursor < line.count { line.remove(at: cursor) }
            case .left: cursor = max(0, cursor - 1)
            case .right: cursor = min(line.count, cursor + 1)
            case .home: cursor = 0
            case .end: cursor = line.count
            case .killToEnd: line.removeSubrange(cursor...)
            case .killToStart:
                line.removeSubrange(..<cursor)
                cursor = 0
            case .killWord:
                let before = line[..<cursor]
                let kept = before.reversed().drop { $0 == " " }.drop { $0 != " " }.count
                line.removeSubrange(kept..<cursor)
                cursor = kept
            case .redraw, .help, .unbound: break
            case .wordLeft:
                while cursor > 0, line[cursor - 1] == " " { cursor -= 1 }
                while cursor > 0, line[cursor - 1] != " " { cursor -= 1 }
            case .wordRight:
                while cursor < line.count, line[cursor] == " " { cursor += 1 }
                while cursor < line.count, line[cursor] != " " { cursor += 1 }
            case .up:
                guard !history.isEmpty else { return }
                let at = index ?? history.count
                guard at > 0 else { return }
                if index == nil { draft = line }
                index = at - 1
                line = Array(history[at - 1].unicodeScalars)
                cursor = line.count
            case .down:
                guard let at = index else { return }
                if at + 1 < history.count {
                    index = at + 1
                    line = Array(history[at + 1].unicodeScalars)
                } else {
                    index = nil
                    line = draft
                }
                cursor = line.count
            case .tab:
                var before = ""
                before.unicodeScalars.append(contentsOf: line[..<cursor])
                apply(
                    .insert(CommandTree<ShellAction>.appliance.complete(before: before).insertion))
            case .ctrlD:
                if line.isEmpty {
                    finish(.endOfInput)
                } else {
                    apply(.delete)
                }
            case .enter:
                let text = self.text
                if text.contains(where: { $0 != " " }), history.last != text {
                    history.append(text)
                    if history.count > limit { history.removeFirst() }
                }
                finish(.line(text))
            case .cancel: finish(.cancelled)
            }
        }

        mutating func finish(_ event: LineEditor.Event) {
            events.append(event)
            line = []
            cursor = 0
            index = nil
        }
    }

    /// Runs `actions`, their bytes cut into reads of the given sizes, through an editor and
    /// a screen; returns the first difference from the model, if any.
    static func check(_ actions: [Int], reads: [Int]) -> String? {
        var model = Model(limit: 4)
        var editor = LineEditor(tree: CommandTree<ShellAction>.appliance, historyLimit: 4)
        var screen = Screen()
        var bytes: [UInt8] = []
        for index in actions {
            // LF right after CR is the same Enter (CR LF), as a terminal sends it.
            let mergesIntoEnter = bytes.last == 0x0D && keys[index].bytes == [0x0A]
            bytes += keys[index].bytes
            if !mergesIntoEnter { model.apply(keys[index].action) }
        }
        var events: [LineEditor.Event] = []
        editor.startLine(prompt: "gw> ")
        var offset = 0
        var read = 0
        while offset < bytes.count {
            let size = reads.isEmpty ? bytes.count : reads[read % reads.count]
            read += 1
            editor.feed(bytes[offset..<min(bytes.count, offset + size)])
            offset += size
            while let event = editor.nextEvent() {
                events.append(event)
                editor.startLine(prompt: "gw> ")
            }
            screen.apply(editor.takeOutput())
            if screen.currentLine != "gw> " + editor.line {
                return
                    "screen shows \(screen.currentLine.debugDescription), line is \(editor.line.debugDescription)"
            }
            if screen.column != 4 + editor.cursor {
                return "screen cursor at \(screen.column), editor cursor at \(editor.cursor)"
            }
        }
        if !screen.unknown.isEmpty { return "unknown output \(screen.unknown)" }
        if events != model.events { return "events \(events) != \(model.events)" }
        if editor.line != model.text {
            return "line \(editor.line.debugDescription) != \(model.text.debugDescription)"
        }
        if editor.cursor != model.cursor { return "cursor \(editor.cursor) != \(model.cursor)" }
        if editor.history != model.history {
            return "history \(editor.history) != \(model.history)"
        }
        if editor.droppedBytes != 0 { return "dropped \(editor.droppedBytes) bytes of valid keys" }
        return nil
    }

    /// On a 30-column terminal: the model's line and cursor still, the screen never past the
    /// last column, the cursor on its character, the text in view a piece of the line.
    @Test func randomKeySequencesOnANarrowTerminal() throws {
        let input = Gen.int(in: 0...(Self.keys.count - 1)).array(of: 0...150)
        try seededCheck(count: 300, seed: 0x5E11_ED17_0000_0030, input) { actions in
            var model = Model(limit: 4)
            var editor = LineEditor(tree: CommandTree<ShellAction>.appliance, historyLimit: 4)
            editor.resize(columns: 30)
            var screen = Screen()
            editor.startLine(prompt: "gw> ")
            var previous: UInt8? = nil
            for index in actions {
                let (bytes, action) = Self.keys[index]
                if !(previous == 0x0D && bytes == [0x0A]) { model.apply(action) }
                previous = bytes.last
                editor.feed(bytes)
                while editor.nextEvent() != nil { editor.startLine(prompt: "gw> ") }
                screen.apply(editor.takeOutput())
                // The line's row (help and candidate listings above it are output).
                try #require(screen.rows[screen.row].count <= 29, "\(screen.currentLine)")
                let shown = screen.currentLine
                try #require(shown.hasPrefix("gw> "), "\(shown)")
                let line = Array(editor.line.unicodeScalars)
                if editor.cursor < line.count, screen.column < screen.rows[screen.row].count,
                    let cell = screen.rows[screen.row][screen.column], cell != "$"
                {
                    try #require(cell == line[editor.cursor], "cursor on \(cell)")
                }
                let view = String(shown.dropFirst(4)).replacingOccurrences(of: "$", with: "")
                try #require(
                    view.isEmpty || editor.line.contains(view) || view.contains("·"),
                    "\(view) not in \(editor.line)")
            }
            try #require(editor.line == model.text && editor.cursor == model.cursor)
            try #require(screen.unknown.isEmpty, "\(screen.unknown)")
        }
    }

    @Test func randomKeySequencesMatchTheModel() throws {
        let input = zip(
            Gen.int(in: 0...(Self.keys.count - 1)).array(of: 0...120),
            Gen.int(in: 1...7).array(of: 0...8))
        try seededCheck(count: 400, seed: 0x5E11_ED17_0000_0001, input) { actions, reads in
            let problem = Self.check(actions, reads: reads)
            try #require(problem == nil, "keys \(actions.map { Self.keys[$0].action })")
        }
    }

    /// Any bytes at all: no trap, and the screen always shows the prompt and the line with
    /// the cursor where the editor has it.
    @Test func randomBytesKeepTheScreenInStep() throws {
        let input = zip(Gen.uint8().array(of: 0...300), Gen.int(in: 1...9).array(of: 1...6))
        try seededCheck(count: 300, seed: 0xB17E_5000_0000_0002, input) { bytes, reads in
            var editor = LineEditor(tree: CommandTree<ShellAction>.appliance)
            var screen = Screen()
            editor.startLine(prompt: "gw> ")
            var offset = 0
            var read = 0
            while offset < bytes.count {
                let size = reads[read % reads.count]
                read += 1
                editor.feed(bytes[offset..<min(bytes.count, offset + size)])
                offset += size
                while editor.nextEvent() != nil { editor.startLine(prompt: "gw> ") }
                screen.apply(editor.takeOutput())
                // Ctrl-R shows its search line instead; checked in its own test.
                if editor.isSearching { continue }
                try #require(screen.currentLine == "gw> " + editor.line)
                try #require(screen.column == 4 + editor.cursor)
                try #require(
                    editor.cursor >= 0 && editor.cursor <= editor.line.unicodeScalars.count)
            }
            try #require(screen.unknown.isEmpty, "\(screen.unknown)")
        }
    }
}
