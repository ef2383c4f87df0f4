import FuseboxConfig
import FuseboxTelemetry
import Logging
import Synchronization

/// Log lines and the gauge for the link to PostgreSQL: one line when it
/// comes up, one when it goes down, and while it stays down one reminder a
/// minute at most, however often reconnecting fails.
final class FleetLinkLog: Sendable {
    private struct State {
        var up = false
        var failures = 0
        var lastReminder = ContinuousClock.now
        var lastReason = ""
    }

    private let url: PostgresURL
    private let fleet: String
    private let series: FleetSeries
    private let logger: Logger
    private let state = Mutex(State())
    static let reminderInterval = Duration.seconds(60)

    init(url: PostgresURL, fleet: String, series: FleetSeries, logger: Logger) {
        self.url = url
        self.fleet = fleet
        self.series = series
        self.logger = logger
    }

    func up() {
        let failures = state.withLock { s -> Int? in
            guard !s.up else { return nil }
            s.up = true
            defer { s.failures = 0 }
            return s.failures
        }
        guard let failures else { return }
        series.link(up: true)
        logger.notice("fleet_connected", metadata: [
            "fleet": .string(fleet), "postgres": .string(url.description), "failed_attempts": .stringConvertible(failures),
        ])
    }

    func down(_ reason: String) {
        enum Line { case lost, unreachable, reminder(Int) }
        let line = state.withLock { s -> Line? in
            s.failures += 1
            let now = ContinuousClock.now
            if s.up || (s.failures == 1) {
                let wasUp = s.up
                s.up = false
                s.lastReminder = now
                s.lastReason = reason
                return wasUp ? .lost : .unreachable
            }
            guard now - s.lastReminder >= Self.reminderInterval || reason != s.lastReason else { return nil }
            s.lastReminder = now
            s.lastReason = reason
            return .reminder(s.failures)
        }
        series.link(up: false)
        guard let line else { return }
        var metadata: Logger.Metadata = [
            "fleet": .string(fleet), "postgres": .string(url.description), "reason": .string(reason),
            "effect": .string("decisions go on locally: openings stay on this host, fleet budgets keep their lease, then a safe share"),
        ]
        switch line {
        case .lost: logger.warning("fleet_disconnected", metadata: metadata)
        case .unreachable: logger.warning("fleet_unreachable", metadata: metadata)
        case .reminder(let attempts):
            metadata["failed_attempts"] = .stringConvertible(attempts)
            logger.warning("fleet_still_unreachable", metadata: metadata)
        }
    }
}
