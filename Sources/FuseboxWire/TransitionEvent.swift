import FuseboxCore
import FuseboxJSON

/// The one JSON shape of a transition, shared by the log line (`event:
/// circuit_breaker_transition`) and the `subscribe` stream (`event:
/// transition`): the seed's fields plus the statistics at that moment.
public enum TransitionEvent {
    public static let logEvent = "circuit_breaker_transition"
    public static let streamEvent = "transition"

    public static func line(_ t: Transition, event: String, instance: String) -> [UInt8] {
        var writer = JSONWriter(capacity: 512)
        writer.string("event", event)
        writer.string("timestamp", t.at.rfc3339)
        writer.string("breaker_name", t.breaker)
        writer.string("old_state", t.from.rawValue)
        writer.string("new_state", t.to.rawValue)
        writer.string("reason", t.reason.rawValue)
        writer.int("failure_count", t.failureCount)
        writer.string("last_error", t.lastError)
        writer.int("last_status", t.lastStatus)
        writer.double("failure_rate", t.failureRate)
        writer.double("slow_call_rate", t.slowCallRate)
        writer.int("calls_in_window", t.callsInWindow)
        writer.int("failures_in_window", t.failuresInWindow)
        writer.string("open_until", t.openUntil?.rfc3339)
        writer.int("generation", Int64(clamping: t.generation))
        writer.string("instance", instance)
        return writer.finish()
    }

    /// `{"event":"dropped","count":N}`: a subscriber too slow to keep up lost N events.
    public static func dropped(_ count: Int) -> [UInt8] {
        var writer = JSONWriter()
        writer.string("event", "dropped")
        writer.int("count", count)
        return writer.finish()
    }
}
