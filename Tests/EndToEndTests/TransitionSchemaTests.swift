import Foundation
import FuseboxCore
import FuseboxJSON
import FuseboxSocket
import Testing

/// The fields of a transition, pinned once here, against every output that
/// writes one: the log line, the subscribe line, the store row and the metrics.
@Suite("One transition schema")
struct TransitionSchemaTests {
    static let fields = [
        "timestamp", "breaker", "old_state", "new_state", "reason", "failure_count", "last_error", "last_status",
        "failure_rate", "slow_call_rate", "calls_in_window", "failures_in_window", "open_until", "generation",
        "probe_outcome", "probe_latency_ms", "probe_status", "origin",
    ]

    /// A line's own fields: without what every log line has, and the subscribe line's deprecated `breaker_name`.
    static func keys(_ line: JSONValue) -> Set<String> {
        guard case .object(let members) = line else { return [] }
        return Set(members.map(\.0)).subtracting(["event", "level", "message", "service.name", "instance", "breaker_name"])
    }

    @Test func everyOutputWritesTheSameFields() throws {
        #expect(TransitionField.allCases.map(\.rawValue) == Self.fields)
        let (sidecar, base) = try SidecarProcess.withHTTP(store: true)
        let watcher = try sidecar.connect()
        _ = try watcher.ok(#"{"op":"subscribe"}"#)
        let client = try sidecar.connect()
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"openai","status":503,"error":"down"}"#) }
        let streamed = try JSONParser.parse(try #require(try watcher.readLine()))
        #expect(Self.keys(streamed) == Set(Self.fields), "subscribe line")
        #expect(streamed["event"] == .string("transition") && streamed["breaker_name"] == streamed["breaker"], "the deprecated name, until 1.0")

        try waitUntil("the transition is logged") { !sidecar.logEvents("transition").isEmpty }
        let logged = try #require(sidecar.logEvents("transition").first)
        #expect(Self.keys(logged) == Set(Self.fields), "log line")
        #expect(logged["new_state"] == streamed["new_state"] && logged["generation"] == streamed["generation"])
        #expect(logged["message"] == .string("openai: closed -> open (consecutive_failures)") && logged["level"] == .string("warn"))
        #expect(logged["service.name"] == .string("fusebox"))

        let metrics = try curl(base + "/metrics").body
        #expect(metrics.contains(#"fusebox_transitions_total{breaker="openai",from="closed",to="open",reason="consecutive_failures"} 1"#), "metrics")

        sidecar.signal(SIGTERM)
        _ = try sidecar.waitForExit()
        let store = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        let columns = try run(["sqlite3", store, "SELECT name FROM pragma_table_info('transitions')"]).out
            .split(separator: "\n").map(String.init)
        let stored = Set(Self.fields)
        #expect(stored.isSubset(of: Set(columns)), "store columns: \(columns)")
        // The first row: under load the 400 ms open period may end before SIGTERM, adding a half_open row.
        let row = try run(["sqlite3", store, "SELECT breaker, new_state, generation, last_error FROM transitions ORDER BY id LIMIT 1"]).out
        #expect(row.trimmingCharacters(in: .whitespacesAndNewlines) == "openai|open|1|down")
    }
}
