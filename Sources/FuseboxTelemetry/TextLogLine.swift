import FuseboxCore
import Logging

/// The human-readable alternative (`--log-format text`): one line per event,
/// `2026-11-30T15:41:59.123Z warn     transition breaker=openai …`.
/// Values are quoted when they hold spaces and escaped so a hostile text
/// cannot start a new line.
public enum TextLogLine {
    static func line(event: String, level: Logger.Level, at: Timestamp, fields: Logger.Metadata) -> [UInt8] {
        var stamp = at.rfc3339
        if case .string(let given)? = fields["timestamp"] { stamp = given }
        let name = level.standardName
        let levelText = name + String(repeating: " ", count: max(0, 8 - name.count))
        var line = "\(stamp) \(levelText) \(event)"
        for key in fields.keys.sorted() where key != "timestamp" && key != "message" {
            line += " \(key)=\(render(fields[key]!))"
        }
        return Array((line + "\n").utf8)
    }

    static func render(_ value: Logger.MetadataValue) -> String {
        let text: String
        switch value {
        case .string(let s): text = s
        case .stringConvertible(let c): text = c.description
        case .array(let items): text = "[" + items.map(render).joined(separator: ",") + "]"
        case .dictionary(let members): text = "{" + members.keys.sorted().map { "\($0)=\(render(members[$0]!))" }.joined(separator: ",") + "}"
        }
        let needsQuotes = text.isEmpty || text.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline || $0.asciiValue.map { $0 < 0x20 } ?? false }
        guard needsQuotes else { return text }
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            default: escaped += scalar.value < 0x20 || scalar.value == 0x7F ? "\\u{\(String(scalar.value, radix: 16))}" : String(scalar)
            }
        }
        return escaped + "\""
    }
}
