/// Open vSwitch's `monitor_cond_since` (ovsdb-server(7) §4.1.15, with `update3` §4.1.16 and
/// `<table-updates2>` §4.1.14): after a reconnection a client that kept its replica asks only
/// for what changed since the last transaction it saw; a clustered server answers with those
/// changes (`found`), any other with the whole contents.
///
/// `<table-updates2>` differ from RFC 7047's `<table-updates>`: `initial` and `insert` carry a
/// row without its default-valued columns, `delete` carries nothing, and `modify` a diff: a
/// scalar column's new value, a set column's elements to add or remove (those present are
/// removed), a map column's pairs to add, change or remove (a pair equal to the present one is
/// removed); an optional column (a set of at most one) gets its new value, as ovsdb-server
/// sends it. Applying a diff needs each column's type, from the schema (`ColumnTypes`).

/// What a column holds, from the schema: how a `modify` diff applies to it, and its default.
public enum ColumnKind: Hashable, Sendable {
    /// Exactly one value (`min` = `max` = 1, no `value`): its default is `defaultAtom`.
    case scalar(defaultAtom: Atom)
    /// At most one value (`min` 0, `max` 1): a `modify` carries the new value.
    case optional
    /// A set (anything else without `value`).
    case set
    /// A map (`value` given).
    case map
}

/// Table → column → kind, read from a `get_schema` reply (RFC 7047 §3.2).
public struct ColumnTypes: Hashable, Sendable {
    public var tables: [String: [String: ColumnKind]]

    public init(_ tables: [String: [String: ColumnKind]] = [:]) { self.tables = tables }

    public init(schema: JSON) throws(MalformedData) {
        guard let tables = schema["tables"]?.objectValue else {
            throw MalformedData("the schema has no tables object")
        }
        var result: [String: [String: ColumnKind]] = [:]
        for (table, definition) in tables.members {
            guard let columns = definition["columns"]?.objectValue else {
                throw MalformedData("table \(table) of the schema has no columns")
            }
            var kinds: [String: ColumnKind] = [:]
            for (column, columnDefinition) in columns.members {
                guard let type = columnDefinition["type"] else {
                    throw MalformedData("column \(table).\(column) has no type")
                }
                kinds[column] = try Self.kind(type)
            }
            // Every table has these (RFC 7047 §3.2).
            kinds["_uuid"] = .scalar(defaultAtom: .uuid(UUID.zero))
            kinds["_version"] = .scalar(defaultAtom: .uuid(UUID.zero))
            result[table] = kinds
        }
        self.tables = result
    }

    private static func kind(_ type: JSON) throws(MalformedData) -> ColumnKind {
        if let atomic = type.stringValue { return .scalar(defaultAtom: try defaultAtom(atomic)) }
        guard type.objectValue != nil, let key = type["key"] else {
            throw MalformedData("a column type must be an atomic type or an object with a key")
        }
        if type["value"] != nil { return .map }
        let minimum = type["min"]?.intValue ?? 1
        let maximum = type["max"]?.intValue ?? (type["max"]?.stringValue == "unlimited" ? -1 : 1)
        if minimum == 0 && maximum == 1 { return .optional }
        guard minimum == 1, maximum == 1 else { return .set }
        let atomic = key.stringValue ?? key["type"]?.stringValue
        guard let atomic else { throw MalformedData("a column's key has no type") }
        return .scalar(defaultAtom: try defaultAtom(atomic))
    }

    private static func defaultAtom(_ type: String) throws(MalformedData) -> Atom {
        switch type {
        case "integer": return .integer(0)
        case "real": return .real(0)
        case "boolean": return .boolean(false)
        case "string": return .string("")
        case "uuid": return .uuid(UUID.zero)
        default: throw MalformedData("unknown atomic type \(type)")
        }
    }
}

extension UUID {
    /// All zeros: the default UUID, and the `last-txn-id` of a client that has seen nothing.
    public static let zero = UUID("00000000-0000-0000-0000-000000000000")!
}

extension Replica {
    /// Applies `<table-updates2>` to the monitored `columns` of each table (nil: all), with the
    /// schema's `types`; returns the same changes as RFC 7047 updates (whole new rows), and
    /// the rows it could not apply, described.
    public mutating func apply2(
        _ json: JSON, types: ColumnTypes, columns: [String: [String]?]
    ) -> (updates: TableUpdates, problems: [String]) {
        TableUpdates.walk(json) { table, uuid, change throws(MalformedData) in
            let kinds = types.tables[table] ?? [:]
            let monitored = (columns[table] ?? nil) ?? kinds.keys.filter { !$0.hasPrefix("_") }
            let old = self.tables[table]?[uuid]
            let new = try Self.row(after: change, old: old, kinds: kinds, monitored: monitored)
            self.tables[table, default: [:]][uuid] = new
            return RowUpdate(old: old, new: new)
        }
    }

    /// The row after one `<row-update2>`; nil when it is deleted.
    private static func row(
        after change: JSON, old: Row?, kinds: [String: ColumnKind], monitored: [String]
    ) throws(MalformedData) -> Row? {
        guard let object = change.objectValue, object.members.count == 1,
            let member = object.members.first
        else { throw MalformedData("a row update must have one member, got \(change)") }
        let (operation, value) = (member.key, member.value)
        switch operation {
        case "initial", "insert":
            // Default-valued columns are left out: they are put back.
            var row = Row()
            for column in monitored {
                switch kinds[column] {
                case .scalar(let atom)?: row[column] = .atom(atom)
                case .map?: row[column] = .map([:])
                case .set?, .optional?: row[column] = .empty
                case nil: break
                }
            }
            for (column, datum) in try Row(json: value).columns { row[column] = datum }
            return row
        case "delete":
            return nil
        case "modify":
            guard var row = old else { throw MalformedData("modify of a row not in the replica") }
            for (column, diff) in try Row(json: value).columns {
                switch kinds[column] {
                case .scalar?, .optional?, nil:
                    row[column] = diff
                case .set?:
                    var atoms = row[column]?.atoms ?? []
                    for atom in diff.atoms {
                        if let at = atoms.firstIndex(of: atom) {
                            atoms.remove(at: at)
                        } else {
                            atoms.append(atom)
                        }
                    }
                    // As the server sends it: a set of one is its atom.
                    row[column] = atoms.count == 1 ? .atom(atoms[0]) : .set(atoms.sorted())
                case .map?:
                    var pairs = row[column]?.pairs ?? [:]
                    for (key, value) in diff.pairs ?? [:] {
                        pairs[key] = pairs[key] == value ? nil : value
                    }
                    row[column] = .map(pairs)
                }
            }
            return row
        default:
            throw MalformedData("unknown row update \"\(operation)\"")
        }
    }
}
