import FuseboxCore

/// What one strategy did over the scenario.
public struct StrategyResult: Sendable, Equatable {
    public var strategy: Strategy
    public var requests = 0
    /// Requests the user got an answer for, by the provider that answered.
    public var servedBy: [String: Int] = [:]
    public var userErrors = 0
    /// Calls sent to a provider during one of its fault windows.
    public var callsToFailing = 0
    /// Of those, the half-open probes (breaker only).
    public var probesToFailing = 0
    /// Of those, the ones sent after the provider's breaker first opened (breaker only).
    public var callsToFailingAfterTrip = 0
    /// Successes of the primary during its fault before its breaker opened:
    /// calls begun before the fault, each resetting the consecutive-failure count.
    public var resetsBeforeTrip = 0
    /// Calls to any provider, all told.
    public var calls = 0
    public var meanResponse: Duration = .zero
    public var p99Response: Duration = .zero
    /// Most provider calls outstanding at once: the connection-pool strain.
    public var peakInFlight = 0
    /// From the primary's recovery to the first successful call on it.
    public var recoveryLag: Duration?
    public var transitions = 0
    /// Calls a provider answered 429 because they exceeded its rate limit.
    public var rateLimited = 0

    public var served: Int { servedBy.values.reduce(0, +) }
}

/// A discrete-event simulation of an app calling providers, on a virtual
/// clock, with the real engine deciding for the breaker strategy.
public final class Simulation {
    enum Event {
        case arrival(Int)
        case callDone(request: Int, provider: Int, attempt: Int, permit: PermitID?, result: CallResult, started: Int64)
        case retry(request: Int, attempt: Int)
    }

    enum CallResult {
        case success(Duration)
        case failure(status: Int, latency: Duration, retryAfter: Duration?)
        case timeout(Duration)
    }

    struct Request {
        var arrival: Int64
        var excluded: [String] = []
        var done = false
    }

    private let scenario: Scenario
    private let strategy: Strategy
    private let clock: ManualClock
    private let draws: Draws
    private let engine: Engine?
    private let transitionCount = TransitionCounter()
    private var queue = EventQueue<Event>()
    private var requests: [Request] = []
    private var responses: [Int64] = []
    private var inFlight = 0
    private var result: StrategyResult
    private var lastTick: Int64 = .min
    /// Each rate-limited provider's own bucket (requests left, last refill).
    private var providerBuckets: [Int: (level: Double, at: Int64)] = [:]

    /// - Parameters:
    ///   - clock: the virtual clock (set to the scenario's start); share it with any observer that reads time.
    ///   - sink: also told everything the engine decides (the store, for `--store`).
    public init(_ scenario: Scenario, strategy: Strategy, clock: ManualClock? = nil, sink: (any EngineEventSink)? = nil) throws {
        self.scenario = scenario
        self.strategy = strategy
        self.clock = clock ?? ManualClock(scenario.start)
        self.clock.set(scenario.start)
        draws = Draws(seed: scenario.seed)
        result = StrategyResult(strategy: strategy)
        if strategy.usesBreaker {
            let sinks: [any EngineEventSink] = [transitionCount] + (sink.map { [$0] } ?? [])
            engine = try Engine(
                configuration: EngineConfiguration(
                    breakers: scenario.chain.map { name in
                        var policy = scenario.policy
                        if strategy == .breakerBudget, let limit = scenario.provider(name)?.rateLimit {
                            policy.budget.rate = RateLimit(amount: limit, per: .seconds(60))
                        }
                        return BreakerDefinition(name: name, policy: policy)
                    },
                    chains: [ChainDefinition(
                        name: "chain", breakers: scenario.chain,
                        strategy: strategy == .breakerFastest ? .fastest(FastestPolicy()) : .ordered
                    )]
                ),
                clock: self.clock, sink: EventFanout(sinks), seed: scenario.seed
            )
        } else {
            engine = nil
        }
    }

    public static func run(_ scenario: Scenario, strategy: Strategy) throws -> StrategyResult {
        try Simulation(scenario, strategy: strategy).run()
    }

    public func run() throws -> StrategyResult {
        let start = scenario.start.nanoseconds
        if scenario.rate > 0 { queue.push(.arrival(0), at: start) }
        while let (at, event) = queue.pop() {
            advance(to: at)
            switch event {
            case .arrival(let index):
                requests.append(Request(arrival: at))
                result.requests += 1
                if let next = nextArrival(after: index, at: at) { queue.push(.arrival(index + 1), at: next) }
                try begin(index, attempt: 1, at: at)
            case .retry(let request, let attempt):
                try begin(request, attempt: attempt, at: at)
            case .callDone(let request, let provider, let attempt, let permit, let outcome, let started):
                inFlight -= 1
                try finishCall(request, provider: provider, attempt: attempt, permit: permit, outcome: outcome, started: started, at: at)
            }
        }
        // Let timers finish (a breaker left half-open shows up as such).
        advance(to: start + scenario.duration.nanosecondsClamped)
        precondition(requests.allSatisfy(\.done), "a request never ended")
        responses.sort()
        if !responses.isEmpty {
            result.meanResponse = .nanoseconds(responses.reduce(0, +) / Int64(responses.count))
            result.p99Response = .nanoseconds(responses[min(responses.count - 1, responses.count * 99 / 100)])
        }
        result.transitions = transitionCount.count
        return result
    }

    private func advance(to at: Int64) {
        guard at > lastTick else { return }
        lastTick = at
        clock.set(Timestamp(nanoseconds: at))
        engine?.tick()
    }

    private func nextArrival(after index: Int, at: Int64) -> Int64? {
        let mean = 1e9 / scenario.rate
        let gap: Double
        switch scenario.arrivals {
        case .uniform: gap = mean
        case .poisson: gap = -log(max(1e-12, 1 - draws.unit(3, index))) * mean
        }
        let next = scenario.arrivals == .uniform
            ? scenario.start.nanoseconds + Int64(Double(index + 1) * mean)
            : at + Int64(gap)
        return next < scenario.start.nanoseconds + scenario.duration.nanosecondsClamped ? next : nil
    }

    // MARK: Strategies

    private func begin(_ request: Int, attempt: Int, at: Int64) throws {
        switch strategy {
        case .naiveRetry:
            call(request, provider: 0, attempt: attempt, permit: nil, at: at)
        case .breaker, .breakerBudget, .breakerFastest:
            let route = try engine!.route("chain", exclude: requests[request].excluded)
            guard route.allowed, let name = route.breaker, let permit = route.permit,
                  let index = scenario.chain.firstIndex(of: name) else {
                finishRequest(request, servedBy: nil, at: at)
                return
            }
            let failing = providerModel(index).fault(at: .nanoseconds(at - scenario.start.nanoseconds)) != nil
            if failing, permit.probe { result.probesToFailing += 1 }
            if failing, transitionCount.opened.contains(name) { result.callsToFailingAfterTrip += 1 }
            call(request, provider: index, attempt: attempt, permit: permit.id, at: at)
        }
    }

    private func finishCall(
        _ request: Int, provider: Int, attempt: Int, permit: PermitID?, outcome: CallResult, started: Int64, at: Int64
    ) throws {
        let name = scenario.chain[provider]
        if let permit, let engine {
            let report: CallReport
            switch outcome {
            case .success(let latency): report = .success(latency: latency)
            case .failure(let status, let latency, let retryAfter): report = CallReport(status: status, latency: latency, retryAfter: retryAfter)
            case .timeout(let latency): report = CallReport(outcome: .timeout, latency: latency, error: "timed out")
            }
            try engine.report(permit, report)
        }
        if case .success = outcome {
            let offset = Duration.nanoseconds(at - scenario.start.nanoseconds)
            if provider == 0, strategy.usesBreaker, providerModel(0).fault(at: offset) != nil, !transitionCount.opened.contains(name) {
                result.resetsBeforeTrip += 1
            }
            if provider == 0, result.recoveryLag == nil, let recovered = primaryRecovery, started >= recovered {
                result.recoveryLag = .nanoseconds(started - recovered)
            }
            finishRequest(request, servedBy: name, at: at)
            return
        }
        switch strategy {
        case .naiveRetry:
            if attempt <= scenario.retry.retries {
                queue.push(.retry(request: request, attempt: attempt + 1), at: at + scenario.retry.backoff(afterAttempt: attempt).nanosecondsClamped)
            } else {
                finishRequest(request, servedBy: nil, at: at)
            }
        case .breaker, .breakerBudget, .breakerFastest:
            requests[request].excluded.append(name)
            try begin(request, attempt: attempt + 1, at: at)
        }
    }

    private func finishRequest(_ request: Int, servedBy: String?, at: Int64) {
        precondition(!requests[request].done, "request \(request) ended twice")
        requests[request].done = true
        responses.append(at - requests[request].arrival)
        if let servedBy { result.servedBy[servedBy, default: 0] += 1 } else { result.userErrors += 1 }
    }

    // MARK: Providers

    private func providerModel(_ index: Int) -> ProviderModel {
        scenario.provider(scenario.chain[index]) ?? ProviderModel(name: scenario.chain[index], median: .seconds(1), p99: .seconds(3))
    }

    /// When the primary's last fault ends (if it has one inside the run).
    private lazy var primaryRecovery: Int64? = {
        guard let end = providerModel(0).faults.map(\.end).max() else { return nil }
        return scenario.start.nanoseconds + end.nanosecondsClamped
    }()

    /// Starts one provider call and schedules its end.
    private func call(_ request: Int, provider: Int, attempt: Int, permit: PermitID?, at: Int64) {
        let model = providerModel(provider)
        let offset = Duration.nanoseconds(at - scenario.start.nanoseconds)
        let timeout = scenario.clientTimeout
        var outcome: CallResult
        let healthy = draws.latency(model, providerIndex: provider, request: request, attempt: attempt)
        outcome = healthy >= timeout ? .timeout(timeout) : .success(healthy)
        if let fault = model.fault(at: offset) {
            result.callsToFailing += 1
            if draws.unit(4, provider, request, attempt) < fault.ratio {
                switch fault.mode {
                case .timeout:
                    outcome = .timeout(timeout)
                case .error(let status, let retryAfter):
                    outcome = .failure(status: status, latency: max(.milliseconds(20), healthy / 10), retryAfter: retryAfter)
                case .slow(let latency):
                    outcome = latency >= timeout ? .timeout(timeout) : .success(latency)
                }
            }
        }
        if let limit = model.rateLimit, let wait = overLimit(provider, perMinute: limit, at: at) {
            result.rateLimited += 1
            outcome = .failure(status: 429, latency: .milliseconds(20), retryAfter: wait)
        }
        let latency: Duration
        switch outcome {
        case .success(let d), .timeout(let d): latency = d
        case .failure(_, let d, _): latency = d
        }
        result.calls += 1
        inFlight += 1
        result.peakInFlight = max(result.peakInFlight, inFlight)
        queue.push(
            .callDone(request: request, provider: provider, attempt: attempt, permit: permit, result: outcome, started: at),
            at: at + latency.nanosecondsClamped
        )
    }
}

extension Simulation {
    /// The provider's limiter, a bucket of `perMinute` refilled continuously
    /// (as LLM APIs describe theirs): nil when the call fits, else the
    /// Retry-After it answers, in whole seconds as HTTP sends it.
    fileprivate func overLimit(_ provider: Int, perMinute: Int, at: Int64) -> Duration? {
        let capacity = Double(perMinute), perNanosecond = Double(perMinute) / 60e9
        var bucket = providerBuckets[provider] ?? (capacity, scenario.start.nanoseconds)
        bucket.level = min(capacity, bucket.level + Double(at - bucket.at) * perNanosecond)
        bucket.at = at
        defer { providerBuckets[provider] = bucket }
        guard bucket.level < 1 else {
            bucket.level -= 1
            return nil
        }
        let seconds = ((1 - bucket.level) / perNanosecond / 1e9).rounded(.up)
        return .seconds(Int64(max(1, seconds)))
    }
}

/// Counts transitions and remembers which breakers have opened. The
/// simulation is single-threaded, so no lock is needed.
final class TransitionCounter: EngineEventSink, @unchecked Sendable {
    private(set) var count = 0
    private(set) var opened = Set<String>()

    func receive(_ events: [EngineEvent]) {
        for case .transitioned(let transition) in events {
            count += 1
            if transition.to == .open { opened.insert(transition.breaker) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
