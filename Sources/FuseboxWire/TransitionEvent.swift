import FuseboxCore
import FuseboxJSON

/// The `subscribe` stream's line for a transition (`event: transition`,
/// the log line's event too): the fields of `TransitionField`, the schema
/// the log line and the store row are written from too.
public enum TransitionEvent {
    public static let streamEvent = "transition"

    public static func line(_ t: Transition, event: String, instance: String) -> [UInt8] {
        var writer = JSONWriter(capacity: 512)
        writer.string("event", event)
        for field in TransitionField.allCases {
            switch t.value(field) {
            case .text(let text): writer.value(field.rawValue, text.map { .string($0) } ?? .null)
            case .integer(let number): writer.value(field.rawValue, number.map { .number(String($0)) } ?? .null)
            case .real(let number): writer.value(field.rawValue, number.isFinite ? .number(JSONWriter.formatDouble(number)) : .null)
            }
        }
        writer.string("instance", instance)
        // Deprecated (0.x): subscribers written before `breaker` read this; removed at 1.0.
        writer.string("breaker_name", t.breaker)
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
