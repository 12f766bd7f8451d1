#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import OCI

/// The parts of a bundle's OCI `config.json` the shim reads. Everything else is runsc's.
struct OCISpec: Decodable {
    struct Process: Decodable {
        var terminal: Bool?
        var args: [String]?
        var oomScoreAdj: Int?
    }
    struct Hooks: Decodable {
        struct Hook: Decodable { var path: String }
        var poststop: [Hook]?
    }
    struct Root: Decodable { var readonly: Bool? }
    struct Mount: Decodable { var destination: String }
    var process: Process?
    var root: Root?
    var mounts: [Mount]?
    var annotations: [String: String]?
    var linux: OCILinux?
    var hooks: Hooks?

    /// Whether `runsc delete` has hooks of the spec to run (so Delete must call it).
    var hasPoststopHooks: Bool { !(hooks?.poststop ?? []).isEmpty }

    /// The pod's network namespace when the spec joins an existing one (CRI, `ctr --with-ns`).
    var networkNamespacePath: String? { linux?.networkNamespacePath }

    /// The container's cgroup, when it is one Warden can clean up after runsc.
    var cgroups: ContainerCgroups? { ContainerCgroups(specPath: linux?.cgroupsPath) }

    static let sandboxIDAnnotation = "io.kubernetes.cri.sandbox-id"
    static let containerTypeAnnotation = "io.kubernetes.cri.container-type"

    static func decode(_ bytes: [UInt8], path: String) throws(ShimError) -> OCISpec {
        do {
            return try JSONDecoder().decode(OCISpec.self, from: Data(bytes))
        } catch {
            throw ShimError(.invalidArgument, "\(path): not a valid OCI spec: \(error)")
        }
    }

    static func load(bundle: String) throws(ShimError) -> OCISpec {
        let path = bundle + "/config.json"
        guard let bytes = FileDescriptor.readAll(path, limit: 16 << 20) else {
            throw ShimError(.invalidArgument, "\(path): cannot read the OCI spec")
        }
        return try decode(bytes, path: path)
    }

    /// The shim group (one shim per pod): the CRI sandbox id, else the container's own id.
    func groupID(containerID: String) -> String {
        annotations?[Self.sandboxIDAnnotation] ?? containerID
    }

    /// A container that joins an existing runsc sandbox, as runsc decides it
    /// (gVisor runsc/specutils/cri.go): container-type "container" with a sandbox id.
    var joinsSandbox: String? {
        guard annotations?[Self.containerTypeAnnotation] == "container" else { return nil }
        return annotations?[Self.sandboxIDAnnotation]
    }
}
