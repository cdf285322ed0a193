import Foundation
import Shell
import ShellSession
import SwitchControl
import TestSupport
import Testing

/// The documentation as readers use it: README.md and docs/*.md. Its shell examples parse,
/// its relative links (and their anchors) resolve, its quick start is what CI runs, the
/// generated manual pages are what the programs print, and the database reference names the
/// keys vtepd reads.
@Suite struct DocumentationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// README.md and every Markdown file of docs/, with their text.
    static func documents() throws -> [(path: String, text: String)] {
        let docs = try FileManager.default.contentsOfDirectory(
            atPath: root.appendingPathComponent("docs").path
        ).filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
        return try (["README.md"] + docs).map {
            ($0, try String(contentsOf: root.appendingPathComponent($0), encoding: .utf8))
        }
    }

    // MARK: Shell examples

    @Test func everyShellExampleParses() throws {
        let executor = ShellExecutor(
            environment: ShellEnvironment(
                send: { _ in .failure(.disconnected(command: "documentation example")) },
                runDiagnostic: { _ in .success(0) }, localHostname: { "gw1" }, version: "test"))
        var checked = 0
        for (path, text) in try Self.documents() {
            for example in Markdown.shellExamples(in: text) {
                checked += 1
                if case .failure(let outcome) = executor.action(for: example.line, promptWidth: nil)
                {
                    Issue.record(
                        "\(path):\(example.lineNumber): `\(example.line)` does not parse: \(outcome.text)"
                    )
                }
            }
        }
        // The convention is used (README and the admin guide have examples): a test that finds
        // none checks nothing.
        #expect(checked >= 40, "only \(checked) shell example lines found in ```vtepsh blocks")
    }

    @Test func aBadExampleIsCaught() {
        let text = "```vtepsh\ngw1> show switch  # fine\ngw1> shw nothing\noutput line\n```\n"
        let examples = Markdown.shellExamples(in: text)
        #expect(examples.map(\.line) == ["show switch", "shw nothing"])
        #expect(examples.map(\.lineNumber) == [2, 3])
        let tree = CommandTree<ShellAction>.appliance
        #expect(throws: ParseError.self) { try tree.parse("shw nothing") }
    }

    // MARK: Links

    @Test func everyRelativeLinkResolves() throws {
        var checked = 0
        for (path, text) in try Self.documents() {
            let directory = Self.root.appendingPathComponent(path).deletingLastPathComponent()
            for link in Markdown.links(in: text) where !link.target.contains("://") {
                checked += 1
                let parts = link.target.split(separator: "#", maxSplits: 1).map(String.init)
                let file =
                    link.target.hasPrefix("#")
                    ? Self.root.appendingPathComponent(path)
                    : directory.appendingPathComponent(parts[0]).standardizedFileURL
                guard FileManager.default.fileExists(atPath: file.path) else {
                    Issue.record("\(path):\(link.lineNumber): \(link.target): no such file")
                    continue
                }
                let anchor =
                    link.target.hasPrefix("#")
                    ? String(link.target.dropFirst()) : parts.count == 2 ? parts[1] : nil
                guard let anchor, file.pathExtension == "md" else { continue }
                let target = try String(contentsOf: file, encoding: .utf8)
                if !Markdown.anchors(in: target).contains(anchor) {
                    Issue.record(
                        "\(path):\(link.lineNumber): \(link.target): no heading with anchor #\(anchor)"
                    )
                }
            }
        }
        #expect(checked >= 30, "only \(checked) relative links found")
    }

    @Test func anchorsAreGitHubs() {
        let text =
            "# VTEP Gateway\n## Micro-benchmarks (`bench/`)\n## ARP/ND suppression\n## Deploy\n## Deploy\n```sh\n# not a heading\n```\n"
        #expect(
            Markdown.anchors(in: text)
                == [
                    "vtep-gateway", "micro-benchmarks-bench", "arpnd-suppression", "deploy",
                    "deploy-1",
                ])
        #expect(
            Markdown.links(in: "see [a](b.md#c) and `[x](y)` and ![i](p.png)").map(\.target) == [
                "b.md#c", "p.png",
            ])
    }

    // MARK: Quick start

    /// The README's quick start names the command CI runs (`.ci/run`), and every `make`
    /// target it names exists in the Makefile.
    @Test func theQuickStartIsWhatCIRuns() throws {
        let readme = try String(
            contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let ci = try String(
            contentsOf: Self.root.appendingPathComponent(".ci/run"), encoding: .utf8)
        let makefile = try String(
            contentsOf: Self.root.appendingPathComponent("Makefile"), encoding: .utf8)
        guard let section = readme.components(separatedBy: "\n## Quick start\n").dropFirst().first,
            let block = section.components(separatedBy: "```sh\n").dropFirst().first?
                .components(separatedBy: "```").first
        else {
            Issue.record("README.md has no ## Quick start section with a ```sh block")
            return
        }
        let quickStart = block.split(separator: "\n").map {
            $0.split(separator: "#", maxSplits: 1)[0].trimmingCharacters(in: .whitespaces)
        }
        let ciCommands = ci.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("make") }
        #expect(!ciCommands.isEmpty, ".ci/run runs no make target")
        for command in ciCommands {
            #expect(
                quickStart.contains(command),
                "README's quick start lacks `\(command)`, which CI runs")
        }
        let targets = Set(
            makefile.split(separator: "\n").compactMap { line -> String? in
                guard let colon = line.firstIndex(of: ":"), !line.hasPrefix("\t"),
                    !line.hasPrefix("#")
                else { return nil }
                return String(line[..<colon])
            })
        for command in quickStart where command.hasPrefix("make ") {
            let target = String(command.dropFirst(5)).split(separator: " ")[0]
            #expect(
                targets.contains(String(target)),
                "README's `\(command)`: no Makefile target \(target)")
        }
        #expect(quickStart.contains("make demo"))
    }

    // MARK: Generated pages

    @Test(arguments: [
        ("vtepsh", ["--reference", "man"], "man/vtepsh.1"),
        ("vtepd", ["--reference", "man"], "man/vtepd.8"),
        ("vtepd", ["--reference", "conf"], "man/vtepd.conf.5"),
    ])
    func theManualPagesAreWhatTheProgramsPrint(
        program: String, arguments: [String], page: String
    ) async throws {
        let printed = try await Self.run(try builtProduct(program).path, arguments)
        #expect(
            printed.status == 0, "\(program) \(arguments.joined(separator: " ")): \(printed.error)")
        let file = try String(
            contentsOf: Self.root.appendingPathComponent("docs/" + page), encoding: .utf8)
        #expect(
            file == printed.output,
            "docs/\(page) is stale: run `.build/debug/\(program) \(arguments.joined(separator: " ")) > docs/\(page)`"
        )
    }

    /// What lintian runs on a package's manual pages (its `groff-message` check): man(1)'s
    /// warnings, with the formatter's, must be none.
    @Test(arguments: ["man/vtepsh.1", "man/vtepd.8", "man/vtepd.conf.5"])
    func theManualPagesFormatWithoutWarnings(page: String) async throws {
        let path = Self.root.appendingPathComponent("docs/" + page).path
        let formatted = try await Self.run(
            "/usr/bin/man", ["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path],
            environment: ["MANWIDTH": "80", "LC_ALL": "C.UTF-8"])
        #expect(formatted.status == 0)
        #expect(formatted.error == "", "man --warnings on docs/\(page):\n\(formatted.error)")
        #expect(formatted.output.count > 1000)
    }

    // MARK: Database reference

    /// docs/database.md's table of what vtepd reads names exactly the Logical_Switch
    /// `other_config` keys vtepd reads.
    @Test func theDatabaseReferenceNamesTheKeysVtepdReads() throws {
        let text = try String(
            contentsOf: Self.root.appendingPathComponent("docs/database.md"), encoding: .utf8)
        guard
            let section = text.components(separatedBy: "\n## What vtepd reads\n").dropFirst().first?
                .components(separatedBy: "\n## ").first
        else {
            Issue.record("docs/database.md has no section ## What vtepd reads")
            return
        }
        let prefix = "| Logical_Switch `other_config:"
        let documented = section.split(separator: "\n").filter { $0.hasPrefix(prefix) }.map {
            String($0.dropFirst(prefix.count).prefix { $0 != "`" })
        }
        #expect(
            Set(documented) == Set(GatewaySnapshot.logicalSwitchKeys),
            "documented but not read: \(Set(documented).subtracting(GatewaySnapshot.logicalSwitchKeys).sorted()); read but not documented: \(Set(GatewaySnapshot.logicalSwitchKeys).subtracting(documented).sorted())"
        )
        #expect(documented.count == Set(documented).count, "a key has two rows: \(documented)")
    }

    // MARK: Running a program

    /// Runs a program to its end on a thread of its own (never blocking the cooperative
    /// threads the other tests share): its status, standard output and standard error.
    static func run(_ path: String, _ arguments: [String], environment: [String: String] = [:])
        async throws -> (status: Int32, output: String, error: String)
    {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: path)
                    process.arguments = arguments
                    process.environment = ProcessInfo.processInfo.environment.merging(environment) {
                        $1
                    }
                    let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                        "documentation-tests-\(UUID().uuidString).stderr")
                    _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
                    defer { try? FileManager.default.removeItem(at: errorFile) }
                    let output = Pipe()
                    process.standardOutput = output
                    process.standardError = try FileHandle(forWritingTo: errorFile)
                    try process.run()
                    let outputData = output.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    let errorText = try String(contentsOf: errorFile, encoding: .utf8)
                    continuation.resume(
                        returning: (
                            process.terminationStatus, String(decoding: outputData, as: UTF8.self),
                            errorText
                        ))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
