// Findings about cgroups: those that held only orphans, and empty container cgroups runsc
// left under a pod. Never the machine's or a service's own cgroup.

import Foundation
import LinuxSys
import ShimLayout

extension Doctor {
    /// The cgroups the orphaned processes are in: only a cgroup every member of which is an
    /// orphan or a descendant of one (never the machine's or a service's own cgroup, which
    /// an orphaned process may share with live ones).
    static func orphanCgroups(_ orphans: [Finding], _ view: NodeView) -> [Finding] {
        var tree = Set(orphans.compactMap(\.pid))
        var queue = Array(tree)
        while let pid = queue.popLast() {
            for child in view.processes where child.parent == pid && !tree.contains(child.pid) {
                tree.insert(child.pid)
                queue.append(child.pid)
            }
        }
        var findings: [Finding] = []
        let hierarchies = Cgroups.mountedHierarchies()
        for orphan in orphans {
            guard let pid = orphan.pid else { continue }
            for path in ProcessCgroups.paths(pid) where path != "/" {
                for directory in Cgroups.directories(of: path, in: hierarchies) where FileDescriptor.exists(directory) {
                    let members = Cgroups.processes(in: directory) ?? []
                    guard !members.isEmpty, members.allSatisfy({ tree.contains($0) }),
                        !findings.contains(where: { $0.what == directory })
                    else { continue }
                    findings.append(
                        Finding(
                            kind: .staleCgroup, what: directory, owner: orphan.owner,
                            why: "the cgroup of orphaned runsc processes, holding only them: pids \(members)"))
                }
            }
        }
        return findings
    }

    /// Empty container cgroups (`/<namespace>/<id>`, where ctr puts them) of containerd
    /// namespaces in scope, whose container has no live bundle.
    static func emptyContainerCgroups(_ scope: DoctorScope, _ view: NodeView) -> [Finding] {
        var namespaces: Set<String> = []
        for state in scope.containerdStates {
            for owner in ContainerdBundles.owners { namespaces.formUnion(Directories.entries(state + "/" + owner)) }
        }
        var findings: [Finding] = []
        for hierarchy in Cgroups.mountedHierarchies() where hierarchy.root == "/" {
            for namespace in namespaces.sorted() {
                let parent = hierarchy.mountPoint + "/" + namespace
                for id in Directories.entries(parent) {
                    let directory = parent + "/" + id
                    guard FileDescriptor.exists(directory + "/cgroup.procs"), (Cgroups.processes(in: directory) ?? [0]).isEmpty,
                        Directories.entries(directory).allSatisfy({ !FileDescriptor.exists(directory + "/" + $0 + "/cgroup.procs") })
                    else { continue }
                    let bundleLive = scope.containerdStates.contains { state in
                        ContainerdBundles.owners.contains { owner in
                            let bundle = "\(state)/\(owner)/\(namespace)/\(id)"
                            return FileDescriptor.exists(bundle) && !bundleIsStale(bundle, namespace: namespace, id: id, view)
                        }
                    }
                    guard !bundleLive, !view.liveShims.contains([namespace, id]) else { continue }
                    findings.append(
                        Finding(
                            kind: .staleCgroup, what: directory, owner: "namespace \(namespace), container \(id)",
                            why: "an empty container cgroup; no live bundle or shim for \(namespace)/\(id)"))
                }
            }
        }
        return findings
    }
}
