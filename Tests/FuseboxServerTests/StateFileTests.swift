import Foundation
import FuseboxCore
@testable import FuseboxStateFile
import Synchronization
import Testing

/// The fast path's state file: its layout as a client reads it, its place
/// beside the socket, and no torn read under a writer that never rests.
@Suite struct StateFileTests {
    @Test func theHeaderAndASlotReadBackAsTheLayoutSays() throws {
        let folder = try TemporaryFolder(in: "/dev/shm/")  // a memory filesystem: the file sits beside the socket itself
        let file = try StateFile.create(beside: folder.path + "/fusebox.sock", slots: 8, socketMode: 0o660, staleAfter: .seconds(1))
        defer { file.remove() }
        #expect(file.dataPath == file.path && (try? FileManager.default.destinationOfSymbolicLink(atPath: file.path)) == nil)
        #expect(try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int == 0o640)
        file.post(PostedState(name: "openai", state: .closed, generation: 7, admitsLocally: true), slot: 0)
        file.post(PostedState(name: "anthropic", state: .halfOpen, generation: 3, admitsLocally: false), slot: 1)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: folder.path + "/fusebox.sock.state"))
        #expect(bytes.count == StateFileLayout.bytes(slots: 8))
        #expect(Array(bytes[0..<8]) == Array("FBXSTATE".utf8))
        #expect(bytes.u32(8) == 1 && bytes.u32(12) == 64 && bytes.u32(16) == 128 && bytes.u32(20) == 8)
        #expect(bytes.u64(24) == file.bootID && file.bootID != 0)
        let now = UInt64(Date().timeIntervalSince1970 * 1_000)
        #expect(bytes.u64(32) <= now && bytes.u64(32) + 5_000 > now, "a fresh heartbeat")
        #expect(bytes.u32(40) == UInt32(getpid()) && bytes.u32(44) == 1_000)
        let openai = 64, anthropic = 64 + 128
        #expect(bytes.u32(openai) == 2, "written once: the sequence went odd and back to even")
        #expect(bytes[openai + 4] == 1 && bytes[openai + 5] == 1 && bytes[openai + 6] == 6 && bytes.u64(openai + 8) == 7)
        #expect(String(decoding: bytes[(openai + 64)..<(openai + 70)], as: UTF8.self) == "openai")
        #expect(bytes[anthropic + 4] == 3 && bytes[anthropic + 5] == 0 && bytes.u64(anthropic + 8) == 3)
        file.truncate(to: 1)
        let after = try Data(contentsOf: URL(fileURLWithPath: folder.path + "/fusebox.sock.state"))
        #expect(after[anthropic + 4] == 0 && after[anthropic + 6] == 0, "a breaker removed by a reload leaves an empty slot")
        #expect(after[openai + 4] == 1)
    }

    @Test func onDiskTheFileLivesInDevShmBehindALinkAndARestartReplacesIt() throws {
        let disk = try #require(
            [NSTemporaryDirectory(), "/var/tmp/", FileManager.default.currentDirectoryPath + "/"].first { !StateFile.isMemoryFilesystem($0) },
            "a directory that is not on a memory filesystem"
        )
        let folder = try TemporaryFolder(in: disk)
        let socket = folder.path + "/fusebox.sock"
        let first = try StateFile.create(beside: socket, slots: 4, socketMode: 0o600, staleAfter: .seconds(1))
        #expect(first.dataPath.hasPrefix("/dev/shm/fusebox-") && first.path == socket + ".state")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: first.path) == first.dataPath)
        #expect(try FileManager.default.attributesOfItem(atPath: first.dataPath)[.posixPermissions] as? Int == 0o600)
        // A sidecar killed without a clean stop left its file: the next one's replaces the link and removes it.
        let second = try StateFile.create(beside: socket, slots: 4, socketMode: 0o666, staleAfter: .seconds(1))
        defer { second.remove() }
        #expect(!FileManager.default.fileExists(atPath: first.dataPath))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: socket + ".state") == second.dataPath)
        #expect(try FileManager.default.attributesOfItem(atPath: second.dataPath)[.posixPermissions] as? Int == 0o644)
        #expect(second.bootID != first.bootID)
        second.remove()
        #expect(!FileManager.default.fileExists(atPath: second.dataPath) && !FileManager.default.fileExists(atPath: socket + ".state"))
    }

    @Test func abandonedFilesAreSweptOnlyWhenTheirWriterIsGoneAndSilentForAMinute() throws {
        let folder = try TemporaryFolder(in: "/dev/shm/")
        let now = StateFile.unixMilliseconds()
        let gone: Int32 = 0x7FFF_FFF0  // above any pid_max: no such process
        func fake(_ name: String, pid: Int32, heartbeat: UInt64, magic: String = "FBXSTATE") throws -> String {
            var bytes = [UInt8](repeating: 0, count: 64)
            bytes.replaceSubrange(0..<8, with: Array(magic.utf8))
            bytes[8] = 1  // version 1
            withUnsafeBytes(of: heartbeat.littleEndian) { bytes.replaceSubrange(32..<40, with: $0) }
            withUnsafeBytes(of: pid.littleEndian) { bytes.replaceSubrange(40..<44, with: $0) }
            let path = folder.path + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        let uid = getuid()
        let abandoned = try fake("fusebox-\(uid)-1.state", pid: gone, heartbeat: now - 120_000)
        let justDied = try fake("fusebox-\(uid)-2.state", pid: gone, heartbeat: now - 1_000)
        let stalledButAlive = try fake("fusebox-\(uid)-3.state", pid: getpid(), heartbeat: now - 120_000)
        let anotherUsers = try fake("fusebox-\(uid + 1)-4.state", pid: gone, heartbeat: 0)
        let notOurs = try fake("fusebox-\(uid)-5.state", pid: gone, heartbeat: 0, magic: "SOMEFILE")
        // Any local user can put these under the sidecar's names: a FIFO (an ordinary open would hang),
        // a link to an abandoned file, and (as root) a file given to another user.
        let fifo = folder.path + "/fusebox-\(uid)-6.state"
        #expect(mkfifo(fifo, 0o666) == 0)
        let linkTarget = try fake("target-7", pid: gone, heartbeat: now - 120_000)
        let link = folder.path + "/fusebox-\(uid)-7.state"
        #expect(symlink(linkTarget, link) == 0)
        var given: [String] = []
        if getuid() == 0 {
            let file = try fake("fusebox-\(uid)-8.state", pid: gone, heartbeat: now - 120_000)
            #expect(chown(file, 65534, 65534) == 0)
            given.append(file)
        }
        StateFile.sweepAbandoned(except: "", folder: folder.path, now: now)
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        for kept in [justDied, stalledButAlive, anotherUsers, notOurs, fifo, link, linkTarget] + given {
            #expect(FileManager.default.fileExists(atPath: kept), "\(kept) was kept")
        }
    }

    @Test func theEnginePostsEveryTransitionAsItHappens() throws {
        let board = RecordingBoard()
        let engine = try Engine(configuration: EngineConfiguration(breakers: [
            BreakerDefinition(name: "openai", policy: BreakerPolicy(trip: TripPolicy(consecutiveFailures: 2, failureRate: nil, window: nil))),
            BreakerDefinition(name: "capped", policy: BreakerPolicy(budget: BudgetPolicy(maxInFlight: 1))),
        ]), clock: ManualClock())
        engine.postStates(to: board)
        #expect(board.slots[0] == PostedState(name: "openai", state: .closed, generation: 0, admitsLocally: true))
        #expect(board.slots[1]?.admitsLocally == false, "a budget needs the sidecar to count every call")
        try engine.record("openai", CallReport(status: 503), generation: 0)
        #expect(board.slots[0]?.state == .closed)
        try engine.record("openai", CallReport(status: 503), generation: 0)
        #expect(board.slots[0] == PostedState(name: "openai", state: .open, generation: 1, admitsLocally: false))
        // A record from before the opening counts nowhere toward closing it.
        try engine.record("openai", CallReport.success(), generation: 0)
        #expect(board.slots[0]?.state == .open)
        engine.postStates(to: nil)
        try engine.force("openai", ForcedMode.disabled)
        #expect(board.slots[0]?.state == .open, "nothing is posted once the board is taken away")
    }

    /// A writer thread rewrites slots as fast as it can while Python reader
    /// processes (the client's own reader) check every slot they read
    /// against what the writer wrote together. A control reader that skips
    /// the sequence check shows the test sees torn reads when there are some.
    @Test func noReaderSeesATornSlotWhileAWriterRewritesThemWithoutRest() async throws {
        let folder = try TemporaryFolder(in: "/dev/shm/")
        let file = try StateFile.create(beside: folder.path + "/fusebox.sock", slots: 4, socketMode: 0o600, staleAfter: .seconds(5))
        defer { file.remove() }
        let stop = Atomic<Bool>(false)
        let writes = Atomic<Int>(0)
        let writer = Thread {
            var random = SystemRandomNumberGenerator()
            var count = 0
            while !stop.load(ordering: .relaxed) {
                let generation = UInt64.random(in: 0..<1_000_000_000_000, using: &random)
                file.post(StateFileTests.posted(generation), slot: Int(generation % 4))
                count += 1
                if count % 4_096 == 0 { file.beat() }
            }
            writes.store(count, ordering: .relaxed)
        }
        writer.start()
        async let checked1 = Self.runReader(file.path, checked: true)
        async let checked2 = Self.runReader(file.path, checked: true)
        let results = try await [checked1, checked2]
        let control = try await Self.runReader(file.path, checked: false)
        stop.store(true, ordering: .relaxed)
        while writes.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }  // poll
        print("state file: \(writes.load(ordering: .relaxed)) writes; checked readers (reads, torn, retried): \(results); unchecked: \(control)")
        for result in results {
            #expect(result.torn == 0)
            #expect(result.reads > 1_000 && result.retried > 0, "the readers met the writer mid-write and read again")
        }
        #expect(control.torn > 0, "without the sequence check the same readers do see torn slots")
    }

    static func posted(_ generation: UInt64) -> PostedState {
        let name = String(generation) + String(repeating: "-", count: Int(generation % 40))
        return PostedState(
            name: name, state: BreakerState.allCases[Int(generation % 6)], generation: generation, admitsLocally: generation % 2 == 0
        )
    }

    struct ReaderResult: CustomStringConvertible {
        var reads: Int, torn: Int, retried: Int
        var description: String { "(\(reads), \(torn), \(retried))" }
    }

    static let readerProgram = """
        import mmap, os, sys, time
        from fusebox._statefile import _FIELDS, _NAME_AT, read_slot
        path, checked = sys.argv[1], sys.argv[2] == "checked"
        codes = {"closed": 1, "open": 2, "half_open": 3, "forced_open": 4, "disabled": 5, "metrics_only": 6}
        order = [codes[s] for s in sys.argv[3].split(",")]
        fd = os.open(path, os.O_RDONLY)
        mapped = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
        reads = torn = retried = 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            for slot in range(4):
                offset = 64 + slot * 128
                if checked:
                    whole = read_slot(mapped, offset)
                else:
                    state, flags, length, generation = _FIELDS.unpack_from(mapped, offset + 4)
                    whole = (state, flags, generation, mapped[offset + _NAME_AT: offset + _NAME_AT + min(length, 64)])
                if whole is None:
                    retried += 1
                    continue
                state, flags, generation, name = whole
                if state == 0:
                    continue
                reads += 1
                expected = (str(generation) + "-" * (generation % 40)).encode()[:64]
                if state != order[generation % 6] or flags != (1 if generation % 2 == 0 else 0) or name != expected:
                    torn += 1
        print(reads, torn, retried)
        """

    static func runReader(_ path: String, checked: Bool) async throws -> ReaderResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let order = BreakerState.allCases.map(\.rawValue).joined(separator: ",")
        process.arguments = ["python3", "-c", readerProgram, path, checked ? "checked" : "unchecked", order]
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONPATH"] = pythonClient
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = try await Task.detached { output.fileHandleForReading.readDataToEndOfFile() }.value
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "the reader failed")
        let numbers = String(decoding: data, as: UTF8.self).split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        try #require(numbers.count == 3, "the reader printed \(String(decoding: data, as: UTF8.self))")
        return ReaderResult(reads: numbers[0], torn: numbers[1], retried: numbers[2])
    }

    static let pythonClient = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("clients/python").path
}

/// Keeps what was posted, slot by slot.
final class RecordingBoard: BreakerStateBoard, @unchecked Sendable {
    private let lock = NSLock()
    private var posted: [Int: PostedState] = [:]
    var slots: [Int: PostedState] { lock.withLock { posted } }
    func post(_ state: PostedState, slot: Int) { lock.withLock { posted[slot] = state } }
    func resize(to count: Int) { lock.withLock { posted = posted.filter { $0.key < count } } }
}

struct TemporaryFolder: ~Copyable {
    let path: String
    init(in parent: String) throws {
        path = parent + "fusebox-state-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension Data {
    func u32(_ offset: Int) -> UInt32 { self[offset..<(offset + 4)].enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) } }
    func u64(_ offset: Int) -> UInt64 { self[offset..<(offset + 8)].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) } }
}
