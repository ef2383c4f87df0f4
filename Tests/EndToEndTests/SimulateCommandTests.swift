import Foundation
import Testing

@Suite("fusebox simulate")
struct SimulateCommandTests {
    @Test func theReferenceRunIsDeterministicAndShowsBothStrategies() throws {
        let first = try FuseboxBinary.run(["simulate"])
        let second = try FuseboxBinary.run(["simulate"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout == second.stdout)
        #expect(first.stdout.contains("no breaker (retries)") && first.stdout.contains("breaker + fallback"))
        let json = try FuseboxBinary.run(["simulate", "--format", "json", "--seed", "5", "--arrivals", "poisson"])
        #expect(json.stdout.contains(#""strategy":"breaker""#))
        #expect(try FuseboxBinary.run(["simulate", "--format", "json", "--seed", "5", "--arrivals", "poisson"]).stdout == json.stdout)
    }

    @Test func badOptionsAreExplained() throws {
        let result = try FuseboxBinary.run(["simulate", "--outage", "forever"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--outage takes a duration"))
        let folder = try TemporaryFolder()
        let file = try folder.write("s.yaml", "providers: { openai: { faults: [ { mode: meteor } ] } }\n")
        let bad = try FuseboxBinary.run(["simulate", "--scenario", file.path])
        #expect(bad.status == 65 && bad.stderr.contains("s.yaml:1:") && bad.stderr.contains("mode must be timeout, error or slow"))
    }

    @Test func storeWritesTheSimulatedIncidentWithVirtualTimes() throws {
        let folder = try TemporaryFolder()
        let db = folder.url.appendingPathComponent("sim.db").path
        let result = try FuseboxBinary.run(["simulate", "--store", db])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try StoreDurabilityTests.sqlite(db, "SELECT count(*) FROM transitions") == "7")
        #expect(try StoreDurabilityTests.sqlite(db, "SELECT timestamp FROM transitions ORDER BY at_ms LIMIT 1").hasPrefix("2026-01-01T00:02:"))
        #expect(try StoreDurabilityTests.sqlite(db, "SELECT sum(fallbacks_in) FROM traffic WHERE breaker = 'anthropic'") == "905")
        #expect(try StoreDurabilityTests.sqlite(db, "PRAGMA integrity_check") == "ok")
    }
}
