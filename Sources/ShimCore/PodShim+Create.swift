// Create and Start: making the runsc sandbox or a subcontainer, adopting its processes, and
// tearing down what a failed create or start left. Must not wait for an exit (PodShim+Exits
// does) or stop a running task (PodShim+Kill does).

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

extension PodShim {
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
        if sandboxID != id, let files = apiSandboxes[sandboxID]?.files {
            let added = try files.addMounts(bundle: request.bundle, spec: spec)
            if !added.isEmpty { log.info("create \(id): the pod's \(added.joined(separator: ", ")) mounted from \(files.directory)") }
        }
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
        // runsc appends to it: a file of an earlier sandbox of the same id must not be read as this one's.
        let panicLog = isRoot ? "\(scratchDirectory)/\(id).panic" : nil
        if let panicLog { Files.remove(panicLog) }
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
                    stdio: isRoot ? io.processStdio : nil, panicLog: panicLog)
            } catch {
                throw ShimError(from: error, "runsc create \(id)")
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
            adoptSandbox(
                container, pidFile: pidFile, networkNamespacePath: isRoot ? spec.networkNamespacePath : nil, panicLog: panicLog)
            markFailed(container)
            throw error
        }
        Files.remove(pidFile)
        containers[id] = container
        if isRoot {
            adoptSandbox(container, pidFile: nil, networkNamespacePath: spec.networkNamespacePath, panicLog: panicLog)
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
    private func adoptSandbox(_ container: Container, pidFile: String?, networkNamespacePath: String?, panicLog: String?) {
        guard container.isSandboxRoot else { return }
        var pid = Int32(container.initProcess.pid)
        if let pidFile {
            pid = FileDescriptor.readText(pidFile).flatMap { Int32($0.trimmingWhitespace) } ?? 0
            Files.remove(pidFile)
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
            cgroups: container.cgroups, panicLog: panicLog)
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
        do throws(ShimError) {
            try process.move(to: .failed)
        } catch {
            log.error("\(error)")
            return
        }
        process.exitStatus = 255
        let (seconds, nanos) = WallClock.now()
        process.exitedAt = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
        let waiters = process.waiters
        process.waiters = []
        waiters.forEach { $0.resume() }
    }

    /// Ends whatever a container that never ran left: the sandbox through the ladder without
    /// runsc kill or grace (a root), or runsc's state of a subcontainer; its stdio closed.
    func tearDown(_ container: Container, reason: String) async {
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
            throw ShimError(from: error, "runsc start \(container.id)")
        }
        if !container.isSandboxRoot {
            process.io.handedOver()
            if process.io.consoleSocketPath != nil { try process.io.attachConsole(timeout: .seconds(30)) }
        }
        try process.move(to: .running)
        var event = Containerd_Events_TaskStart()
        event.containerID = container.id
        event.pid = process.pid
        events.publish("/tasks/start", event)
        if process.pendingExit == nil && !container.isSandboxRoot {
            watchSubcontainer(container)
        }
        if container.isSandboxRoot {
            // Not awaited: a probe of a hung control server must not hold Start's answer.
            let runtime = runsc
            let id = container.id
            Task { await runtime.sandboxStarted(id) }
        }
    }

    private func startExec(_ container: Container, _ process: Process) async throws(ShimError) {
        guard container.initProcess.status == .running || container.initProcess.status == .paused else {
            throw ShimError(.failedPrecondition, "cannot start exec \(process.execID): container \(container.id) is not running")
        }
        let pidFile = "\(scratchDirectory)/\(container.id)-\(process.execID).pid"
        let internalPidFile = pidFile + ".internal"
        defer {
            Files.remove(pidFile)
            Files.remove(internalPidFile)
        }
        do throws(RunscError) {
            try await runsc.exec(
                container.id, processFile: process.processFile ?? "", pidFile: pidFile,
                internalPidFile: internalPidFile, consoleSocket: process.io.consoleSocketPath,
                stdio: process.io.processStdio)
        } catch {
            log.error("exec \(process.execID) in \(container.id): \(error)")
            throw ShimError(from: error, "runsc exec \(process.execID) in \(container.id)")
        }
        process.io.handedOver()
        if process.io.consoleSocketPath != nil { try process.io.attachConsole(timeout: .seconds(30)) }
        guard let pid = FileDescriptor.readText(pidFile).flatMap({ Int32($0.trimmingWhitespace) }), pid > 0 else {
            throw ShimError(.internal, "runsc exec \(process.execID) wrote no pid to \(pidFile)")
        }
        process.sandboxPid = FileDescriptor.readText(internalPidFile).flatMap { Int32($0.trimmingWhitespace) }
        process.pid = UInt32(pid)
        try process.move(to: .running)
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
}
