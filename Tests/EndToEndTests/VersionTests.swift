import Foundation
import FuseboxJSON
import Testing

/// `VERSION` is the one place the version is written; everything that states
/// a version must say the same.
@Suite struct VersionTests {
    static func text(_ path: String) throws -> String {
        try String(contentsOf: DeployFilesTests.file(path), encoding: .utf8)
    }

    static func firstMatch(_ pattern: String, in text: String) -> String? {
        guard let range = text.range(of: pattern, options: .regularExpression) else { return nil }
        let match = String(text[range])
        return match.split(separator: "\"").dropFirst().first.map(String.init)
    }

    @Test func theBinaryTheProtocolAndBothClientsSayTheVersionInVERSION() throws {
        let version = try Self.text("VERSION").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(version.split(separator: ".").count == 3, "VERSION: \(version)")
        #expect(try FuseboxBinary.run(["--version"]).stdout == version + "\n")
        let sidecar = try SidecarProcess()
        let hello = try sidecar.connect().ok(#"{"op":"hello","protocol":1}"#)
        #expect(hello["server"] == .string("fusebox \(version)"))
        // Python writes it once, in __init__.py; the package's metadata reads it from there.
        #expect(try Self.text("clients/python/pyproject.toml").contains(#"version = { attr = "fusebox.__version__" }"#))
        #expect(Self.firstMatch(#"__version__ = "[^"]*""#, in: try Self.text("clients/python/fusebox/__init__.py")) == version)
        let package = try JSONParser.parse(Self.text("clients/node/package.json"))
        #expect(package["version"] == .string(version))
        #expect(try Self.text("clients/node/index.js").contains("export const VERSION = '\(version)';"))
        #expect(try Self.text("CHANGELOG.md").contains("## \(version) "))
        // The image takes the version as a build argument with no default: nothing there to go stale.
        let dockerfile = try Self.text("Dockerfile")
        #expect(dockerfile.contains("ARG VERSION\n") && !dockerfile.contains("ARG VERSION="))
        #expect(dockerfile.contains(#"org.opencontainers.image.version="${VERSION}""#))
        for manifest in ["deploy/kubernetes/sidecar.yaml", "deploy/kubernetes/daemonset.yaml"] {
            #expect(try Self.text(manifest).contains("image: fusebox:\(version)"), "\(manifest)")
        }
    }
}
