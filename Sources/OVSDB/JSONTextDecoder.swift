import NIOCore

/// Splits an OVSDB byte stream into complete JSON texts.
///
/// RFC 7047 §4: JSON-RPC messages are sent back to back with no length prefix or delimiter,
/// so a message ends where its outermost `{…}` (or `[…]`) closes. The decoder tracks nesting
/// depth and whether it is inside a string (and just after a backslash there), and remembers
/// how far it has scanned so each byte is looked at once. Whitespace between texts is skipped.
public struct JSONTextDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = ByteBuffer

    /// Why a byte stream is not a sequence of JSON texts; the connection cannot recover.
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// A byte other than whitespace, `{` or `[` where a message should begin.
        case unexpectedByte(UInt8)
        /// Nesting closed more than it opened.
        case unbalanced
        /// A single message is, or grew without ending, longer than the limit.
        case messageTooLarge(limit: Int)

        public var description: String {
            switch self {
            case .unexpectedByte(let byte):
                return "OVSDB stream: byte 0x\(String(byte, radix: 16)) cannot start a JSON-RPC "
                    + "message (RFC 7047 §4 expects a JSON object)"
            case .unbalanced:
                return "OVSDB stream: a closing bracket without an opening one"
            case .messageTooLarge(let limit):
                return "OVSDB stream: a message exceeded \(limit) bytes without ending"
            }
        }
    }

    /// 64 MiB: an initial monitor reply of a big database is the largest thing a server
    /// sends.
    public static let defaultMaximumMessageSize = 64 << 20

    /// Largest single message accepted.
    public let maximumMessageSize: Int

    private var scanned = 0
    private var depth = 0
    private var inString = false
    private var escaped = false

    public init(maximumMessageSize: Int = JSONTextDecoder.defaultMaximumMessageSize) {
        self.maximumMessageSize = maximumMessageSize
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws
        -> DecodingState
    {
        guard let text = try nextText(in: &buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(text))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    /// The next complete JSON text, consumed from `buffer`, or nil if it has not all arrived.
    public mutating func nextText(in buffer: inout ByteBuffer) throws -> ByteBuffer? {
        while true {
            switch try scan(&buffer) {
            case .some(let end) where end > 0:
                // Refused whether it arrived in pieces (below) or whole in one read.
                if end > maximumMessageSize {
                    throw Failure.messageTooLarge(limit: maximumMessageSize)
                }
                scanned = 0
                return buffer.readSlice(length: end)
            case .some(let skipped):
                buffer.moveReaderIndex(forwardBy: -skipped)
                scanned = 0
            case .none:
                if scanned > maximumMessageSize {
                    throw Failure.messageTooLarge(limit: maximumMessageSize)
                }
                return nil
            }
        }
    }

    /// Positive: the length of a complete text; negative: that many bytes of whitespace to
    /// drop; nil: more bytes needed.
    private mutating func scan(_ buffer: inout ByteBuffer) throws -> Int? {
        try buffer.withUnsafeReadableBytes { bytes in
            while scanned < bytes.count {
                let byte = bytes[scanned]
                scanned += 1
                if inString {
                    if escaped {
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                    continue
                }
                switch byte {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    guard depth > 0 else { throw Failure.unbalanced }
                    depth -= 1
                    if depth == 0 { return scanned }
                case UInt8(ascii: "\""):
                    guard depth > 0 else { throw Failure.unexpectedByte(byte) }
                    inString = true
                case 0x20, 0x09, 0x0A, 0x0D:
                    if depth == 0 {
                        // Whitespace between messages: drop it so a text starts at its brace.
                        return -scanned
                    }
                default:
                    guard depth > 0 else { throw Failure.unexpectedByte(byte) }
                }
            }
            return nil
        }
    }
}
