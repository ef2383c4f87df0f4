import Testing
@testable import FuseboxCore

/// `permit_ttl` bounds a client's silence, not a call's length: a call that
/// keeps renewing its permit runs as long as it needs, and one that goes
/// quiet (its process died) still expires.
@Suite("Renewed permits")
struct PermitRenewalTests {
    @Test func aRenewedPermitOutlivesItsFirstDeadlineAndReportsASuccess() throws {
        let h = try Harness(["api": policy(consecutiveFailures: 2, permitTTL: .seconds(2))])
        let permit = try #require(try h.engine.acquire("api").permit)
        #expect(permit.ttl == .seconds(2))
        for _ in 0..<5 {  // a 5-second call, renewed every second
            h.clock.advance(by: .seconds(1))
            h.engine.tick()
            #expect(try h.engine.renew(permit.id) == h.clock.now() + .seconds(2))
        }
        #expect(h.observer.ended.isEmpty, "never expired")
        #expect(try h.engine.report(permit.id, .success()) == .closed)
        #expect(h.observer.calls.map(\.outcome) == [.success])
    }

    @Test func aPermitThatStopsRenewingExpiresOneTTLAfterItsLastRenewal() throws {
        let h = try Harness(["api": policy(consecutiveFailures: 2, permitTTL: .seconds(2))])
        let permit = try #require(try h.engine.acquire("api").permit)
        h.clock.advance(by: .seconds(1))
        try h.engine.renew(permit.id)
        h.clock.advance(by: .milliseconds(1_999))
        h.engine.tick()
        #expect(h.observer.ended.isEmpty)
        h.clock.advance(by: .milliseconds(1))
        h.engine.tick()
        #expect(h.observer.ended == [.expired])
        #expect(throws: EngineError.unknownPermit(permit.id.description)) { try h.engine.renew(permit.id) }
    }

    @Test func renewingMovesAPermitBehindLaterOnesSoTheOthersStillExpireOnTime() throws {
        let h = try Harness(["api": policy(consecutiveFailures: 5, permitTTL: .seconds(2))])
        let first = try #require(try h.engine.acquire("api").permit)
        h.clock.advance(by: .seconds(1))
        let second = try #require(try h.engine.acquire("api").permit)  // due at 3 s
        h.clock.advance(by: .milliseconds(500))
        try h.engine.renew(first.id)  // due at 3.5 s, after the second
        h.clock.advance(by: .milliseconds(1_500))
        h.engine.tick()
        #expect(h.observer.ended == [.expired], "the second expired though it sat behind the first")
        #expect(throws: EngineError.unknownPermit(second.id.description)) { try h.engine.renew(second.id) }
        #expect(try h.engine.renew(first.id) == h.clock.now() + .seconds(2))
        #expect(try h.engine.snapshot("api")[0].permitsInFlight == 1)
    }
}
