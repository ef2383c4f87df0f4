extension Engine {
    /// Starts every probe that is due and hands them to the caller to send
    /// (the prober asks on a timer, off the decision path). Each breaker has
    /// at most one probe out; its transitions are delivered like any other.
    public func startDueProbes() -> [ProbeTicket] {
        decide { registry in registry.startDueProbes(at: clock.now()) }
    }

    /// A started probe's result: it drives the breaker as a user's probe
    /// would, and is told as a `probed` event whether or not anything changed.
    /// A breaker removed meanwhile (reload) is passed over.
    public func finishProbe(_ ticket: ProbeTicket, _ result: ProbeResult) {
        decide { registry in registry.finishProbe(ticket, result, at: clock.now()) }
    }

}
