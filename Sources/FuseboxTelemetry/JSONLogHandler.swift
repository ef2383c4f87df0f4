import FuseboxCore
import FuseboxWire
import Logging

/// A swift-log backend that writes one JSON object per line:
/// `{"event":…,"timestamp":…,"level":…,"instance":…, …metadata}`. The log
/// message is the `event`; metadata become top-level fields, numbers and
/// booleans as JSON numbers and booleans. A `timestamp` in the metadata (the
/// engine's time of a transition) replaces the time of logging.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let sink: LineSink
    private let instance: String
    private let clock: any BreakerClock

    public init(sink: LineSink, instance: String, clock: any BreakerClock = SystemClock()) {
        self.sink = sink
        self.instance = instance
        self.clock = clock
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        sink.write(Self.line(
            event: event.message.description, level: event.level, instance: instance, at: clock.now(), fields: fields
        ))
    }

    static func line(event: String, level: Logger.Level, instance: String, at: Timestamp, fields: Logger.Metadata) -> [UInt8] {
        var writer = JSONWriter(capacity: 512)
        writer.string("event", event)
        if case .string(let stamp)? = fields["timestamp"] {
            writer.string("timestamp", stamp)
        } else {
            writer.string("timestamp", at.rfc3339)
        }
        writer.string("level", level.rawValue)
        writer.string("instance", instance)
        for key in fields.keys.sorted() where key != "timestamp" && key != "instance" && key != "event" && key != "level" {
            var keyBytes: [UInt8] = []
            JSONWriter.appendString(key, to: &keyBytes)
            writer.appendMember(keyBytes) { out in Self.append(fields[key]!, to: &out) }
        }
        return writer.finish()
    }

    static func append(_ value: Logger.MetadataValue, to out: inout [UInt8]) {
        switch value {
        case .string(let text):
            JSONWriter.appendString(text, to: &out)
        case .stringConvertible(let convertible):
            switch convertible {
            case is JSONNull: out.append(contentsOf: "null".utf8)
            case let number as Int: out.append(contentsOf: String(number).utf8)
            case let number as Int64: out.append(contentsOf: String(number).utf8)
            case let number as UInt64: out.append(contentsOf: String(number).utf8)
            case let number as Double: out.append(contentsOf: (number.isFinite ? JSONWriter.formatDouble(number) : "null").utf8)
            case let flag as Bool: out.append(contentsOf: (flag ? "true" : "false").utf8)
            default: JSONWriter.appendString(convertible.description, to: &out)
            }
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let members):
            out.append(UInt8(ascii: "{"))
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                append(members[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
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
