/// When time alone moves a breaker: the engine's scheduler sleeps until the
/// earliest of these over all breakers instead of polling them.
extension Breaker {
    /// How soon a due breaker is offered again for the fleet's probe while a
    /// peer holds it (the peer's result, or its lease lapsing, ends the wait).
    static let candidacyRetry = Duration.milliseconds(500)

    /// The next moment at which time alone changes something here: an open
    /// period running out, a silent probe reaching `max_wait`, an active
    /// probe or a closed check falling due, a queued acquire timing out. Nil
    /// when only a decision can. Never later than the real moment; an early
    /// answer costs the scheduler one pass that finds nothing. (Leases are
    /// the registry's: see `Registry.deadline(of:at:)`.)
    func timerDeadline(at now: Timestamp) -> Timestamp? {
        var due: Timestamp?
        switch state {
        case .open:
            if !rateLimit.announced, rateLimit.heldUntil(at: now) != nil {
                due = now  // held open by the transition cap and not yet told (`takeHoldNotice`)
            } else if let until = openUntil {
                // At the cap `openPeriodOver` moves `openUntil` on, and this with it.
                due = probeGated ? max(until, nextCandidacy ?? until) : until
            }
        case .halfOpen:
            if activeProbe != nil, probesInFlight == 0 {
                due = now
            } else if let since = probeSilentSince {
                due = since + policy.halfOpen.maxWait
            }
        case .closed:
            if let every = policy.probe?.closedInterval, !closedCheckOut { due = lastClosedCheck.map { $0 + every } ?? now }
        case .forcedOpen, .disabled, .metricsOnly:
            break
        }
        guard let waits = waitDeadline, waiting > 0 else { return due }
        return min(due ?? waits, waits)
    }

    /// Fleet mode: whether to offer this breaker for the fleet's probe now
    /// (gated, and its open period has run out). Offered again every
    /// `candidacyRetry` until it leaves open, so a claim a peer won is
    /// retried without the fleet polling.
    mutating func offerCandidacy(at now: Timestamp) -> Bool {
        guard probeDue(at: now), nextCandidacy.map({ now >= $0 }) ?? true else { return false }
        nextCandidacy = now + Self.candidacyRetry
        return true
    }
}
