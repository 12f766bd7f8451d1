#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Config
import ContainerdAPI
import LinuxSys
import SwiftProtobuf

/// `-info` (docs/runtime-v2.md, "Command-like flags"): the runtime options on stdin, a
/// `containerd.types.RuntimeInfo` on stdout. containerd 2.x asks once per runtime (the task
/// manager's mount handling; CRI's handler features, from which kubelet learns e.g. whether
/// recursive read-only mounts or user namespaces may be used).
///
/// The features are what the runsc Warden drives actually does, not what the OCI spec
/// allows: a feature claimed here that gVisor ignores would let kubelet ask for it and get
/// silence (runsc has no `features` verb to ask).
enum ShimInfo {
    static let runtimeName = "io.containerd.warden.v2"
    static let featuresTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/features/Features"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func run() -> Int32 {
        let stdin = FileDescriptor.isTerminal(0) ? [] : FileDescriptor.readToEnd(0, limit: 1 << 20)
        do throws(Failure) {
            let info = try info(stdin: stdin, environmentConfigPath: ProcessEnvironment.value(ShimCommand.configPathVariable)) { path in
                Spawn.outputOf(path: path, arguments: ["--version"], environment: ProcessEnvironment.all, timeoutMilliseconds: 5000)
            }
            guard let bytes = try? info.serializedBytes() as [UInt8] else {
                throw Failure(description: "cannot encode RuntimeInfo")
            }
            Console.outputBytes(bytes)
            return 0
        } catch {
            Console.error("containerd-shim-warden-v2 -info: \(error)")
            return 1
        }
    }

    /// `runscVersion` runs `<runsc> --version` (bounded); nil when it fails.
    static func info(
        stdin: [UInt8], environmentConfigPath: String?, runscVersion: (String) -> [UInt8]?
    ) throws(Failure) -> Containerd_Types_RuntimeInfo {
        var info = Containerd_Types_RuntimeInfo()
        info.name = runtimeName
        info.version = Containerd_Types_RuntimeVersion.with {
            $0.version = wardenVersion
            $0.revision = ""
        }
        var configPath = environmentConfigPath
        if !stdin.isEmpty {
            guard let options = try? Google_Protobuf_Any(serializedBytes: stdin) else {
                throw Failure(description: "stdin holds \(stdin.count) bytes that are not runtime options (a protobuf Any)")
            }
            info.options = options
            if let path = StartRequest.configPath(of: options) { configPath = path }
        }
        let config: WardenConfig
        do throws(ConfigError) {
            (config, _) = try ShimCommand.loadConfig(path: configPath)
        } catch {
            throw Failure(description: "\(error)")
        }
        let says = runscVersion(config.runsc).map { String(decoding: $0, as: UTF8.self) }
        let firstLine = says?.split(separator: "\n").first.map(String.init)
        info.annotations["io.warden.runsc.path"] = config.runsc
        info.annotations["io.warden.runsc.version"] = firstLine ?? "unknown (\(config.runsc) --version failed)"
        let ociSeccomp = config.runscFlags.contains { $0.key == "oci-seccomp" && $0.value != "false" }
        info.features = Google_Protobuf_Any.with {
            $0.typeURL = featuresTypeURL
            $0.value = Data(RuntimeFeatures.gVisor(ociSeccomp: ociSeccomp).json.utf8)
        }
        return info
    }
}
