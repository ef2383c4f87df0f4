import Foundation
import Testing
import Yams

/// The files an operator deploys with are read as their tools would read them,
/// and the configurations they carry pass `fusebox check`.
@Suite struct DeployFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func file(_ path: String) -> URL { root.appendingPathComponent(path) }

    /// Every document of every manifest, with the file it came from.
    static func manifests() throws -> [(file: String, document: [String: Any])] {
        let folder = file("deploy/kubernetes")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(names == ["configmap.yaml", "daemonset.yaml", "sidecar.yaml"])
        return try names.flatMap { name in
            try Yams.load_all(yaml: String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)).map { document in
                (name, try #require(document as? [String: Any], "\(name): a document that is not a mapping"))
            }
        }
    }

    @Test func everyManifestIsAKubernetesObjectWhoseMountsAndConfigMapsExist() throws {
        let documents = try Self.manifests()
        let configMaps = Set(documents.filter { $0.document["kind"] as? String == "ConfigMap" }.compactMap { ($0.document["metadata"] as? [String: Any])?["name"] as? String })
        #expect(configMaps == ["fusebox-config"])
        for (file, document) in documents {
            #expect(document["apiVersion"] is String && document["kind"] is String, "\(file)")
            #expect((document["metadata"] as? [String: Any])?["name"] is String, "\(file): metadata.name")
            guard let kind = document["kind"] as? String, kind == "Deployment" || kind == "DaemonSet" else { continue }
            let template = try #require((document["spec"] as? [String: Any])?["template"] as? [String: Any], "\(file): spec.template")
            let pod = try #require(template["spec"] as? [String: Any], "\(file): the pod spec")
            let volumes = (pod["volumes"] as? [[String: Any]]) ?? []
            let volumeNames = Set(volumes.compactMap { $0["name"] as? String })
            for volume in volumes {
                if let configMap = volume["configMap"] as? [String: Any] {
                    #expect(configMaps.contains(configMap["name"] as? String ?? ""), "\(file): a ConfigMap that is not defined")
                }
            }
            let containers = ((pod["initContainers"] as? [[String: Any]]) ?? []) + ((pod["containers"] as? [[String: Any]]) ?? [])
            for container in containers {
                for mount in (container["volumeMounts"] as? [[String: Any]]) ?? [] {
                    #expect(volumeNames.contains(mount["name"] as? String ?? ""), "\(file): mount \(mount) has no volume")
                }
            }
            let fusebox = try #require(containers.first { $0["name"] as? String == "fusebox" }, "\(file): a fusebox container")
            let liveness = (fusebox["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
            #expect(liveness?["path"] as? String == "/healthz", "\(file): liveness on /healthz")
            let readiness = (fusebox["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
            #expect(readiness?["path"] as? String == "/readyz", "\(file): readiness on /readyz")
            if kind == "Deployment" {
                // A native sidecar: an init container that keeps running, and a group both containers share.
                #expect(fusebox["restartPolicy"] as? String == "Always", "\(file): restartPolicy: Always")
                #expect((pod["securityContext"] as? [String: Any])?["fsGroup"] is Int, "\(file): fsGroup")
            }
        }
    }

    @Test func theConfigurationsTheyCarryPassCheck() throws {
        let folder = try TemporaryFolder()
        var checked = 0
        for (file, document) in try Self.manifests() where document["kind"] as? String == "ConfigMap" {
            let text = try #require((document["data"] as? [String: Any])?["fusebox.yaml"] as? String, "\(file): data.fusebox.yaml")
            let config = try folder.write("\(file).fusebox.yaml", text)
            let result = try FuseboxBinary.run(["check", "--config", config.path], environment: ["FUSEBOX_CONFIG": "", "FUSEBOX_HTTP": ""])
            #expect(result.status == 0, "\(file): \(result.stderr)")
            // What the probes, the app and Prometheus rely on.
            #expect(result.stdout.contains("#   http: 0.0.0.0:9464 (file"), "\(file): http on all interfaces")
            #expect(result.stdout.contains("#   socket: /run/fusebox/fusebox.sock (file"), "\(file): the shared socket path")
            #expect(result.stdout.contains(#"socket_mode: "0660""#), "\(file): a socket other users in the group can use")
            checked += 1
        }
        #expect(checked == 1)
        let unitConfig = try FuseboxBinary.run(["check", "--config", Self.file("deploy/systemd/fusebox.yaml").path])
        #expect(unitConfig.status == 0, "\(unitConfig.stderr)")
    }

    @Test func theSystemdUnitVerifies() throws {
        // systemd-analyze needs ExecStart to exist: point it at the binary under test.
        let unit = try String(contentsOf: Self.file("deploy/systemd/fusebox.service"), encoding: .utf8)
        #expect(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))
        #expect(unit.contains("RuntimeDirectory=fusebox") && unit.contains("StateDirectory=fusebox") && unit.contains("ProtectSystem=strict"))
        let folder = try TemporaryFolder()
        let copy = try folder.write("fusebox.service", unit.replacingOccurrences(of: "/usr/local/bin/fusebox", with: FuseboxBinary.url.path))
        let result = try run(["systemd-analyze", "verify", copy.path])
        // It exits 0 on mere warnings (a misspelt key), so any output at all fails the test.
        #expect(result.status == 0 && result.out.isEmpty && result.err.isEmpty, "systemd-analyze: \(result.out)\(result.err)")
    }
}
