import Foundation
import FuseboxJSON
import Testing

/// A restart on the same store: what was open stays open, to the millisecond.
@Suite("Restarts", .serialized)
struct RestartTests {
    static let config = """
        socket: ./fusebox.sock
        admin_socket: ./fusebox-admin.sock
        http: off
        store: ./fusebox.db
        instance: restart-test
        defaults:
          trip: { consecutive_failures: 3, window: off }
          open: { duration: 10m, jitter: 0 }
        breakers: { ollama: {}, openai: {} }
        """

    @Test func aBreakerOpenForTenMinutesBeforeSIGTERMIsOpenAfterTheRestartWithTheSameEnd() throws {
        let folder = try TemporaryFolder()
        _ = try folder.write("fusebox.yaml", Self.config)
        var first: SidecarProcess? = try SidecarProcess(reusing: folder)
        let client = try first!.connect()
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"ollama","status":503}"#) }
        let openUntil = try #require(try client.field("ollama", "open_until"))
        let generation = try #require(try client.field("ollama", "generation"))
        first!.signal(SIGTERM)
        #expect(try first!.waitForExit() == 0)
        first = nil

        let second = try SidecarProcess(reusing: folder)
        let again = try second.connect()
        #expect(try again.state("ollama") == "open")
        #expect(try again.field("ollama", "open_until") == openUntil)
        guard case .number(let before) = generation, case .number(let after)? = try again.field("ollama", "generation") else {
            Issue.record("no generation in status")
            return
        }
        #expect(Int(after) == Int(before)! + 1, "the generation continues")
        #expect(try again.state("openai") == "closed")
        #expect(!(try again.ok(#"{"op":"acquire","breaker":"ollama"}"#)["allowed"] == .bool(true)))
        let restored = try #require(second.logEvents("transition").first { $0["breaker"] == .string("ollama") })
        #expect(restored["reason"] == .string("restored"))
        #expect(restored["new_state"] == .string("open"))
        // The restored transition belongs to the new run: stored after the run's start, as its counters count it.
        second.signal(SIGTERM)
        #expect(try second.waitForExit() == 0)
        let store = folder.url.appendingPathComponent("fusebox.db").path
        let order = try run(["sqlite3", store, """
            SELECT (SELECT at_ms FROM transitions WHERE reason = 'restored') >= (SELECT max(started_ms) FROM runs)
            """]).out
        #expect(order.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "restored before the run's start")
    }
}
