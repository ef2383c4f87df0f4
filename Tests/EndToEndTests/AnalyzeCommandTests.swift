import Foundation
import FuseboxWire
import Testing
import FuseboxJSON

@Suite("fusebox analyze")
struct AnalyzeCommandTests {
    /// A store holding the simulated reference outage.
    static func simulatedStore(_ folder: TemporaryFolder) throws -> String {
        let db = folder.url.appendingPathComponent("sim.db").path
        let result = try FuseboxBinary.run(["simulate", "--store", db])
        #expect(result.status == 0)
        return db
    }

    @Test func theSimulatedIncidentShowsInEveryFormat() throws {
        let folder = try TemporaryFolder()
        let db = try Self.simulatedStore(folder)
        let text = try FuseboxBinary.run(["analyze", "--db", db])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("incidents: 1") && text.stdout.contains("openai → anthropic served 905"))
        #expect(!text.stdout.contains("\u{1B}["))  // not a terminal: no colour
        let json = try FuseboxBinary.run(["analyze", "--db", db, "--format", "json"])
        let report = try JSONParser.parse(json.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["schema"] == .string("fusebox.analyze/v1"))
        guard case .array(let incidents)? = report["incidents"] else { Issue.record("no incidents"); return }
        #expect(incidents.count == 1)
        #expect(try FuseboxBinary.run(["analyze", "--db", db, "--format", "markdown"]).stdout.hasPrefix("# Incident report"))
        let html = folder.url.appendingPathComponent("report.html").path
        let page = try FuseboxBinary.run(["analyze", "--db", db, "--format", "html", "--output", html])
        #expect(page.status == 0)
        #expect(try String(contentsOfFile: html, encoding: .utf8).contains("<svg"))
        let summary = try FuseboxBinary.run(["analyze", "--db", db, "--summary", "--since", "2026-01-01T00:00:00Z", "--until", "2026-01-01T01:00:00Z"])
        #expect(summary.stdout.contains("availability"))
    }

    @Test func badInputsGetOneLineAndANonZeroExit() throws {
        let folder = try TemporaryFolder()
        let missing = try FuseboxBinary.run(["analyze", "--db", folder.url.appendingPathComponent("none.db").path])
        #expect(missing.status == 66 && missing.stderr.contains("does not exist") && missing.stderr.split(separator: "\n").count == 1)
        let notSQLite = try folder.write("notes.db", "not a database at all")
        let bad = try FuseboxBinary.run(["analyze", "--db", notSQLite.path])
        #expect(bad.status == 74 && bad.stderr.contains("is not a Fusebox store"))
        let db = try Self.simulatedStore(folder)
        let backwards = try FuseboxBinary.run(["analyze", "--db", db, "--since", "2026-01-02", "--until", "2026-01-01"])
        #expect(backwards.status == 64 && backwards.stderr.contains("is after --until"))
        let nonsense = try FuseboxBinary.run(["analyze", "--db", db, "--since", "yesterday-ish"])
        #expect(nonsense.status != 0 && nonsense.stderr.contains("--since takes an RFC 3339 time"))
    }

    @Test func aDayTheMonthDoesNotHaveIsRefused() throws {
        let folder = try TemporaryFolder()
        let store = folder.url.appendingPathComponent("sim.db").path
        #expect(try FuseboxBinary.run(["simulate", "--store", store, "--duration", "5m"]).status == 0)
        let refused = try FuseboxBinary.run(["analyze", "--db", store, "--since", "2026-02-31"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--since takes an RFC 3339 time"))
    }

    @Test func anEmptyStoreAndAQuietPeriodAreNotErrors() throws {
        let sidecar = try SidecarProcess(config: StoreDurabilityTests.config())
        sidecar.signal(SIGTERM)
        _ = try sidecar.waitForExit()
        let db = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        let empty = try FuseboxBinary.run(["analyze", "--db", db])
        #expect(empty.status == 0 && empty.stdout.contains("nothing to analyse"))
        let folder = try TemporaryFolder()
        let sim = try Self.simulatedStore(folder)
        let quiet = try FuseboxBinary.run(["analyze", "--db", sim, "--since", "2026-01-01T00:13:00Z"])
        #expect(quiet.status == 0 && quiet.stdout.contains("no incidents"))
    }
}
