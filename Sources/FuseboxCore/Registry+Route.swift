/// A chain as the registry keeps it: members by index, and what its strategy
/// needs precomputed, so a route does no sorting and allocates nothing while
/// no member is passed over.
struct ChainRoute: Sendable {
    var members: [Int]
    var strategy: RouteStrategy
    /// `cheapest`: members from the lowest cost figure up (members without one last, listed order).
    var byCost: [Int] = []
    /// `weighted`: each member's weight, and their sum.
    var weights: [Int] = []
    var totalWeight = 0
    /// `fastest`: the member traffic goes to, and since when.
    var preferred: Int
    /// No switch before this (one window after the last).
    var holdUntil = Timestamp(nanoseconds: .min)

    init(members: [Int], strategy: RouteStrategy, breakers: [Breaker]) {
        self.members = members
        self.strategy = strategy
        preferred = members[0]
        switch strategy {
        case .cheapest:
            let figures = members.map { breakers[$0].policy.cost?.figure ?? .infinity }
            byCost = members.indices.sorted { (figures[$0], $0) < (figures[$1], $1) }.map { members[$0] }
        case .weighted(let table):
            weights = members.map { max(0, table[breakers[$0].name] ?? 0) }
            totalWeight = weights.reduce(0, +)
        case .ordered, .fastest:
            break
        }
    }
}

extension Registry {
    mutating func setChains(_ definitions: [ChainDefinition]) {
        chains = [:]
        chainNames = definitions.map(\.name)
        for index in breakers.indices { breakers[index].latency.window = .seconds(10) }
        var windows: [Int: Duration] = [:]
        for chain in definitions {
            let members = chain.breakers.compactMap { byName[$0] }
            guard !members.isEmpty else { continue }
            chains[chain.name] = ChainRoute(members: members, strategy: chain.strategy, breakers: breakers)
            if case .fastest(let policy) = chain.strategy {
                for member in members { windows[member] = min(windows[member] ?? policy.window, policy.window) }
            }
        }
        for (member, window) in windows { breakers[member].latency.window = window }
    }

    /// Takes the strategy's pick if it admits, else the first other member
    /// that does (in the strategy's order for `cheapest`, listed order for the rest).
    mutating func route(
        _ chain: String, exclude: [String], requires: [String], cost: Int, owner: Int32, at now: Timestamp
    ) throws(EngineError) -> RouteDecision {
        guard var route = chains[chain] else { throw .unknownChain(chain) }
        let (pick, choice) = pick(&route, chain: chain, exclude: exclude, requires: requires, at: now)
        if case .fastest = route.strategy { chains[chain] = route }
        var skipped: [SkippedBreaker] = []
        if let pick {
            if let decision = try tryMember(pick, exclude: exclude, requires: requires, cost: cost, owner: owner, at: now, skipped: &skipped) {
                if choice.basis == .refresh { breakers[pick].latency.refreshSent(at: now) }
                return RouteDecision(allowed: true, breaker: breakers[pick].name, permit: decision.permit, skipped: skipped, choice: choice)
            }
        }
        let order = route.strategy == .cheapest ? route.byCost : route.members
        for index in order where index != pick {
            guard let decision = try tryMember(index, exclude: exclude, requires: requires, cost: cost, owner: owner, at: now, skipped: &skipped)
            else { continue }
            let first = pick ?? order[0]
            if index != first { events.append(.fellBack(chain: chain, from: breakers[first].name, to: breakers[index].name, at: now)) }
            let basis: RouteChoice.Basis = route.strategy == .cheapest ? .cost : .order
            let figure = basis == .cost ? breakers[index].policy.cost?.figure : nil
            return RouteDecision(
                allowed: true, breaker: breakers[index].name, permit: decision.permit, skipped: skipped,
                choice: RouteChoice(strategy: route.strategy.name, basis: basis, figure: figure)
            )
        }
        let reason: ExhaustedReason
        if skipped.isEmpty {
            reason = .excluded
        } else if skipped.allSatisfy({ $0.reason == .capability }) {
            reason = .capability
        } else {
            reason = skipped.contains { $0.reason != .open && $0.reason != .capability } ? .budget : .open
        }
        events.append(.exhausted(chain: chain, reason: reason, at: now))
        return RouteDecision(allowed: false, breaker: nil, permit: nil, skipped: skipped)
    }

    /// One member's try: nil when excluded (silently), lacking a capability or refused (both noted in `skipped`).
    private mutating func tryMember(
        _ index: Int, exclude: [String], requires: [String], cost: Int, owner: Int32, at now: Timestamp,
        skipped: inout [SkippedBreaker]
    ) throws(EngineError) -> Decision? {
        let name = breakers[index].name
        if exclude.contains(name) { return nil }
        if !requires.isEmpty, !requires.allSatisfy(breakers[index].policy.capabilities.contains) {
            skipped.append(SkippedBreaker(breaker: name, state: breakers[index].state, retryIn: nil, reason: .capability))
            return nil
        }
        let decision = try acquire(index, cost: cost, owner: owner, at: now)
        if decision.allowed { return decision }
        skipped.append(SkippedBreaker(
            breaker: name, state: decision.state, retryIn: decision.retryIn, reason: SkipReason(decision.reason ?? .open)
        ))
        return nil
    }

    /// The member the strategy wants first, if any, and why.
    private mutating func pick(
        _ route: inout ChainRoute, chain: String, exclude: [String], requires: [String], at now: Timestamp
    ) -> (Int?, RouteChoice) {
        let name = route.strategy.name
        switch route.strategy {
        case .ordered:
            return (nil, RouteChoice(strategy: name, basis: .order))
        case .cheapest:
            return (route.byCost[0], RouteChoice(strategy: name, basis: .cost, figure: breakers[route.byCost[0]].policy.cost?.figure))
        case .weighted:
            guard route.totalWeight > 0 else { return (nil, RouteChoice(strategy: name, basis: .order)) }
            var roll = Int(random.next() % UInt64(route.totalWeight))
            for (position, weight) in route.weights.enumerated() {
                if roll < weight { return (route.members[position], RouteChoice(strategy: name, basis: .weight, figure: Double(weight))) }
                roll -= weight
            }
            return (nil, RouteChoice(strategy: name, basis: .order))
        case .fastest(let policy):
            updatePreferred(&route, chain: chain, policy: policy, at: now)
            // A member whose figure has gone stale gets one call a window, or
            // a provider that recovered would never win traffic back.
            for member in route.members where member != route.preferred && breakers[member].state == .closed
                && breakers[member].latency.needsRefresh(at: now) && !exclude.contains(breakers[member].name)
                && (requires.isEmpty || requires.allSatisfy(breakers[member].policy.capabilities.contains))
            {
                return (member, RouteChoice(strategy: name, basis: .refresh, figure: breakers[member].latency.milliseconds))
            }
            return (route.preferred, RouteChoice(strategy: name, basis: .latency, figure: breakers[route.preferred].latency.milliseconds))
        }
    }

    /// Moves a `fastest` chain to a member whose average beats the preferred
    /// one's by more than the margin, at most once a window.
    private mutating func updatePreferred(_ route: inout ChainRoute, chain: String, policy: FastestPolicy, at now: Timestamp) {
        if now < route.holdUntil { return }
        var best = route.preferred
        var bestFigure = breakers[best].latency.milliseconds ?? .infinity
        for member in route.members {
            guard let figure = breakers[member].latency.milliseconds, figure < bestFigure else { continue }
            best = member
            bestFigure = figure
        }
        guard best != route.preferred else { return }
        if let current = breakers[route.preferred].latency.milliseconds, bestFigure >= current * (1 - policy.margin) { return }
        events.append(.preferred(chain: chain, from: breakers[route.preferred].name, to: breakers[best].name, at: now))
        route.preferred = best
        route.holdUntil = now + policy.window
    }
}
