import Testing

@testable import OVSDB

@Suite struct DatumTests {
    let uuidText = "36f2dd9b-6d9e-4d87-b1c1-0c1a4e5b6e2f"

    @Test func atomsRoundTrip() throws {
        let uuid = try #require(UUID(uuidText))
        let cases: [(String, Datum)] = [
            ("5001", .atom(.integer(5001))),
            ("1.5", .atom(.real(1.5))),
            ("true", .atom(.boolean(true))),
            (#""ls0""#, .atom(.string("ls0"))),
            (#"["uuid","\#(uuidText)"]"#, .atom(.uuid(uuid))),
            (#"["named-uuid","row0"]"#, .atom(.namedUUID("row0"))),
            (#"["set",[]]"#, .empty),
            (
                #"["set",["10.0.0.1","10.0.0.2"]]"#,
                .set([.string("10.0.0.1"), .string("10.0.0.2")])
            ),
            (
                #"["map",[[1,["uuid","\#(uuidText)"]],[100,["uuid","\#(uuidText)"]]]]"#,
                .map([.integer(100): .uuid(uuid), .integer(1): .uuid(uuid)])
            ),
        ]
        for (text, datum) in cases {
            #expect(try Datum(json: JSON(parsing: text)) == datum)
            #expect(datum.json.description == text)
        }
    }

    @Test func uuidsAreValidatedAndLowercased() {
        #expect(UUID("36F2DD9B-6D9E-4D87-B1C1-0C1A4E5B6E2F")?.string == uuidText)
        #expect(UUID("36f2dd9b6d9e4d87b1c10c1a4e5b6e2f") == nil)
        #expect(UUID("36f2dd9b-6d9e-4d87-b1c1-0c1a4e5b6e2g") == nil)
        #expect(UUID("") == nil)
    }

    @Test(arguments: [
        #"["uuid","not-a-uuid"]"#, #"["set",1]"#, #"["map",[[1]]]"#, #"["map",[1,2]]"#, "null",
        #"{"a":1}"#, #"["bogus","x"]"#, #"["set",[[1,2]]]"#,
    ])
    func malformedDataIsAnError(text: String) throws {
        let json = try JSON(parsing: text)
        #expect(throws: MalformedData.self) { try Datum(json: json) }
    }

    @Test func rowsNameTheBadColumn() throws {
        let json = try JSON(parsing: #"{"name":"ls0","tunnel_key":["uuid","x"]}"#)
        #expect(throws: MalformedData("column tunnel_key: \"x\" is not a UUID")) {
            try Row(json: json)
        }
        let row = try Row(json: JSON(parsing: #"{"name":"ls0","tunnel_key":["set",[]]}"#))
        #expect(row["name"] == "ls0")
        #expect(row.json.description == #"{"name":"ls0","tunnel_key":["set",[]]}"#)
    }
}
