import FuseboxConfig
import FuseboxCore
import FuseboxFleet
import FuseboxOTLP
import FuseboxProbe
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

/// Everything one sidecar run is made of, wired together: the engine and its
/// outputs (log, subscribers, metrics, store), the sockets, the reloader and
/// HTTP, as services of one group.
struct SidecarParts {
    let configuration: Configuration
    let source: ConfigSource
    let logger: Logger
    let engine: Engine
    let store: StoreWriter?
    let server: SocketServer
    let group: ServiceGroup
    let descriptors: Int

    init(configuration: Configuration, source: ConfigSource, logSink: LineSink, version: String, clock: some BreakerClock, logger: Logger) throws {
        self.configuration = configuration
        self.source = source
        self.logger = logger
        let instance = configuration.resolvedInstance
        let metrics = FuseboxMetrics(version: version, configuration: configuration.engine)
        let hub = SubscriberHub(instance: instance, observer: metrics)
        store = try Self.openStore(configuration, instance: instance, clock: clock, logger: logger)
        // The fleet needs the engine and the engine its sinks: the slot is filled once both exist.
        let fleetSlot = configuration.fleet == nil ? nil : SinkSlot()
        let otlp = configuration.otlp.map { OTLPExporter(settings: $0, instance: instance, version: version, clock: clock, logger: logger) }
        do {
            let sinks: [any EngineEventSink] = [TransitionLog(logger: logger), hub, metrics] + (store.map { [$0] } ?? [])
                + (fleetSlot.map { [$0] } ?? []) + (otlp.map { [$0] } ?? [])
            engine = try Engine(configuration: configuration.engine, clock: clock, sink: EventFanout(sinks))
        } catch {
            throw Sidecar.StartError(description: "\(error)")
        }
        var fleet: FleetService?
        if let settings = configuration.fleet, let fleetSlot {
            let service = FleetService(
                settings: settings, instance: instance, storePath: configuration.store, engine: engine,
                series: FleetSeries(registry: metrics.registry), clock: clock, logger: logger
            )
            fleetSlot.fill(service)
            fleet = service
        }
        descriptors = SocketFile.raiseDescriptorLimit()
        // One event loop per core, for the life of the process.
        server = SocketServer(
            group: MultiThreadedEventLoopGroup.singleton, engine: engine,
            settings: .init(configuration: configuration, serverName: "fusebox \(version)"), hub: hub, observer: metrics, logger: logger
        )
        let readiness = Readiness(storeEnabled: store != nil) { [store] in store?.problem }
        let server = self.server
        server.bound.futureResult.whenSuccess { readiness.markSocketBound() }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let fleet {
            // Before the store, so it stops after it and ships the store's final rows.
            services.append(.init(service: fleet, successTerminationBehavior: .ignore, serviceName: "fleet"))
        }
        if let store {
            // First in the list, so the group stops it last and its final flush sees every event.
            services.append(.init(service: StoreService(writer: store), successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "store"))
        }
        if let otlp {
            let engine = self.engine
            otlp.export { metrics.render((try? engine.snapshot()) ?? []) }
            // Before the scheduler and the sockets, so it stops after them and exports what the drain decided.
            services.append(.init(service: otlp, successTerminationBehavior: .ignore, serviceName: "otlp"))
        }
        // Before the sockets, so it stops after them: leases still expire while clients drain.
        var offer: (@Sendable ([String]) -> Void)?
        if let fleet { offer = { candidates in fleet.offer(candidates) } }
        let scheduler = DeadlineScheduler(engine: engine, prober: ProbeRunner(engine: engine, logger: logger), offerCandidates: offer)
        services += [
            .init(service: scheduler, successTerminationBehavior: .ignore, serviceName: "scheduler"),
            .init(service: server, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "sockets"),
            .init(
                service: Self.reloader(configuration, source: source, engine: engine, server: server, metrics: metrics, fleet: fleet,
                                       logSink: logSink, clock: clock, logger: logger),
                successTerminationBehavior: .ignore, serviceName: "reload"
            ),
        ]
        if let endpoint = configuration.http {
            let http = Self.http(endpoint, configuration, engine: engine, metrics: metrics, readiness: readiness, store: store,
                                 logSink: logSink, descriptors: descriptors, logger: logger)
            services.append(.init(service: http, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "http"))
        }
        if let notifier = SystemdNotifier(environment: ConfigSource.processEnvironment(), bound: server.bound.futureResult, logger: logger) {
            // Last in the list: a graceful shutdown reaches it first, so STOPPING=1 goes out before the draining starts.
            services.append(.init(service: notifier, successTerminationBehavior: .ignore, serviceName: "systemd-notify"))
        }
        var lifecycleLogger = logger
        lifecycleLogger.logLevel = .warning
        group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: lifecycleLogger
        ))
    }

    static func openStore(_ configuration: Configuration, instance: String, clock: some BreakerClock, logger: Logger) throws -> StoreWriter? {
        guard let path = configuration.store else { return nil }
        var options = StoreWriter.Options()
        options.retention = configuration.retention
        do {
            return try StoreWriter(path: path, instance: instance, options: options, clock: clock, logger: logger)
        } catch {
            logger.error("start_failed", metadata: ["error": .string("\(error)")])
            throw Sidecar.StartError(description: "\(error) (set store: off to run without the incident store)")
        }
    }

    /// SIGHUP (or a changed file): a new configuration for the engine, metrics'
    /// series and the sockets' allowed uids; SIGHUP also reopens a log file.
    static func reloader(
        _ configuration: Configuration, source: ConfigSource, engine: Engine, server: SocketServer, metrics: FuseboxMetrics,
        fleet: FleetService?, logSink: LineSink, clock: some BreakerClock, logger: Logger
    ) -> ConfigReloader {
        ConfigReloader(
            source: source, engine: engine, running: configuration, logger: logger,
            finished: { ok in
                metrics.reloaded(ok: ok, at: clock.now())
                // The fleet follows a new shared set at once rather than at its next lease or refresh.
                if ok { fleet?.configurationChanged() }
            },
            hangup: {
                do { try logSink.reopen() } catch {
                    logger.error("log_reopen_failed", metadata: ["error": .string("\(error)"), "kept": .string("the open log file")])
                }
            },
            applied: { applied in
            metrics.configure(applied.engine)
            let closed = server.allow(applied.allowedUIDs.map(Set.init))
            if closed > 0 {
                logger.notice("connections_revoked", metadata: [
                    "closed": .stringConvertible(closed), "reason": .string("peer uid no longer in allowed_uids"),
                ])
            }
        })
    }

    static func http(
        _ endpoint: HTTPEndpoint, _ configuration: Configuration, engine: Engine, metrics: FuseboxMetrics, readiness: Readiness,
        store: StoreWriter?, logSink: LineSink, descriptors: Int, logger: Logger
    ) -> some Service {
        var limits = HTTPEndpoints.Limits(configuration: configuration)
        // The Unix sockets' connections (and a margin for the store, logs and
        // listeners) come first; HTTP gets what is left of the descriptor limit.
        let reserved = configuration.maxConnections + configuration.maxAdminConnections + 64
        limits.maxConnections = max(1, min(limits.maxConnections, descriptors - reserved))
        return HTTPEndpoints.application(
            endpoint: endpoint, engine: engine, metrics: metrics, readiness: readiness, limits: limits,
            beforeScrape: {
                metrics.syncLogDropped(logSink.dropped)
                guard let status = store?.status else { return }
                metrics.store.sync(
                    written: status.written, errors: status.errors, dropped: status.dropped, queued: status.queued,
                    healthy: status.lastError == nil
                )
            },
            logger: logger
        )
    }

    /// Records the run, then serves until a signal stops the group.
    func serve(version: String) async throws {
        let (logger, configuration, engine, descriptors, source) = (logger, configuration, engine, descriptors, source)
        server.bound.futureResult.whenSuccess {
            logger.notice("started", metadata: [
                "version": .string(version),
                "pid": .stringConvertible(Int(getpid())),
                "config": .string(source.path ?? DefaultConfiguration.sourceName),
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
            // The run is recorded before any socket opens, so every transition of this run comes after its start
            // (the restored ones included: they are this run's, and its counters count them).
            try store?.start(version: version, config: ConfigRenderer.yaml(configuration))
        } catch {
            throw Sidecar.StartError(description: "cannot record the run in the store: \(error)")
        }
        if let store {
            // Before the sockets open: the first decision already sees what was open when the sidecar stopped.
            do {
                let restored = engine.restore(try store.savedStates())
                if !restored.isEmpty { logger.notice("state_restored", metadata: ["breakers": .stringConvertible(restored.count)]) }
            } catch {
                logger.warning("state_not_restored", metadata: ["error": .string("\(error)"), "kept": .string("every breaker closed")])
            }
        }
        do {
            try await group.run()
        } catch {
            store?.stop()
            let reason = (error as? SocketFile.Problem)?.description ?? "\(error)"
            logger.error("start_failed", metadata: ["error": .string(reason)])
            throw Sidecar.StartError(description: reason)
        }
        logger.notice("stopped", metadata: ["reason": .string("signal")])
    }
}
