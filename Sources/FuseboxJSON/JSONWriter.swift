/// Builds one JSON object on one line into a byte array: what every response,
/// event and log line is made with. Strings are escaped for any content
/// (quotes, backslashes, control characters, U+2028/2029), so a hostile error
/// text can never break a line apart.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    /// The finished object, with a trailing newline.
    public mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        bytes.append(0x0A)
        return bytes
    }

    /// `,"key":` in one append (an answer writes a dozen keys).
    private mutating func key(_ key: StaticString) {
        let count = key.utf8CodeUnitCount
        let comma = needsComma ? 1 : 0
        needsComma = true
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count + 4) { out in
            out[0] = UInt8(ascii: ",")
            out[1] = UInt8(ascii: "\"")
            (out.baseAddress! + 2).update(from: key.utf8Start, count: count)
            out[count + 2] = UInt8(ascii: "\"")
            out[count + 3] = UInt8(ascii: ":")
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: out[(1 - comma)...]))
        }
    }

    public mutating func string(_ key: StaticString, _ value: String?) {
        self.key(key)
        guard let value else { return null() }
        Self.appendString(value, to: &bytes)
    }

    public mutating func int(_ key: StaticString, _ value: Int64?) {
        self.key(key)
        guard let value else { return null() }
        Self.appendInteger(value, to: &bytes)
    }

    /// Decimal digits written in place (a `String` per number cost more than the rest of the answer).
    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            repeat {
                start -= 1
                digits[start] = 0x30 + UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { out.append(UInt8(ascii: "-")) }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    public mutating func int(_ key: StaticString, _ value: Int?) { int(key, value.map(Int64.init)) }

    /// A finite number with up to six decimals; non-finite values become null.
    public mutating func double(_ key: StaticString, _ value: Double?) {
        self.key(key)
        guard let value, value.isFinite else { return null() }
        bytes.append(contentsOf: Self.formatDouble(value).utf8)
    }

    public mutating func bool(_ key: StaticString, _ value: Bool) {
        self.key(key)
        let word: StaticString = value ? "true" : "false"
        bytes.append(contentsOf: UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount))
    }

    /// Already-encoded JSON (an id echoed as the client wrote it, a nested value).
    public mutating func raw(_ key: StaticString, _ json: some Sequence<UInt8>) {
        self.key(key)
        bytes.append(contentsOf: json)
    }

    /// The same for bytes in memory: no generic sequence to walk (a permit id on every acquire answer).
    public mutating func raw(_ key: StaticString, _ json: UnsafeBufferPointer<UInt8>) {
        self.key(key)
        bytes.append(contentsOf: json)
    }

    public mutating func stringArray(_ key: StaticString, _ values: [String]) {
        self.key(key)
        bytes.append(UInt8(ascii: "["))
        for (i, value) in values.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.appendString(value, to: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// An array of objects, each built by `body` (without the trailing newline).
    public mutating func objects<T>(_ key: StaticString, _ items: [T], _ body: (inout JSONWriter, T) -> Void) {
        self.key(key)
        bytes.append(UInt8(ascii: "["))
        for (i, item) in items.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            var inner = JSONWriter(capacity: 128)
            body(&inner, item)
            bytes.append(contentsOf: inner.bytes)
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// A nested object built by `body`.
    public mutating func object(_ key: StaticString, _ body: (inout JSONWriter) -> Void) {
        self.key(key)
        var inner = JSONWriter(capacity: 128)
        body(&inner)
        bytes.append(contentsOf: inner.bytes)
        bytes.append(UInt8(ascii: "}"))
    }

    /// A member with a key known only at run time and any value.
    public mutating func value(_ key: String, _ value: JSONValue) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
        Self.appendString(key, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        Self.append(value, to: &bytes)
    }

    /// Any value, compact, on one line.
    public static func append(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let text): appendString(text, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, (key, item)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Any value as compact JSON text.
    public static func text(_ value: JSONValue) -> String {
        var out: [UInt8] = []
        append(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func null() { bytes.append(contentsOf: "null".utf8) }

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Escapes `"`, `\`, control characters, DEL, U+2028 and U+2029; copies
    /// every other byte as it is, in runs (this is on the decision path: a
    /// String per character cost most of an answer's encoding).
    public static func appendString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in
            var copied = 0
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                var width = 1
                let escaped: UInt32
                switch byte {
                case 0x22, 0x5C, 0..<0x20, 0x7F:
                    escaped = UInt32(byte)
                case 0xE2 where index + 2 < bytes.count && bytes[index + 1] == 0x80 && (bytes[index + 2] == 0xA8 || bytes[index + 2] == 0xA9):
                    escaped = bytes[index + 2] == 0xA8 ? 0x2028 : 0x2029  // line and paragraph separators break JavaScript
                    width = 3
                default:
                    index += 1
                    continue
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[copied..<index]))
                appendEscape(escaped, to: &out)
                index += width
                copied = index
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[copied..<bytes.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func appendEscape(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0x22: out.append(contentsOf: [0x5C, 0x22])
        case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
        case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
        case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
        case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
        default:
            out.append(contentsOf: [0x5C, UInt8(ascii: "u"), hex[Int(scalar >> 12 & 0xF)], hex[Int(scalar >> 8 & 0xF)],
                                    hex[Int(scalar >> 4 & 0xF)], hex[Int(scalar & 0xF)]])
        }
    }

    /// `0.5`, `1`, `0.333333`: short and stable.
    public static func formatDouble(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        let scaled = (value * 1_000_000).rounded()
        guard abs(scaled) < 9e18 else { return String(value) }
        var text = String(Int64(abs(scaled)))
        while text.count < 7 { text = "0" + text }
        var fraction = String(text.suffix(6))
        while fraction.hasSuffix("0") { fraction.removeLast() }
        let whole = String(text.dropLast(6))
        let sign = value < 0 ? "-" : ""
        return fraction.isEmpty ? "\(sign)\(whole)" : "\(sign)\(whole).\(fraction)"
    }
}
