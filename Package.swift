// swift-tools-version:6.1
import PackageDescription

let package = Package(
    // Linux only: peer credentials (SO_PEERCRED), /proc and Glibc are used directly,
    // and FuseboxServer refuses to compile elsewhere rather than pretend.
    name: "Fusebox",
    products: [
        .executable(name: "fusebox", targets: ["fusebox"]),
        .executable(name: "fusebox-bench", targets: ["fusebox-bench"]),
        .library(name: "FuseboxCore", targets: ["FuseboxCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", exact: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1", traits: []),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),  // postgres-nio's own: TLS to the fleet's database
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "4.5.2"),  // postgres-nio's own: HMAC on fleet messages
        .package(url: "https://github.com/apple/swift-http-types", exact: "1.8.0"),  // hummingbird's own: the HTTP endpoints' types
    ],
    targets: [
        // The engine: pure, synchronous, no I/O, injected clock.
        .target(name: "FuseboxCore"),
        // YAML configuration: parsing, validation with file/line/key, the embedded default.
        .target(name: "FuseboxConfig", dependencies: [
            "FuseboxCore", "FuseboxText",
            .product(name: "Yams", package: "Yams"),
        ]),
        // JSON read and written by hand, so every malformed line gets a precise
        // error and nothing traps: the one parser and the one writer of the package.
        .target(name: "FuseboxJSON"),
        // Text for people: tables, and control characters made visible for terminals and markdown.
        .target(name: "FuseboxText"),
        // Protocol v1: requests, responses, events.
        .target(name: "FuseboxWire", dependencies: ["FuseboxCore", "FuseboxJSON"]),
        // A blocking line client over a Unix socket and the socket address helpers (ctl, bench, tests).
        .target(name: "FuseboxSocket", dependencies: ["FuseboxJSON"]),
        // The SQLite store (system libsqlite3 through GRDB): schema, batched writer, readers.
        .target(name: "FuseboxStore", dependencies: [
            "FuseboxCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Incidents rebuilt from stores; text, markdown, JSON and HTML reports.
        .target(name: "FuseboxAnalyze", dependencies: [
            "FuseboxCore", "FuseboxStore", "FuseboxConfig", "FuseboxJSON", "FuseboxText",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ]),
        // Discrete-event outage scenarios driving the real engine on a virtual clock.
        .target(name: "FuseboxSimulate", dependencies: ["FuseboxCore", "FuseboxConfig", "FuseboxJSON", "FuseboxText"]),
        // JSON log lines, Prometheus metrics, and the engine's event fan-out.
        .target(name: "FuseboxTelemetry", dependencies: [
            "FuseboxCore", "FuseboxWire", "FuseboxJSON",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // statfs(2), which Glibc's Swift module leaves out (the fast path's file must be on a memory filesystem).
        .target(name: "CFuseboxStatfs"),

        // The fast path's shared-memory state file: its layout, writer and board.
        .target(name: "FuseboxStateFile", dependencies: [
            "CFuseboxStatfs", "FuseboxCore",
            .product(name: "Logging", package: "swift-log"),
        ]),

        // The Unix-socket sidecar: NIO pipeline, admin socket, subscriptions, HTTP.
        .target(name: "FuseboxServer", dependencies: [
            "FuseboxStateFile",
            "FuseboxCore", "FuseboxWire", "FuseboxJSON", "FuseboxSocket", "FuseboxConfig", "FuseboxTelemetry",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            // Imported directly by the HTTP endpoints and the connection registry: declared, not borrowed.
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        // Fleet mode: shared openings, one probe, budget leases and the history shipper over PostgreSQL.
        .target(name: "FuseboxFleet", dependencies: [
            "FuseboxCore", "FuseboxConfig", "FuseboxStore", "FuseboxTelemetry", "FuseboxJSON",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Active health probes: the sidecar tests a provider itself (HTTP through
        // async-http-client), off the decision path, so no user request is the probe.
        .target(name: "FuseboxProbe", dependencies: [
            "FuseboxCore", "FuseboxConfig", "FuseboxTelemetry",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // OTLP/HTTP export (JSON encoding): the metrics /metrics serves and the transitions, pushed to a collector.
        .target(name: "FuseboxOTLP", dependencies: [
            "FuseboxCore", "FuseboxConfig", "FuseboxJSON", "FuseboxTelemetry",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),  // the blocking pool the metrics are encoded on
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // `fusebox serve`'s wiring: the engine, its outputs, the store and the services, started and stopped together.
        .target(name: "FuseboxApp", dependencies: [
            "FuseboxCore", "FuseboxConfig", "FuseboxServer", "FuseboxStore", "FuseboxTelemetry", "FuseboxFleet", "FuseboxProbe",
            "FuseboxOTLP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),  // the reloader's SIGHUP
        ]),
        .executableTarget(name: "fusebox", dependencies: [
            "FuseboxApp",
            "FuseboxFleet",
            "FuseboxCore",
            "FuseboxConfig",
            "FuseboxWire",
            "FuseboxJSON",
            "FuseboxSocket",
            "FuseboxText",
            "FuseboxServer",
            "FuseboxTelemetry",
            "FuseboxStore",
            "FuseboxSimulate",
            "FuseboxAnalyze",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "fusebox-bench", dependencies: [
            "FuseboxCore", "FuseboxWire", "FuseboxJSON", "FuseboxSocket", "FuseboxStore",
            .product(name: "GRDB", package: "GRDB.swift"),
            // The plain NIO echo the socket benchmark measures as a floor.
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // libFuzzer targets (scripts/fuzz); built normally it replays a corpus.
        .executableTarget(name: "fusebox-fuzz", dependencies: [
            "FuseboxCore", "FuseboxWire", "FuseboxJSON", "FuseboxConfig", "FuseboxServer", "FuseboxStateFile",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "FuseboxCoreTests", dependencies: ["FuseboxCore"]),
        .testTarget(name: "FuseboxServerTests", dependencies: [
            "FuseboxServer", "FuseboxStateFile", "FuseboxCore", "FuseboxWire", "FuseboxJSON", "FuseboxConfig", "FuseboxTelemetry",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "FuseboxStoreTests", dependencies: [
            "FuseboxStore", "FuseboxCore",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .testTarget(name: "FuseboxAnalyzeTests", dependencies: [
            "FuseboxAnalyze", "FuseboxStore", "FuseboxCore",
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["Golden"]),
        .testTarget(name: "FuseboxSimulateTests", dependencies: ["FuseboxSimulate", "FuseboxCore", "FuseboxJSON"]),
        .testTarget(name: "FuseboxWireTests", dependencies: ["FuseboxWire", "FuseboxJSON", "FuseboxCore"]),
        .testTarget(name: "FuseboxConfigTests", dependencies: ["FuseboxConfig", "FuseboxCore"]),
        .testTarget(name: "FuseboxOTLPTests", dependencies: ["FuseboxOTLP", "FuseboxCore", "FuseboxJSON"]),
        .testTarget(name: "FuseboxFleetTests", dependencies: [
            "FuseboxFleet", "FuseboxConfig", "FuseboxCore", "FuseboxJSON", "FuseboxTelemetry",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // Runs the real binaries; depending on them makes `swift test` build them first.
        .testTarget(name: "EndToEndTests", dependencies: [
            "fusebox", "fusebox-fuzz", "FuseboxWire", "FuseboxJSON", "FuseboxSocket",
            "FuseboxStateFile",  // to read the state file back as clients do
            .product(name: "Yams", package: "Yams"),  // to read the Kubernetes manifests
        ]),
    ],
    swiftLanguageModes: [.v6]
)
