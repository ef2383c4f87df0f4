import Testing
@testable import FuseboxCore

/// What fleet mode asks of the engine: peers' openings applied with reason
/// `fleet`, one probe granted from outside, peers' failures counted, and
/// budget shares that start empty.
@Suite("Fleet mode in the engine")
struct FleetEngineTests {
    let clock = ManualClock()

    func engine(_ policy: BreakerPolicy = BreakerPolicy(trip: TripPolicy(consecutiveFailures: 3))) throws -> Engine {
        try Engine(configuration: EngineConfiguration(breakers: [BreakerDefinition(name: "openai", policy: policy)]), clock: clock, seed: 1)
    }

    func state(_ engine: Engine) throws -> BreakerState { try engine.snapshot("openai")[0].state }

    @Test func aPeersOpeningOpensHereWithReasonFleetAndThePeersEnd() throws {
        let engine = try engine()
        let until = clock.now() + .seconds(42)
        let change = engine.applyFleet("openai", .open(until: until, probesFailed: 2))
        #expect(change?.reason == .fleet)
        #expect(change?.openUntil == until)
        #expect(try engine.snapshot("openai")[0].openUntil == until)
        #expect(try engine.snapshot("openai")[0].failedProbes == 2)
        // An earlier end never shortens an opening; a later one lengthens it without a transition.
        #expect(engine.applyFleet("openai", .open(until: until - .seconds(10), probesFailed: 2)) == nil)
        #expect(try engine.snapshot("openai")[0].openUntil == until)
        #expect(engine.applyFleet("openai", .open(until: until + .seconds(10), probesFailed: 2)) == nil)
        #expect(try engine.snapshot("openai")[0].openUntil == until + .seconds(10))
    }

    @Test func aGatedBreakerStaysOpenPastItsEndUntilItWinsTheProbe() throws {
        let engine = try engine()
        engine.gateProbes(["openai"], true)
        engine.applyFleet("openai", .open(until: clock.now() + .seconds(5), probesFailed: 0))
        clock.advance(by: .seconds(6))
        engine.tick()
        let refused = try engine.acquire("openai")
        #expect(!refused.allowed)
        #expect(try state(engine) == .open)
        #expect(engine.runDue().fleetCandidates == ["openai"])
        #expect(engine.runDue().fleetCandidates == [], "offered once per retry interval")
        clock.advance(by: Breaker.candidacyRetry)
        #expect(engine.runDue().fleetCandidates == ["openai"], "offered again while no probe has begun here")

        #expect(engine.beginFleetProbe("openai"))
        #expect(try state(engine) == .halfOpen)
        #expect(try engine.acquire("openai").allowed)
        #expect(!(try engine.acquire("openai").allowed), "one probe")
        #expect(!engine.beginFleetProbe("openai"), "no longer due")
    }

    @Test func aGatedBreakerAtTheTransitionCapClaimsNoProbeUntilTheCapFrees() throws {
        // The cap holds an open breaker open whoever would probe it: users, the prober, or the fleet's lease.
        let engine = try engine(BreakerPolicy(trip: TripPolicy(consecutiveFailures: 3), maxTransitionsPerMinute: 2))
        engine.gateProbes(["openai"], true)
        let start = clock.now()
        engine.applyFleet("openai", .open(until: start + .seconds(5), probesFailed: 0))
        engine.applyFleet("openai", .closed)
        engine.applyFleet("openai", .open(until: start + .seconds(5), probesFailed: 0))
        clock.advance(by: .seconds(6))
        #expect(engine.runDue().fleetCandidates == [])
        #expect(!engine.beginFleetProbe("openai"))
        #expect(try engine.snapshot("openai")[0].openUntil == start + .seconds(60), "held until the cap frees")
        #expect(engine.nextDeadline == start + .seconds(60), "the scheduler sleeps until the cap frees")
        clock.advance(by: .seconds(55))
        #expect(engine.runDue().fleetCandidates == ["openai"])
    }

    @Test func ungatingHandsAnOverdueBreakerBackToTheLocalStateMachine() throws {
        let engine = try engine()
        engine.gateProbes(["openai"], true)
        engine.applyFleet("openai", .open(until: clock.now() + .seconds(5), probesFailed: 0))
        clock.advance(by: .seconds(6))
        engine.tick()
        #expect(try state(engine) == .open)
        engine.gateProbes(["openai"], false)
        #expect(try state(engine) == .halfOpen)
    }

    @Test func aPeersProbeResultClosesOrReopensHere() throws {
        let engine = try engine()
        engine.applyFleet("openai", .open(until: clock.now() + .seconds(5), probesFailed: 0))
        #expect(engine.applyFleet("openai", .closed)?.to == .closed)
        engine.applyFleet("openai", .forced(.open))
        #expect(try state(engine) == .forcedOpen)
        #expect(engine.applyFleet("openai", .open(until: clock.now() + .seconds(5), probesFailed: 0)) == nil, "an operator's state stays")
        engine.applyFleet("openai", .reset)
        #expect(try state(engine) == .closed)
    }

    @Test func peersFailuresCountTowardTheThresholdAndASuccessForgetsThem() throws {
        let engine = try engine()
        engine.recordRemote("openai", resets: false, failures: 2)
        #expect(try state(engine) == .closed)
        engine.recordRemote("openai", resets: true, failures: 0)
        engine.recordRemote("openai", resets: false, failures: 2)
        #expect(try state(engine) == .closed)
        engine.recordRemote("openai", resets: false, failures: 1)
        #expect(try state(engine) == .open)
    }

    @Test func operatorActionsAreToldWithTheirScope() throws {
        final class Actions: EngineEventSink, @unchecked Sendable {
            var seen: [(OperatorAction, Bool)] = []
            func receive(_ events: [EngineEvent]) {
                for case .operated(_, let action, let local, _) in events { seen.append((action, local)) }
            }
        }
        let actions = Actions()
        let engine = try Engine(configuration: EngineConfiguration(breakers: [BreakerDefinition(name: "openai")]), clock: clock, sink: actions)
        try engine.reset("openai")  // nothing to change here, still told: peers may be open
        try engine.force("openai", .open, local: true)
        #expect(actions.seen.map(\.0) == [.reset, .force(.open)])
        #expect(actions.seen.map(\.1) == [false, true])
    }

    @Test func aFleetRateBudgetGrantsNothingBeforeItsFirstShareAndStartsEmpty() throws {
        var policy = BreakerPolicy()
        policy.budget.rate = RateLimit(amount: 60, per: .seconds(60))
        policy.budget.fleetScoped = [.rate]
        let engine = try engine(policy)
        #expect(!(try engine.acquire("openai").allowed))
        engine.setBudgetShare("openai", .rate, 30)
        #expect(!(try engine.acquire("openai").allowed), "the first share starts empty")
        clock.advance(by: .seconds(2))
        #expect(try engine.acquire("openai").allowed, "and refills at 30 a minute")
        #expect(engine.fleetBudgetLimits == [FleetBudgetLimit(breaker: "openai", kind: .rate, capacity: 60)])
    }
}
