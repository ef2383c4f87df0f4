import FuseboxCore

/// `fusebox-bench`: speed figures, each printed beside a baseline measured in
/// the same run so the ratio means something on any machine.
///
///   swift run -c release fusebox-bench engine
///   swift run -c release fusebox-bench socket    (needs the release fusebox binary beside it, and cc for the C floor)
///   swift run -c release fusebox-bench budgets   (socket figures with and without budgets; a full queue's neighbours)
///   swift run -c release fusebox-bench store
///   swift run -c release fusebox-bench memory
///   swift run -c release fusebox-bench analyze-store /tmp/big.db   (then time `fusebox analyze --db /tmp/big.db`)
///   swift run -c release fusebox-bench engine-pairs N   (exactly N pairs, for allocation counting)
///   swift run -c release fusebox-bench engine-routes N ordered|fastest   (exactly N route+report pairs, likewise)
///   scripts/postgres .build/release/fusebox-bench fleet [N]   (fleet on vs off; N sidecars against one PostgreSQL)
///   swift run -c release fusebox-bench scale   (start with 100 to 10,000 breakers, memory per idle breaker, reload stalls)
@main
enum BenchMain {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "engine", nil:
            try EngineBench.run()
        case "socket":
            try SocketBench.run()
        case "nio-echo":
            guard let path = arguments.dropFirst().first else { throw BenchError("nio-echo needs a socket path") }
            try NIOLineEcho.run(path: path)
        case "budgets":
            try BudgetBench.run()
        case "store":
            try StoreBench.run()
        case "analyze-store":
            try AnalyzeBench.build(arguments.dropFirst().first ?? "analyze-bench.db")
        case "memory":
            try SocketBench.memory()
        case "fleet":
            try FleetBench.run(sidecars: arguments.dropFirst().first.flatMap(Int.init) ?? 50)
        case "engine-pairs":
            let count = arguments.dropFirst().first.flatMap(Int.init) ?? 1_000
            try EngineBench.pairs(count)
        case "engine-routes":
            let count = arguments.dropFirst().first.flatMap(Int.init) ?? 1_000
            let fastest = arguments.dropFirst(2).first == "fastest"
            try EngineBench.routes(try EngineBench.makeEngine(strategy: fastest ? .fastest(FastestPolicy()) : .ordered), count)
        case "scale":
            try ScaleBench.run()
        case "protocol-pairs":
            try ProtocolBench.pairs(arguments.dropFirst().first.flatMap(Int.init) ?? 10_000)
        default:
            print("usage: fusebox-bench [engine | socket | nio-echo PATH | budgets | store | memory | analyze-store FILE | engine-pairs N | engine-routes N ordered|fastest | protocol-pairs N | fleet [N] | scale]")
        }
    }
}
