import ArgumentParser
import FuseboxAnalyze
import FuseboxConfig
import FuseboxCore
import FuseboxFleet
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Rebuild incident timelines from one or more Fusebox stores.",
        discussion: """
        An incident is a span in which some breaker was not closed (open, half-open or forced \
        open), merged with the next one when they are less than --merge-gap apart. For each: \
        when the first failures came, when and why each breaker tripped, every probe, how long \
        detection and recovery took, the traffic failed, rejected and served by fallbacks, and \
        the error mix. Stores are opened read-only; a running sidecar may keep writing.

        Examples:
          fusebox analyze                                   ./fusebox.db, everything in it
          fusebox analyze --since 2h --format markdown      the last two hours, for a postmortem
          fusebox analyze --db a.db --db b.db --summary     two hosts, per-breaker figures
          fusebox analyze --format html --output report.html
          fusebox analyze --incident inc-20260101T000231 --format json
          fusebox analyze --db postgresql://fusebox@db.internal/fusebox    a fleet's history
        """
    )

    @Option(name: .customLong("db"), help: "A store file (repeat for several hosts), or a fleet's postgresql:// URL.") var databases: [String] = []
    @Option(help: "With a postgresql:// --db: only this fleet's history (default: every fleet in the database).") var fleet: String?
    @Option(help: "Start: an RFC 3339 time or date, or an age such as 2h or 7d.") var since: String?
    @Option(help: "End: an RFC 3339 time or date, or an age such as 30m.") var until: String?
    @Option(name: .customLong("breaker"), help: "Only this breaker (repeatable).") var breakers: [String] = []
    @Option(help: "Only the breakers of this chain.") var chain: String?
    @Option(help: "One incident, by id.") var incident: String?
    @Option(help: "Spans closer than this are one incident.") var mergeGap: String = "5m"
    @Flag(help: "Per-breaker figures only: incidents, open time, availability, mean detect and recover.") var summary = false
    @Option(help: "text, markdown, json or html.") var format: String = "text"
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?

    func run() throws {
        var options = AnalyzeOptions(databases: databases.isEmpty ? ["./fusebox.db"] : databases)
        let now = SystemClock().now().milliseconds
        options.since = try since.map { try Self.time($0, now: now, flag: "--since") }
        options.until = try until.map { try Self.time($0, now: now, flag: "--until") }
        options.breakers = breakers
        options.chain = chain
        options.incident = incident
        guard let gap = DurationText.parse(mergeGap) else { throw ValidationError("--merge-gap takes a duration such as 5m") }
        options.mergeGap = gap.millisecondsClamped
        guard ["text", "markdown", "json", "html"].contains(format) else { throw ValidationError("--format must be text, markdown, json or html") }
        let copies = try copyFleetHistories(&options)
        defer { for path in copies { for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) } } }

        let analysis: Analysis
        do {
            analysis = try Analyzer.analyze(options)
        } catch AnalyzeError.empty(let paths) {
            if format == "json" {
                print(JSONReport.empty(sources: paths), terminator: "")
            } else {
                print("no transitions or traffic recorded yet in \(paths.joined(separator: ", ")): nothing to analyse")
            }
            return
        } catch {
            printError("fusebox analyze: \(error)")
            switch error {
            case .missing: throw ExitCode(ExitStatus.noInput)
            case .badRange: throw ExitCode(ExitStatus.usage)
            case .noSuchIncident, .noSuchChain: throw ExitCode(ExitStatus.unknownName)
            case .store, .empty: throw ExitCode(ExitStatus.storeFailed)
            }
        }
        var file: UnsafeMutablePointer<FILE>? = nil
        if let output {
            file = fopen(output, "w")
            guard file != nil else {
                printError("fusebox analyze: cannot write \(output): \(String(cString: strerror(errno)))")
                throw ExitCode(ExitStatus.cannotCreate)
            }
        }
        // Reports are written incident by incident: a month of history never sits in memory whole.
        let emit: (String) -> Void = { chunk in fputs(chunk, file ?? stdoutFile()) }
        switch format {
        case "markdown": MarkdownReport.write(analysis, summaryOnly: summary, to: emit)
        case "json": JSONReport.write(analysis, to: emit)
        case "html": HTMLReport.write(analysis, to: emit)
        default:
            let colour = output == nil && isatty(1) == 1 && getenv("NO_COLOR") == nil
            TextReport.write(analysis, summaryOnly: summary, colour: colour, to: emit)
        }
        if let file {
            fclose(file)
            printError("wrote \(output!)")
        }
    }

    /// An RFC 3339 time or date, or an age before `now`.
    /// Each postgresql:// --db becomes a temporary store copied from it; returns their paths (to delete).
    func copyFleetHistories(_ options: inout AnalyzeOptions) throws -> [String] {
        var copies: [String] = []
        for (index, entry) in options.databases.enumerated() where entry.hasPrefix("postgresql://") || entry.hasPrefix("postgres://") {
            let url: PostgresURL
            do { url = try PostgresURL(parsing: entry) } catch {
                throw ValidationError("--db \(entry.prefix(60)): \(error.description)")
            }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("fusebox-fleet-\(getpid())-\(index).db").path
            copies.append(path)
            let (since, until, fleet) = (options.since, options.until, self.fleet)
            let outcome = BlockingTask.run { try await FleetHistoryCopy.copy(from: url, fleet: fleet, since: since, until: until, into: path) }
            switch outcome {
            case .failure(let error):
                for path in copies { for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) } }
                printError("fusebox analyze: \(error)")
                throw ExitCode(ExitStatus.storeFailed)
            case .success(let skipped):
                for (table, rows) in skipped {
                    printError("fusebox analyze: warning: skipped \(rows) row(s) of \(table) in \(url) holding NaN or an infinity (no sidecar writes those)")
                }
            }
            options.databases[index] = path
        }
        return copies
    }

    static func time(_ text: String, now: Int64, flag: String) throws -> Int64 {
        if let age = DurationText.parse(text) { return now - age.millisecondsClamped }
        if let stamp = Timestamp(rfc3339: text) { return stamp.milliseconds }
        throw ValidationError("\(flag) takes an RFC 3339 time (2026-01-01T00:00:00Z), a date (2026-01-01) or an age (2h, 7d); got \"\(text)\"")
    }
}

/// The C library's standard output stream.
func stdoutFile() -> UnsafeMutablePointer<FILE> { fdopenStandardOutput.file }

private final class StandardOutputStream: @unchecked Sendable {
    let file: UnsafeMutablePointer<FILE> = fdopen(1, "w")
}

private let fdopenStandardOutput = StandardOutputStream()
