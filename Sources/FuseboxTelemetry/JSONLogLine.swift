import FuseboxCore
import FuseboxJSON
import Logging

/// The JSON log line (docs/logs.md): the log message is the `event`;
/// `message` says it for people; `service.name` and `instance` say who; the
/// metadata become top-level fields, numbers and booleans as JSON numbers
/// and booleans. A `timestamp` in the metadata (the engine's time of a
/// transition) replaces the time of logging.
public enum JSONLogLine {
    /// The fields every line has, in this order, before its own.
    public static let common = ["event", "timestamp", "level", "message", "service.name", "instance"]

    static func line(event: String, level: Logger.Level, instance: String, at: Timestamp, fields: Logger.Metadata) -> [UInt8] {
        var writer = JSONWriter(capacity: 512)
        writer.string("event", event)
        if case .string(let stamp)? = fields["timestamp"] {
            writer.string("timestamp", stamp)
        } else {
            writer.string("timestamp", at.rfc3339)
        }
        writer.string("level", level.standardName)
        if case .string(let message)? = fields["message"] {
            writer.string("message", message)
        } else {
            writer.string("message", event.split(separator: "_").joined(separator: " "))
        }
        writer.string("service.name", "fusebox")
        writer.string("instance", instance)
        for key in fields.keys.sorted() where !common.contains(key) {
            writer.value(key, Self.json(fields[key]!))
        }
        return writer.finish()
    }

    /// A metadata value as JSON: numbers and booleans as themselves, the rest as text.
    static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let text):
            return .string(text)
        case .stringConvertible(let convertible):
            switch convertible {
            case is JSONNull: return .null
            case let number as Int: return .number(String(number))
            case let number as Int64: return .number(String(number))
            case let number as UInt64: return .number(String(number))
            case let number as Double: return number.isFinite ? .number(JSONWriter.formatDouble(number)) : .null
            case let flag as Bool: return .bool(flag)
            default: return .string(convertible.description)
            }
        case .array(let items):
            return .array(items.map(json))
        case .dictionary(let members):
            return .object(members.keys.sorted().map { ($0, json(members[$0]!)) })
        }
    }
}

extension Logger.Level {
    /// The level as log pipelines name it (OpenTelemetry's severity texts,
    /// lower case): swift-log's `notice` is `info`, `warning` is `warn`,
    /// `critical` is `fatal`.
    public var standardName: String {
        switch self {
        case .trace: return "trace"
        case .debug: return "debug"
        case .info, .notice: return "info"
        case .warning: return "warn"
        case .error: return "error"
        case .critical: return "fatal"
        }
    }
}

/// A metadata value that renders as JSON `null`.
public struct JSONNull: CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "null" }
}

extension Logger.MetadataValue {
    public static let null = Logger.MetadataValue.stringConvertible(JSONNull())

    public static func int(_ value: Int?) -> Logger.MetadataValue { value.map { .stringConvertible($0) } ?? .null }
    public static func double(_ value: Double?) -> Logger.MetadataValue { value.map { .stringConvertible($0) } ?? .null }
    public static func text(_ value: String?) -> Logger.MetadataValue { value.map { .string($0) } ?? .null }
}
