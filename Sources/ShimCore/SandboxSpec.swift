// The OCI spec of a pod sandbox Warden makes itself (containerd 2.x's shim sandboxer passes no
// spec and no pause image, only the pod's CRI config): the runsc sandbox's root container runs
// the pause binary from the rootfs Warden ships, read-only, in the pod's network namespace and
// cgroup. Application containers join it as subcontainers, as under `podsandbox`.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ContainerdAPI
import SwiftProtobuf

struct SandboxSpec: Encodable {
    struct User: Encodable { var uid: UInt32; var gid: UInt32 }
    struct Capabilities: Encodable {
        var bounding: [String]
        var effective: [String]
        var permitted: [String]
    }
    struct Process: Encodable {
        var terminal = false
        var user = User(uid: 65535, gid: 65535)
        var args: [String]
        var env = ["PATH=/"]
        var cwd = "/"
        var noNewPrivileges = true
        /// containerd's default set, as its podsandbox controller gives the pause container.
        /// With runsc --network=host they are the sandbox process's own on the host (runsc
        /// --apply-caps): without CAP_NET_BIND_SERVICE no container of the pod could listen on
        /// port 80.
        var capabilities = Capabilities(
            bounding: SandboxSpec.defaultCapabilities, effective: SandboxSpec.defaultCapabilities,
            permitted: SandboxSpec.defaultCapabilities)
    }

    /// containerd's pkg/oci defaultUnixCaps.
    static let defaultCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    struct Root: Encodable { var path: String; var readonly = true }
    struct Mount: Encodable {
        var destination: String
        var type: String
        var source: String
        var options: [String]
    }
    struct Namespace: Encodable {
        var type: String
        var path: String?
    }
    struct Resources: Encodable {
        struct CPU: Encodable { var shares: UInt64?; var quota: Int64?; var period: UInt64?; var cpus: String?; var mems: String? }
        struct Memory: Encodable { var limit: Int64? }
        var cpu: CPU?
        var memory: Memory?
    }
    struct Linux: Encodable {
        var cgroupsPath: String?
        var namespaces: [Namespace]
        var sysctl: [String: String]?
        var resources: Resources?
    }

    var ociVersion = "1.0.2"
    var process: Process
    var root: Root
    var hostname: String?
    var mounts: [Mount]
    var annotations: [String: String]
    var linux: Linux

    /// The pause binary's path inside the shipped rootfs.
    static let pausePath = "/pause"

    /// The spec for sandbox `id` from CreateSandbox's pod config; `rootfs` is the shipped
    /// pause rootfs (config `[sandbox] pause_rootfs`).
    init(id: String, pod: Runtime_V1_PodSandboxConfig, netnsPath: String, rootfs: String) {
        process = Process(args: [Self.pausePath])
        root = Root(path: rootfs)
        hostname = pod.hostname.isEmpty ? nil : pod.hostname
        mounts = [
            Mount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
        ]
        // What CRI's podsandbox controller puts on a pause container, so runsc, the shim's own
        // grouping and its metrics see the pod the same way in both modes.
        var annotations = pod.annotations
        annotations[OCISpec.containerTypeAnnotation] = "sandbox"
        annotations[OCISpec.sandboxIDAnnotation] = id
        if pod.hasMetadata {
            annotations["io.kubernetes.cri.sandbox-name"] = pod.metadata.name
            annotations["io.kubernetes.cri.sandbox-namespace"] = pod.metadata.namespace
            annotations["io.kubernetes.cri.sandbox-uid"] = pod.metadata.uid
        }
        if !pod.logDirectory.isEmpty { annotations["io.kubernetes.cri.sandbox-log-directory"] = pod.logDirectory }
        self.annotations = annotations

        // The pod's own pid and ipc namespaces unless it asked for the node's (hostPID,
        // hostIPC): then none, as in the pause container's spec containerd writes under
        // podsandbox.
        let options = pod.linux.securityContext.namespaceOptions
        var namespaces: [Namespace] = []
        if options.pid != .node { namespaces.append(Namespace(type: "pid", path: nil)) }
        if options.ipc != .node { namespaces.append(Namespace(type: "ipc", path: nil)) }
        namespaces += ["uts", "mount"].map { Namespace(type: $0, path: nil) }
        // hostNetwork: no network namespace at all (the sandbox is on the node's network; with
        // one of its own nothing it listens on could be reached from the node, critest's
        // "portforward in host network"). Else CRI's, or with no path one runsc makes.
        if options.network != .node {
            namespaces.append(Namespace(type: "network", path: netnsPath.isEmpty ? nil : netnsPath))
        }
        let given = pod.linux
        linux = Linux(
            cgroupsPath: Self.cgroupsPath(parent: given.cgroupParent, id: id), namespaces: namespaces,
            sysctl: given.sysctls.isEmpty ? nil : given.sysctls, resources: Self.resources(given.resources))
    }

    /// As CRI names a pod's pause container cgroup: `<parent>/<id>` under cgroupfs, and
    /// `<slice>:cri-containerd:<id>` when the parent is a systemd slice.
    static func cgroupsPath(parent: String, id: String) -> String? {
        guard !parent.isEmpty else { return nil }
        if parent.hasSuffix(".slice") { return "\(parent):cri-containerd:\(id)" }
        return (parent.hasSuffix("/") ? String(parent.dropLast()) : parent) + "/" + id
    }

    static func resources(_ given: Runtime_V1_LinuxContainerResources) -> Resources? {
        var cpu = Resources.CPU()
        if given.cpuShares > 0 { cpu.shares = UInt64(given.cpuShares) }
        if given.cpuQuota > 0 { cpu.quota = given.cpuQuota }
        if given.cpuPeriod > 0 { cpu.period = UInt64(given.cpuPeriod) }
        if !given.cpusetCpus.isEmpty { cpu.cpus = given.cpusetCpus }
        if !given.cpusetMems.isEmpty { cpu.mems = given.cpusetMems }
        let memory = given.memoryLimitInBytes > 0 ? Resources.Memory(limit: given.memoryLimitInBytes) : nil
        let hasCPU = cpu.shares != nil || cpu.quota != nil || cpu.period != nil || cpu.cpus != nil || cpu.mems != nil
        if !hasCPU && memory == nil { return nil }
        return Resources(cpu: hasCPU ? cpu : nil, memory: memory)
    }

    func encoded() throws(ShimError) -> [UInt8] {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return Array(try encoder.encode(self))
        } catch {
            throw ShimError(.internal, "cannot encode the sandbox's OCI spec: \(error)")
        }
    }

    /// The pod's CRI config from CreateSandbox's options (containerd sends
    /// `runtime.v1.PodSandboxConfig`); none given: an empty one.
    static func podConfig(from options: Google_Protobuf_Any?) throws(ShimError) -> Runtime_V1_PodSandboxConfig {
        guard let options, !options.typeURL.isEmpty || !options.value.isEmpty else { return Runtime_V1_PodSandboxConfig() }
        guard options.typeURL.hasSuffix("/runtime.v1.PodSandboxConfig") || options.typeURL == "runtime.v1.PodSandboxConfig" else {
            throw ShimError(.invalidArgument, "create sandbox: options of type \(options.typeURL), expected runtime.v1.PodSandboxConfig")
        }
        do {
            return try Runtime_V1_PodSandboxConfig(serializedBytes: options.value)
        } catch {
            throw ShimError(.invalidArgument, "create sandbox: options are not a valid runtime.v1.PodSandboxConfig: \(error)")
        }
    }
}
