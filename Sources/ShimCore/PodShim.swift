import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Config
import ContainerdAPI
import Deadlines
import LinuxSys
import Runsc
import Supervisor
import SwiftProtobuf

/// Everything one shim process serves: the containers of one pod (a runsc sandbox plus the
/// containers that join it), each with its init process and execs, and their state machines
/// (`created → running ⇄ paused → stopped`, or `failed` when create or start failed: what it
/// left is torn down at once, and Kill and Delete of it always succeed). An actor: no runsc call or wait is made while
/// holding its turn (every `await` on runsc releases it), and state is re-checked after each.
public actor PodShim {

    let runsc: any SandboxRuntime
    let supervisor: any ProcessSupervision
    /// Copies the stdio of every process of the pod on one thread.
    let stdioCopier: StdioCopier
    let events: any TaskEventSink
    let log: ShimLog
    let deadlines: WardenConfig.Deadlines
    let netnsRelease: WardenConfig.NetnsRelease
    var counters = EscalationCounters()
    /// The shim's Prometheus metrics (escalations, terminations, exits, tasks).
    let metrics: ShimMetrics
    /// Signals to one process in flight (`runsc kill`), joined by identical Kills so that a
    /// wedged runsc never gets one call per request.
    var killsInFlight: [String: Task<RunscError?, Never>] = [:]
    let namespace: String
    let scratchDirectory: String
    var containers: [String: Container] = [:]
    var reserved: Set<String> = []
    /// runsc sandbox id → its processes (adopted from runsc create's pid file, and the
    /// children it left).
    var sandboxes: [String: Sandbox] = [:]
    /// The last crash of a sandbox of this shim (also in the metrics and the shim log).
    var lastCrash: SandboxCrash?
    /// Ids containerd sent Shutdown for while the shim still served containers. Only one for
    /// the container deleted last, or for its sandbox, ends the shim at that Delete (a
    /// Shutdown can overtake its Delete: containerd#12344); a subcontainer's, sent after its
    /// own Delete, does not: the shim then waited for the sandbox's Shutdown, and a Kill CRI
    /// sent in between found the connection closed ("ttrpc: closed", seen in the soak).
    var shutdownRequests: Set<String> = []
    let onEmptyShutdown: @Sendable () -> Void
    /// Subcontainers whose exit was published and that containerd has not released yet
    /// (container id → sandbox id). containerd drops a task from its table when Delete
    /// answers, then sends Shutdown, and only after that does CRI mark the container exited:
    /// a StopPodSandbox that stops the container in between finds no task and moves on while
    /// CRI still shows it running, and the RemovePodSandbox after it fails ("container is
    /// still running"). The sandbox's Delete, which StopPodSandbox waits for, waits for these.
    var unreleasedSubcontainers: [String: String] = [:]
    /// How long the sandbox's Delete waits for containerd to release its subcontainers: a
    /// subcontainer nobody deletes (a client that removes the sandbox first) costs this once.
    static let subcontainerReleaseGrace: Duration = .seconds(1)
    /// Pod sandboxes containerd created through the Sandbox API (PodShim+Sandbox).
    var apiSandboxes: [String: APISandbox] = [:]
    /// Whether the runtime has `update`, asked once per shim (`runsc help`); nil until an
    /// Update asks, or while the last probe failed (the next Update asks again).
    var updateSupport: Task<UpdateSupport, any Error>?
    /// The read-only rootfs holding the pause binary of such sandboxes (`[sandbox] pause_rootfs`).
    let pauseRootfs: String

    public init(
        runsc: Runsc, supervisor: Supervisor, stdioCopier: StdioCopier, events: EventPublisher, log: ShimLog,
        namespace: String,
        scratchDirectory: String, deadlines: WardenConfig.Deadlines = .init(), netnsRelease: WardenConfig.NetnsRelease = .down,
        metrics: ShimMetrics? = nil, pauseRootfs: String = WardenConfig().pauseRootfs,
        onEmptyShutdown: @escaping @Sendable () -> Void
    ) {
        self.init(
            runtime: runsc, supervision: supervisor, stdioCopier: stdioCopier, events: events, log: log, namespace: namespace,
            scratchDirectory: scratchDirectory, deadlines: deadlines, netnsRelease: netnsRelease, metrics: metrics,
            pauseRootfs: pauseRootfs, onEmptyShutdown: onEmptyShutdown)
    }

    /// With any runtime and supervision (the unit tests' in-memory ones).
    init(
        runtime runsc: any SandboxRuntime, supervision supervisor: any ProcessSupervision, stdioCopier: StdioCopier, events: any TaskEventSink, log: ShimLog,
        namespace: String,
        scratchDirectory: String, deadlines: WardenConfig.Deadlines = .init(), netnsRelease: WardenConfig.NetnsRelease = .down,
        metrics: ShimMetrics? = nil, pauseRootfs: String = WardenConfig().pauseRootfs,
        onEmptyShutdown: @escaping @Sendable () -> Void
    ) {
        self.pauseRootfs = pauseRootfs
        self.metrics = metrics ?? ShimMetrics(directory: nil, namespace: namespace, pod: "")
        self.runsc = runsc
        self.deadlines = deadlines
        self.netnsRelease = netnsRelease
        self.supervisor = supervisor
        self.stdioCopier = stdioCopier
        self.events = events
        self.log = log
        self.namespace = namespace
        self.scratchDirectory = scratchDirectory
        self.onEmptyShutdown = onEmptyShutdown
    }

    /// An escalation step taken: in the termination record's counters and the metrics.
    func countStep(_ step: EscalationCounters.Step, _ amount: Int = 1) {
        counters.count(step, amount)
        metrics.escalation(step, amount)
    }

    public var isEmpty: Bool { containers.isEmpty }
}
