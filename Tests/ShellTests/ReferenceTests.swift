import Foundation
import ShellSession
import Testing

/// The references in docs/ are what the declarations print: regenerate them with
/// `vtepsh --reference shell > docs/shell.md` (and `protocol > docs/protocol.md`).
@Suite struct ReferenceTests {
    static let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs")

    @Test func theShellReferenceIsTheDeclarations() throws {
        let file = try String(
            contentsOf: Self.docs.appendingPathComponent("shell.md"), encoding: .utf8)
        #expect(
            file == Reference.shell(),
            "docs/shell.md is stale: run `vtepsh --reference shell > docs/shell.md`")
    }

    @Test func theProtocolReferenceIsTheDeclarations() throws {
        let file = try String(
            contentsOf: Self.docs.appendingPathComponent("protocol.md"), encoding: .utf8)
        #expect(
            file == Reference.protocolCommands(),
            "docs/protocol.md is stale: run `vtepsh --reference protocol > docs/protocol.md`")
    }
}
