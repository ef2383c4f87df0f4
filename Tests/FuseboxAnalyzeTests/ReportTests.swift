import Foundation
import FuseboxCore
import Testing
@testable import FuseboxAnalyze

#if canImport(FoundationXML)
import FoundationXML
#endif

/// Golden files for text, markdown and JSON on a fixed history; the HTML page
/// checked for its structure. `FUSEBOX_UPDATE_GOLDEN=1 swift test` rewrites
/// the golden files (review the diff before committing).
@Suite("Reports")
struct ReportTests {
    static let goldenFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    /// A fixed history: openai down for two minutes (routes fall back);
    /// anthropic, reported on directly, trips three times within minutes
    /// (flapping); at the end ollama is forced open while openai fails again
    /// (correlated, still ongoing).
    static func fixture() throws -> (StoreHistory, Analysis) {
        let h = try StoreHistory()
        let engine = try h.engine()
        try h.traffic(count: 60)
        try h.traffic(count: 120, failing: "openai", report: CallReport(status: 503, error: "upstream unavailable"))
        try h.traffic(count: 400)
        for _ in 0..<3 {
            for _ in 0..<5 {
                try engine.record("anthropic", CallReport(outcome: .timeout, errorKind: .timeout, latency: .seconds(30)))
                h.clock.advance(by: .seconds(1))
            }
            h.clock.advance(by: .seconds(40))
            engine.tick()
            try engine.record("anthropic", .success(latency: .milliseconds(300)))   // the probe
            try h.traffic(count: 20)
        }
        try h.traffic(count: 400)
        try engine.force("ollama", .open)
        try h.traffic(count: 20, failing: "openai", report: CallReport(status: 429, error: "rate limited"))
        h.finish()
        let analysis = try Analyzer.analyze(AnalyzeOptions(databases: [h.path("host-a")]))
        return (h, analysis)
    }

    func check(_ name: String, _ output: String, folder: URL) throws {
        let stable = output.replacingOccurrences(of: folder.path, with: "$STORE")
        let file = Self.goldenFolder.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["FUSEBOX_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Self.goldenFolder, withIntermediateDirectories: true)
            try stable.write(to: file, atomically: true, encoding: .utf8)
        }
        let golden = try String(contentsOf: file, encoding: .utf8)
        #expect(stable == golden, "\(name) differs from its golden file; run with FUSEBOX_UPDATE_GOLDEN=1 and review the diff")
    }

    @Test func textMarkdownAndJSONMatchTheirGoldenFiles() throws {
        let (h, a) = try Self.fixture()
        #expect(a.incidents.count == 3)
        try check("report.txt", TextReport.render(a, summaryOnly: false, colour: false), folder: h.folder)
        try check("summary.txt", TextReport.render(a, summaryOnly: true, colour: false), folder: h.folder)
        try check("report.md", MarkdownReport.render(a, summaryOnly: false), folder: h.folder)
        try check("report.json", JSONReport.render(a), folder: h.folder)
    }

    @Test func theFixtureHasTheIncidentsItWasBuiltFor() throws {
        let (_, a) = try Self.fixture()
        #expect(a.incidents[0].lanes.map(\.breaker) == ["openai"])
        #expect(a.incidents[1].lanes.map(\.breaker) == ["anthropic"])
        #expect(a.incidents[1].flapping.values.first == 3)
        #expect(!a.incidents[1].correlated)
        #expect(a.incidents[1].errorMix.first?.label == "timeout")
        #expect(a.incidents[2].correlated && a.incidents[2].end == nil)
        #expect(a.incidents[2].errorMix.first?.label == "429")
    }

    @Test func textHasColourOnlyWhenAsked() throws {
        let (_, a) = try Self.fixture()
        #expect(!TextReport.render(a, summaryOnly: false, colour: false).contains("\u{1B}["))
        #expect(TextReport.render(a, summaryOnly: false, colour: true).contains("\u{1B}[31m"))
    }

    @Test func theHTMLPageIsSelfContainedWithOneLanePerBreaker() throws {
        let (_, a) = try Self.fixture()
        let html = HTMLReport.render(a)
        let start = try #require(html.range(of: "<svg"))
        let end = try #require(html.range(of: "</svg>"))
        let svg = String(html[start.lowerBound..<end.upperBound])
        let document = try XMLDocument(xmlString: svg)
        let lanes = try document.nodes(forXPath: "//*[local-name()='g'][@class='lane']")
        #expect(lanes.count == a.lanes.count)
        #expect(lanes.count == 3)
        #expect(try document.nodes(forXPath: "//*[local-name()='rect']").count > 10)
        // Nothing is fetched: the only URL is the SVG namespace.
        let withoutNamespace = html.replacingOccurrences(of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "")
        for forbidden in ["http://", "https://", "<script", " src=", "url(", "@import"] {
            #expect(!withoutNamespace.contains(forbidden), "the page contains \(forbidden)")
        }
        #expect(html.contains(a.incidents[0].id))
    }
}
