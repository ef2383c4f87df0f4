import FuseboxCore
import Logging

/// Logs every transition as one line with the seed's fields and the
/// statistics at that moment (through whichever swift-log backend is set).
public struct TransitionLog: EngineEventSink {
    private let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    /// One name for a transition everywhere: the log, the `subscribe` line, the OTLP log record.
    public static let event = "transition"

    public func receive(_ events: [EngineEvent]) {
        for event in events {
            switch event {
            case .transitioned(let t): transitioned(t)
            case .heldOpen(let breaker, let until, let at): heldOpen(breaker: breaker, until: until, at: at)
            default: break
            }
        }
    }

    /// `openai: closed -> open (consecutive_failures)`.
    public static func message(_ t: Transition) -> String { "\(t.breaker): \(t.from.rawValue) -> \(t.to.rawValue) (\(t.reason.rawValue))" }

    func transitioned(_ t: Transition) {
        logger.log(level: t.to == .open || t.to == .forcedOpen ? .warning : .info, "\(Self.event)", metadata: Self.metadata(t))
    }

    /// Once per episode: the breaker hit `max_transitions_per_minute` and stays open.
    func heldOpen(breaker: String, until: Timestamp, at: Timestamp) {
        logger.warning("transitions_rate_limited", metadata: [
            "timestamp": .string(at.rfc3339),
            "breaker": .string(breaker),
            "held_open_until": .string(until.rfc3339),
            "message": .string("\(breaker): held open until \(until.rfc3339) (max_transitions_per_minute)"),
            "hint": .string("the breaker changed state max_transitions_per_minute times in the last minute; it stays open until then"),
        ])
    }

    /// The fields of `TransitionField`, as log metadata, and a `message` for people.
    public static func metadata(_ t: Transition) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["message": .string(message(t))]
        for field in TransitionField.allCases {
            switch t.value(field) {
            case .text(let text): metadata[field.rawValue] = .text(text)
            case .integer(let number): metadata[field.rawValue] = number.map { .stringConvertible($0) } ?? .null
            case .real(let number): metadata[field.rawValue] = .double(number)
            }
        }
        return metadata
    }
}
