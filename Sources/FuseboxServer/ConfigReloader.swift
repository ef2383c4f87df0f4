import FuseboxConfig
import FuseboxCore
import FuseboxTelemetry
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the configuration on SIGHUP. Breakers keep their state and
/// statistics; a file that does not load leaves the running configuration in
/// place and says why.
public struct ConfigReloader: Service {
    private let path: String?
    private let engine: Engine
    private let running: Configuration
    private let logger: Logger
    /// Told the new configuration after its engine part is applied (metrics
    /// make and drop series; the sockets take the new allowed_uids).
    private let applied: @Sendable (Configuration) -> Void
    /// Told every reload's result (true: applied).
    private let finished: @Sendable (Bool) -> Void

    public init(
        path: String?, engine: Engine, running: Configuration, logger: Logger,
        finished: @escaping @Sendable (Bool) -> Void = { _ in },
        applied: @escaping @Sendable (Configuration) -> Void = { _ in }
    ) {
        self.path = path
        self.engine = engine
        self.running = running
        self.logger = logger
        self.finished = finished
        self.applied = applied
    }

    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        var current = running
        for await _ in hangups.cancelOnGracefulShutdown() {
            current = reload(over: current)
        }
    }

    /// One reload; returns the configuration now in force.
    public func reload(over current: Configuration) -> Configuration {
        let source = path ?? DefaultConfiguration.sourceName
        let next: Configuration
        do {
            next = try ConfigLoader.load(path: path)
        } catch {
            logger.error("config_reload_failed", metadata: [
                "config": .string(source), "error": .string("\(error)"), "kept": .string("the running configuration"),
            ])
            finished(false)
            return current
        }
        let summary: ReloadSummary
        do {
            summary = try engine.apply(next.engine)
        } catch {
            logger.error("config_reload_failed", metadata: ["config": .string(source), "error": .string("\(error)")])
            finished(false)
            return current
        }
        applied(next)
        finished(true)
        var metadata: Logger.Metadata = [
            "config": .string(source),
            "added": .array(summary.added.map { .string($0) }),
            "removed": .array(summary.removed.map { .string($0) }),
            "changed": .array(summary.changed.map { .string($0) }),
            "statistics_reset": .array(summary.windowsReset.map { .string($0) }),
        ]
        let needRestart = Self.restartOnlySettings(current, next)
        if !needRestart.isEmpty {
            metadata["needs_restart"] = .array(needRestart.map { .string($0) })
        }
        logger.notice("config_reloaded", metadata: metadata)
        // Settings that only take effect at start stay as they are until then.
        var applied = next
        for setting in Self.restartOnly { setting.keep(&applied, current) }
        return applied
    }

    /// A setting read only at start: a reload notes its change and keeps the running value.
    struct RestartOnly {
        let key: String
        let differs: (Configuration, Configuration) -> Bool
        let keep: (inout Configuration, Configuration) -> Void

        init<Value: Equatable>(_ key: String, _ path: WritableKeyPath<Configuration, Value>) {
            self.key = key
            differs = { $0[keyPath: path] != $1[keyPath: path] }
            keep = { $0[keyPath: path] = $1[keyPath: path] }
        }
    }

    static var restartOnly: [RestartOnly] {
        [
            RestartOnly("socket", \.socket), RestartOnly("admin_socket", \.adminSocket), RestartOnly("socket_mode", \.socketMode),
            RestartOnly("max_connections", \.maxConnections), RestartOnly("max_admin_connections", \.maxAdminConnections),
            RestartOnly("max_permits_per_connection", \.maxPermitsPerConnection), RestartOnly("idle_timeout", \.idleTimeout),
            RestartOnly("redact_errors", \.redactErrors), RestartOnly("shutdown_timeout", \.shutdownTimeout),
            RestartOnly("http", \.http), RestartOnly("http_max_connections", \.httpMaxConnections),
            RestartOnly("http_header_timeout", \.httpHeaderTimeout), RestartOnly("http_idle_timeout", \.httpIdleTimeout),
            RestartOnly("http_json", \.httpJSON), RestartOnly("store", \.store), RestartOnly("log", \.log),
            RestartOnly("instance", \.instance),
        ]
    }

    static func restartOnlySettings(_ a: Configuration, _ b: Configuration) -> [String] {
        restartOnly.filter { $0.differs(a, b) }.map(\.key)
    }
}
