import Foundation
import FuseboxWire
import Testing

@Suite("fusebox serve: the SQLite store")
struct StoreDurabilityTests {
    static func config(http: Bool = false) -> String {
        SidecarProcess.config()
            .replacingOccurrences(of: "store: off", with: "store: ./fusebox.db")
            .replacingOccurrences(of: "http: off", with: http ? "http: 127.0.0.1:0" : "http: off")
    }

    /// Runs the sqlite3 command-line tool on `db`.
    static func sqlite(_ db: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sqlite3", db, sql]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `count` transitions of openai (forced open, then back), from the admin socket.
    static func flip(_ sidecar: SidecarProcess, _ count: Int) throws {
        let admin = try sidecar.connect(admin: true)
        var batch: [UInt8] = []
        for i in 0..<count {
            batch += Array(#"{"op":"force","breaker":"openai","state":"\#(i % 2 == 0 ? "open" : "auto")"}"#.utf8) + [0x0A]
        }
        try admin.write(batch)
        for _ in 0..<count { _ = try admin.readLine() }
    }

    @Test func afterSIGKILLTheFileIsIntactAndHoldsEverythingOlderThanAFlush() throws {
        let sidecar = try SidecarProcess(config: Self.config())
        try Self.flip(sidecar, 300)
        let db = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        // Until a reader sees every row committed (a flush interval or so), then the kill.
        try waitUntil("the 300 transitions are committed") { (try? Self.sqlite(db, "SELECT count(*) FROM transitions")) == "300" }
        sidecar.signal(SIGKILL)
        _ = try sidecar.waitForExit()
        #expect(try Self.sqlite(db, "PRAGMA integrity_check") == "ok")
        #expect(try Self.sqlite(db, "SELECT count(*) FROM transitions") == "300")
        #expect(try Self.sqlite(db, "SELECT count(*) FROM runs WHERE stopped_ms IS NULL") == "1")  // it never stopped cleanly
    }

    @Test func afterSIGTERMEveryTransitionIsStored() throws {
        let sidecar = try SidecarProcess(config: Self.config())
        let client = try sidecar.connect()
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"anthropic","status":502,"error":"bad gateway"}"#) }
        try Self.flip(sidecar, 500)
        sidecar.signal(SIGTERM)  // at once: whatever is queued must be flushed
        #expect(try sidecar.waitForExit() == 0)
        let db = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        #expect(try Self.sqlite(db, "SELECT count(*) FROM transitions") == "501")
        #expect(try Self.sqlite(db, "SELECT breaker, old_state, new_state, reason, failure_count, last_status, last_error FROM transitions WHERE breaker = 'anthropic'")
            == "anthropic|closed|open|consecutive_failures|3|502|bad gateway")
        #expect(try Self.sqlite(db, "SELECT sum(failures) FROM traffic WHERE breaker = 'anthropic'") == "3")
        #expect(try Self.sqlite(db, "SELECT count(*) FROM runs WHERE stopped_ms IS NOT NULL AND config LIKE '%breakers:%'") == "1")
    }

    @Test func aStoreThatCannotBeOpenedStopsTheStart() throws {
        let folder = try TemporaryFolder()
        _ = try folder.write("fusebox.db", "this is not a database")
        _ = try folder.write("fusebox.yaml", Self.config())
        let sidecar = try SidecarProcess(reusing: folder, waitForSocket: false)
        #expect(try sidecar.waitForExit() == 71)
        #expect(sidecar.standardErrorShows("is not a Fusebox store"), "\(sidecar.standardError)")
    }

    @Test func aLockedStoreNeverSlowsDecisionsIsReportedAndRecovers() throws {
        let sidecar = try SidecarProcess(config: Self.config(http: true))
        try waitUntil("HTTP listens") { !sidecar.logEvents("http_listening").isEmpty }
        let address = try #require(sidecar.logEvents("http_listening").first?["address"]?.stringValue)
        let db = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        // Another process takes the write lock and keeps it until told.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["sqlite3", db]
        let input = Pipe()
        holder.standardInput = input
        holder.standardOutput = FileHandle.nullDevice
        try holder.run()
        // `.timeout` lets it wait out a flush of the sidecar's that holds the lock at that moment.
        input.fileHandleForWriting.write(Data(".timeout 5000\nBEGIN EXCLUSIVE;\nINSERT INTO runs (instance, started_ms, version, pid, config) VALUES ('lock', 0, '', 0, '');\n".utf8))
        // Confirmed rather than assumed: another writer is refused while sqlite3 holds the lock.
        try waitUntil("sqlite3 holds the write lock") {
            try Self.sqlite(db, "PRAGMA busy_timeout = 0; BEGIN IMMEDIATE; ROLLBACK;").contains("locked")
        }

        try Self.flip(sidecar, 100)
        let client = try sidecar.connect()
        for _ in 0..<2_000 {  // decisions go on while the store cannot be written
            let permit = try client.permit("ollama")
            _ = try client.ok(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)
        }
        // The disk is the store's problem, not the decisions': still ready, and the failure shows in status and metrics.
        try waitUntil("status shows the store failing") { try curl("http://\(address)/v1/status").body.contains(#""store":"failing"#) }
        let ready = try curl("http://\(address)/readyz")
        #expect(ready.status == 200 && ready.body.contains(#""ready":true"#), "readyz: \(ready)")
        try waitUntil("store errors are counted") {
            let metrics = try curl("http://\(address)/metrics").body
            return metrics.contains("fusebox_store_healthy 0") && !metrics.contains("fusebox_store_errors_total 0\n")
        }
        try waitUntil("the failure is logged") { !sidecar.logEvents("store_write_failed").isEmpty }

        input.fileHandleForWriting.write(Data("ROLLBACK;\n.quit\n".utf8))
        try input.fileHandleForWriting.close()
        holder.waitUntilExit()
        try waitUntil("the store recovers", timeout: 40) { try curl("http://\(address)/v1/status").body.contains(#""store":"ok""#) }
        try waitUntil("every transition is written", timeout: 20) { try Self.sqlite(db, "SELECT count(*) FROM transitions") == "100" }
        // Traffic rows follow the transitions within a flush or two: waited for, not read at once.
        try waitUntil("all the traffic is written", timeout: 20) {
            try Self.sqlite(db, "SELECT sum(successes) FROM traffic WHERE breaker = 'ollama'") == "2000"
        }
        #expect(!sidecar.logEvents("store_recovered").isEmpty)
    }

    @Test func storeStatsAndVacuumWorkOnAStore() throws {
        let sidecar = try SidecarProcess(config: Self.config())
        try Self.flip(sidecar, 10)
        sidecar.signal(SIGTERM)
        _ = try sidecar.waitForExit()
        let db = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        let stats = try FuseboxBinary.run(["store", "stats", "--db", db])
        #expect(stats.status == 0, "\(stats.stderr)")
        #expect(stats.stdout.contains("transitions") && stats.stdout.contains("10"))
        let vacuum = try FuseboxBinary.run(["store", "vacuum", "--db", db])
        #expect(vacuum.status == 0, "\(vacuum.stderr)")
        #expect(try Self.sqlite(db, "SELECT count(*) FROM transitions") == "10")
        let missing = try FuseboxBinary.run(["store", "stats", "--db", db + ".nope"])
        #expect(missing.status == 66 && missing.stderr.contains("does not exist"))
    }
}
