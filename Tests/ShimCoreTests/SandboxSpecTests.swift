import ContainerdAPI
import Foundation
import SwiftProtobuf
import Testing

@testable import ShimCore

/// The spec Warden writes for a Sandbox API pod: what runsc and CRI's podsandbox mode would
/// make of the same pod config, and a clear refusal of options that are not a pod config.
@Suite struct SandboxSpecTests {
    func decoded(_ spec: SandboxSpec) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(try spec.encoded())) as? [String: Any] ?? [:]
    }

    @Test func aPodConfigBecomesTheSandboxSpec() throws {
        var pod = Runtime_V1_PodSandboxConfig()
        pod.hostname = "web-1"
        pod.metadata.name = "web-1"
        pod.metadata.namespace = "shop"
        pod.metadata.uid = "u-1"
        pod.annotations = ["team": "payments"]
        pod.linux.cgroupParent = "/kubepods/burstable/podu-1"
        pod.linux.resources.memoryLimitInBytes = 64 << 20
        pod.linux.resources.cpuShares = 512
        let spec = try decoded(SandboxSpec(id: "sb1", pod: pod, netnsPath: "/var/run/netns/cni-1", rootfs: "/usr/local/lib/warden/pause-rootfs"))
        #expect((spec["process"] as? [String: Any])?["args"] as? [String] == ["/pause"])
        // containerd's default capabilities, as on its pause container: with runsc
        // --network=host they are the sandbox's own, and a pod could not listen on port 80.
        let capabilities = (spec["process"] as? [String: Any])?["capabilities"] as? [String: [String]] ?? [:]
        for set in ["bounding", "effective", "permitted"] {
            #expect(capabilities[set]?.contains("CAP_NET_BIND_SERVICE") == true, "\(set)")
            #expect(capabilities[set]?.count == 14, "\(set)")
        }
        #expect((spec["root"] as? [String: Any])?["path"] as? String == "/usr/local/lib/warden/pause-rootfs")
        let text = String(decoding: try SandboxSpec(id: "sb1", pod: pod, netnsPath: "", rootfs: "/r").encoded(), as: UTF8.self)
        #expect(text.contains(#""root":{"path":"\/r","readonly":true}"#) || text.contains(#""root":{"path":"/r","readonly":true}"#), "\(text)")
        #expect(spec["hostname"] as? String == "web-1")
        let annotations = spec["annotations"] as? [String: String] ?? [:]
        #expect(annotations["io.kubernetes.cri.container-type"] == "sandbox")
        #expect(annotations["io.kubernetes.cri.sandbox-id"] == "sb1")
        #expect(annotations["io.kubernetes.cri.sandbox-name"] == "web-1")
        #expect(annotations["io.kubernetes.cri.sandbox-namespace"] == "shop")
        #expect(annotations["team"] == "payments")
        let linux = spec["linux"] as? [String: Any] ?? [:]
        #expect(linux["cgroupsPath"] as? String == "/kubepods/burstable/podu-1/sb1")
        let namespaces = linux["namespaces"] as? [[String: String]] ?? []
        #expect(namespaces.contains(["type": "network", "path": "/var/run/netns/cni-1"]))
        let resources = linux["resources"] as? [String: Any] ?? [:]
        #expect((resources["memory"] as? [String: Int])?["limit"] == 64 << 20)
        #expect((resources["cpu"] as? [String: Int])?["shares"] == 512)
        // Read back by the shim's own spec reader, as Create reads it.
        let read = try OCISpec.decode(try SandboxSpec(id: "sb1", pod: pod, netnsPath: "/n", rootfs: "/r").encoded(), path: "config.json")
        #expect(read.joinsSandbox == nil && read.groupID(containerID: "sb1") == "sb1")
        #expect(read.networkNamespacePath == "/n")
    }

    @Test func cgroupsPathFollowsTheDriver() {
        #expect(SandboxSpec.cgroupsPath(parent: "", id: "a") == nil)
        #expect(SandboxSpec.cgroupsPath(parent: "/kubepods/pod1/", id: "a") == "/kubepods/pod1/a")
        #expect(SandboxSpec.cgroupsPath(parent: "kubepods-burstable-pod1.slice", id: "a") == "kubepods-burstable-pod1.slice:cri-containerd:a")
    }

    @Test func noNetnsMeansANamespaceOfRunscsOwn() throws {
        let spec = try decoded(SandboxSpec(id: "sb1", pod: Runtime_V1_PodSandboxConfig(), netnsPath: "", rootfs: "/r"))
        let namespaces = (spec["linux"] as? [String: Any])?["namespaces"] as? [[String: String]] ?? []
        #expect(namespaces.contains(["type": "network"]))
        #expect((spec["linux"] as? [String: Any])?["resources"] == nil)
    }

    /// hostNetwork, hostPID, hostIPC: no namespace of that kind in the spec (the node's), as
    /// containerd writes the pause container's under podsandbox; the others stay the pod's.
    @Test func aPodOnTheNodesNamespacesGetsNoneOfItsOwn() throws {
        func types(_ configure: (inout Runtime_V1_NamespaceOption) -> Void) throws -> [String] {
            var pod = Runtime_V1_PodSandboxConfig()
            configure(&pod.linux.securityContext.namespaceOptions)
            let spec = try decoded(SandboxSpec(id: "sb1", pod: pod, netnsPath: "", rootfs: "/r"))
            let namespaces = (spec["linux"] as? [String: Any])?["namespaces"] as? [[String: String]] ?? []
            return namespaces.compactMap { $0["type"] }.sorted()
        }
        #expect(try types { _ in } == ["ipc", "mount", "network", "pid", "uts"])
        #expect(try types { $0.network = .node } == ["ipc", "mount", "pid", "uts"])
        #expect(try types { $0.pid = .node; $0.ipc = .node } == ["mount", "network", "uts"])
    }

    @Test func optionsThatAreNotAPodConfigAreRefusedByName() throws {
        #expect(try SandboxSpec.podConfig(from: nil) == Runtime_V1_PodSandboxConfig())
        var wrong = Google_Protobuf_Any()
        wrong.typeURL = "type.googleapis.com/runtime.v1.ContainerConfig"
        #expect(throws: ShimError.self) { _ = try SandboxSpec.podConfig(from: wrong) }
        do {
            _ = try SandboxSpec.podConfig(from: wrong)
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("runtime.v1.ContainerConfig"))
        }
        var garbage = Google_Protobuf_Any()
        garbage.typeURL = "type.googleapis.com/runtime.v1.PodSandboxConfig"
        garbage.value = Data([0xff, 0xff, 0xff])
        #expect(throws: ShimError.self) { _ = try SandboxSpec.podConfig(from: garbage) }
    }
}
