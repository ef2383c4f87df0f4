import Foundation
import FuseboxCore
import GRDB
import Logging
import Testing
@testable import FuseboxStore

/// A restart on the same store takes up what was open, forced or paused,
/// for the breakers the new configuration still has.
@Suite("State restored from the store")
struct RestoreTests {
    /// The next run of the sidecar: a new writer and engine on the same file, `after` later.
    func restart(_ f: StoreFixture, after: Duration, breakers: [String] = ["openai", "anthropic"],
                 policy: BreakerPolicy = Self.policy) throws -> (Engine, [Transition]) {
        f.clock.advance(by: after)
        let writer = try StoreWriter(path: f.path, instance: "test-host", clock: f.clock, logger: Logger(label: "test"))
        let engine = try Engine(
            configuration: EngineConfiguration(breakers: breakers.map { BreakerDefinition(name: $0, policy: policy) }),
            clock: f.clock, sink: writer, seed: 8
        )
        return (engine, engine.restore(try writer.savedStates()))
    }

    static let policy: BreakerPolicy = {
        var policy = BreakerPolicy(budget: BudgetPolicy(rate: RateLimit(amount: 100, per: .seconds(60))))
        // Retry-After not honoured by the breaker: a 429 then pauses the budget without opening it.
        policy.open = OpenPolicy(duration: .seconds(600), jitter: 0, honorRetryAfter: false)
        policy.trip.window = nil
        return policy
    }()

    func fixture() throws -> StoreFixture {
        let f = try StoreFixture(breakers: ["openai", "anthropic"], policy: Self.policy)
        try f.writer.start(version: "test", config: "")
        return f
    }

    @Test func aBreakerOpenBeforeTheRestartIsOpenAfterItWithTheSameEndAndTheNextGeneration() throws {
        let f = try fixture()
        for _ in 0..<5 { try f.engine.record("openai", .failure(status: 503)) }
        let before = try f.engine.snapshot("openai")[0]
        f.writer.stop()
        let (engine, restored) = try restart(f, after: .seconds(30))
        let after = try engine.snapshot("openai")[0]
        #expect(after.state == .open)
        #expect(after.openUntil == before.openUntil)
        #expect(after.generation == before.generation + 1)
        #expect(restored.map(\.reason) == [.restored])
        #expect(try engine.snapshot("anthropic")[0].state == .closed)
    }

    @Test func anOpeningThatRanOutWhileStoppedMakesTheFirstCallTheProbe() throws {
        let f = try fixture()
        for _ in 0..<5 { try f.engine.record("openai", .failure(status: 503)) }
        f.writer.stop()
        let (engine, _) = try restart(f, after: .seconds(3_600))
        let first = try engine.acquire("openai")
        #expect(first.allowed && first.permit?.probe == true)
        #expect(try !engine.acquire("openai").allowed, "one probe, not a burst")
    }

    @Test func aForcedOpenBreakerStaysForcedAndAResetOneStaysClosed() throws {
        let f = try fixture()
        try f.engine.force("openai", .open)
        for _ in 0..<5 { try f.engine.record("anthropic", .failure(status: 503)) }
        try f.engine.reset("anthropic")
        f.writer.stop()
        let (engine, _) = try restart(f, after: .seconds(3_600))
        #expect(try engine.snapshot("openai")[0].state == .forcedOpen)
        #expect(try engine.snapshot("anthropic")[0].state == .closed)
    }

    @Test func aBreakerTheNewConfigurationRemovedIsNotRestored() throws {
        let f = try fixture()
        for _ in 0..<5 { try f.engine.record("openai", .failure(status: 503)) }
        f.writer.stop()
        let (engine, restored) = try restart(f, after: .seconds(1), breakers: ["anthropic"])
        #expect(restored.isEmpty)
        #expect(throws: EngineError.self) { try engine.snapshot("openai") }
    }

    @Test func aBudgetPausedByA429StaysPausedUntilItsEndAndAResetLiftsIt() throws {
        let f = try fixture()
        let permit = try #require(try f.engine.acquire("openai").permit)
        try f.engine.report(permit.id, CallReport(status: 429, retryAfter: .seconds(300)))
        let held = try #require(try f.engine.acquire("anthropic").permit)
        try f.engine.report(held.id, CallReport(status: 429, retryAfter: .seconds(300)))
        try f.engine.reset("anthropic")
        f.writer.stop()
        let (engine, _) = try restart(f, after: .seconds(60))
        let refused = try engine.acquire("openai")
        #expect(!refused.allowed && refused.reason == .rate)
        #expect(try engine.acquire("anthropic").allowed, "the reset lifted its pause")
        f.clock.advance(by: .seconds(241))
        #expect(try engine.acquire("openai").allowed, "the pause ended when it would have")
    }
}
