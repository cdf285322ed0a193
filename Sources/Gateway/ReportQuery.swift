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

    /// Asks the vtepd serving `controlSocket` and returns the text to print.
    public func run(controlSocket: String) async throws -> String {
        let client = try await ControlClient.connect(to: controlSocket)
        do {
            let result = try await client.send(try command())
            await client.close()
            return try text(of: result)
        } catch {
            await client.close()
            throw error
        }
    }
}
