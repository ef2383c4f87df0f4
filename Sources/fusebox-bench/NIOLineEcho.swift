import NIOCore
import NIOExtras
import NIOPosix

/// The plain SwiftNIO floor (`fusebox-bench nio-echo PATH`): one event loop,
/// a line decoder and a handler that writes each line back. What any NIO
/// server on this machine pays before it does any work of its own.
enum NIOLineEcho {
    static func run(path: String) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(LineEchoHandler())
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .wait()
        try channel.closeFuture.wait()
    }
}

final class LineEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var line = unwrapInboundIn(data)
        line.writeInteger(UInt8(ascii: "\n"))  // the decoder took it off
        context.write(wrapOutboundOut(line), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}
