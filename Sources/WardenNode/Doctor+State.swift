// Findings about state on disk: bundles whose shim is gone (with the mounts, netns and
// cgroups their spec names), runsc state directories and control sockets no process owns,
// and shim sockets nothing listens on. Reads only; sweep removes.

import Foundation
import LinuxSys
import ShimLayout

extension Doctor {
    struct BundleFindings {
        var bundles: [Finding] = []
        var mounts: [Finding] = []
        var netns: [Finding] = []
        var cgroups: [Finding] = []
        var sockets: [Finding] = []
    }

    /// Bundles whose shim is gone (its socket does not answer and no shim serves the id),
    /// with the mounts, network namespace and cgroups their spec names: tasks' bundles, and
    /// pods' under containerd 2.x's shim sandboxer (the sandbox controller's).
    static func staleBundles(_ scope: DoctorScope, _ view: NodeView) -> BundleFindings {
        var result = BundleFindings()
        let mounts = Mounts.current()
        let namespacesInUse = Set(view.processes.compactMap { ProcessTable.networkNamespace($0.pid) })
        let hierarchies = Cgroups.mountedHierarchies()
        for state in scope.containerdStates {
            for manager in ContainerdBundles.owners {
                let managed = state + "/" + manager
                for namespace in Directories.entries(managed) {
                    for id in Directories.entries(managed + "/" + namespace) {
                        let bundle = "\(managed)/\(namespace)/\(id)"
                        guard bundleIsStale(bundle, namespace: namespace, id: id, view) else { continue }
                        let owner = "namespace \(namespace), container \(id)"
                        result.bundles.append(
                            Finding(
                                kind: .staleBundle, what: bundle, owner: owner,
                                why: "no shim answers on its address and none serves \(namespace)/\(id)"))
                        for mount in mounts where mount.mountPoint == bundle || mount.mountPoint.hasPrefix(bundle + "/") {
                            result.mounts.append(
                                Finding(kind: .staleMount, what: mount.mountPoint, owner: owner, why: "\(mount.type) mount in a stale bundle"))
                        }
                        // Its shim's socket, wherever it is (containerd 1.6's runc shim keeps
                        // it in /run/containerd/s whatever containerd's state directory).
                        if let address = shimAddress(bundle), address.hasPrefix("unix://") {
                            let socket = String(address.trimmingSpaces.dropFirst("unix://".count))
                            if FileKind.isSocket(socket) {
                                result.sockets.append(
                                    Finding(kind: .staleSocket, what: socket, owner: owner, why: "the stale bundle's shim socket; nothing listens on it"))
                            }
                        }
                        let spec = BundleSpec.read(bundle)
                        if let netns = spec.networkNamespace, FileDescriptor.exists(netns), let identity = FileIdentity.of(netns),
                            !namespacesInUse.contains(identity), Mounts.isMountPoint(netns)
                        {
                            result.netns.append(
                                Finding(kind: .staleNetns, what: netns, owner: owner, why: "the stale bundle's netns; no process is in it"))
                        }
                        if let path = spec.cgroupsPath, path.hasPrefix("/"), !path.contains(":") {
                            for directory in Cgroups.directories(of: path, in: hierarchies) where FileDescriptor.exists(directory) {
                                let members = Cgroups.processes(in: directory) ?? []
                                result.cgroups.append(
                                    Finding(
                                        kind: .staleCgroup, what: directory, owner: owner,
                                        why: "the stale bundle's cgroup" + (members.isEmpty ? ", empty" : ", still holding pids \(members)")))
                            }
                        }
                    }
                }
            }
        }
        // CRI's network namespaces that no process is in any more.
        for name in Directories.entries(scope.netnsDirectory) where name.hasPrefix("cni-") {
            let path = scope.netnsDirectory + "/" + name
            guard Mounts.isMountPoint(path), let identity = FileIdentity.of(path), !namespacesInUse.contains(identity),
                !result.netns.contains(where: { $0.what == path })
            else { continue }
            result.netns.append(Finding(kind: .staleNetns, what: path, owner: "CNI (CRI pod network)", why: "no process is in it"))
        }
        return result
    }

    /// The shim address a bundle records: `address` (containerd 1.6, 1.7, and shims that
    /// write it), else the `address` of the `bootstrap.json` containerd 2.x writes.
    static func shimAddress(_ bundle: String) -> String? {
        if let address = FileDescriptor.readText(bundle + "/address")?.trimmingSpaces, !address.isEmpty { return address }
        guard let bytes = FileDescriptor.readAll(bundle + "/bootstrap.json", limit: 1 << 16),
            let bootstrap = try? JSONDecoder().decode(Bootstrap.self, from: Data(bytes))
        else { return nil }
        return bootstrap.address
    }

    struct Bootstrap: Decodable { var address: String }

    static func bundleIsStale(_ bundle: String, namespace: String, id: String, _ view: NodeView) -> Bool {
        if view.liveShims.contains([namespace, id]) { return false }
        if let address = shimAddress(bundle), address.hasPrefix("unix://") {
            let path = String(address.trimmingSpaces.dropFirst("unix://".count))
            if let fd = try? UnixSocket.connect(path: path) {
                UnixSocket.close(fd)
                return false
            }
            return true
        }
        // No address: the shim is still starting (or never started); not ours to judge.
        return false
    }

    /// runsc state files whose sandbox has no process and whose shim is gone.
    static func staleRunscState(_ scope: DoctorScope, _ view: NodeView) -> [Finding] {
        var findings: [Finding] = []
        var roots: [String] = []
        for root in scope.runscRoots {
            roots.append(root)
            for first in Directories.entries(root) {
                roots.append(root + "/" + first)
                for second in Directories.entries(root + "/" + first) { roots.append(root + "/" + first + "/" + second) }
            }
        }
        for directory in roots {
            for name in Directories.entries(directory) {
                // `<container>_sandbox:<sandbox>.state`, or a sandbox's control socket
                // `runsc-<sandbox>.sock` (runsc since 2023; `runsc delete` removes it).
                let container: String
                let sandbox: String
                if name.hasSuffix(".state") {
                    let stem = String(name.dropLast(".state".count))
                    container = stem.components(separatedBy: "_sandbox:").first ?? stem
                    sandbox = stem.components(separatedBy: "_sandbox:").dropFirst().first ?? container
                } else if name.hasPrefix("runsc-") && name.hasSuffix(".sock") {
                    sandbox = String(name.dropFirst("runsc-".count).dropLast(".sock".count))
                    container = sandbox
                } else {
                    continue
                }
                // The namespace (and pod) from where the state sits: <root>/<ns>[/<pod>].
                let relative = scope.runscRoots.compactMap { root -> [String]? in
                    directory == root ? [] : directory.hasPrefix(root + "/") ? directory.dropFirst(root.count + 1).split(separator: "/").map(String.init) : nil
                }.first ?? []
                let namespace = relative.first ?? ""
                let ownedByLiveShim =
                    view.liveShims.contains([namespace, sandbox]) || view.liveShims.contains([namespace, container])
                    || (relative.count >= 2 && view.liveShims.contains([namespace, relative[1]]))
                let sandboxRuns = view.processes.contains { entry in
                    NodeView.runscRoot(entry) == directory && entry.arguments.contains(where: { $0 == sandbox })
                }
                guard !ownedByLiveShim, !sandboxRuns else { continue }
                findings.append(
                    Finding(
                        kind: .staleRunscState, what: directory + "/" + name,
                        owner: "runsc root \(directory), container \(container), sandbox \(sandbox)",
                        why: "no process of sandbox \(sandbox) runs and no shim serves it"))
            }
        }
        return findings
    }


    /// Shim sockets nothing listens on.
    static func staleSockets(_ scope: DoctorScope) -> [Finding] {
        var findings: [Finding] = []
        for state in scope.containerdStates {
            let directory = state + "/s"
            for name in Directories.entries(directory) {
                let path = directory + "/" + name
                guard FileKind.isSocket(path) else { continue }
                if let fd = try? UnixSocket.connect(path: path) {
                    UnixSocket.close(fd)
                    continue
                }
                findings.append(Finding(kind: .staleSocket, what: path, owner: "a containerd shim", why: "nothing listens on it"))
            }
        }
        return findings
    }
}
