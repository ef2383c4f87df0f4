import FuseboxCore
import GRDB

/// The width of a `traffic` (and `routes`) bucket.
public let trafficBucketMilliseconds: Int64 = 10_000

func bucket(_ at: Timestamp) -> Int64 {
    let ms = at.milliseconds
    return ms - ((ms % trafficBucketMilliseconds) + trafficBucketMilliseconds) % trafficBucketMilliseconds
}

/// One `traffic` row's counts.
struct TrafficCounts: Sendable {
    var successes = 0, failures = 0, timeouts = 0, ignored = 0, cancelled = 0, rejected = 0
    var fallbacksIn = 0, fallbacksOut = 0, slow = 0, expired = 0, abandoned = 0
    /// Budget refusals, also counted in `rejected`.
    var rejectedConcurrency = 0, rejectedRate = 0, rejectedTokens = 0
    var latencySumMs = 0.0, latencyCount = 0
    /// Failure details kept for this breaker and bucket (bounded).
    var samples = 0

    mutating func add(_ other: TrafficCounts) {
        successes += other.successes; failures += other.failures; timeouts += other.timeouts
        ignored += other.ignored; cancelled += other.cancelled; rejected += other.rejected
        fallbacksIn += other.fallbacksIn; fallbacksOut += other.fallbacksOut; slow += other.slow
        expired += other.expired; abandoned += other.abandoned
        rejectedConcurrency += other.rejectedConcurrency; rejectedRate += other.rejectedRate
        rejectedTokens += other.rejectedTokens
        latencySumMs += other.latencySumMs; latencyCount += other.latencyCount
        samples += other.samples
    }
}

struct TrafficKey: Hashable, Sendable {
    var breaker: String
    var bucket: Int64
}

struct RouteKey: Hashable, Sendable {
    var chain: String
    var bucket: Int64
    var from: String
    var to: String
}

struct FailureSample: Sendable {
    var at: Timestamp
    var breaker: String
    var outcome: Outcome
    var status: Int?
    var error: String?
}

/// What the engine produced since the last flush. Transitions are kept one by
/// one (never dropped while there is room); traffic and routes are counters
/// per bucket; failure details are a bounded sample per breaker and bucket.
struct PendingRows: Sendable {
    var transitions: [Transition] = []
    var traffic: [TrafficKey: TrafficCounts] = [:]
    var routes: [RouteKey: Int] = [:]
    var failures: [FailureSample] = []
    /// Each breaker's budget pause as last set (Unix ms; 0 when a reset lifted it).
    var pauses: [String: Int64] = [:]

    var isEmpty: Bool { transitions.isEmpty && traffic.isEmpty && routes.isEmpty && failures.isEmpty && pauses.isEmpty }
    var rowCount: Int { transitions.count + traffic.count + routes.count + failures.count + pauses.count }

    /// Puts a batch that could not be written back in front of what came since.
    mutating func restore(_ batch: PendingRows) {
        transitions = batch.transitions + transitions
        for (key, counts) in batch.traffic { traffic[key, default: TrafficCounts()].add(counts) }
        for (key, count) in batch.routes { routes[key, default: 0] += count }
        failures = batch.failures + failures
        pauses.merge(batch.pauses) { newer, _ in newer }
    }
}

/// The upsert shared by `traffic` and its roll-ups: same counts, different key column.
enum TrafficSQL {
    static let counts = StoreSchema.trafficCounts

    /// The roll-up tables, each with its key column and width.
    static let rollups: [(table: String, key: String, width: Int64)] = [
        ("traffic_minutely", "minute_ms", 60_000), ("traffic_hourly", "hour_ms", 3_600_000),
    ]

    static func upsert(table: String, key: String) -> String {
        let columns = ["instance", "breaker", key] + counts
        return "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
            + " ON CONFLICT (instance, breaker, \(key)) DO UPDATE SET "
            + counts.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ", ")
    }

    /// In the order of `upsert`'s columns.
    static func arguments(_ instance: String, _ key: TrafficKey, _ c: TrafficCounts) -> [DatabaseValueConvertible] {
        [instance, key.breaker, key.bucket, c.successes, c.failures, c.timeouts, c.ignored, c.cancelled, c.rejected,
         c.fallbacksIn, c.fallbacksOut, c.slow, c.expired, c.abandoned, c.latencySumMs, c.latencyCount,
         c.rejectedConcurrency, c.rejectedRate, c.rejectedTokens]
    }
}
