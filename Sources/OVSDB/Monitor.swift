/// What to monitor in one table (RFC 7047 §4.1.5 `<monitor-request>`): some columns, or all
/// of them when `columns` is nil. Initial contents, inserts, deletes and modifications are
/// all reported (the default `select`).
public struct MonitorRequest: Hashable, Sendable {
    public var table: String
    public var columns: [String]?

    public init(table: String, columns: [String]? = nil) {
        self.table = table
        self.columns = columns
    }

    /// The `<monitor-requests>` object for `requests`, tables in the order given.
    public static func json(_ requests: [MonitorRequest]) -> JSON {
        .object(
            JSONObject(
                requests.map { request in
                    var object = JSONObject()
                    if let columns = request.columns {
                        object["columns"] = .array(columns.map { .string($0) })
                    }
                    return (request.table, .object(object))
                }))
    }
}

/// One row's change in a monitor reply or `update` notification (RFC 7047 §4.1.6
/// `<row-update>`): `old` only for a delete, `new` only for an insert or the initial contents,
/// both for a modification (`old` then holds only the columns that changed).
public struct RowUpdate: Hashable, Sendable {
    public var old: Row?
    public var new: Row?

    public init(old: Row?, new: Row?) {
        self.old = old
        self.new = new
    }
}

/// A `<table-updates>` object (RFC 7047 §4.1.6): table → row UUID → change.
public struct TableUpdates: Hashable, Sendable {
    public var tables: [String: [UUID: RowUpdate]]

    public init(_ tables: [String: [UUID: RowUpdate]] = [:]) {
        self.tables = tables
    }

    /// Decodes what can be decoded; each row that cannot (a bad UUID, a malformed datum) is
    /// left out and described in `problems`, so one bad row never loses the rest.
    public static func decode(_ json: JSON) -> (updates: TableUpdates, problems: [String]) {
        walk(json) { _, _, change throws(MalformedData) in
            guard change.objectValue != nil else {
                throw MalformedData("row update must be an object")
            }
            let old = try change["old"].map { json throws(MalformedData) in try Row(json: json) }
            let new = try change["new"].map { json throws(MalformedData) in try Row(json: json) }
            guard old != nil || new != nil else {
                throw MalformedData("row update has neither old nor new")
            }
            return RowUpdate(old: old, new: new)
        }
    }

    /// Walks a `<table-updates>` or `<table-updates2>` object: `change` turns each row's update
    /// (table, row UUID, its JSON) into a `RowUpdate`. A table or row that cannot be read is
    /// left out and described in `problems`.
    static func walk(
        _ json: JSON, _ change: (String, UUID, JSON) throws(MalformedData) -> RowUpdate
    ) -> (updates: TableUpdates, problems: [String]) {
        var updates = TableUpdates()
        var problems: [String] = []
        guard let tables = json.objectValue else {
            return (updates, ["table updates must be an object, got \(json)"])
        }
        for (table, rowsJSON) in tables.members {
            guard let rows = rowsJSON.objectValue else {
                problems.append("\(table): table update must be an object")
                continue
            }
            var tableUpdates: [UUID: RowUpdate] = [:]
            for (uuidText, rowJSON) in rows.members {
                guard let uuid = UUID(uuidText) else {
                    problems.append("\(table): \"\(uuidText)\" is not a row UUID")
                    continue
                }
                do throws(MalformedData) {
                    tableUpdates[uuid] = try change(table, uuid, rowJSON)
                } catch {
                    problems.append("\(table) row \(uuid): \(error.reason)")
                }
            }
            updates.tables[table] = tableUpdates
        }
        return (updates, problems)
    }
}

/// The client's copy of the monitored part of the database: table → row UUID → row.
public struct Replica: Hashable, Sendable {
    public var tables: [String: [UUID: Row]]

    public init(_ tables: [String: [UUID: Row]] = [:]) {
        self.tables = tables
    }

    public subscript(table: String) -> [UUID: Row] {
        tables[table] ?? [:]
    }

    /// Applies monitor updates (RFC 7047 §4.1.6): `new` replaces the row (it carries every
    /// monitored column), no `new` deletes it.
    public mutating func apply(_ updates: TableUpdates) {
        for (table, rows) in updates.tables {
            var contents = tables[table] ?? [:]
            for (uuid, change) in rows {
                contents[uuid] = change.new
            }
            tables[table] = contents
        }
    }
}
