extension Engine {
    /// A started probe's result: it drives the breaker as a user's probe
    /// would, and is told as a `probed` event whether or not anything changed.
    /// A breaker removed meanwhile (reload) is passed over.
    public func finishProbe(_ ticket: ProbeTicket, _ result: ProbeResult) {
        decide { registry in registry.finishProbe(ticket, result, at: clock.now()) }
    }

}
