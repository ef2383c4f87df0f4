import FuseboxJSON
import FuseboxCore
import Testing
@testable import FuseboxSimulate

@Suite("Simulation")
struct SimulationTests {
    func both(_ scenario: Scenario) throws -> (naive: StrategyResult, breaker: StrategyResult) {
        (try Simulation.run(scenario, strategy: .naiveRetry), try Simulation.run(scenario, strategy: .breaker))
    }

    static func scenario(seed: UInt64, arrivals: Scenario.Arrivals = .poisson, mode: FaultWindow.Mode = .timeout) -> Scenario {
        var s = Scenario.reference
        s.seed = seed
        s.arrivals = arrivals
        s.providers[0].faults = [FaultWindow(start: .seconds(120), length: .seconds(300), mode: mode)]
        return s
    }

    @Test(arguments: [1, 2, 3, 42, 1_000] as [UInt64])
    func theBreakerBeatsNaiveRetryWhateverTheSeed(seed: UInt64) throws {
        let (naive, breaker) = try both(Self.scenario(seed: seed))
        #expect(breaker.userErrors * 10 < max(1, naive.userErrors), "far fewer user-visible errors")
        #expect(breaker.callsToFailing * 10 < naive.callsToFailing, "far fewer calls to the failing provider")
        #expect(breaker.meanResponse < naive.meanResponse)
        #expect(breaker.p99Response < naive.p99Response)
        #expect(breaker.peakInFlight < naive.peakInFlight)
        #expect(naive.userErrors > 100)
    }

    @Test(arguments: [1, 2, 42] as [UInt64])
    func whenThePrimarySlowsWithoutFailingTheFastestRouteMovesTrafficAndTheOrderedOneCannot(seed: UInt64) throws {
        let scenario = Self.scenario(seed: seed, arrivals: .uniform, mode: .slow(.seconds(5)))
        #expect(scenario.strategies.contains(.breakerFastest))
        let ordered = try Simulation.run(scenario, strategy: .breaker)
        let fastest = try Simulation.run(scenario, strategy: .breakerFastest)
        // Slow calls succeed: nothing trips, so the ordered chain keeps the primary for the whole slowdown.
        #expect(ordered.transitions == 0 && fastest.transitions == 0)
        #expect(ordered.callsToFailing > 400)
        #expect(fastest.callsToFailing * 5 < ordered.callsToFailing, "a few calls to notice, then one refresh a window")
        #expect(fastest.meanResponse < ordered.meanResponse * 0.7)
        #expect(fastest.userErrors == 0)
    }

    @Test(arguments: [1, 7, 99] as [UInt64])
    func withFastErrorsTheFailingProviderSeesOnlyTheThresholdAndTheProbes(seed: UInt64) throws {
        let breaker = try Simulation.run(
            Self.scenario(seed: seed, arrivals: .uniform, mode: .error(status: 503, retryAfter: nil)), strategy: .breaker
        )
        let threshold = Scenario.reference.policy.trip.consecutiveFailures!
        // Once open, only probes reach it.
        #expect(breaker.callsToFailingAfterTrip == breaker.probesToFailing)
        #expect(breaker.probesToFailing >= 1)
        // Before, the threshold, once more for each success of a call begun before the fault.
        #expect(breaker.callsToFailing - breaker.callsToFailingAfterTrip <= threshold * (1 + breaker.resetsBeforeTrip))
        #expect(breaker.userErrors == 0)
    }

    @Test func withHangingCallsOnlyTheCallsAlreadyInFlightAtTheTripAddToTheBound() throws {
        let s = Self.scenario(seed: 5, arrivals: .uniform)
        let breaker = try Simulation.run(s, strategy: .breaker)
        // Until the first five failures come back (one client timeout), requests keep arriving.
        let arrivingWhileHanging = Int((s.rate * s.clientTimeout.secondsDouble).rounded(.up))
        #expect(breaker.callsToFailing <= s.policy.trip.consecutiveFailures! + arrivingWhileHanging + breaker.probesToFailing)
        #expect(breaker.callsToFailingAfterTrip == breaker.probesToFailing)
        #expect(breaker.probesToFailing >= 1)
    }

    @Test(arguments: [
        FaultWindow.Mode.timeout, .error(status: 503, retryAfter: nil), .error(status: 429, retryAfter: .seconds(20)), .slow(.seconds(40)),
    ])
    func everyRequestEndsExactlyOnce(mode: FaultWindow.Mode) throws {
        var s = Self.scenario(seed: 11, arrivals: .uniform, mode: mode)
        s.providers[0].faults[0].ratio = 0.6
        s.providers[1].faults = [FaultWindow(start: .seconds(200), length: .seconds(60), mode: .timeout)]
        for result in [try Simulation.run(s, strategy: .naiveRetry), try Simulation.run(s, strategy: .breaker)] {
            #expect(result.served + result.userErrors == result.requests, "\(result.strategy)")
            #expect(result.requests == 1_500)
        }
    }

    @Test func withNoOutageBothStrategiesBehaveIdentically() throws {
        var s = Scenario.reference
        s.providers[0].faults = []
        var (naive, breaker) = try both(s)
        #expect(breaker.transitions == 0)
        breaker.strategy = naive.strategy
        #expect(naive == breaker)
        #expect(naive.userErrors == 0 && naive.servedBy == ["openai": 1_500])
    }

    @Test func theSameSeedGivesByteIdenticalOutput() throws {
        for format in SimulationReport.Format.allCases {
            let s = Self.scenario(seed: 3)
            let first = SimulationReport.render(s, [try Simulation.run(s, strategy: .naiveRetry), try Simulation.run(s, strategy: .breaker)], format: format)
            let second = SimulationReport.render(s, [try Simulation.run(s, strategy: .naiveRetry), try Simulation.run(s, strategy: .breaker)], format: format)
            #expect(first == second)
        }
        let other = Self.scenario(seed: 4)
        #expect(try Simulation.run(other, strategy: .breaker) != Simulation.run(Self.scenario(seed: 3), strategy: .breaker))
    }

    @Test func thePrimaryWinsItsTrafficBackAfterRecovery() throws {
        let breaker = try Simulation.run(.reference, strategy: .breaker)
        let lag = try #require(breaker.recoveryLag)
        #expect(lag > .zero && lag < .seconds(480))
        #expect((breaker.servedBy["openai"] ?? 0) > 200)
    }

    @Test func aScenarioFileOverridesTheReference() throws {
        let s = try ScenarioLoader.load(yaml: """
        duration: 30m
        rate_per_minute: 60
        arrivals: poisson
        seed: 9
        chain: [a, b]
        providers:
          a: { median: 200ms, p99: 1s, faults: [ { start: 1m, length: 10m, mode: error, status: 429, retry_after: 30s, ratio: 0.5 } ] }
        policy: { open: { duration: 15s } }
        retry: { retries: 1 }
        """, file: "s.yaml")
        #expect(s.duration == .seconds(1_800) && s.rate == 1 && s.arrivals == .poisson && s.seed == 9)
        #expect(s.provider("a")?.faults == [FaultWindow(start: .seconds(60), length: .seconds(600), mode: .error(status: 429, retryAfter: .seconds(30)), ratio: 0.5)])
        #expect(s.provider("b") != nil)
        #expect(s.policy.open.duration == .seconds(15) && s.retry.retries == 1)
        #expect(throws: (any Error).self) { try ScenarioLoader.load(yaml: "providers: { a: { faults: [ { mode: explode } ] } }", file: "s.yaml") }
    }

    @Test(arguments: [1, 5, 23] as [UInt64])
    func aRateBudgetKeepsARateLimitedPrimaryFromAnswering429(seed: UInt64) throws {
        var s = Scenario.reference
        s.seed = seed
        s.rate = 15                                   // 900 a minute offered
        s.providers[0].faults = []
        s.providers[0].rateLimit = 600                // against 600 allowed
        #expect(s.strategies == [.naiveRetry, .breaker, .breakerBudget])
        let breaker = try Simulation.run(s, strategy: .breaker)
        let budget = try Simulation.run(s, strategy: .breakerBudget)
        #expect(breaker.rateLimited > 0 && breaker.transitions > 0, "a breaker alone learns of the limit from 429s")
        #expect(budget.rateLimited == 0 && budget.transitions == 0)
        #expect(budget.userErrors == 0)
        // The primary serves about its limit; the rest goes to the fallback.
        let primary = budget.servedBy["openai"] ?? 0
        #expect(abs(primary - 600 * 15) <= 600, "\(primary)")
        #expect(primary + (budget.servedBy["anthropic"] ?? 0) + (budget.servedBy["ollama"] ?? 0) == budget.requests)
    }

    @Test func aScenarioFileCanLimitAProvidersRate() throws {
        let s = try ScenarioLoader.load(yaml: "providers: { openai: { rate_limit: 300 } }", file: "s.yaml")
        #expect(s.provider("openai")?.rateLimit == 300 && s.hasRateLimits)
        #expect(!Scenario.reference.hasRateLimits)
    }
}

@Suite("Simulation report JSON")
struct SimulationReportJSONTests {
    @Test func controlCharactersInNamesAreEscapedAndTheReportParses() throws {
        var s = Scenario.reference
        let hostile = "evil\n\u{1B}[2J\"quoted\"\\\u{7}"
        s.providers[0].name = hostile
        s.chain[0] = hostile
        s.duration = .seconds(120)
        let results = try [Strategy.naiveRetry, .breaker].map { try Simulation.run(s, strategy: $0) }
        let text = SimulationReport.json(s, results)
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "raw control characters in the JSON")
        let parsed = try JSONParser.parse(text)
        guard case .array(let strategies)? = parsed["strategies"], case .object(let served)? = strategies.first?["served_by"] else {
            Issue.record("no strategies in \(text)")
            return
        }
        #expect(served.first?.0 == hostile)
        #expect(parsed["scenario"].map { if case .string(let t) = $0 { t.contains(hostile) } else { false } } == true)
    }
}
