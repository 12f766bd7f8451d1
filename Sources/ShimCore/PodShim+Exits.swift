// Exits: watching each sandbox, subcontainer and exec through the Supervisor, recording the
// exit once and publishing TaskExit in order. Must not call runsc other than to reap what a
// dead sandbox left.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ContainerdAPI
import LinuxSys
import Runsc
import Supervisor
import SwiftProtobuf

extension PodShim {
    // MARK: exits

    func watchSandbox(_ sandbox: Sandbox) {
        let supervisor = self.supervisor
        let (id, process) = (sandbox.id, sandbox.process)
        Task { [weak self] in
            let outcome = await supervisor.wait(process)
            await self?.sandboxWatcherSaw(id, outcome)
        }
        for companion in sandbox.companions {
            Task { [weak self] in
                let outcome = await supervisor.wait(companion)
                await self?.companionExited(companion, of: id, outcome)
            }
        }
    }

    /// The sandbox's exit, published; then, in the same turn of the actor (before a Delete
    /// can remove the panic log), whether it crashed. The report is read after the exits are
    /// queued, so it never delays them, and reads at most `SandboxCrash.readLimit` bytes.
    private func sandboxWatcherSaw(_ id: String, _ outcome: ChildOutcome) {
        guard let sandbox = sandboxes[id] else { return }
        let oomKills = sandbox.oomKillsSinceStart()
        sandboxExited(id, outcome.exitCode)
        guard case .exited(let status) = outcome else { return }
        let crash = SandboxCrash.ofSandbox(
            id, pid: sandbox.process.pid, status: status, stopRequested: sandbox.stopRequested, oomKills: oomKills,
            panicLog: sandbox.panicLog.flatMap { FileDescriptor.readAll($0, limit: SandboxCrash.readLimit) },
            panicLogPath: sandbox.panicLog, at: SandboxCrash.now())
        if let crash { reportCrash(crash) }
    }

    /// A gofer that exits while its sandbox runs on, unasked, crashed. One that exits with its
    /// sandbox (it does when the sandbox dies) is the sandbox's report: the sandbox gets
    /// `goferGrace` to be seen exiting first.
    private func companionExited(_ companion: Child, of id: String, _ outcome: ChildOutcome) async {
        guard case .exited(let status) = outcome, let sandbox = sandboxes[id], !sandbox.exited, !sandbox.stopRequested else {
            return
        }
        try? await Timers.sleep(for: Self.goferGrace)
        guard sandboxes[id] === sandbox, !sandbox.exited, !sandbox.stopRequested, supervisor.outcome(sandbox.process) == nil else {
            return
        }
        reportCrash(
            SandboxCrash.ofGofer(
                id, process: sandbox.companionNames[companion.pid] ?? "runsc-gofer", pid: companion.pid, status: status,
                panicLog: sandbox.panicLog.flatMap { FileDescriptor.readAll($0, limit: SandboxCrash.readLimit) },
                panicLogPath: sandbox.panicLog, at: SandboxCrash.now()))
    }

    static let goferGrace = Duration.milliseconds(500)

    private func reportCrash(_ crash: SandboxCrash) {
        log.error("\(crash)")
        metrics.sandboxCrashed(crash)
        lastCrash = crash
    }

    /// `runsc wait` for a container that joined a sandbox (its exit is not a process exit the
    /// shim can see). Retried while the sandbox lives; the sandbox's own exit settles it otherwise.
    func watchSubcontainer(_ container: Container) {
        let runsc = self.runsc
        let id = container.id
        container.watcher = Task { [weak self] in
            var delay = 100
            while !Task.isCancelled {
                do throws(RunscError) {
                    let status = try await runsc.wait(id)
                    await self?.subcontainerExited(id, UInt32(bitPattern: status))
                    return
                } catch {
                    if Task.isCancelled { return }
                    guard await self?.isWaitable(id) ?? false else { return }
                    try? await Timers.sleep(for: .milliseconds(delay))
                    delay = min(delay * 2, 2000)
                }
            }
        }
    }

    private func isWaitable(_ id: String) -> Bool {
        guard let container = containers[id] else { return false }
        return container.initProcess.status != .stopped && sandboxes[container.sandboxID]?.exited == false
    }

    func sandboxExited(_ sandboxID: String, _ status: UInt32) {
        guard let sandbox = sandboxes[sandboxID], !sandbox.exited else { return }
        sandbox.exited = true
        log.info("sandbox \(sandboxID) exited with status \(status)")
        // The kernel's OOM killer is the one memory kill the host sees of a gVisor pod (the
        // sentry's memory is charged to the sandbox's cgroup; a container's own limit is not
        // enforced inside a shared sandbox): every container of the sandbox died of it, so
        // each gets TaskOOM, before its TaskExit, as CRI needs for reason OOMKilled.
        let oomKills = sandbox.oomKillsSinceStart()
        if oomKills > 0 {
            log.warn("sandbox \(sandboxID) was killed by the kernel's OOM killer (\(oomKills) OOM kills in its memory cgroup \(sandbox.cgroups?.path ?? ""))")
            metrics.oomKilled()
            for container in containers.values where container.sandboxID == sandboxID {
                let process = container.initProcess
                guard process.status == .running || process.status == .paused else { continue }
                var event = Containerd_Events_TaskOOM()
                event.containerID = container.id
                events.publish("/tasks/oom", event)
            }
        }
        // Nothing of the pod outlives its sandbox: a gofer that stays (or anything else) is
        // killed after kill_grace.
        Task { await self.reapCompanions(sandbox) }
        // Every process in the sandbox is gone with it: execs first, then subcontainers, then
        // the root, whose status is the sandbox's (runsc-sandbox exits with it).
        for container in containers.values where container.sandboxID == sandboxID {
            for exec in container.execs.values where exec.status != .stopped && exec.status != .created {
                markExited(exec, status: 137)
            }
            if !container.isSandboxRoot {
                container.watcher?.cancel()
                markExited(container.initProcess, status: 137)
            }
        }
        if let root = containers[sandboxID] { markExited(root.initProcess, status: status) }
    }

    private func reapCompanions(_ sandbox: Sandbox) async {
        var lingering: [Child] = []
        for companion in sandbox.companions where !(await waitForExit(companion, within: deadlines.killGrace)) {
            lingering.append(companion)
        }
        let orphans = supervisor.adoptUntrackedChildren()
        guard !lingering.isEmpty || !orphans.isEmpty else { return }
        countStep(.leftoversKilled, lingering.count + orphans.count)
        log.warn("sandbox \(sandbox.id) exited; killing what it left: \((lingering + orphans).map(\.description).joined(separator: ", "))")
        sandbox.companions += orphans
        _ = killPodProcesses(sandbox)
    }

    private func subcontainerExited(_ id: String, _ status: UInt32) {
        guard let container = containers[id] else { return }
        for exec in container.execs.values where exec.status == .running || exec.status == .paused {
            markExited(exec, status: 137)
        }
        markExited(container.initProcess, status: status)
    }

    func execExited(_ id: String, _ execID: String, _ status: UInt32) {
        guard let exec = containers[id]?.execs[execID] else { return }
        markExited(exec, status: status)
    }

    /// Records an exit once: status, time, waiters released, TaskExit published.
    func markExited(_ process: Process, status: UInt32) {
        guard process.status != .stopped, process.status != .failed else { return }
        if process.starting {
            process.pendingExit = status
            return
        }
        let neverStarted = process.status == .created
        do throws(ShimError) {
            try process.move(to: .stopped)
        } catch {
            log.error("\(error)")
            return
        }
        process.exitStatus = status
        let (seconds, nanos) = WallClock.now()
        process.exitedAt = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
        let waiters = process.waiters
        process.waiters = []
        waiters.forEach { $0.resume() }
        if !neverStarted {
            if let container = containers[process.containerID], !container.isSandboxRoot, container.initProcess === process {
                unreleasedSubcontainers[container.id] = container.sandboxID
            }
            var event = Containerd_Events_TaskExit()
            event.containerID = process.containerID
            event.id = process.eventID
            event.pid = process.pid
            event.exitStatus = status
            event.exitedAt = process.exitedAt!
            events.publish("/tasks/exit", event)
            metrics.exitPublished()
        }
        log.info("\(describe(process)) exited with status \(status)")
        // Output still in the pipes reaches containerd; then the fifos are closed so its
        // readers see EOF even if something inside the sandbox kept a descriptor.
        let io = process.io
        Task { await io.close(grace: .seconds(2)) }
    }

    func describe(_ process: Process) -> String {
        process.execID.isEmpty ? "container \(process.containerID)" : "exec \(process.execID) of \(process.containerID)"
    }
}

extension ChildOutcome {
    /// The status containerd reports: the exit code, 128+signal, or 255 if unknown.
    var exitCode: UInt32 {
        switch self {
        case .exited(let status): status.code
        case .exitedWithoutStatus, .abandoned: 255
        }
    }
}
