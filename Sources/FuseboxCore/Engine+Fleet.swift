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
        decide { registry in
            for index in registry.breakers.indices where breakers.contains(registry.breakers[index].name) {
                registry.breakers[index].probeGated = gated
            }
            if !gated { registry.tick(at: clock.now()) }
        }
    }

    /// Gated breakers whose open period has run out: they may claim the
    /// fleet's probe. Read by the fleet's own task, off the decision path.
    public func probeCandidates() -> [String] {
        decide { registry in
            let now = clock.now()
            return registry.breakers.filter { $0.probeDue(at: now) }.map(\.name)
        }
    }

    /// This sidecar holds the fleet's probe lease for `breaker`: it goes
    /// half-open here. False when it is no longer due (a peer's result came first).
    @discardableResult
    public func beginFleetProbe(_ breaker: String) -> Bool {
        decide { registry in
            guard let index = try? registry.index(of: breaker) else { return false }
            let now = clock.now()
            guard let change = registry.breakers[index].beginFleetProbe(at: now, random: &registry.random) else { return false }
            registry.transitioned(change, index)
            return true
        }
    }

    /// Peers' failures in a row of a shared breaker: `resets` when a success came first.
    public func recordRemote(_ breaker: String, resets: Bool, failures: Int) {
        decide { registry in
            guard let index = try? registry.index(of: breaker) else { return }
            let now = clock.now()
            if let change = registry.breakers[index].recordRemote(resets: resets, failures: failures, at: now, random: &registry.random) {
                registry.transitioned(change, index)
                if registry.breakers[index].waiting > 0 { registry.serveWaiters(index, at: now) }
            }
        }
    }

    /// Applies a peer's decision with reason `fleet`; `origin` names the peer
    /// in the transition. Returns the transition made, if any (an open breaker
    /// only takes a later `open_until`).
    @discardableResult
    public func applyFleet(_ breaker: String, _ state: FleetState, origin: String? = nil) -> Transition? {
        decide { (registry: inout Registry) -> Transition? in
            guard let index = try? registry.index(of: breaker) else { return nil }
            let now = clock.now()
            var change = registry.breakers[index].applyFleet(state, at: now, random: &registry.random)
            change?.origin = origin
            if let change { registry.transitioned(change, index) }
            if registry.breakers[index].waiting > 0 { registry.serveWaiters(index, at: now) }
            return change
        }
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
    public var fleetBudgetLimits: [FleetBudgetLimit] {
        registry.withLock { registry in
            registry.breakers.flatMap { breaker -> [FleetBudgetLimit] in
                let budget = breaker.budget.policy
                var limits: [FleetBudgetLimit] = []
                if budget.fleetScoped.contains(.maxInFlight), let cap = budget.maxInFlight {
                    limits.append(FleetBudgetLimit(breaker: breaker.name, kind: .maxInFlight, capacity: cap))
                }
                if budget.fleetScoped.contains(.rate), let rate = budget.rate {
                    limits.append(FleetBudgetLimit(breaker: breaker.name, kind: .rate, capacity: rate.amount))
                }
                if budget.fleetScoped.contains(.tokens), let tokens = budget.tokens {
                    limits.append(FleetBudgetLimit(breaker: breaker.name, kind: .tokens, capacity: tokens.amount))
                }
                return limits
            }
        }
    }

    /// Sets this sidecar's share of a fleet-scoped limit (what its lease grants).
    public func setBudgetShare(_ breaker: String, _ kind: FleetScopedBudgets, _ share: Double) {
        decide { registry in
            guard let index = try? registry.index(of: breaker) else { return }
            let now = clock.now()
            registry.breakers[index].budget.setShare(kind, share, at: now)
            if registry.breakers[index].waiting > 0 { registry.serveWaiters(index, at: now) }
        }
    }
}
