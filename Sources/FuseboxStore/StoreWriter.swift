import Foundation
import FuseboxCore
import GRDB
import Logging
import Synchronization

/// Feeds the SQLite store from the engine without ever making a decision
/// wait: the engine's events only append to in-memory pending rows (under a
/// short lock); one writer thread swaps them out and commits them in one
/// transaction every `flushInterval`, or sooner once `flushRows` are waiting.
///
/// When writing fails (disk full, file removed, locked) the batch goes back
/// into the queue, the writer retries with backoff, logs at most once a
/// minute, and resumes when the fault clears. Transitions are dropped only if
/// `transitionCapacity` are already waiting; traffic detail is shed first.
public final class StoreWriter: EngineEventSink, @unchecked Sendable {
    public struct Options: Sendable {
        public var flushInterval: Duration = .milliseconds(200)
        public var flushRows = 1_000
        public var transitionCapacity = 200_000
        /// Distinct (breaker, bucket) traffic rows held while writes fail.
        public var trafficCapacity = 100_000
        public var failureSamplesPerBucket = 5
        /// Rows older than this are pruned (hourly); nil keeps everything.
        public var retention: Duration? = .seconds(90 * 86_400)

        public init() {}
    }

    /// Counters for metrics and readiness; read without blocking the writer.
    public struct Status: Sendable {
        public var written: Int
        public var errors: Int
        public var dropped: Int
        public var queued: Int
        public var lastError: String?
    }

    public let path: String
    private let instance: String
    private let options: Options
    private let clock: any BreakerClock
    private let logger: Logger
    private let pending = Mutex(PendingRows())
    private let failingSince = Mutex<String?>(nil)
    private let counters = Mutex((written: 0, errors: 0, dropped: 0))
    private let wake = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    // Touched only by the writer thread (and by init/stop around it).
    private var database: DatabaseQueue?
    private var fileIdentity: (dev: UInt64, ino: UInt64)?
    private var runID: Int64?
    private var lastErrorLog = ContinuousClock.Instant.now - .seconds(120)
    private var lastPrune = ContinuousClock.Instant.now - .seconds(7_200)

    /// Opens (creating and migrating) the store; throws if it cannot, so the
    /// sidecar refuses to start rather than run without its history.
    public init(path: String, instance: String, options: Options = Options(), clock: any BreakerClock, logger: Logger) throws {
        self.path = path
        self.instance = instance
        self.options = options
        self.clock = clock
        self.logger = logger
        database = try StoreDatabase.openForWriting(path)
        fileIdentity = Self.identity(of: path)
    }

    // MARK: Run

    /// Records the run and starts the writer thread.
    public func start(version: String, config: String) throws {
        let now = clock.now()
        try database?.write { db in
            try db.execute(
                sql: "INSERT INTO runs (instance, started_ms, version, pid, config) VALUES (?, ?, ?, ?, ?)",
                arguments: [instance, now.milliseconds, version, Int(ProcessInfo.processInfo.processIdentifier), config]
            )
            runID = db.lastInsertedRowID
        }
        let thread = Thread { [self] in loop() }
        thread.name = "fusebox-store-writer"
        thread.start()
    }

    /// Writes everything still queued, marks the run stopped, and ends the thread.
    public func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        wake.signal()
        finished.wait()
    }

    public var status: Status {
        let count = counters.withLock { $0 }
        let queued = pending.withLock { $0.rowCount }
        return Status(written: count.written, errors: count.errors, dropped: count.dropped, queued: queued,
                      lastError: failingSince.withLock { $0 })
    }

    /// What this instance's breakers were doing when it last stopped (`SavedStates`): read at start.
    public func savedStates() throws -> [String: SavedState] {
        guard let database else { return [:] }
        return try database.read { db in try SavedStates.read(db, instance: instance) }
    }

    /// Nil while healthy; the error while writes fail.
    public var problem: String? { failingSince.withLock { $0 } }

    private func loop() {
        var backoff = options.flushInterval
        var failing = false
        while !stopping.load(ordering: .relaxed) {
            let due = DispatchTime.now() + .nanoseconds(Int(clamping: max(1, backoff.nanosecondsClamped)))
            _ = wake.wait(timeout: due)
            // While the store fails, a full batch's wake-up does not cut the backoff short.
            while failing, !stopping.load(ordering: .relaxed), DispatchTime.now() < due { _ = wake.wait(timeout: due) }
            let ok = flush()
            failing = !ok
            backoff = ok ? options.flushInterval : min(max(backoff * 2, .milliseconds(500)), .seconds(30))
            if ok { pruneIfDue() }
        }
        // Stopping: events may have arrived during the last flush. Write until
        // nothing is left, giving a failing store a few more tries.
        var attempts = 0
        while !pending.withLock({ $0.isEmpty }) && attempts < 5 {
            if !flush() {
                attempts += 1
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        markStopped()
        finished.signal()
    }

    // MARK: Engine events: append only

    public func receive(_ events: [EngineEvent]) {
        for event in events {
            switch event {
            case .transitioned(let t): transitioned(t)
            case .recorded(let call): recorded(call)
            case .rejected(let breaker, _, let reason, let at): rejected(breaker: breaker, reason: reason, at: at)
            case .fellBack(let chain, let from, let to, let at): fellBack(chain: chain, from: from, to: to, at: at)
            case .exhausted(let chain, _, let at): exhausted(chain: chain, at: at)
            case .permitEnded(let breaker, let how, let at): permitEnded(breaker: breaker, how: how, at: at)
            case .paused(let breaker, let until, _): pending.withLock { $0.pauses[breaker] = until.milliseconds }
            case .operated(let breaker, .reset, _, _): pending.withLock { $0.pauses[breaker] = 0 }  // a reset lifts pauses
            case .dequeued, .heldOpen, .operated, .probed, .preferred: break
            }
        }
    }

    func transitioned(_ transition: Transition) {
        let capacity = options.transitionCapacity
        let dropped = pending.withLock { rows -> Bool in
            guard rows.transitions.count < capacity else { return true }
            rows.transitions.append(transition)
            return false
        }
        if dropped { counters.withLock { $0.dropped += 1 } } else { nudge() }
    }

    func recorded(_ call: RecordedCall) {
        let key = TrafficKey(breaker: call.breaker, bucket: bucket(call.at))
        let samplesPerBucket = options.failureSamplesPerBucket
        withTraffic(key) { rows, counts in
            switch call.outcome {
            case .success: counts.successes += 1
            case .failure: counts.failures += 1
            case .timeout: counts.timeouts += 1
            case .ignored: counts.ignored += 1
            case .cancelled: counts.cancelled += 1
            }
            if call.slow { counts.slow += 1 }
            if let latency = call.latency {
                counts.latencySumMs += Double(latency.nanosecondsClamped) / 1e6
                counts.latencyCount += 1
            }
            if call.outcome.isFailure, counts.samples < samplesPerBucket {
                counts.samples += 1
                rows.failures.append(FailureSample(
                    at: call.at, breaker: call.breaker, outcome: call.outcome, status: call.status, error: call.error
                ))
            }
        }
    }

    func rejected(breaker: String, reason: RejectionReason, at: Timestamp) {
        withTraffic(TrafficKey(breaker: breaker, bucket: bucket(at))) { _, counts in
            counts.rejected += 1
            switch reason {
            case .open: break
            case .concurrency: counts.rejectedConcurrency += 1
            case .rate: counts.rejectedRate += 1
            case .tokens: counts.rejectedTokens += 1
            }
        }
    }

    func fellBack(chain: String, from: String, to: String, at: Timestamp) {
        let b = bucket(at)
        withTraffic(TrafficKey(breaker: from, bucket: b)) { $1.fallbacksOut += 1 }
        withTraffic(TrafficKey(breaker: to, bucket: b)) { $1.fallbacksIn += 1 }
        pending.withLock { $0.routes[RouteKey(chain: chain, bucket: b, from: from, to: to), default: 0] += 1 }
    }

    func exhausted(chain: String, at: Timestamp) {
        pending.withLock { $0.routes[RouteKey(chain: chain, bucket: bucket(at), from: "", to: ""), default: 0] += 1 }
    }

    func permitEnded(breaker: String, how: PermitEnd, at: Timestamp) {
        let key = TrafficKey(breaker: breaker, bucket: bucket(at))
        switch how {
        case .expired: withTraffic(key) { $1.expired += 1 }
        case .abandoned: withTraffic(key) { $1.abandoned += 1 }
        case .cancelled: break
        }
    }

    /// Adds to one traffic row; sheds the count (and says so) if the table of
    /// pending rows is full because writes have been failing for long.
    private func withTraffic(_ key: TrafficKey, _ update: (inout PendingRows, inout TrafficCounts) -> Void) {
        let capacity = options.trafficCapacity
        let shed = pending.withLock { rows -> Bool in
            if rows.traffic[key] == nil, rows.traffic.count >= capacity { return true }
            var counts = rows.traffic.removeValue(forKey: key) ?? TrafficCounts()
            update(&rows, &counts)
            rows.traffic[key] = counts
            return false
        }
        if shed { counters.withLock { $0.dropped += 1 } }
    }

    private func nudge() {
        if pending.withLock({ $0.transitions.count }) >= options.flushRows { wake.signal() }
    }

    // MARK: Writing (writer thread)

    /// Commits everything pending in one transaction. On failure the batch
    /// goes back in front of the queue.
    private func flush() -> Bool {
        let batch = pending.withLock { rows -> PendingRows in
            let taken = rows
            rows = PendingRows()
            return taken
        }
        do {
            let database = try connection()
            guard !batch.isEmpty else { return recovered() }
            try database.write { db in try insert(batch, into: db) }
            counters.withLock { $0.written += batch.rowCount }
            return recovered()
        } catch {
            pending.withLock { $0.restore(batch) }
            fail(error)
            return false
        }
    }

    /// The open connection, reopened (and the schema recreated) if the file
    /// was removed or replaced, or after a failure.
    private func connection() throws -> DatabaseQueue {
        let current = Self.identity(of: path)
        if let database, let fileIdentity, let current, current == fileIdentity { return database }
        database = nil
        let reopened = try StoreDatabase.openForWriting(path)
        database = reopened
        fileIdentity = Self.identity(of: path)
        return reopened
    }

    static let transitionInsert: String = {
        let columns = ["instance", "at_ms", "open_until_ms"] + TransitionField.allCases.map(\.rawValue)
        return "INSERT INTO transitions (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
    }()

    private func insert(_ batch: PendingRows, into db: Database) throws {
        // The columns of `TransitionField`, plus the instance and the times again as Unix milliseconds.
        let transition = try db.cachedStatement(sql: Self.transitionInsert)
        for t in batch.transitions {
            var arguments: [(any DatabaseValueConvertible)?] = [instance, t.at.milliseconds, t.openUntil?.milliseconds]
            for field in TransitionField.allCases {
                switch t.value(field) {
                case .text(let text): arguments.append(text)
                case .integer(let number): arguments.append(number)
                case .real(let number): arguments.append(number)
                }
            }
            try transition.execute(arguments: StatementArguments(arguments))
        }
        // Each 10-second bucket, and the same counts summed into their minute and hour.
        let traffic = try db.cachedStatement(sql: TrafficSQL.upsert(table: "traffic", key: "bucket_ms"))
        for (key, c) in batch.traffic { try traffic.execute(arguments: StatementArguments(TrafficSQL.arguments(instance, key, c))) }
        for rollup in TrafficSQL.rollups {
            var sums: [TrafficKey: TrafficCounts] = [:]
            for (key, c) in batch.traffic {
                let start = key.bucket - ((key.bucket % rollup.width) + rollup.width) % rollup.width
                sums[TrafficKey(breaker: key.breaker, bucket: start), default: TrafficCounts()].add(c)
            }
            let upsert = try db.cachedStatement(sql: TrafficSQL.upsert(table: rollup.table, key: rollup.key))
            for (key, c) in sums { try upsert.execute(arguments: StatementArguments(TrafficSQL.arguments(instance, key, c))) }
        }
        let failure = try db.cachedStatement(sql: """
            INSERT INTO failures (at_ms, instance, breaker, outcome, status, error) VALUES (?, ?, ?, ?, ?, ?)
            """)
        for f in batch.failures {
            try failure.execute(arguments: [f.at.milliseconds, instance, f.breaker, f.outcome.rawValue, f.status, f.error])
        }
        let route = try db.cachedStatement(sql: """
            INSERT INTO routes (instance, chain, bucket_ms, from_breaker, to_breaker, count) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (instance, chain, bucket_ms, from_breaker, to_breaker) DO UPDATE SET count = count + excluded.count
            """)
        for (key, count) in batch.routes {
            try route.execute(arguments: [instance, key.chain, key.bucket, key.from, key.to, count])
        }
        let pause = try db.cachedStatement(sql: """
            INSERT INTO budget_pauses (instance, breaker, until_ms) VALUES (?, ?, ?)
            ON CONFLICT (instance, breaker) DO UPDATE SET until_ms = excluded.until_ms
            """)
        for (breaker, until) in batch.pauses { try pause.execute(arguments: [instance, breaker, until]) }
    }

    private func recovered() -> Bool {
        let was = failingSince.withLock { previous -> String? in
            defer { previous = nil }
            return previous
        }
        if let was { logger.notice("store_recovered", metadata: ["store": .string(path), "after_error": .string(was)]) }
        return true
    }

    private func fail(_ error: Error) {
        let message = StoreDatabase.describe(error)
        failingSince.withLock { $0 = message }
        counters.withLock { $0.errors += 1 }
        database = nil  // reopen next time: the file may have been replaced
        if ContinuousClock.now - lastErrorLog >= .seconds(60) {
            lastErrorLog = .now
            logger.error("store_write_failed", metadata: [
                "store": .string(path), "error": .string(message),
                "queued_rows": .stringConvertible(pending.withLock { $0.rowCount }),
                "detail": .string("decisions go on; retrying with backoff; logged at most once a minute"),
            ])
        }
    }

    private func markStopped() {
        guard let runID, let database = try? connection() else { return }
        try? database.write { db in
            try db.execute(sql: "UPDATE runs SET stopped_ms = ? WHERE id = ?", arguments: [clock.now().milliseconds, runID])
        }
    }

    /// Deletes rows past `retention`, at most once an hour.
    private func pruneIfDue() {
        guard let retention = options.retention, ContinuousClock.now - lastPrune >= .seconds(3_600),
              let database = try? connection() else { return }
        lastPrune = .now
        let cutoff = (clock.now() - retention).milliseconds
        do {
            try StoreMaintenance.prune(database, before: cutoff)
        } catch {
            logger.warning("store_prune_failed", metadata: ["error": .string(StoreDatabase.describe(error))])
        }
    }

    static func identity(of path: String) -> (dev: UInt64, ino: UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }
}
