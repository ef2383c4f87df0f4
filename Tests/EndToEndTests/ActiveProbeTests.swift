import Foundation
import FuseboxJSON
import FuseboxSocket
import Testing

/// Active probes against real HTTP servers on loopback: the sidecar tests a
/// provider itself when an open period ends, and no user is the probe.
@Suite("Active health probes", .serialized)
struct ActiveProbeTests {
    static func config(stub: ProviderStub, probe: String = "", store: Bool = false, extra: String = "") -> String {
        """
        socket: ./fusebox.sock
        admin_socket: ./fusebox-admin.sock
        http: off
        store: \(store ? "./fusebox.db" : "off")
        instance: e2e
        defaults:
          trip: { consecutive_failures: 3, window: off }
          open: { duration: 1s, jitter: 0, backoff: { multiplier: 2, max: 8s } }
          half_open: { max_wait: 5s }
        breakers:
          openai:
            probe:
              http: { url: "\(stub.base)/v1/models", timeout: 500ms\(probe) }
        \(extra)
        """
    }

    /// Opens `breaker` with three reported failures (the user calls themselves are not made here).
    static func trip(_ client: LineClient, _ breaker: String = "openai") throws {
        for _ in 0..<3 {
            let permit = try client.permit(breaker)
            _ = try client.ok(#"{"op":"report","permit":"\#(permit)","status":503}"#)
        }
    }

    static func transitions(_ sidecar: SidecarProcess) -> [JSONValue] { sidecar.logEvents("transition") }

    static func milliseconds(_ line: JSONValue) throws -> Double {
        guard case .string(let text)? = line["timestamp"] else { throw Timeout(description: "no timestamp in \(line)") }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = formatter.date(from: text) else { throw Timeout(description: "bad timestamp \(text)") }
        return date.timeIntervalSince1970 * 1_000
    }

    @Test func aBreakerWithNoUsersRecoversByItsOwnProbeWithinTheOpenPeriodAndOneProbeTimeout() throws {
        let stub = try ProviderStub(status: 503)
        let sidecar = try SidecarProcess(config: Self.config(stub: stub))
        let client = try sidecar.connect()
        try Self.trip(client)
        // First attempt: the provider is still down; the probe fails and the breaker reopens, backed off.
        try waitUntil("the first probe fails", timeout: 5) {
            Self.transitions(sidecar).contains { $0["reason"] == .string("probe_failed") }
        }
        #expect(try stub.requests() == 1)
        try stub.control(status: 200)
        try waitUntil("the breaker closes", timeout: 6) { Self.transitions(sidecar).count >= 5 }
        let lines = Self.transitions(sidecar)
        try #require(lines.count == 5)
        let reasons = lines.map { $0["reason"] }
        #expect(reasons == [
            .string("consecutive_failures"), .string("open_elapsed"), .string("probe_failed"),
            .string("open_elapsed"), .string("probe_succeeded"),
        ])
        // One probe per attempt, and no acquire was made after the trip.
        #expect(try stub.requests() == 2)
        // The reopening waited twice the open period (backoff); the close came within that period plus one probe timeout.
        let reopened = try Self.milliseconds(lines[2])
        let closed = try Self.milliseconds(lines[4])
        #expect(closed - reopened <= 2_000 + 500)
        #expect(closed - reopened >= 2_000)
        #expect(lines[2]["probe_outcome"] == .string("failure") && lines[2]["probe_status"] == .number("503"))
        #expect(lines[4]["probe_outcome"] == .string("success") && lines[4]["probe_status"] == .number("200"))
        guard case .number(let latency)? = lines[4]["probe_latency_ms"], let ms = Int(latency) else {
            Issue.record("no probe latency in \(lines[4])")
            return
        }
        #expect(ms >= 0 && ms < 500)
    }

    @Test func usersAreRefusedWhileTheSidecarProbesAndNoneIsEverTheProbe() throws {
        let stub = try ProviderStub(status: 503, delayMs: 200)
        let sidecar = try SidecarProcess(config: Self.config(stub: stub))
        let client = try sidecar.connect()
        try Self.trip(client)
        try stub.control(status: 200)
        var probes = 0
        var refusedHalfOpen = 0
        let deadline = Date().addingTimeInterval(6)
        while Date() < deadline {
            let answer = try client.ok(#"{"op":"acquire","breaker":"openai"}"#)
            if answer["probe"] == .bool(true) { probes += 1 }
            if answer["allowed"] == .bool(false), answer["state"] == .string("half_open") { refusedHalfOpen += 1 }
            if answer["allowed"] == .bool(true) {
                if case .string(let permit)? = answer["permit"] { _ = try client.ok(#"{"op":"report","permit":"\#(permit)","status":200}"#) }
                if answer["state"] == .string("closed") { break }
            }
            Thread.sleep(forTimeInterval: 0.01)  // pacing: users asking through the probe, every 10 ms
        }
        #expect(probes == 0)
        #expect(refusedHalfOpen > 0, "users asked during the 200 ms probe and were refused")
        #expect(try client.state("openai") == "closed")
        #expect(try stub.requests() == 1)
    }

    @Test func aProbeThatHangsIsCutOffAtItsTimeoutAndReopensWithBackoff() throws {
        let stub = try ProviderStub()
        try stub.control(hang: true)
        let sidecar = try SidecarProcess(config: Self.config(stub: stub))
        let client = try sidecar.connect()
        try Self.trip(client)
        try waitUntil("the probe times out", timeout: 5) {
            Self.transitions(sidecar).contains { $0["reason"] == .string("probe_timeout") }
        }
        let line = try #require(Self.transitions(sidecar).first { $0["reason"] == .string("probe_timeout") })
        #expect(line["probe_outcome"] == .string("timeout"))
        guard case .number(let latency)? = line["probe_latency_ms"], let ms = Int(latency) else {
            Issue.record("no latency in \(line)")
            return
        }
        // The stub never answers: a probe_timeout at all is the cut; no wall-clock ceiling (that is a benchmark's).
        #expect(ms >= 500, "not before the 500 ms timeout: \(ms) ms")
        // Backed off: the second open period is twice the first.
        let opened = try Self.milliseconds(line)
        guard case .string(let untilText)? = line["open_until"] else {
            Issue.record("no open_until")
            return
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let until = try #require(formatter.date(from: untilText)).timeIntervalSince1970 * 1_000
        #expect(abs((until - opened) - 2_000) < 50)
    }

    @Test func aProbeAnswered401CountsAsAFailureWithItsStatusRecorded() throws {
        let stub = try ProviderStub(status: 401)
        let sidecar = try SidecarProcess(config: Self.config(stub: stub, store: true))
        let client = try sidecar.connect()
        try Self.trip(client)
        try waitUntil("the probe fails", timeout: 5) {
            Self.transitions(sidecar).contains { $0["reason"] == .string("probe_failed") }
        }
        let line = try #require(Self.transitions(sidecar).first { $0["reason"] == .string("probe_failed") })
        #expect(line["probe_status"] == .number("401") && line["last_status"] == .number("401"))
        #expect(line["probe_outcome"] == .string("failure"))
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit() == 0)
        // The store row and analyze show it too.
        let store = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        let rows = try run(["sqlite3", store, "SELECT reason, probe_outcome, probe_status FROM transitions WHERE reason = 'probe_failed'"])
        #expect(rows.out.contains("probe_failed|failure|401"))
        let report = try FuseboxBinary.run(["analyze", "--db", store, "--format", "text"])
        #expect(report.stdout.contains("probe failure: 401"), "analyze shows the probe: \(report.stdout)")
    }

    @Test func aDeadIdleFallbackIsFoundByItsClosedIntervalProbe() throws {
        let stub = try ProviderStub(status: 500)
        let sidecar = try SidecarProcess(config: Self.config(stub: stub, probe: "", extra: "") .replacingOccurrences(
            of: "timeout: 500ms }", with: "timeout: 500ms }\n      closed_interval: 1s"))
        let client = try sidecar.connect()
        try waitUntil("the closed check opens the breaker", timeout: 5) { try client.state("openai") == "open" }
        let line = try #require(Self.transitions(sidecar).first)
        #expect(line["reason"] == .string("probe") && line["old_state"] == .string("closed"))
        #expect(line["probe_status"] == .number("500"))
    }

    @Test func aSecretHeaderReachesTheProviderAndNoLogCheckOutputOrStoreRow() throws {
        let secret = "sk-test-\(UUID().uuidString)"
        let stub = try ProviderStub(status: 401)
        let config = Self.config(
            stub: stub, probe: #", headers: { Authorization: "Bearer ${FUSEBOX_TEST_KEY}" }"#, store: true
        ).replacingOccurrences(of: "http: off", with: "http: 127.0.0.1:0")
        let sidecar = try SidecarProcess(config: config, environment: ["FUSEBOX_TEST_KEY": secret])
        let client = try sidecar.connect()
        try Self.trip(client)
        try waitUntil("the probe fails", timeout: 5) {
            Self.transitions(sidecar).contains { $0["reason"] == .string("probe_failed") }
        }
        // It was sent…
        guard case .array(let seen)? = try stub.stats()["authorization"] else {
            Issue.record("the stub saw no Authorization header")
            return
        }
        #expect(seen == [.string("Bearer \(secret)")])
        // …and shows nowhere else.
        let check = try FuseboxBinary.run(
            ["check", "--config", sidecar.configFile.path], in: sidecar.folder.url, environment: ["FUSEBOX_TEST_KEY": secret]
        )
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("${FUSEBOX_TEST_KEY}"))
        let status = try client.ok(#"{"op":"status","breaker":"openai"}"#)
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit() == 0)
        let dump = try run(["sqlite3", sidecar.folder.url.appendingPathComponent("fusebox.db").path, ".dump"])
        #expect(dump.status == 0 && dump.out.contains("probe_failed"))
        for (what, text) in [
            ("log", sidecar.logLines.joined(separator: "\n")), ("stderr", sidecar.standardError), ("check", check.stdout + check.stderr),
            ("store", dump.out), ("status", "\(status)"),
        ] {
            #expect(!text.contains(secret), "the secret shows in the \(what)")
        }
    }

    @Test func aMissingVariableIsRefusedByNameNeverByValue() throws {
        let stub = try ProviderStub()
        let folder = try TemporaryFolder()
        let file = try folder.write("fusebox.yaml", Self.config(stub: stub, probe: #", headers: { Authorization: "Bearer ${FUSEBOX_UNSET_KEY}" }"#))
        let check = try FuseboxBinary.run(["check", "--config", file.path])
        #expect(check.status == 65)
        #expect(check.stderr.contains("${FUSEBOX_UNSET_KEY}, which is not set in the environment"), "\(check.stderr)")
    }
}
