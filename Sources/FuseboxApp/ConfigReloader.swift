import FuseboxConfig
import FuseboxCore
import FuseboxTelemetry
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the configuration on SIGHUP (and, with `watch_config`, when the file changes). Breakers keep their state and
/// statistics; a file that does not load leaves the running configuration in
/// place and says why.
public struct ConfigReloader: Service {
    private let source: ConfigSource
    private let engine: Engine
    private let running: Configuration
    private let logger: Logger
    /// Told the new configuration after its engine part is applied (metrics
    /// make and drop series; the sockets take the new allowed_uids).
    private let applied: @Sendable (Configuration) -> Void
    /// Told every reload's result (true: applied).
    private let finished: @Sendable (Bool) -> Void
    /// Told of every SIGHUP before the reload (the log file is reopened for logrotate).
    private let hangup: @Sendable () -> Void

    public init(
        source: ConfigSource, engine: Engine, running: Configuration, logger: Logger,
        finished: @escaping @Sendable (Bool) -> Void = { _ in },
        hangup: @escaping @Sendable () -> Void = {},
        applied: @escaping @Sendable (Configuration) -> Void = { _ in }
    ) {
        self.source = source
        self.engine = engine
        self.running = running
        self.logger = logger
        self.finished = finished
        self.hangup = hangup
        self.applied = applied
    }

    private enum Trigger { case hangup, fileChanged }

    /// Reloads on SIGHUP and, with `watch_config`, when the file changes;
    /// one reload at a time, in the order the triggers came.
    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let (triggers, sender) = AsyncStream.makeStream(of: Trigger.self, bufferingPolicy: .bufferingNewest(4))
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                for await _ in hangups { sender.yield(.hangup) }
            }
            if let interval = running.watchConfig, let path = source.path {
                tasks.addTask { await Self.watch(path, every: interval) { sender.yield(.fileChanged) } }
            }
            var current = running
            for await trigger in triggers.cancelOnGracefulShutdown() {
                if trigger == .hangup { hangup() }
                current = reload(over: current)
            }
            tasks.cancelAll()
        }
    }

    /// Calls `changed` whenever the file at `path` (symbolic links followed,
    /// as a ConfigMap's are swapped) is another file, or was written.
    static func watch(_ path: String, every interval: Duration, changed: () -> Void) async {
        var last = FileIdentity(path)
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = FileIdentity(path)
            if now != last, now != nil {
                last = now
                changed()
            }
        }
    }

    /// One reload; returns the configuration now in force.
    public func reload(over current: Configuration) -> Configuration {
        let name = source.path ?? DefaultConfiguration.sourceName
        let next: Configuration
        do {
            next = try source.load()
        } catch {
            logger.error("config_reload_failed", metadata: [
                "config": .string(name), "error": .string("\(error)"), "kept": .string("the running configuration"),
            ])
            finished(false)
            return current
        }
        let summary: ReloadSummary
        do {
            summary = try engine.apply(next.engine)
        } catch {
            logger.error("config_reload_failed", metadata: ["config": .string(name), "error": .string("\(error)")])
            finished(false)
            return current
        }
        applied(next)
        finished(true)
        var metadata: Logger.Metadata = [
            "config": .string(name),
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
            RestartOnly("watch_config", \.watchConfig), RestartOnly("fast_path", \.fastPath),
            RestartOnly("http", \.http), RestartOnly("http_max_connections", \.httpMaxConnections),
            RestartOnly("http_header_timeout", \.httpHeaderTimeout), RestartOnly("http_idle_timeout", \.httpIdleTimeout),
            RestartOnly("http_json", \.httpJSON), RestartOnly("store", \.store), RestartOnly("log", \.log), RestartOnly("log_level", \.logLevel), RestartOnly("otlp", \.otlp),
            RestartOnly("instance", \.instance), RestartOnly("fleet", \.fleet),
        ]
    }

    static func restartOnlySettings(_ a: Configuration, _ b: Configuration) -> [String] {
        restartOnly.filter { $0.differs(a, b) }.map(\.key)
    }
}
