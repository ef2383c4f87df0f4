import FuseboxCore
import FuseboxWire
import NIOCore
import NIOEmbedded
import Testing
@testable import FuseboxServer
import FuseboxJSON

/// Acquires that wait in a breaker's queue, seen from the connections:
/// answered later and in order, never holding up anyone else.
@Suite("Queued acquires on EmbeddedChannels")
struct QueuedAcquireTests {
    struct Connection {
        let channel = EmbeddedChannel()

        init(_ engine: Engine) throws {
            let session = ConnectionSession(engine: engine, isAdmin: false, serverName: "fusebox test")
            try channel.pipeline.syncOperations.addHandler(
                AdmissionHandler(limiter: ConnectionLimiter(limit: 10), observer: NoServerObserver())
            )
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maxLength: 1_024)))
            try channel.pipeline.syncOperations.addHandler(ProtocolHandler(
                session: session, hub: SubscriberHub(instance: "test"), observer: NoServerObserver()
            ))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func send(_ text: String) throws { try channel.writeInbound(channel.allocator.buffer(string: text + "\n")) }

        /// Runs what other threads handed to this connection's loop, then reads its answers.
        func answers() throws -> [JSONValue] {
            channel.embeddedEventLoop.run()
            var found: [JSONValue] = []
            while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
                let text = buffer.readString(length: buffer.readableBytes) ?? ""
                for line in text.split(separator: "\n") { found.append(try JSONParser.parse(String(line))) }
            }
            return found
        }
    }

    let clock = ManualClock()
    let engine: Engine

    init() throws {
        var capped = BreakerPolicy()
        capped.budget = BudgetPolicy(maxInFlight: 1, queue: QueuePolicy(max: 2, timeout: .seconds(2)))
        engine = try Engine(
            configuration: EngineConfiguration(breakers: [
                BreakerDefinition(name: "a", policy: capped), BreakerDefinition(name: "b"),
            ]),
            clock: clock, seed: 1
        )
    }

    @Test func aQueuedAcquireIsAnsweredWhenASlotFreesAndItsConnectionsLaterRequestsFollowInOrder() throws {
        let holder = try Connection(engine), waiter = try Connection(engine), other = try Connection(engine)
        try holder.send(#"{"op":"acquire","breaker":"a","id":1}"#)
        let permit = try #require(try holder.answers().first?["permit"])

        try waiter.send(#"{"op":"acquire","breaker":"a","id":"queued"}"# + "\n" + #"{"op":"ping","id":"after"}"#)
        #expect(try waiter.answers().isEmpty, "the acquire waits, and the ping behind it too")

        // Another breaker, and another connection, are not held up.
        try other.send(#"{"op":"acquire","breaker":"b","id":2}"#)
        #expect(try other.answers().first?["allowed"] == .bool(true))
        try other.send(#"{"op":"status","breaker":"a","id":3}"#)
        guard case .array(let breakers)? = try other.answers().first?["breakers"] else { Issue.record("no status"); return }
        #expect(breakers.first?["queued"] == .number("1"))

        clock.advance(by: .milliseconds(250))
        guard case .string(let id) = permit else { Issue.record("permit is a string"); return }
        try holder.send(#"{"op":"report","permit":"\#(id)","outcome":"success"}"#)
        let answers = try waiter.answers()
        #expect(answers.map { $0["id"] } == [.string("queued"), .string("after")])
        #expect(answers[0]["allowed"] == .bool(true) && answers[0]["waited_ms"] == .number("250"))
        #expect(try engine.snapshot("a")[0].permitsInFlight == 1)
    }

    @Test func aQueuedAcquireTimesOutWithAReason() throws {
        let holder = try Connection(engine), waiter = try Connection(engine)
        try holder.send(#"{"op":"acquire","breaker":"a"}"#)
        _ = try holder.answers()
        try waiter.send(#"{"op":"acquire","breaker":"a","id":7}"#)
        clock.advance(by: .seconds(2))
        engine.tick()
        let answer = try #require(try waiter.answers().first)
        #expect(answer["allowed"] == .bool(false) && answer["reason"] == .string("concurrency"))
        #expect(answer["waited_ms"] == .number("2000") && answer["id"] == .number("7"))
    }

    @Test func theConnectionsOwnTimerRefusesTheWaitWithoutATick() throws {
        let holder = try Connection(engine), waiter = try Connection(engine)
        try holder.send(#"{"op":"acquire","breaker":"a"}"#)
        try waiter.send(#"{"op":"acquire","breaker":"a","id":8}"#)
        clock.advance(by: .seconds(2))
        // The timer is set from the engine's own clock: 2 s (and a millisecond of slack) on the loop fire it.
        waiter.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1_999))
        #expect(try waiter.answers().isEmpty, "not before its deadline")
        waiter.channel.embeddedEventLoop.advanceTime(by: .milliseconds(2))
        let answer = try #require(try waiter.answers().first)
        #expect(answer["reason"] == .string("concurrency") && answer["waited_ms"] == .number("2000"))
    }

    @Test func aClientsOwnDeadlineCutsTheWaitShortSoTheRefusalArrivesBeforeItGivesUp() throws {
        let holder = try Connection(engine), waiter = try Connection(engine)
        try holder.send(#"{"op":"acquire","breaker":"a"}"#)
        _ = try holder.answers()
        // The client waits 1 s; the queue would wait 2: refused at 0.9 s, before the client's own timeout.
        try waiter.send(#"{"op":"acquire","breaker":"a","id":9,"timeout_ms":1000}"#)
        clock.advance(by: .milliseconds(899))
        engine.tick()
        #expect(try waiter.answers().isEmpty, "not before 0.9 s")
        clock.advance(by: .milliseconds(1))
        engine.tick()
        let answer = try #require(try waiter.answers().first)
        #expect(answer["allowed"] == .bool(false) && answer["reason"] == .string("concurrency") && answer["waited_ms"] == .number("900"))
    }

    @Test func aClientThatCannotWaitIsRefusedAtOnceAndALongDeadlineKeepsTheQueuesTimeout() throws {
        let holder = try Connection(engine), hurried = try Connection(engine), patient = try Connection(engine)
        try holder.send(#"{"op":"acquire","breaker":"a"}"#)
        _ = try holder.answers()
        try hurried.send(#"{"op":"acquire","breaker":"a","timeout_ms":0}"#)
        #expect(try hurried.answers().first?["reason"] == .string("concurrency"))
        try patient.send(#"{"op":"acquire","breaker":"a","timeout_ms":60000}"#)
        clock.advance(by: .seconds(2))
        engine.tick()
        #expect(try patient.answers().first?["waited_ms"] == .number("2000"), "the queue's own 2 s still bound it")
    }

    @Test func aFullQueueRefusesAtOnce() throws {
        let holder = try Connection(engine)
        try holder.send(#"{"op":"acquire","breaker":"a"}"#)
        let waiters = try (0..<2).map { _ in try Connection(engine) }
        for w in waiters { try w.send(#"{"op":"acquire","breaker":"a"}"#) }
        let late = try Connection(engine)
        try late.send(#"{"op":"acquire","breaker":"a"}"#)
        let answer = try #require(try late.answers().first)
        #expect(answer["allowed"] == .bool(false) && answer["reason"] == .string("concurrency"))
    }

    @Test func aWaiterThatDisconnectsIsWithdrawnAndItsTurnPasses() throws {
        let holder = try Connection(engine), leaving = try Connection(engine), staying = try Connection(engine)
        try holder.send(#"{"op":"acquire","breaker":"a"}"#)
        guard case .string(let id)? = try holder.answers().first?["permit"] else { Issue.record("no permit"); return }
        try leaving.send(#"{"op":"acquire","breaker":"a"}"#)
        try staying.send(#"{"op":"acquire","breaker":"a","id":"s"}"#)
        try leaving.channel.close().wait()
        #expect(try engine.snapshot("a")[0].queued == 1)
        try holder.send(#"{"op":"report","permit":"\#(id)","outcome":"success"}"#)
        #expect(try staying.answers().first?["allowed"] == .bool(true))
        #expect(try engine.snapshot("a")[0].permitsInFlight == 1, "only the staying client holds a permit")
    }

    @Test func aRefusalSaysWhichLimitRefused() throws {
        let conn = try Connection(engine)
        try engine.force("b", .open)
        try conn.send(#"{"op":"acquire","breaker":"b"}"#)
        #expect(try conn.answers().first?["reason"] == .string("open"))
    }
}
