import Testing

@testable import OVSDB

/// `<table-updates2>` applied to a replica with the schema's column types (ovsdb-server(7)
/// §4.1.14), on hand-written updates.
@Suite struct MonitorCondSinceTests {
    static let schema = try! JSON(
        parsing: #"""
            {"name": "t", "tables": {"T": {"columns": {
              "name": {"type": "string"},
              "key": {"type": {"key": "integer", "min": 0, "max": 1}},
              "ips": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
              "config": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
              "up": {"type": {"key": {"type": "boolean"}}}}}}}
            """#)
    static let row = "11111111-2222-3333-4444-555555555555"

    @Test func columnKindsComeFromTheSchema() throws {
        let types = try ColumnTypes(schema: Self.schema)
        #expect(types.tables["T"]?["name"] == .scalar(defaultAtom: .string("")))
        #expect(types.tables["T"]?["up"] == .scalar(defaultAtom: .boolean(false)))
        #expect(types.tables["T"]?["key"] == .optional)
        #expect(types.tables["T"]?["ips"] == .set)
        #expect(types.tables["T"]?["config"] == .map)
        #expect(throws: MalformedData.self) { try ColumnTypes(schema: ["tables": 1]) }
    }

    @Test func insertFillsDefaultsAndModifyAppliesDiffsAndDeleteRemoves() throws {
        let types = try ColumnTypes(schema: Self.schema)
        var replica = Replica(["T": [:]])
        let uuid = try #require(UUID(Self.row))
        func apply(_ text: String) throws -> (TableUpdates, [String]) {
            replica.apply2(try JSON(parsing: text), types: types, columns: ["T": nil])
        }
        // Default-valued columns are left out of an insert: they come back as defaults.
        var (updates, problems) = try apply(
            #"{"T": {"\#(Self.row)": {"insert": {"name": "a", "ips": ["set", ["x", "y"]], "config": ["map", [["k", "1"], ["j", "2"]]]}}}}"#
        )
        #expect(problems == [])
        #expect(
            replica["T"][uuid]
                == Row([
                    "name": "a", "up": false, "key": .empty,
                    "ips": .set([.string("x"), .string("y")]),
                    "config": .map([.string("k"): .string("1"), .string("j"): .string("2")]),
                ]))
        #expect(updates.tables["T"]?[uuid]?.old == nil)
        // A set diff toggles its elements, a map diff adds, changes or (same pair) removes,
        // an optional column and a scalar get the new value.
        (updates, problems) = try apply(
            #"{"T": {"\#(Self.row)": {"modify": {"ips": ["set", ["y", "z"]], "config": ["map", [["k", "9"], ["j", "2"], ["n", "3"]]], "key": 5, "up": true}}}}"#
        )
        #expect(problems == [])
        #expect(
            replica["T"][uuid]
                == Row([
                    "name": "a", "up": true, "key": 5, "ips": .set([.string("x"), .string("z")]),
                    "config": .map([.string("k"): .string("9"), .string("n"): .string("3")]),
                ]))
        #expect(updates.tables["T"]?[uuid]?.new == replica["T"][uuid])
        (_, problems) = try apply(
            #"{"T": {"\#(Self.row)": {"modify": {"key": ["set", []], "ips": "x"}}}}"#)
        #expect(replica["T"][uuid]?["key"] == .empty && replica["T"][uuid]?["ips"] == "z")
        (updates, problems) = try apply(#"{"T": {"\#(Self.row)": {"delete": null}}}"#)
        #expect(replica["T"][uuid] == nil && updates.tables["T"]?[uuid]?.new == nil)
        // A modify of a row not in the replica, or an unknown update, is reported.
        (_, problems) = try apply(#"{"T": {"\#(Self.row)": {"modify": {"up": false}}}}"#)
        #expect(problems.count == 1)
        (_, problems) = try apply(#"{"T": {"\#(Self.row)": {"rename": {}}}}"#)
        #expect(problems.count == 1)
    }
}
