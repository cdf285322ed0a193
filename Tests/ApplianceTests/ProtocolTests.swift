import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

/// Request parsing: what is accepted, and the exact words of every refusal.
@Suite struct ProtocolTests {
    func parse(_ text: String) -> Result<ControlRequest, ControlRefusal> {
        ControlRequest.parse(Array(text.utf8))
    }

    func refusal(_ text: String) -> ControlRefusal? {
        if case .failure(let refusal) = parse(text) { return refusal }
        return nil
    }

    @Test func requestsOfEveryCommandParse() throws {
        #expect(
            try parse(#"{"id":1,"command":"mac-table"}"#).get()
                == ControlRequest(id: 1, command: .macTable(MACTableQuery())))
        #expect(
            try parse(#"{"command":"mac-table","id":2,"arguments":{"mac":"AA:BB:CC:DD:EE:0F"}}"#)
                .get()
                == ControlRequest(
                    id: 2, command: .macTable(MACTableQuery(mac: "aa:bb:cc:dd:ee:0f"))))
        #expect(
            try parse(#"{"id":3,"command":"counters","arguments":{},"client":"vtepsh 1.0"}"#).get()
                == ControlRequest(id: 3, command: .counters))
        #expect(
            try parse(#"{"id":-4,"command":"configuration","arguments":null}"#).get()
                == ControlRequest(id: -4, command: .configuration))
    }

    @Test func encodedRequestsParseBack() throws {
        for command: ControlCommand in [
            .macTable(MACTableQuery()),
            .macTable(MACTableQuery(logicalSwitch: "a/b", mac: "00:00:5e:00:53:01")),
            .counters, .configuration,
        ] {
            let request = ControlRequest(id: 77, command: command)
            #expect(try ControlRequest.parse(request.encoded()).get() == request)
        }
    }

    @Test func wellFormedButWrongRequestsAreRefusedAndKeepTheConnection() {
        let cases: [(String, ControlRefusal)] = [
            (
                #"{"id":5,"command":"mac-tables"}"#,
                ControlRefusal(
                    id: 5,
                    message:
                        "unknown command \"mac-tables\"; commands: "
                        + ControlCommand.names.joined(separator: ", "),
                    closesConnection: false)
            ),
            (
                #"{"id":6,"command":"mac-table","arguments":{"switch":42}}"#,
                ControlRefusal(
                    id: 6, message: "argument \"switch\" of mac-table must be a string",
                    closesConnection: false)
            ),
            (
                #"{"id":7,"command":"mac-table","arguments":{"mac":"00:00:5e:00:53"}}"#,
                ControlRefusal(
                    id: 7,
                    message:
                        "argument \"mac\" of mac-table: \"00:00:5e:00:53\" is not a MAC address (use aa:bb:cc:dd:ee:ff)",
                    closesConnection: false)
            ),
            (
                #"{"id":8,"command":"mac-table","arguments":{"swtich":"web","vni":5}}"#,
                ControlRefusal(
                    id: 8,
                    message:
                        "unknown arguments \"swtich\", \"vni\" for mac-table, which takes mac, switch",
                    closesConnection: false)
            ),
            (
                #"{"id":9,"command":"counters","arguments":{"switch":"web"}}"#,
                ControlRefusal(
                    id: 9,
                    message: "unknown argument \"switch\" for counters, which takes no arguments",
                    closesConnection: false)
            ),
            (
                #"{"id":10,"command":"counters","arguments":["web"]}"#,
                ControlRefusal(
                    id: 10, message: "\"arguments\" must be a JSON object", closesConnection: false)
            ),
            (
                #"{"id":11,"command":7}"#,
                ControlRefusal(
                    id: 11,
                    message:
                        "request needs a string \"command\": one of "
                        + ControlCommand.names.joined(separator: ", "),
                    closesConnection: false)
            ),
            (
                #"{"id":"1","command":"counters"}"#,
                ControlRefusal(
                    id: nil, message: "request needs an integer \"id\"", closesConnection: false)
            ),
            (
                #"{"id":1.5,"command":"counters"}"#,
                ControlRefusal(
                    id: nil, message: "request needs an integer \"id\"", closesConnection: false)
            ),
            (
                #"{"command":"counters"}"#,
                ControlRefusal(
                    id: nil, message: "request needs an integer \"id\"", closesConnection: false)
            ),
            (
                #"[1,2,3]"#,
                ControlRefusal(
                    id: nil, message: "a request must be a JSON object with \"id\" and \"command\"",
                    closesConnection: false)
            ),
        ]
        for (line, expected) in cases {
            #expect(refusal(line) == expected, "\(line)")
        }
    }

    @Test func textThatIsNotJSONIsRefusedAndClosesTheConnection() {
        for line in ["garbage", #"{"id":1,"command":"counters""#, "{\"id\":1}}", "\u{0}"] {
            let refused = refusal(line)
            #expect(refused?.closesConnection == true, "\(line)")
            #expect(refused?.message.hasPrefix("request is not valid JSON") == true, "\(line)")
        }
        #expect(
            ControlRequest.parse([0x22, 0xC3, 0x28, 0x22])
                == .failure(
                    ControlRefusal(
                        id: nil, message: "request is not valid UTF-8", closesConnection: true)))
    }

    @Test func everyResultRoundTripsThroughItsWireForm() throws {
        let results: [(ControlCommand, ControlResult)] = [
            (.macTable(MACTableQuery()), .macTable(Samples.macTable)),
            (.counters, .counters(Samples.counters)),
            (.configuration, .configuration(Samples.configuration)),
        ]
        for (command, result) in results {
            let line = ControlResponse(id: 1, outcome: .success(result)).encoded()
            #expect(try command.decodeResult(from: .init(line)) == result)
        }
    }

    @Test func counterAndConfigurationFieldNamesAreTheDocumentedOnes() {
        let counters = String(
            decoding: ControlResponse(id: 1, outcome: .success(.counters(Samples.counters)))
                .encoded(),
            as: UTF8.self)
        for field in [
            "switches", "ports", "vteps", "drops", "malformed", "name", "vni", "fromAccess",
            "fromTunnel", "toAccess", "encapsulated", "flooded", "learned", "moves",
            "learningRefused", "rxFrames", "txFrames", "ip", "encapsulation", "reason", "count",
            "offloads",
        ] {
            #expect(counters.contains("\"\(field)\":"), "\(field)")
        }
        let configuration = String(
            decoding: ControlResponse(
                id: 1, outcome: .success(.configuration(Samples.configuration))
            )
            .encoded(), as: UTF8.self)
        for field in [
            "physicalSwitch", "tunnelIPs", "underlay", "ports", "switches", "replication", "mode",
            "locators", "macAgeing", "macLimit", "allowedSources", "bindings", "switch", "vlan",
            "problems",
        ] {
            #expect(configuration.contains("\"\(field)\":"), "\(field)")
        }
        #expect(configuration.contains(#""mode":"head-end""#))
    }
}
