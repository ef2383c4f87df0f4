#if canImport(Glibc)
import Glibc
#endif

/// The standard `process_*` series (the names Prometheus's own client
/// libraries use), read from `/proc` at scrape time. Where `/proc` cannot be
/// read the series are left out, never reported as 0.
public struct ProcessMetrics: Sendable {
    public struct Reading: Sendable, Equatable {
        public var cpuSeconds: Double
        public var residentBytes: Double
        public var virtualBytes: Double
        public var openDescriptors: Int
        public var maxDescriptors: Double
        public var startTimeSeconds: Double
    }

    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    let root: String

    /// `root` is where procfs is mounted (tests point it elsewhere).
    public init(procRoot root: String = "/proc") {
        self.root = root
    }

    public func read() throws(Unreadable) -> Reading {
        let stat = try text("\(root)/self/stat")
        // The command name is in parentheses and may hold spaces: the fields start after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { throw Unreadable(description: "\(root)/self/stat: no ')'") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the name: state is field 3, so field N is at index N - 3.
        func field(_ number: Int) throws(Unreadable) -> Double {
            guard fields.count > number - 3, let value = Double(fields[number - 3]) else {
                throw Unreadable(description: "\(root)/self/stat: field \(number) missing")
            }
            return value
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        guard ticks > 0, pageSize > 0 else { throw Unreadable(description: "sysconf gave no clock tick or page size") }
        let bootLine = try text("\(root)/stat").split(separator: "\n").first { $0.hasPrefix("btime ") }
        guard let bootLine, let bootTime = Double(bootLine.dropFirst(6)) else { throw Unreadable(description: "\(root)/stat: no btime") }
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw Unreadable(description: "getrlimit failed") }
        return Reading(
            cpuSeconds: (try field(14) + field(15)) / ticks,
            residentBytes: try field(24) * pageSize,
            virtualBytes: try field(23),
            openDescriptors: try descriptorCount(),
            maxDescriptors: Double(limit.rlim_cur),
            startTimeSeconds: bootTime + (try field(22)) / ticks
        )
    }

    /// The exposition lines, or nothing when `/proc` cannot be read.
    public func exposition() -> [UInt8] {
        guard let r = try? read() else { return [] }
        let series: [(String, String, String, Double)] = [
            ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", r.cpuSeconds),
            ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", r.residentBytes),
            ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", r.virtualBytes),
            ("process_open_fds", "gauge", "Number of open file descriptors.", Double(r.openDescriptors)),
            ("process_max_fds", "gauge", "Maximum number of open file descriptors.", r.maxDescriptors),
            ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", r.startTimeSeconds),
        ]
        var text = ""
        for (name, type, help, value) in series {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        return Array(text.utf8)
    }

    private func descriptorCount() throws(Unreadable) -> Int {
        guard let directory = opendir("\(root)/self/fd") else { throw Unreadable(description: "\(root)/self/fd cannot be listed") }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { count += 1 }
        }
        return count - 1  // the descriptor opendir itself holds
    }

    private func text(_ path: String) throws(Unreadable) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Unreadable(description: "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got < 0, errno == EINTR { continue }
            guard got >= 0 else { throw Unreadable(description: "\(path): \(String(cString: strerror(errno)))") }
            if got == 0 { break }
            bytes += chunk[0..<got]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
