import Foundation
import LinuxSys

/// What `warden sweep` did with one finding.
public struct SweepOutcome: Sendable, Encodable {
    public var finding: Finding
    /// What was (or, with --dry-run, would be) done.
    public var action: String
    public var done: Bool
    public var detail: String
}

/// Clears what `Doctor` finds. An item is acted on only if a second examination, made just
/// before acting, still finds it stale (a pod that came alive in between is left alone); a
/// process only if it is still the same one (its pidfd is opened, then its start time
/// checked, so a recycled pid is never signalled). Each item is bounded by `perItem`.
public enum Sweep {
    public static func run(
        _ scope: DoctorScope, dryRun: Bool, perItem: Duration = .seconds(5),
        processes: @escaping () -> [ProcessEntry] = { ProcessTable.snapshot() }
    ) -> [SweepOutcome] {
        let first = Doctor.examine(scope, processes: processes())
        if dryRun {
            return first.map { SweepOutcome(finding: $0, action: action(for: $0), done: false, detail: "dry run") }
        }
        // Clearing one thing can make another stale (a state file whose sandbox was just
        // killed): a few passes, each acting only on what two examinations agree on.
        var outcomes: [SweepOutcome] = []
        var found = first
        var passes = 0
        while passes < 3, !found.isEmpty {
            passes += 1
            let confirmed = Doctor.examine(scope, processes: processes())
            for finding in found where !outcomes.contains(where: { same($0.finding, finding) && $0.done }) {
                guard confirmed.contains(where: { same($0, finding) }) else {
                    outcomes.append(SweepOutcome(finding: finding, action: "none", done: false, detail: "no longer stale; left alone"))
                    continue
                }
                let (done, detail) = clear(finding, scope: scope, within: perItem)
                outcomes.append(SweepOutcome(finding: finding, action: action(for: finding), done: done, detail: detail))
            }
            found = Doctor.examine(scope, processes: processes()).filter { next in
                !outcomes.contains { same($0.finding, next) }
            }
        }
        return outcomes
    }

    static func same(_ a: Finding, _ b: Finding) -> Bool {
        a.kind == b.kind && a.what == b.what && a.pid == b.pid && a.startTime == b.startTime
    }

    static func action(for finding: Finding) -> String {
        switch finding.kind {
        case .orphanProcess: "SIGKILL by pidfd"
        case .taskWithoutProcess: "ctr task rm -f"
        case .staleMount: "unmount (detach)"
        case .staleNetns: "unmount and remove"
        case .staleCgroup: "SIGKILL what is in it by pidfd, remove"
        case .staleRunscState: "remove the state file"
        case .staleBundle: "unmount what is in it, remove"
        case .staleSocket: "remove"
        }
    }

    static func clear(_ finding: Finding, scope: DoctorScope, within: Duration) -> (Bool, String) {
        let deadline = ContinuousClock.now + within
        switch finding.kind {
        case .orphanProcess:
            guard let pid = finding.pid, let start = finding.startTime else { return (false, "no process identity") }
            return kill(pid: pid, startTime: start, until: deadline)
        case .taskWithoutProcess:
            guard let address = finding.address, let namespace = finding.namespace, let container = finding.container else {
                return (false, "no task identity")
            }
            let result = Command.run(scope.ctr, ["-a", address, "-n", namespace, "task", "rm", "-f", container], within: within)
            guard let result else { return (false, "ctr did not run") }
            return (result.status == 0, result.status == 0 ? "removed" : "ctr: \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        case .staleMount:
            do throws(Errno) {
                try Mounts.unmount(finding.what, detach: true)
                return (true, "unmounted")
            } catch {
                return (false, "\(error)")
            }
        case .staleNetns:
            do throws(Errno) {
                try Mounts.unmount(finding.what, detach: true)
            } catch {
                return (false, "\(error)")
            }
            Files.remove(finding.what)
            return (!FileDescriptor.exists(finding.what), "unmounted and removed")
        case .staleCgroup:
            var killed = 0
            for pid in Cgroups.processes(in: finding.what) ?? [] {
                if let start = ProcessTable.startTime(pid), kill(pid: pid, startTime: start, until: deadline).0 { killed += 1 }
            }
            while ContinuousClock.now < deadline {
                if (try? Cgroups.remove(finding.what)) != nil {
                    return (true, "removed" + (killed > 0 ? " after SIGKILL to \(killed) processes" : ""))
                }
                Sleep.milliseconds(20)
            }
            return (false, "could not remove within \(within)")
        case .staleRunscState:
            Files.remove(finding.what)
            if finding.what.hasSuffix(".state") {
                Files.remove(String(finding.what.dropLast(".state".count)) + ".lock")
            }
            return (!FileDescriptor.exists(finding.what), "removed")
        case .staleBundle:
            for mount in Mounts.current().map(\.mountPoint).sorted(by: >)
            where mount == finding.what || mount.hasPrefix(finding.what + "/") {
                try? Mounts.unmount(mount, detach: true)
            }
            Directories.removeTree(finding.what)
            return (!FileDescriptor.exists(finding.what), FileDescriptor.exists(finding.what) ? "a mount is still inside" : "removed")
        case .staleSocket:
            Files.remove(finding.what)
            return (!FileDescriptor.exists(finding.what), "removed")
        }
    }

    /// SIGKILL to exactly (pid, start time), through a pidfd, and wait for its exit.
    static func kill(pid: Int32, startTime: UInt64, until deadline: ContinuousClock.Instant) -> (Bool, String) {
        let pidfd: Int32
        do throws(Errno) {
            pidfd = try PidFD.open(pid)
        } catch {
            return (true, "already gone")
        }
        defer { PidFD.close(pidfd) }
        // The pidfd names whatever had the pid when it was opened: check that is ours.
        guard ProcessTable.startTime(pid) == startTime else { return (false, "pid \(pid) now belongs to another process; left alone") }
        try? PidFD.sendSignal(pidfd, 18)  // SIGCONT: a stopped process dies at once too
        do throws(Errno) {
            try PidFD.sendSignal(pidfd, 9)
        } catch {
            return (true, "already gone")
        }
        while ContinuousClock.now < deadline {
            // Readable once it has exited (it is not our child: its parent reaps it).
            if Poll.wait(pidfd, events: Poll.readable, timeoutMilliseconds: 50) != 0 { return (true, "killed") }
        }
        return (false, "SIGKILLed, still running after the deadline (uninterruptible?)")
    }
}
