import Foundation
import Testing
@testable import FuseboxWire

/// The flat reading (straight from the bytes) and the JSON tree must decode
/// every line to the same request or the same error: the lines clients send,
/// the fuzz corpus, and every one-byte mutation of them.
@Suite("Request decoding: flat reading against the tree")
struct RequestDecoderDifferentialTests {
    static let clientLines = [
        #"{"op":"hello","protocol":1,"client":"fusebox-python/0.9"}"#,
        #"{"op":"acquire","breaker":"openai"}"#,
        #"{"op":"acquire","breaker":"openai","cost":1200,"timeout_ms":500,"id":7}"#,
        #"{"op":"route","chain":"llm","cost":900}"#,
        #"{"op":"report","permit":"1a2b3c4d5e6f7a8b","outcome":"success","latency_ms":12.5,"id":"r-1"}"#,
        #"{"op":"report","permit":"1a","status":503,"latency_ms":1.5e3,"error":"boom","retry_after_ms":2000,"ttfb_ms":0}"#,
        #"{"op":"record","breaker":"openai","generation":4,"outcome":"success","latency_ms":0.250,"reply":false}"#,
        #"{"op":"record","breaker":"b","outcome":"timeout","error_kind":"timeout","tokens_used":null}"#,
        // Whole milliseconds are read in place on a flat line: the limits and a negative must agree.
        #"{"op":"report","permit":"2b","latency_ms":2592000000,"retry_after_ms":2592000001,"ttfb_ms":-3}"#,
        #"{"op":"report","permit":"2c","latency_ms":999999999999999,"ttfb_ms":1000000000000000}"#,
        #"{"op":"renew","permit":"9f"}"#,
        #"{"op":"status","breaker":"b"}"#,
        #"{"op":"force","breaker":"b","state":"metrics_only","reason":"drill","local":true}"#,
        #"{"op":"reset","breaker":"b","local":false}"#,
        #" { "op" : "ping" , "id" : -0.5E+2 } "#,
        #"{}"#,
    ]

    /// Bytes that change a line's shape: structure, escapes, number parts, control and non-ASCII bytes.
    static let mutations: [UInt8] = Array(#"{}[]",:\ 0-+.eEtfn"#.utf8) + [0x00, 0x09, 0x0A, 0x7F, 0x80, 0xC3, 0xFF]

    static func corpusLines() throws -> [String] {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/protocol")
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        #expect(!files.isEmpty, "the protocol fuzz corpus at \(folder.path)")
        return try files.flatMap { try String(contentsOf: $0, encoding: .utf8).split(separator: "\n").map(String.init) }
    }

    static func agree(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { RequestDecoder.decode($0) == RequestDecoder.decodeThroughTree($0) }
    }

    static func readsFlat(_ line: String) -> Bool {
        Array(line.utf8).withUnsafeBytes { bytes in
            withUnsafeTemporaryAllocation(of: FlatRequestLine.Member.self, capacity: FlatRequestLine.maxMembers) {
                FlatRequestLine.scan(bytes, into: $0) != nil
            }
        }
    }

    @Test func theLinesClientsSendAreReadFlat() {
        for line in Self.clientLines { #expect(Self.readsFlat(line), "\(line)") }
    }

    @Test func linesTheFlatReadingLeavesToTheTree() {
        let others = [
            #"{"op":"route","chain":"llm","exclude":["openai"]}"#, #"{"op":"ping","x":{"y":1}}"#,
            #"{"op":"acquire","breaker":"caf\u00e9"}"#, #"{"op":"acquire","breaker":"café"}"#,
            #"{"op":"ping","op":"ping"}"#, #"{"op":"ping",}"#, #"{"op":01}"#, #"[1]"#, "", "   ",
            "{" + (0..<17).map { #""k\#($0)":1"# }.joined(separator: ",") + "}",
        ]
        for line in others {
            #expect(!Self.readsFlat(line), "\(line)")
            #expect(Self.agree(Array(line.utf8)), "\(line)")
        }
    }

    @Test(arguments: ["0", "-0", "7", "-42", "812", "999999999999999", "-999999999999999", "1000000000000000",
                      "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1.5", "1e3", "-", ""])
    func wholeNumbersReadAsTheGeneralParsersDo(text: String) {
        #expect((Fields.wholeNumber(text) ?? Int(text)) == Int(text))
        #expect((Fields.wholeNumber(text).map(Double.init) ?? Double(text)) == Double(text))
    }

    @Test func everyOneByteMutationDecodesTheSameBothWays() throws {
        var checked = 0
        for line in try Self.corpusLines() + Self.clientLines {
            let bytes = Array(line.utf8)
            #expect(Self.agree(bytes), "\(line)")
            for index in bytes.indices {
                var removed = bytes
                removed.remove(at: index)
                #expect(Self.agree(removed), "\(line) without byte \(index)")
                #expect(Self.agree(Array(bytes[..<index])), "\(line) cut at \(index)")
                for byte in Self.mutations where byte != bytes[index] {
                    var changed = bytes
                    changed[index] = byte
                    #expect(Self.agree(changed), "\(line) with byte \(index) as \(byte)")
                    checked += 1
                }
            }
        }
        #expect(checked > 10_000)
    }
}
