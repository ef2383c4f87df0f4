import Foundation
import FuseboxWire
import Testing
import FuseboxJSON
import FuseboxSocket

/// docs/security.md items 1 to 6, each attack replayed against the real binary.
@Suite("Hostile clients: items 1–6")
struct HostileClientHighTests {
    static let budgets = """
          daily: { tokens: { budget: 1000, per: 24h } }
          minute: { tokens: { budget: 90000, per: 1m } }
          limited: { rate: { requests: 10, per: 1m }, open: { honor_retry_after: false } }
        """

    static func config(_ extra: String = "") -> String {
        SidecarProcess.config(extra).replacingOccurrences(of: "breakers:\n", with: "breakers:\n\(budgets)\n")
            .replacingOccurrences(of: "llm: [openai, anthropic, ollama]", with: "llm: [openai, anthropic, ollama]\n  budgeted: [minute, openai]")
    }

    @Test func item01_aHugeTokensUsedRecordNoLongerCrashesTheSidecar() throws {
        let sidecar = try SidecarProcess(config: Self.config())
        let client = try sidecar.connect()
        _ = try client.ok(#"{"op":"record","breaker":"daily","outcome":"success","tokens_used":1000000000}"#)
        let refused = try client.ok(#"{"op":"acquire","breaker":"daily"}"#)
        #expect(refused["allowed"] == .bool(false) && refused["reason"] == .string("tokens"))
        // Pipelined: 14,000 records of the largest tokens_used, then a route through the same budget.
        var batch = ""
        for _ in 0..<14_000 { batch += #"{"op":"record","breaker":"minute","outcome":"success","tokens_used":1000000000}"# + "\n" }
        try client.write(Array(batch.utf8))
        for _ in 0..<14_000 { _ = try #require(try client.readLine()) }
        let route = try client.ok(#"{"op":"route","chain":"budgeted","cost":1000000000}"#)
        #expect(route["breaker"] == .string("openai"))
        #expect(route["skipped"]?[0]?["reason"] == .string("tokens"))
        #expect(sidecar.process.isRunning)
    }

    @Test func item02_oneConnectionCannotTakeThePermitTableOrStallOthers() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("max_permits_per_connection: 1000"))
        let rssBefore = try ProcessProbe.residentKiB(sidecar.pid)
        let greedy = try sidecar.connect()
        let neighbour = try sidecar.connect()
        // The attacker pipelines 20,000 acquires without reporting.
        let lines = String(repeating: #"{"op":"acquire","breaker":"openai"}"# + "\n", count: 20_000)
        let writer = Thread { try? greedy.write(Array(lines.utf8)) }
        writer.start()
        for _ in 0..<200 {
            let answer = try neighbour.ok(#"{"op":"acquire","breaker":"anthropic"}"#)
            _ = try neighbour.ok(#"{"op":"report","permit":"\#(try #require(answer["permit"]?.stringValue))","outcome":"success"}"#)
        }
        // Not stalled: all 200 pairs were served while the flood still waits on its unread answers (its
        // writer is blocked). How fast they were is a benchmark's question, not a test's.
        #expect(writer.isExecuting, "the flood was still in progress when the neighbour finished")
        var granted = 0, refused = 0
        for _ in 0..<20_000 {
            let answer = try JSONParser.parse(try #require(try greedy.readLine()))
            if answer["allowed"] == .bool(true) { granted += 1 }
            if answer["error"]?["code"] == .string("overloaded") {
                refused += 1
                #expect(answer["error"]?["message"]?.stringValue?.contains("max_permits_per_connection") == true)
            }
        }
        #expect(granted == 1_000 && refused == 19_000)
        let growth = try ProcessProbe.residentKiB(sidecar.pid) - rssBefore
        #expect(growth < 32 * 1_024, "RSS grew \(growth) KiB")  // docs/security.md: the bound
        // Gone, its permits are released (in steps), and the sidecar stops at once.
        greedy.finishWriting()
        try waitUntil("the greedy connection's permits are released") {
            try neighbour.field("openai", "permits_in_flight") == .number("0")
        }
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit(timeout: 10) == 0)
    }

    @Test func item03_aForgedLineCannotOpenOrPauseForLongerThanTheCapAndResetUndoesIt() throws {
        let sidecar = try SidecarProcess(config: Self.config())
        let client = try sidecar.connect()
        _ = try client.ok(#"{"op":"record","breaker":"openai","status":503,"retry_after_ms":2592000000}"#)
        let status = try client.ok(#"{"op":"status","breaker":"openai"}"#)["breakers"]?[0]
        #expect(status?["state"] == .string("open"))
        let openFor = try RFC3339Parse.milliseconds(status?["open_until"]) - Date().timeIntervalSince1970 * 1_000
        #expect(openFor <= 2_100, "open for \(openFor) ms; the test config's backoff.max is 2s")
        // A 429 with 30 days of Retry-After pauses the rate budget for at most the cap, even unhonoured.
        _ = try client.ok(#"{"op":"record","breaker":"limited","status":429,"retry_after_ms":2592000000}"#)
        let paused = try client.ok(#"{"op":"acquire","breaker":"limited"}"#)
        #expect(paused["allowed"] == .bool(false) && paused["reason"] == .string("rate"))
        #expect(try #require(paused["retry_in_ms"]?.doubleValue) <= 2_000 + 6_000)
        // Weeks of token debt are impossible (one period at most), and reset clears pause and debt.
        for _ in 0..<100 { _ = try client.ok(#"{"op":"record","breaker":"daily","outcome":"success","tokens_used":1000000000}"#) }
        let admin = try sidecar.connect(admin: true)
        for breaker in ["openai", "limited", "daily"] { _ = try admin.ok(#"{"op":"reset","breaker":"\#(breaker)"}"#) }
        for breaker in ["openai", "limited", "daily"] {
            #expect(try client.ok(#"{"op":"acquire","breaker":"\#(breaker)"}"#)["allowed"] == .bool(true), "\(breaker)")
        }
    }

    @Test func item04_theAdminSocketHasItsOwnBudgetAndIdleConnectionsAreClosed() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("max_connections: 5\nidle_timeout: 1s"))
        var apps: [LineClient] = []
        for _ in 0..<5 {
            let app = try sidecar.connect()
            _ = try app.ok(#"{"op":"ping"}"#)
            apps.append(app)
        }
        let sixth = try sidecar.connect()
        try? sixth.write(#"{"op":"ping"}"#)
        #expect(try JSONParser.parse(try #require(try sixth.readLine()))["error"]?["code"] == .string("overloaded"))
        let ctl = try run([FuseboxBinary.url.path, "ctl", "force", "openai", "open", "--admin-socket", sidecar.adminSocket])
        #expect(ctl.status == 0, "ctl force: \(ctl.err)")
        #expect(try sidecar.connect(admin: true).state("openai") == "forced_open")
        // Idle for idle_timeout: closed; one holding a permit stays.
        let holder = try sidecar.connect(admin: true)
        _ = try holder.permit("anthropic")
        for app in apps { #expect(try app.readLine() == nil, "an idle connection is closed") }
        _ = try holder.ok(#"{"op":"ping"}"#)
    }

    @Test func item04_aFullAdminSocketSaysSoInsteadOfABrokenPipe() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("max_admin_connections: 2"))
        let held = try (0..<2).map { _ in try sidecar.connect(admin: true) }
        for admin in held { _ = try admin.ok(#"{"op":"ping"}"#) }
        let ctl = try run([FuseboxBinary.url.path, "ctl", "force", "openai", "open", "--admin-socket", sidecar.adminSocket])
        #expect(ctl.status != 0)
        #expect(ctl.err.contains("overloaded") && ctl.err.contains("max_admin_connections"), "ctl said: \(ctl.err)")
        #expect(!ctl.err.contains("Broken pipe"))
    }

    @Test func item05_anUnprivilegedHTTPFloodNeverStopsAppConnections() throws {
        let (sidecar, base) = try SidecarProcess.withHTTP("http_max_connections: 64\nhttp_header_timeout: 1s\nhttp_idle_timeout: 2s")
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        flood.arguments = asUnprivileged(["python3", "-c", Self.floodScript, base, "3000", "6"])
        try flood.run()
        defer { flood.terminate(); flood.waitUntilExit() }
        let quiet = try ProcessProbe.openDescriptors(sidecar.pid)
        try waitUntil("the flood holds HTTP connections") { try ProcessProbe.openDescriptors(sidecar.pid) >= quiet + 32 }
        var served = 0
        var highest = 0
        let deadline = Date().addingTimeInterval(4)
        while Date() < deadline {
            let app = try LineClient(path: sidecar.socket, timeout: .seconds(2))
            if (try? app.ok(#"{"op":"ping"}"#)) != nil { served += 1 }
            highest = max(highest, try ProcessProbe.openDescriptors(sidecar.pid))
            Thread.sleep(forTimeInterval: 0.05)  // pacing: an app connecting every 50 ms through the flood
        }
        #expect(served > 20, "app connections answered during the flood: \(served)")
        #expect(highest < 64 + 60, "the sidecar held \(highest) descriptors under the flood")
        #expect(flood.isRunning, "the flood ran for the whole check")
        // Half-sent headers, slowloris and idle connections are closed by the timeouts.
        let idle = try RawTCP(base)
        let halfSent = try RawTCP(base)
        halfSent.send("GET /metrics HTTP/1.1\r\nHost: x\r\n")
        let slowloris = try RawTCP(base)
        for piece in ["GET /metr", "ics HTTP", "/1.1\r\n", "X-A: 1\r\n", "X-B: 2\r\n"] {
            slowloris.send(piece)
            Thread.sleep(forTimeInterval: 0.3)  // pacing: the slowloris attack itself
        }
        #expect(halfSent.closedByServer(within: 5))
        #expect(slowloris.closedByServer(within: 5))
        #expect(idle.closedByServer(within: 5))
    }

    /// Opens and holds up to N connections for S seconds (loopback only), raising its own descriptor limit first.
    static let floodScript = """
        import resource, socket, sys, time
        base, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
        host, port = base.replace("http://", "").rsplit(":", 1)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))
        held, end = [], time.time() + seconds
        while time.time() < end:
            if len(held) < count:
                try:
                    s = socket.socket(); s.setblocking(False); s.connect_ex((host, int(port))); held.append(s)
                except OSError:
                    time.sleep(0.01)  # pacing: out of descriptors, try again shortly
            else:
                time.sleep(0.05)  # pacing: holding what it has until the end
        """

    @Test func item06_secretsAreRedactedEverywhereAndTheStoreIsPrivate() throws {
        let (sidecar, base) = try SidecarProcess.withHTTP(store: true)
        let watcher = try sidecar.connect()
        _ = try watcher.ok(#"{"op":"subscribe"}"#)
        let client = try sidecar.connect()
        let secrets = ["sk-proj-0123456789abcdefghij", "hunter2hunter2", "eyJhbGciOiJIUzI1NiJ9.payload.signature"]
        let error = "401 from upstream: Authorization: Bearer \(secrets[0]) api_key=\(secrets[1]) token: \(secrets[2])"
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"openai","status":503,"error":"\#(error)"}"#) }
        let event = try #require(try watcher.readLine())
        let breakers = try curl(base + "/v1/breakers").body
        let snapshot = try client.ok(#"{"op":"status","breaker":"openai"}"#)["breakers"]?[0]?["last_error"]?.stringValue ?? ""
        #expect(snapshot.contains(SecretRedactor.mask) && snapshot.contains("401 from upstream"))
        sidecar.signal(SIGTERM)
        _ = try sidecar.waitForExit()
        let store = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        let rows = try run(["sqlite3", store, "SELECT last_error FROM transitions; SELECT error FROM failures;"]).out
        #expect(rows.contains(SecretRedactor.mask))
        for secret in secrets {
            for (place, text) in [("subscribe", event), ("HTTP", breakers), ("status", snapshot), ("store", rows),
                                  ("log", sidecar.logLines.joined(separator: "\n"))] {
                #expect(!text.contains(secret), "\(secret) leaked through \(place)")
            }
        }
        for file in [store, store + "-wal", store + "-shm"] where FileManager.default.fileExists(atPath: file) {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
            #expect(mode == 0o600, "\(file) has mode \(String(mode, radix: 8))")
        }
        // The JSON endpoint can be turned off, leaving metrics and health.
        let (quiet, quietBase) = try SidecarProcess.withHTTP("http_json: off")
        #expect(try curl(quietBase + "/v1/breakers").status == 404)
        #expect(try curl(quietBase + "/metrics").status == 200)
        _ = quiet
    }
}
