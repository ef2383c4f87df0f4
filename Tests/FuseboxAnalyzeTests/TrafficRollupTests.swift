import FuseboxCore
import GRDB
import Testing
@testable import FuseboxAnalyze

@Suite("Traffic roll-ups")
struct TrafficRollupTests {
    @Test func aRangeIsCutIntoTheWidestRowsThatFit() {
        let t = { (h: Int64, m: Int64, s: Int64) in ((h * 60 + m) * 60 + s) * 1_000 }
        let pieces = TrafficLevels.pieces(from: t(10, 0, 10), to: t(12, 30, 20))
        #expect(pieces.map(\.table) == ["traffic", "traffic_minutely", "traffic_hourly", "traffic_minutely", "traffic"])
        #expect(pieces.map(\.low) == [t(10, 0, 10), t(10, 1, 0), t(11, 0, 0), t(12, 0, 0), t(12, 30, 0)])
        #expect(pieces.map(\.high) == [t(10, 1, 0), t(11, 0, 0), t(12, 0, 0), t(12, 30, 0), t(12, 30, 20)])
        #expect(TrafficLevels.pieces(from: t(1, 0, 0), to: t(1, 0, 40)).map(\.table) == ["traffic"])
        #expect(TrafficLevels.pieces(from: t(1, 0, 0), to: t(3, 0, 0), maxWidth: 60_000).map(\.table) == ["traffic_minutely"])
    }

    @Test func twoDaysOfTrafficSumTheSameFromRollupsAsFromBuckets() throws {
        let h = try StoreHistory()
        h.at(.seconds(7))  // off every boundary
        try h.traffic(count: 2_000, every: .seconds(45))                       // about 25 hours healthy
        try h.traffic(count: 400, every: .seconds(45), failing: "openai")      // 5 hours of openai failing
        try h.traffic(count: 1_000, every: .seconds(45))
        h.finish()
        let a = try Analyzer.analyze(AnalyzeOptions(databases: [h.path("host-a")]))
        #expect(a.histogramColumns == 240)
        let queue = try DatabaseQueue(path: h.path("host-a"))
        for summary in a.summary {
            let direct = try queue.read { db in
                try Row.fetchOne(db, sql: """
                    SELECT \(TrafficTotals.sums(budgetColumns: true)) FROM traffic WHERE breaker = ? AND bucket_ms >= ? AND bucket_ms <= ?
                    """, arguments: [summary.lane.breaker, a.from, a.to]).map { TrafficTotals(sums: $0) }
            }
            #expect(summary.traffic == direct, "\(summary.lane.breaker)")
            let bars = a.histogram[summary.lane] ?? []
            #expect(abs(bars.map(\.calls).reduce(0, +) - summary.traffic.calls) <= bars.count, "bars share rows by overlap, rounded")
        }
        for incident in a.incidents {
            let breakers = incident.lanes.map(\.breaker)
            let direct = try queue.read { db in
                try Row.fetchOne(db, sql: """
                    SELECT \(TrafficTotals.sums(budgetColumns: true)) FROM traffic
                    WHERE bucket_ms >= ? AND bucket_ms <= ? AND breaker IN (\(breakers.map { _ in "?" }.joined(separator: ",")))
                    """, arguments: StatementArguments([IncidentFinder.bucketStart(incident.start), incident.end ?? .max])
                        + StatementArguments(breakers)).map { TrafficTotals(sums: $0) }
            }
            #expect(incident.traffic == direct)
        }
        #expect(!a.incidents.isEmpty)

        // A version 2 store (no roll-ups) gives the same answers the slow way.
        try queue.write { db in
            try db.execute(sql: "DROP TABLE traffic_minutely; DROP TABLE traffic_hourly; PRAGMA user_version = 2")
        }
        let old = try Analyzer.analyze(AnalyzeOptions(databases: [h.path("host-a")]))
        #expect(old.summary.map(\.traffic) == a.summary.map(\.traffic))
        #expect(old.incidents.map(\.traffic) == a.incidents.map(\.traffic))
    }
}
