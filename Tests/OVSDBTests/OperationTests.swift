import Testing

@testable import OVSDB

@Suite struct OperationTests {
    let uuid = UUID("36f2dd9b-6d9e-4d87-b1c1-0c1a4e5b6e2f")!

    @Test func operationsEncodeAsRFC7047Says() {
        let lsName = Condition("name", "==", "ls0")
        let cases: [(Operation, String)] = [
            (
                .insert(
                    table: "Logical_Switch", row: Row(["name": "ls1", "tunnel_key": 5002]),
                    uuidName: "ls1"),
                #"{"op":"insert","table":"Logical_Switch","row":{"name":"ls1","#
                    + #""tunnel_key":5002},"uuid-name":"ls1"}"#
            ),
            (
                .select(table: "Logical_Switch", where: [lsName], columns: ["_uuid"]),
                #"{"op":"select","table":"Logical_Switch","where":[["name","==","ls0"]],"#
                    + #""columns":["_uuid"]}"#
            ),
            (
                .update(table: "Logical_Switch", where: [lsName], row: Row(["tunnel_key": 7])),
                #"{"op":"update","table":"Logical_Switch","where":[["name","==","ls0"]],"#
                    + #""row":{"tunnel_key":7}}"#
            ),
            (
                .mutate(
                    table: "Physical_Switch", where: [],
                    mutations: [Mutation("ports", "insert", .set([.namedUUID("p0")]))]),
                #"{"op":"mutate","table":"Physical_Switch","where":[],"mutations":[["ports","#
                    + #""insert",["set",[["named-uuid","p0"]]]]]}"#
            ),
            (
                .delete(
                    table: "Ucast_Macs_Remote",
                    where: [Condition("_uuid", "==", .atom(.uuid(uuid)))]),
                #"{"op":"delete","table":"Ucast_Macs_Remote","where":[["_uuid","==",["uuid","#
                    + #""36f2dd9b-6d9e-4d87-b1c1-0c1a4e5b6e2f"]]]}"#
            ),
            (
                .wait(
                    table: "Logical_Switch", where: [lsName], columns: ["name"], until: "==",
                    rows: [Row(["name": "ls0"])], timeout: 0),
                #"{"op":"wait","timeout":0,"table":"Logical_Switch","where":[["name","==","#
                    + #""ls0"]],"columns":["name"],"until":"==","rows":[{"name":"ls0"}]}"#
            ),
            (.comment("vtepsh: add ls1"), #"{"op":"comment","comment":"vtepsh: add ls1"}"#),
        ]
        for (operation, text) in cases {
            #expect(operation.json.description == text)
        }
    }

    @Test func resultsDecodePerOperation() throws {
        let operations: [Operation] = [
            .insert(table: "Logical_Switch", row: Row(["name": "ls1"])),
            .update(table: "Logical_Switch", where: [], row: Row()),
            .select(table: "Logical_Switch", where: []),
            .comment("x"),
        ]
        let json = try JSON(
            parsing:
                #"[{"uuid":["uuid","36f2dd9b-6d9e-4d87-b1c1-0c1a4e5b6e2f"]},{"count":2},"#
                + #"{"rows":[{"name":"ls1"}]},{}]"#
        )
        #expect(
            try Operation.results(json, for: operations) == [
                OperationResult(uuid: uuid), OperationResult(count: 2),
                OperationResult(rows: [Row(["name": "ls1"])]), OperationResult(),
            ])
    }

    @Test func theFirstFailedOperationIsNamed() throws {
        let operations: [Operation] = [
            .comment("x"), .insert(table: "Logical_Switch", row: Row(["name": "ls0"])),
        ]
        let json = try JSON(
            parsing:
                #"[{},{"error":"constraint violation","#
                + #""details":"Transaction causes multiple rows in "#
                + #"\"Logical_Switch\" table to have identical values"},null]"#
        )
        #expect(
            throws: OVSDBError.operationFailed(
                index: 1, operation: "insert", error: "constraint violation",
                details:
                    "Transaction causes multiple rows in \"Logical_Switch\" table to have "
                    + "identical values"
            )
        ) { try Operation.results(json, for: operations) }
        // A commit failure is reported after the per-operation results.
        let commit = try JSON(
            parsing:
                #"[{},{"uuid":["uuid","36f2dd9b-6d9e-4d87-b1c1-0c1a4e5b6e2f"]},"#
                + #"{"error":"referential integrity violation"}]"#
        )
        #expect(
            throws: OVSDBError.operationFailed(
                index: 2, operation: "commit", error: "referential integrity violation",
                details: nil)
        ) { try Operation.results(commit, for: operations) }
    }

    @Test func malformedResultsAreReportedNotTrusted() throws {
        let operations: [Operation] = [.insert(table: "Logical_Switch", row: Row())]
        for text in [#"{}"#, #"[{"uuid":"x"}]"#, "[]", #"[{"count":"2"}]"#, "[1]"] {
            let json = try JSON(parsing: text)
            #expect(throws: OVSDBError.self) { try Operation.results(json, for: operations) }
        }
    }
}
