import Foundation
import FuseboxCore
import FuseboxStore
import GRDB
import Logging

/// The store writer: transitions per second through the real writer (queue,
/// batching, transactions) against plain prepared-statement inserts of the
/// same rows in one transaction (the floor), and traffic events per second
/// aggregated into 10-second buckets.
enum StoreBench {
    static func run() throws {
        let folder = try BenchFolder()
        let transitions = 300_000
        let clock = ManualClock(.milliseconds(1_796_000_000_000))
        var sample: [Transition] = []
        sample.reserveCapacity(transitions)
        for i in 0..<transitions {
            let opening = i % 2 == 0
            let at = Timestamp.milliseconds(1_796_000_000_000 + Int64(i))
            sample.append(Transition(
                breaker: "b\(i % 20)", from: opening ? .closed : .open, to: opening ? .open : .closed,
                at: at, reason: .consecutiveFailures, generation: UInt64(i),
                failureCount: 5, callsInWindow: 100, failuresInWindow: 50, failureRate: 0.5, slowCallRate: 0,
                lastError: "upstream 503", lastStatus: 503, openUntil: opening ? at + .seconds(60) : nil
            ))
        }

        // Floor: the same columns inserted directly.
        let floorQueue = try StoreDatabase.openForWriting(folder.path + "/floor.db")
        var start = ContinuousClock.now
        try floorQueue.write { db in
            let statement = try db.makeStatement(sql: """
                INSERT INTO transitions (at_ms, timestamp, instance, breaker, old_state, new_state, reason, generation,
                    failure_count, calls_in_window, failures_in_window, failure_rate, slow_call_rate, last_error,
                    last_status, open_until_ms, open_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for t in sample {
                try statement.execute(arguments: [
                    t.at.milliseconds, t.at.rfc3339, "bench", t.breaker, t.from.rawValue, t.to.rawValue, t.reason.rawValue,
                    Int64(t.generation), t.failureCount, t.callsInWindow, t.failuresInWindow, t.failureRate, t.slowCallRate,
                    t.lastError, t.lastStatus, t.openUntil?.milliseconds, t.openUntil?.rfc3339,
                ])
            }
        }
        let floorRate = Double(transitions) / (ContinuousClock.now - start).secondsDouble

        var options = StoreWriter.Options()
        options.transitionCapacity = transitions
        let writer = try StoreWriter(path: folder.path + "/writer.db", instance: "bench", options: options, clock: clock, logger: Logger(label: "bench"))
        try writer.start(version: "bench", config: "")
        start = ContinuousClock.now
        for t in sample { writer.receive([.transitioned(t)]) }
        let enqueueSeconds = (ContinuousClock.now - start).secondsDouble
        while writer.status.written < transitions { usleep(1_000) }
        let writerRate = Double(transitions) / (ContinuousClock.now - start).secondsDouble

        let events = 2_000_000
        start = ContinuousClock.now
        for i in 0..<events {
            writer.receive([.recorded(RecordedCall(
                breaker: "b\(i % 20)", outcome: i % 10 == 0 ? .failure : .success, status: i % 10 == 0 ? 503 : 200,
                latency: .milliseconds(120), error: nil, slow: false, stale: false,
                at: .milliseconds(1_796_000_000_000 + Int64(i / 100))
            ))])
        }
        let trafficRate = Double(events) / (ContinuousClock.now - start).secondsDouble
        writer.stop()
        let rows = try StoreDatabase.openForReading(folder.path + "/writer.db").read { db in
            try Int.fetchOne(db, sql: "SELECT sum(successes + failures) FROM traffic") ?? 0
        }

        print("store benchmark: \(transitions) transitions, \(events) traffic events, 20 breakers")
        print("plain prepared inserts, one transaction (floor): \(Int(floorRate)) transitions/s")
        print("StoreWriter, enqueue to committed:               \(Int(writerRate)) transitions/s  (×\(String(format2: writerRate / floorRate)) of floor; enqueue alone \(Int(Double(transitions) / enqueueSeconds))/s)")
        print("traffic events aggregated on the decision path:   \(Int(trafficRate)) events/s (all \(rows) counted in the store)")
    }
}
