#if canImport(Glibc)
import Glibc
#endif

/// What the socket benchmark measures against, and with: a C line echo and a
/// plain SwiftNIO line echo as the floors, and a C client doing sequential
/// acquire+report pairs (scripts/bench/*.c, built with the system's `cc` into
/// the run's folder). Each is its own process, so the client's cost never
/// lands on the server's side of the figures.
enum SocketFloor {
    struct Tools {
        let echo: String
        let client: String
    }

    /// Builds the C echo and client with `cc -O2`.
    static func build(in folder: BenchFolder) throws -> Tools {
        let sources = Self.sourceFolder()
        let tools = Tools(echo: folder.path + "/line-echo", client: folder.path + "/pair-client")
        for (source, binary) in [("line-echo.c", tools.echo), ("pair-client.c", tools.client)] {
            guard system("cc -O2 -o '\(binary)' '\(sources)/\(source)'") == 0 else {
                throw BenchError("cannot build \(sources)/\(source) with cc (on Debian: apt-get install gcc)")
            }
        }
        return tools
    }

    /// scripts/bench of the checkout this benchmark was built from.
    static func sourceFolder() -> String {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }
        return path + "/scripts/bench"
    }

    /// Runs the C client for `pairs` pairs against `socket`: p50 and p99 of a pair, µs.
    static func pairs(_ tools: Tools, socket: String, pairs: Int) throws -> SocketBench.Percentiles {
        guard let pipe = popen("'\(tools.client)' '\(socket)' \(pairs)", "r") else { throw BenchError("cannot run the client") }
        var line = [CChar](repeating: 0, count: 256)
        let read = fgets(&line, Int32(line.count), pipe) != nil
        let status = pclose(pipe)
        let fields = read ? String(cString: line).split(separator: " ").compactMap { Double($0.trimmingCharacters()) } : []
        guard status == 0, fields.count == 3 else { throw BenchError("the client failed against \(socket)") }
        return SocketBench.Percentiles(p50: fields[1], p99: fields[2])
    }
}

/// A server started for one measurement, stopped with SIGTERM.
final class ServerProcess {
    let pid: pid_t

    init(_ arguments: [String], waitingFor socket: String) throws {
        var child: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        guard posix_spawn(&child, arguments[0], nil, nil, argv, environ) == 0 else { throw BenchError("cannot start \(arguments[0])") }
        pid = child
        for _ in 0..<200 where access(socket, F_OK) != 0 { usleep(25_000) }
        guard access(socket, F_OK) == 0 else { throw BenchError("\(arguments[0]) did not bind \(socket)") }
        usleep(100_000)
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// User and system CPU seconds a process has used, from /proc/PID/stat.
/// Throws where /proc cannot be read: a figure of 0 would look like a result.
struct ProcessCPU {
    var user: Double
    var system: Double

    static func of(_ pid: pid_t) throws -> ProcessCPU {
        guard let stat = readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else {
            throw BenchError("cannot read /proc/\(pid)/stat: server CPU needs Linux's /proc")
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw BenchError("unexpected /proc/\(pid)/stat")
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ProcessCPU(user: user / ticks, system: system / ticks)
    }

    static func - (lhs: ProcessCPU, rhs: ProcessCPU) -> ProcessCPU {
        ProcessCPU(user: lhs.user - rhs.user, system: lhs.system - rhs.system)
    }
}

extension Substring {
    func trimmingCharacters() -> String { String(self.filter { !$0.isWhitespace }) }
}
