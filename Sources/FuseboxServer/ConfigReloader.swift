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
        var applied = next
        // Settings that only take effect at start stay as they are until then.
        applied.socket = current.socket
        applied.adminSocket = current.adminSocket
        applied.socketMode = current.socketMode
        applied.maxConnections = current.maxConnections
        applied.maxAdminConnections = current.maxAdminConnections
        applied.idleTimeout = current.idleTimeout
        applied.maxPermitsPerConnection = current.maxPermitsPerConnection
        applied.redactErrors = current.redactErrors
        applied.shutdownTimeout = current.shutdownTimeout
        applied.httpMaxConnections = current.httpMaxConnections
        applied.httpHeaderTimeout = current.httpHeaderTimeout
        applied.httpIdleTimeout = current.httpIdleTimeout
        applied.httpJSON = current.httpJSON
        applied.http = current.http
        applied.store = current.store
        applied.log = current.log
        applied.instance = current.instance
        return applied
    }

    static func restartOnlySettings(_ a: Configuration, _ b: Configuration) -> [String] {
        var keys: [String] = []
        if a.socket != b.socket { keys.append("socket") }
        if a.adminSocket != b.adminSocket { keys.append("admin_socket") }
        if a.socketMode != b.socketMode { keys.append("socket_mode") }
        if a.maxConnections != b.maxConnections { keys.append("max_connections") }
        if a.maxAdminConnections != b.maxAdminConnections { keys.append("max_admin_connections") }
        if a.maxPermitsPerConnection != b.maxPermitsPerConnection { keys.append("max_permits_per_connection") }
        if a.idleTimeout != b.idleTimeout { keys.append("idle_timeout") }
        if a.redactErrors != b.redactErrors { keys.append("redact_errors") }
        if a.shutdownTimeout != b.shutdownTimeout { keys.append("shutdown_timeout") }
        if a.httpMaxConnections != b.httpMaxConnections { keys.append("http_max_connections") }
        if a.httpHeaderTimeout != b.httpHeaderTimeout { keys.append("http_header_timeout") }
        if a.httpIdleTimeout != b.httpIdleTimeout { keys.append("http_idle_timeout") }
        if a.httpJSON != b.httpJSON { keys.append("http_json") }
        if a.http != b.http { keys.append("http") }
        if a.store != b.store { keys.append("store") }
        if a.log != b.log { keys.append("log") }
        if a.instance != b.instance { keys.append("instance") }
        return keys
    }
}
