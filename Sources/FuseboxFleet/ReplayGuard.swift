import FuseboxCore
import Synchronization

/// Refuses a sealed message sent again by someone who captured it (any role
/// can LISTEN): each sender numbers its messages and stamps them with
/// PostgreSQL's clock; a receiver takes from each sender only numbers above
/// the last it took, and only within `window` of now. A sender it has not
/// heard from for a window is forgotten, as its older messages are stale anyway.
struct ReplayGuard {
    static let window: Int64 = 10_000
    /// How far ahead of this host's estimate of PostgreSQL's clock a stamp may be (the estimate's error).
    static let ahead: Int64 = 2_000

    private var last: [String: (sequence: Int64, seenAt: Int64)] = [:]
    private var nextPrune: Int64 = .min

    mutating func admit(origin: String, sequence: Int64, sentAt: Int64, now: Int64) -> MessageSeal.Refusal? {
        let (age, overflow) = now.subtractingReportingOverflow(sentAt)
        guard !overflow, age <= Self.window, age >= -Self.ahead else { return .stale }
        if let prior = last[origin], sequence <= prior.sequence { return .replayed }
        last[origin] = (sequence, now)
        if now >= nextPrune {
            last = last.filter { now - $0.value.seenAt <= Self.window }
            nextPrune = now + Self.window
        }
        return nil
    }

    var senders: Int { last.count }
}

/// This host's estimate of the database's clock (`FleetStore.databaseNow`):
/// the offset to it, measured over a round trip. Messages are stamped and
/// checked in that one clock, so a host whose own clock is off by minutes
/// still judges a message's age right (to within half a round trip).
final class DatabaseClock: Sendable {
    private let clock: any BreakerClock
    private let offset = Mutex<Int64?>(nil)

    init(clock: any BreakerClock) { self.clock = clock }

    /// PostgreSQL's clock now, in Unix ms; nil before the first measurement.
    func now() -> Int64? {
        offset.withLock { $0 }.map { clock.now().milliseconds &+ $0 }
    }

    func measure(_ store: some FleetStore) async throws {
        let before = clock.now().milliseconds
        let database = try await store.databaseNow()
        let after = clock.now().milliseconds
        offset.withLock { $0 = database &- (before / 2 &+ after / 2) }
    }
}
