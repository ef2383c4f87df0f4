#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import FuseboxConfig

@Suite("OTLP export configuration")
struct OTLPConfigTests {
    func load(_ yaml: String) throws -> Configuration { try ConfigLoader.load(yaml: "store: off\n" + yaml, file: "test.yaml") }

    func refusal(_ yaml: String) -> String? {
        do {
            _ = try load(yaml)
            return nil
        } catch let error as ConfigError {
            return "\(error.key): \(error.message)"
        } catch {
            return nil
        }
    }

    @Test func offByDefaultAndReadWithItsDefaults() throws {
        #expect(try load("breakers: {}").otlp == nil)
        let otlp = try #require(try load("otlp: { endpoint: \"http://collector:4318/\" }").otlp)
        #expect(otlp.endpoint == "http://collector:4318", "the trailing slash is dropped: paths are appended")
        #expect(otlp.interval == .seconds(15) && otlp.timeout == .seconds(10) && otlp.headers.isEmpty)
    }

    @Test func headersTakeTheirVariablesAndCheckShowsOnlyTheTemplate() throws {
        setenv("FUSEBOX_OTLP_TEST_TOKEN", "s3cret", 1)
        let config = try load("otlp: { endpoint: https://otel.example, interval: 5s, headers: { authorization: \"Bearer ${FUSEBOX_OTLP_TEST_TOKEN}\" } }")
        #expect(config.otlp?.headers.first?.value == "Bearer s3cret")
        let rendered = ConfigRenderer.yaml(config)
        #expect(rendered.contains("authorization") && !rendered.contains("s3cret"))
    }

    @Test(arguments: [
        ("otlp: { interval: 5s }", "needs endpoint"),
        ("otlp: { endpoint: ftp://collector }", "http:// or https://"),
        ("otlp: { endpoint: \"http://collector:4318/?x=1\" }", "no query"),
        ("otlp: { endpoint: \"http://\" }", "no host"),
        ("otlp: { endpoint: http://c, interval: 100ms }", "at least 1s"),
        ("otlp: { endpoint: http://c, headers: { x: \"${FUSEBOX_OTLP_UNSET_VARIABLE}\" } }", "not set in the environment"),
        ("otlp: { endpoint: http://c, port: 4318 }", "port"),
    ])
    func badSettingsAreRefusedSayingWhatIsAllowed(yaml: String, says: String) {
        let message = refusal(yaml)
        #expect(message?.contains(says) == true, "\(message ?? "accepted")")
    }
}
