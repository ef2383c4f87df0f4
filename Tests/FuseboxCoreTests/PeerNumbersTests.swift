import Testing
@testable import FuseboxCore

/// What a fleet peer sends (a NOTIFY payload anyone who can connect may
/// forge) moves a breaker only as far as a local event could: nothing traps
/// or loops, and an opening lasts at most Retry-After's cap from its arrival.
@Suite("Peer numbers: bounded like local ones")
struct PeerNumbersTests {
    @Test func failuresInARowOfIntMaxTwiceNeitherTrapNorCountPastTheirBound() throws {
        let h = try Harness(["api": policy(consecutiveFailures: 5)])
        h.engine.recordRemote("api", resets: false, failures: 1)
        h.engine.recordRemote("api", resets: false, failures: .max)
        #expect(try h.engine.snapshot("api").first?.state == .open)
        _ = try h.engine.reset("api")
        h.engine.recordRemote("api", resets: false, failures: .max)
        h.engine.recordRemote("api", resets: false, failures: .max)
        #expect(try h.engine.snapshot("api").first?.state == .open)
    }

    @Test func anOpeningUntilTheYear2262LastsAtMostTheRetryAfterCapFromItsArrival() throws {
        let h = try Harness(["api": policy(open: .seconds(60), maxOpen: .seconds(600))])
        let farFuture = Timestamp.milliseconds(9_214_646_400_000)  // 2262
        #expect(h.engine.applyFleet("api", .open(until: farFuture, probesFailed: 0), origin: "evil#1")?.origin == "evil#1")
        let openUntil = try #require(try h.engine.snapshot("api").first?.openUntil)
        #expect(openUntil <= h.clock.now() + .seconds(600))
        // An open breaker keeps the later end, still within the cap.
        h.engine.applyFleet("api", .open(until: farFuture, probesFailed: 0))
        #expect(try #require(try h.engine.snapshot("api").first?.openUntil) <= h.clock.now() + .seconds(600))
    }

    @Test(arguments: [1.0, 2.0])
    func aFailedProbeCountOfIntMaxNeitherTrapsNorLoopsAtTheNextFailedProbe(multiplier: Double) throws {
        let h = try Harness(["api": policy(open: .seconds(60), multiplier: multiplier, maxOpen: .seconds(600))])
        h.engine.applyFleet("api", .open(until: h.clock.now() + .seconds(1), probesFailed: .max))
        h.clock.advance(by: .seconds(2))
        let permit = try #require(try h.engine.acquire("api").permit)
        #expect(permit.probe)
        #expect(try h.engine.report(permit.id, CallReport(status: 503)) == .open)
        let snapshot = try #require(try h.engine.snapshot("api").first)
        #expect(snapshot.failedProbes <= OpenPolicy.maxFailedProbes)
        #expect(try #require(snapshot.openUntil) <= h.clock.now() + .seconds(600))
    }
}
