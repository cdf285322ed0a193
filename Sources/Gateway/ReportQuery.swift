import ControlAPI
import Foundation
import Packet

/// `vtepd show WHAT`: one report asked of a running vtepd over its control socket, printed as
/// the shell prints it or as JSON. The same client and rendering as vtepsh's (`ControlClient`,
/// `TextReport`); only the choice of report lives here.
public struct ReportQuery: Sendable, Equatable {
    public enum Report: String, CaseIterable, Sendable {
        case macTable = "mac-table"
        case counters
        case configuration
    }

    public var report: Report
    /// mac-table only: one logical switch, one MAC.
    public var logicalSwitch: String?
    public var mac: String?
    public var json = false

    public init(
        report: Report, logicalSwitch: String? = nil, mac: String? = nil, json: Bool = false
    ) {
        self.report = report
        self.logicalSwitch = logicalSwitch
        self.mac = mac
        self.json = json
    }

    /// The control request for the report; a MAC that is not one is refused here.
    public func command() throws(ControlFailure) -> any ControlCommand {
        switch report {
        case .macTable:
            var address: MACAddress? = nil
            if let mac {
                guard let parsed = MACAddress(mac) else {
                    throw ControlFailure(
                        "\"\(mac)\" is not a MAC address (use aa:bb:cc:dd:ee:ff)")
                }
                address = parsed
            }
            return ShowMACTable(logicalSwitch: logicalSwitch, mac: address)
        case .counters: return Counters()
        case .configuration: return Configuration()
        }
    }

    /// The result as printed: a table, or JSON with sorted keys.
    public func text(of result: ControlResult) throws -> String {
        guard json else { return TextReport.render(result) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(result), as: UTF8.self) + "\n"
    }

    /// Asks the vtepd serving `controlSocket` and hands the text to print to `write`: the MAC
    /// table a page at a time as it arrives (as JSON, one array of every entry).
    public func run(controlSocket: String, write: (String) -> Void) async throws {
        let client = try await ControlClient.connect(to: controlSocket)
        do {
            let command = try command()
            if let query = command as? ShowMACTable {
                var text = TextReport.MACTableText()
                var first = true
                var pending: [MACTableRow]? = nil
                if json { write("[") }
                try await client.macTablePages(query) { rows in
                    if json {
                        for row in rows {
                            write((first ? "\n  " : ",\n  ") + Self.json(row))
                            first = false
                        }
                    } else {
                        // A page is known to be the last only once the next arrives.
                        if let pending { write(text.page(pending, last: false)) }
                        pending = rows
                    }
                }
                if json {
                    write(first ? "]\n" : "\n]\n")
                } else {
                    write(text.page(pending ?? [], last: true))
                }
            } else {
                write(try text(of: try await client.send(command)))
            }
            await client.close()
        } catch {
            await client.close()
            throw error
        }
    }

    /// Asks the vtepd serving `controlSocket` and returns the text to print.
    public func run(controlSocket: String) async throws -> String {
        var text = ""
        try await run(controlSocket: controlSocket) { text += $0 }
        return text
    }

    static func json(_ row: MACTableRow) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(row)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
