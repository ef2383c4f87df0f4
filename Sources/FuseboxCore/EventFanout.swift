/// Hands every engine event to each observer in turn (log, subscribers,
/// metrics, store), in the engine's order. Each must only count or enqueue.
public struct EventFanout: EngineObserver {
    private let observers: [any EngineObserver]

    public init(_ observers: [any EngineObserver]) { self.observers = observers }

    public func transitioned(_ transition: Transition) { for o in observers { o.transitioned(transition) } }
    public func recorded(_ call: RecordedCall) { for o in observers { o.recorded(call) } }
    public func rejected(breaker: String, state: BreakerState, reason: RejectionReason, at: Timestamp) {
        for o in observers { o.rejected(breaker: breaker, state: state, reason: reason, at: at) }
    }
    public func dequeued(breaker: String, waited: Duration, how: QueueExit) {
        for o in observers { o.dequeued(breaker: breaker, waited: waited, how: how) }
    }
    public func fellBack(chain: String, from: String, to: String, at: Timestamp) {
        for o in observers { o.fellBack(chain: chain, from: from, to: to, at: at) }
    }
    public func exhausted(chain: String, at: Timestamp) { for o in observers { o.exhausted(chain: chain, at: at) } }
    public func permitIssued(breaker: String) { for o in observers { o.permitIssued(breaker: breaker) } }
    public func permitEnded(breaker: String, how: PermitEnd) { for o in observers { o.permitEnded(breaker: breaker, how: how) } }
    public func heldOpen(breaker: String, until: Timestamp, at: Timestamp) {
        for o in observers { o.heldOpen(breaker: breaker, until: until, at: at) }
    }
}
