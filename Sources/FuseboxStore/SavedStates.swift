import FuseboxCore
import GRDB

/// Reads back, at start, what each breaker of an instance was doing when it
/// last stopped: its latest transition and its budget pause.
enum SavedStates {
    static func read(_ db: Database, instance: String) throws -> [String: SavedState] {
        var saved: [String: SavedState] = [:]
        // SQLite takes the bare columns from the row holding max(id): each breaker's latest transition.
        let rows = try Row.fetchAll(db, sql: """
            SELECT breaker, max(id), new_state, reason, generation, open_until_ms
            FROM transitions WHERE instance = ? GROUP BY breaker
            """, arguments: [instance])
        for row in rows {
            let breaker: String = row[0]
            let state: String = row[2], reason: String = row[3]
            let generation = UInt64(clamping: max(0, row[4] as Int64? ?? 0))
            saved[breaker] = SavedState(mode: mode(state: state, reason: reason, openUntil: row[5]), generation: generation)
        }
        let pauses = try Row.fetchAll(db, sql: "SELECT breaker, until_ms FROM budget_pauses WHERE instance = ? AND until_ms > 0",
                                      arguments: [instance])
        for row in pauses {
            let breaker: String = row[0], until: Int64 = row[1]
            saved[breaker, default: SavedState(mode: nil, generation: 0)].pausedUntil = .milliseconds(until)
        }
        return saved
    }

    /// What a latest transition leaves to resume. Half-open counts as open
    /// until now: its probe went with the process, so the first call is the
    /// next one. Disabled and metrics-only come back only when an operator
    /// (or a peer's operator) forced them; from the configuration, the
    /// configuration decides again.
    static func mode(state: String, reason: String, openUntil: Int64?) -> SavedState.Mode? {
        let forced = ["forced", "fleet", "restored"].contains(reason)
        switch BreakerState(rawValue: state) {
        case .open: return .open(until: .milliseconds(openUntil ?? 0))
        case .halfOpen: return .open(until: .milliseconds(0))
        case .forcedOpen: return .forced(.open)
        case .disabled where forced: return .forced(.disabled)
        case .metricsOnly where forced: return .forced(.metricsOnly)
        default: return nil
        }
    }
}
