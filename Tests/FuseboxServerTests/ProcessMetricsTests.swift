import FuseboxCore
import FuseboxTelemetry
import Testing

/// The process_* series come from /proc, or not at all.
@Suite struct ProcessMetricsTests {
    @Test func theReadingIsThisProcesssOwn() throws {
        let reading = try ProcessMetrics().read()
        #expect(reading.residentBytes > 1_000_000 && reading.virtualBytes >= reading.residentBytes)
        #expect(reading.openDescriptors >= 3 && Double(reading.openDescriptors) <= reading.maxDescriptors)
        #expect(reading.cpuSeconds > 0)
        // Started within the last day, not at the epoch or in the future.
        let now = Double(SystemClock().now().milliseconds) / 1_000
        #expect(reading.startTimeSeconds > now - 86_400 && reading.startTimeSeconds <= now + 1)
    }

    @Test func withoutProcTheSeriesAreLeftOutNotReportedAsZero() {
        let missing = ProcessMetrics(procRoot: "/nonexistent-proc")
        #expect(throws: ProcessMetrics.Unreadable.self) { try missing.read() }
        #expect(missing.exposition().isEmpty)
        let text = String(decoding: ProcessMetrics().exposition(), as: UTF8.self)
        #expect(text.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "))
    }
}
