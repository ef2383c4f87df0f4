import Foundation
import FuseboxJSON
import Testing

/// The metrics an operator's alerts and dashboard read, from a live sidecar.
@Suite struct SignalsTests {
    static let config = SidecarProcess.config("""
    http: 127.0.0.1:0
    """).replacingOccurrences(of: "http: off\n", with: "")
        .replacingOccurrences(of: "  ollama: {}", with: "  ollama: { max_in_flight: 3, queue: { max: 5, timeout: 1s }, rate: { requests: 100, per: 1m } }")

    static func scrape(_ sidecar: SidecarProcess) throws -> String {
        try waitUntil("HTTP listens") { !sidecar.logEvents("http_listening").isEmpty }
        guard case .string(let address)? = sidecar.logEvents("http_listening").first?["address"] else { throw Timeout(description: "no address") }
        return try curl("http://\(address)/metrics").body
    }

    @Test func seriesExistBeforeTheirFirstEventAndRatiosSayWhenTheyMeanNothingYet() throws {
        let sidecar = try SidecarProcess(config: Self.config)
        let before = try Self.scrape(sidecar)
        for line in [
            #"fusebox_transitions_total{breaker="openai",from="closed",to="open",reason="slow_call_rate"} 0"#,
            #"fusebox_transitions_total{breaker="openai",from="half_open",to="closed",reason="probe_succeeded"} 0"#,
            #"fusebox_fallbacks_total{chain="llm",from="openai",to="ollama"} 0"#,
            #"fusebox_route_exhausted_total{chain="llm",reason="open"} 0"#,
            #"fusebox_not_permitted_total{breaker="openai",reason="rate"} 0"#,
            #"fusebox_client_fail_open_total 0"#,
            #"fusebox_failure_ratio{breaker="openai"} -1.0"#,
            #"fusebox_window_calls{breaker="openai"} 0.0"#,
            #"fusebox_max_in_flight{breaker="ollama"} 3.0"#,
            #"fusebox_queue_max{breaker="ollama"} 5.0"#,
            #"fusebox_rate_capacity{breaker="ollama"} 100.0"#,
        ] {
            #expect(before.contains(line + "\n"), "missing: \(line)")
        }
        #expect(!before.contains(#"fusebox_max_in_flight{breaker="openai"}"#), "no cap, no cap gauge")
        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds"] {
            #expect(before.contains("\n\(name) "), "missing \(name)")
        }
    }

    @Test func reasonsOutcomesAndClientsFailOpensAreCounted() throws {
        let sidecar = try SidecarProcess(config: Self.config)
        let client = try sidecar.connect()
        _ = try client.ok(#"{"op":"hello","protocol":1,"fail_open":7}"#)
        let permit = try client.permit("openai")
        _ = try client.ok(#"{"op":"report","permit":"\#(permit)","outcome":"timeout","latency_ms":30000,"ttfb_ms":120}"#)
        for _ in 0..<2 { _ = try client.ok(#"{"op":"record","breaker":"openai","status":503}"#) }
        _ = try client.ok(#"{"op":"acquire","breaker":"openai"}"#)  // refused: open
        _ = try client.ok(#"{"op":"route","chain":"llm","exclude":["anthropic","ollama"]}"#)  // openai open: nowhere
        _ = try client.ok(#"{"op":"route","chain":"llm","exclude":["openai","anthropic","ollama"]}"#)
        let after = try Self.scrape(sidecar)
        for line in [
            #"fusebox_client_fail_open_total 7"#,
            #"fusebox_time_to_first_byte_seconds_count{breaker="openai"} 1"#,
            #"fusebox_call_duration_seconds_count{breaker="openai",outcome="timeout"} 1"#,
            #"fusebox_call_duration_seconds_count{breaker="openai",outcome="success"} 0"#,
            #"fusebox_transitions_total{breaker="openai",from="closed",to="open",reason="consecutive_failures"} 1"#,
            #"fusebox_not_permitted_total{breaker="openai",reason="open"} 2"#,
            #"fusebox_routes_total{chain="llm"} 2"#,
            #"fusebox_route_exhausted_total{chain="llm",reason="open"} 1"#,
            #"fusebox_route_exhausted_total{chain="llm",reason="excluded"} 1"#,
            #"fusebox_request_duration_seconds_count{op="route"} 2"#,
        ] {
            #expect(after.contains(line + "\n"), "missing: \(line)")
        }
    }
}
