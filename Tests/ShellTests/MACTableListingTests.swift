import ControlAPI
import Packet
import Shell
import ShellSession
import Synchronization
import Testing

/// `show switch mac-table` of more entries than one response carries: the shell asks vtepd a
/// page at a time, `vtepsh -c` shows every entry once with one header and the count, output
/// filters work across pages, and the pager asks only for the pages it shows.
@Suite struct MACTableListingTests {
    /// A vtepd answering `mac-table` as vtepd does: pages in (switch, MAC) order after the
    /// cursor, a refusal of an unpaged request for more than one response holds.
    final class Pages: Sendable {
        let rows: [MACTableRow]
        let requests = Mutex<[ShowMACTable]>([])
        let failAt: Int?

        init(perSwitch: Int, failAt: Int? = nil) {
            rows = ["ls-a", "ls-b"].flatMap { name in
                (0..<perSwitch).map { i in
                    MACTableRow(
                        logicalSwitch: name, vni: name == "ls-a" ? 100 : 200,
                        mac: MACAddress(rawValue: 0x0600_0000_0000 + UInt64(i)).description,
                        type: .local, isStatic: false, port: "eth1", age: 3)
                }
            }
            self.failAt = failAt
        }

        func answer(_ query: ShowMACTable) -> Result<ControlResult, ControlClientError> {
            let count = requests.withLock {
                $0.append(query)
                return $0.count
            }
            if count == failAt {
                return .failure(.refused(command: "mac-table", message: "vtepd went away"))
            }
            var selected = rows.filter {
                query.logicalSwitch == nil || $0.logicalSwitch == query.logicalSwitch
            }
            if let after = query.afterSwitch, let mac = query.afterMAC?.description {
                selected = selected.filter { ($0.logicalSwitch, $0.mac) > (after, mac) }
            }
            guard let limit = query.limit else {
                return selected.count > ShowMACTable.maximumRows
                    ? .failure(.refused(command: "mac-table", message: "page it"))
                    : .success(.macTable(selected))
            }
            return .success(.macTable(Array(selected.prefix(limit))))
        }

        var executor: ShellExecutor {
            ShellExecutor(
                environment: ShellEnvironment(
                    send: { command in
                        if let query = command as? ShowMACTable { return self.answer(query) }
                        if command is ShowHostname { return .success(.lines(["gw1"])) }
                        return .success(.lines([]))
                    }, runDiagnostic: { _ in .success(0) }, localHostname: { "gw" },
                    version: "test"))
        }

        func run(_ line: String) -> ShellOutcome {
            guard case .success(let parsed?) = executor.action(for: line, promptWidth: nil) else {
                return ShellOutcome(text: "not parsed", succeeded: false)
            }
            return executor.perform(parsed)
        }
    }

    @Test func everyEntryOnceWithOneHeaderAndTheCount() throws {
        let vtepd = Pages(perSwitch: 6000)
        let outcome = vtepd.run("show switch mac-table")
        #expect(outcome.succeeded)
        let lines = outcome.text.split(separator: "\n").map(String.init)
        #expect(lines.count == 12_002)
        #expect(lines.first?.hasPrefix("SWITCH") == true)
        #expect(lines.filter { $0.hasPrefix("SWITCH") }.count == 1)
        #expect(lines.last == "12000 entries")
        let macs = lines.dropFirst().dropLast().map {
            $0.split(separator: " ", omittingEmptySubsequences: true).prefix(3).joined(
                separator: " ")
        }
        #expect(macs == vtepd.rows.map { "\($0.logicalSwitch) \($0.vni) \($0.mac)" })
        // Each line as wide as the first page made it.
        #expect(Set(lines.dropFirst().dropLast().map(\.count)).count == 1)
        let requests = vtepd.requests.withLock { $0 }
        #expect(requests.count == 3)
        #expect(requests.allSatisfy { $0.limit == ShowMACTable.maximumRows })
        #expect(requests[1].afterSwitch == "ls-a" && requests[2].afterSwitch == "ls-b")
    }

    @Test func filtersAndTheSwitchWorkAcrossPages() {
        let vtepd = Pages(perSwitch: 5000)
        #expect(vtepd.run("show switch mac-table | count").text == "10002\n")
        let b = vtepd.run("show switch mac-table | include ^ls-b").text
        #expect(b.split(separator: "\n").count == 5000)
        let from = vtepd.run("show switch mac-table | begin 06:00:00:00:13:87 | exclude ls-a").text
        #expect(from.split(separator: "\n").count == 5001, "ls-b's 5000 and the count line")
        let one = vtepd.run("show switch mac-table logical-switch ls-b").text
        #expect(one.split(separator: "\n").count == 5002)
        #expect(!one.contains("ls-a"))
        #expect(vtepd.requests.withLock { $0 }.last?.logicalSwitch == "ls-b")
    }

    @Test func aRefusalMidwayEndsTheListingAndSaysSo() {
        let vtepd = Pages(perSwitch: 5000, failAt: 2)
        let outcome = vtepd.run("show switch mac-table")
        #expect(!outcome.succeeded)
        #expect(outcome.text.hasSuffix("% vtepd went away\n"))
        #expect(outcome.text.split(separator: "\n").count == 4096 + 2)
    }

    @Test func thePagerAsksOnlyForThePagesItShows() {
        let vtepd = Pages(perSwitch: 5000)
        var screen: [UInt8] = []
        let session = ShellSession(executor: vtepd.executor) { screen += $0 }
        session.start()
        session.receive(Array("terminal length 10\rshow switch mac-table\r".utf8))
        #expect(String(decoding: screen, as: UTF8.self).hasSuffix("--More--"))
        #expect(vtepd.requests.withLock { $0.count } == 1)
        // Through the first page of vtepd's (4096 entries) into the second.
        for _ in 0..<460 { session.receive([0x20]) }
        #expect(vtepd.requests.withLock { $0.count } == 2)
        session.receive(Array("q".utf8))
        #expect(String(decoding: screen, as: UTF8.self).hasSuffix("gw1> "))
        #expect(vtepd.requests.withLock { $0.count } == 2)
    }
}
