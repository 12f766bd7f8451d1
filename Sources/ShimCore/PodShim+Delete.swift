// Delete: bounded by delete_deadline, it releases stdio, runsc state, leftover processes,
// mounts and cgroups, and publishes TaskDelete. It joins a ladder still running rather than
// starting its own, and must answer within the deadline whatever runsc does.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Config
import ContainerdAPI
import Deadlines
import LinuxSys
import Runsc
import Supervisor
import SwiftProtobuf

extension PodShim {
    // MARK: Delete

    /// Bounded by delete_deadline: stdio closed, `runsc delete --force` (its state removed by
    /// hand if runsc hangs or fails), anything of the pod still alive SIGKILLed and reaped,
    /// rootfs unmounted, TaskDelete published.
    public func delete(id: String, execID: String) async throws(ShimError) -> Containerd_Task_V2_DeleteResponse {
        let clock = ContinuousClock()
        let deleteBy = clock.now + deadlines.deleteDeadline
        func remaining(atMost bound: Duration) -> Duration { max(.zero, min(bound, deleteBy - clock.now)) }
        let container = try container(id)
        let process = try process(id, execID)
        if !execID.isEmpty {
            guard process.status == .stopped || process.status == .created || process.status == .failed else {
                throw ShimError(.failedPrecondition, "cannot delete \(describe(process)): it is \(process.status)")
            }
            container.execs[execID] = nil
            await process.io.close(grace: remaining(atMost: .seconds(2)))
            if let processFile = process.processFile { Files.remove(processFile) }
            return deleteResponse(process)
        }
        guard process.status == .stopped || process.status == .created || process.status == .failed else {
            throw ShimError(.failedPrecondition, "cannot delete container \(id): it is \(process.status)")
        }
        if process.status == .created { await forceStop(container) }
        if let teardown = container.teardown {
            _ = await waitAtMost(remaining(atMost: deadlines.deleteDeadline)) { await teardown.value }
        }
        for exec in container.execs.values {
            await exec.io.close(grace: .zero)
            if let processFile = exec.processFile { Files.remove(processFile) }
        }
        await process.io.close(grace: remaining(atMost: .seconds(2)))
        if container.isSandboxRoot, let termination = sandboxes[id]?.termination {
            // Kill answered once the sandbox was dead; the ladder's last steps finish first.
            _ = await waitAtMost(remaining(atMost: deadlines.deleteDeadline)) { await termination.value }
        }
        if container.isSandboxRoot { sandboxes[id]?.stopRequested = true }
        if container.isSandboxRoot, let sandbox = sandboxes[id], supervisor.outcome(sandbox.process) != nil,
            !container.hasPoststopHooks
        {
            // The sandbox is reaped: all `runsc delete` would still do is remove runsc's state
            // files and the cgroup, which Warden does below without a process on the critical
            // path of every container removal (`ctr run --rm`, StopPodSandbox).
            let removed = runsc.removeState(id)
            log.debug("sandbox \(id) reaped: removed its runsc state without runsc delete: \(removed.joined(separator: " "))")
        } else {
            await runscDelete(id, within: remaining(atMost: deadlines.runscCallTimeout))
        }
        if container.isSandboxRoot, let sandbox = sandboxes[id] {
            // runsc delete should have ended it; the pidfds make sure, without a pid race.
            if killPodProcesses(sandbox) > 0 {
                for child in sandbox.all { _ = await waitForExit(child, within: remaining(atMost: deadlines.deleteDeadline)) }
            }
            sandboxExited(id, 137)
            sandbox.all.forEach { supervisor.release($0) }
            sandboxes[id] = nil
            if let panicLog = sandbox.panicLog { Files.remove(panicLog) }
            Files.remove(container.bundle + "/" + PodShim.processRecordFile)
            // A runsc call that loaded a container after its state was destroyed (one that was
            // timed out while the sandbox was wedged) re-creates the lock file; with the pod's
            // processes gone, what is left under the sandbox's name is stale.
            let stale = runsc.removeSandboxState(id)
            if !stale.isEmpty { log.info("removed stale runsc state of sandbox \(id): \(stale.joined(separator: " "))") }
        }
        if let cgroups = container.cgroups {
            // The sandbox's cgroup holds the pod's host processes (sandbox, gofers): anything
            // still there now is a leftover. A subcontainer's holds none, so nothing is killed.
            let report = await cgroups.release(
                killingLeftovers: container.isSandboxRoot, within: remaining(atMost: deadlines.deleteDeadline),
                supervisor: supervisor)
            if report.killed > 0 || !report.left.isEmpty {
                countStep(.cgroupLeftovers)
                log.warn("cgroup \(cgroups.path) of \(id): \(report)")
            } else if !report.removed.isEmpty {
                log.info("cgroup \(cgroups.path) of \(id) left by runsc: \(report)")
            }
        }
        if container.rootfsMounted { Rootfs.unmount(bundle: container.bundle) }
        if container.isSandboxRoot {
            await awaitSubcontainersReleased(of: id, within: remaining(atMost: Self.subcontainerReleaseGrace))
        }
        containers[id] = nil
        var event = Containerd_Events_TaskDelete()
        event.containerID = id
        event.id = id
        event.pid = process.pid
        event.exitStatus = process.exitStatus
        if let exitedAt = process.exitedAt { event.exitedAt = exitedAt }
        events.publish("/tasks/delete", event)
        log.info("deleted \(id) in \(milliseconds(clock.now - (deleteBy - deadlines.deleteDeadline)))ms")
        if containers.isEmpty && (shutdownRequests.contains(id) || shutdownRequests.contains(container.sandboxID)) {
            onEmptyShutdown()
        }
        return deleteResponse(process)
    }

    /// Until containerd has sent Shutdown for every subcontainer of `sandboxID` whose exit was
    /// published (it does so after their Delete), or `bound`; see `unreleasedSubcontainers`.
    private func awaitSubcontainersReleased(of sandboxID: String, within bound: Duration) async {
        let clock = ContinuousClock()
        let until = clock.now + bound
        while unreleasedSubcontainers.values.contains(sandboxID), clock.now < until {
            try? await Timers.sleep(for: .milliseconds(5))
        }
        let unreleased = unreleasedSubcontainers.filter { $0.value == sandboxID }.map(\.key).sorted()
        if !unreleased.isEmpty {
            log.info("sandbox \(sandboxID) deleted before containerd released \(unreleased.joined(separator: ", "))")
        }
        for id in unreleased { unreleasedSubcontainers[id] = nil }
    }

    /// `runsc delete --force`, given half of `bound` at most so a hung runsc leaves time for
    /// the rest of Delete; if it hangs or fails, runsc's state files are removed by hand.
    private func runscDelete(_ id: String, within bound: Duration) async {
        do throws(RunscError) {
            try await runsc.delete(id, force: true, timeout: bound / 2)
        } catch {
            if case .notFound = error {
                // Nothing runsc knows of; a sandbox's control socket may still be there (runsc 2024).
                let removed = runsc.removeState(id)
                if !removed.isEmpty { log.info("runsc delete \(id): not found; removed \(removed.joined(separator: " "))") }
            } else {
                countStep(.runscDeleteFailed)
                let removed = runsc.removeState(id)
                if !removed.isEmpty { countStep(.stateRemoved) }
                log.warn("runsc delete \(id): \(error); removed its state: \(removed.joined(separator: " "))")
            }
        }
    }

    private func deleteResponse(_ process: Process) -> Containerd_Task_V2_DeleteResponse {
        var response = Containerd_Task_V2_DeleteResponse()
        response.pid = process.pid
        response.exitStatus = process.exitStatus
        if let exitedAt = process.exitedAt { response.exitedAt = exitedAt }
        return response
    }
}
