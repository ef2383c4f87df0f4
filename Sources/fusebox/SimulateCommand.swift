import ArgumentParser
import FuseboxConfig
import FuseboxCore
import FuseboxSimulate
import FuseboxStore
import Logging

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Replay a provider outage on a virtual clock: no breaker against breaker + fallback.",
        discussion: """
        Without options it runs the reference scenario: 15 minutes at 100 requests a minute; \
        from minute 2 the primary (openai) hangs every call until the 30 s client timeout for \
        5 minutes. "No breaker" retries each request up to 3 times against the primary (2 s, \
        4 s, 8 s backoff, capped at 10 s); "breaker + fallback" routes through the real engine \
        along openai → anthropic → ollama with the default policy. Same seed, same output.

        With --rate-limit (or a provider's rate_limit in a scenario file) the primary answers \
        429 with Retry-After above that many requests a minute, and a third column runs the \
        breaker with a rate budget of the same size.

        Examples:
          fusebox simulate
          fusebox simulate --outage 10m --fault error --status 503 --format markdown
          fusebox simulate --rate 6000 --duration 1h --arrivals poisson --seed 7
          fusebox simulate --rate 900 --rate-limit 600 --outage 0s
          fusebox simulate --scenario outage.yaml --format json
          fusebox simulate --store sim.db && fusebox analyze --db sim.db
        """
    )

    @Option(help: "A YAML scenario file (see docs/simulation.md); flags override it.") var scenario: String?
    @Option(help: "Simulated time, e.g. 10m or 1h.") var duration: String?
    @Option(help: "Requests per minute.") var rate: Double?
    @Option(help: "uniform or poisson.") var arrivals: String?
    @Option(help: "Seed for arrivals, latencies and jitter.") var seed: UInt64?
    @Option(help: "Length of the primary's outage, e.g. 5m (0s for none).") var outage: String?
    @Option(help: "When the outage starts, e.g. 2m.") var outageStart: String?
    @Option(help: "timeout (calls hang), error (fast failures) or slow.") var fault: String?
    @Option(help: "HTTP status of error faults.") var status: Int?
    @Option(help: "How slow the primary's calls are under a slow fault, e.g. 5s (default 20s).") var slowLatency: String?
    @Option(help: "Retry-After sent with error faults, e.g. 30s.") var retryAfter: String?
    @Option(help: "Share of calls the fault hits, 0 to 1.") var ratio: Double?
    @Option(help: "The primary's rate limit in requests per minute (429 above it); 0 for none.") var rateLimit: Int?
    @Option(help: "table, markdown or json.") var format: String = "table"
    @Option(help: "Also write the breaker run into this Fusebox store (virtual timestamps).") var store: String?

    func run() throws {
        var s: Scenario
        do {
            s = try scenario.map { try ScenarioLoader.load(path: $0) } ?? .reference
        } catch {
            printError("fusebox simulate: \(error)")
            throw ExitCode(ExitStatus.configuration)
        }
        try apply(to: &s)
        guard let output = SimulationReport.Format(rawValue: format) else {
            throw ValidationError("--format must be table, markdown or json")
        }
        let naive = try Simulation.run(s, strategy: .naiveRetry)
        let budget = s.hasRateLimits ? [try Simulation.run(s, strategy: .breakerBudget)] : []
        let fastest = s.hasSlowdown ? [try Simulation.run(s, strategy: .breakerFastest)] : []
        let breaker: StrategyResult
        if let store {
            let clock = ManualClock(s.start)
            let writer: StoreWriter
            do {
                writer = try StoreWriter(path: store, instance: "simulate", clock: clock, logger: Logger(label: "simulate"))
                try writer.start(version: "simulate " + FuseboxVersion.current, config: SimulationReport.describe(s))
            } catch {
                printError("fusebox simulate: \(error)")
                throw ExitCode(ExitStatus.storeFailed)
            }
            breaker = try Simulation(s, strategy: .breaker, clock: clock, sink: writer).run()
            writer.stop()
        } else {
            breaker = try Simulation.run(s, strategy: .breaker)
        }
        print(SimulationReport.render(s, [naive, breaker] + budget + fastest, format: output), terminator: "")
    }

    private func apply(to s: inout Scenario) throws {
        func duration(_ text: String?, _ flag: String) throws -> Duration? {
            guard let text else { return nil }
            guard let value = DurationText.parse(text) else { throw ValidationError("\(flag) takes a duration such as 30s or 5m") }
            return value
        }
        if let d = try duration(self.duration, "--duration") { s.duration = d }
        if let rate {
            guard rate > 0 else { throw ValidationError("--rate must be above 0") }
            s.rate = rate / 60
        }
        if let arrivals {
            guard let value = Scenario.Arrivals(rawValue: arrivals) else { throw ValidationError("--arrivals must be uniform or poisson") }
            s.arrivals = value
        }
        if let seed { s.seed = seed }
        if let rateLimit, let index = s.providers.firstIndex(where: { $0.name == s.primary }) {
            guard rateLimit >= 0 else { throw ValidationError("--rate-limit must be 0 (none) or more") }
            s.providers[index].rateLimit = rateLimit == 0 ? nil : rateLimit
        }
        let touchesFault = outage != nil || outageStart != nil || fault != nil || status != nil || retryAfter != nil || ratio != nil
            || slowLatency != nil
        guard touchesFault, let index = s.providers.firstIndex(where: { $0.name == s.primary }) else { return }
        var window = s.providers[index].faults.first ?? FaultWindow(start: .seconds(120), length: .seconds(300), mode: .timeout)
        if let d = try duration(outage, "--outage") { window.length = d }
        if let d = try duration(outageStart, "--outage-start") { window.start = d }
        if let ratio {
            guard ratio > 0, ratio <= 1 else { throw ValidationError("--ratio must be above 0 and at most 1") }
            window.ratio = ratio
        }
        let after = try duration(retryAfter, "--retry-after")
        let slow = try duration(slowLatency, "--slow-latency")
        switch fault ?? (status != nil || after != nil ? "error" : slow != nil ? "slow" : nil) {
        case nil: break
        case "timeout": window.mode = .timeout
        case "error": window.mode = .error(status: status ?? 503, retryAfter: after)
        case "slow": window.mode = .slow(slow ?? .seconds(20))
        default: throw ValidationError("--fault must be timeout, error or slow")
        }
        s.providers[index].faults = window.length > .zero ? [window] : []
    }
}
