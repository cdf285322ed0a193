/// A `<condition>` (RFC 7047 §5.1): `[column, function, value]`, e.g. `name == "ls0"`.
public struct Condition: Hashable, Sendable {
    public var column: String
    /// `<`, `<=`, `==`, `!=`, `>=`, `>`, `includes`, `excludes`.
    public var function: String
    public var value: Datum

    public init(_ column: String, _ function: String, _ value: Datum) {
        self.column = column
        self.function = function
        self.value = value
    }

    public var json: JSON { [.string(column), .string(function), value.json] }
}

/// A `<mutation>` (RFC 7047 §5.1): `[column, mutator, value]`; mutators are `+=`, `-=`, `*=`,
/// `/=`, `%=`, `insert`, `delete`.
public struct Mutation: Hashable, Sendable {
    public var column: String
    public var mutator: String
    public var value: Datum

    public init(_ column: String, _ mutator: String, _ value: Datum) {
        self.column = column
        self.mutator = mutator
        self.value = value
    }

    public var json: JSON { [.string(column), .string(mutator), value.json] }
}

/// One database operation of a `transact` request (RFC 7047 §5.2).
public enum Operation: Hashable, Sendable {
    /// §5.2.1; `uuidName` lets later operations refer to the new row as `.namedUUID`.
    case insert(table: String, row: Row, uuidName: String? = nil)
    /// §5.2.2; nil `columns` = all.
    case select(table: String, where: [Condition], columns: [String]? = nil)
    /// §5.2.3
    case update(table: String, where: [Condition], row: Row)
    /// §5.2.4
    case mutate(table: String, where: [Condition], mutations: [Mutation])
    /// §5.2.5
    case delete(table: String, where: [Condition])
    /// §5.2.6: `until` is `==` or `!=`; `timeout` in milliseconds, nil = wait forever.
    case wait(
        table: String, where: [Condition], columns: [String], until: String, rows: [Row],
        timeout: Int? = nil)
    /// §5.2.7: text for the database log.
    case comment(String)

    /// The `op` member, as error messages name it.
    public var name: String {
        switch self {
        case .insert: return "insert"
        case .select: return "select"
        case .update: return "update"
        case .mutate: return "mutate"
        case .delete: return "delete"
        case .wait: return "wait"
        case .comment: return "comment"
        }
    }

    public var json: JSON {
        var object: JSONObject = ["op": .string(name)]
        switch self {
        case .insert(let table, let row, let uuidName):
            object["table"] = .string(table)
            object["row"] = row.json
            if let uuidName { object["uuid-name"] = .string(uuidName) }
        case .select(let table, let conditions, let columns):
            object["table"] = .string(table)
            object["where"] = .array(conditions.map(\.json))
            if let columns { object["columns"] = .array(columns.map { .string($0) }) }
        case .update(let table, let conditions, let row):
            object["table"] = .string(table)
            object["where"] = .array(conditions.map(\.json))
            object["row"] = row.json
        case .mutate(let table, let conditions, let mutations):
            object["table"] = .string(table)
            object["where"] = .array(conditions.map(\.json))
            object["mutations"] = .array(mutations.map(\.json))
        case .delete(let table, let conditions):
            object["table"] = .string(table)
            object["where"] = .array(conditions.map(\.json))
        case .wait(let table, let conditions, let columns, let until, let rows, let timeout):
            if let timeout { object["timeout"] = .int(timeout) }
            object["table"] = .string(table)
            object["where"] = .array(conditions.map(\.json))
            object["columns"] = .array(columns.map { .string($0) })
            object["until"] = .string(until)
            object["rows"] = .array(rows.map(\.json))
        case .comment(let text):
            object["comment"] = .string(text)
        }
        return .object(object)
    }
}

/// The result of one successful operation (RFC 7047 §5.2): `uuid` for insert, `count` for
/// update, mutate and delete, `rows` for select; none for wait and comment.
public struct OperationResult: Hashable, Sendable {
    public var uuid: UUID?
    public var count: Int?
    public var rows: [Row]?

    public init(uuid: UUID? = nil, count: Int? = nil, rows: [Row]? = nil) {
        self.uuid = uuid
        self.count = count
        self.rows = rows
    }
}

extension Operation {
    /// Turns a `transact` result array into per-operation results, or the first failure
    /// (RFC 7047 §4.1.3: one result per operation, an error object where one failed and
    /// null after it; one extra error object when the commit itself failed).
    public static func results(_ json: JSON, for operations: [Operation]) throws(OVSDBError)
        -> [OperationResult]
    {
        guard let elements = json.arrayValue else {
            throw .malformedReply(method: "transact", reason: "result is not an array: \(json)")
        }
        var results: [OperationResult] = []
        for (index, element) in elements.enumerated() {
            let operation = index < operations.count ? operations[index].name : "commit"
            if let error = element["error"] {
                throw .operationFailed(
                    index: index, operation: operation, error: error.stringValue ?? "\(error)",
                    details: element["details"]?.stringValue)
            }
            guard index < operations.count else { continue }
            guard let object = element.objectValue else {
                throw .malformedReply(
                    method: "transact", reason: "result \(index) is not an object: \(element)")
            }
            var result = OperationResult()
            do throws(MalformedData) {
                if let uuid = object["uuid"] {
                    guard case .atom(.uuid(let value)) = try Datum(json: uuid) else {
                        throw MalformedData("uuid is not a UUID: \(uuid)")
                    }
                    result.uuid = value
                }
                if let count = object["count"] {
                    guard let value = count.intValue else {
                        throw MalformedData("count is not an integer: \(count)")
                    }
                    result.count = value
                }
                if let rows = object["rows"] {
                    guard let array = rows.arrayValue else {
                        throw MalformedData("rows is not an array: \(rows)")
                    }
                    var decoded: [Row] = []
                    for row in array { decoded.append(try Row(json: row)) }
                    result.rows = decoded
                }
            } catch {
                throw .malformedReply(
                    method: "transact", reason: "result \(index): \(error.reason)")
            }
            results.append(result)
        }
        guard results.count == operations.count else {
            throw .malformedReply(
                method: "transact",
                reason: "\(results.count) results for \(operations.count) operations")
        }
        return results
    }
}
