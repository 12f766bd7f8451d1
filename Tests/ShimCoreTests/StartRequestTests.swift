import ContainerdAPI
import Foundation
import SwiftProtobuf
import Testing

@testable import ShimCore

/// What `start` reads on stdin and how it answers (containerd 1.6-2.2: options or nothing, an
/// address as text; 2.3+: BootstrapParams, a BootstrapResult).
@Suite(.timeLimit(.minutes(1))) struct StartRequestTests {
    static func options(configPath: String) throws -> Google_Protobuf_Any {
        var options = Runtimeoptions_V1_Options()
        options.configPath = configPath
        return try Google_Protobuf_Any.with {
            $0.typeURL = "runtimeoptions.v1.Options"
            $0.value = try options.serializedData()
        }
    }

    static func params(id: String = "c1", namespace: String = "k8s.io", configPath: String? = "/etc/w.toml") throws
        -> Containerd_Runtime_Bootstrap_V1_BootstrapParams
    {
        var params = Containerd_Runtime_Bootstrap_V1_BootstrapParams()
        params.instanceID = id
        params.namespace = namespace
        params.logLevel = .debug
        params.containerdVersion = "2.3.4"
        params.containerdTtrpcAddress = "unix:///run/c/containerd.sock.ttrpc"
        params.containerdGrpcAddress = "unix:///run/c/containerd.sock"
        params.containerdBinary = "/usr/bin/containerd"
        params.socketDir = "/run/c/s"
        if let configPath {
            var extensionValue = Containerd_Runtime_Bootstrap_V1_Extension()
            extensionValue.value = try options(configPath: configPath)
            params.extensions = [extensionValue]
        }
        return params
    }

    @Test func nothingOrOptionsIsTheLegacyRequestAnsweredAsText() throws {
        #expect(try StartRequest.parse([], id: "c1", namespace: "k8s.io") == StartRequest())
        let legacy = try StartRequest.parse(try Self.options(configPath: "/etc/w.toml").serializedBytes(), id: "c1", namespace: "k8s.io")
        #expect(legacy.kind == .legacy && legacy.configPath == "/etc/w.toml")
        #expect(legacy.answer(address: "unix:///run/s/abc") == Array("unix:///run/s/abc\n".utf8))
        // ctr sends options with an empty type URL.
        var untyped = try Self.options(configPath: "/x.toml")
        untyped.typeURL = ""
        #expect(try StartRequest.parse(try untyped.serializedBytes(), id: "c1", namespace: "k8s.io").configPath == "/x.toml")
    }

    @Test func bootstrapParamsAreReadAndAnsweredWithABootstrapResult() throws {
        let request = try StartRequest.parse(try Self.params().serializedBytes(), id: "c1", namespace: "k8s.io")
        #expect(request.kind == .bootstrap)
        #expect(request.configPath == "/etc/w.toml" && request.socketDirectory == "/run/c/s")
        #expect(request.ttrpcAddress == "unix:///run/c/containerd.sock.ttrpc" && request.debug)
        let answer = request.answer(address: "unix:///run/c/s/abc")
        let result = try Containerd_Runtime_Bootstrap_V1_BootstrapResult(serializedBytes: answer)
        #expect(result.version == 2 && result.address == "unix:///run/c/s/abc" && result.protocol == "ttrpc")
        #expect(answer.last != UInt8(ascii: "\n"), "a newline would be one more protobuf byte")
    }

    @Test func aCommandLineWithoutIdOrNamespaceTakesTheParams() throws {
        let request = try StartRequest.parse(try Self.params(id: "pod1", namespace: "ns").serializedBytes(), id: "", namespace: "")
        #expect(request.id == "pod1" && request.namespace == "ns")
    }

    @Test func paramsForAnotherTaskAreRefusedNamingBoth() throws {
        for (id, namespace, named) in [("c2", "k8s.io", "\"c2\""), ("c1", "other", "\"other\"")] {
            let bytes = try Self.params(id: id, namespace: namespace).serializedBytes() as [UInt8]
            #expect {
                try StartRequest.parse(bytes, id: "c1", namespace: "k8s.io")
            } throws: { error in
                let text = "\(error)"
                return text.contains(named) && text.contains("-id \"c1\"")
            }
        }
    }

    @Test func truncatedOrGarbageInputIsRefused() throws {
        let bytes = try Self.params().serializedBytes() as [UInt8]
        for bad in [Array(bytes.dropLast(5)), [0xff, 0xff, 0xff, 0xff, 0x07, 0x00], Array("not protobuf at all \u{1}".utf8)] {
            #expect(throws: StartRequest.Refusal.self) { try StartRequest.parse(bad, id: "c1", namespace: "k8s.io") }
        }
    }

    /// An Any is a valid BootstrapParams (fields 1 and 2) and the other way round: options must
    /// never be mistaken for params, nor params with only id and namespace for options.
    @Test func optionsAndMinimalParamsAreToldApart() throws {
        let options = try Self.options(configPath: "/etc/w.toml").serializedBytes() as [UInt8]
        var minimal = Containerd_Runtime_Bootstrap_V1_BootstrapParams()
        minimal.instanceID = "c1"
        minimal.namespace = "k8s.io"
        let parsed = try StartRequest.parse(try minimal.serializedBytes(), id: "c1", namespace: "k8s.io")
        #expect(parsed.kind == .bootstrap)
        #expect(try StartRequest.parse(options, id: "c1", namespace: "k8s.io").kind == .legacy)
    }
}

/// `-info`: RuntimeInfo with the options echoed and gVisor's features.
@Suite(.timeLimit(.minutes(1))) struct ShimInfoTests {
    @Test func infoNamesWardenRunscAndWhatGVisorHonours() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wds-info-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("w.toml").path
        try "runsc = \"/opt/runsc\"\n[runsc_config]\noci-seccomp = true\n".write(toFile: config, atomically: true, encoding: .utf8)
        let options = try StartRequestTests.options(configPath: config)
        var asked: [String] = []
        let info = try ShimInfo.info(stdin: try options.serializedBytes(), environmentConfigPath: nil) { path in
            asked.append(path)
            return Array("runsc version 0.0~20240729.0\nspec: 1.1.0-rc.1\n".utf8)
        }
        #expect(asked == ["/opt/runsc"])
        #expect(info.name == "io.containerd.warden.v2" && info.version.version == wardenVersion)
        #expect(info.options == options)
        #expect(info.annotations["io.warden.runsc.version"] == "runsc version 0.0~20240729.0")
        #expect(info.features.typeURL == ShimInfo.featuresTypeURL)
        let features = try JSONSerialization.jsonObject(with: info.features.value) as? [String: Any]
        let mountOptions = features?["mountOptions"] as? [String] ?? []
        #expect(mountOptions.contains("ro") && !mountOptions.contains("rro"), "\(mountOptions)")
        let linux = features?["linux"] as? [String: Any]
        #expect((linux?["namespaces"] as? [String])?.contains("user") == false)
        #expect((linux?["seccomp"] as? [String: Any])?["enabled"] as? Bool == true)
    }

    @Test func infoWithoutOptionsOrRunscStillAnswersAndGarbageIsRefused() throws {
        let info = try ShimInfo.info(stdin: [], environmentConfigPath: nil) { _ in nil }
        #expect(info.annotations["io.warden.runsc.version"]?.hasPrefix("unknown") == true)
        #expect(!info.hasOptions)
        #expect(throws: ShimInfo.Failure.self) {
            try ShimInfo.info(stdin: [0xff, 0xff, 0xff, 0xff, 0x07], environmentConfigPath: nil) { _ in nil }
        }
    }
}
