import Testing
@testable import FuseboxCore

/// The engine's side of active probes, on a manual clock: the sidecar takes
/// the half-open slot, users wait, and the result decides.
@Suite("Active probes in the engine")
struct ActiveProbeEngineTests {
    static func probed(interval: Duration? = nil, closedInterval: Duration? = nil) -> BreakerPolicy {
        var p = policy(consecutiveFailures: 2, open: .seconds(10), maxOpen: .seconds(80))
        p.probe = ProbePolicy(url: "http://127.0.0.1:1/", timeout: .seconds(1), interval: interval, closedInterval: closedInterval)
        return p
    }

    @Test func anOpenPeriodThatEndsWaitsForTheSidecarsProbeNotAUser() throws {
        let h = try Harness(["api": Self.probed()])
        try h.fail(times: 2)
        #expect(h.engine.runDue().probes.isEmpty, "not due while open")
        h.clock.advance(by: .seconds(10))
        let user = try h.engine.acquire("api")
        #expect(!user.allowed && user.retryIn == .seconds(1), "the user waits up to the probe's timeout")
        h.engine.tick()
        #expect(try h.state() == .open, "no lazy half-open for an actively probed breaker")
        let tickets = h.engine.runDue().probes
        #expect(tickets.count == 1 && !tickets[0].closedCheck)
        #expect(try h.state() == .halfOpen)
        #expect(h.engine.runDue().probes.isEmpty, "one probe at a time")
        let again = try h.engine.acquire("api")
        #expect(!again.allowed && again.state == .halfOpen && again.permit == nil)
        h.engine.finishProbe(tickets[0], ProbeResult(outcome: .success, latency: .milliseconds(40), status: 200))
        #expect(try h.state() == .closed)
        let closing = try #require(h.observer.transitions.last)
        #expect(closing.reason == .probeSucceeded && closing.probe?.status == 200)
    }

    @Test func aFailedProbeReopensWithBackoffCappedByTheInterval() throws {
        let h = try Harness(["api": Self.probed(interval: .seconds(15))])
        try h.fail(times: 2)
        h.clock.advance(by: .seconds(10))
        var ticket = try #require(h.engine.runDue().probes.first)
        h.engine.finishProbe(ticket, ProbeResult(outcome: .failure, latency: .milliseconds(5), status: 401))
        var snapshot = try h.snapshot()
        #expect(snapshot.state == .open && snapshot.lastStatus == 401)
        #expect(snapshot.openUntil == h.clock.now() + .seconds(15), "backoff doubled 10 s to 20 s, capped at the 15 s interval")
        h.clock.advance(by: .seconds(15))
        ticket = try #require(h.engine.runDue().probes.first)
        h.engine.finishProbe(ticket, ProbeResult(outcome: .timeout, latency: .seconds(1)))
        snapshot = try h.snapshot()
        #expect(h.observer.transitions.last?.reason == .probeTimeout)
        #expect(snapshot.openUntil == h.clock.now() + .seconds(15))
    }

    @Test func aResultFromAnEarlierGenerationChangesNothing() throws {
        let h = try Harness(["api": Self.probed()])
        try h.fail(times: 2)
        h.clock.advance(by: .seconds(10))
        let ticket = try #require(h.engine.runDue().probes.first)
        try h.engine.reset("api")
        h.engine.finishProbe(ticket, ProbeResult(outcome: .failure, latency: .milliseconds(5), status: 500))
        #expect(try h.state() == .closed)
    }

    @Test func aClosedBreakerIsCheckedEveryClosedIntervalAndAFailedCheckOpensIt() throws {
        let h = try Harness(["api": Self.probed(closedInterval: .seconds(60))])
        let first = try #require(h.engine.runDue().probes.first, "the first check goes at start")
        #expect(first.closedCheck)
        #expect(h.engine.runDue().probes.isEmpty, "one check out at a time")
        h.engine.finishProbe(first, ProbeResult(outcome: .success, latency: .milliseconds(3), status: 200))
        h.clock.advance(by: .seconds(59))
        #expect(h.engine.runDue().probes.isEmpty)
        h.clock.advance(by: .seconds(1))
        let second = try #require(h.engine.runDue().probes.first)
        h.engine.finishProbe(second, ProbeResult(outcome: .failure, latency: .milliseconds(3), status: 500))
        let opened = try #require(h.observer.transitions.last)
        #expect(opened.reason == .probe && opened.from == .closed && opened.to == .open && opened.probe?.status == 500)
    }
}

@Suite("Routing strategies in the engine")
struct RouteStrategyEngineTests {
    static let names = ["a", "b", "c"]

    static func harness(_ strategy: RouteStrategy, configure: (inout [String: BreakerPolicy]) -> Void = { _ in }) throws -> Harness {
        var breakers = Dictionary(uniqueKeysWithValues: names.map { ($0, policy()) })
        configure(&breakers)
        return try Harness(breakers, chains: [ChainDefinition(name: "llm", breakers: names, strategy: strategy)])
    }

    /// Routes once and reports `latency` for whichever member answered.
    @discardableResult
    static func route(_ h: Harness, latency: [String: Duration]) throws -> RouteDecision {
        let decision = try h.engine.route("llm")
        let permit = try #require(decision.permit)
        h.clock.advance(by: latency[permit.breaker] ?? .milliseconds(100))
        try h.engine.report(permit.id, .success(latency: latency[permit.breaker] ?? .milliseconds(100)))
        return decision
    }

    @Test func fastestPrefersTheLowestAverageAndSwitchesAtMostOncePerWindow() throws {
        let h = try Self.harness(.fastest(FastestPolicy(margin: 0.2, window: .seconds(10))))
        var latency: [String: Duration] = ["a": .milliseconds(300), "b": .milliseconds(50), "c": .milliseconds(400)]
        // Every member is sampled once (its figure is missing), then b leads.
        for _ in 0..<4 { try Self.route(h, latency: latency) }
        let settled = try Self.route(h, latency: latency)
        #expect(settled.breaker == "b" && settled.choice?.basis == .latency)
        latency["b"] = .milliseconds(1_000)
        var moved = false
        for _ in 0..<30 where !moved {
            let decision = try Self.route(h, latency: latency)
            moved = decision.breaker == "a" && decision.choice?.basis == .latency
        }
        #expect(moved, "traffic left b once its average passed a's by the margin")
    }

    @Test func cheapestPicksTheLowestCostAndWeightedSplitsByWeight() throws {
        let h = try Self.harness(.cheapest) { breakers in
            breakers["a"]?.cost = CallCost(inputPer1k: 2.5, outputPer1k: 10)
            breakers["b"]?.cost = CallCost(weight: 1)
        }
        let cheap = try h.engine.route("llm")
        #expect(cheap.breaker == "b" && cheap.choice == RouteChoice(strategy: "cheapest", basis: .cost, figure: 1))
        let split = try Self.harness(.weighted(["a": 3, "b": 1]))
        var counts: [String: Int] = [:]
        for _ in 0..<4_000 {
            let decision = try split.engine.route("llm")
            counts[decision.breaker ?? "", default: 0] += 1
            try split.engine.report(try #require(decision.permit).id, .success())
        }
        #expect((2_800...3_200).contains(counts["a", default: 0]) && counts["c"] == nil, "\(counts)")
    }

    @Test func requiresPassesOverMembersWithoutTheCapability() throws {
        let h = try Self.harness(.ordered) { breakers in breakers["c"]?.capabilities = ["vision"] }
        let decision = try h.engine.route("llm", requires: ["vision"])
        #expect(decision.breaker == "c")
        #expect(decision.skipped.map(\.reason) == [.capability, .capability])
        let none = try h.engine.route("llm", requires: ["audio"])
        #expect(!none.allowed && none.skipped.count == 3)
    }
}
