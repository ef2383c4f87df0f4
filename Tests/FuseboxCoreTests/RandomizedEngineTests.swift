import Testing
@testable import FuseboxCore

/// Thousands of random acquire/report/release/tick/force sequences across
/// several breakers, with the engine's invariants checked after every step.
@Suite("Randomized engine invariants")
struct RandomizedEngineTests {
    static let policies: [String: BreakerPolicy] = [
        "a": policy(consecutiveFailures: 3, open: .seconds(5), probes: 1, maxWait: .seconds(4), permitTTL: .seconds(3)),
        "b": policy(
            consecutiveFailures: nil, failureRate: 0.5, window: .count(size: 8), minimumCalls: 4,
            open: .seconds(2), maxOpen: .seconds(9), probes: 3, successesToClose: 2, permitTTL: .seconds(6)
        ),
        "c": {
            var p = policy(
                consecutiveFailures: 4, failureRate: 0.6, window: .time(seconds: 10, buckets: 5), minimumCalls: 3,
                slowCall: SlowCallPolicy(threshold: .milliseconds(800), rate: 0.5), open: .seconds(3), probes: 2,
                maxWait: .seconds(2), permitTTL: .seconds(2)
            )
            p.open.jitter = 0.3
            return p
        }(),
    ]

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func invariantsHoldAfterEveryStep(seed: UInt64) throws {
        let h = try Harness(
            Self.policies, chains: [ChainDefinition(name: "all", breakers: ["a", "b", "c"])]
        )
        var random = SplitMix64(seed: seed)
        var held: [Permit] = []
        var reported: [Permit] = []
        let names = ["a", "b", "c"]
        for step in 0..<3_000 {
            switch random.next() % 10 {
            case 0, 1, 2:
                let decision = try h.engine.acquire(names[Int(random.next() % 3)])
                if let permit = decision.permit { held.append(permit) }
            case 3:
                let route = try h.engine.route("all", exclude: random.next() % 4 == 0 ? ["a"] : [])
                if let permit = route.permit { held.append(permit) }
            case 4, 5, 6:
                guard !held.isEmpty else { continue }
                let permit = held.remove(at: Int(random.next() % UInt64(held.count)))
                let report = randomReport(&random)
                // It may have expired before we reported: then it is refused.
                let outstanding = h.engine.isOutstanding(permit.id)
                let accepted = (try? h.engine.report(permit.id, report)) != nil
                #expect(accepted == outstanding)
                if accepted { reported.append(permit) }
            case 7:
                guard !held.isEmpty else { continue }
                let permit = held.remove(at: Int(random.next() % UInt64(held.count)))
                try? h.engine.release(permit.id, random.next() % 2 == 0 ? .abandoned : .cancelled)
            case 8:
                h.clock.advance(by: .milliseconds(Int64(random.next() % 2_500)))
                h.engine.tick()
            default:
                switch random.next() % 40 {
                case 0: try h.engine.force(names[Int(random.next() % 3)], ForcedMode.allCases.randomElement(using: &random)!)
                case 1: try h.engine.reset(names[Int(random.next() % 3)])
                case 2 where !reported.isEmpty:
                    // A duplicate report is always refused.
                    let again = reported[Int(random.next() % UInt64(reported.count))]
                    #expect(throws: EngineError.self) { try h.engine.report(again.id, .success()) }
                default: try h.engine.record(names[Int(random.next() % 3)], randomReport(&random))
                }
            }
            try checkInvariants(h, step: step)
        }
        #expect(h.observer.transitions.count > 20, "the run should exercise many transitions")
    }

    func randomReport(_ random: inout SplitMix64) -> CallReport {
        let latency = Duration.milliseconds(Int64(random.next() % 1_200))
        switch random.next() % 8 {
        case 0, 1, 2: return .success(latency: latency)
        case 3: return CallReport(status: 503, latency: latency, error: "unavailable")
        case 4: return CallReport(status: 429, latency: latency, retryAfter: random.next() % 3 == 0 ? .seconds(4) : nil)
        case 5: return CallReport(status: 404, latency: latency)
        case 6: return CallReport(outcome: .timeout, latency: latency)
        default: return CallReport(outcome: .cancelled)
        }
    }

    func checkInvariants(_ h: Harness, step: Int) throws {
        let snapshots = try h.engine.snapshot()
        var permits = 0
        for s in snapshots {
            #expect(s.probesInFlight <= s.policy.halfOpen.probes, "step \(step): \(s.name) has too many probes out")
            #expect(s.probesInFlight >= 0 && s.permitsInFlight >= 0 && s.consecutiveFailures >= 0)
            #expect(s.window.calls >= 0 && s.window.failures >= 0 && s.window.slow >= 0)
            #expect(s.window.failures <= s.window.calls && s.window.slow <= s.window.calls)
            #expect((s.state == .open) == (s.openUntil != nil), "step \(step): \(s.name) open without open_until")
            if s.state != .halfOpen { #expect(s.probesInFlight == 0) }
            permits += s.permitsInFlight
        }
        #expect(permits == h.engine.permitsInFlight)
        var last: [String: Transition] = [:]
        for t in h.observer.transitions {
            #expect(t.from != t.to)
            if let previous = last[t.breaker] {
                #expect(t.from == previous.to, "step \(step): \(t.breaker) went \(previous.to) then from \(t.from)")
                #expect(t.generation == previous.generation + 1)
                #expect(t.at >= previous.at)
            }
            #expect((t.to == .open) == (t.openUntil != nil))
            last[t.breaker] = t
        }
    }
}
