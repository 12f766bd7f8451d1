// Pause, Resume, Update, Stats and stdio control (resize, close stdin), Connect and Shutdown: the
// task API calls that neither create nor end a task. Runsc calls here run under runsc's own
// per-call deadline and change state only after they answer.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ContainerdAPI
import LinuxSys
import Runsc
import SwiftProtobuf

extension PodShim {
    // MARK: Pause / Resume / Stats / IO

    public func pause(id: String) async throws(ShimError) {
        let container = try container(id)
        guard container.initProcess.status == .running else {
            throw ShimError(.failedPrecondition, "cannot pause container \(id): it is \(container.initProcess.status)")
        }
        do throws(RunscError) { try await runsc.pause(id) } catch { throw ShimError(from: error, "pause \(id)") }
        if container.initProcess.status == .running { try container.initProcess.move(to: .paused) }
        var event = Containerd_Events_TaskPaused()
        event.containerID = id
        events.publish("/tasks/paused", event)
    }

    public func resume(id: String) async throws(ShimError) {
        let container = try container(id)
        guard container.initProcess.status == .paused else {
            throw ShimError(.failedPrecondition, "cannot resume container \(id): it is \(container.initProcess.status)")
        }
        do throws(RunscError) { try await runsc.resume(id) } catch { throw ShimError(from: error, "resume \(id)") }
        if container.initProcess.status == .paused { try container.initProcess.move(to: .running) }
        var event = Containerd_Events_TaskResumed()
        event.containerID = id
        events.publish("/tasks/resumed", event)
    }

    /// Update: the container's new resources (CRI UpdateContainerResources, an in-place
    /// resize), forwarded to `runsc update` under `runsc_call_timeout`. A runsc without
    /// `update` (every release before April 2025, both of Debian's) gets FailedPrecondition
    /// naming its version, learnt once per shim.
    public func update(id: String, resources: Google_Protobuf_Any) async throws(ShimError) {
        let container = try container(id)
        let json = try Self.linuxResourcesJSON(resources, id: id)
        switch try await updateSupport(for: id) {
        case .supported: break
        case .unsupported(let version):
            throw ShimError(
                .failedPrecondition,
                "update \(id): \(version) has no update command (runsc has it since April 2025); the container keeps its resources")
        }
        let status = container.initProcess.status
        guard status == .created || status == .running || status == .paused else {
            throw ShimError(.failedPrecondition, "update \(id): the container is \(status)")
        }
        do throws(RunscError) { try await runsc.update(id, resourcesJSON: json) } catch { throw ShimError(from: error, "update \(id)") }
        log.info("updated the resources of \(id)")
    }

    private func updateSupport(for id: String) async throws(ShimError) -> UpdateSupport {
        let probe: Task<UpdateSupport, any Error>
        if let existing = updateSupport {
            probe = existing
        } else {
            let runtime = runsc
            probe = Task {
                if try await runtime.subcommands().contains("update") { return .supported }
                return .unsupported(version: (try? await runtime.version()) ?? "this runsc (its --version failed)")
            }
            updateSupport = probe
        }
        do {
            return try await probe.value
        } catch {
            // A probe that failed (runsc hung or crashed) is not remembered: the next Update asks again.
            if updateSupport == probe { updateSupport = nil }
            if let runscError = error as? RunscError { throw ShimError(from: runscError, "update \(id): asking runsc for its subcommands") }
            throw ShimError(.internal, "update \(id): \(error)")
        }
    }

    /// The resources of an UpdateTaskRequest as OCI JSON: containerd sends `specs.LinuxResources`
    /// as a typeurl Any whose value is that JSON.
    static func linuxResourcesJSON(_ resources: Google_Protobuf_Any, id: String) throws(ShimError) -> [UInt8] {
        guard resources.typeURL.hasSuffix("/LinuxResources") else {
            let named = resources.typeURL.isEmpty ? "no resources" : "resources of type \(resources.typeURL)"
            throw ShimError(.invalidArgument, "update \(id): \(named); expected OCI LinuxResources")
        }
        struct Shape: Decodable {
            struct Memory: Decodable { var limit: Int64? }
            struct CPU: Decodable { var shares: UInt64?; var quota: Int64?; var period: UInt64? }
            var memory: Memory?
            var cpu: CPU?
        }
        do {
            _ = try JSONDecoder().decode(Shape.self, from: resources.value)
        } catch {
            throw ShimError(.invalidArgument, "update \(id): the LinuxResources are not OCI JSON (\(resources.value.count) bytes): \(error)")
        }
        return Array(resources.value)
    }

    public func stats(id: String) async throws(ShimError) -> Google_Protobuf_Any {
        let container = try container(id)
        // A container that exited has nothing left to measure (runsc has no stats for it):
        // empty metrics, not an error. containerd logs every Stats error, and its CRI asks
        // for the metrics of each container that exits with 137 (every SIGKILLed one) to
        // look for an OOM kill: with empty metrics it finds none, as the sentry reports none.
        guard container.initProcess.status == .running || container.initProcess.status == .paused else {
            return try Self.emptyMetrics(id)
        }
        let stats: RunscStats
        do throws(RunscError) {
            stats = try await runsc.stats(id)
        } catch {
            // Asked while the pod is being stopped (containerd's collector runs on its own
            // clock): runsc can no longer read a container that is exiting, which is no failure.
            let sandbox = sandboxes[container.sandboxID]
            let stopping = sandbox.map { $0.termination != nil || isDead($0) } ?? false
            if stopping || (container.initProcess.status != .running && container.initProcess.status != .paused) {
                return try Self.emptyMetrics(id)
            }
            throw ShimError(from: error, "stats of \(id)")
        }
        do {
            return Cgroups.hostIsUnified
                ? try Google_Protobuf_Any(containerdMessage: CgroupMetrics.v2(stats))
                : try Google_Protobuf_Any(containerdMessage: CgroupMetrics.v1(stats))
        } catch {
            throw ShimError(.internal, "stats of \(id): \(error)")
        }
    }

    private static func emptyMetrics(_ id: String) throws(ShimError) -> Google_Protobuf_Any {
        do {
            return Cgroups.hostIsUnified
                ? try Google_Protobuf_Any(containerdMessage: Io_Containerd_Cgroups_V2_Metrics())
                : try Google_Protobuf_Any(containerdMessage: Io_Containerd_Cgroups_V1_Metrics())
        } catch {
            throw ShimError(.internal, "stats of \(id): \(error)")
        }
    }

    public func resize(id: String, execID: String, width: UInt32, height: UInt32) throws(ShimError) {
        try process(id, execID).io.resize(width: width, height: height)
    }

    public func closeIO(id: String, execID: String, stdin: Bool) throws(ShimError) {
        let process = try process(id, execID)
        if stdin { process.io.closeStdin() }
    }

    public func connect(id: String) throws(ShimError) -> Containerd_Task_V2_ConnectResponse {
        var response = Containerd_Task_V2_ConnectResponse()
        response.shimPid = UInt32(ProcessIdentity.pid)
        response.taskPid = containers[id]?.initProcess.pid ?? 0
        response.version = wardenVersion
        return response
    }

    /// Shutdown: the shim exits only once it serves no container (containerd sends one per
    /// container after its Delete, or one for the pod); see `shutdownRequests`.
    public func shutdown(id: String) {
        unreleasedSubcontainers[id] = nil
        if containers.isEmpty {
            onEmptyShutdown()
        } else {
            shutdownRequests.insert(id)
        }
    }
}

/// Whether the runtime can change a running container's resources.
enum UpdateSupport: Sendable {
    case supported
    /// The runtime's version, for the refusal.
    case unsupported(version: String)
}

