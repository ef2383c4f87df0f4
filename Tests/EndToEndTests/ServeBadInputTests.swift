import Foundation
import FuseboxWire
import Testing
import FuseboxJSON

@Suite("fusebox serve: bad input")
struct ServeBadInputTests {
    static let cases: [(String, String)] = [
        ("this is not json", "bad_json"),
        ("[1,2,3]", "bad_request"),
        (#"{"breaker":"openai"}"#, "bad_request"),
        (#"{"op":"teleport"}"#, "unknown_op"),
        (#"{"op":"acquire","breaker":42}"#, "bad_request"),
        (#"{"op":"report","permit":"1","status":"five hundred"}"#, "bad_request"),
        (#"{"op":"acquire","breaker":"nope"}"#, "unknown_breaker"),
        (#"{"op":"route","chain":"nope"}"#, "unknown_chain"),
        (#"{"op":"report","permit":"ffffffff","outcome":"success"}"#, "unknown_permit"),
        (#"{"op":"report","permit":"not-hex!","outcome":"success"}"#, "unknown_permit"),
        (#"{"op":"record","breaker":"openai","status":1e999999}"#, "bad_request"),
        (#"{"op":"record","breaker":"openai","status":500,"latency_ms":123456789012345678901234567890}"#, "bad_request"),
        ("", "bad_json"),
    ]

    @Test func everyBadLineGetsItsErrorAndTheConnectionStaysUsable() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        for (line, code) in Self.cases {
            let answer = try client.request(line)
            #expect(answer["ok"] == .bool(false), "\(line)")
            #expect(answer["error"]?["code"] == .string(code), "\(line) → \(answer)")
            guard case .string(let message)? = answer["error"]?["message"] else { Issue.record("no message for \(line)"); continue }
            #expect(!message.isEmpty)
            _ = try client.ok(#"{"op":"ping"}"#)
        }
        // Invalid UTF-8 inside a string.
        try client.write(Array(#"{"op":"acquire","breaker":"op"#.utf8) + [0xFF, 0xFE] + Array("\"}\n".utf8))
        let invalid = try JSONParser.parse(try #require(try client.readLine()))
        #expect(invalid["error"]?["code"] == .string("bad_json"))
        // A permit reported twice.
        let permit = try client.permit("openai")
        _ = try client.ok(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)
        let again = try client.request(#"{"op":"report","permit":"\#(permit)","outcome":"success","id":"twice"}"#)
        #expect(again["error"]?["code"] == .string("unknown_permit"))
        #expect(again["id"] == .string("twice"))
        _ = try client.ok(#"{"op":"ping"}"#)
    }

    @Test func aOneMebibyteLineIsRefusedAndClosesOnlyThatConnection() throws {
        let sidecar = try SidecarProcess()
        let bystander = try sidecar.connect()
        let abuser = try sidecar.connect()
        // The server hangs up after 64 KiB, so the rest of the write may meet a closed socket.
        try? abuser.write(Array(repeating: UInt8(ascii: "a"), count: 1 << 20) + [0x0A])
        let answer = try JSONParser.parse(try #require(try abuser.readLine()))
        #expect(answer["error"]?["code"] == .string("line_too_long"))
        #expect(try abuser.readLine() == nil)  // closed
        _ = try bystander.ok(#"{"op":"ping"}"#)
        _ = try sidecar.connect().ok(#"{"op":"ping"}"#)
    }

    @Test func aLineJustUnderTheLimitIsServed() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        let padding = String(repeating: "x", count: WireLimits.maxLineBytes - 100)
        let answer = try client.request(#"{"op":"ping","pad":"\#(padding)"}"#)
        #expect(answer["ok"] == .bool(true))
    }

    @Test func theConnectionCapAnswersOverloaded() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("max_connections: 2"))
        let a = try sidecar.connect()
        let b = try sidecar.connect()
        let c = try sidecar.connect()
        let refused = try JSONParser.parse(try #require(try c.readLine()))
        #expect(refused["error"]?["code"] == .string("overloaded"))
        #expect(try c.readLine() == nil)
        _ = try a.ok(#"{"op":"ping"}"#)
        _ = try b.ok(#"{"op":"ping"}"#)
    }
}
