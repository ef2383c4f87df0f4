import Testing
@testable import FuseboxCore

@Suite("Fallback chains")
struct ChainTests {
    func llm() throws -> Harness {
        try Harness(
            ["openai": policy(), "anthropic": policy(), "ollama": policy(open: .seconds(10))],
            chains: [ChainDefinition(name: "llm", breakers: ["openai", "anthropic", "ollama"])]
        )
    }

    @Test func routeTakesTheFirstBreakerWhenAllAreClosed() throws {
        let h = try llm()
        let route = try h.engine.route("llm")
        #expect(route.allowed && route.breaker == "openai" && route.skipped.isEmpty)
        #expect(h.observer.fallbacks.isEmpty)
    }

    @Test func routeSkipsOpenBreakersAndSaysWhenTheyMayBeTriedAgain() throws {
        let h = try llm()
        try h.fail("openai", times: 5)
        h.clock.advance(by: .seconds(20))
        let route = try h.engine.route("llm")
        #expect(route.breaker == "anthropic")
        #expect(route.skipped == [SkippedBreaker(breaker: "openai", state: .open, retryIn: .seconds(40), reason: .open)])
        #expect(h.observer.fallbacks == ["llm:openai->anthropic"])
    }

    @Test func routeHonoursExcludeAndCountsTheFallbackFromThePrimary() throws {
        let h = try llm()
        let route = try h.engine.route("llm", exclude: ["openai", "anthropic"])
        #expect(route.breaker == "ollama" && route.skipped.isEmpty)
        #expect(h.observer.fallbacks == ["llm:openai->ollama"])
    }

    @Test func aChainWithEveryBreakerOpenIsRefused() throws {
        let h = try llm()
        for name in ["openai", "anthropic", "ollama"] { try h.fail(name, times: 5) }
        let route = try h.engine.route("llm")
        #expect(!route.allowed && route.permit == nil)
        #expect(route.skipped.map(\.breaker) == ["openai", "anthropic", "ollama"])
        #expect(route.skipped.last?.retryIn == .seconds(10))
    }

    @Test func unknownNamesAreErrors() throws {
        let h = try llm()
        #expect(throws: EngineError.unknownChain("nope")) { try h.engine.route("nope") }
        #expect(throws: EngineError.unknownBreaker("nope")) { try h.engine.acquire("nope") }
        #expect(throws: EngineError.unknownPermit("000000000000ffff")) { try h.engine.report(PermitID(rawValue: 0xffff), .success()) }
    }

    @Test func aPermitCannotBeReportedTwice() throws {
        let h = try llm()
        let permit = try #require(try h.engine.acquire("openai").permit)
        try h.engine.report(permit.id, .success())
        #expect(throws: EngineError.unknownPermit(permit.id.description)) { try h.engine.report(permit.id, .success()) }
    }

    @Test func permitIdsRoundTripThroughTheirText() throws {
        let h = try llm()
        let permit = try #require(try h.engine.acquire("openai").permit)
        #expect(PermitID(permit.id.description) == permit.id)
        #expect(PermitID("") == nil)
        #expect(PermitID("zz") == nil)
        #expect(PermitID("0") == nil)
        #expect(PermitID("+1a") == nil && PermitID("-1") == nil && PermitID("1 ") == nil)
        #expect(PermitID("00000000000000001")?.rawValue == nil, "seventeen digits")
        #expect(PermitID("FfFfFfFfFfFfFfFf")?.rawValue == UInt64.max)
        #expect(PermitID(rawValue: 0xA).description == "000000000000000a")
        #expect(PermitID(rawValue: UInt64.max).description == "ffffffffffffffff")
        #expect(PermitID(rawValue: 0x0123_4567_89AB_CDEF).withQuotedHex { Array($0) } == Array(#""0123456789abcdef""#.utf8))
    }
}
