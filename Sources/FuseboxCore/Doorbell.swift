import Synchronization

/// Wakes one sleeping task early. `ring` never blocks (a decision may ring
/// it); `wait` returns at the first ring, at its time limit or on
/// cancellation. A ring while nobody waits is kept, so a ring that comes
/// between a task's look at the work and its sleep is not lost.
public final class Doorbell: Sendable {
    private enum State {
        case idle
        case rung
        case waiting(CheckedContinuation<Bool, Never>)
    }

    private let state = Mutex<State>(.idle)

    public init() {}

    public func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            switch state {
            case .idle, .rung:
                state = .rung
                return nil
            case .waiting(let waiter):
                state = .idle
                return waiter
            }
        }
        waiter?.resume(returning: true)
    }

    /// Returns at the first ring (or at once if it rang since the last
    /// wait), after `limit` (nil: no limit), or when the task is cancelled;
    /// true when a ring ended it. One task waits at a time.
    @discardableResult
    public func wait(atMost limit: Duration?) async -> Bool {
        guard let limit else { return await waitForRing() }
        guard limit > .zero else { return takeRing() }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            group.addTask { await self.waitForRing() }
            let rung = await group.next() ?? false
            group.cancelAll()
            return rung
        }
    }

    /// A ring kept since the last wait, taken without waiting.
    private func takeRing() -> Bool {
        state.withLock { state in
            guard case .rung = state else { return false }
            state = .idle
            return true
        }
    }

    /// True when rung; false when cancelled first.
    private func waitForRing() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Bool, Never>) in
                let answer = state.withLock { state -> Bool? in
                    if case .rung = state {
                        state = .idle
                        return true
                    }
                    // Cancelled before the waiter was stored: the handler found nothing to resume.
                    if Task.isCancelled { return false }
                    state = .waiting(waiter)
                    return nil
                }
                if let answer { waiter.resume(returning: answer) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard case .waiting(let waiter) = state else { return nil }
                state = .idle
                return waiter
            }
            waiter?.resume(returning: false)
        }
    }
}
