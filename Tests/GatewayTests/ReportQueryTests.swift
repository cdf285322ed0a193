import ControlAPI
import Packet
import Testing

@testable import Gateway

/// `vtepd show WHAT`'s choice of request and its JSON form.
@Suite struct ReportQueryTests {
    @Test func eachReportAsksForItsCommand() throws {
        #expect(try ReportQuery(report: .counters).command().isSame(as: Counters()))
        #expect(try ReportQuery(report: .configuration).command().isSame(as: Configuration()))
        #expect(
            try ReportQuery(report: .macTable, logicalSwitch: "ls1", mac: "02:00:00:00:00:01")
                .command().isSame(
                    as: ShowMACTable(logicalSwitch: "ls1", mac: MACAddress("02:00:00:00:00:01")))
        )
        #expect(throws: ControlFailure.self) {
            try ReportQuery(report: .macTable, mac: "02:00").command()
        }
        #expect(ReportQuery.Report(rawValue: "mac-table") == .macTable)
        #expect(ReportQuery.Report(rawValue: "routes") == nil)
    }

    @Test func jsonHasSortedKeysAndEndsTheLine() throws {
        let text = try ReportQuery(report: .counters, json: true).text(of: .accepted)
        #expect(text.hasSuffix("\n"))
        #expect(text != TextReport.render(.accepted))
    }
}
