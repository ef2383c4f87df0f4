import FuseboxCore
import FuseboxWire
import NIOCore

/// The decision path, behind `AdmissionHandler` (which has let the peer in):
/// each framed line is served synchronously on the event
/// loop, so pipelined requests are answered in order; answers are flushed once
/// per read burst. A client that stops reading stops being read (no unbounded
/// buffering), and a disconnect releases its permits.
///
/// An acquire that queues (a breaker at `max_in_flight` with a queue) holds
/// this connection's later requests, already read, until its answer comes
/// back to this event loop; reading pauses meanwhile. Other connections and
/// other breakers never wait for it.
public final class ProtocolHandler: ChannelDuplexHandler {
    public typealias InboundIn = Frame
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let session: ConnectionSession
    private let hub: SubscriberHub
    private let observer: any ServerObserver
    private var subscribed = false
    private var readDeferred = false
    private var closing = false
    /// A queued acquire's answer is outstanding; frames read meanwhile wait here.
    private var waiting = false
    private var backlog: [Frame] = []
    /// The client half-closed while an answer was outstanding: close once it is written.
    private var closeWhenAnswered = false
    private var active = true
    /// Times the pending wait out exactly at its deadline (the engine's tick is the backstop).
    private var waitTimer: Scheduled<Void>?

    public init(session: ConnectionSession, hub: SubscriberHub, observer: any ServerObserver) {
        self.session = session
        self.hub = hub
        self.observer = observer
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        session.waiter = ConnectionWaiter(handler: self, context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        active = false
        waitTimer?.cancel()
        Self.releasePermits(NIOLoopBound(session, eventLoop: context.eventLoop), on: context.eventLoop)
        if subscribed { hub.remove(context.channel) }
        context.fireChannelInactive()
    }

    /// Releases a gone client's permits a few hundred at a time, letting the
    /// event loop serve others between steps.
    private static func releasePermits(_ session: NIOLoopBound<ConnectionSession>, on loop: any EventLoop) {
        guard !session.value.releaseSome() else { return }
        loop.execute { releasePermits(session, on: loop) }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let frame = unwrapInboundIn(data)
        if waiting {
            backlog.append(frame)
        } else {
            serve(frame, context: context)
        }
    }

    private func serve(_ frame: Frame, context: ChannelHandlerContext) {
        switch frame {
        case .line(let line):
            let started = ContinuousClock.now
            let reply = line.withUnsafeReadableBytes { session.handle($0) }
            observer.served(reply, took: ContinuousClock.now - started)
            if let ticket = reply.queued {
                waiting = true
                let engine = session.engine
                let delay = engine.timeUntil(ticket.deadline)
                waitTimer = context.eventLoop.scheduleTask(in: .nanoseconds(max(0, delay.nanosecondsClamped) + 1_000_000)) {
                    engine.expireWait(ticket)
                }
                return
            }
            if !reply.bytes.isEmpty {  // empty: a record sent with "reply": false
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: reply.bytes)), promise: nil)
            }
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

    /// A queued acquire was answered (on this event loop): write it, then serve
    /// what arrived behind it, then read again.
    func answerQueued(context: ChannelHandlerContext, _ decision: Decision) {
        guard active, !closing else {
            // The client left after the answer was decided: the permit is nobody's.
            if let permit = decision.permit { try? session.engine.release(permit.id, .abandoned) }
            return
        }
        waiting = false
        waitTimer?.cancel()
        waitTimer = nil
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: session.answerQueued(decision))), promise: nil)
        // Served front to back by index: removing from the front each time would be quadratic.
        var next = 0
        while !waiting, !closing, next < backlog.count {
            serve(backlog[next], context: context)
            next += 1
        }
        backlog.removeFirst(next)
        context.flush()
        guard !waiting else { return }
        if closeWhenAnswered {
            closeAfterWriting(context: context, nil)
        } else if readDeferred, context.channel.isWritable {
            readDeferred = false
            context.read()
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    /// Reads only while the client takes our answers: pipelining without
    /// reading would otherwise grow the outbound buffer without bound.
    public func read(context: ChannelHandlerContext) {
        if (context.channel.isWritable && !waiting) || closing {
            context.read()
        } else {
            readDeferred = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if subscribed { hub.resumed(context.channel) }
            if readDeferred, !waiting {
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
            if waiting {
                closeWhenAnswered = true
            } else if !subscribed {
                closeAfterWriting(context: context, nil)
            }
        case is ChannelShouldQuiesceEvent:
            closeAfterWriting(context: context, nil)
        case IdleStateHandler.IdleStateEvent.read:
            // Idle: closed, without a line a pooled client would take for its next answer,
            // only when nothing rides on the connection.
            if !subscribed, !waiting, session.engine.permitsHeld(by: session.owner) == 0 {
                closeAfterWriting(context: context, nil)
            }
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

/// A connection's one waiter: the engine answers its queued acquire through
/// it, from whichever thread freed a slot, and it hands the answer to the
/// connection's event loop.
final class ConnectionWaiter: QueueWaiter {
    private let bound: NIOLoopBound<(handler: ProtocolHandler, context: ChannelHandlerContext)>
    private let eventLoop: any EventLoop

    init(handler: ProtocolHandler, context: ChannelHandlerContext) {
        bound = NIOLoopBound((handler: handler, context: context), eventLoop: context.eventLoop)
        eventLoop = context.eventLoop
    }

    func answer(_ decision: Decision) {
        let bound = self.bound
        eventLoop.execute { bound.value.handler.answerQueued(context: bound.value.context, decision) }
    }
}
