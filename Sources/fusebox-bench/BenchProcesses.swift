import FuseboxWire

#if canImport(Glibc)
import Glibc
import FuseboxSocket
#endif

/// A temporary folder for sockets and configs.
final class BenchFolder {
    let path: String

    init() throws {
        var template = Array("/tmp/fusebox-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp failed") }
        path = String(cString: made)
    }

    func write(_ name: String, _ text: String) {
        let file = fopen(path + "/" + name, "w")
        fputs(text, file)
        fclose(file)
    }

    deinit { _ = system("rm -rf '\(path)'") }
}

/// The release `fusebox` binary beside this one, serving in `folder`.
final class SidecarChild {
    let pid: pid_t
    let socket: String

    init(folder: BenchFolder, breakers: Int, store: Bool = false, http: Bool = true, extraConfig: String = "",
         startLimit: Duration = .seconds(5)) throws {
        folder.write("fusebox.yaml", Self.config(folder: folder, breakers: breakers, store: store, http: http, extraConfig: extraConfig))
        socket = folder.path + "/fusebox.sock"
        let binary = Self.siblingBinary("fusebox")
        var child: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(binary), strdup("serve"), strdup("--config"), strdup(folder.path + "/fusebox.yaml"), nil]
        guard posix_spawn(&child, binary, nil, nil, argv, environ) == 0 else { throw BenchError("cannot start \(binary)") }
        pid = child
        let deadline = ContinuousClock.now + startLimit
        while access(socket, F_OK) != 0, ContinuousClock.now < deadline { usleep(2_000) }
        guard access(socket, F_OK) == 0 else { throw BenchError("the sidecar did not start within \(startLimit)") }
        usleep(100_000)
    }

    /// The configuration `init` writes: `breakers` breakers (b0, b1, …; three named ones for three or fewer).
    static func config(folder: BenchFolder, breakers: Int, store: Bool = false, http: Bool = true, extraConfig: String = "") -> String {
        let names = breakers <= 3 ? ["openai", "anthropic", "ollama"] : (0..<breakers).map { "b\($0)" }
        var config = "socket: \(folder.path)/fusebox.sock\nadmin_socket: \(folder.path)/fusebox-admin.sock\n"
        config += "http: \(http ? "127.0.0.1:0" : "off")\nstore: \(store ? folder.path + "/fusebox.db" : "off")\nlog: \(folder.path)/fusebox.log\nmax_connections: 5000\n\(extraConfig)\nbreakers:\n"
        for name in names { config += "  \(name): {}\n" }
        return config
    }

    static func siblingBinary(_ name: String) -> String {
        let me = CommandLine.arguments[0]
        guard let slash = me.lastIndex(of: "/") else { return name }
        return String(me[..<slash]) + "/" + name
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    func rssKiB() -> Int {
        guard let status = readText("/proc/\(pid)/status") else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}

func readText(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4_096)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        bytes += buffer[0..<count]
        if count < buffer.count { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
