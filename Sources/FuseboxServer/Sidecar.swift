import FuseboxConfig
import FuseboxCore
import FuseboxStore
import FuseboxTelemetry
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `fusebox serve`: assembles the engine, its observers and the services
/// from a configuration and runs them until SIGTERM or SIGINT.
public enum Sidecar {
    public enum LogFormat: String, Sendable, CaseIterable {
        case json
        case text
    }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func run(configPath: String?, logFormat: LogFormat, version: String) async throws {
        signal(SIGPIPE, SIG_IGN)  // a reader that went away must not end the process
        let configuration: Configuration
        do {
            configuration = try ConfigLoader.load(path: configPath)
        } catch {
            throw StartError(description: "\(error)")
        }
        let instance = configuration.resolvedInstance
        let sink: LineSink
        switch configuration.log {
        case .stdout: sink = .standardOutput
        case .stderr: sink = .standardError
        case .file(let path):
            do { sink = try LineSink(appendingTo: path) } catch { throw StartError(description: "\(error)") }
        }
        LoggingSystem.bootstrap { _ in
            switch logFormat {
            case .json: return JSONLogHandler(sink: sink, instance: instance)
            case .text: return TextLogHandler(sink: sink)
            }
        }
        let logger = Logger(label: "fusebox")
        defer { sink.flush() }

        // One clock for everything that stamps time: the engine, the store, the reload metric.
        let clock = SystemClock()
        let metrics = FuseboxMetrics(version: version, configuration: configuration.engine)
        let hub = SubscriberHub(instance: instance, observer: metrics)
        let store: StoreWriter?
        if let path = configuration.store {
            do {
                store = try StoreWriter(path: path, instance: instance, options: storeOptions(configuration), clock: clock, logger: logger)
            } catch {
                logger.error("start_failed", metadata: ["error": .string("\(error)")])
                throw StartError(description: "\(error) (set store: off to run without the incident store)")
            }
        } else {
            store = nil
        }
        let engine: Engine
        do {
            engine = try Engine(
                configuration: configuration.engine, clock: clock,
                observer: EventFanout([TransitionLog(logger: logger), hub, metrics] + (store.map { [$0] } ?? []))
            )
        } catch {
            throw StartError(description: "\(error)")
        }
        let descriptors = SocketFile.raiseDescriptorLimit()
        // One event loop per core, for the life of the process.
        let loops = MultiThreadedEventLoopGroup.singleton

        let serverName = "fusebox \(version)"
        let server = SocketServer(
            group: loops, engine: engine, settings: .init(configuration: configuration, serverName: serverName),
            hub: hub, observer: metrics, logger: logger
        )
        let readiness = Readiness(storeEnabled: store != nil) { store?.problem }
        server.bound.futureResult.whenSuccess { readiness.markSocketBound() }
        let reloader = ConfigReloader(
            path: configPath, engine: engine, running: configuration, logger: logger,
            finished: { ok in metrics.reloaded(ok: ok, at: clock.now()) }
        ) { applied in
            metrics.configure(applied.engine)
            let closed = server.allow(applied.allowedUIDs.map(Set.init))
            if closed > 0 {
                logger.notice("connections_revoked", metadata: [
                    "closed": .stringConvertible(closed), "reason": .string("peer uid no longer in allowed_uids"),
                ])
            }
        }
        var lifecycleLogger = logger
        lifecycleLogger.logLevel = .warning
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let store {
            // First in the list, so the group stops it last and its final flush sees every event.
            let service = StoreService(writer: store)
            services.append(.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "store"))
        }
        services += [
            .init(service: server, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "sockets"),
            .init(service: reloader, successTerminationBehavior: .ignore, serviceName: "reload"),
        ]
        if let endpoint = configuration.http {
            var limits = HTTPEndpoints.Limits(configuration: configuration)
            // The Unix sockets' connections (and a margin for the store, logs and
            // listeners) come first; HTTP gets what is left of the descriptor limit.
            let reserved = configuration.maxConnections + configuration.maxAdminConnections + 64
            limits.maxConnections = max(1, min(limits.maxConnections, descriptors - reserved))
            let http = HTTPEndpoints.application(
                endpoint: endpoint, engine: engine, metrics: metrics, readiness: readiness, limits: limits,
                beforeScrape: {
                    guard let status = store?.status else { return }
                    metrics.store.sync(
                        written: status.written, errors: status.errors, dropped: status.dropped, queued: status.queued,
                        healthy: status.lastError == nil
                    )
                },
                logger: logger
            )
            services.append(.init(service: http, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "http"))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: lifecycleLogger
        ))

        server.bound.futureResult.whenSuccess {
            logger.notice("started", metadata: [
                "version": .string(version),
                "pid": .stringConvertible(Int(getpid())),
                "config": .string(configPath ?? DefaultConfiguration.sourceName),
                "socket": .string(configuration.socket),
                "store": .text(configuration.store),
                "http": .text(configuration.http?.description),
                "admin_socket": .text(configuration.adminSocket),
                "breakers": .array(engine.breakerNames.map { .string($0) }),
                "max_connections": .stringConvertible(configuration.maxConnections),
                "open_files_limit": .stringConvertible(descriptors),
            ])
        }
        do {
            // The run is recorded before any socket opens, so every transition of this run comes after its start.
            try store?.start(version: version, config: ConfigRenderer.yaml(configuration))
        } catch {
            throw StartError(description: "cannot record the run in the store: \(error)")
        }
        do {
            try await group.run()
        } catch {
            store?.stop()
            let reason = (error as? SocketFile.Problem)?.description ?? "\(error)"
            logger.error("start_failed", metadata: ["error": .string(reason)])
            throw StartError(description: reason)
        }
        logger.notice("stopped", metadata: ["reason": .string("signal")])
    }
}

extension Sidecar {
    static func storeOptions(_ configuration: Configuration) -> StoreWriter.Options {
        var options = StoreWriter.Options()
        options.retention = configuration.retention
        return options
    }
}
