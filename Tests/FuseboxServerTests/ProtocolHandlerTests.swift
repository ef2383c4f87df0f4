import FuseboxCore
import FuseboxWire
import NIOCore
import NIOEmbedded
import Testing
@testable import FuseboxServer
import FuseboxJSON

/// The pipeline without a socket: framing, dispatch, ordering, limits.
@Suite("Protocol handler on an EmbeddedChannel")
struct ProtocolHandlerTests {
    struct Fixture {
        let engine: Engine
        let channel = EmbeddedChannel()
        let hub = SubscriberHub(instance: "test")
        let limiter: ConnectionLimiter

        init(admin: Bool = false, limit: Int = 10, clock: ManualClock = ManualClock()) throws {
            engine = try Engine(
                configuration: EngineConfiguration(
                    breakers: [BreakerDefinition(name: "a"), BreakerDefinition(name: "b")],
                    chains: [ChainDefinition(name: "ab", breakers: ["a", "b"])]
                ),
                clock: clock, seed: 1
            )
            limiter = ConnectionLimiter(limit: limit)
            let session = ConnectionSession(engine: engine, isAdmin: admin, serverName: "fusebox test")
            try channel.pipeline.syncOperations.addHandler(AdmissionHandler(limiter: limiter, observer: NoServerObserver()))
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maxLength: 1_024)))
            try channel.pipeline.syncOperations.addHandler(
                ProtocolHandler(session: session, hub: hub, observer: NoServerObserver())
            )
            // Connecting makes the embedded channel active, which fires channelActive.
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func send(_ text: String) throws {
            try channel.writeInbound(channel.allocator.buffer(string: text))
        }

        func responses() throws -> [JSONValue] {
            var answers: [JSONValue] = []
            while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
                let text = buffer.readString(length: buffer.readableBytes) ?? ""
                for line in text.split(separator: "\n") { answers.append(try JSONParser.parse(String(line))) }
            }
            return answers
        }
    }

    @Test func aRecordSentWithoutReplyIsCountedAndNeverAnsweredEvenWhenItIsWrong() throws {
        let f = try Fixture()
        try f.send(#"{"op":"record","breaker":"a","status":503,"generation":0,"reply":false}"# + "\n")
        try f.send(#"{"op":"record","breaker":"nope","outcome":"success","reply":false}"# + "\n")
        try f.send(#"{"op":"record","breaker":"a","outcome":"sideways","reply":false}"# + "\n")
        try f.send(#"{"op":"status","breaker":"a","id":1}"# + "\n")
        try f.send(#"{"op":"ping","reply":false,"id":2}"# + "\n")
        let answers = try f.responses()
        #expect(answers.count == 2, "only the status and the refused ping are answered: \(answers)")
        #expect(answers[0]["id"] == .number("1"))
        guard case .array(let breakers)? = answers[0]["breakers"] else { Issue.record("no breakers in \(answers[0])"); return }
        #expect(breakers.first?["consecutive_failures"] == .number("1"))
        #expect(answers[1]["error"]?["code"] == .string("bad_request"))
    }

    @Test func aRecordFromAnOlderGenerationCannotCloseOrTripTheBreaker() throws {
        let f = try Fixture()
        for _ in 0..<5 { try f.send(#"{"op":"record","breaker":"a","status":503,"generation":0}"# + "\n") }
        try f.send(#"{"op":"record","breaker":"a","outcome":"success","generation":0,"id":"late"}"# + "\n")
        let answers = try f.responses()
        #expect(answers[4]["state"] == .string("open"))
        #expect(answers[5]["state"] == .string("open"), "a success the client saw in generation 0 does not touch generation 1")
    }

    @Test func pipelinedRequestsSplitAcrossReadsAreAnsweredInOrder() throws {
        let f = try Fixture()
        try f.send(#"{"op":"ping","id":1}"#)
        try f.send("\n" + #"{"op":"acquire","breaker":"a","id":2}"# + "\n" + #"{"op":"nope","id":3}"#)
        try f.send("\r\n" + #"{"op":"route","chain":"ab","id":4}"# + "\n")
        let answers = try f.responses()
        #expect(answers.map { $0["id"] } == [.number("1"), .number("2"), .number("3"), .number("4")])
        #expect(answers[2]["error"]?["code"] == .string("unknown_op"))
        #expect(answers[3]["breaker"] == .string("a"))
    }

    @Test func aLineOverTheLimitIsAnsweredAndTheChannelClosed() throws {
        let f = try Fixture()
        try f.send(String(repeating: "x", count: 600))
        #expect(f.channel.isActive)
        try f.send(String(repeating: "x", count: 600))
        let answers = try f.responses()
        #expect(answers.map { $0["error"]?["code"] } == [.string("line_too_long")])
        #expect(!f.channel.isActive)
    }

    @Test func adminOpsAreForbiddenUnlessTheSocketIsTheAdminOne() throws {
        let user = try Fixture()
        try user.send(#"{"op":"force","breaker":"a","state":"open"}"# + "\n")
        #expect(try user.responses().first?["error"]?["code"] == .string("forbidden"))
        let admin = try Fixture(admin: true)
        try admin.send(#"{"op":"force","breaker":"a","state":"open"}"# + "\n")
        #expect(try admin.responses().first?["state"] == .string("forced_open"))
    }

    @Test func closingTheChannelReleasesItsPermits() throws {
        let f = try Fixture()
        try f.send(#"{"op":"acquire","breaker":"a"}"# + "\n" + #"{"op":"acquire","breaker":"b"}"# + "\n")
        #expect(f.engine.permitsInFlight == 2)
        _ = try f.channel.finish()
        #expect(f.engine.permitsInFlight == 0)
    }

    @Test func aClientThatHalfClosesGetsItsAnswersThenTheConnectionEnds() throws {
        let f = try Fixture()
        try f.send(#"{"op":"ping","id":1}"# + "\n" + #"{"op":"acquire","breaker":"a","id":2}"#)  // the last line lacks its newline
        f.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        f.channel.embeddedEventLoop.run()
        let answers = try f.responses()
        #expect(answers.map { $0["id"] } == [.number("1"), .number("2")])
        #expect(answers.last?["allowed"] == .bool(true))
        #expect(!f.channel.isActive)
    }

    @Test func connectionsBeyondTheLimitAreRefusedOverloaded() throws {
        let f = try Fixture(limit: 0)
        let answers = try f.responses()
        #expect(answers.first?["error"]?["code"] == .string("overloaded"))
        #expect(!f.channel.isActive)
    }
}
