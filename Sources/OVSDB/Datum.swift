/// A row's identity in an OVSDB database, RFC 7047 §5.1 `<uuid>`: 36 characters,
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex.
public struct UUID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let string: String

    /// nil unless `string` is a well-formed UUID; uppercase hex is accepted and lowercased.
    public init?(_ string: String) {
        let bytes = Array(string.utf8)
        guard bytes.count == 36 else { return nil }
        for (index, byte) in bytes.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
            } else {
                guard (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66)
                else { return nil }
            }
        }
        self.string = string.lowercased()
    }

    public var description: String { string }

    public static func < (lhs: UUID, rhs: UUID) -> Bool { lhs.string < rhs.string }
}

/// Why a JSON value is not the OVSDB datum, row or message it should be.
public struct MalformedData: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

/// A single value of one of OVSDB's atomic types, RFC 7047 §5.1 `<atom>`.
public enum Atom: Hashable, Sendable, CustomStringConvertible {
    case integer(Int)
    case real(Double)
    case boolean(Bool)
    case string(String)
    case uuid(UUID)
    /// A reference, within one `transact`, to a row that an earlier `insert` in the same
    /// transaction names with `uuid-name` (RFC 7047 §5.1, §5.2.1).
    case namedUUID(String)

    public var json: JSON {
        switch self {
        case .integer(let value): return .int(value)
        case .real(let value): return .double(value)
        case .boolean(let value): return .bool(value)
        case .string(let value): return .string(value)
        case .uuid(let value): return ["uuid", .string(value.string)]
        case .namedUUID(let name): return ["named-uuid", .string(name)]
        }
    }

    public init(json: JSON) throws(MalformedData) {
        switch json {
        case .int(let value): self = .integer(value)
        case .double(let value): self = .real(value)
        case .bool(let value): self = .boolean(value)
        case .string(let value): self = .string(value)
        case .array(let elements):
            guard elements.count == 2, let tag = elements[0].stringValue,
                let text = elements[1].stringValue
            else { throw MalformedData("expected an atom, got \(json)") }
            switch tag {
            case "uuid":
                guard let uuid = UUID(text) else {
                    throw MalformedData("\"\(text)\" is not a UUID")
                }
                self = .uuid(uuid)
            case "named-uuid":
                self = .namedUUID(text)
            default:
                throw MalformedData("expected an atom, got \(json)")
            }
        default:
            throw MalformedData("expected an atom, got \(json)")
        }
    }

    public var description: String {
        switch self {
        case .integer(let value): return String(value)
        case .real(let value): return String(value)
        case .boolean(let value): return String(value)
        case .string(let value): return "\"\(value)\""
        case .uuid(let value): return value.string
        case .namedUUID(let name): return "@\(name)"
        }
    }
}

extension Atom: Comparable {
    /// Orders maps' keys when we write them, so requests are byte-for-byte reproducible.
    public static func < (lhs: Atom, rhs: Atom) -> Bool {
        switch (lhs, rhs) {
        case (.integer(let a), .integer(let b)): return a < b
        case (.real(let a), .real(let b)): return a < b
        case (.boolean(let a), .boolean(let b)): return !a && b
        case (.string(let a), .string(let b)): return a < b
        case (.uuid(let a), .uuid(let b)): return a < b
        case (.namedUUID(let a), .namedUUID(let b)): return a < b
        default: return lhs.rank < rhs.rank
        }
    }

    private var rank: Int {
        switch self {
        case .integer: return 0
        case .real: return 1
        case .boolean: return 2
        case .string: return 3
        case .uuid: return 4
        case .namedUUID: return 5
        }
    }
}

/// The value of one column, RFC 7047 §5.1 `<value>`: an atom, a set or a map. On the wire a
/// single atom also stands for a set of one; `atoms` reads both the same way.
public enum Datum: Hashable, Sendable, CustomStringConvertible {
    case atom(Atom)
    case set([Atom])
    case map([Atom: Atom])

    public static let empty = Datum.set([])

    /// RFC 7047 §5.1: `["set", […]]`, `["map", [[k, v], …]]` (keys written in order), or the
    /// bare atom.
    public var json: JSON {
        switch self {
        case .atom(let atom):
            return atom.json
        case .set(let atoms):
            return ["set", .array(atoms.map(\.json))]
        case .map(let pairs):
            return [
                "map",
                .array(pairs.sorted { $0.key < $1.key }.map { [$0.key.json, $0.value.json] }),
            ]
        }
    }

    public init(json: JSON) throws(MalformedData) {
        if case .array(let elements) = json, elements.count == 2, let tag = elements[0].stringValue,
            tag == "set" || tag == "map"
        {
            guard let members = elements[1].arrayValue else {
                throw MalformedData("\(tag) contents must be an array, got \(elements[1])")
            }
            if tag == "set" {
                var atoms: [Atom] = []
                for member in members { atoms.append(try Atom(json: member)) }
                self = .set(atoms)
            } else {
                var pairs: [Atom: Atom] = [:]
                for member in members {
                    guard let pair = member.arrayValue, pair.count == 2 else {
                        throw MalformedData("map entry must be [key, value], got \(member)")
                    }
                    pairs[try Atom(json: pair[0])] = try Atom(json: pair[1])
                }
                self = .map(pairs)
            }
        } else {
            self = .atom(try Atom(json: json))
        }
    }

    /// The members of a set (a bare atom is a set of one); empty for a map.
    public var atoms: [Atom] {
        switch self {
        case .atom(let atom): return [atom]
        case .set(let atoms): return atoms
        case .map: return []
        }
    }

    /// The entries of a map; an empty set (`["set", []]`) is also an empty map.
    public var pairs: [Atom: Atom]? {
        switch self {
        case .map(let pairs): return pairs
        case .set(let atoms) where atoms.isEmpty: return [:]
        default: return nil
        }
    }

    public var description: String { json.description }
}

extension Datum: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .atom(.string(value)) }
    public init(integerLiteral value: Int) { self = .atom(.integer(value)) }
    public init(booleanLiteral value: Bool) { self = .atom(.boolean(value)) }
}

/// A row as the server reports it (RFC 7047 §5.1 `<row>`): column name → value. Rows in
/// monitor updates and `select` results carry only the columns asked for.
public struct Row: Hashable, Sendable {
    public var columns: [String: Datum]

    public init(_ columns: [String: Datum] = [:]) {
        self.columns = columns
    }

    public subscript(column: String) -> Datum? {
        get { columns[column] }
        set { columns[column] = newValue }
    }

    /// Columns written in name order, so requests are reproducible.
    public var json: JSON {
        .object(JSONObject(columns.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) }))
    }

    public init(json: JSON) throws(MalformedData) {
        guard let object = json.objectValue else {
            throw MalformedData("a row must be a JSON object, got \(json)")
        }
        var columns: [String: Datum] = [:]
        for member in object.members {
            do {
                columns[member.key] = try Datum(json: member.value)
            } catch {
                throw MalformedData("column \(member.key): \(error.reason)")
            }
        }
        self.columns = columns
    }
}
