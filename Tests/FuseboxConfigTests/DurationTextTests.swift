import Testing
@testable import FuseboxConfig

@Suite("Durations")
struct DurationTextTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("30s", .seconds(30)), ("10m", .seconds(600)),
        ("1h", .seconds(3_600)), ("1.5s", .milliseconds(1_500)), ("7d", .seconds(604_800)), ("0s", .zero),
    ])
    func parses(text: String, expected: Duration) {
        #expect(DurationText.parse(text) == expected)
    }

    @Test(arguments: ["30", "abc", "-1s", "s", "1x", "1 h m", ""])
    func refuses(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test func formatsWithTheLargestExactUnit() {
        #expect(DurationText.format(.seconds(600)) == "10m")
        #expect(DurationText.format(.milliseconds(1_500)) == "1500ms")
        #expect(DurationText.format(.seconds(90)) == "90s")
        #expect(DurationText.format(.seconds(7_200)) == "2h")
    }
}
