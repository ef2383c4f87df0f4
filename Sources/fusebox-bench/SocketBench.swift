import FuseboxCore
import FuseboxWire
import Synchronization

#if canImport(Glibc)
import Glibc
import FuseboxSocket
#endif

/// The real `fusebox serve` binary over its Unix socket, against a C line
/// echo and a plain SwiftNIO line echo measured in the same run with the same
/// C client, each server in its own process. Latency is a sequential
/// acquire+report pair; server CPU comes from /proc (user and system).
enum SocketBench {
    static func run(pairs: Int = 20_000, pipelineSeconds: Double = 5) throws {
        let folder = try BenchFolder()
        let tools = try SocketFloor.build(in: folder)
        print("socket benchmark: \(pairs) sequential acquire+report pairs (after 1,000 to warm up) from a C client; each server in its own process, one after another")
        var rows: [(label: String, latency: Percentiles, cpu: ProcessCPU)] = []
        func measure(_ label: String, pid: pid_t, socket: String) throws {
            let before = try ProcessCPU.of(pid)
            let latency = try SocketFloor.pairs(tools, socket: socket, pairs: pairs)
            rows.append((label, latency, try ProcessCPU.of(pid) - before))
        }
        let cSocket = folder.path + "/c-echo.sock"
        let cEcho = try ServerProcess([tools.echo, cSocket], waitingFor: cSocket)
        try measure("C line echo", pid: cEcho.pid, socket: cSocket)
        cEcho.stop()
        let nioSocket = folder.path + "/nio-echo.sock"
        let nioEcho = try ServerProcess([SidecarChild.siblingBinary("fusebox-bench"), "nio-echo", nioSocket], waitingFor: nioSocket)
        try measure("SwiftNIO line echo, 1 event loop", pid: nioEcho.pid, socket: nioSocket)
        nioEcho.stop()
        let leanFolder = try BenchFolder()
        let lean = try SidecarChild(folder: leanFolder, breakers: 3, http: false)
        try measure("fusebox, lean (http, store off; log file)", pid: lean.pid, socket: lean.socket)
        lean.stop()
        let fullFolder = try BenchFolder()
        let full = try SidecarChild(folder: fullFolder, breakers: 3, store: true)
        defer { full.stop() }
        try measure("fusebox, default (http, metrics, store, log file)", pid: full.pid, socket: full.socket)

        let roundTrips = Double((pairs + 1_000) * 2)
        let floor = rows[0].latency.p50
        let nioCPU = rows[1].cpu.user + rows[1].cpu.system
        print("server                                              pair p50    p99   ×C echo   CPU µs/round trip (user + sys)   ×NIO echo")
        for row in rows {
            let cpu = row.cpu.user + row.cpu.system
            let label = row.label + String(repeating: " ", count: max(0, 50 - row.label.count))
            print("\(label)  \(fmt(row.latency.p50))  \(fmt(row.latency.p99))    \(fmt(row.latency.p50 / floor))    \(fmt(cpu / roundTrips * 1e6)) (\(fmt(row.cpu.user / roundTrips * 1e6)) + \(fmt(row.cpu.system / roundTrips * 1e6)))          \(fmt(cpu / nioCPU))")
        }

        let cpuBefore = try ProcessCPU.of(full.pid)
        let (decisions, seconds) = try pipelined(path: full.socket, connections: 8, seconds: pipelineSeconds)
        let cpu = try ProcessCPU.of(full.pid) - cpuBefore
        print("pipelined, 8 connections (default configuration): \(Int(Double(decisions) / seconds)) decisions/s; server CPU \(fmt((cpu.user + cpu.system) / Double(decisions) * 1e6)) µs per decision")
        print("server RSS after load: \(full.rssKiB() / 1024) MiB")
    }

    /// RSS of an idle sidecar, then with 1,000 breakers and 1,000 connected clients.
    static func memory() throws {
        let folder = try BenchFolder()
        let small = try SidecarChild(folder: folder, breakers: 3)
        usleep(300_000)
        let idle = small.rssKiB()
        small.stop()
        let big = try SidecarChild(folder: folder, breakers: 1_000)
        let bigIdle = big.rssKiB()
        var clients: [LineClient] = []
        for i in 0..<1_000 {
            let client = try LineClient(path: big.socket)
            _ = try client.request(#"{"op":"acquire","breaker":"b\#(i)"}"#)
            clients.append(client)
        }
        usleep(300_000)
        let loaded = big.rssKiB()
        big.stop()
        print("memory: RSS idle (3 breakers) \(idle / 1024) MiB; 1,000 breakers \(bigIdle / 1024) MiB; + 1,000 clients each holding a permit \(loaded / 1024) MiB")
        _ = clients.count
    }

    struct Percentiles {
        var p50: Double
        var p99: Double
    }

    /// One decimal, right-aligned in six columns.
    static func fmt(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        let text = "\(tenths / 10).\(tenths % 10)"
        return String(repeating: " ", count: max(0, 6 - text.count)) + text
    }

    /// Each sample is one acquire round trip plus one report round trip, in µs per round trip.
    static func latencies(
        path: String, pairs: Int, breakers: [String] = ["openai", "anthropic", "ollama"]
    ) throws -> Percentiles {
        let client = try LineClient(path: path)
        var samples: [Double] = []
        samples.reserveCapacity(pairs * 2)
        for i in 0..<(pairs + 1_000) {  // the first 1,000 warm up
            let breaker = breakers[i % breakers.count]
            let acquire = #"{"op":"acquire","breaker":"\#(breaker)"}"#
            var start = ContinuousClock.now
            try client.write(acquire)
            guard let answer = try client.readLine() else { throw BenchError("closed") }
            var elapsed = ContinuousClock.now - start
            if i >= 1_000 { samples.append(Double(elapsed.nanosecondsClamped) / 1_000) }
            let permit = permitText(answer)
            let report = #"{"op":"report","permit":"\#(permit)","outcome":"success","latency_ms":120}"#
            start = ContinuousClock.now
            try client.write(report)
            guard try client.readLine() != nil else { throw BenchError("closed") }
            elapsed = ContinuousClock.now - start
            if i >= 1_000 { samples.append(Double(elapsed.nanosecondsClamped) / 1_000) }
        }
        samples.sort()
        return Percentiles(p50: samples[samples.count / 2], p99: samples[samples.count * 99 / 100])
    }

    static func permitText(_ answer: String) -> String {
        let marker = Array(#""permit":""#.utf8)
        let bytes = Array(answer.utf8)
        guard bytes.count > marker.count else { return "0" }
        for start in 0...(bytes.count - marker.count) where bytes[start..<start + marker.count].elementsEqual(marker) {
            let value = bytes[(start + marker.count)...].prefix { $0 != UInt8(ascii: "\"") }
            return String(decoding: value, as: UTF8.self)
        }
        return "0"
    }

    /// `connections` threads, each sending batches of 100 acquires then their 100 reports.
    static func pipelined(path: String, connections: Int, seconds: Double) throws -> (Int, Double) {
        let total = Atomic<Int>(0)
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1_000))
        let start = ContinuousClock.now
        var threads: [BenchThread] = []
        for c in 0..<connections {
            let client = UncheckedBox(try LineClient(path: path, timeout: .seconds(30)))
            threads.append(BenchThread {
                let client = client.value
                let breaker = ["openai", "anthropic", "ollama"][c % 3]
                let acquires = Array(String(repeating: #"{"op":"acquire","breaker":"\#(breaker)"}"# + "\n", count: 100).utf8)
                while ContinuousClock.now < deadline {
                    try? client.write(acquires)
                    var reports: [UInt8] = []
                    for _ in 0..<100 {
                        guard let line = try? client.readLine() else { return }
                        reports += Array(#"{"op":"report","permit":"\#(permitText(line))","outcome":"success"}"#.utf8) + [0x0A]
                    }
                    try? client.write(reports)
                    for _ in 0..<100 { _ = try? client.readLine() }
                    total.add(200, ordering: .relaxed)
                }
            })
        }
        for thread in threads { thread.join() }
        let elapsed = ContinuousClock.now - start
        return (total.load(ordering: .relaxed), elapsed.secondsDouble)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Hands a value to exactly one other thread.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
