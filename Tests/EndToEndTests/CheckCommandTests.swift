import Foundation
import Testing

@Suite("fusebox check")
struct CheckCommandTests {
    @Test func theEmbeddedDefaultPassesAndPrintsEveryPolicy() throws {
        let result = try FuseboxBinary.run(["check"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("# <embedded default>: OK, 3 breakers, 1 chain"))
        for breaker in ["openai:", "anthropic:", "ollama:"] { #expect(result.stdout.contains("  \(breaker)\n")) }
        #expect(result.stdout.contains("llm: [openai, anthropic, ollama]"))
        #expect(result.stdout.contains("duration: 10s"))
    }

    @Test(arguments: [
        ("defaults:\n  trip:\n    failure_rate: 1.5\n", ":3:", "defaults.trip.failure_rate"),
        ("breakers:\n  openai:\n    retries: 3\n", ":3:", "breakers.openai.retries"),
        ("breakers: { openai: {} }\nchains:\n  llm: [openai, missing]\n", ":3:", "chains.llm[1]"),
    ])
    func aBrokenFileFailsNamingTheLineAndKey(yaml: String, line: String, key: String) throws {
        let folder = try TemporaryFolder()
        let file = try folder.write("fusebox.yaml", yaml)
        let result = try FuseboxBinary.run(["check", "--config", file.path])
        #expect(result.status == 65)
        #expect(result.stderr.hasPrefix("fusebox check: \(file.path)\(line)"), "\(result.stderr)")
        #expect(result.stderr.contains(key), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func aWrittenFileIsValidatedAndExpanded() throws {
        let folder = try TemporaryFolder()
        let file = try folder.write("fusebox.yaml", "breakers:\n  solo: { open: { duration: 5s } }\n")
        let result = try FuseboxBinary.run(["check", "--config", file.path])
        #expect(result.status == 0)
        #expect(result.stdout.contains("OK, 1 breaker, 0 chains"))
        #expect(result.stdout.contains("duration: 5s"))
    }

    @Test func helpExplainsWithAnExample() throws {
        let result = try FuseboxBinary.run(["check", "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("fusebox check --config"))
    }
}
