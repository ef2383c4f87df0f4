import FuseboxCore
import Logging

/// Logs every transition as one line with the seed's fields and the
/// statistics at that moment (through whichever swift-log backend is set).
public struct TransitionLog: EngineEventSink {
    private let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public static let event = "circuit_breaker_transition"

    public func receive(_ events: [EngineEvent]) {
        for event in events {
            switch event {
            case .transitioned(let t): transitioned(t)
            case .heldOpen(let breaker, let until, let at): heldOpen(breaker: breaker, until: until, at: at)
            default: break
            }
        }
    }

    func transitioned(_ t: Transition) {
        logger.log(level: t.to == .open || t.to == .forcedOpen ? .warning : .info, "\(Self.event)", metadata: Self.metadata(t))
    }

    /// Once per episode: the breaker hit `max_transitions_per_minute` and stays open.
    func heldOpen(breaker: String, until: Timestamp, at: Timestamp) {
        logger.warning("transitions_rate_limited", metadata: [
            "timestamp": .string(at.rfc3339),
            "breaker_name": .string(breaker),
            "held_open_until": .string(until.rfc3339),
            "hint": .string("the breaker changed state max_transitions_per_minute times in the last minute; it stays open until then"),
        ])
    }

    public static func metadata(_ t: Transition) -> Logger.Metadata {
        [
            "timestamp": .string(t.at.rfc3339),
            "breaker_name": .string(t.breaker),
            "old_state": .string(t.from.rawValue),
            "new_state": .string(t.to.rawValue),
            "reason": .string(t.reason.rawValue),
            "failure_count": .int(t.failureCount),
            "last_error": .text(t.lastError),
            "last_status": .int(t.lastStatus),
            "failure_rate": .double(t.failureRate),
            "slow_call_rate": .double(t.slowCallRate),
            "calls_in_window": .int(t.callsInWindow),
            "failures_in_window": .int(t.failuresInWindow),
            "open_until": .text(t.openUntil?.rfc3339),
            "generation": .stringConvertible(t.generation),
        ]
    }
}
