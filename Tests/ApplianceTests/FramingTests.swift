import NIOCore
import NIOEmbedded
import Packet
import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

/// The framing and codec handlers on an `EmbeddedChannel`: exact bytes in, exact bytes out.
@Suite struct FramingTests {
    /// The server's pipeline without the socket.
    struct ServerPipeline {
        let channel = EmbeddedChannel()

        init(maximumLength: Int = ControlLineDecoder.defaultMaximumLength) throws {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(
                ByteToMessageHandler(ControlLineDecoder(maximumLength: maximumLength)))
            try pipeline.addHandler(ControlRequestDecoder())
            try pipeline.addHandler(MessageToByteHandler(ControlResponseEncoder()))
        }

        func receive(_ bytes: [UInt8]) throws {
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        }

        func receive(_ text: String) throws { try receive(Array(text.utf8)) }

        func inbound() throws -> [ControlInbound] {
            var all: [ControlInbound] = []
            while let item = try channel.readInbound(as: ControlInbound.self) { all.append(item) }
            return all
        }
    }

    @Test func linesAreSplitOnNewlineAcrossReadsWithCRLFAndBlankLinesTolerated() throws {
        let server = try ServerPipeline()
        try server.receive(#"{"id":1,"comm"#)
        #expect(try server.inbound() == [])
        try server.receive(
            "and\":\"counters\"}\r\n\n\n{\"id\":2,\"command\":\"configuration\"}\n{\"id\":3,")
        #expect(
            try server.inbound() == [
                .request(ControlRequest(id: 1, command: Counters())),
                .request(ControlRequest(id: 2, command: Configuration())),
            ])
        try server.receive(
            #""command":"mac-table","arguments":{"switch":"web","mac":"00-00-5E-00-53-01"}}"#)
        #expect(try server.inbound() == [])
        try server.receive("\n")
        #expect(
            try server.inbound() == [
                .request(
                    ControlRequest(
                        id: 3,
                        command: ShowMACTable(
                            logicalSwitch: "web", mac: MACAddress("00:00:5e:00:53:01")!)))
            ])
    }

    @Test func anUnterminatedLastLineAtEndOfStreamIsARequest() throws {
        let server = try ServerPipeline()
        try server.receive(#"{"id":9,"command":"counters"}"#)
        #expect(try server.inbound() == [])
        server.channel.pipeline.fireChannelInactive()
        #expect(try server.inbound() == [.request(ControlRequest(id: 9, command: Counters()))])
    }

    @Test func aLineAtTheLimitPassesOneByteMoreIsRefusedAndTheRestDiscarded() throws {
        let request = #"{"id":1,"command":"counters"}"#
        let limit = request.utf8.count
        let server = try ServerPipeline(maximumLength: limit)
        try server.receive(request + "\n")
        #expect(try server.inbound() == [.request(ControlRequest(id: 1, command: Counters()))])
        // Reported as soon as the limit is crossed, before any newline arrives.
        try server.receive(" " + request)
        #expect(
            try server.inbound() == [
                .refused(
                    ControlRefusal(
                        id: nil, message: "request line longer than \(limit) bytes",
                        closesConnection: true))
            ])
        try server.receive("\n" + request + "\n")
        #expect(try server.inbound() == [])
    }

    @Test func aLongLineWithItsNewlineInTheSameReadIsRefused() throws {
        let server = try ServerPipeline(maximumLength: 8)
        try server.receive("123456789\n" + #"{"id":1,"command":"counters"}"# + "\n")
        #expect(
            try server.inbound() == [
                .refused(
                    ControlRefusal(
                        id: nil, message: "request line longer than 8 bytes",
                        closesConnection: true))
            ])
    }

    @Test func garbageAndInvalidUTF8AreRefusedAndCloseTheConnection() throws {
        let server = try ServerPipeline()
        try server.receive("hello\n")
        try server.receive([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D, 0x0A])
        let refusals = try server.inbound()
        #expect(refusals.count == 2)
        guard case .refused(let garbage) = refusals.first, case .refused(let utf8) = refusals.last
        else {
            Issue.record("expected two refusals, got \(refusals)")
            return
        }
        #expect(garbage.id == nil && garbage.closesConnection)
        #expect(garbage.message.hasPrefix("request is not valid JSON"))
        #expect(
            utf8
                == ControlRefusal(
                    id: nil, message: "request is not valid UTF-8", closesConnection: true))
    }

    @Test func responsesAreOneLineEachWithKeysInDocumentedOrder() throws {
        let server = try ServerPipeline()
        let row = MACTableRow(
            logicalSwitch: "web", vni: 5001, mac: "00:00:5e:00:53:01", type: .local,
            isStatic: false, port: "eth1", vlan: 100, age: 12)
        try server.channel.writeOutbound(
            ControlResponse(id: 1, outcome: .success(.macTable([row]))))
        try server.channel.writeOutbound(
            ControlResponse(
                id: nil, outcome: .failure(ControlFailure("request is not valid UTF-8"))))
        #expect(
            try server.channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
                == #"{"id":1,"ok":true,"result":[{"age":12,"mac":"00:00:5e:00:53:01","port":"eth1","#
                + #""static":false,"switch":"web","type":"local","vlan":100,"vni":5001}]}"# + "\n")
        #expect(
            try server.channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
                == #"{"id":null,"ok":false,"error":"request is not valid UTF-8"}"# + "\n")
    }

    // MARK: - Client handler

    struct ClientPipeline {
        let channel = EmbeddedChannel()

        init() throws {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(ControlLineDecoder()))
            try channel.pipeline.syncOperations.addHandler(ControlClientHandler())
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/run/vtepd.sock")).wait()
        }

        func send(_ command: any ControlCommand, timeout: TimeAmount = .seconds(10)) throws
            -> EventLoopFuture<ControlResult>
        {
            let promise = channel.eventLoop.makePromise(of: ControlResult.self)
            try channel.writeOutbound(
                PendingControlRequest(command: command, timeout: timeout, promise: promise))
            return promise.futureResult
        }

        func sent() throws -> String? {
            try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
        }

        func receive(_ text: String) throws { try channel.writeInbound(ByteBuffer(string: text)) }
    }

    @Test func clientNumbersRequestsAndMatchesResponsesById() async throws {
        let client = try ClientPipeline()
        let table = try client.send(ShowMACTable(logicalSwitch: "web"))
        let counters = try client.send(Counters())
        #expect(
            try client.sent() == #"{"id":1,"command":"mac-table","arguments":{"switch":"web"}}"#
                + "\n")
        #expect(try client.sent() == #"{"id":2,"command":"counters"}"# + "\n")
        try client.receive(
            #"{"id":2,"ok":true,"result":{"switches":[],"ports":[],"vteps":[],"drops":[{"reason":"unknown_vni","count":3}],"malformed":[]}}"#
                + "\n" + #"{"id":1,"ok":false,"error":"no logical switch named web"}"# + "\n")
        #expect(
            try await counters.get()
                == .counters(
                    CountersReport(drops: [
                        CountersReport.ReasonCount(reason: "unknown_vni", count: 3)
                    ])
                ))
        await #expect(
            throws: ControlClientError.refused(
                command: "mac-table", message: "no logical switch named web")
        ) {
            try await table.get()
        }
    }

    @Test func clientTimesOutAndDropsTheLateResponse() async throws {
        let client = try ClientPipeline()
        let late = try client.send(Configuration(), timeout: .seconds(2))
        client.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        await #expect(throws: ControlClientError.timedOut(command: "configuration", seconds: 2)) {
            try await late.get()
        }
        try client.receive(#"{"id":1,"ok":true,"result":{"physicalSwitch":"gw"}}"# + "\n")
        #expect(client.channel.isActive)
    }

    @Test func clientFailsPendingRequestsOnCloseAndOnMalformedResponses() async throws {
        let client = try ClientPipeline()
        let first = try client.send(Counters())
        try client.receive("not json\n")
        await #expect(throws: ControlClientError.self) { try await first.get() }
        #expect(!client.channel.isActive)

        let other = try ClientPipeline()
        let pending = try other.send(Counters())
        _ = try? other.channel.finish()
        await #expect(throws: ControlClientError.disconnected(command: "counters")) {
            try await pending.get()
        }
    }

    @Test func clientReportsAResultOfTheWrongShape() async throws {
        let client = try ClientPipeline()
        let table = try client.send(ShowMACTable())
        try client.receive(#"{"id":1,"ok":true,"result":{"unexpected":true}}"# + "\n")
        await #expect(throws: ControlClientError.self) { try await table.get() }
        do {
            _ = try await table.get()
        } catch let error as ControlClientError {
            guard case .malformedResponse(let reason) = error else {
                Issue.record("expected malformedResponse, got \(error)")
                return
            }
            #expect(reason.hasPrefix("mac-table result:"))
        }
    }
}
