import Testing
@testable import FuseboxConfig

@Suite("log_level")
struct LogLevelConfigTests {
    @Test func defaultsToInfoAndTakesTheStandardNames() throws {
        #expect(try ConfigLoader.load(yaml: "store: off", file: "t.yaml").logLevel == .info)
        for level in LogLevel.allCases {
            #expect(try ConfigLoader.load(yaml: "store: off\nlog_level: \(level.rawValue)", file: "t.yaml").logLevel == level)
        }
    }

    @Test func anUnknownLevelIsRefusedNamingTheAllowedOnes() {
        #expect {
            _ = try ConfigLoader.load(yaml: "store: off\nlog_level: notice", file: "t.yaml")
        } throws: { error in
            "\(error)".contains("trace, debug, info, warn, error") && "\(error)".contains("notice")
        }
    }
}
