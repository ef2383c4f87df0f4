#if canImport(Glibc)
import Glibc
#endif

/// The key every sidecar of a fleet signs its messages with (HMAC-SHA256),
/// so that only holders of it can change a peer's breakers: PostgreSQL
/// checks no privilege on NOTIFY. Never printed: its description names
/// where it came from, not what it is.
public struct FleetSecret: Sendable, Equatable, CustomStringConvertible {
    public let bytes: [UInt8]
    /// `FUSEBOX_FLEET_SECRET` or the file's path.
    public let source: String

    public init(bytes: [UInt8], source: String) {
        self.bytes = bytes
        self.source = source
    }

    public var description: String { "<secret from \(source)>" }

    /// Short keys are guessable offline from one captured message.
    public static let minimumBytes = 32
    static let maximumBytes = 4_096
    public static let variable = "FUSEBOX_FLEET_SECRET"
    static let hint = "at least \(minimumBytes) bytes shared by every sidecar of the fleet, e.g. from `openssl rand -hex 32`"

    /// The secret's text, trailing whitespace (a file's last newline) removed; nil with the reason when unfit.
    static func checked(_ text: [UInt8], source: String) -> Result<FleetSecret, SecretProblem> {
        var bytes = text[...]
        while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 { bytes.removeLast() }
        guard bytes.count >= minimumBytes else {
            return .failure(SecretProblem(description: "\(source) holds \(bytes.count) bytes; a fleet secret needs \(hint)"))
        }
        return .success(FleetSecret(bytes: Array(bytes), source: source))
    }

    /// Reads a secret file without blocking (a FIFO cannot hang start) and only when it is a small regular file.
    static func load(file path: String) -> Result<FleetSecret, SecretProblem> {
        func refuse(_ message: String) -> Result<FleetSecret, SecretProblem> { .failure(SecretProblem(description: message)) }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return refuse("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return refuse("\(path) is not a regular file") }
        guard info.st_size <= maximumBytes else { return refuse("\(path) is larger than \(maximumBytes) bytes; a fleet secret is one line") }
        var buffer = [UInt8](repeating: 0, count: maximumBytes + 1)
        var count = 0
        while count < buffer.count {
            let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if got < 0, errno == EINTR { continue }
            guard got >= 0 else { return refuse("cannot read \(path): \(String(cString: strerror(errno)))") }
            if got == 0 { break }
            count += got
        }
        guard count <= maximumBytes else { return refuse("\(path) is larger than \(maximumBytes) bytes; a fleet secret is one line") }
        return checked(Array(buffer[0..<count]), source: path)
    }

    struct SecretProblem: Error, CustomStringConvertible {
        var description: String
    }
}
