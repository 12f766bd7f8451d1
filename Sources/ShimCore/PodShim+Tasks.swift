// The pod's task table: containers and their processes, their states, lookups by id, and the
// metrics view of them. Only data and its invariants live here; nothing here calls runsc,
// waits, or publishes an event.

import ContainerdAPI
import SwiftProtobuf

extension PodShim {
    /// A process's state. It changes only through `Process.move(to:)`, and only along
    /// `legalMoves`: `created → running ⇄ paused`, any of those `→ stopped` (an exit; a
    /// created process that is killed exits unstarted), and `created → failed` (its create,
    /// start or exec failed). `stopped` and `failed` are final.
    enum Status: Equatable, CaseIterable {
        case created, running, paused, stopped, failed

        static let legalMoves: [Status: Set<Status>] = [
            .created: [.running, .stopped, .failed],
            .running: [.paused, .stopped],
            .paused: [.running, .stopped],
            .stopped: [],
            .failed: [],
        ]

        func canMove(to next: Status) -> Bool { Self.legalMoves[self]?.contains(next) ?? false }

        /// `next`, if `self` may move there; else refused naming `what` and both states.
        func moved(to next: Status, _ what: String) throws(ShimError) -> Status {
            guard canMove(to: next) else { throw ShimError(.failedPrecondition, "\(what) cannot go from \(self) to \(next)") }
            return next
        }

        var containerd: Containerd_V1_Types_Status {
            switch self {
            case .created: .created
            case .running: .running
            case .paused: .paused
            // containerd has no failed state: a failed task is stopped (exit status 255).
            case .stopped, .failed: .stopped
            }
        }
    }

    final class Process {
        let containerID: String
        let execID: String
        let paths: ProcessIO.Paths
        let io: ProcessIO
        /// Set only by `move(to:)`.
        private(set) var status: Status = .created
        var pid: UInt32 = 0
        var exitStatus: UInt32 = 0
        var exitedAt: Google_Protobuf_Timestamp?
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// An exec's pid inside the sandbox (for `runsc kill --pid`).
        var sandboxPid: Int32?
        var starting = false
        /// An exit seen while Start was still in flight, applied once TaskStart is published.
        var pendingExit: UInt32?
        var processFile: String?

        init(containerID: String, execID: String, paths: ProcessIO.Paths, io: ProcessIO) {
            self.containerID = containerID
            self.execID = execID
            self.paths = paths
            self.io = io
        }

        var eventID: String { execID.isEmpty ? containerID : execID }

        /// The one way a state changes; an illegal move is refused naming both states, and the
        /// state stays as it was.
        func move(to next: Status) throws(ShimError) {
            status = try status.moved(to: next, execID.isEmpty ? "container \(containerID)" : "exec \(execID) of \(containerID)")
        }
    }

    final class Container {
        let id: String
        let bundle: String
        /// The runsc sandbox this container runs in (its own id when it is the sandbox root).
        let sandboxID: String
        var isSandboxRoot: Bool { sandboxID == id }
        let initProcess: Process
        var execs: [String: Process] = [:]
        var rootfsMounted = false
        /// Its cgroup, removed at Delete if runsc left it.
        let cgroups: ContainerCgroups?
        /// The spec has poststop hooks, which only `runsc delete` runs.
        var hasPoststopHooks = false
        var watcher: Task<Void, Never>?
        /// The teardown of a failed create or start; Kill and Delete join it.
        var teardown: Task<Void, Never>?

        init(id: String, bundle: String, sandboxID: String, initProcess: Process, cgroups: ContainerCgroups?) {
            self.id = id
            self.bundle = bundle
            self.sandboxID = sandboxID
            self.initProcess = initProcess
            self.cgroups = cgroups
        }
    }

    /// The pod's tasks for the metrics: containers and execs by state, each container's state.
    func metricsSnapshot() -> ShimMetrics.PodSnapshot {
        var snapshot = ShimMetrics.PodSnapshot()
        func name(_ status: Status) -> String {
            switch status {
            case .created: "created"
            case .running: "running"
            case .paused: "paused"
            case .stopped, .failed: "stopped"
            }
        }
        for container in containers.values {
            snapshot.containers[container.id] = name(container.initProcess.status)
            for process in [container.initProcess] + Array(container.execs.values) {
                snapshot.tasksByState[name(process.status), default: 0] += 1
            }
        }
        return snapshot
    }

    // MARK: lookups

    func container(_ id: String) throws(ShimError) -> Container {
        guard let container = containers[id] else { throw ShimError(.notFound, "container \(id) not found") }
        return container
    }

    func process(_ id: String, _ execID: String) throws(ShimError) -> Process {
        let container = try container(id)
        if execID.isEmpty { return container.initProcess }
        guard let exec = container.execs[execID] else {
            throw ShimError(.notFound, "exec \(execID) of container \(id) not found")
        }
        return exec
    }
}
