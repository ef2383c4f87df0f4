import FuseboxText

/// A configuration problem, located: which file, which line and column, which
/// key (as a dotted path), and what was wrong and what is allowed.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var column: Int?
    public var key: String
    public var message: String

    public init(file: String, line: Int?, column: Int?, key: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    /// One line, whatever the file held: a key or value quoted in the message
    /// may carry control characters (a terminal escape, a newline that forges
    /// a second line), so they are shown escaped (`\x1b`, `\n`).
    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        let text = key.isEmpty ? "\(location): \(message)" : "\(location): \(key): \(message)"
        return text.escapingControlCharacters
    }
}
