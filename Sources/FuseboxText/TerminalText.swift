extension String {
    /// The text with every control character (C0, DEL, C1) and bidirectional
    /// override written as a visible escape (`\n`, `\x1b`, `\u202e`): error
    /// texts come from providers and clients, and printed raw they could move
    /// the cursor, recolour or clear a terminal, or break a markdown table
    /// into new headings. For text meant for terminals and markdown.
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: \.needsEscapeOnTerminal) else { return self }
        var out = ""
        for scalar in unicodeScalars {
            guard scalar.needsEscapeOnTerminal else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                let hex = String(scalar.value, radix: 16)
                out += scalar.value < 0x100 ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex : "\\u" + hex
            }
        }
        return out
    }
}

extension Unicode.Scalar {
    var needsEscapeOnTerminal: Bool {
        value < 0x20 || (0x7F...0x9F).contains(value) || (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value)
    }
}
