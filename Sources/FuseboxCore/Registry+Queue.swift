/// A queued acquire's answer, ready to hand over once the lock is released.
struct WaitDelivery: Sendable {
    var waiter: any QueueWaiter
    var decision: Decision
}

/// The queueing path: acquires that wait for a slot under `max_in_flight`.
/// A slot freed by a report, release, expiry or reload goes to the longest
/// waiter before any newcomer can take it.
extension Registry {
    mutating func acquireOrWait(
        _ index: Int, cost: Int, owner: PermitOwner?, at now: Timestamp,
        waiter: any QueueWaiter, waitAtMost: Duration? = nil
    ) throws(EngineError) -> AcquireResult {
        let breaker = breakers[index]
        let ownerIndex = try ownerEntry(owner)
        guard let queue = breaker.budget.policy.queue, let cap = breaker.budget.maxInFlight,
              breaker.admitsFreely, breaker.waiting > 0 || breaker.permitsInFlight >= cap
        else { return .decided(try acquire(index, cost: cost, owner: ownerIndex, at: now)) }
        let wait = min(queue.timeout, max(.zero, waitAtMost ?? queue.timeout))
        // A full queue, or a client that cannot wait at all, is refused at once.
        guard breaker.waiting < queue.max, (wait > .zero) else {
            return .decided(refuse(index, .concurrency, retryIn: nil, at: now))
        }
        let ticket = waitQueue.enqueue(WaitQueue.Waiter(
            breaker: breaker.name, cost: cost, owner: owner, enqueuedAt: now, deadline: now + wait, waiter: waiter
        ))
        breakers[index].waiting += 1
        breakers[index].waitDeadline = min(breakers[index].waitDeadline ?? ticket.deadline, ticket.deadline)
        noteWake(ticket.deadline)
        return .queued(ticket)
    }

    /// Answers waiters from the front while the breaker has room for them, or
    /// while the breaker itself refuses (they hear so now rather than at
    /// their timeout).
    mutating func serveWaiters(_ index: Int, at now: Timestamp) {
        while breakers[index].waiting > 0 {
            let breaker = breakers[index]
            if let cap = breaker.budget.maxInFlight, breaker.permitsInFlight >= cap, breaker.admitsFreely { return }
            guard let waiter = waitQueue.popFirst(of: breaker.name) else {
                breakers[index].waiting = 0
                return
            }
            breakers[index].waiting -= 1
            // The waiter's connection may have gone, or reached its own cap, meanwhile: then it is refused.
            let decision = (try? acquire(
                index, cost: waiter.cost, owner: ownerEntry(waiter.owner), queued: true, at: now
            )) ?? refuse(index, .concurrency, retryIn: nil, at: now)
            deliver(waiter, decision, how: decision.allowed ? .granted : .refused, at: now)
        }
    }

    /// Serves whom it can, then refuses those whose timeout has passed.
    mutating func expireWaiters(_ index: Int, at now: Timestamp) {
        serveWaiters(index, at: now)
        guard breakers[index].waiting > 0 else { return }
        for waiter in waitQueue.removeExpired(of: breakers[index].name, at: now) {
            breakers[index].waiting -= 1
            let decision = refuse(index, .concurrency, retryIn: nil, at: now)
            deliver(waiter, decision, how: .timedOut, at: now)
        }
    }

    /// Refuses one waiter whose deadline has passed (a timer set for it fired).
    mutating func expireWait(_ ticket: WaitTicket, at now: Timestamp) {
        guard let waiting = waitQueue.waiter(ticket), waiting.deadline <= now, let index = byName[waiting.breaker],
              let waiter = waitQueue.remove(ticket)
        else { return }
        breakers[index].waiting -= 1
        let decision = refuse(index, .concurrency, retryIn: nil, at: now)
        deliver(waiter, decision, how: .timedOut, at: now)
    }

    /// The breaker is going away (reload): everyone waiting on it is refused.
    mutating func refuseAllWaiters(_ index: Int, at now: Timestamp) {
        for waiter in waitQueue.removeAll(of: breakers[index].name) {
            let decision = refuse(index, .concurrency, retryIn: nil, at: now)
            deliver(waiter, decision, how: .refused, at: now)
        }
        breakers[index].waiting = 0
    }

    /// Withdraws a waiter whose client went away; false when it was already answered.
    mutating func cancelWait(_ ticket: WaitTicket, at now: Timestamp) -> Bool {
        guard let waiter = waitQueue.remove(ticket) else { return false }
        if let index = byName[waiter.breaker] { breakers[index].waiting -= 1 }
        events.append(.dequeued(breaker: waiter.breaker, waited: now - waiter.enqueuedAt, how: .withdrawn, at: now))
        return true
    }

    private mutating func deliver(
        _ waiter: WaitQueue.Waiter, _ decision: Decision, how: QueueExit, at now: Timestamp
    ) {
        var decision = decision
        decision.waited = now - waiter.enqueuedAt
        events.append(.dequeued(breaker: waiter.breaker, waited: now - waiter.enqueuedAt, how: how, at: now))
        ready.append(WaitDelivery(waiter: waiter.waiter, decision: decision))
    }
}
