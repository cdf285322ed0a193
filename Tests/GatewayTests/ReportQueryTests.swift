import ControlAPI
import Testing

@testable import Gateway

/// `vtepd show WHAT`'s choice of request and its JSON form.
@Suite struct ReportQueryTests {
    @Test func eachReportAsksForItsCommand() {
        #expect(ReportQuery(report: .counters).command == .counters)
        #expect(ReportQuery(report: .configuration).command == .configuration)
        #expect(
            ReportQuery(report: .macTable, logicalSwitch: "ls1", mac: "02:00:00:00:00:01").command
                == .macTable(MACTableQuery(logicalSwitch: "ls1", mac: "02:00:00:00:00:01")))
        #expect(ReportQuery.Report(rawValue: "mac-table") == .macTable)
        #expect(ReportQuery.Report(rawValue: "routes") == nil)
    }

    @Test func jsonHasSortedKeysAndEndsTheLine() throws {
        let text = try ReportQuery(report: .counters, json: true).text(of: .accepted)
        #expect(text.hasSuffix("\n"))
        #expect(text != TextReport.render(.accepted))
    }
}
