import Testing

@testable import OVSDB

@Suite struct MonitorTests {
    let a = "aaaaaaaa-0000-0000-0000-000000000001"
    let b = "bbbbbbbb-0000-0000-0000-000000000002"

    @Test func monitorRequestsEncode() {
        let json = MonitorRequest.json([
            MonitorRequest(table: "Logical_Switch", columns: ["name", "tunnel_key"]),
            MonitorRequest(table: "Physical_Locator"),
        ])
        #expect(
            json.description
                == #"{"Logical_Switch":{"columns":["name","tunnel_key"]},"Physical_Locator":{}}"#)
    }

    @Test func replicaFollowsInitialInsertModifyDelete() throws {
        var replica = Replica()
        let initial = TableUpdates.decode(
            try JSON(
                parsing:
                    #"{"Logical_Switch":{"\#(a)":{"new":{"name":"ls0","tunnel_key":["set",[]]}}}}"#)
        )
        #expect(initial.problems == [])
        replica.apply(initial.updates)
        let uuidA = try #require(UUID(a))
        let uuidB = try #require(UUID(b))
        #expect(replica["Logical_Switch"][uuidA]?["name"] == "ls0")

        let update = TableUpdates.decode(
            try JSON(
                parsing: #"""
                    {"Logical_Switch":{"\#(a)":{"old":{"tunnel_key":["set",[]]},
                    "new":{"name":"ls0","tunnel_key":5001}},
                    "\#(b)":{"new":{"name":"ls1","tunnel_key":["set",[]]}}}}
                    """#))
        replica.apply(update.updates)
        #expect(replica["Logical_Switch"][uuidA]?["tunnel_key"] == 5001)
        #expect(replica["Logical_Switch"].count == 2)

        replica.apply(
            TableUpdates.decode(
                try JSON(parsing: #"{"Logical_Switch":{"\#(a)":{"old":{"name":"ls0"}}}}"#)
            ).updates)
        #expect(replica["Logical_Switch"].keys.sorted() == [uuidB])
    }

    @Test func malformedRowsAreLeftOutAndDescribed() throws {
        let decoded = TableUpdates.decode(
            try JSON(
                parsing: #"""
                    {"Logical_Switch":{"not-a-uuid":{"new":{}},
                    "\#(a)":{"new":{"name":["uuid","x"]}},
                    "\#(b)":{"new":{"name":"ok"}}},"Physical_Port":[]}
                    """#))
        #expect(decoded.updates.tables["Logical_Switch"]?.count == 1)
        #expect(
            decoded.problems == [
                "Logical_Switch: \"not-a-uuid\" is not a row UUID",
                "Logical_Switch row \(a): column name: \"x\" is not a UUID",
                "Physical_Port: table update must be an object",
            ])
        #expect(TableUpdates.decode(.int(1)).problems == ["table updates must be an object, got 1"])
    }
}
