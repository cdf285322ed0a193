import NIOCore
import NIOEmbedded
import Testing

@testable import OVSDB

/// The JSON-RPC layer on an `EmbeddedChannel`: exact bytes in, exact bytes out.
@Suite struct JSONRPCHandlerTests {
    struct Fixture {
        let channel = EmbeddedChannel()
        let inbound: AsyncStream<JSONRPCInbound>

        init(maximumMessageSize: Int = JSONTextDecoder.defaultMaximumMessageSize) throws {
            let (stream, continuation) = AsyncStream<JSONRPCInbound>.makeStream()
            inbound = stream
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(JSONTextDecoder(maximumMessageSize: maximumMessageSize)))
            try channel.pipeline.syncOperations.addHandler(JSONRPCHandler(inbound: continuation))
        }

        func send(_ method: String, _ params: [JSON]) throws -> EventLoopFuture<JSON> {
            let promise = channel.eventLoop.makePromise(of: JSON.self)
            try channel.writeOutbound(
                OVSDBRequest(method: method, params: params, promise: promise))
            return promise.futureResult
        }

        func receive(_ text: String) throws {
            try channel.writeInbound(ByteBuffer(string: text))
        }

        func sent() throws -> String? {
            try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
        }

        /// Closes the channel and returns everything the handler passed up.
        func close() async throws -> [JSONRPCInbound] {
            _ = try? channel.finish()
            var all: [JSONRPCInbound] = []
            for await item in inbound { all.append(item) }
            return all
        }
    }

    @Test func requestsAreNumberedAndCorrelatedById() async throws {
        let fixture = try Fixture()
        let schema = try fixture.send("get_schema", ["hardware_vtep"])
        let databases = try fixture.send("list_dbs", [])
        #expect(try fixture.sent() == #"{"method":"get_schema","params":["hardware_vtep"],"id":0}"#)
        #expect(try fixture.sent() == #"{"method":"list_dbs","params":[],"id":1}"#)
        // Answered out of order, in one read.
        try fixture.receive(
            #"{"id":1,"result":["hardware_vtep"],"error":null}"#
                + #"{"id":0,"result":{"name":"hardware_vtep"},"error":null}"#
        )
        #expect(try await databases.get() == ["hardware_vtep"])
        #expect(try await schema.get() == ["name": "hardware_vtep"])
        #expect(try await fixture.close() == [])
    }

    @Test func anErrorReplyIsATypedErrorWithTheServersWords() async throws {
        let fixture = try Fixture()
        let reply = try fixture.send("get_schema", ["nope"])
        try fixture.receive(
            #"{"id":0,"result":null,"error":{"error":"unknown database","#
                + #""details":"get_schema request specifies unknown database nope"}}"#
        )
        await #expect(
            throws: OVSDBError.server(
                method: "get_schema", error: "unknown database",
                details: "get_schema request specifies unknown database nope")
        ) { try await reply.get() }
        #expect(
            OVSDBError.server(method: "get_schema", error: "unknown database", details: "d")
                .description == "ovsdb-server refused get_schema: unknown database (d)")
    }

    @Test func echoIsAnsweredWithTheSameParams() async throws {
        let fixture = try Fixture()
        try fixture.receive(#"{"id":"echo","method":"echo","params":[]}"#)
        #expect(try fixture.sent() == #"{"id":"echo","result":[],"error":null}"#)
        try fixture.receive(#"{"method":"echo","params":["x",1],"id":7}"#)
        #expect(try fixture.sent() == #"{"id":7,"result":["x",1],"error":null}"#)
        #expect(try await fixture.close() == [])
    }

    @Test func otherServerRequestsAreRefused() throws {
        let fixture = try Fixture()
        try fixture.receive(#"{"method":"steal","params":[],"id":3}"#)
        #expect(
            try fixture.sent()
                == #"{"id":3,"result":null,"error":{"error":"unknown method","details":"steal"}}"#)
    }

    @Test func notificationsAndDropsArePassedUpInOrder() async throws {
        let fixture = try Fixture()
        try fixture.receive(
            #"{"method":"update","params":["vtep",{}],"id":null}"#
                + #"{"id":99,"result":1,"error":null}"#
                + #"{"no":"method"}"# + #"{"method":"locked","params":["l"],"id":null}"#
                + #"{"a":tru}"#)
        let inbound = try await fixture.close()
        #expect(inbound.count == 5)
        #expect(inbound[0] == .notification(method: "update", params: ["vtep", [:]]))
        #expect(inbound[1] == .dropped(reason: "response to unknown request id 99"))
        guard case .dropped = inbound[2] else {
            Issue.record("not dropped")
            return
        }
        #expect(inbound[3] == .notification(method: "locked", params: ["l"]))
        guard case .dropped(let reason) = inbound[4] else {
            Issue.record("not dropped")
            return
        }
        #expect(reason.hasPrefix("malformed JSON at byte"))
    }

    @Test func closingFailsRequestsStillWaiting() async throws {
        let fixture = try Fixture()
        let reply = try fixture.send("transact", ["hardware_vtep"])
        _ = try await fixture.close()
        await #expect(throws: OVSDBError.disconnected(method: "transact")) { try await reply.get() }
    }

    @Test func aCorruptStreamClosesTheChannel() async throws {
        let fixture = try Fixture()
        let reply = try fixture.send("transact", ["hardware_vtep"])
        _ = try? fixture.receive("}")
        #expect(!fixture.channel.isActive)
        await #expect(throws: OVSDBError.disconnected(method: "transact")) { try await reply.get() }
        let inbound = try await fixture.close()
        #expect(inbound == [.dropped(reason: "\(JSONTextDecoder.Failure.unbalanced)")])
    }

    /// A message past the limit is refused as too large (not as malformed), the channel
    /// closes, and a request waiting for it fails; one under the limit before it got through.
    @Test func aMessageBeyondTheLimitIsRefusedAsTooLarge() async throws {
        let fixture = try Fixture(maximumMessageSize: 64)
        let reply = try fixture.send("transact", ["hardware_vtep"])
        try fixture.receive(#"{"method":"update","params":[1,2],"id":null}"#)
        _ = try? fixture.receive(
            #"{"id":0,"result":[""# + String(repeating: "x", count: 100) + #""],"error":null}"#)
        #expect(!fixture.channel.isActive)
        await #expect(throws: OVSDBError.disconnected(method: "transact")) { try await reply.get() }
        let inbound = try await fixture.close()
        #expect(
            inbound == [.notification(method: "update", params: [1, 2]), .tooLarge(limit: 64)])
    }
}
