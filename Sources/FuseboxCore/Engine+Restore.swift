extension Engine {
    /// Takes up what the store recorded before a restart, for the breakers
    /// the running configuration still has (a breaker the configuration no
    /// longer names is dropped): openings and forces come back with reason
    /// `restored`, and a 429's budget pause still running holds again. The
    /// transitions made, in configuration order.
    @discardableResult
    public func restore(_ saved: [String: SavedState]) -> [Transition] {
        decide { registry in
            let now = clock.now()
            var made: [Transition] = []
            for index in registry.breakers.indices {
                guard let state = saved[registry.breakers[index].name] else { continue }
                if let until = state.pausedUntil, until > now {
                    // Bounded as a 429's own pause is.
                    let capped = min(until, now + registry.breakers[index].policy.open.retryAfterCap)
                    registry.breakers[index].budget.rateLimited(until: capped, at: now)
                }
                if let change = registry.breakers[index].restore(state, at: now, random: &registry.random) {
                    registry.transitioned(change, index)
                    made.append(change)
                }
            }
            return made
        }
    }
}
