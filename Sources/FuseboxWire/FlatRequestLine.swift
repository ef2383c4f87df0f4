import FuseboxJSON

/// A request line read straight from its bytes, without building a JSON tree:
/// one object whose keys and values are plain scalars (ASCII strings without
/// escapes, numbers, true, false, null), as every decision request a client
/// library writes is. Anything else (an array, a nested object, an escape, a
/// byte above 0x7F, a repeated key, more than `maxMembers` members, a syntax
/// error) makes `scan` return nil, and the tree parser, which owns every
/// error message, reads the line instead. So a line decodes the same either
/// way; `RequestDecoderDifferentialTests` and the protocol fuzzer hold the two
/// paths to that.
struct FlatRequestLine {
    enum Kind: UInt8 { case string, number, `true`, `false`, null }

    struct Member {
        var keyStart = 0, keyEnd = 0, valueStart = 0, valueEnd = 0
        var kind = Kind.null
    }

    /// More members than a request has: such a line takes the tree parser.
    static let maxMembers = 16

    let bytes: UnsafeRawBufferPointer
    let members: UnsafeBufferPointer<Member>
    /// One bit per key, from its length and first byte: most lookups are for keys a line does not
    /// have (a report's optional fields), and this turns them away without a comparison.
    let keyBits: UInt64

    @inline(__always) static func keyBit(count: Int, first: UInt8) -> UInt64 { 1 << UInt64((count &* 7 &+ Int(first)) & 63) }

    /// The member named `key`, as the tree parser would have made it.
    subscript(key: StaticString) -> JSONValue? {
        guard let member = member(key) else { return nil }
        switch member.kind {
        case .string: return .string(text(member))
        case .number: return .number(text(member))
        case .true: return .bool(true)
        case .false: return .bool(false)
        case .null: return .null
        }
    }

    /// ASCII, checked by the scan: no validation needed.
    private func text(_ member: Member) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[member.valueStart..<member.valueEnd]), as: UTF8.self)
    }

    /// A request reads a dozen keys: compared by length, then bytes, with no `String` made.
    private func member(_ key: StaticString) -> Member? {
        let wanted = key.utf8Start, count = key.utf8CodeUnitCount
        guard keyBits & Self.keyBit(count: count, first: wanted[0]) != 0 else { return nil }
        for index in members.indices where same(members[index].keyStart, members[index].keyEnd, wanted, count) {
            return members[index]
        }
        return nil
    }

    /// The number member `key` when it is plain digits (`Fields.wholeNumber`), read in place
    /// without making a `String`; nil when absent or written any other way.
    func wholeNumber(_ key: StaticString) -> Int? {
        guard let member = member(key), member.kind == .number else { return nil }
        let digits = UnsafeRawBufferPointer(rebasing: bytes[member.valueStart..<member.valueEnd])
        return Fields.wholeNumber(digits.assumingMemoryBound(to: UInt8.self))
    }

    /// Where the string member `key`'s text is, to compare with `is` without making a `String`.
    func stringRange(_ key: StaticString) -> Range<Int>? {
        guard let member = member(key), member.kind == .string else { return nil }
        return member.valueStart..<member.valueEnd
    }

    func text(_ range: Range<Int>, is word: StaticString) -> Bool {
        same(range.lowerBound, range.upperBound, word.utf8Start, word.utf8CodeUnitCount)
    }

    @inline(__always) private func same(_ start: Int, _ end: Int, _ wanted: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        end - start == count && Self.equalBytes(bytes, at: start, wanted, count)
    }

    /// `count` bytes of `line` from `start` against `wanted`, in a plain pointer loop (a generic
    /// `elementsEqual` on slices cost more than the rest of a lookup). Every comparison here uses it.
    @inline(__always) static func equalBytes(_ line: UnsafeRawBufferPointer, at start: Int, _ wanted: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        guard let base = line.baseAddress, start + count <= line.count else { return false }
        let from = base.assumingMemoryBound(to: UInt8.self) + start
        for index in 0..<count where from[index] != wanted[index] { return false }
        return true
    }

    /// Fills `into` with the line's members and reads them, or nil when the
    /// line is not a flat object of plain scalars.
    static func scan(_ bytes: UnsafeRawBufferPointer, into members: UnsafeMutableBufferPointer<Member>) -> FlatRequestLine? {
        var scanner = Scanner(bytes: bytes)
        scanner.skipWhitespace()
        guard scanner.take(UInt8(ascii: "{")) else { return nil }
        var count = 0
        var keyBits: UInt64 = 0
        scanner.skipWhitespace()
        if !scanner.take(UInt8(ascii: "}")) {
            while true {
                guard count < members.count, let key = scanner.plainString() else { return nil }
                for i in 0..<count where scanner.equal(members[i].keyStart..<members[i].keyEnd, key) { return nil }
                scanner.skipWhitespace()
                guard scanner.take(UInt8(ascii: ":")) else { return nil }
                scanner.skipWhitespace()
                guard let (kind, value) = scanner.scalar() else { return nil }
                members[count] = Member(keyStart: key.lowerBound, keyEnd: key.upperBound,
                                        valueStart: value.lowerBound, valueEnd: value.upperBound, kind: kind)
                count += 1
                if !key.isEmpty { keyBits |= keyBit(count: key.count, first: bytes[key.lowerBound]) }
                scanner.skipWhitespace()
                if scanner.take(UInt8(ascii: "}")) { break }
                guard scanner.take(UInt8(ascii: ",")) else { return nil }
                scanner.skipWhitespace()
            }
        }
        scanner.skipWhitespace()
        guard scanner.position == bytes.count else { return nil }
        return FlatRequestLine(bytes: bytes, members: UnsafeBufferPointer(rebasing: members[..<count]), keyBits: keyBits)
    }

    private struct Scanner {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func take(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            position += 1
            return true
        }

        mutating func skipWhitespace() {
            while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
        }

        func equal(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
            guard a.count == b.count, let base = bytes.baseAddress else { return false }
            return FlatRequestLine.equalBytes(bytes, at: a.lowerBound, base.assumingMemoryBound(to: UInt8.self) + b.lowerBound, a.count)
        }

        /// A quoted string of printable ASCII without escapes; the range inside the quotes.
        mutating func plainString() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")), let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
            let start = position
            var index = position
            while index < bytes.count {
                let byte = base[index]
                if byte == UInt8(ascii: "\"") {
                    position = index + 1
                    return start..<index
                }
                guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else { return nil }
                index += 1
            }
            return nil
        }

        mutating func scalar() -> (Kind, Range<Int>)? {
            guard let byte = peek else { return nil }
            let start = position
            switch byte {
            case UInt8(ascii: "\""):
                guard let range = plainString() else { return nil }
                return (.string, range)
            case UInt8(ascii: "t"): return word("true") ? (.true, start..<position) : nil
            case UInt8(ascii: "f"): return word("false") ? (.false, start..<position) : nil
            case UInt8(ascii: "n"): return word("null") ? (.null, start..<position) : nil
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return number() ? (.number, start..<position) : nil
            default: return nil
            }
        }

        mutating func word(_ literal: StaticString) -> Bool {
            guard FlatRequestLine.equalBytes(bytes, at: position, literal.utf8Start, literal.utf8CodeUnitCount) else { return false }
            position += literal.utf8CodeUnitCount
            return true
        }

        /// RFC 8259's number grammar, exactly as the tree parser holds it.
        mutating func number() -> Bool {
            _ = take(UInt8(ascii: "-"))
            guard let first = peek, isDigit(first) else { return false }
            position += 1
            if first != UInt8(ascii: "0") { skipDigits() }
            if take(UInt8(ascii: ".")) {
                guard let byte = peek, isDigit(byte) else { return false }
                skipDigits()
            }
            if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard let byte = peek, isDigit(byte) else { return false }
                skipDigits()
            }
            return true
        }

        private mutating func skipDigits() {
            while let byte = peek, isDigit(byte) { position += 1 }
        }

        private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    }
}
