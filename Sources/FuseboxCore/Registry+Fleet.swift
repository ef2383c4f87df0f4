/// Fleet mode's decisions: the probe gate and lease, peers' counts and
/// states, and this sidecar's share of fleet-wide budgets.
extension Registry {
    /// Gates (or ungates) the named breakers' probes on the fleet's lease.
    /// Ungating moves time on at once: an open period that ran out while
    /// gated goes half-open here now.
    mutating func gateProbes(_ names: Set<String>, _ gated: Bool, at now: Timestamp) {
        for index in breakers.indices where names.contains(breakers[index].name) {
            breakers[index].probeGated = gated
            breakers[index].nextCandidacy = nil
        }
        // Who ends an open period changed: a candidate, or a half-open breaker, may be due now.
        if !gated { tick(at: now) }
        noteWake(now)
    }

    /// This sidecar won the fleet's probe lease for `name`; false when it is no longer due.
    mutating func beginFleetProbe(_ name: String, at now: Timestamp) -> Bool {
        guard let index = byName[name],
              let change = breakers[index].beginFleetProbe(at: now, random: &random)
        else { return false }
        settle(index, change, at: now)
        return true
    }

    mutating func recordRemote(_ name: String, resets: Bool, failures: Int, at now: Timestamp) {
        guard let index = byName[name] else { return }
        let change = breakers[index].recordRemote(resets: resets, failures: failures, at: now, random: &random)
        settle(index, change, at: now)
    }

    mutating func applyFleet(_ name: String, _ state: FleetState, origin: String?, at now: Timestamp) -> Transition? {
        guard let index = byName[name] else { return nil }
        var change = breakers[index].applyFleet(state, at: now, random: &random)
        change?.origin = origin
        settle(index, change, at: now)
        return change
    }

    mutating func setBudgetShare(_ name: String, _ kind: FleetScopedBudgets, _ share: Double, at now: Timestamp) {
        guard let index = byName[name] else { return }
        breakers[index].budget.setShare(kind, share, at: now)
        settle(index, nil, at: now)
    }

    /// Every fleet-scoped limit the configuration sets.
    var fleetBudgetLimits: [FleetBudgetLimit] {
        breakers.flatMap { breaker -> [FleetBudgetLimit] in
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
