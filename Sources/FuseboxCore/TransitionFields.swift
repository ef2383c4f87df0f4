/// The fields of a transition, in the order every output writes them: the
/// one schema behind the log line, the `subscribe` line, the store's
/// `transitions` row and the OTLP log record (metrics take `old_state` and
/// `new_state` as their `from` and `to` labels, and `breaker` as this does).
/// Adding a field here adds it everywhere.
public enum TransitionField: String, CaseIterable, Sendable {
    case timestamp
    case breaker
    case oldState = "old_state"
    case newState = "new_state"
    case reason
    case failureCount = "failure_count"
    case lastError = "last_error"
    case lastStatus = "last_status"
    case failureRate = "failure_rate"
    case slowCallRate = "slow_call_rate"
    case callsInWindow = "calls_in_window"
    case failuresInWindow = "failures_in_window"
    case openUntil = "open_until"
    case generation
    /// The sidecar's own probe behind it (active probes): outcome, milliseconds, HTTP status.
    case probeOutcome = "probe_outcome"
    case probeLatencyMs = "probe_latency_ms"
    case probeStatus = "probe_status"
    /// The fleet member whose decision this sidecar applied (reason `fleet`); empty otherwise.
    case origin
}

/// One field's value, typed as outputs need it.
public enum TransitionFieldValue: Sendable, Equatable {
    case text(String?)
    case integer(Int64?)
    case real(Double)
}

extension Transition {
    public func value(_ field: TransitionField) -> TransitionFieldValue {
        switch field {
        case .timestamp: return .text(at.rfc3339)
        case .breaker: return .text(breaker)
        case .oldState: return .text(from.rawValue)
        case .newState: return .text(to.rawValue)
        case .reason: return .text(reason.rawValue)
        case .failureCount: return .integer(Int64(failureCount))
        case .lastError: return .text(lastError)
        case .lastStatus: return .integer(lastStatus.map(Int64.init))
        case .failureRate: return .real(failureRate)
        case .slowCallRate: return .real(slowCallRate)
        case .callsInWindow: return .integer(Int64(callsInWindow))
        case .failuresInWindow: return .integer(Int64(failuresInWindow))
        case .openUntil: return .text(openUntil?.rfc3339)
        case .generation: return .integer(Int64(clamping: generation))
        case .probeOutcome: return .text(probe?.outcome.rawValue)
        case .probeLatencyMs: return .integer(probe?.latency.millisecondsClamped)
        case .probeStatus: return .integer(probe?.status.map(Int64.init))
        case .origin: return .text(origin)
        }
    }
}
