import Synchronization
@testable import FuseboxCore

/// Collects what the engine tells its sink, for assertions.
final class RecordingObserver: EngineEventSink {
    private let state = Mutex<(transitions: [Transition], calls: [RecordedCall], ended: [PermitEnd], fallbacks: [String])>(
        ([], [], [], [])
    )

    var transitions: [Transition] { state.withLock { $0.transitions } }
    var calls: [RecordedCall] { state.withLock { $0.calls } }
    var ended: [PermitEnd] { state.withLock { $0.ended } }
    var fallbacks: [String] { state.withLock { $0.fallbacks } }
    var reasons: [TransitionReason] { transitions.map(\.reason) }

    func receive(_ events: [EngineEvent]) {
        state.withLock { state in
            for event in events {
                switch event {
                case .transitioned(let transition): state.transitions.append(transition)
                case .recorded(let call): state.calls.append(call)
                case .permitEnded(_, let how, _): state.ended.append(how)
                case .fellBack(let chain, let from, let to, _): state.fallbacks.append("\(chain):\(from)->\(to)")
                default: break
                }
            }
        }
    }
}

/// A policy with only the rules a test names: no window, no jitter.
func policy(
    consecutiveFailures: Int? = 5,
    failureRate: Double? = nil,
    window: WindowPolicy? = nil,
    minimumCalls: Int = 1,
    slowCall: SlowCallPolicy? = nil,
    open: Duration = .seconds(60),
    multiplier: Double = 2,
    maxOpen: Duration = .seconds(600),
    probes: Int = 1,
    successesToClose: Int = 1,
    maxWait: Duration = .seconds(30),
    permitTTL: Duration = .seconds(120)
) -> BreakerPolicy {
    BreakerPolicy(
        trip: TripPolicy(
            consecutiveFailures: consecutiveFailures, failureRate: failureRate, window: window,
            minimumCalls: minimumCalls, slowCall: slowCall
        ),
        open: OpenPolicy(duration: open, backoffMultiplier: multiplier, backoffMax: maxOpen, jitter: 0),
        halfOpen: HalfOpenPolicy(probes: probes, successesToClose: successesToClose, maxWait: maxWait),
        permitTTL: permitTTL
    )
}

/// An engine on a manual clock with the given breakers, plus its observer.
struct Harness {
    let clock = ManualClock()
    let observer = RecordingObserver()
    let engine: Engine

    init(_ breakers: [String: BreakerPolicy] = ["api": policy()], chains: [ChainDefinition] = []) throws {
        let definitions = breakers.keys.sorted().map { BreakerDefinition(name: $0, policy: breakers[$0]!) }
        engine = try Engine(
            configuration: EngineConfiguration(breakers: definitions, chains: chains),
            clock: clock, sink: observer, seed: 42
        )
    }

    /// Acquires and reports one call; the breaker must allow it.
    @discardableResult
    func call(_ breaker: String = "api", _ report: CallReport) throws -> BreakerState {
        let decision = try engine.acquire(breaker)
        guard let permit = decision.permit else { throw HarnessError.refused(decision.state) }
        return try engine.report(permit.id, report)
    }

    func fail(_ breaker: String = "api", times: Int = 1, status: Int = 503) throws {
        for _ in 0..<times { try call(breaker, CallReport(status: status, error: "upstream \(status)")) }
    }

    func succeed(_ breaker: String = "api", times: Int = 1) throws {
        for _ in 0..<times { try call(breaker, .success()) }
    }

    func state(_ breaker: String = "api") throws -> BreakerState { try engine.snapshot(breaker)[0].state }

    func snapshot(_ breaker: String = "api") throws -> BreakerSnapshot { try engine.snapshot(breaker)[0] }
}

enum HarnessError: Error { case refused(BreakerState) }
