import Foundation
import FuseboxCore
import GRDB
import Logging
import Synchronization
import Testing
@testable import FuseboxStore

/// A store file in a fresh folder, and an engine on a manual clock feeding it.
final class StoreFixture {
    let folder: URL
    let path: String
    let clock = ManualClock(.milliseconds(1_796_000_000_000))
    let writer: StoreWriter
    let engine: Engine

    static let defaultPolicy: BreakerPolicy = {
        var policy = BreakerPolicy()
        policy.open.jitter = 0
        policy.trip.window = nil
        return policy
    }()

    init(options: StoreWriter.Options = StoreWriter.Options(), breakers: [String] = ["openai", "anthropic"],
         policy: BreakerPolicy = StoreFixture.defaultPolicy) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("fusebox-store-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        path = folder.appendingPathComponent("fusebox.db").path
        writer = try StoreWriter(path: path, instance: "test-host", options: options, clock: clock, logger: Logger(label: "test"))
        engine = try Engine(
            configuration: EngineConfiguration(
                breakers: breakers.map { BreakerDefinition(name: $0, policy: policy) },
                chains: [ChainDefinition(name: "llm", breakers: ["openai", "anthropic"])]
            ),
            clock: clock, sink: writer, seed: 7
        )
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try StoreDatabase.openForReading(path).read(body)
    }

    deinit { try? FileManager.default.removeItem(at: folder) }
}

@Suite("Store writer")
struct StoreWriterTests {
    @Test func everyTransitionIsStoredWithEveryField() throws {
        let f = try StoreFixture()
        try f.writer.start(version: "test", config: "breakers: {}")
        for _ in 0..<5 { try f.engine.record("openai", CallReport(status: 503, latency: .milliseconds(40), error: "down \"hard\"\n")) }
        f.clock.advance(by: .seconds(60))
        f.engine.tick()
        try f.engine.record("openai", .success())
        f.writer.stop()
        let rows = try f.read { try Row.fetchAll($0, sql: "SELECT * FROM transitions ORDER BY id") }
        #expect(rows.count == 3)
        let trip = try #require(rows.first)
        #expect(trip["instance"] as String? == "test-host")
        #expect(trip["breaker"] as String? == "openai")
        #expect(trip["old_state"] as String? == "closed" && trip["new_state"] as String? == "open")
        #expect(trip["reason"] as String? == "consecutive_failures")
        #expect(trip["failure_count"] as Int? == 5)
        #expect(trip["last_status"] as Int? == 503)
        #expect(trip["last_error"] as String? == "down \"hard\"\n")
        #expect(trip["generation"] as Int? == 1)
        #expect(trip["at_ms"] as Int64? == 1_796_000_000_000)
        #expect(trip["timestamp"] as String? == Timestamp.milliseconds(1_796_000_000_000).rfc3339)
        #expect(trip["open_until_ms"] as Int64? == 1_796_000_060_000)
        #expect(trip["open_until"] as String? != nil)
        #expect(rows.map { $0["new_state"] as String? } == ["open", "half_open", "closed"])
        #expect(rows[1]["open_until_ms"] as Int64? == nil)
        let run = try f.read { try Row.fetchOne($0, sql: "SELECT * FROM runs") }
        #expect(run?["version"] as String? == "test")
        #expect(run?["stopped_ms"] as Int64? != nil)
    }

    @Test func trafficBucketsSumToTheCallsReported() throws {
        let f = try StoreFixture()
        try f.writer.start(version: "test", config: "")
        var reported = (success: 0, failure: 0, ignored: 0)
        for i in 0..<300 {
            f.clock.advance(by: .milliseconds(250))  // 75 s: eight 10-second buckets
            switch i % 7 {
            case 0: try f.engine.record("anthropic", CallReport(status: 500)); reported.failure += 1
            case 1: try f.engine.record("anthropic", CallReport(status: 404)); reported.ignored += 1
            default: try f.engine.record("anthropic", .success(latency: .milliseconds(100))); reported.success += 1
            }
        }
        f.writer.stop()
        let sums = try f.read { db in
            try Row.fetchOne(db, sql: """
                SELECT sum(successes), sum(failures), sum(ignored), count(*), sum(latency_count), sum(latency_sum_ms)
                FROM traffic WHERE breaker = 'anthropic'
                """)
        }
        #expect(sums?[0] as Int? == reported.success)
        #expect(sums?[1] as Int? == reported.failure)
        #expect(sums?[2] as Int? == reported.ignored)
        #expect((sums?[3] as Int? ?? 0) >= 8)
        #expect(sums?[4] as Int? == reported.success)
        #expect(sums?[5] as Double? == Double(reported.success) * 100)
        let buckets = try f.read { try Int64.fetchAll($0, sql: "SELECT bucket_ms FROM traffic") }
        #expect(buckets.allSatisfy { $0 % trafficBucketMilliseconds == 0 })
    }

    /// `traffic_minutely` and `traffic_hourly` hold exactly `traffic` summed per minute and per hour.
    static func rollupsMatchTraffic(_ read: ((Database) throws -> [[Int64]]) throws -> [[Int64]]) throws -> Bool {
        var matched = true
        for (table, key, width) in [("traffic_minutely", "minute_ms", 60_000), ("traffic_hourly", "hour_ms", 3_600_000)] {
            let fromTraffic = try read { db in
                try Row.fetchAll(db, sql: """
                    SELECT breaker, bucket_ms - bucket_ms % \(width) AS k, sum(successes), sum(failures), sum(ignored), sum(rejected)
                    FROM traffic GROUP BY breaker, k ORDER BY breaker, k
                    """).map { [Int64(($0[0] as String).hashValue), $0[1], $0[2], $0[3], $0[4], $0[5]] }
            }
            let rolled = try read { db in
                try Row.fetchAll(db, sql: """
                    SELECT breaker, \(key), successes, failures, ignored, rejected FROM \(table) ORDER BY breaker, \(key)
                    """).map { [Int64(($0[0] as String).hashValue), $0[1], $0[2], $0[3], $0[4], $0[5]] }
            }
            matched = matched && !rolled.isEmpty && rolled == fromTraffic
        }
        return matched
    }

    @Test func minuteAndHourRollupsSumTheBucketsExactly() throws {
        let f = try StoreFixture()
        try f.writer.start(version: "test", config: "")
        for i in 0..<2_700 {  // 90 minutes, committed in many batches
            f.clock.advance(by: .seconds(2))
            try f.engine.record(i % 2 == 0 ? "anthropic" : "openai", i % 9 == 0 ? CallReport(status: 404) : .success())
            if i % 500 == 0 { try waitFor { f.writer.status.queued == 0 } }  // a batch boundary: committed before going on
        }
        f.writer.stop()
        #expect(try Self.rollupsMatchTraffic { try f.read($0) })
    }

    @Test func failureDetailsAreABoundedSamplePerBucket() throws {
        var options = StoreWriter.Options()
        options.failureSamplesPerBucket = 3
        let f = try StoreFixture(options: options)
        try f.writer.start(version: "test", config: "")
        for i in 0..<4 { try f.engine.record("openai", CallReport(status: 503, error: "e\(i)")) }  // trips at 5: stay below
        f.clock.advance(by: .seconds(10))
        try f.engine.record("openai", CallReport(status: 429, error: "later"))
        f.writer.stop()
        let errors = try f.read { try String.fetchAll($0, sql: "SELECT error FROM failures ORDER BY id") }
        #expect(errors == ["e0", "e1", "e2", "later"])
        #expect(try f.read { try Int.fetchOne($0, sql: "SELECT sum(failures) FROM traffic") } == 5)
    }

    @Test func fallbacksAndExhaustedRoutesAreCountedPerChain() throws {
        let f = try StoreFixture()
        try f.writer.start(version: "test", config: "")
        try f.engine.force("openai", .open)
        for _ in 0..<3 { _ = try f.engine.route("llm") }
        try f.engine.force("anthropic", .open)
        _ = try f.engine.route("llm")
        f.writer.stop()
        let routes = try f.read { try Row.fetchAll($0, sql: "SELECT from_breaker, to_breaker, count FROM routes ORDER BY to_breaker") }
        #expect(routes.map { [$0[0] as String, $0[1] as String, String($0[2] as Int)] } == [["", "", "1"], ["openai", "anthropic", "3"]])
        let fallbacks = try f.read { try Row.fetchOne($0, sql: "SELECT sum(fallbacks_out), sum(rejected) FROM traffic WHERE breaker = 'openai'") }
        #expect(fallbacks?[0] as Int? == 3 && fallbacks?[1] as Int? == 4)
    }

    @Test func aLockedStoreIsRetriedAndNothingIsLost() throws {
        var options = StoreWriter.Options()
        options.flushInterval = .milliseconds(20)
        let f = try StoreFixture(options: options)
        try f.writer.start(version: "test", config: "")
        // Another process holds the write lock.
        let blocker = try DatabaseQueue(path: f.path)
        let locked = Mutex(true)
        let lockHeld = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? blocker.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN EXCLUSIVE")
                lockHeld.signal()
                while locked.withLock({ $0 }) { Thread.sleep(forTimeInterval: 0.01) }  // poll: holds the lock until told
                try db.execute(sql: "COMMIT")
            }
        }
        lockHeld.wait()
        for i in 0..<20 {
            try f.engine.force("openai", i % 2 == 0 ? .open : .auto)
        }
        // Decisions were not held up, and the writer says it is failing.
        #expect(throws: Never.self) { try f.engine.acquire("anthropic") }
        try waitFor { f.writer.problem != nil }
        #expect(f.writer.status.errors >= 1)
        #expect(f.writer.status.queued >= 20)
        locked.withLock { $0 = false }
        try waitFor { f.writer.problem == nil && f.writer.status.queued == 0 }
        f.writer.stop()
        #expect(try f.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM transitions") } == 20)
    }

    @Test func aRemovedFileIsRecreatedAndWritingGoesOn() throws {
        var options = StoreWriter.Options()
        options.flushInterval = .milliseconds(20)
        let f = try StoreFixture(options: options)
        try f.writer.start(version: "test", config: "")
        try f.engine.force("openai", .open)
        try waitFor { f.writer.status.written >= 1 }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: f.path + suffix) }
        try f.engine.force("openai", .auto)
        try waitFor { (try? f.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM transitions") }) == 1 }
        f.writer.stop()
    }

    @Test func transitionsBeyondCapacityAreCountedAsDropped() throws {
        var options = StoreWriter.Options()
        options.transitionCapacity = 5
        options.flushInterval = .seconds(3_600)
        options.flushRows = 1_000
        let f = try StoreFixture(options: options)
        for i in 0..<8 { try f.engine.force("openai", i % 2 == 0 ? .open : .auto) }
        #expect(f.writer.status.dropped == 3)
        #expect(f.writer.status.queued == 5)
    }

    func waitFor(_ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if condition() { return }
            Thread.sleep(forTimeInterval: 0.01)  // poll
        }
        Issue.record("timed out")
    }
}

@Suite("Store files")
struct StoreFileTests {
    func temporaryPath() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fusebox-file-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder.appendingPathComponent("fusebox.db").path
    }

    @Test func anEmptyFileIsMigratedAndAReopenedOneKeptAsItIs() throws {
        let path = try temporaryPath()
        do {
            let queue = try StoreDatabase.openForWriting(path)
            try queue.write { try $0.execute(sql: "INSERT INTO runs (instance, started_ms, version, pid, config) VALUES ('a', 1, 'v', 1, '')") }
        }
        let queue = try StoreDatabase.openForWriting(path)
        try queue.read { db in
            #expect(try Int.fetchOne(db, sql: "PRAGMA user_version") == StoreSchema.currentVersion)
            #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM runs") == 1)
            let indexes = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")
            #expect(Set(indexes).isSuperset(of: ["transitions_at", "transitions_lane", "traffic_bucket", "failures_breaker_at"]))
        }
    }

    @Test func aVersion2StoreGainsItsRollupsWhenMigrated() throws {
        let path = try temporaryPath()
        do {
            let queue = try DatabaseQueue(path: path)
            try queue.write { db in
                for sql in StoreSchema.migrations.prefix(2) { try db.execute(sql: sql) }
                try db.execute(sql: "PRAGMA user_version = 2")
                try db.execute(sql: "PRAGMA application_id = \(StoreSchema.applicationID)")
                for i in 0..<1_000 {
                    try db.execute(sql: "INSERT INTO traffic (instance, breaker, bucket_ms, successes, failures, rejected) VALUES ('a', ?, ?, ?, ?, ?)",
                                   arguments: [i % 3 == 0 ? "x" : "y", 1_796_000_000_000 + Int64(i) * 10_000, i % 7, i % 2, i % 5])
                }
            }
        }
        let queue = try StoreDatabase.openForWriting(path)
        #expect(try queue.read { try Int.fetchOne($0, sql: "PRAGMA user_version") } == StoreSchema.currentVersion)
        #expect(try StoreWriterTests.rollupsMatchTraffic { try queue.read($0) })
    }

    @Test func filesThatAreNotFuseboxStoresAreRefused() throws {
        let path = try temporaryPath()
        try "just some text, not SQLite".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: StoreError.notAStore(path)) { try StoreDatabase.openForReading(path) }
        #expect(throws: StoreError.notAStore(path)) { try StoreDatabase.openForWriting(path) }
        let other = try temporaryPath()
        try DatabaseQueue(path: other).write { try $0.execute(sql: "CREATE TABLE songs (title TEXT)") }
        #expect(throws: StoreError.notAStore(other)) { try StoreDatabase.openForWriting(other) }
        #expect(throws: StoreError.notFound("/nonexistent/x.db")) { try StoreDatabase.openForReading("/nonexistent/x.db") }
    }

    @Test func aStoreFromANewerFuseboxIsRefused() throws {
        let path = try temporaryPath()
        _ = try StoreDatabase.openForWriting(path)
        try DatabaseQueue(path: path).writeWithoutTransaction { try $0.execute(sql: "PRAGMA user_version = 99") }
        #expect(throws: StoreError.tooNew(path, version: 99)) { try StoreDatabase.openForReading(path) }
    }

    @Test func retentionPrunesOldRows() throws {
        let path = try temporaryPath()
        let queue = try StoreDatabase.openForWriting(path)
        try queue.write { db in
            for at in [1_000, 2_000, 3_000] {
                try db.execute(sql: """
                    INSERT INTO transitions (at_ms, timestamp, instance, breaker, old_state, new_state, reason, generation,
                      failure_count, calls_in_window, failures_in_window, failure_rate, slow_call_rate)
                    VALUES (?, '', 'i', 'b', 'closed', 'open', 'forced', 1, 0, 0, 0, 0, 0)
                    """, arguments: [at])
            }
        }
        #expect(try StoreMaintenance.prune(queue, before: 2_500) == 2)
        #expect(try StoreMaintenance.stats(path).rows.first { $0.table == "transitions" }?.count == 1)
    }
}
