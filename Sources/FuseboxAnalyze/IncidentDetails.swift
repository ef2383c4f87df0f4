import FuseboxCore
import GRDB

/// Loads an incident's events from its stores only when a report asks, so a
/// period with a million transitions never holds them all at once.
final class IncidentDetails: @unchecked Sendable {
    let sources: [Lane: StoreSource]

    init(sources: [Lane: StoreSource]) { self.sources = sources }

    func load(_ incident: Incident, limit: Int?) throws -> Incident {
        var detailed = incident
        var changes: [StoredTransition] = []
        var byInstance: [String: (source: StoreSource, breakers: [String], lanes: [String: Lane])] = [:]
        for lane in incident.lanes {
            guard let source = sources[lane] else { continue }
            byInstance[lane.instance, default: (source, [], [:])].breakers.append(lane.breaker)
            byInstance[lane.instance]?.lanes[lane.breaker] = lane
        }
        for (instance, entry) in byInstance {
            changes += try entry.source.transitions(
                instance: instance, lanes: entry.lanes, from: incident.start, to: incident.end ?? .max, limit: limit
            )
        }
        changes.sort { ($0.at, $0.lane) < ($1.at, $1.lane) }
        if let limit, changes.count > limit { changes.removeLast(changes.count - limit) }
        var events = changes.map(IncidentFinder.event)
        if let first = incident.firstFailure {
            events.insert(IncidentEvent(
                at: first, lane: incident.firstFailingLane, kind: .firstFailure,
                text: "first failure seen" + (incident.errorMix.first.map { " (\($0.label))" } ?? ""), transition: nil
            ), at: 0)
        }
        if let end = incident.end {
            events.append(IncidentEvent(
                at: end, lane: nil, kind: .recovered,
                text: "all breakers closed, \(DurationFormat.text(end - incident.firstOpen)) after the first trip", transition: nil
            ))
        }
        detailed.events = events
        return detailed
    }
}

extension StoreSource {
    /// The transitions of some breakers of one instance in [from, to], in order.
    func transitions(instance: String, lanes: [String: Lane], from: Int64, to: Int64, limit: Int?) throws -> [StoredTransition] {
        let names = lanes.keys.sorted()
        return try queue.read { db in
            let cursor = try Row.fetchCursor(db, sql: """
                SELECT at_ms, breaker, old_state, new_state, reason, generation, failure_count, calls_in_window,
                    failure_rate, slow_call_rate, last_error, last_status, open_until_ms,
                    \(hasProbeColumns ? "probe_outcome, probe_latency_ms, probe_status" : "NULL, NULL, NULL")
                FROM transitions WHERE at_ms >= ? AND at_ms <= ? AND instance = ?
                    AND breaker IN (\(names.map { _ in "?" }.joined(separator: ","))) ORDER BY at_ms, id LIMIT ?
                """, arguments: StatementArguments([from, to, instance] as [DatabaseValueConvertible])
                    + StatementArguments(names) + StatementArguments([limit ?? -1]))
            var result: [StoredTransition] = []
            while let row = try cursor.next() {
                guard let lane = lanes[row[1] as String] else { continue }
                result.append(StoredTransition(
                    at: row[0], lane: lane, from: row[2], to: row[3], reason: row[4], generation: row[5],
                    failureCount: row[6], callsInWindow: row[7], failureRate: row[8], slowCallRate: row[9],
                    lastError: row[10], lastStatus: row[11], openUntil: row[12],
                    probe: (row[13] as String?).map { outcome in
                        StoredProbe(outcome: outcome, latencyMs: row[14], status: row[15])
                    }
                ))
            }
            return result
        }
    }

    /// Per lane: traffic totals over [from, to] and calls/failures in
    /// `columns` slices, each slice one summed primary-key range.
    func traffic(lanes: [Lane], from: Int64, to: Int64, columns: Int) throws -> [Lane: (totals: TrafficTotals, columns: [(calls: Int, failed: Int)])] {
        if hasRollups, (to + 1 - from) / Int64(columns) >= 60_000 {
            return try Dictionary(uniqueKeysWithValues: lanes.map { lane in
                (lane, try rolledUpTraffic(lane, from: from, to: to, columns: columns))
            })
        }
        return try queue.read { db in
            let statement = try db.makeStatement(sql: """
                SELECT \(trafficSums)
                FROM traffic WHERE instance = ? AND breaker = ? AND bucket_ms >= ? AND bucket_ms < ?
                """)
            var result: [Lane: (totals: TrafficTotals, columns: [(calls: Int, failed: Int)])] = [:]
            let span = max(1, to - from)
            for lane in lanes {
                var totals = TrafficTotals()
                var values: [(calls: Int, failed: Int)] = []
                values.reserveCapacity(columns)
                for column in 0..<columns {
                    let low = from + span * Int64(column) / Int64(columns)
                    let high = column == columns - 1 ? to + 1 : from + span * Int64(column + 1) / Int64(columns)
                    guard let row = try Row.fetchOne(statement, arguments: [lane.instance, lane.breaker, low, high]) else { continue }
                    let slice = TrafficTotals(sums: row)
                    totals.add(slice)
                    values.append((slice.calls, slice.failed))
                }
                result[lane] = (totals, values)
            }
            return result
        }
    }
}
