import FuseboxConfig
import FuseboxCore
import FuseboxTelemetry
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Fleet mode's background work, on its own tasks and connections, never on
/// the decision path: the engine's events only fill bounded, coalesced
/// buffers here. One connection carries openings, probe claims and budget
/// leases (with LISTEN); a second ships the history.
public final class FleetService: Service, EngineEventSink {
    private let settings: FleetSettings
    private let engine: Engine
    private let series: FleetSeries
    private let logger: Logger
    private let clock: any BreakerClock
    private let openings: FleetOpenings
    private let budgets: BudgetLeases
    private let shipper: HistoryShipper?
    private let link: FleetLinkLog

    /// How often gated breakers are checked for a due probe, and the longest any fleet query may take.
    static let claimInterval = Duration.milliseconds(50)
    static let queryTimeout = Duration.seconds(5)

    public init(settings: FleetSettings, instance: String, storePath: String?, engine: Engine, series: FleetSeries,
                clock: any BreakerClock, logger: Logger) {
        self.settings = settings
        self.engine = engine
        self.series = series
        self.clock = clock
        self.logger = logger
        let member = "\(instance)#\(String(UInt32.random(in: .min ... .max), radix: 16))"
        openings = FleetOpenings(fleet: settings.name, member: member, engine: engine, series: series, clock: clock, logger: logger)
        budgets = BudgetLeases(fleet: settings.name, member: member, engine: engine, series: series, clock: clock,
                               lease: settings.lease, assumedPeers: settings.assumedPeers, logger: logger)
        shipper = storePath.map { HistoryShipper(storePath: $0, fleet: settings.name, logger: logger) }
        link = FleetLinkLog(url: settings.postgres, fleet: settings.name, series: series, logger: logger)
    }

    public func receive(_ events: [EngineEvent]) {
        for event in events {
            openings.note(event)
            budgets.note(event)
        }
    }

    public func run() async throws {
        series.link(up: false)
        budgets.fallBack()
        try? await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.controlLoop() }
                if let shipper = self.shipper { group.addTask { await self.shipLoop(shipper) } }
            }
        }
        // The store stopped before us (it is listed after this service): one last pass ships its final rows.
        if let shipper { await finalShip(shipper) }
    }

    // MARK: Openings, probes and leases

    private func controlLoop() async {
        var retry = Duration.milliseconds(250)
        while !Task.isCancelled {
            do {
                let connection = try await FleetConnection.open(settings.postgres, id: 1, logger: logger)
                defer { Task { try? await connection.close() } }
                try await withTimeout(Self.queryTimeout) { try await FleetSchema.prepare(connection, logger: self.logger) }
                try await connection.listen(on: FleetOpenings.channel) { notifications in
                    let shared = openings.sharedBreakers
                    try await withTimeout(Self.queryTimeout) { try await self.openings.catchUp(connection, shared: shared) }
                    engine.gateProbes(shared, true)
                    link.up()
                    retry = .milliseconds(250)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await notification in notifications {
                                self.openings.received(notification.payload, shared: shared)
                            }
                            throw FleetSchema.Problem(description: "the notification stream ended")
                        }
                        group.addTask { try await self.work(connection, shared: shared) }
                        try await group.next()
                        group.cancelAll()
                    }
                }
            } catch {
                if Task.isCancelled { break }
                engine.gateProbes(openings.sharedBreakers, false)
                link.down(FleetConnection.describe(error, url: settings.postgres))
            }
            // While away: openings stay local, lapsed budget leases fall back to a safe share.
            let until = clock.now() + retry
            while !Task.isCancelled, clock.now() < until {
                budgets.fallBack()
                try? await Task.sleep(for: min(.milliseconds(500), until - clock.now()))
            }
            retry = min(retry * 2, .seconds(5))
        }
        // Stopping: the gates stay, so no breaker goes half-open on the way out.
    }

    /// While connected: publishes local decisions at once, claims due probes, renews leases.
    private func work(_ connection: PostgresConnection, shared: Set<String>) async throws {
        let wakes = openings.makeWakes()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Publishing as soon as a local decision wakes it.
            group.addTask {
                try await withTimeout(Self.queryTimeout) { try await self.openings.publishPending(connection, shared: shared) }
                for await _ in wakes {
                    try await withTimeout(Self.queryTimeout) {
                        try await self.openings.publishPending(connection, shared: shared)
                        try await self.openings.publishStreaks(connection, shared: shared)
                    }
                }
            }
            // Probe claims every claim interval, lease renewals every refresh.
            group.addTask {
                var nextRefresh = self.clock.now()
                while !Task.isCancelled {
                    try await withTimeout(Self.queryTimeout) { try await self.openings.claimProbes(connection) }
                    if self.clock.now() >= nextRefresh {
                        try await withTimeout(Self.queryTimeout) { try await self.budgets.refresh(connection) }
                        nextRefresh = self.clock.now() + self.settings.refresh
                    }
                    try await Task.sleep(for: Self.claimInterval)
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    // MARK: History

    private func shipLoop(_ shipper: HistoryShipper) async {
        var connection: PostgresConnection?
        var caughtUpAt = clock.now()
        var nextPrune = clock.now()
        while !Task.isCancelled {
            do {
                if connection == nil || connection?.isClosed == true {
                    connection = try await FleetConnection.open(settings.postgres, id: 2, logger: logger)
                }
                if let retention = settings.retention, clock.now() >= nextPrune {
                    try await shipper.prune(over: connection!, before: (clock.now() - retention).milliseconds)
                    nextPrune = clock.now() + .seconds(3_600)
                }
                let pass = try await shipper.ship(over: connection!)
                series.shippedRows(pass.rows)
                if pass.caughtUp { caughtUpAt = clock.now() }
                series.shipLag(seconds: pass.caughtUp ? 0 : (clock.now() - caughtUpAt).secondsDouble)
                if !pass.caughtUp { continue }
            } catch {
                if Task.isCancelled { break }
                if let open = connection { connection = nil; try? await open.close() }
                series.shipLag(seconds: (clock.now() - caughtUpAt).secondsDouble)
            }
            try? await Task.sleep(for: settings.shipInterval)
        }
        if let connection { try? await connection.close() }
    }

    private func finalShip(_ shipper: HistoryShipper) async {
        do {
            try await withTimeout(.seconds(10)) {
                let connection = try await FleetConnection.open(self.settings.postgres, id: 3, logger: self.logger)
                defer { Task { try? await connection.close() } }
                let pass = try await shipper.ship(over: connection, maxBatches: 10_000)
                self.series.shippedRows(pass.rows)
            }
        } catch {
            logger.warning("fleet_ship_deferred", metadata: [
                "reason": .string(FleetConnection.describe(error, url: settings.postgres)),
                "note": .string("rows stay in the local store and ship on the next start"),
            ])
        }
    }
}

/// Runs `body`, or throws once `limit` has passed (a PostgreSQL that stopped answering).
func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw FleetSchema.Problem(description: "PostgreSQL did not answer within \(limit)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
