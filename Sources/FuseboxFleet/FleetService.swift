import FuseboxConfig
import FuseboxCore
import FuseboxTelemetry
import Logging
import NIOCore
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
    /// Wakes the claim loop: a probe candidate offered, or a reload.
    private let bell = Doorbell()

    /// The longest any fleet query may take.
    static let queryTimeout = Duration.seconds(5)
    /// The longest one ship pass (up to 200 batches) may take.
    static let shipTimeout = Duration.seconds(60)

    public init(settings: FleetSettings, instance: String, storePath: String?, engine: Engine, series: FleetSeries,
                clock: any BreakerClock, logger: Logger) {
        self.settings = settings
        self.engine = engine
        self.series = series
        self.clock = clock
        self.logger = logger
        let member = "\(instance)#\(String(UInt32.random(in: .min ... .max), radix: 16))"
        openings = FleetOpenings(fleet: settings.name, member: member, secret: settings.secret, engine: engine, series: series, clock: clock, logger: logger)
        budgets = BudgetLeases(engine: engine, series: series, clock: clock,
                               lease: settings.lease, assumedPeers: settings.assumedPeers, logger: logger)
        shipper = storePath.map { HistoryShipper(storePath: $0, fleet: settings.name, logger: logger) }
        link = FleetLinkLog(url: settings.postgres, fleet: settings.name, series: series, logger: logger)
    }

    /// Shared breakers due for the fleet's probe (from the engine's scheduler): claimed at once.
    public func offer(_ candidates: [String]) {
        openings.offer(candidates)
        bell.ring()
    }

    /// A reload was applied: the shared set is followed now rather than at the next lease renewal or refresh.
    public func configurationChanged() { bell.ring() }

    public func receive(_ events: [EngineEvent]) {
        for event in events {
            openings.note(event)
            budgets.note(event)
        }
    }

    public func run() async throws {
        series.link(up: false)
        budgets.fallBack()
        // Unstructured, so a stop is bounded even if PostgreSQL stops answering mid-query
        // (postgres-nio's queries do not end on cancellation; closing the connection ends them).
        let control = Task { await self.controlLoop() }
        let shipping = shipper.map { shipper in Task { await self.shipLoop(shipper) } }
        try? await gracefulShutdown()
        control.cancel()
        shipping?.cancel()
        let stopped = await finishes(within: Self.stopLimit) {
            await control.value
            await shipping?.value
        }
        if !stopped { logger.warning("fleet_stop_timeout", metadata: ["limit": .stringConvertible(Self.stopLimit)]) }
        // The store stopped before us (it is listed after this service): one last pass ships its final rows.
        if let shipper { await finalShip(shipper) }
    }

    static let stopLimit = Duration.seconds(5)

    // MARK: Openings, probes and leases

    private func controlLoop() async {
        var retry = Duration.milliseconds(250)
        while !Task.isCancelled {
            do {
                let connection = try await FleetConnection.open(settings.postgres, id: 1, logger: logger)
                defer { Task { try? await connection.close() } }
                try await withTimeout(Self.queryTimeout, closing: connection) { try await FleetSchema.prepare(connection, logger: self.logger) }
                let store = PostgresFleetStore(connection: connection, fleet: settings.name, member: openings.member, logger: logger)
                try await connection.listen(on: PostgresFleetStore.channel) { notifications in
                    let reloads = engine.reloadCount
                    let shared = SharedSet(openings.sharedBreakers, reloads: reloads)
                    try await withTimeout(Self.queryTimeout, closing: connection) {
                        // PostgreSQL's clock first: messages are stamped and judged in it.
                        try await self.openings.databaseClock.measure(store)
                        try await self.openings.catchUp(store, shared: shared.breakers)
                    }
                    engine.gateProbes(shared.breakers, true)
                    link.up()
                    retry = .milliseconds(250)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await notification in notifications {
                                self.openings.received(notification.payload, shared: shared.breakers)
                            }
                            throw FleetSchema.Problem(description: "the notification stream ended")
                        }
                        group.addTask { try await self.work(store, shared: shared) }
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

    /// While connected: publishes local decisions at once, claims due probes, renews leases,
    /// and follows a reload's shared set.
    private func work(_ store: PostgresFleetStore, shared: SharedSet) async throws {
        let connection = store.connection
        let wakes = openings.makeWakes()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Publishing as soon as a local decision wakes it.
            group.addTask {
                try await withTimeout(Self.queryTimeout, closing: connection) {
                    try await self.openings.publishPending(store, shared: shared.breakers)
                }
                for await _ in wakes {
                    try await withTimeout(Self.queryTimeout, closing: connection) {
                        try await self.openings.publishPending(store, shared: shared.breakers)
                        try await self.openings.publishStreaks(store, shared: shared.breakers)
                    }
                }
            }
            // Probe claims when the scheduler offers a breaker, lease renewals at half their term,
            // budget leases every refresh; in between it sleeps.
            group.addTask {
                var nextRefresh = self.clock.now()
                var nextClockCheck = self.clock.now() + .seconds(30)
                while !Task.isCancelled {
                    try await self.followReload(store, shared: shared)
                    try await withTimeout(Self.queryTimeout, closing: connection) { try await self.openings.claimProbes(store) }
                    if self.clock.now() >= nextRefresh {
                        try await withTimeout(Self.queryTimeout, closing: connection) { try await self.budgets.refresh(store) }
                        nextRefresh = self.clock.now() + self.settings.refresh
                    }
                    if self.clock.now() >= nextClockCheck {
                        // Again now and then: either clock may be stepped or drift.
                        try await withTimeout(Self.queryTimeout, closing: connection) {
                            try await self.openings.databaseClock.measure(store)
                        }
                        nextClockCheck = self.clock.now() + .seconds(30)
                    }
                    let until = min(nextRefresh, nextClockCheck, self.openings.nextRenewal ?? nextClockCheck)
                    await self.bell.wait(atMost: until - self.clock.now())
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// A reload changed which breakers the fleet shares (one added, `fleet:`
    /// flipped): newly shared ones are gated and caught up with the table,
    /// no longer shared ones go back to the local state machine. Checked at
    /// each wake (a reload rings) by a counter, so an unchanged configuration
    /// costs no lock. Budgets need nothing here: each lease refresh reads them anew.
    private func followReload(_ store: PostgresFleetStore, shared: SharedSet) async throws {
        let reloads = engine.reloadCount
        guard reloads != shared.reloads else { return }
        let now = openings.sharedBreakers
        let before = shared.replace(now, reloads: reloads)
        engine.gateProbes(before.subtracting(now), false)
        let added = now.subtracting(before)
        guard !added.isEmpty else { return }
        engine.gateProbes(added, true)
        try await withTimeout(Self.queryTimeout, closing: store.connection) { try await self.openings.catchUp(store, shared: added) }
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
                    let open = connection!, cutoff = (clock.now() - retention).milliseconds
                    try await withTimeout(Self.shipTimeout, closing: open) { try await shipper.prune(over: open, before: cutoff) }
                    nextPrune = clock.now() + .seconds(3_600)
                }
                let open = connection!
                let pass = try await withTimeout(Self.shipTimeout, closing: open) { try await shipper.ship(over: open) }
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
        let outcome = Mutex<String?>("no answer within 10 s")
        _ = await finishes(within: .seconds(10)) {
            do {
                let connection = try await FleetConnection.open(self.settings.postgres, id: 3, logger: self.logger)
                defer { Task { try? await connection.close() } }
                let pass = try await withTimeout(.seconds(9), closing: connection) { try await shipper.ship(over: connection, maxBatches: 10_000) }
                self.series.shippedRows(pass.rows)
                outcome.withLock { $0 = nil }
            } catch {
                let reason = FleetConnection.describe(error, url: self.settings.postgres)
                outcome.withLock { $0 = reason }
            }
        }
        if let reason = outcome.withLock({ $0 }) {
            logger.warning("fleet_ship_deferred", metadata: [
                "reason": .string(reason), "note": .string("rows stay in the local store and ship on the next start"),
            ])
        }
    }
}

/// Runs `body`, or throws once `limit` has passed (a PostgreSQL that stopped
/// answering). The connection is closed then: that is what ends a query in
/// flight, so the body returns and the caller is not held.
func withTimeout<T: Sendable>(
    _ limit: Duration, closing connection: PostgresConnection? = nil, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            let _: EventLoopFuture<Void>? = connection?.close()
            throw FleetSchema.Problem(description: "PostgreSQL did not answer within \(limit)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Waits for `body` at most `limit`; false when it was still running (it is left to finish on its own).
func finishes(within limit: Duration, _ body: @escaping @Sendable () async -> Void) async -> Bool {
    let gate = AnswerOnce()
    return await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
        gate.set(done)
        Task { await body(); gate.answer(true) }
        Task { try? await Task.sleep(for: limit); gate.answer(false) }
    }
}

/// Resumes a continuation with the first answer only.
private final class AnswerOnce: Sendable {
    private let waiting = Mutex<CheckedContinuation<Bool, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<Bool, Never>) { waiting.withLock { $0 = continuation } }

    func answer(_ value: Bool) {
        waiting.withLock { continuation in
            continuation?.resume(returning: value)
            continuation = nil
        }
    }
}

/// The breakers the fleet shares, as the configuration said at the last
/// reload this connection saw; read by the notification and publishing tasks.
final class SharedSet: Sendable {
    private let state: Mutex<(breakers: Set<String>, reloads: Int)>

    init(_ breakers: Set<String>, reloads: Int) { state = Mutex((breakers, reloads)) }

    var breakers: Set<String> { state.withLock { $0.breakers } }
    var reloads: Int { state.withLock { $0.reloads } }

    /// The set before.
    func replace(_ breakers: Set<String>, reloads: Int) -> Set<String> {
        state.withLock { state in
            defer { state = (breakers, reloads) }
            return state.breakers
        }
    }
}
