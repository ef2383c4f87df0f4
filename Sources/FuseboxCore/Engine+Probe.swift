extension Engine {
    /// Starts every probe that is due and hands them to the caller to send
    /// (the prober asks on a timer, off the decision path). Each breaker has
    /// at most one probe out; its transitions are delivered like any other.
    public func startDueProbes() -> [ProbeTicket] {
        decide { registry in
            let now = clock.now()
            var tickets: [ProbeTicket] = []
            for index in registry.breakers.indices where registry.breakers[index].policy.probe != nil {
                guard let (ticket, change) = registry.breakers[index].startProbe(at: now, random: &registry.random) else { continue }
                if let change { registry.transitioned(change, index) }
                tickets.append(ticket)
            }
            return tickets
        }
    }

    /// A started probe's result: it drives the breaker as a user's probe
    /// would, and is told as a `probed` event whether or not anything changed.
    /// A breaker removed meanwhile (reload) is passed over.
    public func finishProbe(_ ticket: ProbeTicket, _ result: ProbeResult) {
        decide { registry in
            guard let index = registry.byName[ticket.breaker] else { return }
            let now = clock.now()
            let change = registry.breakers[index].finishProbe(ticket, result, at: now, random: &registry.random)
            registry.events.append(.probed(breaker: ticket.breaker, result: result, closedCheck: ticket.closedCheck, at: now))
            if let change { registry.transitioned(change, index) }
            if registry.breakers[index].waiting > 0 { registry.serveWaiters(index, at: now) }
        }
    }

    /// Whether any breaker has a `probe:` section (the prober runs only then).
    public var probesConfigured: Bool { registry.withLock { $0.breakers.contains { $0.policy.probe != nil } } }
}
