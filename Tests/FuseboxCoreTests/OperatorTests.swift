import Testing
@testable import FuseboxCore

@Suite("Forced states, reset and reload")
struct OperatorTests {
    @Test func forcedOpenRefusesEverythingAndNoTimerMovesIt() throws {
        let h = try Harness()
        #expect(try h.engine.force("api", .open) == .forcedOpen)
        let decision = try h.engine.acquire("api")
        #expect(!decision.allowed && decision.retryIn == nil)
        h.clock.advance(by: .seconds(3600))
        h.engine.tick()
        #expect(try h.state() == .forcedOpen)
        #expect(try h.engine.force("api", .auto) == .closed)
        #expect(h.observer.reasons == [.forced, .forced])
    }

    @Test func disabledAllowsEverythingAndRecordsNothing() throws {
        let h = try Harness()
        try h.engine.force("api", .disabled)
        try h.fail(times: 50)
        #expect(try h.state() == .disabled)
        #expect(try h.snapshot().consecutiveFailures == 0)
    }

    @Test func metricsOnlyRecordsButNeverTrips() throws {
        let h = try Harness(["api": policy(window: .count(size: 10))])
        try h.engine.force("api", .metricsOnly)
        try h.fail(times: 20)
        #expect(try h.state() == .metricsOnly)
        #expect(try h.snapshot().window.failures == 10)
    }

    @Test func resetClosesAndForgetsBackoff() throws {
        let h = try Harness()
        try h.fail(times: 5)
        h.clock.advance(by: .seconds(60))
        try h.fail()  // probe failed: backoff level 1
        #expect(try h.snapshot().failedProbes == 1)
        #expect(try h.engine.reset("api") == .closed)
        #expect(h.observer.reasons.last == .reset)
        #expect(try h.snapshot().failedProbes == 0)
        // Reset of a closed breaker clears statistics without a transition.
        try h.fail(times: 3)
        let count = h.observer.transitions.count
        try h.engine.reset("api")
        #expect(h.observer.transitions.count == count)
        #expect(try h.snapshot().consecutiveFailures == 0)
    }

    @Test func forcingTheCurrentStateIsNotATransition() throws {
        let h = try Harness()
        try h.engine.force("api", .closed)
        try h.engine.force("api", .auto)
        #expect(h.observer.transitions.isEmpty)
    }

    @Test func reloadKeepsStateAddsAndRemovesBreakers() throws {
        let h = try Harness(["api": policy(), "old": policy()])
        try h.fail(times: 5)
        let held = try #require(try h.engine.acquire("old").permit)
        var newPolicy = policy()
        newPolicy.open.duration = .seconds(5)
        let summary = try h.engine.apply(EngineConfiguration(breakers: [
            BreakerDefinition(name: "api", policy: newPolicy), BreakerDefinition(name: "new", policy: policy()),
        ]))
        #expect(summary == ReloadSummary(added: ["new"], removed: ["old"], changed: ["api"], windowsReset: []))
        #expect(try h.state() == .open)
        #expect(try h.state("new") == .closed)
        #expect(throws: EngineError.unknownBreaker("old")) { try h.engine.acquire("old") }
        #expect(throws: EngineError.unknownPermit(held.id.description)) { try h.engine.report(held.id, .success()) }
        #expect(h.engine.permitsInFlight == 0)
    }

    @Test func reloadKeepsPermitsOfKeptBreakersReportable() throws {
        let h = try Harness(["a": policy(), "b": policy()])
        let permit = try #require(try h.engine.acquire("b").permit)
        _ = try h.engine.apply(EngineConfiguration(breakers: [BreakerDefinition(name: "b", policy: policy())]))
        #expect(try h.engine.report(permit.id, .failure()) == .closed)
        #expect(try h.snapshot("b").consecutiveFailures == 1)
    }

    @Test func reloadTripsAClosedBreakerThatTheNewRulesCondemn() throws {
        let h = try Harness(["api": policy(consecutiveFailures: 5)])
        try h.fail(times: 3)
        _ = try h.engine.apply(EngineConfiguration(breakers: [
            BreakerDefinition(name: "api", policy: policy(consecutiveFailures: 3)),
        ]))
        #expect(try h.state() == .open)
        #expect(h.observer.reasons.last == .configReload)
    }

    @Test func configurationErrorsAreRefused() {
        let chain = EngineConfiguration(
            breakers: [BreakerDefinition(name: "a")], chains: [ChainDefinition(name: "c", breakers: ["a", "zz"])]
        )
        #expect(throws: EngineError.invalidConfiguration("chain \"c\" names unknown breaker \"zz\"")) {
            try Engine(configuration: chain)
        }
        let twice = EngineConfiguration(breakers: [BreakerDefinition(name: "a"), BreakerDefinition(name: "a")])
        #expect(throws: EngineError.self) { try Engine(configuration: twice) }
    }
}
