/// Everything the engine decides that others want to know (log, subscribers,
/// metrics, the store), each stamped with the engine's time. A decision's
/// events are collected under the lock and delivered, in decision order,
/// after it is released.
public enum EngineEvent: Sendable {
    /// Boxed: transitions are rare and large, and the common events stay small to copy.
    indirect case transitioned(Transition)
    case recorded(RecordedCall)
    /// An acquire (or a route step) was refused.
    case rejected(breaker: String, state: BreakerState, reason: RejectionReason, at: Timestamp)
    /// A queued acquire left the queue after `waited`: granted, refused, timed out or withdrawn.
    case dequeued(breaker: String, waited: Duration, how: QueueExit, at: Timestamp)
    /// A route served `chain` from `to` although `from` was first in line.
    case fellBack(chain: String, from: String, to: String, at: Timestamp)
    /// No breaker of `chain` granted a permit, and why.
    case exhausted(chain: String, reason: ExhaustedReason, at: Timestamp)
    case permitEnded(breaker: String, how: PermitEnd, at: Timestamp)
    /// The breaker reached `max_transitions_per_minute` and stays open until `until`; told once per episode.
    case heldOpen(breaker: String, until: Timestamp, at: Timestamp)
    /// An operator forced or reset `breaker` (whether or not its state changed); `local` when
    /// it was meant for this sidecar only.
    case operated(breaker: String, action: OperatorAction, local: Bool, at: Timestamp)
    /// The sidecar's own probe of `breaker` finished (whether or not it changed the state).
    indirect case probed(breaker: String, result: ProbeResult, closedCheck: Bool, at: Timestamp)
    /// A `fastest` chain moved its preferred member.
    case preferred(chain: String, from: String, to: String, at: Timestamp)
    /// A 429's Retry-After paused the breaker's budgets until `until` (the
    /// store keeps it, so a restart does not lift it).
    case paused(breaker: String, until: Timestamp, at: Timestamp)

    public var at: Timestamp {
        switch self {
        case .transitioned(let t): return t.at
        case .recorded(let call): return call.at
        case .rejected(_, _, _, let at), .dequeued(_, _, _, let at), .fellBack(_, _, _, let at), .exhausted(_, _, let at),
             .permitEnded(_, _, let at), .heldOpen(_, _, let at), .operated(_, _, _, let at), .probed(_, _, _, let at),
             .preferred(_, _, _, let at), .paused(_, _, let at):
            return at
        }
    }
}

/// Receives the engine's events, in order, outside the engine's lock, from
/// whichever thread is delivering; one batch at a time, never two at once.
/// It must not block for long: decisions on other threads go on meanwhile,
/// but their events wait for this batch.
public protocol EngineEventSink: Sendable {
    func receive(_ events: [EngineEvent])
}

/// Hands each batch to every sink in turn (log, subscribers, metrics, store).
public struct EventFanout: EngineEventSink {
    private let sinks: [any EngineEventSink]

    public init(_ sinks: [any EngineEventSink]) { self.sinks = sinks }

    public func receive(_ events: [EngineEvent]) { for sink in sinks { sink.receive(events) } }
}

/// Receives nothing.
public struct NoEventSink: EngineEventSink {
    public init() {}
    public func receive(_ events: [EngineEvent]) {}
}

/// A call's result as the engine counted it, for metrics and the store.
public struct RecordedCall: Sendable {
    public var breaker: String
    public var outcome: Outcome
    public var status: Int?
    public var latency: Duration?
    /// Time to first byte, when the client measured it (streams).
    public var timeToFirstByte: Duration?
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

/// How a queued acquire left the queue.
public enum QueueExit: String, Sendable {
    case granted
    /// Refused when its turn came (the breaker opened, or a budget was spent).
    case refused
    case timedOut = "timed_out"
    /// Its client went away.
    case withdrawn
}

/// How a permit ended without a report (a reported one is told by `recorded`).
public enum PermitEnd: String, Sendable {
    case expired
    case abandoned
    case cancelled
}

/// Why a route found no breaker: what an operator alerts on differs.
public enum ExhaustedReason: String, Sendable, CaseIterable {
    /// Every breaker it tried was open (or half-open with its probe taken): the providers are down.
    case open
    /// At least one breaker it tried was refused by a budget: demand is above the limits.
    case budget
    /// The client excluded every breaker (its last walk after a request failed on all of them).
    case excluded
    /// Every breaker it did not exclude lacked a capability the request `requires`.
    case capability
}
