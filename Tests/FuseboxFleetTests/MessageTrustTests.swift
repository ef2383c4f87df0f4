import FuseboxConfig
import FuseboxJSON
import Testing
@testable import FuseboxFleet

@Suite("Sealed fleet messages")
struct MessageSealTests {
    let seal = MessageSeal(FleetSecret(bytes: Array("k".utf8) + [UInt8](repeating: 7, count: 40), source: "test"))
    let json = #"{"f":"eu","k":"calls","b":"openai","n":1,"r":false,"o":"a#1","t":1000,"q":1}"#

    @Test func aSealedMessageOpensToItsJSON() throws {
        let payload = seal.seal(json)
        #expect(payload.hasPrefix("fb1.") && payload.utf8.count == 4 + 64 + 1 + json.utf8.count)
        #expect(try seal.open(payload).get() == Substring(json))
    }

    static let zeros = String(repeating: "0", count: 64)
    static let badSeals: [(String, MessageSeal.Refusal)] = [
        (#"{"f":"eu","k":"calls","b":"openai","n":1}"#, .unsigned),
        ("fb1.zz", .malformed),
        ("fb1." + String(repeating: "g", count: 64) + ".{}", .malformed),
        ("fb1." + zeros + ".{}", .signature),
        ("fb1." + zeros + "x{}", .malformed),
    ]

    @Test(arguments: badSeals)
    func aPayloadWithoutAGoodSealIsRefused(payload: String, refusal: MessageSeal.Refusal) {
        #expect(throws: refusal) { try seal.open(payload).get() }
    }

    @Test func changingOneByteOrTheKeyBreaksTheSeal() {
        let payload = seal.seal(json)
        let tampered = payload.replacingOccurrences(of: #""n":1"#, with: #""n":9"#)
        #expect(throws: MessageSeal.Refusal.signature) { try seal.open(tampered).get() }
        let other = MessageSeal(FleetSecret(bytes: [UInt8](repeating: 8, count: 41), source: "other"))
        #expect(throws: MessageSeal.Refusal.signature) { try other.open(payload).get() }
    }
}

@Suite("Replayed and stale messages")
struct ReplayGuardTests {
    @Test func eachSendersNumbersMustRise() {
        var guardian = ReplayGuard()
        #expect(guardian.admit(origin: "a", sequence: 1, sentAt: 1_000, now: 1_000) == nil)
        #expect(guardian.admit(origin: "a", sequence: 1, sentAt: 1_000, now: 1_001) == .replayed)
        #expect(guardian.admit(origin: "b", sequence: 1, sentAt: 1_000, now: 1_002) == nil, "numbers are per sender")
        #expect(guardian.admit(origin: "a", sequence: 2, sentAt: 1_003, now: 1_003) == nil)
        #expect(guardian.admit(origin: "a", sequence: 2, sentAt: 1_003, now: 1_004) == .replayed)
    }

    struct Stamp: Sendable {
        var sentAt: Int64
        var now: Int64
        var refusal: MessageSeal.Refusal?
    }

    static let stamps: [Stamp] = [
        Stamp(sentAt: 0, now: 20_000, refusal: .stale),  // older than the window
        Stamp(sentAt: 30_000, now: 20_000, refusal: .stale),  // from the future, past the estimate's error
        Stamp(sentAt: 21_000, now: 20_000, refusal: nil),  // a second ahead: within the error
        Stamp(sentAt: 10_000, now: 20_000, refusal: nil),  // exactly the window
        Stamp(sentAt: .min, now: 20_000, refusal: .stale),  // overflowing the age
        Stamp(sentAt: .max, now: .min, refusal: .stale),
    ]

    @Test(arguments: stamps)
    func aMessageIsTakenOnlyWithinTheWindow(stamp: Stamp) {
        let (sentAt, now, refusal) = (stamp.sentAt, stamp.now, stamp.refusal)
        var guardian = ReplayGuard()
        #expect(guardian.admit(origin: "a", sequence: 1, sentAt: sentAt, now: now) == refusal)
    }

    @Test func quietSendersAreForgottenAfterAWindow() {
        var guardian = ReplayGuard()
        for index in 0..<100 { _ = guardian.admit(origin: "s\(index)", sequence: 1, sentAt: 0, now: 0) }
        #expect(guardian.senders == 100)
        #expect(guardian.admit(origin: "late", sequence: 1, sentAt: 30_000, now: 30_000) == nil)
        #expect(guardian.senders == 1, "the map is bounded by the senders of one window")
    }
}

@Suite("Hostile message fields")
struct FleetMessageTests {
    func message(_ json: String) -> FleetMessage? { (try? JSONParser.parse(json)).flatMap(FleetMessage.init) }

    @Test(arguments: [
        #"{"f":"eu","k":"calls","b":"x","n":9223372036854775808,"o":"a","t":1,"q":1}"#,  // past Int64
        #"{"f":"eu","k":"calls","b":"x","n":-5,"o":"a","t":1,"q":1}"#,  // fewer than none
        #"{"f":"eu","k":"calls","b":"x","n":1.5,"o":"a","t":1,"q":1}"#,
        #"{"f":"eu","k":"calls","b":"x","n":1,"o":"a","t":1}"#,  // no sequence number
        #"{"f":"eu","b":"x","s":"open","e":1,"o":"a","t":1}"#,
        #"{"f":"eu","b":"x","s":"open","e":1e30,"o":"a","t":1,"q":1}"#,
    ])
    func aMessageMissingOrOverflowingAFieldIsNoMessage(json: String) {
        #expect(message(json) == nil)
    }

    @Test func aStateMessageRoundTrips() throws {
        let sent = PublishedState(fleet: "eu", breaker: "openai", state: "open", openUntil: 5_000, remaining: 4_000, probesFailed: 2,
                                  epoch: 7, origin: "a#1", publishedAt: 1_000, sequence: 3)
        guard case .state(let read)? = message(sent.json) else { Issue.record("not read back"); return }
        #expect(read.breaker == "openai" && read.remaining == 4_000 && read.probesFailed == 2 && read.epoch == 7 && read.sequence == 3)
        #expect(read.publishedAt == 1_000 && read.origin == "a#1" && read.fleet == "eu")
    }
}

@Suite("Least-privilege grants")
struct FleetGrantsTests {
    @Test func everyTableTheSchemaMakesIsGrantedAndNothingElse() throws {
        let made = FleetSchema.tables.compactMap { statement -> String? in
            guard statement.hasPrefix("CREATE TABLE ") else { return nil }
            return statement.dropFirst(13).split(whereSeparator: { $0 == " " || $0 == "(" }).first.map(String.init)
        }
        #expect(Set(made) == Set(FleetGrants.privileges.map(\.table)))
        #expect(FleetGrants.privileges.allSatisfy { !$0.privileges.contains("TRUNCATE") && !$0.privileges.contains("ALL") })
    }

    @Test func theScriptMakesThisVersionAndQuotesTheRole() throws {
        let script = try FleetGrants.script(role: #"fleet "member""#)
        #expect(script.contains("INSERT INTO fusebox_schema (version) VALUES (\(FleetSchema.version));"))
        #expect(script.contains(#"GRANT SELECT ON fusebox_schema TO "fleet ""member""";"#))
        #expect(throws: (any Error).self) { try FleetGrants.script(role: "bad\nrole") }
        #expect(throws: (any Error).self) { try FleetGrants.script(role: String(repeating: "r", count: 64)) }
    }
}
