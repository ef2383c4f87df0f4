import FuseboxCore
import FuseboxWire
import NIOCore

/// The decision path: each framed line is served synchronously on the event
/// loop, so pipelined requests are answered in order; answers are flushed once
/// per read burst. A client that stops reading stops being read (no unbounded
/// buffering), and a disconnect releases its permits.
public final class ProtocolHandler: ChannelDuplexHandler {
    public typealias InboundIn = Frame
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let session: ConnectionSession
    private let hub: SubscriberHub
    private let limiter: ConnectionLimiter
    private let observer: any ServerObserver
    private var admitted = false
    private var subscribed = false
    private var readDeferred = false
    private var closing = false

    public init(session: ConnectionSession, hub: SubscriberHub, limiter: ConnectionLimiter, observer: any ServerObserver) {
        self.session = session
        self.hub = hub
        self.limiter = limiter
        self.observer = observer
    }

    public func channelActive(context: ChannelHandlerContext) {
        guard limiter.enter() else {
            let error = WireError(.overloaded, "the sidecar is at its limit of \(limiter.limit) connections; retry later")
            observer.served(op: nil, error: .overloaded)
            closeAfterWriting(context: context, ResponseEncoder.error(error))
            return
        }
        admitted = true
        observer.connectionOpened()
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        session.releaseAll()
        if subscribed { hub.remove(context.channel) }
        if admitted {
            limiter.leave()
            observer.connectionClosed()
        }
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard admitted, !closing else { return }
        switch unwrapInboundIn(data) {
        case .line(let line):
            let reply = line.withUnsafeReadableBytes { session.handle($0) }
            observer.served(op: reply.op, error: reply.error)
            context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: reply.bytes)), promise: nil)
            if reply.subscribe, !subscribed {
                subscribed = true
                hub.add(context.channel)
            }
        case .tooLong:
            observer.served(op: nil, error: .lineTooLong)
            let error = WireError(.lineTooLong, "a line is at most \(WireLimits.maxLineBytes) bytes; closing the connection")
            closeAfterWriting(context: context, ResponseEncoder.error(error))
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    /// Reads only while the client takes our answers: pipelining without
    /// reading would otherwise grow the outbound buffer without bound.
    public func read(context: ChannelHandlerContext) {
        if context.channel.isWritable || closing {
            context.read()
        } else {
            readDeferred = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if subscribed { hub.resumed(context.channel) }
            if readDeferred {
                readDeferred = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case ChannelEvent.inputClosed:
            // The client finished sending (`printf … | socat`): answer what it sent, then close.
            // A subscriber that half-closed keeps receiving events.
            if !subscribed { closeAfterWriting(context: context, nil) }
        case is ChannelShouldQuiesceEvent:
            closeAfterWriting(context: context, nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func closeAfterWriting(context: ChannelHandlerContext, _ bytes: [UInt8]?) {
        guard !closing else { return }
        closing = true
        let buffer = context.channel.allocator.buffer(bytes: bytes ?? [])
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }
}
