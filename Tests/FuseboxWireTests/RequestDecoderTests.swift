import FuseboxCore
import Testing
@testable import FuseboxWire
import FuseboxJSON

@Suite("Request decoding")
struct RequestDecoderTests {
    func decode(_ line: String) -> Result<Envelope, WireError> { RequestDecoder.decode(line) }

    func error(_ line: String) -> WireError? {
        if case .failure(let error) = decode(line) { return error }
        return nil
    }

    @Test func everyOpDecodes() throws {
        let cases: [(String, Request)] = [
            (#"{"op":"hello","protocol":1,"client":"py/1.0"}"#, .hello(protocol: 1, client: "py/1.0")),
            (#"{"op":"acquire","breaker":"openai"}"#, .acquire(breaker: "openai")),
            (#"{"op":"route","chain":"llm","exclude":["openai"]}"#, .route(chain: "llm", exclude: ["openai"])),
            (#"{"op":"acquire","breaker":"openai","cost":1200}"#, .acquire(breaker: "openai", cost: 1_200)),
            (#"{"op":"route","chain":"llm","cost":900}"#, .route(chain: "llm", exclude: [], cost: 900)),
            (#"{"op":"report","permit":"1a","outcome":"success","tokens_used":1500}"#,
             .report(permit: PermitID(rawValue: 0x1a), CallReport(outcome: .success, tokensUsed: 1_500))),
            (#"{"op":"report","permit":"1a","status":503,"latency_ms":12.5,"error":"boom","retry_after_ms":2000}"#,
             .report(permit: PermitID(rawValue: 0x1a), CallReport(status: 503, latency: .microseconds(12_500), error: "boom", retryAfter: .seconds(2)))),
            (#"{"op":"record","breaker":"b","outcome":"timeout","error_kind":"timeout"}"#,
             .record(breaker: "b", CallReport(outcome: .timeout, errorKind: .timeout))),
            (#"{"op":"status"}"#, .status(breaker: nil)),
            (#"{"op":"status","breaker":"b"}"#, .status(breaker: "b")),
            (#"{"op":"force","breaker":"b","state":"metrics_only","reason":"drill"}"#, .force(breaker: "b", mode: .metricsOnly, reason: "drill")),
            (#"{"op":"reset","breaker":"b"}"#, .reset(breaker: "b")),
            (#"{"op":"subscribe"}"#, .subscribe(events: ["transition"])),
            (#"{"op":"ping","future_field":{"x":[1,2]}}"#, .ping),
        ]
        for (line, expected) in cases {
            #expect(try decode(line).get().request == expected, "\(line)")
        }
    }

    @Test func idsEchoAsWritten() throws {
        #expect(try decode(#"{"op":"ping","id":"abc"}"#).get().id == .string("abc"))
        #expect(try decode(#"{"op":"ping","id":-1.5e3}"#).get().id == .number("-1.5e3"))
        #expect(error(#"{"op":"nope","id":7}"#)?.id == .number("7"))
        #expect(error(#"{"op":"ping","id":[1]}"#)?.code == .badRequest)
    }

    @Test(arguments: [
        ("", ErrorCode.badJSON, "empty line"),
        ("   ", .badJSON, "empty line"),
        ("not json", .badJSON, "not valid JSON"),
        (#"{"op":"ping""#, .badJSON, "expected ',' or '}'"),
        ("[1,2]", .badRequest, "a request is a JSON object"),
        (#""op""#, .badRequest, "got a string"),
        (#"{"id":1}"#, .badRequest, "missing \"op\""),
        (#"{"op":5}"#, .badRequest, "\"op\" must be a string"),
        (#"{"op":"explode"}"#, .unknownOp, "one of: hello, acquire"),
        (#"{"op":"acquire"}"#, .badRequest, "missing \"breaker\""),
        (#"{"op":"acquire","breaker":7}"#, .badRequest, "\"breaker\" must be a string, got a number"),
        (#"{"op":"acquire","breaker":"a","cost":-5}"#, .badRequest, "\"cost\" must be a whole number from 0 to 1000000000"),
        (#"{"op":"acquire","breaker":"a","cost":"many"}"#, .badRequest, "\"cost\" must be a number, got a string"),
        (#"{"op":"report","permit":"1","status":200,"tokens_used":2.5}"#, .badRequest, "\"tokens_used\" must be a whole number"),
        (#"{"op":"report","permit":"zz","status":200}"#, .unknownPermit, "permit \"zz\" is not a permit id"),
        (#"{"op":"report","permit":"+1a","status":200}"#, .unknownPermit, "is not a permit id"),
        (#"{"op":"report","permit":"zz","outcome":"great"}"#, .badRequest, "\"outcome\" must be one of"),
        (#"{"op":"report","permit":1,"status":200}"#, .badRequest, "\"permit\" must be a string"),
        (#"{"op":"renew","permit":"00000000000000000"}"#, .unknownPermit, "is not a permit id"),
        (#"{"op":"renew"}"#, .badRequest, "\"renew\" needs \"permit\""),
        (#"{"op":"route","chain":"c","exclude":"a"}"#, .badRequest, "array of strings"),
        (#"{"op":"report","permit":"1"}"#, .badRequest, "needs \"outcome\""),
        (#"{"op":"report","status":200}"#, .badRequest, "needs \"permit\""),
        (#"{"op":"report","permit":"1","outcome":"great"}"#, .badRequest, "\"outcome\" must be one of"),
        (#"{"op":"report","permit":"1","status":99999999999999999999999}"#, .badRequest, "from 100 to 599"),
        (#"{"op":"report","permit":"1","status":200,"latency_ms":1e400}"#, .badRequest, "milliseconds"),
        (#"{"op":"report","permit":"1","status":200,"latency_ms":-1}"#, .badRequest, "milliseconds"),
        (#"{"op":"force","breaker":"b","state":"sideways"}"#, .badRequest, "\"state\" must be one of"),
        (#"{"op":"subscribe","events":["gossip"]}"#, .badRequest, "unknown event"),
        (#"{"op":"ping","op":"ping"}"#, .badJSON, "appears twice"),
    ])
    func badInputGetsAPreciseError(line: String, code: ErrorCode, message: String) throws {
        let failure = try #require(error(line), "\(line) should fail")
        #expect(failure.code == code, "\(line): \(failure)")
        #expect(failure.message.contains(message), "\(line): \(failure.message)")
    }

    @Test func invalidUTF8IsBadJSON() {
        let bytes: [UInt8] = Array(#"{"op":"acquire","breaker":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        let result = bytes.withUnsafeBytes { RequestDecoder.decode($0) }
        guard case .failure(let error) = result else { Issue.record("accepted invalid UTF-8"); return }
        #expect(error.code == .badJSON)
        #expect(error.message.contains("UTF-8"))
    }

    @Test func asciiAndMultiByteNamesReadBackExactly() throws {
        // ASCII takes the parser's unvalidated path; anything else is validated.
        for name in ["openai", "ollama-eu_2", "café", "模型", "🔥x"] {
            let request = try decode(#"{"op":"acquire","breaker":"\#(name)"}"#).get().request
            #expect(request == .acquire(breaker: name))
        }
        let overlong: [UInt8] = Array(#"{"op":"acquire","breaker":"a"#.utf8) + [0xC0, 0xAF] + Array(#""}"#.utf8)
        #expect(overlong.withUnsafeBytes { RequestDecoder.decode($0) }.failureCode == .badJSON)
    }

    @Test func aRecordMayCarryTheGenerationItSawAndAskForNoReply() throws {
        let envelope = try decode(#"{"op":"record","breaker":"b","outcome":"success","generation":12,"reply":false}"#).get()
        #expect(envelope.request == .record(breaker: "b", CallReport(outcome: .success), generation: 12))
        #expect(envelope.reply == false)
        #expect(try decode(#"{"op":"record","breaker":"b","status":200}"#).get().reply == true)
        #expect(error(#"{"op":"acquire","breaker":"b","reply":false}"#)?.message == #""reply": false is allowed only on "record" (every other op answers)"#)
        #expect(error(#"{"op":"record","breaker":"b","status":200,"generation":-1}"#)?.message.hasPrefix(#""generation" must be a whole number"#) == true)
        let wrong = error(#"{"op":"record","breaker":"b","outcome":"sideways","reply":false}"#)
        #expect(wrong?.unanswered == true, "a record that asked for no reply gets none, even to say it was wrong")
        #expect(error(#"{"op":"record","breaker":"b","outcome":"sideways"}"#)?.unanswered == false)
    }

    @Test func longErrorTextsAreCutOnACharacterBoundary() throws {
        let long = String(repeating: "é", count: 5_000)
        let request = try decode(#"{"op":"record","breaker":"b","status":500,"error":"\#(long)"}"#).get().request
        guard case .record(_, let report, _) = request, let text = report.error else { Issue.record("no error text"); return }
        #expect(text.utf8.count <= WireLimits.maxErrorBytes)
        #expect(text.hasSuffix("…"))
    }
}

@Suite("JSON")
struct JSONTests {
    @Test func parsesEscapesAndSurrogatePairs() throws {
        let value = try JSONParser.parse(#"{"a":"x\"\\\/\n\u00e9\ud83d\ude00","b":[true,false,null,-0.5e2]}"#)
        #expect(value["a"] == .string("x\"\\/\né😀"))
        #expect(value["b"] == .array([.bool(true), .bool(false), .null, .number("-0.5e2")]))
    }

    @Test(arguments: [#"{"a":"\ud800"}"#, "01", "[1,]", #"{"a" 1}"#, "tru", "\"\u{01}\"", "[" + String(repeating: "[", count: 40)])
    func refusesMalformedJSON(text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }

    @Test func writerEscapesExactlyTheseAndCopiesEverythingElse() {
        var out: [UInt8] = []
        JSONWriter.appendString("a\"b\\c\n\r\t\u{1}\u{1F}\u{7F}\u{2028}\u{2029}\u{2027}é😀 end", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #""a\"b\\c\n\r\t\u0001\u001f\u007f\u2028\u2029\#u{2027}é😀 end""#)
        out = []
        JSONWriter.appendString("\u{2000}€\u{E2}", to: &out)  // E2 80 80 and E2 82 AC start like the separators, and are not
        #expect(String(decoding: out, as: UTF8.self) == "\"\u{2000}€\u{E2}\"")
        out = []
        JSONWriter.appendString("", to: &out)
        #expect(out == [0x22, 0x22])
    }

    @Test(arguments: [Int64.min, -1_000, -1, 0, 7, 10, 999_999, 1_734_000_000_123, Int64.max])
    func writerWritesIntegersAsSwiftPrintsThem(value: Int64) {
        var writer = JSONWriter()
        writer.int("n", value)
        #expect(String(decoding: writer.finish(), as: UTF8.self) == "{\"n\":\(value)}\n")
    }

    @Test func writerEscapesEverythingThatCouldBreakALine() throws {
        var writer = JSONWriter()
        let hostile = "quote\" back\\ nl\n cr\r nul\u{0} del\u{7F} ls\u{2028} emoji😀"
        writer.string("s", hostile)
        writer.double("d", 0.333333333)
        writer.double("nan", .nan)
        let line = writer.finish()
        #expect(line.last == 0x0A)
        #expect(!line.dropLast().contains(0x0A) && !line.contains(0x0D) && !line.contains(0))
        let parsed = try line.dropLast().withUnsafeBytes { try JSONParser.parse($0) }
        #expect(parsed["s"] == .string(hostile))
        #expect(parsed["d"] == .number("0.333333"))
        #expect(parsed["nan"] == .null)
    }
}

@Suite("Timestamps")
struct TimestampTests {
    @Test func formatsRFC3339InUTCWithMilliseconds() {
        #expect(Timestamp.milliseconds(0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.milliseconds(1_796_053_319_123).rfc3339 == "2026-11-30T15:41:59.123Z")
        #expect(Timestamp.milliseconds(951_782_400_000).rfc3339 == "2000-02-29T00:00:00.000Z")
    }

    @Test func parsesWhatItFormatsAndOffsets() {
        let t = Timestamp.milliseconds(1_796_053_319_123)
        #expect(Timestamp(rfc3339: t.rfc3339) == t)
        #expect(Timestamp(rfc3339: "2026-11-30T16:41:59.123+01:00") == t)
        #expect(Timestamp(rfc3339: "2026-11-30") == Timestamp.milliseconds(1_795_996_800_000))
        #expect(Timestamp(rfc3339: "2026-13-01") == nil)
        #expect(Timestamp(rfc3339: "yesterday") == nil)
    }

    @Test func durationsBecomeWholeNanosecondsTruncatedAndClamped() {
        #expect(Duration.microseconds(1_500).nanosecondsClamped == 1_500_000)
        #expect((Duration.nanoseconds(-7) + .nanoseconds(0)).nanosecondsClamped == -7)
        #expect((Duration.seconds(2) / 3).nanosecondsClamped == 666_666_666)
        #expect((Duration.seconds(-2) / 3).nanosecondsClamped == -666_666_666)
        #expect(Duration.seconds(Int64.max).nanosecondsClamped == .max)
        #expect(Duration.seconds(Int64.min).nanosecondsClamped == .min)
        #expect(Duration.nanoseconds(Int64.max).nanosecondsClamped == .max)
        #expect((Duration.nanoseconds(Int64.max) + .nanoseconds(1)).nanosecondsClamped == .max)
        #expect(Duration.seconds(90).millisecondsClamped == 90_000)
    }

    @Test func refusesDaysAMonthDoesNotHave() {
        for text in ["2026-02-31", "2026-02-29", "2026-04-31", "2100-02-29", "2026-06-31T00:00:00Z"] {
            #expect(Timestamp(rfc3339: text) == nil, "\(text)")
        }
        for text in ["2024-02-29", "2000-02-29", "2026-01-31", "2026-12-31T23:59:59Z"] {
            #expect(Timestamp(rfc3339: text) != nil, "\(text)")
        }
    }
}

extension Result where Failure == WireError {
    var failureCode: ErrorCode? {
        if case .failure(let error) = self { return error.code }
        return nil
    }
}
