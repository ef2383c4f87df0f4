import Synchronization

/// A clock that only moves when told to: for tests and the simulator.
public final class ManualClock: BreakerClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp = .seconds(1_700_000_000)) {
        current = Mutex(start)
    }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func advance(by duration: Duration) {
        current.withLock { $0 = $0 + duration }
    }

    public func set(_ time: Timestamp) {
        current.withLock { $0 = time }
    }
}
