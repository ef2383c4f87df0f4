import Foundation
import Testing

/// Every input of the fuzz corpus (and every crash the fuzzer ever found,
/// kept in fuzz/regressions) replayed through the fuzz targets.
@Suite("fuzz corpus replay")
struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func files(_ target: String) -> [String] {
        ["fuzz/corpus/\(target)", "fuzz/regressions/\(target)"].flatMap { folder -> [String] in
            let url = root.appendingPathComponent(folder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
            return names.filter { !$0.hasPrefix(".") }.sorted().map { url.appendingPathComponent($0).path }
        }
    }

    @Test(arguments: ["protocol", "config", "statefile"])
    func everyInputRunsWithoutACrash(target: String) throws {
        let inputs = Self.files(target)
        #expect(inputs.count >= 4)
        let binary = FuseboxBinary.url.deletingLastPathComponent().appendingPathComponent("fusebox-fuzz")
        let process = Process()
        process.executableURL = binary
        process.arguments = [target] + inputs
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("\(inputs.count) inputs replayed, no crash"))
    }
}
