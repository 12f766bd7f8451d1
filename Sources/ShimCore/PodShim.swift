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
    enum Status: Equatable {
        case created, running, paused, stopped, failed

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
        var status: Status = .created
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

    /// An escalation step taken: in the termination record's counters and the metrics.
    func countStep(_ step: EscalationCounters.Step, _ amount: Int = 1) {
        counters.count(step, amount)
        metrics.escalation(step, amount)
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

    let runsc: Runsc
    let supervisor: Supervisor
    /// Copies the stdio of every process of the pod on one thread.
    private let stdioCopier: StdioCopier
    private let events: EventPublisher
    let log: ShimLog
    let deadlines: WardenConfig.Deadlines
    let netnsRelease: WardenConfig.NetnsRelease
    var counters = EscalationCounters()
    /// The shim's Prometheus metrics (escalations, terminations, exits, tasks).
    let metrics: ShimMetrics
    /// Signals to one process in flight (`runsc kill`), joined by identical Kills so that a
    /// wedged runsc never gets one call per request.
    private var killsInFlight: [String: Task<RunscError?, Never>] = [:]
    private let namespace: String
    private let scratchDirectory: String
    private var containers: [String: Container] = [:]
    private var reserved: Set<String> = []
    /// runsc sandbox id → its processes (adopted from runsc create's pid file, and the
    /// children it left).
    private var sandboxes: [String: Sandbox] = [:]
    private var shutdownRequested = false
    private let onEmptyShutdown: @Sendable () -> Void
    /// Subcontainers whose exit was published and that containerd has not released yet
    /// (container id → sandbox id). containerd drops a task from its table when Delete
    /// answers, then sends Shutdown, and only after that does CRI mark the container exited:
    /// a StopPodSandbox that stops the container in between finds no task and moves on while
    /// CRI still shows it running, and the RemovePodSandbox after it fails ("container is
    /// still running"). The sandbox's Delete, which StopPodSandbox waits for, waits for these.
    private var unreleasedSubcontainers: [String: String] = [:]
    /// How long the sandbox's Delete waits for containerd to release its subcontainers: a
    /// subcontainer nobody deletes (a client that removes the sandbox first) costs this once.
    static let subcontainerReleaseGrace: Duration = .seconds(1)

    public init(
        runsc: Runsc, supervisor: Supervisor, stdioCopier: StdioCopier, events: EventPublisher, log: ShimLog,
        namespace: String,
        scratchDirectory: String, deadlines: WardenConfig.Deadlines = .init(), netnsRelease: WardenConfig.NetnsRelease = .down,
        metrics: ShimMetrics? = nil, onEmptyShutdown: @escaping @Sendable () -> Void
    ) {
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

    // MARK: lookups

    private func container(_ id: String) throws(ShimError) -> Container {
        guard let container = containers[id] else { throw ShimError(.notFound, "container \(id) not found") }
        return container
    }

    private func process(_ id: String, _ execID: String) throws(ShimError) -> Process {
        let container = try container(id)
        if execID.isEmpty { return container.initProcess }
        guard let exec = container.execs[execID] else {
            throw ShimError(.notFound, "exec \(execID) of container \(id) not found")
        }
        return exec
    }

    // MARK: Create / Start

    public func create(_ request: Containerd_Task_V2_CreateTaskRequest) async throws(ShimError) -> UInt32 {
        let id = request.id
        guard !id.isEmpty else { throw ShimError(.invalidArgument, "create: empty container id") }
        guard containers[id] == nil, !reserved.contains(id) else {
            throw ShimError(.alreadyExists, "container \(id) already exists")
        }
        if !request.checkpoint.isEmpty { throw ShimError(.unimplemented, "create from a checkpoint: runsc cannot restore through this shim") }
        reserved.insert(id)
        defer { reserved.remove(id) }

        let spec = try OCISpec.load(bundle: request.bundle)
        if let clamped = try OOMScoreClamp.apply(bundle: request.bundle, spec: spec) { log.warn("create \(id): \(clamped)") }
        let sandboxID = spec.joinsSandbox ?? id
        let paths = ProcessIO.Paths(
            stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal)
        try Rootfs.mount(request.rootfs, bundle: request.bundle)
        let io: ProcessIO
        do throws(ShimError) {
            io = try ProcessIO.open(
                paths, name: id, scratchDirectory: scratchDirectory, containerID: id, namespace: namespace,
                supervisor: supervisor, copier: stdioCopier)
        } catch {
            Rootfs.unmount(bundle: request.bundle)
            throw error
        }
        let pidFile = "\(scratchDirectory)/\(id).pid"
        let isRoot = sandboxID == id
        let initProcess = Process(containerID: id, execID: "", paths: paths, io: io)
        let container = Container(
            id: id, bundle: request.bundle, sandboxID: sandboxID, initProcess: initProcess, cgroups: spec.cgroups)
        container.rootfsMounted = !request.rootfs.isEmpty
        container.hasPoststopHooks = spec.hasPoststopHooks
        do throws(ShimError) {
            do throws(RunscError) {
                // A subcontainer's stdio is handed over by `runsc start`; the root's by create.
                try await runsc.create(
                    id, bundle: request.bundle, pidFile: pidFile, consoleSocket: io.consoleSocketPath,
                    stdio: isRoot ? io.processStdio : nil)
            } catch {
                throw ShimError(.internal, "runsc create \(id): \(error)")
            }
            if isRoot { io.handedOver() }
            if io.consoleSocketPath != nil && isRoot { try io.attachConsole(timeout: .seconds(30)) }
            guard let pid = FileDescriptor.readText(pidFile).flatMap({ Int32($0.trimmingWhitespace) }), pid > 0 else {
                throw ShimError(.internal, "runsc create \(id) wrote no sandbox pid to \(pidFile)")
            }
            initProcess.pid = UInt32(pid)
        } catch {
            // A failed create leaves a `failed` task: what runsc left is torn down now, and the
            // Delete containerd sends next (or a Kill) finds it and succeeds.
            log.error("create \(id): \(error)")
            containers[id] = container
            adoptSandbox(container, pidFile: pidFile, networkNamespacePath: isRoot ? spec.networkNamespacePath : nil)
            markFailed(container)
            throw error
        }
        FileDescriptor.remove(pidFile)
        containers[id] = container
        if isRoot {
            adoptSandbox(container, pidFile: nil, networkNamespacePath: spec.networkNamespacePath)
        }
        var event = Containerd_Events_TaskCreate()
        event.containerID = id
        event.bundle = request.bundle
        event.rootfs = request.rootfs
        event.io.stdin = request.stdin
        event.io.stdout = request.stdout
        event.io.stderr = request.stderr
        event.io.terminal = request.terminal
        event.checkpoint = request.checkpoint
        event.pid = initProcess.pid
        events.publish("/tasks/create", event)
        log.info("created \(id) in sandbox \(sandboxID) (pid \(initProcess.pid), terminal \(request.terminal))")
        return initProcess.pid
    }

    /// Takes the sandbox `runsc create` left under supervision: runsc-sandbox by its pid (from
    /// the pid file after a failed create), the gofer and any other child it daemonized, all
    /// as pidfds, and their records in the bundle for the `delete` command should the shim die.
    private func adoptSandbox(_ container: Container, pidFile: String?, networkNamespacePath: String?) {
        guard container.isSandboxRoot else { return }
        var pid = Int32(container.initProcess.pid)
        if let pidFile {
            pid = FileDescriptor.readText(pidFile).flatMap { Int32($0.trimmingWhitespace) } ?? 0
            FileDescriptor.remove(pidFile)
        }
        let companions = supervisor.adoptUntrackedChildren().filter { $0.pid != pid }
        let process: Child
        do throws(Errno) {
            guard pid > 0 else { throw Errno(code: Errno.ESRCH, call: "no sandbox pid") }
            process = try supervisor.adopt(pid: pid)
        } catch {
            log.warn("cannot watch sandbox \(container.id) (pid \(pid)): \(error)")
            // Nothing to watch the exit through; its companions still must not outlive the pod.
            companions.forEach { _ = try? supervisor.signal($0, 9) }
            return
        }
        let sandbox = Sandbox(
            id: container.id, process: process, companions: companions, networkNamespacePath: networkNamespacePath,
            cgroups: container.cgroups)
        sandboxes[container.id] = sandbox
        let records = sandbox.all.compactMap { ProcessRecord.of($0.pid) }
        do throws(Errno) {
            try Files.write(container.bundle + "/" + PodShim.processRecordFile, RecordedProcesses.encode(records))
        } catch {
            log.warn("cannot record the sandbox's processes in \(container.bundle): \(error)")
        }
        watchSandbox(sandbox)
    }

    /// Where the pod's processes are recorded for `delete` (in the bundle, which outlives the shim).
    static let processRecordFile = "warden-processes"

    /// A create or start that failed: the task becomes `failed` (containerd sees it stopped,
    /// exit status 255) and everything it left is torn down in the background, bounded.
    private func markFailed(_ container: Container) {
        markProcessFailed(container.initProcess)
        container.teardown = Task { await self.tearDown(container, reason: "failed") }
    }

    /// An exec whose `runsc exec` failed: `failed` too, and its stdio closed before Start
    /// answers, since containerd's client waits for the output streams to end before it
    /// reports the error (ctr hung there for good).
    private func failExec(_ process: Process) async {
        markProcessFailed(process)
        await process.io.close(grace: .zero)
    }

    /// `failed` (containerd sees it stopped, exit status 255), its waiters released; no
    /// TaskExit, as it never ran.
    private func markProcessFailed(_ process: Process) {
        process.status = .failed
        process.exitStatus = 255
        let (seconds, nanos) = WallClock.now()
        process.exitedAt = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
        let waiters = process.waiters
        process.waiters = []
        waiters.forEach { $0.resume() }
    }

    /// Ends whatever a container that never ran left: the sandbox through the ladder without
    /// runsc kill or grace (a root), or runsc's state of a subcontainer; its stdio closed.
    private func tearDown(_ container: Container, reason: String) async {
        await container.initProcess.io.close(grace: .zero)
        if container.isSandboxRoot, let sandbox = sandboxes[container.id] {
            await joinTermination(sandbox, reason: reason, graceful: false).value
        } else if !container.isSandboxRoot {
            do throws(RunscError) {
                try await runsc.delete(container.id, force: true)
            } catch {
                if case .notFound = error {} else { log.warn("delete --force \(container.id): \(error)") }
            }
        }
    }

    /// The termination of `sandbox` in flight, or a new one: concurrent Kills share one ladder.
    /// `graceful: false` (a task that never ran, a sandbox runsc cannot reach) goes straight
    /// to SIGKILL after the network release.
    func joinTermination(_ sandbox: Sandbox, reason: String, graceful: Bool = true) -> Task<Void, Never> {
        if let running = sandbox.termination {
            countStep(.joined)
            return running
        }
        let task = Task { await self.terminate(sandbox, reason: reason, graceful: graceful) }
        sandbox.termination = task
        return task
    }

    public func start(id: String, execID: String) async throws(ShimError) -> UInt32 {
        let container = try container(id)
        let process = try process(id, execID)
        guard process.status == .created, !process.starting else {
            throw ShimError(.failedPrecondition, "cannot start \(describe(process)): it is \(process.status)")
        }
        process.starting = true
        do throws(ShimError) {
            if execID.isEmpty {
                try await startInit(container)
            } else {
                try await startExec(container, process)
            }
        } catch {
            process.starting = false
            if execID.isEmpty {
                // Nothing can start it again, and runsc may have left a sandbox behind.
                markFailed(container)
            } else {
                await failExec(process)
            }
            throw error
        }
        process.starting = false
        // An exit that raced Start (a process done within a millisecond) is published now,
        // after TaskStart, as containerd requires.
        if let pending = process.pendingExit {
            process.pendingExit = nil
            markExited(process, status: pending)
        }
        return process.pid
    }

    private func startInit(_ container: Container) async throws(ShimError) {
        let process = container.initProcess
        do throws(RunscError) {
            try await runsc.start(container.id, stdio: container.isSandboxRoot ? nil : process.io.processStdio)
        } catch {
            log.error("start \(container.id): \(error)")
            throw ShimError(.internal, "runsc start \(container.id): \(error)")
        }
        if !container.isSandboxRoot {
            process.io.handedOver()
            if process.io.consoleSocketPath != nil { try process.io.attachConsole(timeout: .seconds(30)) }
        }
        process.status = .running
        var event = Containerd_Events_TaskStart()
        event.containerID = container.id
        event.pid = process.pid
        events.publish("/tasks/start", event)
        if process.pendingExit == nil && !container.isSandboxRoot {
            watchSubcontainer(container)
        }
    }

    private func startExec(_ container: Container, _ process: Process) async throws(ShimError) {
        guard container.initProcess.status == .running || container.initProcess.status == .paused else {
            throw ShimError(.failedPrecondition, "cannot start exec \(process.execID): container \(container.id) is not running")
        }
        let pidFile = "\(scratchDirectory)/\(container.id)-\(process.execID).pid"
        let internalPidFile = pidFile + ".internal"
        defer {
            FileDescriptor.remove(pidFile)
            FileDescriptor.remove(internalPidFile)
        }
        do throws(RunscError) {
            try await runsc.exec(
                container.id, processFile: process.processFile ?? "", pidFile: pidFile,
                internalPidFile: internalPidFile, consoleSocket: process.io.consoleSocketPath,
                stdio: process.io.processStdio)
        } catch {
            log.error("exec \(process.execID) in \(container.id): \(error)")
            throw ShimError(.internal, "runsc exec \(process.execID) in \(container.id): \(error)")
        }
        process.io.handedOver()
        if process.io.consoleSocketPath != nil { try process.io.attachConsole(timeout: .seconds(30)) }
        guard let pid = FileDescriptor.readText(pidFile).flatMap({ Int32($0.trimmingWhitespace) }), pid > 0 else {
            throw ShimError(.internal, "runsc exec \(process.execID) wrote no pid to \(pidFile)")
        }
        process.sandboxPid = FileDescriptor.readText(internalPidFile).flatMap { Int32($0.trimmingWhitespace) }
        process.pid = UInt32(pid)
        process.status = .running
        var event = Containerd_Events_TaskExecStarted()
        event.containerID = container.id
        event.execID = process.execID
        event.pid = UInt32(pid)
        events.publish("/tasks/exec-started", event)
        do throws(Errno) {
            let child = try supervisor.adopt(pid: pid)
            let supervisor = self.supervisor
            let (containerID, execID) = (container.id, process.execID)
            Task { [weak self] in
                let outcome = await supervisor.wait(child)
                supervisor.release(child)
                await self?.execExited(containerID, execID, outcome.exitCode)
            }
        } catch {
            log.warn("cannot watch exec \(process.execID) (pid \(pid)): \(error); reporting it exited")
            markExited(process, status: 255)
        }
    }

    // MARK: exits

    private func watchSandbox(_ sandbox: Sandbox) {
        let supervisor = self.supervisor
        let (id, process) = (sandbox.id, sandbox.process)
        Task { [weak self] in
            let outcome = await supervisor.wait(process)
            await self?.sandboxExited(id, outcome.exitCode)
        }
    }

    /// `runsc wait` for a container that joined a sandbox (its exit is not a process exit the
    /// shim can see). Retried while the sandbox lives; the sandbox's own exit settles it otherwise.
    private func watchSubcontainer(_ container: Container) {
        let runsc = self.runsc
        let id = container.id
        container.watcher = Task { [weak self] in
            var delay = 100
            while !Task.isCancelled {
                do throws(RunscError) {
                    let status = try await runsc.wait(id)
                    await self?.subcontainerExited(id, UInt32(bitPattern: status))
                    return
                } catch {
                    if Task.isCancelled { return }
                    guard await self?.isWaitable(id) ?? false else { return }
                    try? await Task.sleep(for: .milliseconds(delay))
                    delay = min(delay * 2, 2000)
                }
            }
        }
    }

    private func isWaitable(_ id: String) -> Bool {
        guard let container = containers[id] else { return false }
        return container.initProcess.status != .stopped && sandboxes[container.sandboxID]?.exited == false
    }

    func sandboxExited(_ sandboxID: String, _ status: UInt32) {
        guard let sandbox = sandboxes[sandboxID], !sandbox.exited else { return }
        sandbox.exited = true
        log.info("sandbox \(sandboxID) exited with status \(status)")
        // Nothing of the pod outlives its sandbox: a gofer that stays (or anything else) is
        // killed after kill_grace.
        Task { await self.reapCompanions(sandbox) }
        // Every process in the sandbox is gone with it: execs first, then subcontainers, then
        // the root, whose status is the sandbox's (runsc-sandbox exits with it).
        for container in containers.values where container.sandboxID == sandboxID {
            for exec in container.execs.values where exec.status != .stopped && exec.status != .created {
                markExited(exec, status: 137)
            }
            if !container.isSandboxRoot {
                container.watcher?.cancel()
                markExited(container.initProcess, status: 137)
            }
        }
        if let root = containers[sandboxID] { markExited(root.initProcess, status: status) }
    }

    private func reapCompanions(_ sandbox: Sandbox) async {
        var lingering: [Child] = []
        for companion in sandbox.companions where !(await waitForExit(companion, within: deadlines.killGrace)) {
            lingering.append(companion)
        }
        let orphans = supervisor.adoptUntrackedChildren()
        guard !lingering.isEmpty || !orphans.isEmpty else { return }
        countStep(.leftoversKilled, lingering.count + orphans.count)
        log.warn("sandbox \(sandbox.id) exited; killing what it left: \((lingering + orphans).map(\.description).joined(separator: ", "))")
        sandbox.companions += orphans
        _ = killPodProcesses(sandbox)
    }

    private func subcontainerExited(_ id: String, _ status: UInt32) {
        guard let container = containers[id] else { return }
        for exec in container.execs.values where exec.status == .running || exec.status == .paused {
            markExited(exec, status: 137)
        }
        markExited(container.initProcess, status: status)
    }

    private func execExited(_ id: String, _ execID: String, _ status: UInt32) {
        guard let exec = containers[id]?.execs[execID] else { return }
        markExited(exec, status: status)
    }

    /// Records an exit once: status, time, waiters released, TaskExit published.
    private func markExited(_ process: Process, status: UInt32) {
        guard process.status != .stopped, process.status != .failed else { return }
        if process.starting {
            process.pendingExit = status
            return
        }
        let neverStarted = process.status == .created
        process.status = .stopped
        process.exitStatus = status
        let (seconds, nanos) = WallClock.now()
        process.exitedAt = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
        let waiters = process.waiters
        process.waiters = []
        waiters.forEach { $0.resume() }
        if !neverStarted {
            if let container = containers[process.containerID], !container.isSandboxRoot, container.initProcess === process {
                unreleasedSubcontainers[container.id] = container.sandboxID
            }
            var event = Containerd_Events_TaskExit()
            event.containerID = process.containerID
            event.id = process.eventID
            event.pid = process.pid
            event.exitStatus = status
            event.exitedAt = process.exitedAt!
            events.publish("/tasks/exit", event)
            metrics.exitPublished()
        }
        log.info("\(describe(process)) exited with status \(status)")
        // Output still in the pipes reaches containerd; then the fifos are closed so its
        // readers see EOF even if something inside the sandbox kept a descriptor.
        let io = process.io
        Task { await io.close(grace: .seconds(2)) }
    }

    private func describe(_ process: Process) -> String {
        process.execID.isEmpty ? "container \(process.containerID)" : "exec \(process.execID) of \(process.containerID)"
    }

    // MARK: Exec

    public func exec(_ request: Containerd_Task_V2_ExecProcessRequest) throws(ShimError) {
        let container = try container(request.id)
        guard !request.execID.isEmpty else { throw ShimError(.invalidArgument, "exec: empty exec id") }
        guard container.execs[request.execID] == nil else {
            throw ShimError(.alreadyExists, "exec \(request.execID) already exists in \(request.id)")
        }
        guard container.initProcess.status == .running || container.initProcess.status == .paused else {
            throw ShimError(.failedPrecondition, "cannot exec in container \(request.id): it is \(container.initProcess.status)")
        }
        // The spec Any carries the OCI process as JSON (containerd's typeurl for non-proto types).
        let processFile = "\(scratchDirectory)/\(request.id)-\(request.execID).json"
        do throws(Errno) {
            try Files.write(processFile, String(decoding: request.spec.value, as: UTF8.self))
        } catch {
            throw ShimError(.internal, "exec \(request.execID): writing its process spec: \(error)")
        }
        let paths = ProcessIO.Paths(
            stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal)
        let io: ProcessIO
        do throws(ShimError) {
            io = try ProcessIO.open(
                paths, name: "\(request.id)-\(request.execID)", scratchDirectory: scratchDirectory,
                containerID: request.id, namespace: namespace, supervisor: supervisor,
                copier: stdioCopier)
        } catch {
            FileDescriptor.remove(processFile)
            throw error
        }
        let exec = Process(containerID: request.id, execID: request.execID, paths: paths, io: io)
        exec.processFile = processFile
        container.execs[request.execID] = exec
        var event = Containerd_Events_TaskExecAdded()
        event.containerID = request.id
        event.execID = request.execID
        events.publish("/tasks/exec-added", event)
    }

    // MARK: State / Wait / Pids

    public func state(id: String, execID: String) throws(ShimError) -> Containerd_Task_V2_StateResponse {
        let container = try container(id)
        let process = try process(id, execID)
        var response = Containerd_Task_V2_StateResponse()
        response.id = execID.isEmpty ? id : execID
        response.bundle = container.bundle
        response.pid = process.pid
        response.status = process.status.containerd
        response.stdin = process.paths.stdin
        response.stdout = process.paths.stdout
        response.stderr = process.paths.stderr
        response.terminal = process.paths.terminal
        response.exitStatus = process.exitStatus
        if let exitedAt = process.exitedAt { response.exitedAt = exitedAt }
        response.execID = execID
        return response
    }

    public func wait(id: String, execID: String) async throws(ShimError) -> Containerd_Task_V2_WaitResponse {
        let process = try process(id, execID)
        if process.status != .stopped && process.status != .failed {
            await withCheckedContinuation { process.waiters.append($0) }
        }
        var response = Containerd_Task_V2_WaitResponse()
        response.exitStatus = process.exitStatus
        if let exitedAt = process.exitedAt { response.exitedAt = exitedAt }
        return response
    }

    public func pids(id: String) async throws(ShimError) -> [Containerd_V1_Types_ProcessInfo] {
        let container = try container(id)
        guard container.initProcess.status == .running || container.initProcess.status == .paused else {
            throw ShimError(.failedPrecondition, "container \(id) is \(container.initProcess.status)")
        }
        func info(_ pid: UInt32) -> Containerd_V1_Types_ProcessInfo {
            var info = Containerd_V1_Types_ProcessInfo()
            info.pid = pid
            return info
        }
        do throws(RunscError) {
            return try await runsc.ps(id).map { info(UInt32(bitPattern: $0)) }
        } catch {
            // A wedged sandbox does not answer runsc ps. An empty or failed answer is not an
            // option: containerd 1.7 asks for Pids when it reloads shims after a restart and
            // takes a running task with none for a leaked shim, deletes it without a kill, and
            // forgets it (its pod then "stops" with everything left running). The processes
            // the shim knows are still there: the container's and its running execs'.
            let known = ([container.initProcess] + container.execs.values.filter { $0.status == .running })
                .map(\.pid).filter { $0 > 0 }
            guard !known.isEmpty else { throw ShimError(from: error, "pids of \(id)") }
            log.warn("pids of \(id): \(error); answering with the pids the shim knows: \(known)")
            return known.map(info)
        }
    }

    // MARK: Kill

    public func kill(id: String, execID: String, signal: UInt32, all: Bool) async throws(ShimError) {
        let container = try container(id)
        let process = try process(id, execID)
        if process.status == .failed {
            // What the failed create or start left is being torn down: this Kill joins it.
            await joinBounded(container.teardown)
            return
        }
        if process.status == .stopped { throw ShimError(.notFound, "\(describe(process)): process already finished") }
        if !execID.isEmpty {
            guard process.status == .running, let sandboxPid = process.sandboxPid else {
                throw ShimError(.failedPrecondition, "\(describe(process)) is not running")
            }
            if let error = await signalOnce(id, signal: Int32(signal), all: false, pid: sandboxPid) {
                throw ShimError(from: error, "kill \(describe(process))")
            }
            return
        }
        if process.status == .created {
            // Never started: nothing inside can take a signal; the only kill is tearing it down.
            await forceStop(container)
            return
        }
        if signal == 9, container.isSandboxRoot, let sandbox = sandboxes[container.sandboxID] {
            // The pod's sandbox: the escalation ladder, which guarantees the exits within
            // stop_deadline. Kill itself returns once runsc took the signal, or after
            // runsc_call_timeout while the ladder goes on.
            await joinBounded(joinTermination(sandbox, reason: "kill"), untilDeadOf: sandbox)
            return
        }
        let error = await signalOnce(id, signal: Int32(signal), all: all, pid: nil)
        if signal == 9, let sandbox = sandboxes[container.sandboxID] {
            // A container of the pod (CRI's StopPodSandbox SIGKILLs each before the sandbox).
            if case .timedOut? = error {
                // runsc cannot reach the sentry, so no container of this pod can be signalled
                // any more: the pod is wedged. The ladder SIGKILLs the sandbox and publishes
                // every exit of the pod, this container's too.
                log.warn("runsc kill -9 of \(id) timed out; sandbox \(sandbox.id) is wedged: terminating the pod")
                await joinBounded(joinTermination(sandbox, reason: "runsc kill of \(id) hung", graceful: false), untilDeadOf: sandbox)
                return
            }
            if error == nil { watchKilledContainer(container, in: sandbox) }
        }
        if let error { throw ShimError(from: error, "kill \(id)") }
    }

    /// A SIGKILLed container's exit must be seen within kill_grace (through `runsc wait`); if
    /// it is not, runsc is not reporting it (the sandbox is wedged or runsc lies) and the pod
    /// is terminated, which publishes the exit.
    private func watchKilledContainer(_ container: Container, in sandbox: Sandbox) {
        let (grace, id, sandboxID) = (deadlines.killGrace, container.id, sandbox.id)
        Task { [weak self] in
            try? await Task.sleep(for: grace)
            await self?.terminateUnlessExited(id, sandboxID: sandboxID, after: grace)
        }
    }

    private func terminateUnlessExited(_ id: String, sandboxID: String, after grace: Duration) {
        guard let container = containers[id], let sandbox = sandboxes[sandboxID], !sandbox.exited else { return }
        let status = container.initProcess.status
        guard status == .running || status == .paused else { return }
        log.warn("\(id) did not exit within \(grace) of SIGKILL; terminating sandbox \(sandboxID)")
        _ = joinTermination(sandbox, reason: "\(id) not reported exited \(grace) after SIGKILL", graceful: false)
    }

    /// Waits for `task` for most of runsc_call_timeout, so that Kill answers within it while a
    /// ladder stuck on runsc goes on in the background.
    /// Waits for a termination, at most just under runsc_call_timeout (Kill's own bound). With
    /// `sandbox`, also only until the sandbox is dead: the ladder's last steps (its cgroup,
    /// leftovers, the reap) go on after Kill has answered. Kill must answer before containerd
    /// acts on the sandbox's exit: CRI deletes the task and shuts the shim down on that exit,
    /// closing the connection a late Kill answer would need ("ttrpc: closed").
    private func joinBounded(_ task: Task<Void, Never>?, untilDeadOf sandbox: Sandbox? = nil) async {
        guard let task else { return }
        let supervisor = self.supervisor
        let process = sandbox?.process
        _ = await waitAtMost(deadlines.runscCallTimeout * 0.9) {
            await firstOf({ await task.value }, { if let process { _ = await supervisor.wait(process) } else { await task.value } })
        }
    }

    /// `runsc kill` for one target, shared by identical concurrent Kills. nil when delivered
    /// (or the target is already gone).
    private func signalOnce(_ id: String, signal: Int32, all: Bool, pid: Int32?) async -> RunscError? {
        let key = "\(id)/\(pid ?? 0)/\(signal)/\(all)"
        if let inFlight = killsInFlight[key] {
            countStep(.joined)
            return await inFlight.value
        }
        let runsc = self.runsc
        let task = Task<RunscError?, Never> {
            do throws(RunscError) {
                try await runsc.kill(id, signal: signal, all: all, pid: pid)
                return nil
            } catch {
                switch error {
                case .alreadyStopped, .notFound: return nil
                default: return error
                }
            }
        }
        killsInFlight[key] = task
        let result = await task.value
        killsInFlight[key] = nil
        return result
    }

    /// Tears down a container that never ran: its sandbox through the ladder (a root), or its
    /// runsc state (a subcontainer); the exit recorded as 137.
    private func forceStop(_ container: Container) async {
        await tearDown(container, reason: "kill of a created task")
        markExited(container.initProcess, status: 137)
    }

    // MARK: Delete

    /// Bounded by delete_deadline: stdio closed, `runsc delete --force` (its state removed by
    /// hand if runsc hangs or fails), anything of the pod still alive SIGKILLed and reaped,
    /// rootfs unmounted, TaskDelete published.
    public func delete(id: String, execID: String) async throws(ShimError) -> Containerd_Task_V2_DeleteResponse {
        let clock = ContinuousClock()
        let deleteBy = clock.now + deadlines.deleteDeadline
        func remaining(atMost bound: Duration) -> Duration { max(.zero, min(bound, deleteBy - clock.now)) }
        let container = try container(id)
        let process = try process(id, execID)
        if !execID.isEmpty {
            guard process.status == .stopped || process.status == .created || process.status == .failed else {
                throw ShimError(.failedPrecondition, "cannot delete \(describe(process)): it is \(process.status)")
            }
            container.execs[execID] = nil
            await process.io.close(grace: remaining(atMost: .seconds(2)))
            if let processFile = process.processFile { FileDescriptor.remove(processFile) }
            return deleteResponse(process)
        }
        guard process.status == .stopped || process.status == .created || process.status == .failed else {
            throw ShimError(.failedPrecondition, "cannot delete container \(id): it is \(process.status)")
        }
        if process.status == .created { await forceStop(container) }
        if let teardown = container.teardown {
            _ = await waitAtMost(remaining(atMost: deadlines.deleteDeadline)) { await teardown.value }
        }
        for exec in container.execs.values {
            await exec.io.close(grace: .zero)
            if let processFile = exec.processFile { FileDescriptor.remove(processFile) }
        }
        await process.io.close(grace: remaining(atMost: .seconds(2)))
        if container.isSandboxRoot, let termination = sandboxes[id]?.termination {
            // Kill answered once the sandbox was dead; the ladder's last steps finish first.
            _ = await waitAtMost(remaining(atMost: deadlines.deleteDeadline)) { await termination.value }
        }
        if container.isSandboxRoot, let sandbox = sandboxes[id], supervisor.outcome(sandbox.process) != nil,
            !container.hasPoststopHooks
        {
            // The sandbox is reaped: all `runsc delete` would still do is remove runsc's state
            // files and the cgroup, which Warden does below without a process on the critical
            // path of every container removal (`ctr run --rm`, StopPodSandbox).
            let removed = runsc.removeState(id)
            log.debug("sandbox \(id) reaped: removed its runsc state without runsc delete: \(removed.joined(separator: " "))")
        } else {
            await runscDelete(id, within: remaining(atMost: deadlines.runscCallTimeout))
        }
        if container.isSandboxRoot, let sandbox = sandboxes[id] {
            // runsc delete should have ended it; the pidfds make sure, without a pid race.
            if killPodProcesses(sandbox) > 0 {
                for child in sandbox.all { _ = await waitForExit(child, within: remaining(atMost: deadlines.deleteDeadline)) }
            }
            sandboxExited(id, 137)
            sandbox.all.forEach { supervisor.release($0) }
            sandboxes[id] = nil
            FileDescriptor.remove(container.bundle + "/" + PodShim.processRecordFile)
            // A runsc call that loaded a container after its state was destroyed (one that was
            // timed out while the sandbox was wedged) re-creates the lock file; with the pod's
            // processes gone, what is left under the sandbox's name is stale.
            let stale = runsc.removeSandboxState(id)
            if !stale.isEmpty { log.info("removed stale runsc state of sandbox \(id): \(stale.joined(separator: " "))") }
        }
        if let cgroups = container.cgroups {
            // The sandbox's cgroup holds the pod's host processes (sandbox, gofers): anything
            // still there now is a leftover. A subcontainer's holds none, so nothing is killed.
            let report = await cgroups.release(
                killingLeftovers: container.isSandboxRoot, within: remaining(atMost: deadlines.deleteDeadline),
                supervisor: supervisor)
            if report.killed > 0 || !report.left.isEmpty {
                countStep(.cgroupLeftovers)
                log.warn("cgroup \(cgroups.path) of \(id): \(report)")
            } else if !report.removed.isEmpty {
                log.info("cgroup \(cgroups.path) of \(id) left by runsc: \(report)")
            }
        }
        if container.rootfsMounted { Rootfs.unmount(bundle: container.bundle) }
        if container.isSandboxRoot {
            await awaitSubcontainersReleased(of: id, within: remaining(atMost: Self.subcontainerReleaseGrace))
        }
        containers[id] = nil
        var event = Containerd_Events_TaskDelete()
        event.containerID = id
        event.id = id
        event.pid = process.pid
        event.exitStatus = process.exitStatus
        if let exitedAt = process.exitedAt { event.exitedAt = exitedAt }
        events.publish("/tasks/delete", event)
        log.info("deleted \(id) in \(milliseconds(clock.now - (deleteBy - deadlines.deleteDeadline)))ms")
        if shutdownRequested && containers.isEmpty { onEmptyShutdown() }
        return deleteResponse(process)
    }

    /// Until containerd has sent Shutdown for every subcontainer of `sandboxID` whose exit was
    /// published (it does so after their Delete), or `bound`; see `unreleasedSubcontainers`.
    private func awaitSubcontainersReleased(of sandboxID: String, within bound: Duration) async {
        let clock = ContinuousClock()
        let until = clock.now + bound
        while unreleasedSubcontainers.values.contains(sandboxID), clock.now < until {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let unreleased = unreleasedSubcontainers.filter { $0.value == sandboxID }.map(\.key).sorted()
        if !unreleased.isEmpty {
            log.info("sandbox \(sandboxID) deleted before containerd released \(unreleased.joined(separator: ", "))")
        }
        for id in unreleased { unreleasedSubcontainers[id] = nil }
    }

    /// `runsc delete --force`, given half of `bound` at most so a hung runsc leaves time for
    /// the rest of Delete; if it hangs or fails, runsc's state files are removed by hand.
    private func runscDelete(_ id: String, within bound: Duration) async {
        do throws(RunscError) {
            try await runsc.delete(id, force: true, timeout: bound / 2)
        } catch {
            if case .notFound = error {
                // Nothing runsc knows of; a sandbox's control socket may still be there (runsc 2024).
                let removed = runsc.removeState(id)
                if !removed.isEmpty { log.info("runsc delete \(id): not found; removed \(removed.joined(separator: " "))") }
            } else {
                countStep(.runscDeleteFailed)
                let removed = runsc.removeState(id)
                if !removed.isEmpty { countStep(.stateRemoved) }
                log.warn("runsc delete \(id): \(error); removed its state: \(removed.joined(separator: " "))")
            }
        }
    }

    private func deleteResponse(_ process: Process) -> Containerd_Task_V2_DeleteResponse {
        var response = Containerd_Task_V2_DeleteResponse()
        response.pid = process.pid
        response.exitStatus = process.exitStatus
        if let exitedAt = process.exitedAt { response.exitedAt = exitedAt }
        return response
    }

    // MARK: Pause / Resume / Stats / IO

    public func pause(id: String) async throws(ShimError) {
        let container = try container(id)
        guard container.initProcess.status == .running else {
            throw ShimError(.failedPrecondition, "cannot pause container \(id): it is \(container.initProcess.status)")
        }
        do throws(RunscError) { try await runsc.pause(id) } catch { throw ShimError(from: error, "pause \(id)") }
        if container.initProcess.status == .running { container.initProcess.status = .paused }
        var event = Containerd_Events_TaskPaused()
        event.containerID = id
        events.publish("/tasks/paused", event)
    }

    public func resume(id: String) async throws(ShimError) {
        let container = try container(id)
        guard container.initProcess.status == .paused else {
            throw ShimError(.failedPrecondition, "cannot resume container \(id): it is \(container.initProcess.status)")
        }
        do throws(RunscError) { try await runsc.resume(id) } catch { throw ShimError(from: error, "resume \(id)") }
        if container.initProcess.status == .paused { container.initProcess.status = .running }
        var event = Containerd_Events_TaskResumed()
        event.containerID = id
        events.publish("/tasks/resumed", event)
    }

    public func stats(id: String) async throws(ShimError) -> Google_Protobuf_Any {
        let container = try container(id)
        guard container.initProcess.status == .running || container.initProcess.status == .paused else {
            throw ShimError(.failedPrecondition, "no stats for container \(id): it is \(container.initProcess.status)")
        }
        let stats: RunscStats
        do throws(RunscError) { stats = try await runsc.stats(id) } catch { throw ShimError(from: error, "stats of \(id)") }
        do {
            return try Google_Protobuf_Any(containerdMessage: CgroupMetrics.v1(stats))
        } catch {
            throw ShimError(.internal, "stats of \(id): \(error)")
        }
    }

    public func resize(id: String, execID: String, width: UInt32, height: UInt32) throws(ShimError) {
        try process(id, execID).io.resize(width: width, height: height)
    }

    public func closeIO(id: String, execID: String, stdin: Bool) throws(ShimError) {
        let process = try process(id, execID)
        if stdin { process.io.closeStdin() }
    }

    public func connect(id: String) throws(ShimError) -> Containerd_Task_V2_ConnectResponse {
        var response = Containerd_Task_V2_ConnectResponse()
        response.shimPid = UInt32(ProcessIdentity.pid)
        response.taskPid = containers[id]?.initProcess.pid ?? 0
        response.version = wardenVersion
        return response
    }

    /// Shutdown: the shim exits only once it serves no container (containerd sends one per
    /// container after its Delete, or one for the pod).
    public func shutdown(id: String) {
        unreleasedSubcontainers[id] = nil
        shutdownRequested = true
        if containers.isEmpty { onEmptyShutdown() }
    }

    public var isEmpty: Bool { containers.isEmpty }
}

extension ChildOutcome {
    /// The status containerd reports: the exit code, 128+signal, or 255 if unknown.
    var exitCode: UInt32 {
        switch self {
        case .exited(let status): status.code
        case .exitedWithoutStatus, .abandoned: 255
        }
    }
}

extension String {
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}

extension ShimError {
    /// runsc's classified failure as the shim's error (at the edge it becomes a ttrpc status).
    init(from error: RunscError, _ what: String) {
        switch error {
        case .notFound: self.init(.notFound, "\(what): \(error)")
        case .alreadyStopped: self.init(.failedPrecondition, "\(what): \(error)")
        case .timedOut: self.init(.deadlineExceeded, "\(what): \(error)")
        case .cancelled: self.init(.deadlineExceeded, "\(what): \(error)")
        case .commandFailed, .invalidOutput, .spawnFailed: self.init(.internal, "\(what): \(error)")
        }
    }
}

/// Returns when the first of two operations does; the other goes on unawaited.
func firstOf(_ first: @escaping @Sendable () async -> Void, _ second: @escaping @Sendable () async -> Void) async {
    let done = Mutex(false)
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let finish: @Sendable () -> Void = {
            let isFirst = done.withLock { done -> Bool in
                defer { done = true }
                return !done
            }
            if isFirst { continuation.resume() }
        }
        Task { await first(); finish() }
        Task { await second(); finish() }
    }
}
