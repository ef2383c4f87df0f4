import Foundation
import FuseboxJSON
import Synchronization
import Testing

/// A reload that adds many breakers keeps deciding for the ones already there
/// (how long it stalls them is fusebox-bench's `reload-stall`, not a test).
@Suite("Large reloads", .serialized)
struct LargeReloadTests {
    static func config(breakers: Int) -> String {
        SidecarProcess.config().replacingOccurrences(of: "breakers:\n", with: "breakers:\n" + (0..<breakers).map { "  b\($0): {}\n" }.joined())
    }

    @Test func aReloadAddingTwoHundredBreakersKeepsAnsweringDecisionsOnTheExistingOnes() throws {
        let sidecar = try SidecarProcess(config: Self.config(breakers: 200))
        let answered = Atomic<Int>(0)
        let failures = Mutex<[String]>([])
        let stop = Atomic<Bool>(false)
        let worker = Thread {
            do {
                let client = try sidecar.connect()
                while !stop.load(ordering: .relaxed) {
                    let permit = try client.permit("b7")
                    _ = try client.ok(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)
                    answered.add(1, ordering: .relaxed)
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        worker.start()
        try waitUntil("decisions flow") { answered.load(ordering: .relaxed) > 10 }
        _ = try sidecar.folder.write("fusebox.yaml", Self.config(breakers: 400))
        let before = answered.load(ordering: .relaxed)
        sidecar.signal(SIGHUP)
        try waitUntil("the reload is applied", timeout: 60) { !sidecar.logEvents("config_reloaded").isEmpty }
        try waitUntil("decisions flow after it") { answered.load(ordering: .relaxed) > before + 10 }
        stop.store(true, ordering: .relaxed)
        try waitUntil("the worker stops") { worker.isFinished }
        #expect(failures.withLock { $0 }.isEmpty)
        let client = try sidecar.connect()
        #expect(try client.state("b399") == "closed")
        #expect(try client.state("b7") == "closed")
    }
}
