import FuseboxStore
import GRDB
import GRDBSQLite

/// A state span in compact form: what the first pass keeps for every
/// transition of the period (24 bytes), so a million transitions stay small.
struct CompactSegment: Sendable {
    var start: Int64
    var end: Int64   // Int64.max: lasts past the data
    var state: UInt8

    static let stateNames = ["closed", "open", "half_open", "forced_open", "disabled", "metrics_only"]
    static let openState: UInt8 = 1

    var isTripped: Bool { state >= 1 && state <= 3 }

    /// The state code of a name as stored (unknown names count as closed).
    static func code(_ bytes: UnsafeRawBufferPointer) -> UInt8 {
        switch (bytes.count, bytes.first) {
        case (6, UInt8(ascii: "c")): return 0
        case (4, UInt8(ascii: "o")): return 1
        case (9, UInt8(ascii: "h")): return 2
        case (11, UInt8(ascii: "f")): return 3
        case (8, UInt8(ascii: "d")): return 4
        case (12, UInt8(ascii: "m")): return 5
        default: return 0
        }
    }

    static func code(_ name: String) -> UInt8 { UInt8(stateNames.firstIndex(of: name) ?? 0) }
}

/// One lane's states over the period.
struct LaneHistory: Sendable {
    var lane: Lane
    var source: StoreSource
    var segments: [CompactSegment]
}

extension StoreSource {
    /// Breakers with transitions (a seek per name along the index), filtered.
    func transitionBreakers(_ filter: Set<String>) throws -> [String] {
        try queue.read { db in
            var names: [String] = []
            var next = try String.fetchOne(db, sql: "SELECT min(breaker) FROM transitions")
            while let name = next {
                if filter.isEmpty || filter.contains(name) { names.append(name) }
                next = try String.fetchOne(db, sql: "SELECT min(breaker) FROM transitions WHERE breaker > ?", arguments: [name])
            }
            return names
        }
    }

    /// The state segments in [from, to] of every lane of `breaker` (one per
    /// instance), read along the covering (breaker, at_ms, …) index with the
    /// SQLite C API: no row objects, no strings per row.
    func laneHistories(of breaker: String, from: Int64, to: Int64, multiHost: Bool) throws -> [LaneHistory] {
        try queue.read { db in
            var histories: [LaneHistory] = []
            let rows = try db.makeStatement(sql: """
                SELECT at_ms, instance, old_state, new_state FROM transitions
                WHERE breaker = ? AND at_ms >= ? AND at_ms <= ? ORDER BY at_ms, id
                """)
            do {
                var prior: [String: UInt8] = [:]
                for row in try Row.fetchAll(db, sql: """
                    SELECT instance, new_state FROM transitions WHERE id IN (
                        SELECT max(id) FROM transitions WHERE breaker = ? AND at_ms < ? GROUP BY instance)
                    """, arguments: [breaker, from]) {
                    prior[row[0]] = CompactSegment.code(row[1] as String)
                }
                var lanes: [String: Int] = [:]   // instance → index in histories
                for (instance, state) in prior {
                    lanes[instance] = histories.count
                    histories.append(LaneHistory(lane: lane(instance, breaker, multiHost: multiHost), source: self,
                                                 segments: [CompactSegment(start: from, end: .max, state: state)]))
                }
                rows.arguments = [breaker, from, to]
                let statement = rows.sqliteStatement
                var lastInstance: [UInt8] = []
                var current = -1
                while true {
                    let step = sqlite3_step(statement)
                    guard step == SQLITE_ROW else {
                        guard step == SQLITE_DONE else { throw DatabaseError(resultCode: ResultCode(rawValue: step)) }
                        break
                    }
                    let at = sqlite3_column_int64(statement, 0)
                    let instance = UnsafeRawBufferPointer(start: sqlite3_column_text(statement, 1), count: Int(sqlite3_column_bytes(statement, 1)))
                    if current < 0 || !instance.elementsEqual(lastInstance) {
                        lastInstance = Array(instance)
                        let name = String(decoding: lastInstance, as: UTF8.self)
                        if let index = lanes[name] {
                            current = index
                        } else {
                            let old = UnsafeRawBufferPointer(start: sqlite3_column_text(statement, 2), count: Int(sqlite3_column_bytes(statement, 2)))
                            current = histories.count
                            lanes[name] = current
                            histories.append(LaneHistory(lane: lane(name, breaker, multiHost: multiHost), source: self,
                                                         segments: [CompactSegment(start: from, end: .max, state: CompactSegment.code(old))]))
                        }
                    }
                    let new = CompactSegment.code(UnsafeRawBufferPointer(
                        start: sqlite3_column_text(statement, 3), count: Int(sqlite3_column_bytes(statement, 3))))
                    let last = histories[current].segments.count - 1
                    histories[current].segments[last].end = at
                    if histories[current].segments[last].end <= histories[current].segments[last].start {
                        histories[current].segments[last] = CompactSegment(start: at, end: .max, state: new)
                    } else {
                        histories[current].segments.append(CompactSegment(start: at, end: .max, state: new))
                    }
                }
                sqlite3_reset(statement)
            }
            return histories
        }
    }
}
