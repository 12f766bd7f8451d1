import ContainerdAPI
import Foundation
import SwiftProtobuf
import TTRPC
import Testing
import WardenTestSupport

/// The sandbox's Delete waits for containerd to release (Shutdown) each subcontainer whose exit
/// it published, so that StopPodSandbox cannot return while CRI still sees a container running
/// (StopThenRemoveTests, tests/cri). That wait is bounded by PodShim.subcontainerReleaseGrace
/// (1 s): a client that never sends the Shutdown costs the grace once, not a hang. Driven over
/// ttrpc with fake-runsc and no containerd, so the Shutdown can be left out on purpose.
@Suite(.serialized)
struct SubcontainerReleaseTests {
    static let task = "containerd.task.v3.Task"

    /// The pod's sandbox as a task (the podsandbox way), started, with one container in it.
    static func podWithContainer(_ id: String, faults: String = "") async throws -> SandboxAPITests.Pod {
        let pod = try await SandboxAPITests.startPod(id, faults: faults)
        let spec: [String: Any] = [
            "ociVersion": "1.0.2", "process": ["args": ["/bin/sleep", "100000"]], "root": ["path": "rootfs"],
            "annotations": ["io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": id],
        ]
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: pod.bundle + "/config.json"))
        var create = Containerd_Task_V2_CreateTaskRequest()
        create.id = id
        create.bundle = pod.bundle
        let _: Containerd_Task_V2_CreateTaskResponse = try await pod.call("Create", create, service: task)
        var start = Containerd_Task_V2_StartRequest()
        start.id = id
        let _: Containerd_Task_V2_StartResponse = try await pod.call("Start", start, service: task)
        try await SandboxAPITests.addContainer("app", to: pod, sandbox: id)
        return pod
    }

    /// Kill of the sandbox (its ladder publishes the container's exit), then the container's
    /// Delete, then (if `release`) its Shutdown; returns how long the sandbox's Delete took.
    static func deleteSandbox(of pod: SandboxAPITests.Pod, _ id: String, release: Bool) async throws -> Duration {
        var kill = Containerd_Task_V2_KillRequest()
        kill.id = id
        kill.signal = 9
        kill.all = true
        let _: Google_Protobuf_Empty = try await pod.call("Kill", kill, service: task)
        var wait = Containerd_Task_V2_WaitRequest()
        wait.id = "app"
        let _: Containerd_Task_V2_WaitResponse = try await pod.call("Wait", wait, service: task)
        wait.id = id
        let _: Containerd_Task_V2_WaitResponse = try await pod.call("Wait", wait, service: task)
        var delete = Containerd_Task_V2_DeleteRequest()
        delete.id = "app"
        let _: Containerd_Task_V2_DeleteResponse = try await pod.call("Delete", delete, service: task)
        if release {
            var shutdown = Containerd_Task_V2_ShutdownRequest()
            shutdown.id = "app"
            let _: Google_Protobuf_Empty = try await pod.call("Shutdown", shutdown, service: task)
        }
        delete.id = id
        let started = ContinuousClock.now
        let _: Containerd_Task_V2_DeleteResponse = try await pod.call("Delete", delete, service: task)
        return ContinuousClock.now - started
    }

    @Test(.timeLimit(.minutes(1))) func aSubcontainerNeverReleasedCostsTheGraceOnce() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await Self.podWithContainer("pod4")
        defer { SandboxAPITests.abandon(pod) }
        try await withTimeout(.seconds(30), "sandbox delete with an unreleased container") {
            let took = try await Self.deleteSandbox(of: pod, "pod4", release: false)
            // It waited (the race's fix is there) and stopped waiting at the grace (1 s).
            #expect(took >= .milliseconds(950), "the sandbox's Delete did not wait for the release: \(took)")
            #expect(took < .milliseconds(2500), "the wait is not bounded by the 1 s grace: \(took)")
        }
    }

    @Test(.timeLimit(.minutes(1))) func aReleasedSubcontainerCostsNothing() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await Self.podWithContainer("pod5")
        defer { SandboxAPITests.abandon(pod) }
        try await withTimeout(.seconds(30), "sandbox delete after the release") {
            let took = try await Self.deleteSandbox(of: pod, "pod5", release: true)
            #expect(took < .milliseconds(900), "the sandbox's Delete waited for a container already released: \(took)")
        }
    }

    /// containerd sends Shutdown for each container after its Delete. A subcontainer's must not
    /// make the shim exit at the sandbox's Delete: CRI may still send a Kill for the sandbox
    /// before containerd's Shutdown for it, and found the connection closed ("ttrpc: closed",
    /// 1 stop in 87 under the soak's hung runsc kill). The sandbox's Shutdown ends the shim; one
    /// that overtook its Delete (containerd#12344) ends it at that Delete.
    @Test(.timeLimit(.minutes(1))) func onlyThePodsShutdownEndsTheShim() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await Self.podWithContainer("pod6")
        defer { SandboxAPITests.abandon(pod) }
        try await withTimeout(.seconds(30), "shutdown order") {
            _ = try await Self.deleteSandbox(of: pod, "pod6", release: true)
            try await Task.sleep(for: .milliseconds(300))
            #expect(processExists(pod.serverPid) && !isZombie(pod.serverPid), "the shim exited before the pod's Shutdown")
            var kill = Containerd_Task_V2_KillRequest()
            kill.id = "pod6"
            kill.signal = 9
            var code: StatusCode?
            do {
                let _: Google_Protobuf_Empty = try await pod.call("Kill", kill, service: Self.task)
            } catch let error as TTRPCStatus {
                code = error.code
            }
            #expect(code == .notFound, "a late Kill is answered, not cut off")
            var shutdown = Containerd_Task_V2_ShutdownRequest()
            shutdown.id = "pod6"
            let _: Google_Protobuf_Empty = try await pod.call("Shutdown", shutdown, service: Self.task)
            while processExists(pod.serverPid) && !isZombie(pod.serverPid) { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test(.timeLimit(.minutes(1))) func aShutdownThatOvertookTheLastDeleteEndsTheShimThere() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await Self.podWithContainer("pod7")
        defer { SandboxAPITests.abandon(pod) }
        try await withTimeout(.seconds(30), "shutdown before delete") {
            var kill = Containerd_Task_V2_KillRequest()
            kill.id = "pod7"
            kill.signal = 9
            kill.all = true
            let _: Google_Protobuf_Empty = try await pod.call("Kill", kill, service: Self.task)
            var wait = Containerd_Task_V2_WaitRequest()
            wait.id = "pod7"
            let _: Containerd_Task_V2_WaitResponse = try await pod.call("Wait", wait, service: Self.task)
            for id in ["app", "pod7"] {
                var shutdown = Containerd_Task_V2_ShutdownRequest()
                shutdown.id = id
                let _: Google_Protobuf_Empty = try await pod.call("Shutdown", shutdown, service: Self.task)
                #expect(processExists(pod.serverPid) && !isZombie(pod.serverPid), "exited while serving containers")
            }
            for id in ["app", "pod7"] {
                var delete = Containerd_Task_V2_DeleteRequest()
                delete.id = id
                let _: Containerd_Task_V2_DeleteResponse = try await pod.call("Delete", delete, service: Self.task)
            }
            let deadline = ContinuousClock.now + .seconds(5)
            while processExists(pod.serverPid) && !isZombie(pod.serverPid) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(!processExists(pod.serverPid) || isZombie(pod.serverPid), "the shim outlived the pod")
        }
    }
}
