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

    /// Removes the container's cgroup directories. With `killingLeftovers` (the pod's sandbox
    /// cgroup at its Delete, when every process of the pod is due to be gone), what still runs
    /// in them is SIGKILLed by pidfd first and waited for up to `within`. The shim itself is
    /// never signalled.
    func release(
        killingLeftovers: Bool, within: Duration, supervisor: Supervisor,
        hierarchies: [Cgroups.Hierarchy] = Cgroups.mountedHierarchies()
    ) async -> Report {
        let directories = directories(in: hierarchies)
        var report = Report()
        if killingLeftovers {
            var signalled: [Child] = []
            for directory in directories {
                for pid in Cgroups.processes(in: directory) ?? [] where pid != ProcessIdentity.pid {
                    guard let child = try? supervisor.adopt(pid: pid), !signalled.contains(child) else { continue }
                    // Still a member with its pidfd held: the pid was not reused in between.
                    guard Cgroups.processes(in: directory)?.contains(pid) == true else { continue }
                    if (try? supervisor.signal(child, 9)) == true { signalled.append(child) }
                }
            }
            report.killed = signalled.count
            if !signalled.isEmpty {
                let waitFor = signalled
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
