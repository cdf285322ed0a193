import Testing

@testable import OVSDB

@Suite struct JSONTests {
    @Test func integersStayExact() throws {
        #expect(try JSON(parsing: "9223372036854775807") == .int(Int.max))
        #expect(try JSON(parsing: "-9223372036854775808") == .int(Int.min))
        #expect(try JSON(parsing: "5001") == .int(5001))
        #expect(JSON.int(Int.max).description == "9223372036854775807")
    }

    @Test func fractionsAndExponentsAreDoubles() throws {
        #expect(try JSON(parsing: "1.5") == .double(1.5))
        #expect(try JSON(parsing: "-2e3") == .double(-2000))
        #expect(try JSON(parsing: "1E-2") == .double(0.01))
        #expect(JSON.double(2).description == "2.0")
        // Too large for Int: still a number.
        #expect(try JSON(parsing: "18446744073709551616") == .double(18_446_744_073_709_551_616))
    }

    @Test func objectsKeepMemberOrder() throws {
        let json = try JSON(parsing: #" { "z" : 1 , "a" : [ true , false , null ] } "#)
        #expect(json.objectValue?.keys == ["z", "a"])
        #expect(json.description == #"{"z":1,"a":[true,false,null]}"#)
        #expect(json["a"] == [true, false, nil])
    }

    @Test func stringsEscapeAndUnescape() throws {
        let text = #""q\"b\\s\/n\nt\tu\u00e9\ud83d\ude00c\u0001""#
        let json = try JSON(parsing: text)
        #expect(json == .string("q\"b\\s/n\nt\tué😀c\u{1}"))
        #expect(json.description == #""q\"b\\s/n\nt\tué😀c\u0001""#)
        #expect(try JSON(parsing: json.description) == json)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.", "-", "tru", "\"abc",
        "\"\\x\"", "\"\\ud800\"", "\"a\u{1}\"", "[1] 2", "{1:2}", "nul",
    ])
    func malformedTextIsAnErrorNotACrash(text: String) {
        #expect(throws: JSONParseError.self) { try JSON(parsing: text) }
    }

    @Test func deepNestingIsRefused() {
        let text = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSONParseError.self) { try JSON(parsing: text) }
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: JSONParseError.self) { try JSON(parsing: [0x22, 0xFF, 0x22]) }
    }
}
