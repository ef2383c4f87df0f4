import Synchronization
import Testing
@testable import FuseboxCore

/// Collects queued acquires' answers in the order they arrive.
final class Answers: Sendable {
    let received = Mutex<[(String, Decision)]>([])

    func resume(_ name: String) -> any QueueWaiter { NamedWaiter(name: name, answers: self) }
    var all: [(String, Decision)] { received.withLock { $0 } }
    var names: [String] { all.map(\.0) }
}

func budgeted(
    maxInFlight: Int? = nil, queue: QueuePolicy? = nil, rate: RateLimit? = nil, tokens: RateLimit? = nil,
    consecutiveFailures: Int? = 5, permitTTL: Duration = .seconds(120)
) -> BreakerPolicy {
    var p = policy(consecutiveFailures: consecutiveFailures, permitTTL: permitTTL)
    p.budget = BudgetPolicy(maxInFlight: maxInFlight, queue: queue, rate: rate, tokens: tokens)
    return p
}

@Suite("Budgets: concurrency cap, queue, rate and token buckets")
struct BudgetTests {
    @Test func anAcquireOverTheCapIsRefusedForConcurrency() throws {
        let h = try Harness(["api": budgeted(maxInFlight: 2)])
        let first = try h.engine.acquire("api"), second = try h.engine.acquire("api")
        let third = try h.engine.acquire("api")
        #expect(first.allowed && second.allowed)
        #expect(!third.allowed && third.reason == .concurrency && third.state == .closed)
        try h.engine.report(first.permit!.id, .success())
        #expect(try h.engine.acquire("api").allowed)
    }

    @Test(arguments: [11, 12, 13, 14, 15, 16] as [UInt64])
    func theCapIsNeverExceededUnderRandomInterleavings(seed: UInt64) throws {
        let cap = 3
        let h = try Harness([
            "api": budgeted(maxInFlight: cap, queue: QueuePolicy(max: 4, timeout: .seconds(2)), consecutiveFailures: nil,
                            permitTTL: .seconds(5)),
        ])
        let answers = Answers()
        var random = SplitMix64(seed: seed)
        var held: [Permit] = []
        var tickets: [WaitTicket] = []
        var seenAnswers = 0
        for step in 0..<4_000 {
            switch random.next() % 8 {
            case 0, 1:
                if let permit = try h.engine.acquire("api").permit { held.append(permit) }
            case 2:
                switch try h.engine.acquire("api", orWait: answers.resume("w\(step)")) {
                case .decided(let decision): if let permit = decision.permit { held.append(permit) }
                case .queued(let ticket): tickets.append(ticket)
                }
            case 3, 4:
                guard !held.isEmpty else { continue }
                let permit = held.remove(at: Int(random.next() % UInt64(held.count)))
                _ = try? h.engine.report(permit.id, random.next() % 2 == 0 ? .success() : .failure(status: 503))
            case 5:
                guard !held.isEmpty else { continue }
                let permit = held.remove(at: Int(random.next() % UInt64(held.count)))
                try? h.engine.release(permit.id, .abandoned)
            case 6:
                guard !tickets.isEmpty else { continue }
                _ = h.engine.cancelWait(tickets.remove(at: Int(random.next() % UInt64(tickets.count))))
            default:
                h.clock.advance(by: .milliseconds(Int64(random.next() % 1_500)))
                h.engine.tick()
            }
            let delivered = answers.all
            for (_, decision) in delivered[seenAnswers...] { if let permit = decision.permit { held.append(permit) } }
            seenAnswers = delivered.count
            let outstanding = held.filter { h.engine.isOutstanding($0.id) }.count
            let snapshot = try h.snapshot()
            #expect(snapshot.permitsInFlight <= cap, "step \(step)")
            #expect(outstanding == snapshot.permitsInFlight, "step \(step)")
            #expect(snapshot.queued <= 4, "step \(step)")
            held.removeAll { !h.engine.isOutstanding($0.id) }
        }
    }

    @Test func queuedAcquiresAreGrantedInArrivalOrderAndRefusedAtTheirTimeout() throws {
        let h = try Harness(["api": budgeted(maxInFlight: 1, queue: QueuePolicy(max: 3, timeout: .seconds(2)))])
        let answers = Answers()
        let holder = try h.engine.acquire("api").permit!
        for name in ["first", "second", "third"] {
            guard case .queued = try h.engine.acquire("api", orWait: answers.resume(name)) else {
                Issue.record("\(name) should have queued")
                return
            }
        }
        guard case .decided(let full) = try h.engine.acquire("api", orWait: answers.resume("fourth")) else {
            Issue.record("a full queue must refuse at once")
            return
        }
        #expect(!full.allowed && full.reason == .concurrency)
        #expect(try h.snapshot().queued == 3)

        h.clock.advance(by: .milliseconds(500))
        try h.engine.report(holder.id, .success())
        #expect(answers.names == ["first"])
        #expect(answers.all[0].1.allowed && answers.all[0].1.waited == .milliseconds(500))

        try h.engine.release(answers.all[0].1.permit!.id, .cancelled)
        #expect(answers.names == ["first", "second"])

        h.clock.advance(by: .milliseconds(1_499))
        h.engine.tick()
        #expect(answers.names == ["first", "second"], "third still has time: it queued at 0 s with a 2 s timeout")
        h.clock.advance(by: .milliseconds(1))
        h.engine.tick()
        #expect(answers.names == ["first", "second", "third"])
        let timedOut = answers.all[2].1
        #expect(!timedOut.allowed && timedOut.reason == .concurrency && timedOut.waited == .seconds(2))
        #expect(try h.snapshot().queued == 0)
    }

    @Test func aWaitTimedOutByItsOwnTimerIsRefusedAtItsDeadlineAndNotBefore() throws {
        let h = try Harness(["api": budgeted(maxInFlight: 1, queue: QueuePolicy(max: 3, timeout: .milliseconds(750)))])
        let answers = Answers()
        _ = try h.engine.acquire("api")
        guard case .queued(let ticket) = try h.engine.acquire("api", orWait: answers.resume("waiting")) else {
            Issue.record("should queue")
            return
        }
        #expect(ticket.deadline == h.clock.now() + .milliseconds(750))
        h.clock.advance(by: .milliseconds(749))
        h.engine.expireWait(ticket)
        #expect(answers.names.isEmpty, "a timer that fires early changes nothing")
        h.clock.advance(by: .milliseconds(1))
        h.engine.expireWait(ticket)
        #expect(answers.names == ["waiting"] && answers.all[0].1.waited == .milliseconds(750))
        h.engine.expireWait(ticket)
        #expect(answers.names.count == 1, "answered once")
        #expect(try h.snapshot().queued == 0)
    }

    @Test func aWithdrawnWaiterIsNeverAnsweredAndLosesItsPlace() throws {
        let h = try Harness(["api": budgeted(maxInFlight: 1, queue: QueuePolicy(max: 3, timeout: .seconds(10)))])
        let answers = Answers()
        let holder = try h.engine.acquire("api").permit!
        guard case .queued(let leaving) = try h.engine.acquire("api", orWait: answers.resume("leaving")),
              case .queued = try h.engine.acquire("api", orWait: answers.resume("staying"))
        else { Issue.record("both should queue"); return }
        #expect(h.engine.cancelWait(leaving))
        #expect(!h.engine.cancelWait(leaving))
        try h.engine.report(holder.id, .success())
        #expect(answers.names == ["staying"])
    }

    @Test func waitersHearAtOnceWhenTheBreakerOpens() throws {
        let h = try Harness([
            "api": budgeted(maxInFlight: 1, queue: QueuePolicy(max: 3, timeout: .seconds(10)), consecutiveFailures: 1),
        ])
        let answers = Answers()
        let holder = try h.engine.acquire("api").permit!
        _ = try h.engine.acquire("api", orWait: answers.resume("waiting"))
        try h.engine.report(holder.id, .failure(status: 503))
        #expect(answers.names == ["waiting"])
        #expect(answers.all[0].1.reason == .open && answers.all[0].1.state == .open)
    }

    @Test func theRateBucketRefillsAtTheConfiguredRate() throws {
        let h = try Harness(["api": budgeted(rate: RateLimit(amount: 60, per: .seconds(60)))])
        for _ in 0..<60 { #expect(try h.engine.acquire("api").allowed) }
        let refused = try h.engine.acquire("api")
        #expect(!refused.allowed && refused.reason == .rate && refused.retryIn == .seconds(1))
        h.clock.advance(by: .milliseconds(999))
        #expect(try h.engine.acquire("api").reason == .rate)
        h.clock.advance(by: .milliseconds(1))
        #expect(try h.engine.acquire("api").allowed)
        h.clock.advance(by: .seconds(3_600))
        #expect(try h.snapshot().rateAvailable == 60, "a bucket holds at most one period's worth")
    }

    @Test(arguments: [21, 22, 23] as [UInt64])
    func theRateBucketNeverGoesNegative(seed: UInt64) throws {
        var bucket = TokenBucket(RateLimit(amount: 10, per: .seconds(1)), now: Timestamp(nanoseconds: 0))
        var random = SplitMix64(seed: seed)
        var now = Timestamp(nanoseconds: 0)
        var taken = 0
        for _ in 0..<20_000 {
            switch random.next() % 4 {
            case 0: now = now + .milliseconds(Int64(random.next() % 300))
            case 1: bucket.drain(until: now + .milliseconds(Int64(random.next() % 500)), at: now)
            default:
                if bucket.allows(1, at: now) {
                    bucket.take(1)
                    taken += 1
                }
            }
            #expect(bucket.level >= 0)
            #expect(bucket.available(at: now) <= 10)
        }
        // Never more than the capacity plus what the elapsed time refilled.
        #expect(Double(taken) <= 10 + Double(now.nanoseconds) / 1e8 + 1e-6)
    }

    @Test func tokensChargedAtAcquireAreReconciledToWhatTheProviderCounted() throws {
        let h = try Harness(["api": budgeted(tokens: RateLimit(amount: 1_000, per: .seconds(60)))])
        let a = try h.engine.acquire("api", cost: 400).permit!
        let b = try h.engine.acquire("api", cost: 400).permit!
        #expect(try h.snapshot().tokensAvailable == 200)
        #expect(try h.engine.acquire("api", cost: 400).reason == .tokens)
        try h.engine.report(a.id, CallReport(outcome: .success, tokensUsed: 100))
        #expect(try h.snapshot().tokensAvailable == 500)
        try h.engine.report(b.id, CallReport(outcome: .success, tokensUsed: 600))
        #expect(try h.snapshot().tokensAvailable == 300)
        // A report without a permit counts its tokens too.
        try h.engine.record("api", CallReport(outcome: .success, tokensUsed: 500))
        #expect(try h.snapshot().tokensAvailable == 0)
        // 500 used against 300 left: a debt of 200, repaid before anything more is granted.
        let refused = try h.engine.acquire("api", cost: 10)
        #expect(refused.reason == .tokens)
        let wait = try #require(refused.retryIn)
        #expect(abs((wait - .milliseconds(12_600)).nanosecondsClamped) < 1_000_000, "210 tokens at 1,000 a minute")
        h.clock.advance(by: .seconds(60))
        #expect(try h.snapshot().tokensAvailable == 800)
        h.clock.advance(by: .seconds(12))
        #expect(try h.snapshot().tokensAvailable == 1_000)
    }

    @Test func a429WithRetryAfterEmptiesTheRateBudgetUntilThen() throws {
        var p = budgeted(rate: RateLimit(amount: 600, per: .seconds(60)))
        p.open.honorRetryAfter = false  // isolate the budget from the breaker's own Retry-After rule
        let h = try Harness(["api": p])
        try h.call("api", CallReport(status: 429, retryAfter: .seconds(5)))
        #expect(try h.snapshot().rateAvailable == 0)
        let refused = try h.engine.acquire("api")
        #expect(refused.reason == .rate && refused.retryIn == .milliseconds(5_100))
        h.clock.advance(by: .seconds(5))
        #expect(try h.engine.acquire("api").reason == .rate, "nothing refilled while the provider said wait")
        h.clock.advance(by: .milliseconds(100))
        #expect(try h.engine.acquire("api").allowed)
    }

    @Test func routePassesOverABreakerOverItsBudgetWithoutChangingItsState() throws {
        let h = try Harness(
            ["primary": budgeted(maxInFlight: 1), "spare": budgeted(rate: RateLimit(amount: 1, per: .seconds(60))), "last": policy()],
            chains: [ChainDefinition(name: "llm", breakers: ["primary", "spare", "last"])]
        )
        #expect(try h.engine.route("llm").breaker == "primary")
        #expect(try h.engine.route("llm").breaker == "spare")
        let third = try h.engine.route("llm")
        #expect(third.breaker == "last")
        #expect(third.skipped.map(\.reason) == [.concurrency, .rate])
        #expect(third.skipped.map(\.state) == [.closed, .closed])
        #expect(try h.state("primary") == .closed)
    }

    @Test func aReloadKeepsBucketLevelsAndServesWaitersWhenTheCapRises() throws {
        let h = try Harness(["api": budgeted(maxInFlight: 1, queue: QueuePolicy(max: 2, timeout: .seconds(10)),
                                             rate: RateLimit(amount: 10, per: .seconds(60)))])
        let answers = Answers()
        _ = try h.engine.acquire("api")
        _ = try h.engine.acquire("api", orWait: answers.resume("waiting"))
        _ = try h.engine.apply(EngineConfiguration(breakers: [
            BreakerDefinition(name: "api", policy: budgeted(maxInFlight: 2, queue: QueuePolicy(max: 2, timeout: .seconds(10)),
                                                            rate: RateLimit(amount: 10, per: .seconds(60)))),
        ]))
        #expect(answers.names == ["waiting"] && answers.all[0].1.allowed)
        #expect(try h.snapshot().rateAvailable == 8)
    }
}

/// A waiter that files its answer under its name.
final class NamedWaiter: QueueWaiter {
    let name: String
    let answers: Answers

    init(name: String, answers: Answers) {
        self.name = name
        self.answers = answers
    }

    func answer(_ decision: Decision) { answers.received.withLock { $0.append((name, decision)) } }
}

/// A waiter that drops its answer.
final class IgnoringWaiter: QueueWaiter {
    func answer(_ decision: Decision) {}
}
