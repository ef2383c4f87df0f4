#if canImport(Glibc)
import Glibc
#endif
import FuseboxCore
import FuseboxServer
import FuseboxStateFile
import Logging

/// The fast path's state file, from both sides. The input's first byte says
/// how many reloads follow (0–7); each takes two bytes, a breaker count of
/// 1–512, applied to an engine posting to a real state file that starts
/// with 256 slots, so sequences grow and shrink it across its slot count.
/// After every reload the file must read back whole, with every breaker in
/// its slot. The rest of the input is a state file's bytes: read back by the
/// layout reader, whole and truncated, and by the start-up sweep from a
/// file in a folder of its own. Nothing may trap or hang.
enum StateFileFuzzTarget {
    static let folder: String = {
        let path = "/dev/shm/fusebox-fuzz-\(getpid())"
        mkdir(path, 0o700)
        mkdir(path + "/sweep", 0o700)
        atexit { StateFileFuzzTarget.cleanUp() }
        return path
    }()

    static func cleanUp() {
        unlink(folder + "/sweep/fusebox-\(getuid())-fuzz.state")
        rmdir(folder + "/sweep")
        rmdir(folder)
    }

    static func run(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        let reloads = min(Int(bytes.first ?? 0) % 8, max(0, bytes.count - 1) / 2)
        let counts = (0..<reloads).map { (reload: Int) -> Int in
            let low = Int(bytes[1 + 2 * reload]), high = Int(bytes[2 + 2 * reload] & 1)
            return 1 + (low | high << 8)
        }
        if !counts.isEmpty { reload(through: counts) }
        readBack(Array(bytes.dropFirst(1 + 2 * reloads)))
    }

    static func definitions(_ count: Int) -> EngineConfiguration {
        EngineConfiguration(breakers: (0..<count).map { BreakerDefinition(name: "b\($0)") })
    }

    static func reload(through counts: [Int]) {
        guard let engine = try? Engine(configuration: definitions(1), clock: ManualClock()) else { fatalError("engine") }
        let board: StateFileBoard
        do {
            board = try StateFileBoard(
                socket: folder + "/fusebox.sock", breakers: 1, socketMode: 0o600, staleAfter: .seconds(1), logger: Logger(label: "fuzz")
            )
        } catch {
            fatalError("cannot make the state file: \(error)")
        }
        defer { board.remove() }
        engine.postStates(to: board)
        for count in counts {
            guard (try? engine.apply(definitions(count))) != nil else { fatalError("reload to \(count) breakers refused") }
            guard let contents = StateFileContents(readAll(board.path)) else { fatalError("the file does not read back after a reload to \(count)") }
            guard contents.slotCount >= count, contents.slots.map(\.name) == (0..<count).map({ "b\($0)" }),
                  contents.slots.map(\.index) == Array(0..<count)
            else { fatalError("after a reload to \(count) breakers the file holds \(contents.slots.count) in \(contents.slotCount) slots") }
        }
    }

    static func readBack(_ file: [UInt8]) {
        for cut in Set([0, 8, 47, 48, 63, 64, file.count / 2, file.count]) where cut <= file.count {
            _ = StateFileContents(file.prefix(cut))
            _ = StateFileContents(file.prefix(cut), headerOnly: true)
        }
        let path = folder + "/sweep/fusebox-\(getuid())-fuzz.state"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { fatalError("cannot write \(path)") }
        _ = file.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        StateFile.sweepAbandoned(except: "", folder: folder + "/sweep")
        unlink(path)
    }

    static func readAll(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            out += buffer[0..<n]
        }
        return out
    }
}
