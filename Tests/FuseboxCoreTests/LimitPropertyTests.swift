import Testing
@testable import FuseboxCore

/// Random sequences of valid requests whose numbers sit at the protocol's
/// limits (0, 1 and the largest it accepts in every field), on breakers with
/// every budget: nothing traps, and the engine's bounds hold after each step.
@Suite("Property: numbers at the protocol's limits")
struct LimitPropertyTests {
    static let costs = [0, 1, 999, 1_000_000_000]
    static let durations: [Duration?] = [nil, .zero, .milliseconds(1), .seconds(2_592_000)]
    static let statuses: [Int?] = [nil, 100, 200, 429, 503, 599]

    static var policies: [String: BreakerPolicy] {
        var full = policy(consecutiveFailures: 2, open: .seconds(5), maxOpen: .seconds(120), permitTTL: .seconds(30))
        full.budget = BudgetPolicy(
            maxInFlight: 3, queue: QueuePolicy(max: 4, timeout: .seconds(2)),
            rate: RateLimit(amount: 50, per: .seconds(60)), tokens: RateLimit(amount: 10_000, per: .seconds(60))
        )
        full.maxTransitionsPerMinute = 10
        var tokens = policy(consecutiveFailures: 3, open: .seconds(1), maxOpen: .seconds(10), permitTTL: .seconds(365 * 86_400))
        tokens.budget = BudgetPolicy(tokens: RateLimit(amount: 1_000, per: .seconds(86_400)))
        return ["full": full, "tokens": tokens, "plain": policy(open: .seconds(2))]
    }

    @Test(arguments: [11, 12, 13, 14, 15, 16] as [UInt64])
    func neverTrapsAndBoundsHold(seed: UInt64) throws {
        let h = try Harness(Self.policies, chains: [ChainDefinition(name: "all", breakers: ["full", "tokens", "plain"])])
        var random = SplitMix64(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        let names = ["full", "tokens", "plain"]
        let owner = h.engine.openOwner(maxPermits: 8)
        var held: [PermitID] = []
        for step in 0..<4_000 {
            let report = CallReport(
                outcome: random.next() % 3 == 0 ? pick(Outcome.allCases) : nil, status: pick(Self.statuses) ?? 200,
                latency: pick(Self.durations), retryAfter: pick(Self.durations), tokensUsed: random.next() % 2 == 0 ? pick(Self.costs) : nil
            )
            switch random.next() % 9 {
            case 0, 1:
                if let permit = (try? h.engine.acquire(pick(names), cost: pick(Self.costs), owner: owner))?.permit { held.append(permit.id) }
            case 2:
                if let permit = (try? h.engine.route("all", cost: pick(Self.costs), owner: owner))?.permit { held.append(permit.id) }
            case 3, 4:
                guard !held.isEmpty else { continue }
                _ = try? h.engine.report(held.remove(at: Int(random.next() % UInt64(held.count))), report)
            case 5:
                try h.engine.record(pick(names), report)
            case 6:
                h.clock.advance(by: pick([.milliseconds(1), .seconds(1), .seconds(30), .seconds(3_600)]))
                h.engine.tick()
            case 7:
                if random.next() % 10 == 0 { try h.engine.reset(pick(names)) }
            default:
                _ = try? h.engine.acquire(pick(names), cost: pick(Self.costs), owner: owner, orWait: IgnoringWaiter())
            }
            try check(h, owner: owner, step: step)
        }
    }

    func check(_ h: Harness, owner: PermitOwner, step: Int) throws {
        let now = h.clock.now()
        #expect(h.engine.permitsHeld(by: owner) <= 8, "step \(step): owner over its cap")
        for snapshot in try h.engine.snapshot() {
            if let cap = snapshot.policy.budget.maxInFlight {
                #expect(snapshot.permitsInFlight <= cap, "step \(step): \(snapshot.name) over max_in_flight")
            }
            if let until = snapshot.openUntil {
                // The longest an open period may reach: the cap on backoff and Retry-After, or the transition cap's minute.
                let limit = max(snapshot.policy.open.backoffMax, snapshot.policy.open.retryAfterCap, .seconds(60))
                #expect(until <= now + limit, "step \(step): \(snapshot.name) open too long")
            }
        }
        h.engine.inspect { registry in
            for breaker in registry.breakers {
                let (rate, tokens) = breaker.budget.levels
                if let rate, let limit = breaker.policy.budget.rate { #expect(rate >= -Double(limit.amount)) }
                if let tokens, let limit = breaker.policy.budget.tokens { #expect(tokens >= -Double(limit.amount)) }
                if let paused = breaker.budget.pausedUntil { #expect(paused <= now + breaker.policy.open.retryAfterCap) }
            }
        }
    }
}
