import ArgumentParser
import FuseboxCore
import FuseboxJSON

extension CtlCommand {
    /// The call cycle by hand, on one connection (a permit dies with the
    /// connection that holds it, so two separate `socat` runs cannot do this).
    struct Call: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One call's cycle by hand: acquire a permit (or route along a chain), then report how the call went.",
            discussion: """
            Prints each request and the sidecar's answer, as an app would send and read them.

            Examples:
              fusebox ctl call openai                       a call that succeeded
              fusebox ctl call openai --status 503 --latency-ms 812 --error "upstream unavailable"
              fusebox ctl call llm --chain --outcome timeout
            """
        )

        @OptionGroup var connection: Connection
        @Argument(help: "The breaker (or, with --chain, the chain).") var name: String
        @Flag(help: "Route along the chain NAME instead of acquiring from one breaker.") var chain = false
        @Option(help: "The call's HTTP status, classified by the breaker's rules.") var status: Int?
        @Option(help: "success, failure, timeout, ignored or cancelled (default: success unless --status is given).") var outcome: String?
        @Option(help: "How long the call took, in milliseconds.") var latencyMs: Double?
        @Option(help: "The error text to report.") var error: String?
        @Flag(help: "Print only the two JSON answers, one per line.") var json = false

        func validate() throws {
            if let outcome, Outcome(rawValue: outcome) == nil {
                throw ValidationError("--outcome must be one of \(Outcome.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let latencyMs, !(latencyMs >= 0 && latencyMs.isFinite) { throw ValidationError("--latency-ms must be 0 or more") }
        }

        func run() throws {
            let client = try connection.connect(admin: false)
            let acquire = chain
                ? #"{"op":"route","chain":\#(quoted(name))}"#
                : #"{"op":"acquire","breaker":\#(quoted(name))}"#
            let granted = try ask(client, acquire)
            show(acquire, granted)
            guard granted["allowed"] == .bool(true), case .string(let permit)? = granted["permit"] else {
                if !json { print("not permitted: the call would not be made") }
                throw ExitCode(ExitStatus.notPermitted)
            }
            var report = #"{"op":"report","permit":\#(quoted(permit))"#
            if let status { report += #","status":\#(status)"# }
            if let outcome { report += #","outcome":\#(quoted(outcome))"# }
            if status == nil, outcome == nil { report += #","outcome":"success""# }
            if let latencyMs { report += #","latency_ms":\#(latencyMs)"# }
            if let error { report += #","error":\#(quoted(error))"# }
            report += "}"
            show(report, try ask(client, report))
        }

        private func show(_ request: String, _ answer: JSONValue) {
            if json {
                print(JSONWriter.text(answer))
            } else {
                print("→ \(request)\n← \(JSONWriter.text(answer))")
            }
        }
    }
}
