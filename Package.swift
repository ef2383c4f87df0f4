// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Fusebox",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fusebox", targets: ["fusebox"]),
        .executable(name: "fusebox-bench", targets: ["fusebox-bench"]),
        .library(name: "FuseboxCore", targets: ["FuseboxCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
    ],
    targets: [
        // The engine: pure, synchronous, no I/O, injected clock.
        .target(name: "FuseboxCore"),
        // YAML configuration: parsing, validation with file/line/key, the embedded default.
        .target(name: "FuseboxConfig", dependencies: [
            "FuseboxCore",
            .product(name: "Yams", package: "Yams"),
        ]),
        // Protocol v1: requests, responses, events; JSON read and written by hand
        // so every malformed line gets a precise error and nothing traps.
        .target(name: "FuseboxWire", dependencies: ["FuseboxCore"]),
        .executableTarget(name: "fusebox", dependencies: [
            "FuseboxCore",
            "FuseboxConfig",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "fusebox-bench", dependencies: ["FuseboxCore"]),
        .testTarget(name: "FuseboxCoreTests", dependencies: ["FuseboxCore"]),
        .testTarget(name: "FuseboxWireTests", dependencies: ["FuseboxWire", "FuseboxCore"]),
        .testTarget(name: "FuseboxConfigTests", dependencies: ["FuseboxConfig", "FuseboxCore"]),
        // Runs the real binaries; depending on them makes `swift test` build them first.
        .testTarget(name: "EndToEndTests", dependencies: ["fusebox"]),
    ],
    swiftLanguageModes: [.v6]
)
