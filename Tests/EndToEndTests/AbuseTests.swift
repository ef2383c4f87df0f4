import Foundation
import FuseboxWire
import Synchronization
import Testing
import FuseboxJSON
import FuseboxSocket

/// What a buggy or hostile local client can throw at the sidecar.
@Suite("fusebox serve: abuse")
struct AbuseTests {
    static func raiseOwnDescriptorLimit() {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    @Test func twoThousandConnectionsAtOnceMeetTheCapAndLeakNothing() throws {
        Self.raiseOwnDescriptorLimit()
        let sidecar = try SidecarProcess(config: SidecarProcess.config("max_connections: 1000"))
        let pid = sidecar.process.processIdentifier
        let baseline = try ProcessProbe.openDescriptors(pid)
        var clients: [LineClient] = []
        for _ in 0..<2_000 { clients.append(try LineClient(path: sidecar.socket, timeout: .seconds(10))) }
        var served = 0, overloaded = 0
        for client in clients {
            // A refused connection was told and closed before we wrote: the write may meet a closed socket.
            try? client.write(#"{"op":"ping"}"#)
            let answer = try JSONParser.parse(try #require(try client.readLine()))
            if answer["ok"] == .bool(true) { served += 1 }
            if answer["error"]?["code"] == .string("overloaded") { overloaded += 1 }
        }
        #expect(served == 1_000 && overloaded == 1_000)
        clients.removeAll()
        try waitUntil("descriptors return to the baseline") { try ProcessProbe.openDescriptors(pid) <= baseline }
        _ = try sidecar.connect().ok(#"{"op":"ping"}"#)
    }

    @Test func connectDisconnectChurnLeaksNothing() throws {
        let sidecar = try SidecarProcess()
        let pid = sidecar.process.processIdentifier
        // The first lease gives the scheduler a deadline to sleep until: the runtime makes its timer descriptor once, then.
        _ = try sidecar.connect().permit("openai")
        let baseline = try ProcessProbe.openDescriptors(pid)
        for i in 0..<2_000 {
            let client = try sidecar.connect()
            if i % 2 == 0 { _ = try client.permit("openai") }  // abandoned by the disconnect
        }
        try waitUntil("descriptors return to the baseline") { try ProcessProbe.openDescriptors(pid) <= baseline }
        try waitUntil("every permit is released") { try sidecar.connect().field("openai", "permits_in_flight") == .number("0") }
    }

    @Test func aSlowlorisHoldsOnlyItsOwnConnection() throws {
        let sidecar = try SidecarProcess()
        let slow = try sidecar.connect()
        let line = Array(#"{"op":"ping","id":"slow"}"#.utf8) + [0x0A]
        let others = try sidecar.connect()
        for (i, byte) in line.enumerated() {
            try slow.write([byte])
            if i % 5 == 0 { _ = try others.ok(#"{"op":"acquire","breaker":"anthropic"}"#) }  // never held up
            Thread.sleep(forTimeInterval: 0.01)  // pacing: a slowloris sends a byte at a time
        }
        #expect(try slow.request(#"{"op":"ping"}"#)["id"] == .string("slow"))
    }

    @Test func aClientThatNeverReadsIsThrottledWithoutGrowingTheServer() throws {
        let sidecar = try SidecarProcess()
        let pid = sidecar.process.processIdentifier
        let before = try ProcessProbe.residentKiB(pid)
        let greedy = try sidecar.connect()
        let batch = Array(String(repeating: #"{"op":"status"}"# + "\n", count: 1_000).utf8)
        // Write ~60 MB of requests whose answers are never read, from another thread (the writes block).
        let written = Mutex(0)
        let writer = Thread {
            for _ in 0..<4_000 {
                if (try? greedy.write(batch)) == nil { return }
                written.withLock { $0 += 1 }
            }
        }
        writer.start()
        // Until the server stops reading the greedy client: its writes stall (the count stays put for ten looks).
        var lastSeen = -1, unchanged = 0
        try waitUntil("the server stops reading a client that never reads", timeout: 60) {
            let now = written.withLock { $0 }
            unchanged = now == lastSeen ? unchanged + 1 : 0
            lastSeen = now
            return now > 0 && now < 4_000 && unchanged >= 10
        }
        _ = try sidecar.connect().ok(#"{"op":"acquire","breaker":"openai"}"#)  // everyone else is served
        let grown = try ProcessProbe.residentKiB(pid) - before
        #expect(grown < 64 * 1024, "the server grew \(grown) KiB for a client that does not read")
        greedy.finishWriting()
    }

    @Test func a100kUnreportedAcquiresExpireAndTheirSlotsAreReused() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        let pid = sidecar.process.processIdentifier
        var batch: [UInt8] = []
        for _ in 0..<1_000 { batch += Array(#"{"op":"acquire","breaker":"shortlease"}"# .utf8) + [0x0A] }
        func burst() throws {
            for _ in 0..<100 {
                try client.write(batch)
                for _ in 0..<1_000 { _ = try client.readLine() }
                // shortlease trips on the expiries (they count as timeouts); reset to keep acquiring.
                _ = try sidecar.connect(admin: true).ok(#"{"op":"force","breaker":"shortlease","state":"disabled"}"#)
            }
        }
        try burst()
        try waitUntil("the leases expire", timeout: 20) { try client.field("shortlease", "permits_in_flight") == .number("0") }
        let afterFirst = try ProcessProbe.residentKiB(pid)
        try burst()
        try waitUntil("the leases expire again", timeout: 20) { try client.field("shortlease", "permits_in_flight") == .number("0") }
        // The second hundred thousand reuse the first's slots: no growth beyond noise.
        #expect(try ProcessProbe.residentKiB(pid) - afterFirst < 16 * 1024)
    }

    @Test func adminCommandsInterleavedWithLoadKeepEveryAnswerInOrder() throws {
        let sidecar = try SidecarProcess()
        let admin = try sidecar.connect(admin: true)
        // Counts the answers that came back in order with their own id; a failure stops the count short.
        let inOrder = Mutex(0)
        let load = Thread {
            guard let client = try? sidecar.connect() else { return }
            for i in 0..<2_000 {
                guard let answer = try? client.request(#"{"op":"route","chain":"llm","id":\#(i)}"#),
                      answer["id"] == .number(String(i)) else { return }
                if case .string(let permit)? = answer["permit"] {
                    guard let reported = try? client.request(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#),
                          reported["ok"] == .bool(true) else { return }
                }
                inOrder.withLock { $0 += 1 }
            }
        }
        load.start()
        for i in 0..<300 {
            let state = ["open", "auto", "metrics_only", "auto"][i % 4]
            _ = try admin.ok(#"{"op":"force","breaker":"openai","state":"\#(state)"}"#)
        }
        while load.isExecuting { Thread.sleep(forTimeInterval: 0.05) }  // poll
        #expect(inOrder.withLock { $0 } == 2_000, "every routed answer came back in order with its id, and every report was accepted")
        _ = try admin.ok(#"{"op":"reset","breaker":"openai"}"#)
        #expect(try sidecar.connect().field("openai", "permits_in_flight") == .number("0"))
    }
}
