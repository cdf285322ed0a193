import NIOCore
import NIOEmbedded
import Testing

@testable import OVSDB

@Suite struct JSONTextDecoderTests {
    private func texts(_ chunks: [String]) throws -> [String] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(JSONTextDecoder()))
        var out: [String] = []
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(string: chunk))
            while let text = try channel.readInbound(as: ByteBuffer.self) {
                out.append(String(buffer: text))
            }
        }
        _ = try channel.finish()
        return out
    }

    @Test func backToBackMessagesAreSplit() throws {
        #expect(
            try texts([#"{"id":1,"result":[]}{"id":2,"result":{}}[1,2]"#])
                == [#"{"id":1,"result":[]}"#, #"{"id":2,"result":{}}"#, "[1,2]"])
    }

    @Test func messagesSplitAcrossReadsAreReassembled() throws {
        let message = #"{"method":"update","params":["vtep",{"a":{"b":"}]{["}}],"id":null}"#
        let bytes = Array(message.utf8)
        // Every split point, including inside strings and escapes.
        for cut in 1..<bytes.count {
            let first = String(decoding: bytes[..<cut], as: UTF8.self)
            let second = String(decoding: bytes[cut...], as: UTF8.self)
            #expect(try texts([first, second]) == [message])
        }
        let oneByteAtATime = bytes.map { String(decoding: [$0], as: UTF8.self) }
        #expect(try texts(oneByteAtATime + oneByteAtATime) == [message, message])
    }

    @Test func bracesAndEscapedQuotesInsideStringsDoNotCount() throws {
        let message = #"{"s":"a\"}\\","t":"{[\\\""}"#
        #expect(try texts([message + "\n " + message]) == [message, message])
    }

    @Test func whitespaceBetweenMessagesIsSkipped() throws {
        #expect(try texts(["  \n{}\r\n\t", " []  "]) == ["{}", "[]"])
    }

    @Test func aStrayByteClosesTheStreamWithAReason() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(JSONTextDecoder()))
        #expect(throws: JSONTextDecoder.Failure.unexpectedByte(UInt8(ascii: "x"))) {
            try channel.writeInbound(ByteBuffer(string: "{}x"))
        }
        #expect(throws: JSONTextDecoder.Failure.unbalanced) {
            var decoder = JSONTextDecoder()
            var buffer = ByteBuffer(string: "]")
            _ = try decoder.nextText(in: &buffer)
        }
    }

    @Test func anEndlessMessageIsRefused() throws {
        var decoder = JSONTextDecoder(maximumMessageSize: 16)
        var buffer = ByteBuffer(string: #"{"a":"0123456789012345678"#)
        #expect(throws: JSONTextDecoder.Failure.messageTooLarge(limit: 16)) {
            _ = try decoder.nextText(in: &buffer)
        }
    }

    /// A message over the limit that arrives whole in one read is refused as well; one at the
    /// limit passes.
    @Test func aWholeMessageOverTheLimitIsRefused() throws {
        var decoder = JSONTextDecoder(maximumMessageSize: 16)
        var fits = ByteBuffer(string: #"{"a":"01234567"}"#)
        #expect(try decoder.nextText(in: &fits).map { String(buffer: $0) } == #"{"a":"01234567"}"#)
        var buffer = ByteBuffer(string: #"{"a":"0123456789"}"#)
        #expect(throws: JSONTextDecoder.Failure.messageTooLarge(limit: 16)) {
            _ = try decoder.nextText(in: &buffer)
        }
    }
}
