import Foundation
import FuseboxCore
import Testing
@testable import FuseboxAnalyze

@Suite("Incidents from a store")
struct IncidentTests {
    /// openai fails from 1m for 2m (5 failures trip it, 30 s open, probes fail
    /// until it recovers); traffic falls back to anthropic.
    func oneOutage() throws -> StoreHistory {
        let h = try StoreHistory()
        try h.traffic(count: 60)                                  // 0:00–1:00 healthy
        try h.traffic(count: 120, failing: "openai")              // 1:00–3:00 openai down
        try h.traffic(count: 120)                                 // 3:00–5:00 healthy again
        h.finish()
        return h
    }

    func analyze(_ h: StoreHistory, _ configure: (inout AnalyzeOptions) -> Void = { _ in }) throws -> Analysis {
        var options = AnalyzeOptions(databases: [h.path("host-a")])
        configure(&options)
        return try Analyzer.analyze(options)
    }

    @Test func anOutageBecomesOneIncidentWithItsBoundariesAndTimes() throws {
        let h = try oneOutage()
        let a = try analyze(h)
        #expect(a.incidents.count == 1)
        let incident = try a.detailed(try #require(a.incidents.first))
        // Five failures at 1:00–1:04 trip it at 1:04; the first probe after 3:00 closes it.
        #expect(incident.start == StoreHistory.ms(.seconds(64)))
        #expect(incident.firstFailure == StoreHistory.ms(.seconds(60)))
        #expect(incident.timeToDetect == 4_000)
        // Probes at 1:34 and 2:34 fail (backoff 30 s, 60 s); the one after 120 s more, at 4:34, succeeds.
        let end = try #require(incident.end)
        #expect(end == StoreHistory.ms(.seconds(274)))
        #expect(incident.timeToRecover == end - incident.start)
        #expect(incident.lanes.map(\.breaker) == ["openai"])
        #expect(incident.id == "inc-20260301T100104")
        #expect(incident.events.first?.kind == .firstFailure)
        #expect(incident.events.last?.kind == .recovered)
        #expect(incident.events.filter { $0.kind == .probeFailed }.count >= 2)
        #expect(incident.events.contains { $0.kind == .probeSucceeded })
        // Counts: every failure reported was on openai; every rejection sent traffic to anthropic.
        #expect(incident.traffic.failures >= 5)
        #expect(incident.fallbacks == [FallbackCount(chain: "llm", from: "openai", to: "anthropic", count: incident.traffic.fallbacksOut)])
        #expect(incident.traffic.fallbacksOut > 100)
        #expect(incident.errorMix.first?.label == "503")
        #expect(!incident.correlated && incident.flapping.isEmpty)
        let openai = try #require(a.summary.first { $0.lane.breaker == "openai" })
        #expect(openai.incidents == 1 && openai.openMs == end - incident.start)
        #expect(abs(openai.availability - (1 - Double(end - incident.start) / Double(a.to - a.from))) < 1e-9)
        #expect(a.summary.first { $0.lane.breaker == "anthropic" }?.availability == 1)
    }

    @Test func trafficCountsMatchWhatWasSent() throws {
        let h = try oneOutage()
        let a = try analyze(h)
        let total = a.summary.reduce(0) { $0 + $1.traffic.calls }
        #expect(total == 300)  // every request was served by someone
        let rejected = a.summary.reduce(0) { $0 + $1.traffic.rejected }
        let fallbacks = a.summary.first { $0.lane.breaker == "anthropic" }?.traffic.fallbacksIn ?? 0
        #expect(rejected == fallbacks)
    }

    @Test func spansCloserThanTheMergeGapAreOneIncident() throws {
        let h = try StoreHistory()
        try h.traffic(count: 10, failing: "openai")    // trips, recovers quickly
        try h.traffic(count: 60)
        try h.traffic(count: 10, failing: "openai")    // again two minutes later
        try h.traffic(count: 60)
        h.finish()
        #expect(try analyze(h).incidents.count == 1)                              // default gap 5m
        #expect(try analyze(h) { $0.mergeGap = 30_000 }.incidents.count == 2)
    }

    @Test func anIncidentStillOpenAtTheEndIsOngoing() throws {
        let h = try StoreHistory()
        try h.traffic(count: 30)
        try h.engine().force("ollama", .open)
        try h.traffic(count: 30)
        h.finish()
        let analysis = try analyze(h)
        let incident = try analysis.detailed(try #require(analysis.incidents.last))
        #expect(incident.end == nil && incident.timeToRecover == nil)
        #expect(incident.events.contains { $0.kind == .forced })
        #expect(TextReport.render(try analyze(h), summaryOnly: false, colour: false).contains("ongoing"))
    }

    @Test func storesOfTwoHostsMergeIntoOneFleetTimeline() throws {
        let h = try StoreHistory()
        try h.traffic("host-a", count: 30)
        try h.traffic("host-b", count: 30)
        try h.traffic("host-a", count: 20, failing: "openai")
        try h.engine("host-b").force("openai", .open)             // host-b routes to anthropic, which fails too
        try h.traffic("host-b", count: 20, failing: "anthropic")
        try h.traffic("host-a", count: 60)
        h.finish()
        let a = try Analyzer.analyze(AnalyzeOptions(databases: [h.path("host-a"), h.path("host-b")]))
        #expect(a.lanes.map(\.label).contains("host-a/openai") && a.lanes.map(\.label).contains("host-b/anthropic"))
        let incident = try #require(a.incidents.first)
        #expect(a.incidents.count == 1)
        #expect(Set(incident.lanes.map(\.label)) == ["host-a/openai", "host-b/openai", "host-b/anthropic"])
        #expect(incident.correlated)
    }

    @Test func filtersNarrowTheAnalysis() throws {
        let h = try oneOutage()
        #expect(try analyze(h) { $0.breakers = ["anthropic"] }.incidents.isEmpty)
        #expect(try analyze(h) { $0.chain = "llm" }.incidents.count == 1)
        #expect(throws: AnalyzeError.noSuchChain("nope")) { try analyze(h) { $0.chain = "nope" } }
        #expect(try analyze(h) { $0.since = StoreHistory.ms(.seconds(280)) }.incidents.isEmpty)
        // Starting inside the outage: the breaker's state before `since` counts.
        #expect(try analyze(h) { $0.since = StoreHistory.ms(.seconds(240)) }.incidents.first?.start == StoreHistory.ms(.seconds(240)))
        let one = try analyze(h) { $0.incident = "inc-20260301T100104" }
        #expect(one.incidents.count == 1)
        #expect(throws: AnalyzeError.noSuchIncident("inc-1")) { try analyze(h) { $0.incident = "inc-1" } }
        #expect(throws: AnalyzeError.self) { try analyze(h) { $0.since = 10; $0.until = 5 } }
    }

    @Test func badStoresAreRefusedWithAClearMessage() throws {
        let h = try StoreHistory()
        let text = h.folder.appendingPathComponent("notes.txt").path
        try "hello".write(toFile: text, atomically: true, encoding: .utf8)
        #expect(throws: AnalyzeError.store("\(text) is not a Fusebox store (an SQLite file with other contents, or not SQLite at all)")) {
            try Analyzer.analyze(AnalyzeOptions(databases: [text]))
        }
        #expect(throws: AnalyzeError.missing("/nonexistent.db does not exist")) { try Analyzer.analyze(AnalyzeOptions(databases: ["/nonexistent.db"])) }
        _ = try h.engine()
        h.finish()
        #expect(throws: AnalyzeError.empty([h.path("host-a")])) { try Analyzer.analyze(AnalyzeOptions(databases: [h.path("host-a")])) }
    }

    @Test func budgetRefusalsAreCountedByReasonWithoutMakingAnIncident() throws {
        let h = try StoreHistory()
        h.openaiBudget = BudgetPolicy(rate: RateLimit(amount: 30, per: .seconds(60)))
        try h.traffic(count: 120)  // twice what openai's budget allows over two minutes
        h.finish()
        let a = try analyze(h)
        #expect(a.incidents.isEmpty, "a budget refuses before anything fails: the breaker stays closed")
        let openai = try #require(a.summary.first { $0.lane.breaker == "openai" }).traffic
        let anthropic = try #require(a.summary.first { $0.lane.breaker == "anthropic" }).traffic
        // A full bucket of 30, then one every 2 s: about 90 of 120, the rest spill to anthropic.
        #expect((88...91).contains(openai.successes))
        #expect(openai.rejectedRate == 120 - openai.successes)
        #expect(openai.rejected == openai.rejectedRate && openai.rejectedConcurrency == 0 && openai.rejectedTokens == 0)
        #expect(anthropic.successes == openai.rejectedRate && openai.fallbacksOut == openai.rejectedRate)
    }

    @Test func aStateRestoredAfterARestartReadsAsARestartNotATrip() {
        let lane = Lane(instance: "host-a", breaker: "ollama", label: "ollama")
        let restored = StoredTransition(
            at: 1_000, lane: lane, from: "closed", to: "open", reason: "restored", generation: 5, failureCount: 0, callsInWindow: 0,
            failureRate: 0, slowCallRate: 0, lastError: nil, lastStatus: nil, openUntil: 61_000
        )
        let event = IncidentFinder.event(restored)
        #expect(event.kind == .other)
        #expect(event.text == "sidecar restarted: open again as before for 1m 00s")
    }
}
