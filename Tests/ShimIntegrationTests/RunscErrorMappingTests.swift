import ContainerdAPI
import Foundation
import SwiftProtobuf
import TTRPC
import Testing
import WardenTestSupport

/// Every runsc failure reaches containerd through `ShimError(from:)`: a runsc call that times out
/// is DeadlineExceeded whatever the verb (create, start and exec answered Internal before), so
/// containerd and kubelet see a timeout, not a shim bug. fake-runsc's `hang-<verb>` fault, the
/// shim binary over ttrpc, no containerd.
@Suite(.serialized)
struct RunscErrorMappingTests {
    static func code(_ body: () async throws -> Void) async -> StatusCode? {
        do {
            try await body()
            return nil
        } catch let error as TTRPCStatus {
            return error.code
        } catch {
            return nil
        }
    }

    static func sandboxStarted(_ pod: SandboxAPITests.Pod, _ id: String) async throws {
        let _: Containerd_Runtime_Sandbox_V1_CreateSandboxResponse = try await pod.call(
            "CreateSandbox", try SandboxAPITests.createRequest(id, bundle: pod.bundle))
        var start = Containerd_Runtime_Sandbox_V1_StartSandboxRequest()
        start.sandboxID = id
        let _: Containerd_Runtime_Sandbox_V1_StartSandboxResponse = try await pod.call("StartSandbox", start)
    }

    @Test(.timeLimit(.minutes(1))) func aHungRunscCreateIsDeadlineExceeded() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await SandboxAPITests.startPod("pc", faults: "hang-create", createTimeout: "1s")
        defer { SandboxAPITests.abandon(pod) }
        let code = await Self.code {
            let _: Containerd_Runtime_Sandbox_V1_CreateSandboxResponse = try await pod.call(
                "CreateSandbox", try SandboxAPITests.createRequest("pc", bundle: pod.bundle))
        }
        #expect(code == .deadlineExceeded)
    }

    @Test(.timeLimit(.minutes(1))) func aHungRunscStartIsDeadlineExceeded() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await SandboxAPITests.startPod("ps", createTimeout: "1s")
        defer { SandboxAPITests.abandon(pod) }
        let _: Containerd_Runtime_Sandbox_V1_CreateSandboxResponse = try await pod.call(
            "CreateSandbox", try SandboxAPITests.createRequest("ps", bundle: pod.bundle))
        try "hang-start".write(toFile: pod.dir.file("runsc/faults"), atomically: true, encoding: .utf8)
        var start = Containerd_Runtime_Sandbox_V1_StartSandboxRequest()
        start.sandboxID = "ps"
        let code = await Self.code {
            let _: Containerd_Runtime_Sandbox_V1_StartSandboxResponse = try await pod.call("StartSandbox", start)
        }
        #expect(code == .deadlineExceeded)
    }

    @Test(.timeLimit(.minutes(1))) func aHungRunscExecIsDeadlineExceeded() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await SandboxAPITests.startPod("pe", createTimeout: "1s")
        defer { SandboxAPITests.abandon(pod) }
        try await Self.sandboxStarted(pod, "pe")
        try await SandboxAPITests.addContainer("app", to: pod, sandbox: "pe")
        try "hang-exec".write(toFile: pod.dir.file("runsc/faults"), atomically: true, encoding: .utf8)
        var exec = Containerd_Task_V2_ExecProcessRequest()
        exec.id = "app"
        exec.execID = "e1"
        exec.spec.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
        exec.spec.value = try JSONSerialization.data(withJSONObject: ["args": ["true"], "cwd": "/"])
        let _: Google_Protobuf_Empty = try await pod.call("Exec", exec, service: "containerd.task.v3.Task")
        var start = Containerd_Task_V2_StartRequest()
        start.id = "app"
        start.execID = "e1"
        let code = await Self.code {
            let _: Containerd_Task_V2_StartResponse = try await pod.call("Start", start, service: "containerd.task.v3.Task")
        }
        #expect(code == .deadlineExceeded)
    }
}
