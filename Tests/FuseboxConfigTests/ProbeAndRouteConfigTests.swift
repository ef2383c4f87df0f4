#if canImport(Glibc)
import Glibc
#endif
import FuseboxCore
import Testing
@testable import FuseboxConfig

@Suite("Probe and routing configuration")
struct ProbeAndRouteConfigTests {
    func load(_ yaml: String) throws -> Configuration { try ConfigLoader.load(yaml: yaml, file: "test.yaml") }

    /// The message of the error `yaml` is refused with, and the key it names.
    func refusal(_ yaml: String) -> (key: String, message: String)? {
        do {
            _ = try load(yaml)
            return nil
        } catch let error as ConfigError {
            return (error.key, error.message)
        } catch {
            return nil
        }
    }

    static let full = """
    store: off
    breakers:
      openai:
        capabilities: [tools, vision]
        cost: { input_per_1k: 2.5, output_per_1k: 10 }
        probe:
          http:
            url: https://api.openai.com/v1/models
            method: head
            headers: { Authorization: "Bearer ${FUSEBOX_CONFIG_TEST_KEY}", X-Probe: fusebox }
            body: "{}"
            expect_status: [200, "3xx"]
            timeout: 2s
          interval: 30s
          closed_interval: 5m
      mini: { cost: { weight: 1 }, probe: { http: { url: "http://127.0.0.1:11434/" }, mode: passive } }
    chains:
      llm: [openai, mini]
      fast: { breakers: [openai, mini], strategy: fastest, margin: 0.3, window: 20s }
      cheap: { breakers: [openai, mini], strategy: cheapest }
      canary: { breakers: [openai, mini], strategy: weighted, weights: { openai: 95, mini: 5 } }
    """

    @Test func probesStrategiesCapabilitiesAndCostsLoadAndRenderBackTheSameWithoutTheSecret() throws {
        setenv("FUSEBOX_CONFIG_TEST_KEY", "sk-config-test-secret", 1)
        let config = try load(Self.full)
        let openai = try #require(config.engine.breakers.first { $0.name == "openai" }).policy
        let probe = try #require(openai.probe)
        #expect(probe.method == "HEAD" && probe.timeout == .seconds(2) && probe.interval == .seconds(30))
        #expect(probe.closedInterval == .seconds(300) && probe.isActive && probe.body == "{}")
        #expect(probe.headers.first?.value == "Bearer sk-config-test-secret")
        #expect(probe.expects(200) && probe.expects(302) && !probe.expects(204))
        #expect(openai.capabilities == ["tools", "vision"] && openai.cost?.figure == 12.5)
        #expect(config.engine.chains.map(\.strategy) == [
            .ordered, .fastest(FastestPolicy(margin: 0.3, window: .seconds(20))), .cheapest, .weighted(["openai": 95, "mini": 5]),
        ])
        let rendered = ConfigRenderer.yaml(config)
        #expect(!rendered.contains("sk-config-test-secret"))
        #expect(rendered.contains("${FUSEBOX_CONFIG_TEST_KEY}"))
        #expect(try load(rendered) == config)
    }

    @Test(arguments: [
        ("probe: { http: { url: ftp://x/ } }", "expected an http:// or https:// URL"),
        ("probe: { interval: 10s }", "needs http: { url: … }"),
        ("probe: { http: { url: \"http://x/\", timeout: 40s } }", "must be shorter than half_open.max_wait"),
        ("probe: { http: { url: \"http://x/\", method: DELETE } }", "must be one of GET, HEAD, POST, PUT, OPTIONS"),
        ("probe: { http: { url: \"http://x/\" }, mode: sometimes }", "must be active or passive"),
        ("probe: { http: { url: \"http://x/\", expect_status: [timeout] } }", "expect_status takes statuses"),
        ("probe: { http: { url: \"http://x/\", headers: { A: \"${BAD-NAME}x\" } } }", "is not a variable name"),
        ("cost: { weight: 1, input_per_1k: 2 }", "either a weight or prices"),
        ("capabilities: [\"has space\"]", "A capability must be 1 to 64"),
    ])
    func aBadBreakerSectionIsRefusedSayingWhatIsAllowed(section: String, message: String) {
        let refused = refusal("store: off\nbreakers:\n  a: { \(section) }\n")
        #expect(refused?.message.contains(message) == true, "\(section) → \(String(describing: refused))")
    }

    @Test(arguments: [
        ("c: { breakers: [a, b], strategy: quickest }", "must be one of ordered, fastest, cheapest, weighted"),
        ("c: { breakers: [a, b], margin: 0.2 }", "belongs to strategy fastest"),
        ("c: { breakers: [a, b], strategy: weighted }", "needs weights"),
        ("c: { breakers: [a, b], strategy: weighted, weights: { z: 1 } }", "is not a member of chain c"),
        ("c: { breakers: [a, b], strategy: weighted, weights: { a: 0 } }", "add up to 0"),
        ("c: { strategy: fastest }", "needs breakers"),
        ("c: { breakers: [a, b], strategy: fastest, window: 10ms }", "at least 100ms"),
    ])
    func aBadChainIsRefusedSayingWhatIsAllowed(chain: String, message: String) {
        let refused = refusal("store: off\nbreakers: { a: {}, b: {} }\nchains:\n  \(chain)\n")
        #expect(refused?.message.contains(message) == true, "\(chain) → \(String(describing: refused))")
    }
}
