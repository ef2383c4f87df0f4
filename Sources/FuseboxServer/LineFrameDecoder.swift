import FuseboxWire
import NIOCore

/// What the framer hands the protocol handler.
public enum Frame {
    /// One line, without its newline (or a trailing carriage return).
    case line(ByteBuffer)
    /// A line grew past the limit: the connection is answered and closed.
    case tooLong
}

/// Splits the byte stream at newlines, refusing lines over `maxLength`
/// without buffering them whole: once the limit is passed the bytes are
/// discarded and `.tooLong` is sent up once.
public struct LineFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    private let maxLength: Int
    /// Bytes already searched for a newline, so a slow line is not rescanned.
    private var scanned = 0
    private var failed = false

    public init(maxLength: Int = WireLimits.maxLineBytes) { self.maxLength = maxLength }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if failed {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let view = buffer.readableBytesView
        let searchFrom = view.index(view.startIndex, offsetBy: scanned)
        guard let newline = view[searchFrom...].firstIndex(of: 0x0A) else {
            scanned = view.count
            if view.count > maxLength { fail(context: context, buffer: &buffer) }
            return .needMoreData
        }
        let length = newline - view.startIndex
        scanned = 0
        guard length <= maxLength + 1 else {  // +1: a CRLF line may carry the CR
            fail(context: context, buffer: &buffer)
            return .needMoreData
        }
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == 0x0D { line.moveWriterIndex(to: line.writerIndex - 1) }
        guard line.readableBytes <= maxLength else {
            fail(context: context, buffer: &buffer)
            return .needMoreData
        }
        context.fireChannelRead(wrapInboundOut(.line(line)))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A last line without its newline is still a request.
        if !failed, buffer.readableBytes > 0, let line = buffer.readSlice(length: buffer.readableBytes) {
            scanned = 0
            context.fireChannelRead(wrapInboundOut(.line(line)))
        }
        return .needMoreData
    }

    private mutating func fail(context: ChannelHandlerContext, buffer: inout ByteBuffer) {
        failed = true
        buffer.moveReaderIndex(to: buffer.writerIndex)
        context.fireChannelRead(wrapInboundOut(.tooLong))
    }
}
