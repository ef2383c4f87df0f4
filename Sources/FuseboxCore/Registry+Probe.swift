/// The sidecar's own probes, and the state taken up after a restart.
extension Registry {
    /// A started probe's result; a breaker removed meanwhile (reload) is passed over.
    mutating func finishProbe(_ ticket: ProbeTicket, _ result: ProbeResult, at now: Timestamp) {
        guard let index = byName[ticket.breaker] else { return }
        let change = breakers[index].finishProbe(ticket, result, at: now, random: &random)
        events.append(.probed(breaker: ticket.breaker, result: result, closedCheck: ticket.closedCheck, at: now))
        settle(index, change, at: now)
        // The next closed check, or the next probe of a half-open breaker that needs more successes, may be due.
        noteDeadline(index, at: now)
    }

    /// Takes up the saved states of the breakers still configured; returns
    /// the transitions made, in configuration order.
    mutating func restore(_ saved: [String: SavedState], at now: Timestamp) -> [Transition] {
        var made: [Transition] = []
        for index in breakers.indices {
            guard let state = saved[breakers[index].name] else { continue }
            if let until = state.pausedUntil, until > now {
                // Bounded as a 429's own pause is.
                let capped = min(until, now + breakers[index].policy.open.retryAfterCap)
                breakers[index].budget.rateLimited(until: capped, at: now)
            }
            let change = breakers[index].restore(state, at: now, random: &random)
            settle(index, change, at: now)
            if let change { made.append(change) }
        }
        return made
    }
}
