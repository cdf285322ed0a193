import Logging
import Synchronization
import Testing

@testable import DaemonLogging

/// The lines a handler wrote.
final class Lines: Sendable {
    private let written = Mutex<[String]>([])
    var all: [String] { written.withLock { $0 } }
    func append(_ line: String) { written.withLock { $0.append(line) } }
}

@Suite struct DaemonLogHandlerTests {
    func logger(_ form: DaemonLogHandler.Form, level: Logger.Level = .info) -> (Logger, Lines) {
        let lines = Lines()
        let logger = Logger(label: "vtepd.switch") { label in
            DaemonLogHandler(label: label, form: form, level: level, output: lines.append)
        }
        return (logger, lines)
    }

    @Test func journalStreamNamingStandardErrorSelectsTheJournalForm() {
        let stderr = (device: UInt64(8), inode: UInt64(12345))
        #expect(
            DaemonLogHandler.Form.detect(
                environment: ["JOURNAL_STREAM": "8:12345"], standardError: stderr) == .journal)
        // Inherited by a process whose stderr is elsewhere: not the journal.
        #expect(
            DaemonLogHandler.Form.detect(
                environment: ["JOURNAL_STREAM": "8:999"], standardError: stderr) == .plain)
        #expect(DaemonLogHandler.Form.detect(environment: [:], standardError: stderr) == .plain)
        #expect(
            DaemonLogHandler.Form.detect(environment: ["JOURNAL_STREAM": ""], standardError: stderr)
                == .plain)
    }

    /// `show tech-support`'s log lines: the last ones, oldest first, in the plain form with
    /// their time whatever form goes to the journal, each line of a message on its own.
    @Test func theLastLinesAreKeptInThePlainForm() {
        let recent = RecentLogLines(capacity: 3)
        let lines = Lines()
        let logger = Logger(label: "vtepd.switch") { label in
            DaemonLogHandler(
                label: label, form: .journal, level: .info, output: lines.append, recent: recent)
        }
        logger.info("first")
        logger.warning("second\nthird")
        #expect(recent.last(10).count == 3)
        logger.error("fourth")
        let kept = recent.last(10)
        #expect(kept.count == 3)
        #expect(kept[0].hasSuffix(" warning vtepd.switch: second"), "\(kept)")
        #expect(kept[1] == "  third")
        #expect(kept[2].hasSuffix(" error vtepd.switch: fourth"), "\(kept)")
        #expect(recent.last(1) == [kept[2]])
        #expect(lines.all.first == "<6>vtepd.switch: first\n", "the journal still gets its form")
    }

    @Test func journalLinesStartWithTheSyslogPriority() {
        let (log, lines) = logger(.journal, level: .debug)
        log.debug("d")
        log.info("i")
        log.notice("n")
        log.warning("w")
        log.error("e")
        log.critical("c")
        #expect(
            lines.all == [
                "<7>vtepd.switch: d\n", "<6>vtepd.switch: i\n", "<5>vtepd.switch: n\n",
                "<4>vtepd.switch: w\n", "<3>vtepd.switch: e\n", "<2>vtepd.switch: c\n",
            ])
    }

    @Test func levelFiltersBelowIt() {
        let (log, lines) = logger(.journal, level: .warning)
        log.info("hidden")
        log.warning("shown")
        #expect(lines.all == ["<4>vtepd.switch: shown\n"])
    }

    @Test func plainLinesHaveTimeLevelAndLabel() throws {
        let (log, lines) = logger(.plain)
        log.warning("database lost")
        let line = try #require(lines.all.first)
        // 2026-12-05T07:25:04.123Z warning vtepd.switch: database lost
        let match = line.wholeMatch(
            of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warning vtepd\.switch: database lost\n/)
        #expect(match != nil, "\(line)")
    }

    @Test func metadataIsRenderedSortedAndQuotedWhenNeeded() {
        let (base, lines) = logger(.journal)
        var log = base
        log[metadataKey: "remote"] = "unix:/run/db.sock"
        log.error(
            "lost the database", metadata: ["reason": "connection reset", "attempt": "3"])
        #expect(
            lines.all == [
                "<3>vtepd.switch: lost the database attempt=3 reason=\"connection reset\""
                    + " remote=unix:/run/db.sock\n"
            ])
    }

    @Test func metadataProviderAddsToEachLine() {
        let lines = Lines()
        let log = Logger(label: "vtepd.dhcp") { label in
            DaemonLogHandler(
                label: label, form: .journal, level: .info,
                metadataProvider: .init { ["pid": "42"] }, output: lines.append)
        }
        log.info("started")
        #expect(lines.all == ["<6>vtepd.dhcp: started pid=42\n"])
    }

    @Test func everyLineOfAMessageKeepsItsPriority() {
        let journal = DaemonLogHandler.render(
            level: .error, label: "vtepd.database", message: "did not start; its log:\nA\nB",
            metadata: [:], form: .journal, time: "")
        #expect(
            journal
                == "<3>vtepd.database: did not start; its log:\n<3>vtepd.database:   A\n"
                + "<3>vtepd.database:   B\n")
        let plain = DaemonLogHandler.render(
            level: .error, label: "vtepd.database", message: "x\ny", metadata: ["k": "v"],
            form: .plain, time: "T")
        #expect(plain == "T error vtepd.database: x\n  y k=v\n")
    }

    @Test func quotingEscapesWhatWouldSplitAField() {
        #expect(DaemonLogHandler.quoted("eth0") == "eth0")
        #expect(DaemonLogHandler.quoted("") == "\"\"")
        #expect(DaemonLogHandler.quoted("a \"b\"\nc") == "\"a \\\"b\\\"\\nc\"")
    }
}

@Suite struct LogRateLimiterTests {
    @Test func oneLinePerReasonPerIntervalCountingTheHeldBack() {
        let limiter = LogRateLimiter(interval: .seconds(10))
        let t0 = ContinuousClock.now
        #expect(limiter.admit("send: ENOBUFS", now: t0) == 1)
        #expect(limiter.admit("send: ENOBUFS", count: 5, now: t0 + .seconds(1)) == nil)
        #expect(limiter.admit("send: ENOBUFS", count: 2, now: t0 + .seconds(9)) == nil)
        // Another reason is not held back by the first.
        #expect(limiter.admit("receive: ENETDOWN", now: t0 + .seconds(9)) == 1)
        // After the interval: this one and the seven held back.
        #expect(limiter.admit("send: ENOBUFS", now: t0 + .seconds(10)) == 8)
        #expect(limiter.admit("send: ENOBUFS", now: t0 + .seconds(11)) == nil)
    }

    @Test func heldBackCountsFallDueWhenTheFailureStops() {
        let limiter = LogRateLimiter(interval: .seconds(10))
        let t0 = ContinuousClock.now
        #expect(limiter.admit("a", now: t0) == 1)
        #expect(limiter.admit("a", count: 3, now: t0 + .seconds(2)) == nil)
        #expect(limiter.due(now: t0 + .seconds(5)).isEmpty)
        let due = limiter.due(now: t0 + .seconds(10))
        #expect(due.map(\.reason) == ["a"])
        #expect(due.map(\.count) == [3])
        #expect(limiter.due(now: t0 + .seconds(30)).isEmpty)
    }
}
