/// An aligned plain-text table as network appliances print them: upper-case headers, columns
/// two spaces apart, numbers right-aligned, no trailing spaces.
public struct TextTable: Hashable, Sendable {
    public enum Alignment: Hashable, Sendable {
        case left
        case right
    }

    public struct Column: Hashable, Sendable {
        public var header: String
        public var alignment: Alignment

        public init(_ header: String, _ alignment: Alignment = .left) {
            self.header = header
            self.alignment = alignment
        }
    }

    public var columns: [Column]
    public var rows: [[String]]

    public init(columns: [Column], rows: [[String]] = []) {
        self.columns = columns
        self.rows = rows
    }

    public mutating func append(_ row: [String]) {
        precondition(row.count == columns.count, "a row needs one cell per column")
        rows.append(row)
    }

    /// The table, one line per row after the header line, each ending in a newline.
    public func rendered() -> String { rendered(header: true, widths: widths()) }

    /// Each column's width: its widest cell or header, at least `minimum[i]`.
    public func widths(atLeast minimum: [Int] = []) -> [Int] {
        var widths = columns.map(\.header.count)
        for (index, width) in minimum.prefix(widths.count).enumerated() {
            widths[index] = max(widths[index], width)
        }
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return widths
    }

    /// The rows (after the header line if `header`), columns padded to `widths`: a table shown
    /// a part at a time keeps its columns from part to part.
    public func rendered(header: Bool, widths: [Int]) -> String {
        var text = ""
        for cells in (header ? [columns.map(\.header)] : []) + rows {
            var line = ""
            for (index, cell) in cells.enumerated() {
                if index > 0 { line += "  " }
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                line += columns[index].alignment == .right ? padding + cell : cell + padding
            }
            while line.last == " " { line.removeLast() }
            text += line + "\n"
        }
        return text
    }
}

/// The control results as text for people: vtepd's `show` subcommand and the shell print
/// these. Layouts follow `bridge fdb` and NSX's `show switch mac-table`.
public enum TextReport {
    public static func render(_ result: ControlResult) -> String {
        switch result {
        case .macTable(let rows): return macTable(rows)
        case .counters(let report): return counters(report)
        case .configuration(let report): return configuration(report)
        default: return renderShellResult(result)
        }
    }

    /// Columns SWITCH VNI MAC TYPE LOCATION AGE. TYPE adds "static" to entries that never age
    /// or move; LOCATION is `PORT` or `PORT vlan N` for local entries, the VTEP's address for
    /// remote ones; AGE is seconds since last seen, `-` for static entries.
    public static func macTable(_ rows: [MACTableRow]) -> String {
        var text = MACTableText()
        return text.page(rows, last: true)
    }

    /// `show switch mac-table` a page at a time (`ShowMACTable`): the header before the first
    /// page, each column as wide as on the pages before (it widens when a page needs it), the
    /// number of entries after the last page. One page is `macTable(_:)`.
    public struct MACTableText: Sendable {
        public private(set) var entries = 0
        private var widths: [Int]? = nil

        public init() {}

        public mutating func page(_ rows: [MACTableRow], last: Bool) -> String {
            let table = TextReport.macTableRows(rows)
            let widths = table.widths(atLeast: self.widths ?? [])
            var text = table.rendered(header: self.widths == nil, widths: widths)
            self.widths = widths
            entries += rows.count
            if last { text += entries == 1 ? "1 entry\n" : "\(entries) entries\n" }
            return text
        }
    }

    static func macTableRows(_ rows: [MACTableRow]) -> TextTable {
        var table = TextTable(columns: [
            .init("SWITCH"), .init("VNI", .right), .init("MAC"), .init("TYPE"), .init("LOCATION"),
            .init("AGE", .right),
        ])
        for row in rows {
            let location: String
            switch row.type {
            case .local: location = (row.port ?? "?") + (row.vlan.map { " vlan \($0)" } ?? "")
            case .remote: location = row.vtep ?? "?"
            }
            table.append([
                row.logicalSwitch, String(row.vni), row.mac,
                row.type.rawValue + (row.isStatic ? " static" : ""), location,
                row.age.map(String.init) ?? "-",
            ])
        }
        return table
    }

    public static func counters(_ report: CountersReport) -> String {
        var switches = TextTable(columns: [
            .init("SWITCH"), .init("VNI", .right), .init("FROM ACCESS", .right),
            .init("FROM TUNNEL", .right), .init("TO ACCESS", .right),
            .init("ENCAPSULATED", .right), .init("FLOODED", .right), .init("DROPS", .right),
            .init("LEARNED", .right), .init("MOVES", .right), .init("LEARNING REFUSED", .right),
        ])
        for sw in report.switches {
            switches.append(
                [sw.name, String(sw.vni)]
                    + [
                        sw.fromAccess, sw.fromTunnel, sw.toAccess, sw.encapsulated, sw.flooded,
                        sw.drops, sw.learned, sw.moves, sw.learningRefused,
                    ].map { String($0) })
        }
        var suppression = TextTable(columns: [
            .init("SWITCH"), .init("ARP/ND ANSWERED", .right), .init("ARP/ND FLOODED", .right),
        ])
        for sw in report.switches {
            guard let answered = sw.neighbourAnswered, let flooded = sw.neighbourFlooded else {
                continue
            }
            suppression.append([sw.name, String(answered), String(flooded)])
        }
        var ports = TextTable(columns: [
            .init("PORT"), .init("RX FRAMES", .right), .init("TX FRAMES", .right),
            .init("DROPS", .right),
        ])
        for port in report.ports {
            ports.append([
                port.name, String(port.rxFrames), String(port.txFrames), String(port.drops),
            ])
        }
        var vteps = TextTable(columns: [
            .init("VTEP"), .init("ENCAPSULATION"), .init("TX FRAMES", .right),
            .init("RX FRAMES", .right),
        ])
        for vtep in report.vteps {
            vteps.append([
                vtep.ip, vtep.encapsulation, String(vtep.txFrames), String(vtep.rxFrames),
            ])
        }
        var rates: [String] = []
        for sw in report.switches {
            if let rate = sw.rateIn { rates.append("switch \(sw.name) in: \(rate.text)") }
        }
        for port in report.ports {
            if let rate = port.rxRate { rates.append("port \(port.name) rx: \(rate.text)") }
            if let rate = port.txRate { rates.append("port \(port.name) tx: \(rate.text)") }
        }
        for vtep in report.vteps {
            if let rate = vtep.txRate { rates.append("VTEP \(vtep.ip) tx: \(rate.text)") }
            if let rate = vtep.rxRate { rates.append("VTEP \(vtep.ip) rx: \(rate.text)") }
        }
        var sections: [String] = ["Logical switches\n" + switches.rendered()]
        if report.switches.contains(where: { $0.neighbourAnswered != nil }) {
            sections.append("ARP and ND suppression\n" + suppression.rendered())
        }
        sections += [
            "Access ports\n" + ports.rendered(),
            "Remote VTEPs\n" + vteps.rendered(),
        ]
        if !rates.isEmpty {
            let lines: String = rates.map { $0 + "\n" }.joined()
            sections.append("Rates\n" + lines)
        }
        sections.append("Drops\n" + reasons(report.drops))
        sections.append("Malformed frames\n" + reasons(report.malformed))
        sections.append("Offloads\n" + reasons(report.offloads))
        return sections.joined(separator: "\n")
    }

    public static func configuration(_ report: ConfigurationReport) -> String {
        func list(_ items: [String]) -> String {
            items.isEmpty ? "none" : items.joined(separator: ", ")
        }
        var text = "Physical switch: \(report.physicalSwitch)\n"
        text += "Tunnel IPs: \(list(report.tunnelIPs))\n"
        text += "Underlay: \(report.underlay ?? "not set")\n"
        if let port = report.vxlanPort { text += "VXLAN port: \(port)\n" }
        if let database = report.database { text += "Database: \(database)\n" }
        text += "Access ports: \(list(report.ports))\n"

        var switches = TextTable(columns: [
            .init("SWITCH"), .init("VNI", .right), .init("REPLICATION"),
            .init("MAC AGEING", .right), .init("MAC LIMIT", .right), .init("ALLOWED SOURCES"),
        ])
        for sw in report.switches {
            let locators = sw.replication.locators.map { locator in
                locator.encapsulation == "vxlan"
                    ? locator.ip : "\(locator.ip) (\(locator.encapsulation))"
            }
            let replication = ([sw.replication.mode.rawValue] + locators).joined(separator: " ")
            switches.append([
                sw.name, String(sw.vni), replication,
                sw.macAgeing == 0 ? "never" : "\(sw.macAgeing)s",
                sw.macLimit.map(String.init) ?? "-",
                sw.allowedSources.map { $0.isEmpty ? "none" : $0.joined(separator: ", ") } ?? "any",
            ])
        }
        var bindings = TextTable(columns: [.init("PORT"), .init("VLAN", .right), .init("SWITCH")])
        for binding in report.bindings {
            bindings.append([
                binding.port, binding.vlan.map(String.init) ?? "untagged", binding.logicalSwitch,
            ])
        }
        text += "\nLogical switches\n" + switches.rendered()
        text += "\nBindings\n" + bindings.rendered()
        if !report.problems.isEmpty {
            text += "\nProblems\n" + report.problems.map { "- \($0)\n" }.joined()
        }
        return text
    }

    private static func reasons(_ counts: [CountersReport.ReasonCount]) -> String {
        var table = TextTable(columns: [.init("REASON"), .init("COUNT", .right)])
        for entry in counts { table.append([entry.reason, String(entry.count)]) }
        return table.rendered()
    }
}
