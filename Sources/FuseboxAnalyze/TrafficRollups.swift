import GRDB

/// A stretch of one traffic table: rows keyed at multiples of `width` in [low, high).
struct TrafficPiece: Equatable {
    var table: String
    var key: String
    var width: Int64
    var low: Int64
    var high: Int64
}

/// `traffic` and its roll-ups (store version 3 on), widest first.
enum TrafficLevels {
    static let all: [(table: String, key: String, width: Int64)] = [
        ("traffic_hourly", "hour_ms", 3_600_000), ("traffic_minutely", "minute_ms", 60_000), ("traffic", "bucket_ms", 10_000),
    ]

    /// [from, end) cut into the widest rows that fit inside it, none wider
    /// than `maxWidth`: a month is 720 hourly rows plus at most a few minutes
    /// and buckets at either end. `from` and `end` fall on bucket boundaries.
    static func pieces(from: Int64, to end: Int64, maxWidth: Int64 = .max) -> [TrafficPiece] {
        let levels = all.filter { $0.width <= maxWidth || $0.width == 10_000 }
        func cut(_ low: Int64, _ high: Int64, _ level: Int) -> [TrafficPiece] {
            guard low < high else { return [] }
            let (table, key, width) = levels[level]
            guard level < levels.count - 1 else { return [TrafficPiece(table: table, key: key, width: width, low: low, high: high)] }
            let first = low + ((width - low % width) % width + width) % width   // first boundary at or after low
            let last = high - ((high % width) + width) % width                   // last boundary at or before high
            guard first < last else { return cut(low, high, level + 1) }
            return cut(low, first, level + 1) + [TrafficPiece(table: table, key: key, width: width, low: first, high: last)]
                + cut(last, high, level + 1)
        }
        return cut(from, end, 0)
    }
}

extension StoreSource {
    /// One lane's traffic (buckets starting in [from, to]) when a histogram column spans a
    /// minute or more, read from the widest rows no wider than a column.
    /// Totals are exact; a row that straddles two columns is shared between
    /// them by overlap, so the bars stay smooth.
    func rolledUpTraffic(_ lane: Lane, from: Int64, to: Int64, columns: Int) throws -> (totals: TrafficTotals, columns: [(calls: Int, failed: Int)]) {
        let end = to + 1
        let span = Double(end - from)
        var totals = TrafficTotals()
        var bars = [(calls: Double, failed: Double)](repeating: (0, 0), count: columns)
        let columnOf = { (at: Int64) -> Int in min(columns - 1, max(0, Int(Double(at - from) / span * Double(columns)))) }

        func add(_ slice: TrafficTotals, start: Int64, length: Int64) {
            totals.add(slice)
            let first = columnOf(start), last = columnOf(start + length - 1)
            for column in first...last {
                let low = first == last ? start : max(start, from + Int64(span * Double(column) / Double(columns)))
                let high = first == last ? start + length : min(start + length, from + Int64(span * Double(column + 1) / Double(columns)))
                let share = Double(max(0, high - low)) / Double(length)
                bars[column].calls += Double(slice.calls) * share
                bars[column].failed += Double(slice.failed) * share
            }
        }

        let list = TrafficTotals.columns.joined(separator: ", ")
        try queue.read { db in
            for piece in TrafficLevels.pieces(from: bucketFloor(from + 9_999), to: bucketFloor(to) + 10_000, maxWidth: Int64(span) / Int64(columns)) {
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT \(piece.key), \(list) FROM \(piece.table)
                    WHERE instance = ? AND breaker = ? AND \(piece.key) >= ? AND \(piece.key) < ?
                    """, arguments: [lane.instance, lane.breaker, piece.low, piece.high])
                while let row = try rows.next() {
                    add(TrafficTotals(sums: row, offset: 1), start: row[0], length: piece.width)
                }
            }
        }
        return (totals, bars.map { (Int($0.calls.rounded()), Int($0.failed.rounded())) })
    }

    /// Sums one instance's `breakers` over the buckets starting in [from, to], from the
    /// roll-ups where whole minutes and hours fit.
    func rolledUpTraffic(instance: String, breakers: [String], from: Int64, to: Int64) throws -> TrafficTotals {
        let list = breakers.map { _ in "?" }.joined(separator: ",")
        return try queue.read { db in
            var totals = TrafficTotals()
            for piece in TrafficLevels.pieces(from: bucketFloor(from + 9_999), to: bucketFloor(to) + 10_000) {
                let row = try Row.fetchOne(db, sql: """
                    SELECT \(trafficSums) FROM \(piece.table)
                    WHERE instance = ? AND \(piece.key) >= ? AND \(piece.key) < ? AND breaker IN (\(list))
                    """, arguments: StatementArguments([instance, piece.low, piece.high] as [DatabaseValueConvertible])
                        + StatementArguments(breakers))
                if let row { totals.add(TrafficTotals(sums: row)) }
            }
            return totals
        }
    }

    /// The start of the 10-second bucket holding `ms`.
    func bucketFloor(_ ms: Int64) -> Int64 { ms - ((ms % 10_000) + 10_000) % 10_000 }
}
