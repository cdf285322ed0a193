import Foundation
import FuzzChecks
import Testing

/// Every file of fuzz/corpus/TARGET (the seeds and what fuzzing kept) and of
/// fuzz/crashes/TARGET (every crash found, once fixed) through its target's checks: a parser
/// that traps or an invariant broken again fails `make test`.
@Suite struct FuzzReplayTests {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz")

    static func files(_ kind: String, _ target: String) -> [URL] {
        let directory = fuzz.appendingPathComponent(kind).appendingPathComponent(target)
        return
            ((try? FileManager.default.contentsOfDirectory(
                at: directory, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.path < $1.path }
    }

    @Test(arguments: FuzzChecks.targets.keys.sorted())
    func everyCorpusFileAndPastCrashPasses(target: String) throws {
        let check = try #require(FuzzChecks.targets[target])
        let seeds = Self.files("corpus", target)
        #expect(!seeds.isEmpty, "fuzz/corpus/\(target) has no seed")
        for file in seeds + Self.files("crashes", target) {
            check(Array(try Data(contentsOf: file)))
        }
    }
}
