import FuseboxCore
import FuseboxJSON

/// Typed reads of a request's fields, each with a message that names the
/// field and what it must be.
struct Fields {
    enum Source {
        case tree(JSONValue)
        case flat(FlatRequestLine)
    }

    let source: Source
    var id: RequestID?

    init(_ source: Source) { self.source = source }

    /// acquire, report or record (most lines) read from a flat line's bytes; nil otherwise, and the
    /// general reading of "op", with its errors, follows.
    func decisionOp() -> Request.Op? {
        guard case .flat(let line) = source, let op = line.stringRange("op") else { return nil }
        if line.text(op, is: "acquire") { return .acquire }
        if line.text(op, is: "report") { return .report }
        if line.text(op, is: "record") { return .record }
        return nil
    }

    subscript(key: StaticString) -> JSONValue? {
        switch source {
        case .flat(let line): return line[key]
        case .tree(.object(let members)):
            let wanted = UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
            return members.first { $0.0.utf8.elementsEqual(wanted) }?.1
        case .tree: return nil
        }
    }

    func string(_ key: StaticString, limit: Int?) throws(WireError) -> String? {
        switch self[key] {
        case nil, .null?: return nil
        case .string(let text)?:
            if let limit, text.utf8.count > limit {
                throw WireError(.badRequest, "\"\(key)\" is longer than \(limit) bytes")
            }
            return text
        case let other?: throw WireError(.badRequest, "\"\(key)\" must be a string, got \(other.typeName)")
        }
    }

    /// "permit": missing, not a string or longer than 64 bytes throws now; text that is no permit id
    /// comes back as the error to throw once the rest of the request is read (the order of errors
    /// clients have always seen). A flat line's digits are read in place.
    func permit(for op: StaticString) throws(WireError) -> Result<PermitID, WireError> {
        if case .flat(let line) = source, let digits = line.stringRange("permit"), digits.count <= 64 {
            let bytes = UnsafeRawBufferPointer(rebasing: line.bytes[digits]).assumingMemoryBound(to: UInt8.self)
            if let id = PermitID(digits: bytes) { return .success(id) }
            return .failure(Self.notAPermit(String(decoding: bytes, as: UTF8.self)))
        }
        guard let text = try string("permit", limit: 64) else {
            throw WireError(.badRequest, "\"\(op)\" needs \"permit\", the id that acquire or route returned")
        }
        return PermitID(text).map { .success($0) } ?? .failure(Self.notAPermit(text))
    }

    static func notAPermit(_ text: String) -> WireError {
        WireError(.unknownPermit, "permit \"\(text.prefix(64))\" is not a permit id (hexadecimal, as acquire returned it)")
    }

    /// A required breaker or chain name.
    func name(_ key: StaticString) throws(WireError) -> String {
        guard let text = try string(key, limit: WireLimits.maxNameBytes) else {
            throw WireError(.badRequest, "missing \"\(key)\" (a string)")
        }
        return text
    }

    func names(_ key: StaticString) throws(WireError) -> [String] {
        switch self[key] {
        case nil, .null?: return []
        case .array(let items)?:
            guard items.count <= 64 else { throw WireError(.badRequest, "\"\(key)\" lists more than 64 names") }
            var names: [String] = []
            for item in items {
                guard case .string(let text) = item, text.utf8.count <= WireLimits.maxNameBytes else {
                    throw WireError(.badRequest, "\"\(key)\" must be an array of names (strings)")
                }
                names.append(text)
            }
            return names
        case let other?: throw WireError(.badRequest, "\"\(key)\" must be an array of strings, got \(other.typeName)")
        }
    }

    func bool(_ key: StaticString) throws(WireError) -> Bool? {
        switch self[key] {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        case let other?: throw WireError(.badRequest, "\"\(key)\" must be true or false, got \(other.typeName)")
        }
    }

    func int(_ key: StaticString, _ range: ClosedRange<Int>) throws(WireError) -> Int? {
        switch self[key] {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let number = Self.wholeNumber(text) ?? Int(text), range.contains(number) else {
                throw WireError(.badRequest, "\"\(key)\" must be a whole number from \(range.lowerBound) to \(range.upperBound), got \(text.prefix(40))")
            }
            return number
        case let other?: throw WireError(.badRequest, "\"\(key)\" must be a number, got \(other.typeName)")
        }
    }

    /// A non-negative number of milliseconds (fractions allowed), at most 30 days.
    func milliseconds(_ key: StaticString) throws(WireError) -> Duration? {
        // Whole milliseconds on a flat line (what clients write) skip the String and the Double.
        if case .flat(let line) = source, let whole = line.wholeNumber(key), whole >= 0, whole <= 2_592_000_000 {
            return .nanoseconds(Int64(whole) * 1_000_000)
        }
        switch self[key] {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let number = Self.wholeNumber(text).map(Double.init) ?? Double(text), number.isFinite, number >= 0, number <= 2_592_000_000 else {
                throw WireError(.badRequest, "\"\(key)\" must be a number of milliseconds from 0 to 2592000000 (30 days), got \(text.prefix(40))")
            }
            return .nanoseconds(Int64((number * 1_000_000).rounded()))
        case let other?: throw WireError(.badRequest, "\"\(key)\" must be a number of milliseconds, got \(other.typeName)")
        }
    }

    /// Up to 15 digits with an optional minus sign, read without the general parsers (exact as a Double
    /// too); nil for anything else, which `Int(_:)` or `Double(_:)` then reads as before.
    static func wholeNumber(_ text: String) -> Int? {
        var text = text
        return text.withUTF8(wholeNumber)
    }

    static func wholeNumber(_ text: UnsafeBufferPointer<UInt8>) -> Int? {
        var value = 0
        var digits = 0
        var negative = false
        for byte in text {
            if byte == UInt8(ascii: "-"), digits == 0, !negative {
                negative = true
                continue
            }
            guard byte >= 0x30, byte <= 0x39, digits < 15 else { return nil }
            value = value * 10 + Int(byte - 0x30)
            digits += 1
        }
        guard digits > 0 else { return nil }
        return negative ? -value : value
    }
}
