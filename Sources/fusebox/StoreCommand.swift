import ArgumentParser
import FuseboxConfig
import FuseboxCore
import FuseboxJSON
import FuseboxStore

#if canImport(Glibc)
import Glibc
#endif

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Look after the SQLite incident store: stats, prune, vacuum.",
        discussion: """
        Examples:
          fusebox store stats --db fusebox.db
          fusebox store prune --db fusebox.db --older-than 30d
          fusebox store vacuum --db fusebox.db
        """,
        subcommands: [Stats.self, Prune.self, Vacuum.self]
    )

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rows per table, time span, file size.")
        @Option(help: "The store file.") var db = "./fusebox.db"
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            let stats = try report { try StoreMaintenance.stats(db) }
            if json {
                var w = JSONWriter()
                w.string("db", db)
                w.int("schema_version", stats.schemaVersion)
                w.int("file_bytes", stats.fileBytes)
                w.object("rows") { inner in for (table, count) in stats.rows { inner.value(table, .number(String(count))) } }
                w.string("first", stats.firstMs.map { Timestamp.milliseconds($0).rfc3339 })
                w.string("last", stats.lastMs.map { Timestamp.milliseconds($0).rfc3339 })
                w.stringArray("instances", stats.instances)
                w.int("runs", stats.runs)
                printJSON(&w)
                return
            }
            print("store:          \(db) (schema version \(stats.schemaVersion), \(stats.fileBytes / 1024) KiB)")
            for (table, count) in stats.rows {
                print("\(table):".padded(16) + "\(count) rows")
            }
            let first = stats.firstMs.map { Timestamp.milliseconds($0).rfc3339 } ?? "-"
            let last = stats.lastMs.map { Timestamp.milliseconds($0).rfc3339 } ?? "-"
            print("span:".padded(16) + "\(first) to \(last)")
            print("instances:".padded(16) + (stats.instances.isEmpty ? "-" : stats.instances.joined(separator: ", ")))
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete rows older than a duration (the sidecar does this hourly per `retention`).")
        @Option(help: "The store file.") var db = "./fusebox.db"
        @Option(help: "Age such as 30d or 12h.") var olderThan: String
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            guard let age = DurationText.parse(olderThan) else { throw ValidationError("--older-than takes a duration such as 30d or 12h") }
            let cutoff = (SystemClock().now() - age).milliseconds
            let deleted = try report { try StoreMaintenance.prune(StoreDatabase.openForWriting(db), before: cutoff) }
            if json {
                var w = JSONWriter()
                w.string("db", db)
                w.int("deleted_rows", deleted)
                w.string("before", Timestamp.milliseconds(cutoff).rfc3339)
                printJSON(&w)
            } else {
                print("deleted \(deleted) rows older than \(Timestamp.milliseconds(cutoff).rfc3339)")
            }
        }
    }

    struct Vacuum: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reclaim the space of deleted rows.")
        @Option(help: "The store file.") var db = "./fusebox.db"
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            guard access(db, F_OK) == 0 else {
                printError("fusebox store: \(StoreError.notFound(db))")
                throw ExitCode(ExitStatus.noInput)
            }
            let (before, after) = try report { try StoreMaintenance.vacuum(db) }
            if json {
                var w = JSONWriter()
                w.string("db", db)
                w.int("bytes_before", before)
                w.int("bytes_after", after)
                printJSON(&w)
            } else {
                print("vacuumed \(db): \(before / 1024) KiB → \(after / 1024) KiB")
            }
        }
    }
}

/// Runs `body`, turning a store error into one line on stderr and its exit status.
func report<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        printError("fusebox store: \(error)")
        if case StoreError.notFound? = error as? StoreError { throw ExitCode(ExitStatus.noInput) }
        throw ExitCode(ExitStatus.storeFailed)
    }
}

/// A finished writer's object as one line on standard output.
func printJSON(_ writer: inout JSONWriter) {
    print(String(decoding: writer.finish(), as: UTF8.self), terminator: "")
}

extension String {
    func padded(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
