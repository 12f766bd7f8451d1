import Foundation
import LinuxSys

/// Where `warden doctor` looks: containerd's state directories (bundles, shim sockets),
/// runsc roots (Warden's and the runc shim's), and containerd sockets to list tasks through.
public struct DoctorScope: Sendable {
    public var containerdStates: [String]
    public var runscRoots: [String]
    public var containerdAddresses: [String]
    public var ctr = "/usr/bin/ctr"
    /// Network namespaces CRI makes (`cni-*`), checked for processes.
    public var netnsDirectory = "/var/run/netns"

    public init(containerdStates: [String], runscRoots: [String], containerdAddresses: [String]) {
        self.containerdStates = containerdStates
        self.runscRoots = runscRoots
        self.containerdAddresses = containerdAddresses
    }
}

/// Something a stuck pod left behind: what it is, who owned it, why it is stale.
public struct Finding: Sendable, Equatable, Encodable {
    public enum Kind: String, Sendable, Encodable, CaseIterable {
        case orphanProcess = "orphan-process"
        case staleRunscState = "stale-runsc-state"
        case staleSocket = "stale-socket"
        case staleBundle = "stale-bundle"
        case staleMount = "stale-mount"
        case staleNetns = "stale-netns"
        case staleCgroup = "stale-cgroup"
        case taskWithoutProcess = "task-without-process"
    }

    public var kind: Kind
    /// A path, or `pid N (command)`.
    public var what: String
    public var owner: String
    public var why: String
    /// A process's identity: (pid, start time) as doctor saw it; sweep acts only on the same.
    public var pid: Int32?
    public var startTime: UInt64?
    /// A task: containerd's socket, namespace and id.
    public var address: String?
    public var namespace: String?
    public var container: String?
}

/// What a node holds, read once; every finding is derived from one such reading.
struct NodeView {
    let processes: [ProcessEntry]
    let byPid: [Int32: ProcessEntry]
    /// (namespace, id) of every live shim (any runtime); a Warden shim also by its pod.
    let liveShims: Set<[String]>
    let shimPids: Set<Int32>

    init(processes: [ProcessEntry]) {
        self.processes = processes.filter { $0.state != "Z" && $0.state != "X" }
        byPid = Dictionary(self.processes.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
        var keys: Set<[String]> = []
        var pids: Set<Int32> = []
        for entry in self.processes where NodeView.isShim(entry) {
            pids.insert(entry.pid)
            let namespace = NodeView.flag(entry, "-namespace") ?? ""
            if let id = NodeView.flag(entry, "-id") { keys.insert([namespace, id]) }
            let pod = ProcessTable.environment(entry.pid).first { $0.hasPrefix("WARDEN_POD=") }?.dropFirst("WARDEN_POD=".count)
            if let pod { keys.insert([namespace, String(pod)]) }
        }
        liveShims = keys
        shimPids = pids
    }

    /// A shim server of any runtime (containerd-shim-*), not its start/delete run.
    static func isShim(_ entry: ProcessEntry) -> Bool {
        guard let first = entry.arguments.first, first.split(separator: "/").last?.hasPrefix("containerd-shim") == true
        else { return false }
        return !entry.arguments.contains("start") && !entry.arguments.contains("delete")
    }

    static func flag(_ entry: ProcessEntry, _ name: String) -> String? {
        guard let index = entry.arguments.firstIndex(of: name), index + 1 < entry.arguments.count else { return nil }
        return entry.arguments[index + 1]
    }

    /// The runsc root a process was started with (`--root=DIR`).
    static func runscRoot(_ entry: ProcessEntry) -> String? {
        entry.arguments.first { $0.hasPrefix("--root=") }.map { String($0.dropFirst("--root=".count)) }
    }

    /// The container a runsc process is for: its `--bundle`'s name (the gofer's only clue),
    /// else its last argument that is not a flag (boot, create, kill … take the id last).
    static func containerID(_ entry: ProcessEntry) -> String {
        var bundle: String?
        for (index, argument) in entry.arguments.enumerated() {
            if argument.hasPrefix("--bundle=") { bundle = String(argument.dropFirst("--bundle=".count)) }
            if argument == "--bundle", index + 1 < entry.arguments.count { bundle = entry.arguments[index + 1] }
        }
        if let bundle, let name = bundle.split(separator: "/").last { return String(name) }
        return entry.arguments.dropFirst().last { !$0.hasPrefix("-") } ?? "?"
    }

    /// Whether a live shim is among the process's ancestors.
    func hasShimAncestor(_ entry: ProcessEntry) -> Bool {
        var current = entry.parent
        var seen = 0
        while current > 1, seen < 64, let parent = byPid[current] {
            if shimPids.contains(parent.pid) { return true }
            current = parent.parent
            seen += 1
        }
        return false
    }
}

public enum Doctor {
    /// Everything stale under `scope`, in the order sweep clears it.
    public static func examine(_ scope: DoctorScope, processes: [ProcessEntry] = ProcessTable.snapshot()) -> [Finding] {
        let view = NodeView(processes: processes)
        var findings = orphanProcesses(scope, view)
        findings += tasksWithoutProcess(scope, view)
        let bundles = staleBundles(scope, view)
        findings += bundles.mounts
        findings += bundles.netns
        findings += bundles.cgroups
        // Cgroups no bundle names any more (containerd 2.x removes a dead shim's bundle even
        // when its delete fails): those of orphaned runsc processes, and empty container
        // cgroups of a containerd namespace whose container is gone.
        let orphans = findings.filter { $0.kind == .orphanProcess }
        for finding in orphanCgroups(orphans, view) + emptyContainerCgroups(scope, view)
        where !findings.contains(where: { $0.kind == .staleCgroup && $0.what == finding.what }) {
            findings.append(finding)
        }
        findings += staleRunscState(scope, view)
        findings += bundles.bundles
        findings += bundles.sockets
        findings += staleSockets(scope).filter { socket in !bundles.sockets.contains { $0.what == socket.what } }
        return findings
    }

    /// Whether `root` is one of the scope's runsc roots or inside one (a Warden pod's root).
    static func inScope(_ root: String, _ scope: DoctorScope) -> Bool {
        scope.runscRoots.contains { root == $0 || root.hasPrefix($0 + "/") }
    }

    /// runsc processes (sandbox, gofer, a hung CLI call) of a root in scope whose shim is gone.
    static func orphanProcesses(_ scope: DoctorScope, _ view: NodeView) -> [Finding] {
        view.processes.compactMap { entry -> Finding? in
            guard let root = NodeView.runscRoot(entry), inScope(root, scope), !view.hasShimAncestor(entry) else { return nil }
            let command = entry.arguments.prefix(1).map { $0.split(separator: "/").last.map(String.init) ?? $0 }.first ?? entry.name
            let verb = entry.arguments.dropFirst().first { !$0.hasPrefix("-") } ?? ""
            return Finding(
                kind: .orphanProcess, what: "pid \(entry.pid) (\(command) \(verb))",
                owner: "runsc root \(root), container \(NodeView.containerID(entry))",
                why: "no containerd shim among its ancestors (parent pid \(entry.parent)): nothing will stop or reap it",
                pid: entry.pid, startTime: entry.startTime)
        }
    }

    /// Tasks containerd lists whose process is gone.
    static func tasksWithoutProcess(_ scope: DoctorScope, _ view: NodeView) -> [Finding] {
        var findings: [Finding] = []
        for address in scope.containerdAddresses where FileDescriptor.exists(address) {
            let namespaces = Command.run(scope.ctr, ["-a", address, "namespaces", "ls", "-q"], within: .seconds(10))
            for namespace in (namespaces?.output ?? "").split(separator: "\n").map(String.init) where !namespace.isEmpty {
                let listed = Command.run(scope.ctr, ["-a", address, "-n", namespace, "task", "ls"], within: .seconds(10))
                for line in (listed?.output ?? "").split(separator: "\n").dropFirst() {
                    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                    guard fields.count >= 3, let pid = Int32(fields[1]) else { continue }
                    let status = String(fields[2])
                    guard status == "RUNNING" || status == "PAUSED" || status == "CREATED", pid > 0, view.byPid[pid] == nil
                    else { continue }
                    findings.append(
                        Finding(
                            kind: .taskWithoutProcess, what: "task \(fields[0]) (\(status), pid \(pid))",
                            owner: "containerd \(address), namespace \(namespace)",
                            why: "containerd lists it \(status) but pid \(pid) does not exist", address: address,
                            namespace: namespace, container: String(fields[0])))
                }
            }
        }
        return findings
    }

    struct BundleFindings {
        var bundles: [Finding] = []
        var mounts: [Finding] = []
        var netns: [Finding] = []
        var cgroups: [Finding] = []
        var sockets: [Finding] = []
    }

    /// Bundles whose shim is gone (its socket does not answer and no shim serves the id),
    /// with the mounts, network namespace and cgroups their spec names.
    static func staleBundles(_ scope: DoctorScope, _ view: NodeView) -> BundleFindings {
        var result = BundleFindings()
        let mounts = Mounts.current()
        let namespacesInUse = Set(view.processes.compactMap { ProcessTable.networkNamespace($0.pid) })
        let hierarchies = Cgroups.mountedHierarchies()
        for state in scope.containerdStates {
            let tasks = state + "/io.containerd.runtime.v2.task"
            for namespace in Directories.entries(tasks) {
                for id in Directories.entries(tasks + "/" + namespace) {
                    let bundle = "\(tasks)/\(namespace)/\(id)"
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
            namespaces.formUnion(Directories.entries(state + "/io.containerd.runtime.v2.task"))
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
                        let bundle = "\(state)/io.containerd.runtime.v2.task/\(namespace)/\(id)"
                        return FileDescriptor.exists(bundle) && !bundleIsStale(bundle, namespace: namespace, id: id, view)
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

/// The parts of a bundle's config.json doctor needs.
struct BundleSpec: Decodable {
    struct Linux: Decodable {
        struct Namespace: Decodable {
            var type: String
            var path: String?
        }
        var namespaces: [Namespace]?
        var cgroupsPath: String?
    }
    var linux: Linux?

    var networkNamespace: String? { linux?.namespaces?.first { $0.type == "network" }?.path.flatMap { $0.isEmpty ? nil : $0 } }
    var cgroupsPath: String? { linux?.cgroupsPath }

    static func read(_ bundle: String) -> BundleSpec {
        guard let bytes = FileDescriptor.readAll(bundle + "/config.json", limit: 16 << 20),
            let spec = try? JSONDecoder().decode(BundleSpec.self, from: Data(bytes))
        else { return BundleSpec() }
        return spec
    }
}

extension String {
    var trimmingSpaces: String { String(filter { !$0.isWhitespace }) }
}
