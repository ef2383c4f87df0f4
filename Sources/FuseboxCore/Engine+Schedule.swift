extension Engine {
    /// Runs what time has made due, in one pass over the breakers: overdue
    /// leases count as timeouts, open periods and silent probes run out,
    /// queued acquires past their timeout are refused, due probes start and
    /// fleet probe candidates are offered. The scheduler calls it at
    /// `nextDeadline`; decisions ring `deadlineMoved` when they bring it closer.
    public func runDue() -> DueWork {
        decide { registry in registry.runDue(at: clock.now()) }
    }

    /// When `runDue` is next needed, as the last pass and the decisions since
    /// know it (never later than the real moment); nil: not until a decision.
    public var nextDeadline: Timestamp? { registry.withLock { $0.nextWake } }

    /// Only the time-driven transitions (no probes started, no candidates):
    /// for embedders that drive the engine without a scheduler, such as the
    /// simulator and tests on a manual clock.
    public func tick() {
        decide { registry in registry.tick(at: clock.now()) }
    }
}
