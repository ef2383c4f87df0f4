import Foundation
import FuseboxCore
import FuseboxStore
import Logging

/// Builds a store with a known history by driving the real engine on a
/// manual clock, with the real store writer recording it.
final class StoreHistory {
    let folder: URL
    let clock: ManualClock
    private var stores: [String: (StoreWriter, Engine)] = [:]
    /// openai's budgets in engines made from now on.
    var openaiBudget = BudgetPolicy()
    static let start = Timestamp(rfc3339: "2026-03-01T10:00:00Z")!

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("fusebox-analyze-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        clock = ManualClock(Self.start)
    }

    deinit { try? FileManager.default.removeItem(at: folder) }

    func path(_ instance: String) -> String { folder.appendingPathComponent("\(instance).db").path }

    /// The engine of `instance` (a store of its own), created on first use.
    func engine(_ instance: String = "host-a") throws -> Engine {
        if let (_, engine) = stores[instance] { return engine }
        let writer = try StoreWriter(path: path(instance), instance: instance, clock: clock, logger: Logger(label: "test"))
        try writer.start(version: "test", config: "chains: {}\n")
        var policy = BreakerPolicy()
        policy.open.jitter = 0
        policy.open.duration = .seconds(30)
        policy.trip.window = nil
        let engine = try Engine(
            configuration: EngineConfiguration(
                breakers: ["openai", "anthropic", "ollama"].map { name in
                    var own = policy
                    if name == "openai" { own.budget = openaiBudget }
                    return BreakerDefinition(name: name, policy: own)
                },
                chains: [ChainDefinition(name: "llm", breakers: ["openai", "anthropic", "ollama"])]
            ),
            clock: clock, sink: writer, seed: 3
        )
        stores[instance] = (writer, engine)
        return engine
    }

    func at(_ offset: Duration) { clock.set(Self.start + offset) }

    /// `count` calls routed along the chain, each reported as `report` if it
    /// landed on `failing`, else as a success.
    func traffic(_ instance: String = "host-a", count: Int, every: Duration = .seconds(1), failing: String? = nil, report: CallReport = CallReport(status: 503, error: "unavailable")) throws {
        let engine = try self.engine(instance)
        for _ in 0..<count {
            let route = try engine.route("llm")
            if let permit = route.permit {
                try engine.report(permit.id, route.breaker == failing ? report : .success(latency: .milliseconds(200)))
            }
            clock.advance(by: every)
            engine.tick()
        }
    }

    func finish() {
        for (writer, _) in stores.values { writer.stop() }
    }

    /// Epoch milliseconds of `start + offset`.
    static func ms(_ offset: Duration) -> Int64 { (start + offset).milliseconds }
}
