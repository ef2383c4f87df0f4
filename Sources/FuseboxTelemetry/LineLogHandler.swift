import FuseboxCore
import Logging

/// A swift-log backend that writes each event as one line to a sink, in the
/// JSON or the text format; what the two share (metadata, levels, the
/// clock's stamp) is here once.
public struct LineLogHandler: LogHandler {
    public enum Format: Sendable {
        /// `{"event":…,"timestamp":…,"level":…,"message":…,"service.name":"fusebox","instance":…, …metadata}` (`JSONLogLine`).
        case json(instance: String)
        /// `2026-11-30T15:41:59.123Z info  event key=value …` (`TextLogLine`).
        case text
    }

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let sink: LineSink
    private let format: Format
    private let clock: any BreakerClock

    public init(sink: LineSink, format: Format, clock: any BreakerClock) {
        self.sink = sink
        self.format = format
        self.clock = clock
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        switch format {
        case .json(let instance):
            sink.write(JSONLogLine.line(event: event.message.description, level: event.level, instance: instance, at: clock.now(), fields: fields))
        case .text:
            sink.write(TextLogLine.line(event: event.message.description, level: event.level, at: clock.now(), fields: fields))
        }
    }
}
