import FuseboxWire

#if canImport(Glibc)
import Glibc
import FuseboxSocket
#endif

/// What budgets cost a decision, and whether a full queue on one breaker
/// slows anyone else: each figure beside one measured in the same run.
enum BudgetBench {
    static let budgets = "defaults: { max_in_flight: 100000, rate: { requests: 1000000000, per: 1s } }"

    static func run(roundTrips: Int = 20_000, pipelineSeconds: Double = 4, rounds: Int = 3) throws {
        print("budget benchmark: \(roundTrips) acquire+report pairs and \(pipelineSeconds) s pipelined (8 connections), \(rounds) alternating rounds")
        print("with budgets: \(budgets) (checked on every decision, never refusing)")
        var plain: [(SocketBench.Percentiles, Double)] = []
        var budgeted: [(SocketBench.Percentiles, Double)] = []
        for _ in 0..<rounds {
            plain.append(try measure(extraConfig: "", roundTrips: roundTrips, seconds: pipelineSeconds))
            budgeted.append(try measure(extraConfig: budgets, roundTrips: roundTrips, seconds: pipelineSeconds))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let p50 = (median(plain.map(\.0.p50)), median(budgeted.map(\.0.p50)))
        let p99 = (median(plain.map(\.0.p99)), median(budgeted.map(\.0.p99)))
        let rate = (median(plain.map(\.1)), median(budgeted.map(\.1)))
        print("                        no budgets   budgets   ratio")
        print("round trip p50 (µs)       \(SocketBench.fmt(p50.0))    \(SocketBench.fmt(p50.1))  \(ratio(p50.1 / p50.0))")
        print("round trip p99 (µs)       \(SocketBench.fmt(p99.0))    \(SocketBench.fmt(p99.1))  \(ratio(p99.1 / p99.0))")
        print("pipelined decisions/s    \(Int(rate.0))    \(Int(rate.1))  \(ratio(rate.1 / rate.0))")
        try queueIsolation(roundTrips: roundTrips)
    }

    /// Two decimals.
    static func ratio(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }

    static func measure(extraConfig: String, roundTrips: Int, seconds: Double) throws -> (SocketBench.Percentiles, Double) {
        let folder = try BenchFolder()
        let sidecar = try SidecarChild(folder: folder, breakers: 3, extraConfig: extraConfig)
        defer { sidecar.stop() }
        let latency = try SocketBench.latencies(path: sidecar.socket, pairs: roundTrips)
        let (decisions, elapsed) = try SocketBench.pipelined(path: sidecar.socket, connections: 8, seconds: seconds)
        return (latency, Double(decisions) / elapsed)
    }

    /// openai is capped at one permit with a long queue: one client holds the
    /// permit and 500 others wait. anthropic's round trips are timed before
    /// and while they wait.
    static func queueIsolation(roundTrips: Int) throws {
        let folder = try BenchFolder()
        let sidecar = try SidecarChild(
            folder: folder, breakers: 3, extraConfig: "defaults: { max_in_flight: 1, queue: { max: 1000, timeout: 1h } }"
        )
        defer { sidecar.stop() }
        let before = try SocketBench.latencies(path: sidecar.socket, pairs: roundTrips, breakers: ["anthropic"])
        let holder = try LineClient(path: sidecar.socket)
        _ = try holder.request(#"{"op":"acquire","breaker":"openai"}"#)
        var waiting: [LineClient] = []
        for _ in 0..<500 {
            let client = try LineClient(path: sidecar.socket)
            try client.write(#"{"op":"acquire","breaker":"openai"}"#)
            waiting.append(client)
        }
        usleep(300_000)  // let the server read them all
        let status = try holder.request(#"{"op":"status","breaker":"openai"}"#)
        guard case .array(let snapshots)? = status["breakers"], snapshots.first?["queued"] == .number("500") else {
            throw BenchError("openai's queue did not fill: \(status)")
        }
        let during = try SocketBench.latencies(path: sidecar.socket, pairs: roundTrips, breakers: ["anthropic"])
        print("queue isolation: openai has 500 acquires queued behind one held permit")
        print("anthropic round trip (µs)   p50      p99")
        print("openai queue empty        \(SocketBench.fmt(before.p50))  \(SocketBench.fmt(before.p99))")
        print("openai queue full (500)   \(SocketBench.fmt(during.p50))  \(SocketBench.fmt(during.p99))")
        print("ratio                       \(ratio(during.p50 / before.p50))    \(ratio(during.p99 / before.p99))")
        _ = waiting.count
    }
}
