import FuseboxCore
import FuseboxStore
import GRDB

/// Builds a large store for timing `fusebox analyze`: 20 breakers over 30
/// days, every 10-second traffic bucket filled, and about a million
/// transitions in flapping bursts (each breaker every two hours, at its own
/// offset, 46 trip/probe/close cycles ten seconds apart).
enum AnalyzeBench {
    static func build(_ path: String, breakers: Int = 20, days: Int = 30) throws {
        let queue = try StoreDatabase.openForWriting(path)
        let start = Timestamp(rfc3339: "2026-01-01T00:00:00Z")!.milliseconds
        let end = start + Int64(days) * 86_400_000
        var random = SplitMix64(seed: 42)
        var transitions = 0, buckets = 0
        try queue.write { db in
            let transition = try db.makeStatement(sql: """
                INSERT INTO transitions (at_ms, timestamp, instance, breaker, old_state, new_state, reason, generation,
                    failure_count, calls_in_window, failures_in_window, failure_rate, slow_call_rate, last_error, last_status,
                    open_until_ms, open_until) VALUES (?, ?, 'bench', ?, ?, ?, ?, ?, 5, 100, 50, 0.5, 0, 'upstream 503', 503, ?, ?)
                """)
            for b in 0..<breakers {
                let name = "provider-\(b)"
                var generation = 0
                var burst = start + Int64(random.next() % 7_200_000)
                while burst < end {
                    var t = burst
                    for _ in 0..<46 {
                        for (from, to, reason) in [("closed", "open", "consecutive_failures"), ("open", "half_open", "open_elapsed"),
                                                   ("half_open", "closed", "probe_succeeded")] {
                            generation += 1
                            let openUntil: Int64? = to == "open" ? t + 10_000 : nil
                            try transition.execute(arguments: [
                                t, Timestamp.milliseconds(t).rfc3339, name, from, to, reason, generation, openUntil,
                                openUntil.map { Timestamp.milliseconds($0).rfc3339 },
                            ])
                            transitions += 1
                            t += 3_333
                        }
                    }
                    burst += 7_200_000
                }
            }
            let traffic = try db.makeStatement(sql: """
                INSERT INTO traffic (instance, breaker, bucket_ms, successes, failures, timeouts, rejected, latency_sum_ms, latency_count)
                VALUES ('bench', ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            let failure = try db.makeStatement(sql: "INSERT INTO failures (at_ms, instance, breaker, outcome, status, error) VALUES (?, 'bench', ?, 'failure', 503, 'upstream 503')")
            for b in 0..<breakers {
                let name = "provider-\(b)"
                var bucket = start
                while bucket < end {
                    let failures = Int(random.next() % 20 == 0 ? random.next() % 30 : 0)
                    try traffic.execute(arguments: [name, bucket, 100 + Int(random.next() % 50), failures, failures / 5, failures * 2, 12_000.0, 100])
                    if failures > 0 { try failure.execute(arguments: [bucket + 1_000, name]) }
                    buckets += 1
                    bucket += 10_000
                }
            }
            try db.execute(sql: StoreSchema.rollup(into: "traffic_minutely", width: 60_000))
            try db.execute(sql: StoreSchema.rollup(into: "traffic_hourly", width: 3_600_000))
        }
        print("built \(path): \(transitions) transitions, \(buckets) traffic buckets, \(breakers) breakers over \(days) days")
    }
}
