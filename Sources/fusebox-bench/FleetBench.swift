import FuseboxCore
import FuseboxJSON
import Synchronization

#if canImport(Glibc)
import Glibc
import FuseboxSocket
#endif

/// Fleet mode at scale, against the PostgreSQL that `scripts/postgres` starts
/// (FUSEBOX_TEST_POSTGRES): the socket path with fleet on against fleet off,
/// then N sidecars (50 by default) for propagation, PostgreSQL's connections
/// and CPU, and one shipper's throughput on a day of history.
///
///   scripts/postgres .build/release/fusebox-bench fleet [N]
enum FleetBench {
    static func run(sidecars count: Int) throws {
        guard let url = getenv("FUSEBOX_TEST_POSTGRES").map({ String(cString: $0) }) else {
            throw BenchError("fusebox-bench fleet needs a PostgreSQL: run it as scripts/postgres .build/release/fusebox-bench fleet")
        }
        // The fleet's secret, inherited by every sidecar started here (a caller's own is kept).
        setenv("FUSEBOX_FLEET_SECRET", (0..<6).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined(separator: "-"), 0)
        let fleetYAML = { (name: String) in "fleet: { postgres: \"\(url)\", name: \(name) }\ninstance: \(name)-host\n" }

        // 1. The decision path: acquire+report pairs from the C client, fleet off then on (a shared breaker,
        // never tripping), over the C line echo in its own process as the floor (as `fusebox-bench socket`).
        let pairs = 20_000
        let folder = try BenchFolder()
        let tools = try SocketFloor.build(in: folder)
        let echoSocket = folder.path + "/c-echo.sock"
        let echo = try ServerProcess([tools.echo, echoSocket], waitingFor: echoSocket)
        let floor = try SocketFloor.pairs(tools, socket: echoSocket, pairs: pairs)
        echo.stop()
        var rows: [(String, SocketBench.Percentiles)] = [("C line echo (floor)", floor)]
        for (label, extra) in [("fleet off", ""), ("fleet on", fleetYAML("benchsocket")), ("fleet off (again)", ""),
                               ("fleet on (again)", fleetYAML("benchsocket"))] {
            let childFolder = try BenchFolder()
            try withExtendedLifetime(childFolder) {
                let child = try SidecarChild(folder: childFolder, breakers: 3, store: true, extraConfig: extra)
                defer { child.stop() }
                usleep(500_000)
                rows.append((label, try SocketFloor.pairs(tools, socket: child.socket, pairs: pairs)))
            }
        }
        say("socket path, \(pairs) sequential acquire+report pairs from a C client (µs)   p50      p99   ×C echo")
        for (label, value) in rows {
            say("  \(label.padding(toLength: 44, withPad: " ", startingAt: 0)) \(SocketBench.fmt(value.p50))  \(SocketBench.fmt(value.p99))   \(SocketBench.fmt(value.p50 / floor.p50))")
        }
        let off = (rows[1].1.p50 + rows[3].1.p50) / 2, on = (rows[2].1.p50 + rows[4].1.p50) / 2
        say("  fleet on / fleet off, p50: \(SocketBench.fmt(on / off))")

        // 2. N sidecars of one fleet.
        let name = "scale\(getpid())"
        var members: [(folder: BenchFolder, child: SidecarChild)] = []
        let idleBefore = postgresCPU()
        let started = ContinuousClock.now
        for _ in 0..<count {
            let memberFolder = try BenchFolder()
            let child = try SidecarChild(folder: memberFolder, breakers: 3, store: true, extraConfig: fleetYAML(name) + "defaults: { trip: { consecutive_failures: 2, window: off }, open: { duration: 60s, jitter: 0 }, max_transitions_per_minute: off }\n")
            members.append((memberFolder, child))
        }
        defer { for member in members { member.child.stop() } }
        while (Int(psql(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = ''")) ?? 0) < count * 2,
              ContinuousClock.now - started < .seconds(120) {
            usleep(200_000)
        }
        let connections = psql(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        say("\n\(count) sidecars started and connected in \(ContinuousClock.now - started); PostgreSQL connections: \(connections)")

        let idleStart = postgresCPU(), idleClock = ContinuousClock.now
        sleep(10)
        let idleCPU = (postgresCPU() - idleStart) / (ContinuousClock.now - idleClock).secondsDouble
        say("PostgreSQL CPU with \(count) idle sidecars: \(SocketBench.fmt(idleCPU * 100)) % of one core (before they started: \(SocketBench.fmt(idleBefore)) s total)")

        // Propagation: subscribers on every peer, 20 trips on the first sidecar, a fleet-wide reset between.
        let events = Mutex<[Int: [JSONValue]]>([:])
        var subscribers: [LineClient] = []
        var threads: [BenchThread] = []
        for (index, member) in members.enumerated() {
            let client = try LineClient(path: member.child.socket, timeout: .seconds(60))
            try client.write(#"{"op":"subscribe","events":["transition"]}"#)
            _ = try client.readLine()
            subscribers.append(client)
            threads.append(BenchThread {
                while let line = try? client.readLine(), let value = try? JSONParser.parse(line) {
                    events.withLock { $0[index, default: []].append(value) }
                }
            })
        }
        let origin = try LineClient(path: members[0].child.socket)
        let admin = try LineClient(path: members[0].folder.path + "/fusebox-admin.sock")
        var delays: [Double] = []
        let busyStart = postgresCPU(), busyClock = ContinuousClock.now
        for _ in 0..<20 {
            events.withLock { $0.removeAll() }
            for _ in 0..<2 { _ = try origin.request(#"{"op":"record","breaker":"openai","outcome":"failure"}"#) }
            let deadline = ContinuousClock.now + .seconds(10)
            var opened: [Int: Double] = [:]
            while opened.count < count, ContinuousClock.now < deadline {
                events.withLock { all in
                    for (index, list) in all where opened[index] == nil {
                        if let event = list.first(where: { $0["new_state"] == .string("open") }), case .string(let stamp)? = event["timestamp"],
                           let at = Timestamp(rfc3339: stamp) {
                            opened[index] = Double(at.nanoseconds) / 1e6
                        }
                    }
                }
                usleep(2_000)
            }
            if let first = opened[0] { for (index, at) in opened where index != 0 { delays.append(at - first) } }
            _ = try admin.request(#"{"op":"reset","breaker":"openai"}"#)
            usleep(300_000)
        }
        let busyCPU = (postgresCPU() - busyStart) / (ContinuousClock.now - busyClock).secondsDouble
        delays.sort()
        let p50 = delays.isEmpty ? .nan : delays[delays.count / 2], p99 = delays.isEmpty ? .nan : delays[delays.count * 99 / 100]
        say("propagation over \(delays.count) peer openings (of \(20 * (count - 1))): p50 \(SocketBench.fmt(p50)) ms, p99 \(SocketBench.fmt(p99)) ms, max \(SocketBench.fmt(delays.last ?? .nan)) ms")
        say("PostgreSQL CPU during the 20 trips and resets: \(SocketBench.fmt(busyCPU * 100)) % of one core")
        for client in subscribers { client.finishWriting() }

        // 3. One shipper on a day of history (20 breakers: ~170k traffic buckets, ~36k transitions).
        let history = try BenchFolder()
        try AnalyzeBench.build(history.path + "/fusebox.db", breakers: 20, days: 1)
        let local = Int(sqliteCount(history.path + "/fusebox.db")) ?? 0
        let shipStart = ContinuousClock.now
        let shipper = try SidecarChild(folder: history, breakers: 3, store: true, extraConfig: "fleet: { postgres: \"\(url)\", name: ship\(getpid()), ship_interval: 100ms, retention: off }\ninstance: bench\nretention: off\n")
        defer { shipper.stop() }
        var shipped = 0
        while shipped < local, ContinuousClock.now - shipStart < .seconds(600) {
            usleep(250_000)
            shipped = Int(psql(url, "SELECT (SELECT count(*) FROM history_traffic WHERE fleet = 'ship\(getpid())') + (SELECT count(*) FROM history_transitions WHERE fleet = 'ship\(getpid())')")) ?? 0
        }
        let seconds = (ContinuousClock.now - shipStart).secondsDouble
        withExtendedLifetime(history) {}
        say("shipper: \(shipped) of \(local) rows in \(SocketBench.fmt(seconds)) s = \(Int(Double(shipped) / seconds)) rows/s (one sidecar, batches of 500)")
        _ = threads.count
        withExtendedLifetime(members) {}
    }

    /// A line at once, even into a pipe (a long run shows its progress).
    static func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    /// One value from psql.
    static func psql(_ url: String, _ sql: String) -> String {
        let bin = getenv("FUSEBOX_TEST_PGBIN").map { String(cString: $0) } ?? "/usr/bin"
        return shell("'\(bin)/psql' '\(url)' -XAtc \"\(sql)\"")
    }

    static func sqliteCount(_ path: String) -> String {
        shell("sqlite3 '\(path)' 'SELECT (SELECT count(*) FROM traffic) + (SELECT count(*) FROM transitions)'")
    }

    static func shell(_ command: String) -> String {
        guard let pipe = popen(command, "r") else { return "" }
        defer { pclose(pipe) }
        var out = ""
        var buffer = [CChar](repeating: 0, count: 4_096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil { out += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        while let last = out.last, last.isWhitespace { out.removeLast() }
        return out
    }

    /// CPU seconds of every process named postgres.
    static func postgresCPU() -> Double {
        var total = 0.0
        guard let directory = opendir("/proc") else { return 0 }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard Int(name) != nil, let stat = readText("/proc/\(name)/stat"), stat.contains("(postgres)"),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) {
                total += (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        return total
    }
}
