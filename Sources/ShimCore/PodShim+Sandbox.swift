// The Sandbox API (containerd 2.x, `sandboxer = "shim"`): containerd's CRI hands the pod to
// the shim instead of running a pause container as a task. Each call maps onto what the task
// API already does for a pod sandbox (create, start, the termination ladder, wait, delete),
// so a pod stops the same bounded way in both modes. Must not run runsc itself or decide a
// termination step: PodShim+Create, +Kill and +Delete do.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ContainerdAPI
import Deadlines
import LinuxSys
import SwiftProtobuf

extension PodShim {
    // MARK: Sandbox API

    /// CreateSandbox: the sandbox's spec written into the bundle containerd made (it holds
    /// none), then created as the task API creates a pod sandbox: `runsc create`, processes
    /// adopted, network namespace remembered for the ladder.
    public func createSandbox(_ request: Containerd_Runtime_Sandbox_V1_CreateSandboxRequest) async throws(ShimError) {
        let id = request.sandboxID
        guard !id.isEmpty else { throw ShimError(.invalidArgument, "create sandbox: empty sandbox id") }
        guard !request.bundlePath.isEmpty, FileDescriptor.exists(request.bundlePath) else {
            throw ShimError(.invalidArgument, "create sandbox \(id): bundle directory \"\(request.bundlePath)\" does not exist")
        }
        let pod = try SandboxSpec.podConfig(from: request.hasOptions ? request.options : nil)
        // A rootfs given with the request (a pause image of the client's) is used as it is;
        // containerd's CRI gives none, and the sandbox runs the pause binary Warden ships.
        let rootfs = request.rootfs.isEmpty ? pauseRootfs : request.bundlePath + "/rootfs"
        if request.rootfs.isEmpty, !FileDescriptor.exists(pauseRootfs + SandboxSpec.pausePath) {
            throw ShimError(
                .failedPrecondition,
                "create sandbox \(id): no pause binary at \(pauseRootfs)\(SandboxSpec.pausePath) ([sandbox] pause_rootfs in the Warden config; scripts/install.sh installs it)")
        }
        var spec = SandboxSpec(id: id, pod: pod, netnsPath: request.netnsPath, rootfs: rootfs)
        if !request.rootfs.isEmpty { spec.root.readonly = false }
        let bytes = try spec.encoded()
        do throws(Errno) {
            try Files.write(request.bundlePath + "/config.json", bytes, mode: 0o600)
        } catch {
            throw ShimError(.internal, "create sandbox \(id): cannot write \(request.bundlePath)/config.json: \(error)")
        }
        var task = Containerd_Task_V2_CreateTaskRequest()
        task.id = id
        task.bundle = request.bundlePath
        task.rootfs = request.rootfs
        _ = try await create(task)
        let record = APISandbox()
        record.spec = bytes
        record.files = try PodFiles.write(pod: pod, directory: "\(scratchDirectory)/pod-files-\(id)")
        apiSandboxes[id] = record
        log.info("sandbox \(id) created through the Sandbox API (rootfs \(rootfs))")
    }

    public func startSandbox(id: String) async throws(ShimError) -> Containerd_Runtime_Sandbox_V1_StartSandboxResponse {
        guard let record = apiSandboxes[id] else { throw notASandbox(id, "start") }
        var response = Containerd_Runtime_Sandbox_V1_StartSandboxResponse()
        response.pid = try await start(id: id, execID: "")
        let (seconds, nanos) = WallClock.now()
        record.startedAt = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
        response.createdAt = record.startedAt ?? Google_Protobuf_Timestamp()
        // containerd 2.3 keeps it as the pod's spec, as under podsandbox the pause task's: its
        // CRI shows it in the verbose pod status (`runtimeSpec`) and NRI reads it (an empty one
        // made NRI log "failed to unmarshal sandbox spec" at every event). Earlier releases
        // have no such field and skip it. JSON, as containerd's typeurl encodes an OCI spec.
        response.spec = Google_Protobuf_Any.with {
            $0.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
            $0.value = Data(record.spec)
        }
        return response
    }

    public func platform(id: String) throws(ShimError) -> Containerd_Runtime_Sandbox_V1_PlatformResponse {
        guard apiSandboxes[id] != nil else { throw notASandbox(id, "platform of") }
        var response = Containerd_Runtime_Sandbox_V1_PlatformResponse()
        response.platform.os = "linux"
        #if arch(arm64)
        response.platform.architecture = "arm64"
        #else
        response.platform.architecture = "amd64"
        #endif
        return response
    }

    /// StopSandbox: the pod's termination ladder, as a SIGKILL Kill of the pause container
    /// runs it under `podsandbox` (network released first, SIGKILL by pidfd, cgroup), and
    /// the sandbox's exit published, within stop_deadline. A sandbox already stopped is done.
    public func stopSandbox(id: String) async throws(ShimError) {
        guard apiSandboxes[id] != nil, let container = containers[id] else { throw notASandbox(id, "stop") }
        let process = container.initProcess
        switch process.status {
        case .stopped, .failed: return
        case .created:
            await forceStop(container)
        case .running, .paused:
            do throws(ShimError) {
                try await kill(id: id, execID: "", signal: 9, all: true)
            } catch where error.code == .notFound {
                // It exited while the Kill was on its way: stopped already.
            }
        }
        // The ladder publishes the exit by stop_deadline; the bound only guards that promise.
        let exited = await waitAtMost(deadlines.stopDeadline + deadlines.killGrace) { _ = try? await self.wait(id: id, execID: "") }
        guard exited != nil else {
            throw ShimError(.deadlineExceeded, "stop sandbox \(id): no exit within stop_deadline \(deadlines.stopDeadline)")
        }
    }

    public func waitSandbox(id: String) async throws(ShimError) -> Containerd_Runtime_Sandbox_V1_WaitSandboxResponse {
        guard apiSandboxes[id] != nil else { throw notASandbox(id, "wait for") }
        let exit = try await wait(id: id, execID: "")
        var response = Containerd_Runtime_Sandbox_V1_WaitSandboxResponse()
        response.exitStatus = exit.exitStatus
        if exit.hasExitedAt { response.exitedAt = exit.exitedAt }
        return response
    }

    /// The state CRI shows for the pod (it passes this string through): ready while the
    /// sandbox runs, not ready once it exited or before it started.
    public func sandboxStatus(id: String, verbose: Bool) throws(ShimError) -> Containerd_Runtime_Sandbox_V1_SandboxStatusResponse {
        guard let record = apiSandboxes[id], let container = containers[id] else { throw notASandbox(id, "status of") }
        let process = container.initProcess
        var response = Containerd_Runtime_Sandbox_V1_SandboxStatusResponse()
        response.sandboxID = id
        response.pid = process.pid
        let ready = process.status == .running || process.status == .paused
        response.state = ready ? "SANDBOX_READY" : "SANDBOX_NOTREADY"
        if let startedAt = record.startedAt { response.createdAt = startedAt }
        if let exitedAt = process.exitedAt { response.exitedAt = exitedAt }
        if verbose {
            response.info = [
                "runtime": "warden", "runscRoot": runsc.root, "status": "\(process.status)",
                "containers": "\(containers.values.filter { $0.sandboxID == id }.count)",
            ]
        }
        return response
    }

    public func pingSandbox(id: String) throws(ShimError) {
        guard apiSandboxes[id] != nil, containers[id] != nil else { throw notASandbox(id, "ping") }
    }

    /// ShutdownSandbox: nothing of the pod is left and the shim exits. containerd deletes
    /// the bundle next without running `shim delete`, so everything goes here: a pod still
    /// running is stopped first (the ladder), containers containerd left are deleted, then
    /// the sandbox (runsc state, processes, cgroups; bounded by delete_deadline).
    public func shutdownSandbox(id: String) async throws(ShimError) {
        guard apiSandboxes[id] != nil, let container = containers[id] else {
            // Already gone (a repeated call after a restart): only the shim is left to end.
            shutdown(id: id)
            return
        }
        let status = container.initProcess.status
        if status == .running || status == .paused || status == .created { try await stopSandbox(id: id) }
        for leftover in containers.values where leftover.sandboxID == id && !leftover.isSandboxRoot {
            log.warn("sandbox \(id) shut down with container \(leftover.id) still in it: deleting it")
            unreleasedSubcontainers[leftover.id] = nil
            for execID in Array(leftover.execs.keys) { _ = try? await delete(id: leftover.id, execID: execID) }
            _ = try? await delete(id: leftover.id, execID: "")
        }
        _ = try await delete(id: id, execID: "")
        if let files = apiSandboxes[id]?.files { Directories.removeTree(files.directory) }
        apiSandboxes[id] = nil
        shutdown(id: id)
    }

    public func sandboxMetrics(id: String) async throws(ShimError) -> Containerd_Runtime_Sandbox_V1_SandboxMetricsResponse {
        guard apiSandboxes[id] != nil else { throw notASandbox(id, "metrics of") }
        var response = Containerd_Runtime_Sandbox_V1_SandboxMetricsResponse()
        response.metrics.id = id
        let (seconds, nanos) = WallClock.now()
        response.metrics.timestamp = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
        response.metrics.data = try await stats(id: id)
        return response
    }

    private func notASandbox(_ id: String, _ what: String) -> ShimError {
        ShimError(.notFound, "\(what) sandbox \(id): no such sandbox in this shim (created through the Sandbox API)")
    }

    /// What the Sandbox API adds to a pod sandbox's task: when it was started.
    final class APISandbox {
        var startedAt: Google_Protobuf_Timestamp?
        /// /etc/hostname, hosts and resolv.conf for its containers (PodFiles).
        var files: PodFiles?
        /// The spec Warden wrote for it (config.json), given back by StartSandbox.
        var spec: [UInt8] = []
    }
}
