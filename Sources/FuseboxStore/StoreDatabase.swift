import Foundation
import GRDB

/// Opening a store file: the writer's connection (WAL, synchronous=NORMAL,
/// busy timeout, migrated) or a reader's (read-only, never migrates).
public enum StoreDatabase {
    public static func openForWriting(_ path: String, busyTimeout: TimeInterval = 1) throws -> DatabaseQueue {
        try restrictToOwner(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        return try opening(path) {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.inDatabase { db in try StoreSchema.migrate(db, path: path) }
            return queue
        }
    }

    /// Runs `body`, turning what SQLite says into the store's own errors.
    static func opening(_ path: String, _ body: () throws -> DatabaseQueue) throws -> DatabaseQueue {
        do {
            return try body()
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB {
            throw StoreError.notAStore(path)
        } catch {
            throw StoreError.cannotOpen(path, reason: describe(error))
        }
    }

    /// Creates the store file readable by its owner only (0600), or narrows an
    /// existing one: it holds error texts and traffic. SQLite gives the WAL
    /// and shared-memory files the database file's mode.
    static func restrictToOwner(_ path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.cannotOpen(path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        _ = fchmod(fd, 0o600)
        for suffix in ["-wal", "-shm"] { _ = chmod(path + suffix, 0o600) }
    }

    /// A read-only connection; works while a sidecar writes (WAL). Refuses
    /// files that are missing, not SQLite, not Fusebox's, or too new.
    public static func openForReading(_ path: String) throws -> DatabaseQueue {
        guard FileManager.default.fileExists(atPath: path) else { throw StoreError.notFound(path) }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        return try opening(path) {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.inDatabase { db in
                let application = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                guard application == StoreSchema.applicationID else { throw StoreError.notAStore(path) }
                guard version <= StoreSchema.currentVersion else { throw StoreError.tooNew(path, version: version) }
            }
            return queue
        }
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? DatabaseError {
            return error.message ?? "\(error.resultCode)"
        }
        return "\(error)"
    }
}
