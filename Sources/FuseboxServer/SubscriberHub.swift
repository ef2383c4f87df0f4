import Synchronization
import FuseboxCore
import FuseboxWire
import NIOConcurrencyHelpers
import NIOCore

/// Sends every transition to the connections that subscribed. Called under
/// the engine lock, it only hands the encoded line to each connection's event
/// loop; there a connection whose buffer is full loses the event (and is told
/// how many it lost once it catches up), and one that stays full for
/// `maxDropped` events is disconnected. Nothing ever waits for a subscriber.
public final class SubscriberHub: EngineEventSink, @unchecked Sendable {
    private let subscribers = Mutex<[ObjectIdentifier: Subscriber]>([:])
    private let instance: String
    private let observer: any ServerObserver
    public let maxDropped: Int

    public init(instance: String, observer: any ServerObserver = NoServerObserver(), maxDropped: Int = 10_000) {
        self.instance = instance
        self.observer = observer
        self.maxDropped = maxDropped
    }

    func add(_ channel: Channel) {
        let subscriber = Subscriber(channel: channel)
        subscribers.withLock { $0[ObjectIdentifier(channel)] = subscriber }
    }

    /// The channel can take writes again: tell it what it missed now, not at the next event.
    func resumed(_ channel: Channel) {
        subscribers.withLock { $0[ObjectIdentifier(channel)] }?.reportDropped()
    }

    func remove(_ channel: Channel) {
        _ = subscribers.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    public func receive(_ events: [EngineEvent]) {
        for case .transitioned(let transition) in events { transitioned(transition) }
    }

    func transitioned(_ transition: Transition) {
        let current = subscribers.withLock { Array($0.values) }
        guard !current.isEmpty else { return }
        let line = TransitionEvent.line(transition, event: TransitionEvent.streamEvent, instance: instance)
        for subscriber in current { subscriber.deliver(line, maxDropped: maxDropped, observer: observer) }
    }

    /// One subscribed connection; `dropped` is touched only on its event loop.
    final class Subscriber: @unchecked Sendable {
        let channel: Channel
        private var dropped = 0

        init(channel: Channel) { self.channel = channel }

        func deliver(_ line: [UInt8], maxDropped: Int, observer: any ServerObserver) {
            channel.eventLoop.execute { [self] in
                guard channel.isActive else { return }
                guard channel.isWritable else {
                    dropped += 1
                    observer.subscriberDropped(events: 1)
                    if dropped >= maxDropped { channel.close(promise: nil) }
                    return
                }
                reportDropped()
                channel.writeAndFlush(channel.allocator.buffer(bytes: line), promise: nil)
            }
        }

        /// Writes `{"event":"dropped","count":N}` if events were lost. On the event loop.
        func reportDropped() {
            guard dropped > 0, channel.isWritable else { return }
            channel.writeAndFlush(channel.allocator.buffer(bytes: TransitionEvent.dropped(dropped)), promise: nil)
            dropped = 0
        }
    }
}
