import FuseboxSocket

#if canImport(Glibc)
import Glibc
#endif

/// `fusebox-bench scale`: how start time and memory grow with the number of
/// breakers, and how long a reload that adds breakers holds up decisions on
/// the existing ones. Each figure beside its baseline from the same run: the
/// start of a 100-breaker sidecar, and the same client's round trips before
/// the reload.
enum ScaleBench {
    static func run() throws {
        var first: (seconds: Double, rss: Int)?
        for count in [100, 1_000, 10_000] {
            let (seconds, rss) = try start(breakers: count)
            let base = first ?? (seconds, rss)
            first = base
            let perBreaker = count > 100 ? Double((rss - base.rss) * 1_024) / Double(count - 100) : 0
            print("start, \(count) breakers: \(fmt(seconds)) s to the socket (\(fmt(seconds / base.seconds))x the 100-breaker start); "
                  + "RSS \(rss / 1_024) MiB" + (count > 100 ? ", \(Int(perBreaker)) bytes per idle breaker beyond the first 100" : ""))
        }
        for (from, to) in [(1_000, 1_200), (10, 2_000)] {
            let stall = try reloadStall(from: from, to: to)
            print("reload \(from) -> \(to) breakers: longest acquire or report round trip while it applied \(fmt(stall.during * 1_000)) ms; "
                  + "before it p50 \(fmt(stall.p50 * 1_000_000)) µs, max \(fmt(stall.before * 1_000)) ms; applied in \(fmt(stall.applied)) s")
        }
    }

    static func fmt(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        return "\(hundredths / 100).\(String(repeating: "0", count: hundredths % 100 < 10 ? 1 : 0))\(hundredths % 100)"
    }

    /// Seconds from spawn to the socket appearing (the sidecar binds it once ready to decide), and RSS then.
    static func start(breakers: Int) throws -> (Double, Int) {
        let folder = try BenchFolder()
        let began = ContinuousClock.now
        let child = try SidecarChild(folder: folder, breakers: breakers, startLimit: .seconds(600))
        let seconds = (ContinuousClock.now - began).secondsDouble - 0.1  // SidecarChild waits 100 ms after the socket appears
        usleep(500_000)
        let rss = child.rssKiB()
        child.stop()
        return (seconds, rss)
    }

    struct Stall {
        var p50: Double
        var before: Double
        var during: Double
        var applied: Double
    }

    /// One client makes acquire+report round trips on b0 throughout; the
    /// configuration grows from `from` to `to` breakers and SIGHUP reloads it.
    static func reloadStall(from: Int, to: Int) throws -> Stall {
        let folder = try BenchFolder()
        let child = try SidecarChild(folder: folder, breakers: from, startLimit: .seconds(600))
        defer { child.stop() }
        let client = try LineClient(path: child.socket, timeout: .seconds(120))
        var samples: [(at: ContinuousClock.Instant, seconds: Double)] = []
        func pair() throws {
            for line in [#"{"op":"acquire","breaker":"b0"}"#, ""] {
                let started = ContinuousClock.now
                if line.isEmpty {
                    guard let permit = lastPermit else { return }
                    try client.write(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)
                } else {
                    try client.write(line)
                }
                guard let answer = try client.readLine() else { throw BenchError("closed") }
                if !line.isEmpty { lastPermit = SocketBench.permitText(answer) }
                samples.append((started, (ContinuousClock.now - started).secondsDouble))
            }
        }
        var lastPermit: String?
        let warmUp = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < warmUp { try pair() }
        let beforeCount = samples.count
        folder.write("fusebox.yaml", SidecarChild.config(folder: folder, breakers: to))
        let log = folder.path + "/fusebox.log"
        let reloaded = ContinuousClock.now
        kill(child.pid, SIGHUP)
        var applied: Double?
        let limit = reloaded + .seconds(120)
        while ContinuousClock.now < limit {
            try pair()
            if applied == nil, readText(log)?.contains("\"config_reloaded\"") == true {
                applied = (ContinuousClock.now - reloaded).secondsDouble
                let tail = ContinuousClock.now + .milliseconds(500)
                while ContinuousClock.now < tail { try pair() }
                break
            }
        }
        guard let applied else { throw BenchError("the reload was not applied within 120 s") }
        let before = samples[..<beforeCount].map(\.seconds).sorted()
        let during = samples[beforeCount...].map(\.seconds)
        return Stall(p50: before[before.count / 2], before: before.last ?? 0, during: during.max() ?? 0, applied: applied)
    }
}
