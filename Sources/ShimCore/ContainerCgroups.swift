import Deadlines
import LinuxSys
import Supervisor

/// The cgroup runsc makes for a container (`linux.cgroupsPath`, in every mounted hierarchy).
/// `runsc delete` removes it, but only when it reaches the sandbox: after a SIGKILLed or wedged
/// sandbox it stays, one per container per hierarchy, and piles up on the node. Delete removes
/// what runsc left. Only the container's own directory: its parents (kubelet's pod and QoS
/// cgroups, containerd's namespace) are not the shim's.
struct ContainerCgroups: Equatable, Sendable {
    /// The absolute cgroup path from the spec.
    let path: String

    /// nil when the spec names no cgroup Warden can place: none, a relative path (runsc
    /// resolves it against its own cgroup), a systemd unit (`slice:prefix:name`), the root,
    /// or one with `.` or `..` components.
    init?(specPath: String?) {
        guard let specPath, specPath.hasPrefix("/"), !specPath.contains(":") else { return nil }
        let components = specPath.split(separator: "/")
        guard !components.isEmpty, !components.contains(where: { $0 == "." || $0 == ".." }) else { return nil }
        path = "/" + components.joined(separator: "/")
    }

    struct Report: CustomStringConvertible {
        var removed: [String] = []
        var killed = 0
        /// Directories that could not be removed, with why.
        var left: [String] = []
        var description: String {
            var parts = ["removed \(removed.count) cgroup dirs"]
            if killed > 0 { parts.append("SIGKILLed \(killed) processes left in them") }
            if !left.isEmpty { parts.append("could not remove: \(left.joined(separator: "; "))") }
            return parts.joined(separator: ", ")
        }
    }

    /// This container's directory in each hierarchy that shows it and where it exists.
    func directories(in hierarchies: [Cgroups.Hierarchy]) -> [String] {
        Cgroups.directories(of: path, in: hierarchies).filter { FileDescriptor.exists($0) }
    }

    /// The OOM kills the kernel counted in this container's memory cgroups (v1 and v2
    /// summed), or nil when none of them is a memory cgroup here.
    func oomKills(in hierarchies: [Cgroups.Hierarchy]) -> UInt64? {
        let counts = directories(in: hierarchies).compactMap(Cgroups.oomKills(in:))
        return counts.isEmpty ? nil : counts.reduce(0, +)
    }

    /// What `killMembers` did.
    struct Kill: CustomStringConvertible {
        /// Members SIGKILLed through their pidfds.
        var signalled: [Child] = []
        /// Directories killed whole by the kernel (`cgroup.kill`, v2).
        var killedByKernel: [String] = []
        /// A v1 freezer directory frozen (so nothing forked away) during the kill.
        var froze = false
        var failures: [String] = []

        var count: Int { signalled.count + killedByKernel.count }
        var description: String {
            var parts = ["\(signalled.count) processes by pidfd" + (signalled.isEmpty ? "" : " (\(signalled.map(\.description).joined(separator: ", ")))")]
            if !killedByKernel.isEmpty { parts.append("cgroup.kill in \(killedByKernel.count) dirs") }
            if froze { parts.append("under freezer") }
            if !failures.isEmpty { parts.append("failed: \(failures.joined(separator: "; "))") }
            return parts.joined(separator: ", ")
        }
    }

    /// SIGKILL to everything in the container's cgroup directories, whether or not it
    /// descends from a process the shim knows (one that left the shim's tree is ended too).
    /// On v2 `cgroup.kill` does it in the kernel; on v1 the freezer directory is frozen first,
    /// so no member forks a new one between the listing and the signal, each member is
    /// SIGKILLed by pidfd (adopted first, then checked still a member, so a reused pid is
    /// never hit), and the freezer thawed for the kills to act. Never the shim itself: a
    /// directory that holds the shim is only listed and killed member by member.
    func killMembers(of directories: [String], supervisor: any ProcessSupervision) async -> Kill {
        var kill = Kill()
        let ownPids: Set<Int32> = [ProcessIdentity.pid]
        func holdsShim(_ directory: String) -> Bool {
            !(Cgroups.processes(in: directory) ?? []).allSatisfy { !ownPids.contains($0) }
        }
        var frozen: [String] = []
        for directory in directories where Cgroups.isFreezer(directory) && !holdsShim(directory) {
            do throws(Errno) {
                try Cgroups.setFrozen(directory, true)
                frozen.append(directory)
            } catch {
                kill.failures.append("\(error)")
            }
        }
        // FREEZING until every member stopped; a member in uninterruptible sleep can hold it there.
        for directory in frozen {
            var waits = 0
            while waits < 50, Cgroups.freezerState(directory) != "FROZEN" {
                waits += 1
                try? await Timers.sleep(for: .milliseconds(2))
            }
        }
        kill.froze = !frozen.isEmpty
        for directory in directories {
            if !holdsShim(directory) {
                do throws(Errno) {
                    if try Cgroups.killAll(directory) {
                        kill.killedByKernel.append(directory)
                        continue
                    }
                } catch {
                    kill.failures.append("\(error)")
                }
            }
            for pid in Cgroups.processes(in: directory) ?? [] where !ownPids.contains(pid) {
                guard let child = try? supervisor.adopt(pid: pid), !kill.signalled.contains(child) else { continue }
                // Still a member with its pidfd held: the pid was not reused in between.
                guard Cgroups.processes(in: directory)?.contains(pid) == true else { continue }
                if (try? supervisor.signal(child, 9)) == true { kill.signalled.append(child) }
            }
        }
        for directory in frozen {
            do throws(Errno) {
                try Cgroups.setFrozen(directory, false)
            } catch {
                kill.failures.append("\(error)")
            }
        }
        return kill
    }

    /// Removes the container's cgroup directories. With `killingLeftovers` (the pod's sandbox
    /// cgroup at its Delete, when every process of the pod is due to be gone), what still runs
    /// in them is SIGKILLed by pidfd first and waited for up to `within`. The shim itself is
    /// never signalled.
    func release(
        killingLeftovers: Bool, within: Duration, supervisor: any ProcessSupervision,
        hierarchies: [Cgroups.Hierarchy] = Cgroups.mountedHierarchies()
    ) async -> Report {
        let directories = directories(in: hierarchies)
        var report = Report()
        if killingLeftovers {
            let killed = await killMembers(of: directories, supervisor: supervisor)
            report.killed = killed.signalled.count
            if !killed.signalled.isEmpty {
                let waitFor = killed.signalled
                _ = await waitAtMost(within) {
                    for child in waitFor { _ = await supervisor.wait(child) }
                }
                // Not released: adopt hands back the Child another owner may still wait on.
            }
        }
        for directory in directories {
            do throws(Errno) {
                try Cgroups.remove(directory)
                report.removed.append(directory)
            } catch {
                let members = Cgroups.processes(in: directory) ?? []
                report.left.append("\(error)" + (members.isEmpty ? "" : " (processes \(members))"))
            }
        }
        return report
    }
}
