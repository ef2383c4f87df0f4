import Foundation
import Testing

/// The fast path's state file as the real binary keeps it: made once the
/// socket is bound, never taken by a second sidecar, gone at a clean stop.
@Suite("fusebox serve: the fast path's state file")
struct StateFileLifecycleTests {
    @Test func itIsPostedBesideTheSocketAndRemovedOnSIGTERM() throws {
        let sidecar = try SidecarProcess()
        let path = sidecar.socket + ".state"
        try waitUntil("the state file appears") { FileManager.default.fileExists(atPath: path) }
        let logged = try #require(sidecar.logEvents("fast_path_state_file").first)
        let mapped = try #require(logged["file"].flatMap { if case .string(let text) = $0 { text } else { nil } })
        // The test folder is on disk here or on tmpfs elsewhere: either way the mapped file is on a memory filesystem.
        #expect(mapped == path || mapped.hasPrefix("/dev/shm/fusebox-"))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(Array(bytes.prefix(8)) == Array("FBXSTATE".utf8))
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: path) && !FileManager.default.fileExists(atPath: mapped))
    }

    @Test func aSecondSidecarRefusedOnTheSameSocketLeavesTheFirstOnesFile() throws {
        let first = try SidecarProcess()
        let path = first.socket + ".state"
        try waitUntil("the state file appears") { FileManager.default.fileExists(atPath: path) }
        let before = try Data(contentsOf: URL(fileURLWithPath: path)).subdata(in: 24..<32)  // the boot id
        let second = try SidecarProcess(sharing: first)
        #expect(try second.waitForExit() == 71)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).subdata(in: 24..<32) == before)
    }

    @Test func switchedOffThereIsNone() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("fast_path: false"))
        _ = try sidecar.connect().ok(#"{"op":"ping"}"#)
        #expect(!FileManager.default.fileExists(atPath: sidecar.socket + ".state"))
        #expect(sidecar.logEvents("fast_path_state_file").isEmpty)
    }
}
