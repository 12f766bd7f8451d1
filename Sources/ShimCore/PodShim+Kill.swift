// Kill: one runsc kill per process in flight, under runsc_call_timeout, and the hand-off to the
// termination ladder (Termination.swift) when the sandbox does not die. Must not delete
// state; Delete joins what Kill started.

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
    // MARK: Kill

    public func kill(id: String, execID: String, signal: UInt32, all: Bool) async throws(ShimError) {
        let container = try container(id)
        let process = try process(id, execID)
        if process.status == .failed {
            // What the failed create or start left is being torn down: this Kill joins it.
            await joinBounded(container.teardown)
            return
        }
        if process.status == .stopped { throw ShimError(.notFound, "\(describe(process)): process already finished") }
        if !execID.isEmpty {
            guard process.status == .running, let sandboxPid = process.sandboxPid else {
                throw ShimError(.failedPrecondition, "\(describe(process)) is not running")
            }
            if let error = await signalOnce(id, signal: Int32(signal), all: false, pid: sandboxPid) {
                throw ShimError(from: error, "kill \(describe(process))")
            }
            return
        }
        if process.status == .created {
            // Never started: nothing inside can take a signal; the only kill is tearing it down.
            await forceStop(container)
            return
        }
        if signal == 9, container.isSandboxRoot, let sandbox = sandboxes[container.sandboxID] {
            // The pod's sandbox: the escalation ladder, which guarantees the exits within
            // stop_deadline. Kill itself returns once runsc took the signal, or after
            // runsc_call_timeout while the ladder goes on.
            await joinBounded(joinTermination(sandbox, reason: "kill"), untilDeadOf: sandbox)
            return
        }
        let error = await signalOnce(id, signal: Int32(signal), all: all, pid: nil)
        if signal == 9, let sandbox = sandboxes[container.sandboxID] {
            // A container of the pod (CRI's StopPodSandbox SIGKILLs each before the sandbox).
            if case .timedOut? = error {
                // runsc cannot reach the sentry, so no container of this pod can be signalled
                // any more: the pod is wedged. The ladder SIGKILLs the sandbox and publishes
                // every exit of the pod, this container's too.
                log.warn("runsc kill -9 of \(id) timed out; sandbox \(sandbox.id) is wedged: terminating the pod")
                await joinBounded(joinTermination(sandbox, reason: "runsc kill of \(id) hung", graceful: false), untilDeadOf: sandbox)
                return
            }
            if error == nil { watchKilledContainer(container, in: sandbox) }
        }
        if let error { throw ShimError(from: error, "kill \(id)") }
    }

    /// A SIGKILLed container's exit must be seen within kill_grace (through `runsc wait`); if
    /// it is not, runsc is not reporting it (the sandbox is wedged or runsc lies) and the pod
    /// is terminated, which publishes the exit.
    private func watchKilledContainer(_ container: Container, in sandbox: Sandbox) {
        let (grace, id, sandboxID) = (deadlines.killGrace, container.id, sandbox.id)
        Task { [weak self] in
            try? await Timers.sleep(for: grace)
            await self?.terminateUnlessExited(id, sandboxID: sandboxID, after: grace)
        }
    }

    private func terminateUnlessExited(_ id: String, sandboxID: String, after grace: Duration) {
        guard let container = containers[id], let sandbox = sandboxes[sandboxID], !sandbox.exited else { return }
        let status = container.initProcess.status
        guard status == .running || status == .paused else { return }
        log.warn("\(id) did not exit within \(grace) of SIGKILL; terminating sandbox \(sandboxID)")
        _ = joinTermination(sandbox, reason: "\(id) not reported exited \(grace) after SIGKILL", graceful: false)
    }

    /// Waits for a termination, at most just under runsc_call_timeout (Kill's own bound). With
    /// `sandbox`, also only until the sandbox is dead: the ladder's last steps (its cgroup,
    /// leftovers, the reap) go on after Kill has answered. Kill must answer before containerd
    /// acts on the sandbox's exit: CRI deletes the task and shuts the shim down on that exit,
    /// closing the connection a late Kill answer would need ("ttrpc: closed").
    private func joinBounded(_ task: Task<Void, Never>?, untilDeadOf sandbox: Sandbox? = nil) async {
        guard let task else { return }
        let supervisor = self.supervisor
        let process = sandbox?.process
        _ = await waitAtMost(deadlines.runscCallTimeout * 0.9) {
            await firstOf({ await task.value }, { if let process { _ = await supervisor.wait(process) } else { await task.value } })
        }
    }

    /// `runsc kill` for one target, shared by identical concurrent Kills. nil when delivered
    /// (or the target is already gone).
    private func signalOnce(_ id: String, signal: Int32, all: Bool, pid: Int32?) async -> RunscError? {
        let key = "\(id)/\(pid ?? 0)/\(signal)/\(all)"
        if let inFlight = killsInFlight[key] {
            countStep(.joined)
            return await inFlight.value
        }
        let runsc = self.runsc
        let task = Task<RunscError?, Never> {
            do throws(RunscError) {
                try await runsc.kill(id, signal: signal, all: all, pid: pid)
                return nil
            } catch {
                switch error {
                case .alreadyStopped, .notFound: return nil
                default: return error
                }
            }
        }
        killsInFlight[key] = task
        let result = await task.value
        killsInFlight[key] = nil
        return result
    }

    /// Tears down a container that never ran: its sandbox through the ladder (a root), or its
    /// runsc state (a subcontainer); the exit recorded as 137.
    func forceStop(_ container: Container) async {
        await tearDown(container, reason: "kill of a created task")
        markExited(container.initProcess, status: 137)
    }
}
