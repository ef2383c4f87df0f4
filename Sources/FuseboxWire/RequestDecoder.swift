import FuseboxCore
import FuseboxJSON

/// Turns one line into a request, or into the error that tells the client
/// exactly what was wrong. Unknown fields are ignored (newer clients may send
/// more); known fields of the wrong type are refused.
public enum RequestDecoder {
    public static func decode(_ line: UnsafeRawBufferPointer) -> Result<Envelope, WireError> {
        // Most lines are flat objects of plain scalars: read in place, on the stack. The rest take the tree.
        let flat = withUnsafeTemporaryAllocation(of: FlatRequestLine.Member.self, capacity: FlatRequestLine.maxMembers) {
            members -> Result<Envelope, WireError>? in
            guard let read = FlatRequestLine.scan(line, into: members) else { return nil }
            return envelope(Fields(.flat(read)))
        }
        return flat ?? decodeThroughTree(line)
    }

    /// Every line through the JSON tree: the reference the flat reading is held to (tests, fuzzer).
    public static func decodeThroughTree(_ line: UnsafeRawBufferPointer) -> Result<Envelope, WireError> {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
            return .failure(WireError(.badJSON, "empty line; send one JSON object per line"))
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            return .failure(WireError(.badJSON, "not valid JSON at byte \(error.offset): \(error.message)"))
        }
        guard case .object = value else {
            return .failure(WireError(.badRequest, "a request is a JSON object such as {\"op\":\"ping\"}; got \(value.typeName)"))
        }
        return envelope(Fields(.tree(value)))
    }

    private static func envelope(_ fields: Fields) -> Result<Envelope, WireError> {
        var fields = fields
        do throws(WireError) {
            fields.id = try requestID(fields["id"])
            let request = try request(&fields)
            let reply = try fields.bool("reply") ?? true
            if !reply, request.op != .record {
                throw WireError(.badRequest, "\"reply\": false is allowed only on \"record\" (every other op answers)")
            }
            return .success(Envelope(id: fields.id, request: request, reply: reply))
        } catch {
            var error = error
            error.id = error.id ?? fields.id
            error.unanswered = fields["op"] == .string("record") && fields["reply"] == .bool(false)
            return .failure(error)
        }
    }

    public static func decode(_ text: String) -> Result<Envelope, WireError> {
        var copy = text
        return copy.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }

    private static func requestID(_ value: JSONValue?) throws(WireError) -> RequestID? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?:
            guard text.utf8.count <= WireLimits.maxIDBytes else {
                throw WireError(.badRequest, "\"id\" is longer than \(WireLimits.maxIDBytes) bytes")
            }
            return .string(text)
        case .number(let text)?:
            guard text.utf8.count <= 40 else { throw WireError(.badRequest, "\"id\" is a number longer than 40 digits") }
            return .number(text)
        case let other?:
            throw WireError(.badRequest, "\"id\" must be a string or a number, got \(other.typeName)")
        }
    }

    /// The op: a decision op of a flat line compared in place, anything else read (and refused) in general.
    private static func op(_ fields: Fields) throws(WireError) -> Request.Op {
        if let op = fields.decisionOp() { return op }
        guard let opValue = fields["op"] else {
            throw WireError(.badRequest, "missing \"op\"; one of: \(opList)")
        }
        guard case .string(let opName) = opValue else {
            throw WireError(.badRequest, "\"op\" must be a string, got \(opValue.typeName)")
        }
        guard let op = Request.Op(rawValue: opName) else {
            throw WireError(.unknownOp, "unknown op \"\(opName.prefix(64))\"; one of: \(opList)")
        }
        return op
    }

    private static func request(_ fields: inout Fields) throws(WireError) -> Request {
        switch try op(fields) {
        case .hello:
            return .hello(
                protocol: try fields.int("protocol", 0...1_000_000), client: try fields.string("client", limit: 256),
                failOpen: try fields.int("fail_open", 0...WireLimits.maxTokens) ?? 0
            )
        case .acquire:
            return .acquire(
                breaker: try fields.name("breaker"), cost: try fields.int("cost", 0...WireLimits.maxTokens) ?? 0,
                timeoutMs: try fields.int("timeout_ms", 0...WireLimits.maxTimeoutMs)
            )
        case .route:
            return .route(
                chain: try fields.name("chain"), exclude: try fields.names("exclude"),
                cost: try fields.int("cost", 0...WireLimits.maxTokens) ?? 0, requires: try fields.names("requires")
            )
        case .report:
            let permit = try fields.permit(for: "report")  // its own errors, if any, after the report's
            let report = try callReport(&fields)
            return .report(permit: try permit.get(), report)
        case .renew:
            return .renew(permit: try fields.permit(for: "renew").get())
        case .record:
            return .record(
                breaker: try fields.name("breaker"), try callReport(&fields),
                generation: try fields.int("generation", 0...Int.max).map { UInt64($0) }
            )
        case .status:
            return .status(breaker: try fields.string("breaker", limit: WireLimits.maxNameBytes))
        case .force:
            let breaker = try fields.name("breaker")
            guard let stateText = try fields.string("state", limit: 32) else {
                throw WireError(.badRequest, "\"force\" needs \"state\": one of \(ForcedMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let mode = ForcedMode(rawValue: stateText) else {
                throw WireError(.badRequest, "\"state\" must be one of \(ForcedMode.allCases.map(\.rawValue).joined(separator: ", ")); got \"\(stateText.prefix(32))\"")
            }
            return .force(breaker: breaker, mode: mode, reason: try fields.string("reason", limit: 256), local: try fields.bool("local") ?? false)
        case .reset:
            return .reset(breaker: try fields.name("breaker"), local: try fields.bool("local") ?? false)
        case .subscribe:
            let events = try fields.names("events")
            if let unknown = events.first(where: { $0 != "transition" }) {
                throw WireError(.badRequest, "unknown event \"\(unknown)\" in \"events\"; known: transition")
            }
            return .subscribe(events: events.isEmpty ? ["transition"] : events)
        case .ping:
            return .ping
        }
    }

    private static func callReport(_ fields: inout Fields) throws(WireError) -> CallReport {
        var report = CallReport()
        if let text = try fields.string("outcome", limit: 32) {
            guard let outcome = Outcome(rawValue: text) else {
                throw WireError(.badRequest, "\"outcome\" must be one of \(Outcome.allCases.map(\.rawValue).joined(separator: ", ")); got \"\(text.prefix(32))\"")
            }
            report.outcome = outcome
        }
        report.status = try fields.int("status", 100...599)
        if let text = try fields.string("error_kind", limit: 32) {
            guard let kind = ErrorKind(rawValue: text) else {
                throw WireError(.badRequest, "\"error_kind\" must be timeout or connection; got \"\(text.prefix(32))\"")
            }
            report.errorKind = kind
        }
        guard report.outcome != nil || report.status != nil || report.errorKind != nil else {
            throw WireError(.badRequest, "a report needs \"outcome\" (success, failure, timeout, ignored, cancelled) or \"status\" (an HTTP status)")
        }
        report.latency = try fields.milliseconds("latency_ms")
        report.retryAfter = try fields.milliseconds("retry_after_ms")
        report.timeToFirstByte = try fields.milliseconds("ttfb_ms")
        report.tokensUsed = try fields.int("tokens_used", 0...WireLimits.maxTokens)
        report.error = try fields.string("error", limit: nil).map(truncatedError)
        return report
    }

    /// At most `WireLimits.maxErrorBytes` bytes, cut on a character boundary.
    static func truncatedError(_ text: String) -> String {
        guard text.utf8.count > WireLimits.maxErrorBytes else { return text }
        var cut = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            if bytes + size > WireLimits.maxErrorBytes - 3 { break }
            cut.append(character)
            bytes += size
        }
        return cut + "…"
    }

    static let opList = Request.Op.allCases.map(\.rawValue).joined(separator: ", ")
}
