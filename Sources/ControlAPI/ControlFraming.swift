import NIOCore

/// One unit of the control protocol's framing: a line without its terminator, or the news that
/// a line exceeded the limit.
public enum ControlLine: Hashable, Sendable {
    /// The bytes before `\n` (a `\r` before it is removed too, for clients that send CRLF).
    case line(ByteBuffer)
    /// More than `limit` bytes arrived without a newline. Everything after is discarded: the
    /// connection is to be answered with an error and closed.
    case tooLong(limit: Int)
}

/// Splits a byte stream into newline-terminated lines of at most `maximumLength` bytes. Blank
/// lines are skipped. A line that grows past the limit is reported as soon as the limit is
/// crossed, so a peer cannot make the server buffer more than `maximumLength` bytes; the rest
/// of the stream is discarded. At end of stream, an unterminated last line counts as a line.
public struct ControlLineDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ControlLine

    /// 1 MiB: far above any request the control API defines, far below what would hurt.
    public static let defaultMaximumLength = 1 << 20

    public let maximumLength: Int
    private var discarding = false

    public init(maximumLength: Int = ControlLineDecoder.defaultMaximumLength) {
        precondition(maximumLength > 0, "a line limit must be positive")
        self.maximumLength = maximumLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws
        -> DecodingState
    {
        guard let frame = nextFrame(&buffer) else { return .needMoreData }
        if let frame { context.fireChannelRead(wrapInboundOut(frame)) }
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        if let frame = nextFrame(&buffer) {
            if let frame { context.fireChannelRead(wrapInboundOut(frame)) }
            return .continue
        }
        if !discarding, buffer.readableBytes > 0,
            let rest = buffer.readSlice(length: buffer.readableBytes)
        {
            context.fireChannelRead(wrapInboundOut(.line(Self.trimmingCarriageReturn(rest))))
        }
        return .needMoreData
    }

    /// nil: need more data. `.some(nil)`: bytes consumed, nothing to pass on (blank line).
    private mutating func nextFrame(_ buffer: inout ByteBuffer) -> ControlLine?? {
        if discarding {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return nil
        }
        let view = buffer.readableBytesView
        // Look no further than one byte past the limit: a newline beyond it would make the
        // line too long anyway.
        let searched = view.prefix(maximumLength + 1)
        guard let newline = searched.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > maximumLength {
                discarding = true
                buffer.moveReaderIndex(to: buffer.writerIndex)
                return .some(.tooLong(limit: maximumLength))
            }
            return nil
        }
        let length = newline - view.startIndex
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        line = Self.trimmingCarriageReturn(line)
        if line.readableBytes > maximumLength {
            discarding = true
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .some(.tooLong(limit: maximumLength))
        }
        return line.readableBytes == 0 ? .some(nil) : .some(.line(line))
    }

    private static func trimmingCarriageReturn(_ line: ByteBuffer) -> ByteBuffer {
        guard line.readableBytesView.last == UInt8(ascii: "\r") else { return line }
        return line.getSlice(at: line.readerIndex, length: line.readableBytes - 1)!
    }
}

/// What the server's pipeline hands to the connection loop: a request, or a line to refuse.
public enum ControlInbound: Hashable, Sendable {
    case request(ControlRequest)
    case refused(ControlRefusal)
}

/// Server side: turns lines into requests or refusals (bad input from a client is answered,
/// never thrown up the pipeline).
public final class ControlRequestDecoder: ChannelInboundHandler, Sendable {
    public typealias InboundIn = ControlLine
    public typealias InboundOut = ControlInbound

    private let refusals: ControlRefusals?

    /// `refusals` counts the lines refused as too long.
    public init(refusals: ControlRefusals? = nil) { self.refusals = refusals }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let inbound: ControlInbound
        switch unwrapInboundIn(data) {
        case .line(let line):
            switch ControlRequest.parse(line.readableBytesView) {
            case .success(let request): inbound = .request(request)
            case .failure(let refusal): inbound = .refused(refusal)
            }
        case .tooLong(let limit):
            refusals?.refused(.requestSize, "refusing request lines longer than \(limit) bytes")
            inbound = .refused(
                ControlRefusal(
                    id: nil, message: "request line longer than \(limit) bytes",
                    closesConnection: true))
        }
        context.fireChannelRead(wrapInboundOut(inbound))
    }
}

/// Server side: writes each response as one line.
public struct ControlResponseEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = ControlResponse

    public init() {}

    public func encode(data: ControlResponse, out: inout ByteBuffer) throws {
        out.writeBytes(data.encoded())
        out.writeInteger(UInt8(ascii: "\n"))
    }
}
