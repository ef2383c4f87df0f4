/// A call's result as the engine counted it, for metrics and the store.
public struct RecordedCall: Sendable {
    public var breaker: String
    public var outcome: Outcome
    public var status: Int?
    public var latency: Duration?
    public var error: String?
    public var slow: Bool
    /// The permit was issued before the breaker's latest transition.
    public var stale: Bool
    public var at: Timestamp

    public init(
        breaker: String, outcome: Outcome, status: Int? = nil, latency: Duration? = nil, error: String? = nil,
        slow: Bool = false, stale: Bool = false, at: Timestamp
    ) {
        self.breaker = breaker
        self.outcome = outcome
        self.status = status
        self.latency = latency
        self.error = error
        self.slow = slow
        self.stale = stale
        self.at = at
    }
}

/// Receives everything the engine decides. Called while the engine's lock is
/// held, in decision order: implementations must only count or enqueue, never
/// block, and never call back into the engine.
public protocol EngineObserver: Sendable {
    func transitioned(_ transition: Transition)
    func recorded(_ call: RecordedCall)
    /// An acquire (or a route step) was refused.
    func rejected(breaker: String, state: BreakerState, reason: RejectionReason, at: Timestamp)
    /// A queued acquire left the queue after `waited`: granted, refused, timed out or withdrawn.
    func dequeued(breaker: String, waited: Duration, how: QueueExit)
    /// A route served `chain` from `to` although `from` was first in line.
    func fellBack(chain: String, from: String, to: String, at: Timestamp)
    /// No breaker of `chain` granted a permit.
    func exhausted(chain: String, at: Timestamp)
    func permitIssued(breaker: String)
    func permitEnded(breaker: String, how: PermitEnd)
    /// The breaker reached `max_transitions_per_minute` and stays open until `until`; told once per episode.
    func heldOpen(breaker: String, until: Timestamp, at: Timestamp)
}

/// How a queued acquire left the queue.
public enum QueueExit: String, Sendable {
    case granted
    /// Refused when its turn came (the breaker opened, or a budget was spent).
    case refused
    case timedOut = "timed_out"
    /// Its client went away.
    case withdrawn
}

public enum PermitEnd: String, Sendable {
    case reported
    case expired
    case abandoned
    case cancelled
}

extension EngineObserver {
    public func transitioned(_ transition: Transition) {}
    public func recorded(_ call: RecordedCall) {}
    public func rejected(breaker: String, state: BreakerState, reason: RejectionReason, at: Timestamp) {}
    public func dequeued(breaker: String, waited: Duration, how: QueueExit) {}
    public func fellBack(chain: String, from: String, to: String, at: Timestamp) {}
    public func exhausted(chain: String, at: Timestamp) {}
    public func permitIssued(breaker: String) {}
    public func permitEnded(breaker: String, how: PermitEnd) {}
    public func heldOpen(breaker: String, until: Timestamp, at: Timestamp) {}
}

/// Observes nothing.
public struct NoObserver: EngineObserver {
    public init() {}
}
