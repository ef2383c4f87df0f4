import Testing
@testable import FuseboxCore

@Suite("Trip rules")
struct TripRulesTests {
    @Test func tripsOnTheFifthConsecutiveFailureAndNotTheFourth() throws {
        let h = try Harness()
        try h.fail(times: 4)
        #expect(try h.state() == .closed)
        try h.fail()
        #expect(try h.state() == .open)
        let trip = try #require(h.observer.transitions.last)
        #expect(trip.reason == .consecutiveFailures)
        #expect(trip.failureCount == 5)
        #expect(trip.lastStatus == 503)
        #expect(trip.lastError == "upstream 503")
        #expect(trip.openUntil == h.clock.now() + .seconds(60))
    }

    @Test func aSuccessResetsTheConsecutiveCount() throws {
        let h = try Harness()
        try h.fail(times: 4)
        try h.succeed()
        try h.fail(times: 4)
        #expect(try h.state() == .closed)
        #expect(try h.snapshot().consecutiveFailures == 4)
    }

    @Test func failureRateTripsOnlyOnceMinimumCallsIsReached() throws {
        let h = try Harness(["api": policy(
            consecutiveFailures: nil, failureRate: 0.5, window: .count(size: 10), minimumCalls: 6
        )])
        // 3 failures of 5 calls is 60 %, but below the minimum of 6 calls.
        try h.fail(); try h.succeed(); try h.fail(); try h.succeed(); try h.fail()
        #expect(try h.state() == .closed)
        try h.succeed()  // 6 calls, 50 %: only evaluated on a failure or slow call
        #expect(try h.state() == .closed)
        try h.fail()  // 7 calls, 4 failures
        #expect(try h.state() == .open)
        let trip = try #require(h.observer.transitions.last)
        #expect(trip.reason == .failureRate)
        #expect(trip.callsInWindow == 7)
        #expect(trip.failuresInWindow == 4)
    }

    @Test func countWindowKeepsOnlyTheLastCalls() throws {
        let h = try Harness(["api": policy(
            consecutiveFailures: nil, failureRate: 0.5, window: .count(size: 4), minimumCalls: 4
        )])
        try h.fail(); try h.succeed(times: 4)  // the failure slides out
        #expect(try h.snapshot().window == HealthTotals(calls: 4, failures: 0, slow: 0))
        try h.fail()
        #expect(try h.snapshot().window.failures == 1)
        #expect(try h.state() == .closed)
        try h.fail()  // 2 of the last 4
        #expect(try h.state() == .open)
    }

    @Test func timeWindowForgetsOldBuckets() throws {
        let h = try Harness(["api": policy(
            consecutiveFailures: nil, failureRate: 0.5, window: .time(seconds: 60, buckets: 6), minimumCalls: 4
        )])
        try h.fail(times: 3)
        #expect(try h.snapshot().window.calls == 3)
        h.clock.advance(by: .seconds(30))
        try h.succeed()
        #expect(try h.snapshot().window == HealthTotals(calls: 4, failures: 3, slow: 0))
        h.clock.advance(by: .seconds(35))  // the three failures are now more than 60 s old
        #expect(try h.snapshot().window == HealthTotals(calls: 1, failures: 0, slow: 0))
        try h.fail()
        #expect(try h.state() == .closed)  // 2 calls: below the minimum
        h.clock.advance(by: .seconds(600))
        #expect(try h.snapshot().window.calls == 0)
    }

    @Test func slowCallRateTrips() throws {
        let h = try Harness(["api": policy(
            consecutiveFailures: nil, window: .count(size: 10), minimumCalls: 4,
            slowCall: SlowCallPolicy(threshold: .seconds(2), rate: 0.75)
        )])
        try h.call("api", .success(latency: .milliseconds(2500)))
        try h.call("api", .success(latency: .milliseconds(100)))
        try h.call("api", .success(latency: .seconds(3)))
        #expect(try h.state() == .closed)
        try h.call("api", .success(latency: .seconds(2)))  // 3 of 4 slow
        #expect(try h.state() == .open)
        #expect(h.observer.transitions.last?.reason == .slowCallRate)
        #expect(h.observer.transitions.last?.slowCallRate == 0.75)
    }

    @Test func fourHundredsAreIgnoredWhile429AndFiveHundredsCount() throws {
        let h = try Harness()
        try h.fail(times: 4, status: 500)
        try h.call("api", CallReport(status: 404))
        try h.call("api", CallReport(status: 400))
        #expect(try h.snapshot().consecutiveFailures == 4)
        #expect(h.observer.calls.suffix(2).map(\.outcome) == [.ignored, .ignored])
        try h.fail(status: 429)
        #expect(try h.state() == .open)
    }

    @Test func classificationFollowsThePolicy() {
        let rules = ClassificationPolicy()
        #expect(rules.outcome(of: CallReport(status: 200)) == .success)
        #expect(rules.outcome(of: CallReport(status: 302)) == .success)
        #expect(rules.outcome(of: CallReport(status: 404)) == .ignored)
        #expect(rules.outcome(of: CallReport(status: 429)) == .failure)
        #expect(rules.outcome(of: CallReport(status: 503)) == .failure)
        #expect(rules.outcome(of: CallReport(errorKind: .timeout)) == .timeout)
        #expect(rules.outcome(of: CallReport(errorKind: .connection)) == .failure)
        #expect(rules.outcome(of: CallReport(outcome: .success, status: 500)) == .success)
        let lenient = ClassificationPolicy(failure: [.statusClass(5)], ignore: [.statusClass(4), .timeout])
        #expect(lenient.outcome(of: CallReport(status: 429)) == .ignored)
        #expect(lenient.outcome(of: CallReport(outcome: .timeout)) == .ignored)
    }
}
