import Foundation
import FuseboxWire
import Testing
import FuseboxJSON

@Suite("fusebox serve: access control")
struct AccessControlTests {
    @Test func aUserNotInAllowedUIDsIsRefusedAndLogged() throws {
        let other = getuid() == 4_242 ? 4_343 : 4_242
        let sidecar = try SidecarProcess(config: SidecarProcess.config("allowed_uids: [\(other)]"))
        let client = try sidecar.connect()
        let answer = try JSONParser.parse(try #require(try client.readLine()))
        #expect(answer["error"]?["code"] == .string("forbidden"))
        #expect(try client.readLine() == nil)  // closed
        try waitUntil("the refusal is logged") { !sidecar.logEvents("connection_refused").isEmpty }
        #expect(sidecar.logEvents("connection_refused").first?["peer_uid"] == .number(String(getuid())))
        #expect(throws: (any Error).self) { _ = try sidecar.connect(admin: true).ok(#"{"op":"ping"}"#) }
    }

    @Test func aUserInAllowedUIDsIsServed() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("allowed_uids: [\(getuid()), 4242]"))
        _ = try sidecar.connect().ok(#"{"op":"acquire","breaker":"openai"}"#)
        _ = try sidecar.connect(admin: true).ok(#"{"op":"reset","breaker":"openai"}"#)
    }
}
