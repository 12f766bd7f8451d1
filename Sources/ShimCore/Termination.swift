import Config
import Deadlines
import LinuxSys
import NetNS
import Runsc
import Supervisor

/// One runsc sandbox as the shim holds it: pidfds for runsc-sandbox and for every other
/// process `runsc create` left (the gofer), the pod's network namespace, and the termination
/// in flight, which a second Kill joins.
final class Sandbox {
    let id: String
    let process: Child
    var companions: [Child]
    let networkNamespacePath: String?
    /// The sandbox container's cgroup: runsc puts the sandbox and the gofer there.
    let cgroups: ContainerCgroups?
    var exited = false
    var termination: Task<Void, Never>?
    /// The kernel's OOM-kill count of that cgroup when the shim began watching the sandbox
    /// (a reused cgroup may have counted some already): a higher count at the sandbox's exit
    /// means the kernel killed it for memory.
    let oomKillsAtStart: UInt64?
    /// Where runsc writes the sandbox's (and its gofer's) crash output (`--panic-log`).
    let panicLog: String?
    /// The shim is stopping it (a Kill's ladder, Delete, a failed create's teardown): a
    /// signal death then is the shim's own, no crash.
    var stopRequested = false
    /// argv[0] of each companion when it was adopted (`runsc-gofer`), to name it in a crash.
    let companionNames: [Int32: String]

    init(
        id: String, process: Child, companions: [Child], networkNamespacePath: String?, cgroups: ContainerCgroups?,
        panicLog: String? = nil
    ) {
        self.id = id
        self.process = process
        self.companions = companions
        self.networkNamespacePath = networkNamespacePath
        self.cgroups = cgroups
        self.panicLog = panicLog
        var names: [Int32: String] = [:]
        for companion in companions {
            names[companion.pid] = ProcessTable.entry(companion.pid)?.arguments.first.map { String($0.split(separator: "/").last ?? "") }
        }
        self.companionNames = names
        self.oomKillsAtStart = cgroups?.oomKills(in: Cgroups.mountedHierarchies())
    }

    /// How many OOM kills the kernel counted in the sandbox's cgroup since the shim began
    /// watching it (0 when it has no memory cgroup the shim can read).
    func oomKillsSinceStart() -> UInt64 {
        guard let cgroups, let now = cgroups.oomKills(in: Cgroups.mountedHierarchies()) else { return 0 }
        return now > (oomKillsAtStart ?? 0) ? now - (oomKillsAtStart ?? 0) : 0
    }

    var all: [Child] { [process] + companions }
}

/// What one termination did, step by step, logged once when it ends (design.md §3).
struct TerminationRecord: CustomStringConvertible {
    struct Step {
        let name: String
        let duration: Duration
        let detail: String
    }

    let sandboxID: String
    let reason: String
    var steps: [Step] = []
    var total: Duration = .zero
    var outcome = ""

    var description: String {
        let steps = steps.map { "\($0.name)=\(milliseconds($0.duration))ms(\($0.detail))" }.joined(separator: " ")
        return "termination sandbox=\(sandboxID) reason=\(reason) total=\(milliseconds(total))ms \(steps) outcome=\"\(outcome)\""
    }
}

func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

/// Counters of the escalation steps, per shim, reported with each termination record.
struct EscalationCounters: CustomStringConvertible {
    enum Step: String, CaseIterable {
        case terminations, joined, netnsReleased = "netns_released", netnsFailed = "netns_failed"
        case runscKillFailed = "runsc_kill_failed", graceExpired = "grace_expired", sigkill
        case reapTimedOut = "reap_timed_out", runscDeleteFailed = "runsc_delete_failed", stateRemoved = "state_removed"
        case leftoversKilled = "leftovers_killed", cgroupLeftovers = "cgroup_leftovers"
        case cgroupKilled = "cgroup_killed"
    }
    private(set) var values: [Step: Int] = [:]

    mutating func count(_ step: Step, _ amount: Int = 1) { values[step, default: 0] += amount }
    subscript(_ step: Step) -> Int { values[step] ?? 0 }

    var description: String {
        Step.allCases.map { "\($0.rawValue)=\(self[$0])" }.joined(separator: " ")
    }
}

extension PodShim {
    /// The termination of `sandbox` in flight, or a new one: concurrent Kills share one ladder.
    /// `graceful: false` (a task that never ran, a sandbox runsc cannot reach) goes straight
    /// to SIGKILL after the network release.
    func joinTermination(_ sandbox: Sandbox, reason: String, graceful: Bool = true) -> Task<Void, Never> {
        if let running = sandbox.termination {
            countStep(.joined)
            return running
        }
        sandbox.stopRequested = true
        let task = Task { await self.terminate(sandbox, reason: reason, graceful: graceful) }
        sandbox.termination = task
        return task
    }

    /// The escalation ladder for a pod sandbox killed with SIGKILL (design.md §3), each step bounded and
    /// skipped the moment the sandbox is seen dead; the whole ladder fits in `stop_deadline`:
    /// network pre-release → runsc kill → kill_grace → SIGKILL by pidfd (sandbox, gofer, their
    /// descendants) → reap → every exit published. runsc state is removed by Delete.
    /// `graceful: false` skips runsc kill and the grace (nothing inside could use them, or runsc
    /// already failed to reach the sandbox): network release, then SIGKILL.
    func terminate(_ sandbox: Sandbox, reason: String, graceful: Bool = true) async {
        let clock = ContinuousClock()
        let started = clock.now
        let stopBy = started + deadlines.stopDeadline
        var record = TerminationRecord(sandboxID: sandbox.id, reason: reason)
        countStep(.terminations)
        func remaining(atMost bound: Duration) -> Duration { max(.zero, min(bound, stopBy - clock.now)) }
        func step(_ name: String, since: ContinuousClock.Instant, _ detail: String) {
            record.steps.append(.init(name: name, duration: clock.now - since, detail: detail))
        }

        // 1. The network first, so the sentry's endpoints stop and CNI DEL later finds nothing busy.
        if netnsRelease != .off, let path = sandbox.networkNamespacePath, !isDead(sandbox) {
            let since = clock.now
            let mode: NetworkNamespace.Release = netnsRelease == .delete ? .delete : .down
            do {
                let report = try await onOwnThread(within: remaining(atMost: deadlines.runscCallTimeout)) {
                    try NetworkNamespace(path: path).release(mode)
                }
                countStep(.netnsReleased)
                step("netns", since: since, "\(mode) \(report)")
            } catch {
                countStep(.netnsFailed)
                step("netns", since: since, "failed: \(error)")
            }
        }

        // 2. runsc kill, bounded by runsc_call_timeout.
        if graceful, !isDead(sandbox) {
            let since = clock.now
            do throws(RunscError) {
                try await runsc.kill(sandbox.id, signal: 9, all: true, timeout: remaining(atMost: deadlines.runscCallTimeout))
                step("runsc_kill", since: since, "SIGKILL delivered")
            } catch {
                if !isDead(sandbox) { countStep(.runscKillFailed) }
                step("runsc_kill", since: since, "\(error)")
            }
        }

        // 3. kill_grace for the sandbox to exit on its own.
        if graceful, !isDead(sandbox) {
            let since = clock.now
            let exited = await waitForExit(sandbox.process, within: remaining(atMost: deadlines.killGrace))
            if !exited { countStep(.graceExpired) }
            step("grace", since: since, exited ? "sandbox exited" : "sandbox still running")
        }

        // 4. SIGKILL through pidfds: the sandbox, the gofer, and whatever descends from them.
        if !isDead(sandbox) {
            let since = clock.now
            let signalled = killPodProcesses(sandbox)
            countStep(.sigkill)
            step("sigkill", since: since, "\(signalled) processes")
        }

        // 4b. Whatever still runs in the sandbox's cgroup, in the shim's tree or not (a
        // process that was re-parented elsewhere or moved in): cgroup.kill on v2, freezer
        // and SIGKILL by pidfd on v1. After the pidfd kills, so it usually finds nothing.
        if !isDead(sandbox) || sandboxCgroupHasMembers(sandbox), let cgroups = sandbox.cgroups {
            let since = clock.now
            let kill = await cgroups.killMembers(of: cgroups.directories(in: Cgroups.mountedHierarchies()), supervisor: supervisor)
            if kill.count > 0 { countStep(.cgroupKilled, kill.count) }
            step("cgroup", since: since, "\(kill)")
        }

        #if WARDEN_TEST_HOOKS
        await TestHooks.beforeLadderTail(sandboxID: sandbox.id, runscRoot: runsc.root)
        #endif
        // 5. Reap the sandbox; what is left of the pod (a gofer that stays) is killed at once,
        // since the pod is being killed, and reaped in the background.
        let since = clock.now
        let reaped = await waitForExit(sandbox.process, within: remaining(atMost: deadlines.stopDeadline))
        let leftovers = killPodProcesses(sandbox)
        if leftovers > 0 { countStep(.leftoversKilled, leftovers) }
        step("reap", since: since, (reaped ? "sandbox reaped" : "sandbox not reaped") + (leftovers > 0 ? ", \(leftovers) left killed" : ""))

        // 6. Every exit published, every Wait released, even for a sandbox that would not die.
        if let outcome = supervisor.outcome(sandbox.process) {
            sandboxExited(sandbox.id, outcome.exitCode)  // a no-op if the watcher was first
        } else {
            countStep(.reapTimedOut)
            sandboxExited(sandbox.id, 137)
        }
        record.total = clock.now - started
        record.outcome = reaped ? "stopped" : "sandbox pid \(sandbox.process.pid) survived SIGKILL; exits published as 137"
        if reaped { log.info("\(record) counters: \(counters)") } else { log.error("\(record) counters: \(counters)") }
        metrics.terminationEnded(sandbox: sandbox.id, reason: reason, took: record.total, survived: !reaped)
    }

    /// Whether any process (other than the shim) is still in the sandbox's cgroup.
    func sandboxCgroupHasMembers(_ sandbox: Sandbox) -> Bool {
        guard let cgroups = sandbox.cgroups else { return false }
        return cgroups.directories(in: Cgroups.mountedHierarchies()).contains { directory in
            (Cgroups.processes(in: directory) ?? []).contains { $0 != ProcessIdentity.pid }
        }
    }

    /// Dead as soon as its pidfd reported the exit, even before the watcher marked it.
    func isDead(_ sandbox: Sandbox) -> Bool {
        sandbox.exited || supervisor.outcome(sandbox.process) != nil
    }

    /// SIGKILL to every process of the sandbox, by pidfd. Descendants are adopted first, so
    /// that none escapes by being re-parented in between. Returns how many were signalled.
    func killPodProcesses(_ sandbox: Sandbox) -> Int {
        sandbox.stopRequested = true
        var targets = sandbox.all
        // Orphans of the pod re-parented here (the shim serves one pod; runsc calls are
        // tracked), before the descendants: a child of one would be re-parented only after
        // its parent's death was reaped, after this sweep.
        for orphan in supervisor.adoptUntrackedChildren() where !targets.contains(orphan) { targets.append(orphan) }
        for process in targets {
            for child in supervisor.adoptDescendants(of: process.pid) where !targets.contains(child) {
                targets.append(child)
            }
        }
        sandbox.companions = Array(Set(targets).subtracting([sandbox.process]))
        return targets.filter { (try? supervisor.signal($0, 9)) == true }.count
    }

    /// Whether `child` exited within `duration` (at once if it already has).
    func waitForExit(_ child: Child, within duration: Duration) async -> Bool {
        if supervisor.outcome(child) != nil { return true }
        guard duration > .zero else { return false }
        let supervisor = self.supervisor
        return await waitAtMost(duration) { await supervisor.wait(child) } != nil
    }
}

/// Runs blocking work (netlink) on a thread of its own, never on the cooperative pool, and
/// stops waiting for it after `within`.
func onOwnThread<T: Sendable>(within: Duration, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withDeadline(.now + within, onTimeout: { ShimError(.deadlineExceeded, "no answer within \(within)") }) {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            do throws(Errno) {
                try DetachedThread.spawn(name: "netns") { continuation.resume(with: Result { try body() }) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}
