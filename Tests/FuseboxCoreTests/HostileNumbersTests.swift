import Testing
@testable import FuseboxCore

/// Numbers at their limits in every field, from a buggy or hostile client:
/// nothing traps, and no single report does more damage than policy allows.
@Suite("Hostile numbers: bounded damage")
struct HostileNumbersTests {
    static let maxTokens = 1_000_000_000           // WireLimits.maxTokens
    static let thirtyDays: Duration = .seconds(2_592_000)  // the protocol's largest milliseconds

    static func budgeted(_ budget: BudgetPolicy, open: Duration = .seconds(60), maxOpen: Duration = .seconds(600)) -> BreakerPolicy {
        var p = policy(open: open, maxOpen: maxOpen)
        p.budget = budget
        return p
    }

    @Test func aHugeTokensUsedRecordThenAcquireNeverTrapsAndTheDebtIsAtMostOnePeriod() throws {
        let h = try Harness(["daily": Self.budgeted(BudgetPolicy(tokens: RateLimit(amount: 1_000, per: .seconds(86_400))))])
        try h.engine.record("daily", CallReport(outcome: .success, tokensUsed: Self.maxTokens))
        let refused = try h.engine.acquire("daily", cost: 1)
        #expect(!refused.allowed && refused.reason == .tokens)
        // A whole period of debt at most: a day to repay it, then the one token's refill.
        let retry = try #require(refused.retryIn)
        #expect(retry > .seconds(86_400) && retry <= .seconds(86_400 + 87))
        h.clock.advance(by: .seconds(86_400) + .seconds(87))
        #expect(try h.engine.acquire("daily", cost: 1).allowed)
    }

    @Test func manyHugeRecordsOnAMinuteBudgetLeaveAtMostAMinuteOfDebt() throws {
        let h = try Harness(
            ["api": Self.budgeted(BudgetPolicy(tokens: RateLimit(amount: 90_000, per: .seconds(60))))],
            chains: [ChainDefinition(name: "llm", breakers: ["api"])]
        )
        for _ in 0..<14_000 { try h.engine.record("api", CallReport(outcome: .success, tokensUsed: Self.maxTokens)) }
        let route = try h.engine.route("llm", cost: Self.maxTokens)
        #expect(!route.allowed && route.skipped.first?.reason == .tokens)
        #expect(try #require(route.skipped.first?.retryIn) <= .seconds(121))
        let levels = h.engine.inspect { $0.breakers[0].budget.levels }
        #expect(try #require(levels.tokens) >= -90_000)
        h.clock.advance(by: .seconds(61))
        #expect(try h.engine.acquire("api", cost: 1).allowed)
    }

    @Test func retryAfterIsCappedByMaxRetryAfterWhichDefaultsToTheBackoffMaximum() throws {
        let h = try Harness(["api": policy(maxOpen: .seconds(600))])
        try h.engine.record("api", CallReport(status: 503, retryAfter: Self.thirtyDays))
        let snapshot = try h.snapshot()
        #expect(snapshot.state == .open)
        #expect(try #require(snapshot.openUntil) - h.clock.now() == .seconds(600))

        var capped = policy()
        capped.open.maxRetryAfter = .seconds(90)
        let g = try Harness(["api": capped])
        try g.engine.record("api", CallReport(status: 503, retryAfter: Self.thirtyDays))
        #expect(try #require(g.snapshot().openUntil) - g.clock.now() == .seconds(90))
    }

    @Test func a429PauseNeverOutlastsTheCapEvenWithoutHonoringRetryAfter() throws {
        var p = Self.budgeted(BudgetPolicy(rate: RateLimit(amount: 10, per: .seconds(60))), maxOpen: .seconds(300))
        p.open.honorRetryAfter = false
        let h = try Harness(["api": p])
        try h.engine.record("api", CallReport(status: 429, retryAfter: Self.thirtyDays))
        #expect(try h.state() == .closed)
        let refused = try h.engine.acquire("api")
        #expect(!refused.allowed && refused.reason == .rate)
        #expect(try #require(refused.retryIn) <= .seconds(300 + 6))
        h.clock.advance(by: .seconds(307))
        #expect(try h.engine.acquire("api").allowed)
    }

    @Test func resetClearsBudgetPausesAndDebt() throws {
        let h = try Harness(["api": Self.budgeted(BudgetPolicy(
            rate: RateLimit(amount: 10, per: .seconds(60)), tokens: RateLimit(amount: 1_000, per: .seconds(3_600))
        ))])
        try h.engine.record("api", CallReport(status: 429, retryAfter: .seconds(300), tokensUsed: Self.maxTokens))
        #expect(try !h.engine.acquire("api").allowed)
        try h.engine.reset("api")
        #expect(try h.engine.acquire("api", cost: 500).allowed)
    }

    @Test func aFlappingClientIsHeldOpenAtTheTransitionCap() throws {
        var p = policy(consecutiveFailures: nil, open: .seconds(1))
        p.maxTransitionsPerMinute = 12
        let h = try Harness(["api": p])
        // record 503 with Retry-After 0, acquire (half-open), report success: three transitions a cycle.
        for _ in 0..<1_000 {
            try h.engine.record("api", CallReport(status: 503, retryAfter: .zero))
            h.clock.advance(by: .milliseconds(1))
            if let permit = try h.engine.acquire("api").permit { try h.engine.report(permit.id, .success()) }
        }
        let count = h.observer.transitions.count
        #expect(count <= 12 + 2, "\(count) transitions in one second of flapping")
        #expect(try h.state() == .open)
        // Once the minute has passed, it may move again.
        h.clock.advance(by: .seconds(61))
        #expect(try h.engine.acquire("api").allowed)
    }

    @Test func aPermitTTLOfAYearNeverWrapsIntoThePast() throws {
        let h = try Harness(["api": policy(consecutiveFailures: 5, permitTTL: .seconds(365 * 86_400))])
        for _ in 0..<10 { _ = try h.engine.acquire("api") }
        h.engine.tick()
        #expect(try h.state() == .closed)
        #expect(h.engine.permitsInFlight == 10)
        // Even a deadline past the end of Int64 time saturates instead of wrapping.
        h.clock.set(Timestamp(nanoseconds: .max - 10))
        #expect(h.clock.now() + .seconds(1) == Timestamp(nanoseconds: .max))
        #expect(Timestamp.milliseconds(.max).nanoseconds == .max)
    }

    @Test func permitIdsAreUnpredictable() throws {
        let h = try Harness()
        var tags = Set<UInt64>()
        for _ in 0..<200 {
            let permit = try #require(try h.engine.acquire("api").permit)
            tags.insert(permit.id.rawValue >> PermitID.slotBits)
            try h.engine.release(permit.id, .cancelled)  // the same slot again and again
        }
        #expect(tags.count == 200, "every reuse of a slot carries fresh random bits")
        let sorted = tags.sorted()
        let steps = Set(zip(sorted, sorted.dropFirst()).map { $1 - $0 })
        #expect(steps.count > 150, "no fixed stride between ids")
    }

    @Test func oneOwnerCannotTakeMoreThanItsShareAndItsPermitsGoInSteps() throws {
        let h = try Harness(chains: [ChainDefinition(name: "llm", breakers: ["api"])])
        let greedy = h.engine.openOwner(maxPermits: 1_000)
        let neighbour = h.engine.openOwner(maxPermits: 1_000)
        for _ in 0..<1_000 { #expect(try h.engine.acquire("api", owner: greedy).allowed) }
        #expect(throws: EngineError.permitLimit(1_000)) { try h.engine.acquire("api", owner: greedy) }
        #expect(throws: EngineError.permitLimit(1_000)) { try h.engine.route("llm", owner: greedy) }
        #expect(try h.engine.acquire("api", owner: neighbour).allowed)
        var steps = 0
        while !h.engine.releaseOwned(by: greedy, atMost: 256) { steps += 1 }
        #expect(steps == 3)
        #expect(h.engine.permitsInFlight == 1)
        #expect(h.observer.ended.filter { $0 == .abandoned }.count == 1_000)
        #expect(throws: EngineError.unknownOwner) { try h.engine.acquire("api", owner: greedy) }
    }
}

@Suite struct FleetShareBucketTests {
    @Test func aShareOfNothingGrantsNothingAndSaysToAskAgainLater() {
        var bucket = TokenBucket(capacity: 0, per: .seconds(60), level: 0, now: .seconds(0))
        let one = bucket.allows(1, at: .seconds(100)), none = bucket.allows(0, at: .seconds(100))
        let wait = bucket.wait(for: 1, at: .seconds(100))
        #expect(!one && !none)
        #expect(wait == .seconds(1))
    }

    @Test func aJoiningSidecarsFirstShareStartsEmptyAndRefillsAtItsShare() {
        let full = TokenBucket(RateLimit(amount: 120, per: .seconds(60)), now: .seconds(0))
        var share = full.resized(to: 0, per: .seconds(60), at: .seconds(0)).resized(to: 60, per: .seconds(60), at: .seconds(0))
        let atOnce = share.allows(1, at: .seconds(0))
        let halfway = share.available(at: .seconds(30)), later = share.available(at: .seconds(600))
        #expect(!atOnce)
        #expect(abs(halfway - 30) < 1e-9)
        #expect(later == 60)
    }
}

@Suite struct PermitIDTextTests {
    @Test func permitIDsAreAlwaysSixteenDigitsAndReadBack() {
        for raw: UInt64 in [1, 0xe0072f758000000, 0xffff_ffff_ffff_ffff] {
            let text = PermitID(rawValue: raw).description
            #expect(text.count == 16, "\(text)")
            #expect(PermitID(text)?.rawValue == raw)
        }
    }
}
