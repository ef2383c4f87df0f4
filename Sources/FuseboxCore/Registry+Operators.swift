/// Decisions that do not go through a permit: a permit-less record, an
/// operator's force or reset, and the snapshot `status` reads.
extension Registry {
    /// The end of every decision about one breaker: its transition, if it
    /// made one, is told and posted (and its new deadline noted), and its
    /// queue is served (a slot may have freed, or the breaker may now refuse
    /// everyone waiting).
    mutating func settle(_ index: Int, _ change: Transition?, at now: Timestamp) {
        if let change { transitioned(change, index) }
        if breakers[index].waiting > 0 { serveWaiters(index, at: now) }
    }

    /// A call reported without a permit; `generation` nil is the current one.
    mutating func record(
        _ index: Int, _ report: CallReport, generation: UInt64?, at now: Timestamp
    ) -> BreakerState {
        let outcome = breakers[index].policy.classify.outcome(of: report)
        let change = record(
            index, outcome, report, generation: generation ?? breakers[index].generation, probe: false,
            expired: false, at: now
        )
        settle(index, change, at: now)
        return breakers[index].state
    }

    /// `ctl force` or `ctl reset`: told as an `operated` event whether or not
    /// it changed the state, so fleet mode can apply it on every peer.
    mutating func operate(
        _ index: Int, _ action: OperatorAction, local: Bool, at now: Timestamp
    ) -> BreakerState {
        let change: Transition?
        switch action {
        case .force(let mode): change = breakers[index].force(mode, at: now, random: &random)
        case .reset: change = breakers[index].reset(at: now, random: &random)
        }
        // The transition is told before `operated` (peers apply the operator's act after its effect),
        // so settle is left only the queue.
        if let change { transitioned(change, index) }
        events.append(.operated(breaker: breakers[index].name, action: action, local: local, at: now))
        settle(index, nil, at: now)
        return breakers[index].state
    }

    /// Breaker `index` as `status` shows it.
    mutating func snapshot(_ index: Int, at now: Timestamp) -> BreakerSnapshot {
        // Reading the window and budgets moves them to `now`, so they are read before the copy.
        let window = breakers[index].window(at: now)
        let rateAvailable = breakers[index].budget.rateAvailable(at: now)
        let tokensAvailable = breakers[index].budget.tokensAvailable(at: now)
        let b = breakers[index]
        return BreakerSnapshot(
            name: b.name, state: b.state, generation: b.generation, stateSince: b.stateSince,
            openUntil: b.openUntil, consecutiveFailures: b.consecutiveFailures,
            window: window, failedProbes: b.failedProbes,
            probesInFlight: b.probesInFlight, permitsInFlight: b.permitsInFlight,
            lastError: b.lastError, lastStatus: b.lastStatus, policy: b.policy,
            queued: b.waiting, rateAvailable: rateAvailable, tokensAvailable: tokensAvailable
        )
    }
}
