import FuseboxConfig
import FuseboxCore
import FuseboxServer
import FuseboxStore
import FuseboxTelemetry
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `fusebox serve`: reads the configuration, starts logging, assembles the
/// engine with its outputs and services, and runs them until SIGTERM or SIGINT.
public enum Sidecar {
    public enum LogFormat: String, Sendable, CaseIterable {
        case json
        case text
    }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
        /// The configuration (file, flag or variable) is invalid, as opposed to a start that failed.
        public var isConfiguration = false
    }

    public static func run(source: ConfigSource, logFormat: LogFormat, version: String) async throws {
        signal(SIGPIPE, SIG_IGN)  // a reader that went away must not end the process
        let configuration: Configuration
        do {
            configuration = try source.load()
        } catch {
            throw StartError(description: "\(error)", isConfiguration: true)
        }
        // One clock for everything that stamps time: the engine, the store, the log lines, the reload metric.
        let clock = SystemClock()
        let sink = try startLogging(configuration, format: logFormat, clock: clock)
        defer { sink.flush() }
        let logger = Logger(label: "fusebox")
        let parts = try SidecarParts(configuration: configuration, source: source, logSink: sink, version: version, clock: clock, logger: logger)
        try await parts.serve(version: version)
    }

    /// Points swift-log at the configured destination, as JSON or text lines.
    static func startLogging(_ configuration: Configuration, format: LogFormat, clock: some BreakerClock) throws -> LineSink {
        let sink: LineSink
        switch configuration.log {
        case .stdout: sink = .standardOutput
        case .stderr: sink = .standardError
        case .file(let path):
            do { sink = try LineSink(appendingTo: path) } catch { throw StartError(description: "\(error)") }
        }
        let instance = configuration.resolvedInstance
        let level: Logger.Level
        switch configuration.logLevel {
        case .trace: level = .trace
        case .debug: level = .debug
        case .info: level = .info
        case .warn: level = .warning
        case .error: level = .error
        }
        LoggingSystem.bootstrap { _ in
            var handler: LineLogHandler
            switch format {
            case .json: handler = LineLogHandler(sink: sink, format: .json(instance: instance), clock: clock)
            case .text: handler = LineLogHandler(sink: sink, format: .text, clock: clock)
            }
            handler.logLevel = level
            return handler
        }
        return sink
    }
}
