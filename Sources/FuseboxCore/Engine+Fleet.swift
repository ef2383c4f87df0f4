/// A breaker state as the fleet shares it: what a peer decided, applied here
/// with reason `fleet`.
public enum FleetState: Sendable, Equatable {
    /// Open until the peer's `open_until`, after `probesFailed` failed probes in a row (the backoff).
    case open(until: Timestamp, probesFailed: Int)
    case closed
    /// An operator's `force` on a peer.
    case forced(ForcedMode)
    /// An operator's `reset` on a peer.
    case reset
}

/// An operator's action, told to the sinks whether or not it changed the
/// state, so fleet mode can apply it on every peer.
public enum OperatorAction: Sendable, Equatable {
    case force(ForcedMode)
    case reset
}

extension Engine {
    /// Fleet mode holds these breakers open past `open_until` until the fleet
    /// grants this sidecar the probe (`beginFleetProbe`) or a peer publishes
    /// the result; `false` hands them back to the local state machine (the
    /// fleet is unreachable). Breakers not configured are skipped.
    public func gateProbes(_ breakers: Set<String>, _ gated: Bool) {
        decide { registry in registry.gateProbes(breakers, gated, at: clock.now()) }
    }

    /// This sidecar holds the fleet's probe lease for `breaker`: it goes
    /// half-open here. False when it is no longer due (a peer's result came first).
    @discardableResult
    public func beginFleetProbe(_ breaker: String) -> Bool {
        decide { registry in registry.beginFleetProbe(breaker, at: clock.now()) }
    }

    /// Peers' failures in a row of a shared breaker: `resets` when a success came first.
    public func recordRemote(_ breaker: String, resets: Bool, failures: Int) {
        decide { registry in registry.recordRemote(breaker, resets: resets, failures: failures, at: clock.now()) }
    }

    /// Applies a peer's decision with reason `fleet`; `origin` names the peer
    /// in the transition. Returns the transition made, if any (an open breaker
    /// only takes a later `open_until`).
    @discardableResult
    public func applyFleet(_ breaker: String, _ state: FleetState, origin: String? = nil) -> Transition? {
        decide { registry in registry.applyFleet(breaker, state, origin: origin, at: clock.now()) }
    }
}

/// One fleet-scoped limit of one breaker, as fleet mode leases it.
public struct FleetBudgetLimit: Sendable, Equatable, Hashable {
    public var breaker: String
    public var kind: FleetScopedBudgets
    /// The whole fleet's capacity: requests or tokens per period, or permits at once.
    public var capacity: Int
}

extension Engine {
    /// Every fleet-scoped limit configured now (a reload may change them).
    public var fleetBudgetLimits: [FleetBudgetLimit] { registry.withLock { $0.fleetBudgetLimits } }

    /// Sets this sidecar's share of a fleet-scoped limit (what its lease grants).
    public func setBudgetShare(_ breaker: String, _ kind: FleetScopedBudgets, _ share: Double) {
        decide { registry in registry.setBudgetShare(breaker, kind, share, at: clock.now()) }
    }
}
