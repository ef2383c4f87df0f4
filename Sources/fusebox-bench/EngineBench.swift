import FuseboxCore
import Synchronization

/// The engine alone: acquire+report pairs on one and two threads, and route on
/// a three-breaker chain, against the floor of any locked decision (two
/// uncontended lock round trips on a counter).
enum EngineBench {
    static let breakers = ["openai", "anthropic", "ollama"]

    static func makeEngine(budget: BudgetPolicy = BudgetPolicy(), strategy: RouteStrategy = .ordered) throws -> Engine {
        var policy = BreakerPolicy.default
        policy.trip.consecutiveFailures = nil  // keep every breaker closed: measure the common path
        policy.trip.failureRate = nil
        policy.budget = budget
        return try Engine(
            configuration: EngineConfiguration(
                breakers: breakers.map { BreakerDefinition(name: $0, policy: policy) },
                chains: [ChainDefinition(name: "llm", breakers: breakers, strategy: strategy)]
            ),
            seed: 1
        )
    }

    static func run() throws {
        let pairs = 2_000_000
        print("engine benchmark: \(pairs) acquire+report pairs per measurement, release build expected")

        let floor = measure(pairs) { lockFloor(pairs) }
        let single = try measure(pairs) { try pairsOnOneThread(makeEngine(), pairs) }
        // A cap and a rate budget that are checked on every decision but never refuse.
        let budget = BudgetPolicy(maxInFlight: 100_000, rate: RateLimit(amount: 1_000_000_000, per: .seconds(1)))
        let budgeted = try measure(pairs) { try pairsOnOneThread(makeEngine(budget: budget), pairs) }
        let engine = try makeEngine()
        let twoThreads = try measure(pairs) { try pairsOnTwoThreads(engine, pairs) }
        let routeEngine = try makeEngine()
        let routeClosed = try measure(pairs) { try routes(routeEngine, pairs) }
        let fastestEngine = try makeEngine(strategy: .fastest(FastestPolicy()))
        let routeFastest = try measure(pairs) { try routes(fastestEngine, pairs) }
        let fallbackEngine = try makeEngine()
        try fallbackEngine.force("openai", .open)
        try fallbackEngine.force("anthropic", .open)
        let routeFallback = try measure(pairs) { try routes(fallbackEngine, pairs) }

        print(row("baseline: 2 lock round trips", floor, floor))
        print(row("acquire+report, 1 thread", single, floor))
        print(row("acquire+report, 1 thread, cap + rate budget", budgeted, floor) + "  (×\(String(format2: budgeted / single)) without)")
        print(row("acquire+report, 2 threads (wall / pair)", twoThreads, floor))
        print(row("route+report, primary closed", routeClosed, floor))
        print(row("route+report, fastest of 3", routeFastest, floor) + "  (×\(String(format2: routeFastest / routeClosed)) ordered)")
        print(row("route+report, 2 skipped", routeFallback, floor))
        print("pairs/s on 1 thread: \(Int(1e9 / single)); on 2 threads: \(Int(1e9 / twoThreads))")
    }

    /// Exactly `count` pairs and nothing else, for `valgrind` allocation counts.
    static func pairs(_ count: Int) throws {
        let engine = try makeEngine()
        try pairsOnOneThread(engine, count)
    }

    static func row(_ name: String, _ ns: Double, _ baseline: Double) -> String {
        let label = name + String(repeating: " ", count: max(0, 44 - name.count))
        let value = String(Int(ns.rounded())).leftPadded(6)
        return "\(label) \(value) ns   ×\(String(format2: ns / baseline)) baseline"
    }

    /// Nanoseconds per iteration of `body` running `count` iterations (best of 3).
    static func measure(_ count: Int, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<3 {
            let start = ContinuousClock.now
            try body()
            let elapsed = ContinuousClock.now - start
            best = min(best, Double(elapsed.nanosecondsClamped) / Double(count))
        }
        return best
    }

    static func lockFloor(_ count: Int) {
        let counter = Mutex(0)
        for _ in 0..<count {
            counter.withLock { $0 &+= 1 }
            counter.withLock { $0 &+= 1 }
        }
        blackHole(counter.withLock { $0 })
    }

    static func pairsOnOneThread(_ engine: Engine, _ count: Int) throws {
        let report = CallReport(outcome: .success, latency: .milliseconds(120))
        for i in 0..<count {
            guard let permit = try engine.acquire(breakers[i % 3]).permit else { fatalError("refused") }
            try engine.report(permit.id, report)
        }
    }

    static func pairsOnTwoThreads(_ engine: Engine, _ count: Int) throws {
        let half = count / 2
        let other = BenchThread { try? pairsOnOneThread(engine, half) }
        try pairsOnOneThread(engine, half)
        other.join()
    }

    static func routes(_ engine: Engine, _ count: Int) throws {
        let report = CallReport(outcome: .success, latency: .milliseconds(120))
        for _ in 0..<count {
            guard let permit = try engine.route("llm").permit else { fatalError("refused") }
            try engine.report(permit.id, report)
        }
    }
}

@inline(never) func blackHole<T>(_ value: T) { _ = value }

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }

    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        self = "\(hundredths / 100).\(String(hundredths % 100).leftPaddedZero(2))"
    }

    func leftPaddedZero(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
