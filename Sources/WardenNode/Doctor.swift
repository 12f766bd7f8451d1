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
}
