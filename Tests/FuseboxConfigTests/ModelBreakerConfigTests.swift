import FuseboxCore
import Testing
@testable import FuseboxConfig

/// `models:` under a breaker adds one breaker per model, `<provider>/<model>`.
@Suite("Per-model breakers in the configuration")
struct ModelBreakerConfigTests {
    func load(_ yaml: String) throws -> Configuration { try ConfigLoader.load(yaml: yaml, file: "test.yaml") }

    func failure(_ yaml: String) -> ConfigError? {
        do { _ = try load(yaml); return nil } catch { return error as? ConfigError }
    }

    @Test func aModelListAddsABreakerPerModelWithTheProvidersPolicy() throws {
        let config = try load("""
            breakers:
              openai: { trip: { consecutive_failures: 2 }, models: [gpt-4o, "o3-mini"] }
              ollama: { models: ["llama3:8b"] }
            chains: { llm: [openai/gpt-4o, openai, ollama/llama3:8b] }
            """)
        #expect(config.engine.breakers.map(\.name) == ["openai", "openai/gpt-4o", "openai/o3-mini", "ollama", "ollama/llama3:8b"])
        let openai = try #require(config.engine.breakers.first { $0.name == "openai" })
        #expect(config.engine.breakers.first { $0.name == "openai/o3-mini" }?.policy == openai.policy)
        #expect(config.engine.chains.first?.breakers == ["openai/gpt-4o", "openai", "ollama/llama3:8b"])
    }

    @Test func theMappingFormChangesThePolicyPerModel() throws {
        let config = try load("""
            breakers:
              openai: { trip: { consecutive_failures: 2 }, models: { gpt-4o: { open: { duration: 10s } }, o3: {} } }
            """)
        let tuned = try #require(config.engine.breakers.first { $0.name == "openai/gpt-4o" })
        #expect(tuned.policy.open.duration == .seconds(10))
        #expect(tuned.policy.trip.consecutiveFailures == 2, "the rest is the provider's")
        #expect(config.engine.breakers.first { $0.name == "openai/o3" }?.policy.open.duration != .seconds(10))
    }

    struct Refused: Sendable {
        var yaml: String
        var key: String
        var message: String
    }

    static let refused: [Refused] = [
        Refused(yaml: "breakers: { a: { models: [\"gpt 4\"] } }", key: "breakers.a.models[0]", message: "model name"),
        Refused(yaml: "breakers: { a: { models: [x, x] } }", key: "breakers.a.models[1]", message: "twice"),
        Refused(yaml: "breakers: { a: { models: [] } }", key: "breakers.a.models", message: "at least one"),
        Refused(yaml: "breakers: { a: { models: [\(String(repeating: "m", count: 63))] } }", key: "breakers.a.models[0]", message: "64 bytes"),
        Refused(yaml: "defaults: { models: [x] }", key: "defaults.models", message: "unknown key"),
        Refused(yaml: "breakers: { a: { models: { x: { open: { duration: 0s } } } } }", key: "breakers.a.models.x.open.duration", message: "longer than zero"),
    ]

    @Test(arguments: refused)
    func badModelListsAreRefusedWithWhereAndWhy(_ case_: Refused) throws {
        let error = try #require(failure(case_.yaml), "\(case_.yaml) should be refused")
        #expect(error.key == case_.key, "\(error)")
        #expect(error.message.contains(case_.message), "\(error)")
    }

    @Test func theRenderedConfigurationLoadsBackWithItsModels() throws {
        let original = try load("""
            breakers:
              openai: { models: { gpt-4o: { open: { duration: 10s } }, "o3-mini": {} } }
              ollama: { models: ["llama3:8b"] }
            """)
        #expect(try load(ConfigRenderer.yaml(original)) == original)
    }
}
