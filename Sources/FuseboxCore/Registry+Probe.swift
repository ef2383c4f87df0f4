/// The sidecar's own probes, and the state taken up after a restart.
extension Registry {
    /// Starts every probe that is due, at most one per breaker.
    mutating func startDueProbes(at now: Timestamp) -> [ProbeTicket] {
        var tickets: [ProbeTicket] = []
        for index in breakers.indices where breakers[index].policy.probe != nil {
            guard let (ticket, change) = breakers[index].startProbe(at: now, random: &random) else { continue }
            settle(index, change, at: now)
            tickets.append(ticket)
        }
        return tickets
    }

    /// A started probe's result; a breaker removed meanwhile (reload) is passed over.
    mutating func finishProbe(_ ticket: ProbeTicket, _ result: ProbeResult, at now: Timestamp) {
        guard let index = byName[ticket.breaker] else { return }
        let change = breakers[index].finishProbe(ticket, result, at: now, random: &random)
        events.append(.probed(breaker: ticket.breaker, result: result, closedCheck: ticket.closedCheck, at: now))
        settle(index, change, at: now)
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
