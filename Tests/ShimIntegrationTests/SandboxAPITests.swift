import ContainerdAPI
import Foundation
import SwiftProtobuf
import TTRPC
import Testing
import WardenTestSupport

/// The Sandbox API (`containerd.runtime.sandbox.v1.Sandbox`) as containerd 2.x's shim sandboxer
/// calls it, against the shim binary and fake-runsc with no containerd: `start` with a bundle
/// that holds no spec, CreateSandbox with the pod's CRI config, a container joining through the
/// task API, StopSandbox bounded (also with `runsc kill` hung), ShutdownSandbox leaving nothing.
/// The CRI tests run the same through containerd 2.1 (tests/cri, ShimSandboxerTests).
@Suite(.serialized)
struct SandboxAPITests {
    static let service = "containerd.runtime.sandbox.v1.Sandbox"
    static let stopDeadline = 3.0

    struct Pod {
        let dir: TempDir
        let bundle: String
        let client: TTRPCClient
        let serverPid: Int32
        let socketPath: String

        func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
            _ method: String, _ request: Request, service: String = SandboxAPITests.service
        ) async throws -> Response {
            try await client.call(service: service, method: method, request: request, timeout: .seconds(15))
        }
    }

    /// A shim started as the shim sandboxer starts one: its bundle under the sandbox
    /// controller's state dir, no config.json in it.
    static func startPod(_ id: String, faults: String = "", createTimeout: String = "60s") async throws -> Pod {
        let dir = try TempDir("wsb")
        let rootfs = dir.file("pause-rootfs")
        try FileManager.default.createDirectory(atPath: rootfs, withIntermediateDirectories: true)
        try "#!/bin/sh\nexec /bin/sleep 100000\n".write(toFile: rootfs + "/pause", atomically: true, encoding: .utf8)
        chmod(rootfs + "/pause", 0o755)
        try FileManager.default.createDirectory(atPath: dir.file("runsc"), withIntermediateDirectories: true)
        if !faults.isEmpty { try faults.write(toFile: dir.file("runsc/faults"), atomically: true, encoding: .utf8) }
        try """
            runsc = "\(ShimHarness.buildDirectory)/fake-runsc"
            root = "\(dir.file("runsc"))"
            [deadlines]
            runsc_call_timeout = "1s"
            create_timeout = "\(createTimeout)"
            kill_grace = "500ms"
            stop_deadline = "\(Int(stopDeadline))s"
            # No containerd takes the events here: the shim's exit would wait this long for them.
            shutdown_deadline = "100ms"
            [metrics]
            dir = "\(dir.file("metrics"))"
            [sandbox]
            pause_rootfs = "\(rootfs)"

            """.write(toFile: dir.file("warden.toml"), atomically: true, encoding: .utf8)
        let bundle = dir.file("state/io.containerd.sandbox.controller.v1.shim/ns1/\(id)")
        try FileManager.default.createDirectory(atPath: bundle + "/rootfs", withIntermediateDirectories: true)
        let started = try await StartDeleteTests.shim(
            ["-namespace", "ns1", "-address", dir.file("c.sock"), "-id", id, "start"], cwd: bundle,
            stdin: try StartDeleteTests.options(configPath: dir.file("warden.toml")))
        #expect(started.status == 0, "start: \(started.stderr)")
        let address = String(decoding: started.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        // Beside the task shims of the same containerd, so its containers find this one.
        #expect(address.hasPrefix("unix://\(dir.file("state/s"))/"), "address: \(address)")
        let serverPid = Int32(try String(contentsOfFile: bundle + "/shim.pid", encoding: .utf8)) ?? 0
        let socketPath = String(address.dropFirst("unix://".count))
        return Pod(dir: dir, bundle: bundle, client: try TTRPCClient.connect(path: socketPath), serverPid: serverPid, socketPath: socketPath)
    }

    /// After the test, timed out or not: the shim and whatever it ran are killed by pid.
    static func abandon(_ pod: Pod) {
        pod.client.close()
        for entry in livingProcesses(mentioning: pod.dir.path) {
            if let pid = Int32(entry.split(separator: ":").first ?? "") { kill(pid, SIGKILL) }
        }
        if processExists(pod.serverPid) { kill(pod.serverPid, SIGKILL) }
        pod.dir.remove()
    }

    static func createRequest(_ id: String, bundle: String) throws -> Containerd_Runtime_Sandbox_V1_CreateSandboxRequest {
        var config = Runtime_V1_PodSandboxConfig()
        config.hostname = "web-1"
        config.metadata.name = "web-1"
        config.metadata.namespace = "shop"
        config.linux.sysctls = ["net.ipv4.ip_unprivileged_port_start": "0"]
        var request = Containerd_Runtime_Sandbox_V1_CreateSandboxRequest()
        request.sandboxID = id
        request.bundlePath = bundle
        request.options.typeURL = "type.googleapis.com/runtime.v1.PodSandboxConfig"
        request.options.value = try config.serializedData()
        return request
    }

    /// A container of the pod, through the task API as containerd sends it (its own bundle).
    static func addContainer(_ id: String, to pod: Pod, sandbox: String) async throws {
        let bundle = pod.dir.file("state/io.containerd.runtime.v2.task/ns1/\(id)")
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        let spec: [String: Any] = [
            "ociVersion": "1.0.2", "process": ["args": ["sleep", "100000"]], "root": ["path": "rootfs"],
            "annotations": ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sandbox],
        ]
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: bundle + "/config.json"))
        var create = Containerd_Task_V2_CreateTaskRequest()
        create.id = id
        create.bundle = bundle
        let _: Containerd_Task_V2_CreateTaskResponse = try await pod.call("Create", create, service: "containerd.task.v3.Task")
        var start = Containerd_Task_V2_StartRequest()
        start.id = id
        let _: Containerd_Task_V2_StartResponse = try await pod.call("Start", start, service: "containerd.task.v3.Task")
    }

    /// Files under `root` (runsc's state, sockets), fake-runsc's faults and log aside.
    static func filesLeft(under root: String) -> [String] {
        let entries = FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []
        return entries.filter { entry in
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: root + "/" + entry, isDirectory: &isDirectory)
            return !isDirectory.boolValue && !["faults", "fault-log"].contains((entry as NSString).lastPathComponent)
        }
    }

    func statusCode(_ body: () async throws -> Void) async -> StatusCode? {
        do {
            try await body()
            return nil
        } catch let error as TTRPCStatus {
            return error.code
        } catch {
            return nil
        }
    }

    @Test(.timeLimit(.minutes(1))) func aPodLivesStopsAndLeavesNothingThroughTheSandboxAPI() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await Self.startPod("pod1")
        defer { Self.abandon(pod) }
        try await withTimeout(.seconds(45), "sandbox API lifecycle") {
            // Bad input is refused by name, and leaves nothing.
            var wrongOptions = try Self.createRequest("pod1", bundle: pod.bundle)
            wrongOptions.options.typeURL = "type.googleapis.com/runtime.v1.ContainerConfig"
            let refused = await statusCode {
                let _: Containerd_Runtime_Sandbox_V1_CreateSandboxResponse = try await pod.call("CreateSandbox", wrongOptions)
            }
            #expect(refused == .invalidArgument)
            var unknown = Containerd_Runtime_Sandbox_V1_StartSandboxRequest()
            unknown.sandboxID = "nope"
            #expect(await statusCode {
                let _: Containerd_Runtime_Sandbox_V1_StartSandboxResponse = try await pod.call("StartSandbox", unknown)
            } == .notFound)

            let _: Containerd_Runtime_Sandbox_V1_CreateSandboxResponse = try await pod.call(
                "CreateSandbox", try Self.createRequest("pod1", bundle: pod.bundle))
            // The sandbox's spec is Warden's: its pause rootfs, the CRI annotations runsc reads.
            let spec = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: pod.bundle + "/config.json"))) as? [String: Any]
            let annotations = spec?["annotations"] as? [String: String] ?? [:]
            #expect(annotations["io.kubernetes.cri.container-type"] == "sandbox")
            #expect(annotations["io.kubernetes.cri.sandbox-id"] == "pod1")
            #expect(annotations["io.kubernetes.cri.sandbox-namespace"] == "shop")
            #expect((spec?["root"] as? [String: Any])?["path"] as? String == pod.dir.file("pause-rootfs"))
            #expect(spec?["hostname"] as? String == "web-1")
            #expect(((spec?["linux"] as? [String: Any])?["sysctl"] as? [String: String])?["net.ipv4.ip_unprivileged_port_start"] == "0")

            var start = Containerd_Runtime_Sandbox_V1_StartSandboxRequest()
            start.sandboxID = "pod1"
            let started: Containerd_Runtime_Sandbox_V1_StartSandboxResponse = try await pod.call("StartSandbox", start)
            #expect(started.pid > 0 && started.hasCreatedAt)
            var statusRequest = Containerd_Runtime_Sandbox_V1_SandboxStatusRequest()
            statusRequest.sandboxID = "pod1"
            var status: Containerd_Runtime_Sandbox_V1_SandboxStatusResponse = try await pod.call("SandboxStatus", statusRequest)
            #expect(status.state == "SANDBOX_READY" && status.pid == started.pid)
            var platformRequest = Containerd_Runtime_Sandbox_V1_PlatformRequest()
            platformRequest.sandboxID = "pod1"
            let platform: Containerd_Runtime_Sandbox_V1_PlatformResponse = try await pod.call("Platform", platformRequest)
            #expect(platform.platform.os == "linux")
            var ping = Containerd_Runtime_Sandbox_V1_PingRequest()
            ping.sandboxID = "pod1"
            let _: Containerd_Runtime_Sandbox_V1_PingResponse = try await pod.call("PingSandbox", ping)

            try await Self.addContainer("app", to: pod, sandbox: "pod1")

            // WaitSandbox, as CRI holds one open for the pod's life.
            var waitRequest = Containerd_Runtime_Sandbox_V1_WaitSandboxRequest()
            waitRequest.sandboxID = "pod1"
            let waiter = Task { () throws -> Containerd_Runtime_Sandbox_V1_WaitSandboxResponse in try await pod.call("WaitSandbox", waitRequest) }
            var stop = Containerd_Runtime_Sandbox_V1_StopSandboxRequest()
            stop.sandboxID = "pod1"
            let stopStarted = ContinuousClock.now
            let _: Containerd_Runtime_Sandbox_V1_StopSandboxResponse = try await pod.call("StopSandbox", stop)
            #expect(ContinuousClock.now - stopStarted < .seconds(Self.stopDeadline + 1))
            let exit = try await waiter.value
            #expect(exit.exitStatus == 137 && exit.hasExitedAt)
            status = try await pod.call("SandboxStatus", statusRequest)
            #expect(status.state == "SANDBOX_NOTREADY")
            // The container's exit was published with the pod's: its Wait answers at once.
            var appWait = Containerd_Task_V2_WaitRequest()
            appWait.id = "app"
            let appExit: Containerd_Task_V2_WaitResponse = try await pod.call("Wait", appWait, service: "containerd.task.v3.Task")
            #expect(appExit.hasExitedAt)

            // ShutdownSandbox with the container never deleted (a client that skipped it):
            // everything goes, and the shim exits and removes its socket.
            var shutdown = Containerd_Runtime_Sandbox_V1_ShutdownSandboxRequest()
            shutdown.sandboxID = "pod1"
            let _: Containerd_Runtime_Sandbox_V1_ShutdownSandboxResponse = try await pod.call("ShutdownSandbox", shutdown)
            while processExists(pod.serverPid) && !isZombie(pod.serverPid) { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!FileManager.default.fileExists(atPath: pod.socketPath), "socket removed at exit")
            try await Task.sleep(for: .milliseconds(300))  // the spawn helper follows its shim
            #expect(livingProcesses(mentioning: pod.dir.path).isEmpty, "\(livingProcesses(mentioning: pod.dir.path))")
            #expect(Self.filesLeft(under: pod.dir.file("runsc")).isEmpty, "runsc state left: \(Self.filesLeft(under: pod.dir.file("runsc")))")
            let metricsLeft = (try? FileManager.default.contentsOfDirectory(atPath: pod.dir.file("metrics"))) ?? []
            #expect(metricsLeft.isEmpty, "metrics files left: \(metricsLeft)")
        }
    }

    /// The wedged case: `runsc kill` hangs. StopSandbox still ends within stop_deadline (the
    /// ladder SIGKILLs the sandbox by pidfd) and the pod's exit is published.
    @Test(.timeLimit(.minutes(1))) func stopSandboxIsBoundedWhenRunscKillHangs() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await Self.startPod("pod2")
        defer { Self.abandon(pod) }
        try await withTimeout(.seconds(45), "wedged sandbox stop") {
            let _: Containerd_Runtime_Sandbox_V1_CreateSandboxResponse = try await pod.call(
                "CreateSandbox", try Self.createRequest("pod2", bundle: pod.bundle))
            var start = Containerd_Runtime_Sandbox_V1_StartSandboxRequest()
            start.sandboxID = "pod2"
            let started: Containerd_Runtime_Sandbox_V1_StartSandboxResponse = try await pod.call("StartSandbox", start)
            try await Self.addContainer("app", to: pod, sandbox: "pod2")
            try "hang-kill".write(toFile: pod.dir.file("runsc/faults"), atomically: true, encoding: .utf8)
            var stop = Containerd_Runtime_Sandbox_V1_StopSandboxRequest()
            stop.sandboxID = "pod2"
            let stopStarted = ContinuousClock.now
            let _: Containerd_Runtime_Sandbox_V1_StopSandboxResponse = try await pod.call("StopSandbox", stop)
            let took = ContinuousClock.now - stopStarted
            #expect(took < .seconds(Self.stopDeadline + 1), "StopSandbox took \(took)")
            #expect(!processExists(Int32(started.pid)) || isZombie(Int32(started.pid)), "sandbox \(started.pid) still alive")
            var shutdown = Containerd_Runtime_Sandbox_V1_ShutdownSandboxRequest()
            shutdown.sandboxID = "pod2"
            let _: Containerd_Runtime_Sandbox_V1_ShutdownSandboxResponse = try await pod.call("ShutdownSandbox", shutdown)
            while processExists(pod.serverPid) && !isZombie(pod.serverPid) { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(300))
            #expect(livingProcesses(mentioning: pod.dir.path).isEmpty, "\(livingProcesses(mentioning: pod.dir.path))")
        }
    }
}
