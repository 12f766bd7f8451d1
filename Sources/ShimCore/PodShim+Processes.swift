// Exec registration and the read side of the task API: State, Wait, Pids. Nothing here
// changes a running process; Wait only parks until PodShim+Exits records the exit.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ContainerdAPI
import LinuxSys
import Runsc

extension PodShim {
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
            Files.remove(processFile)
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
}
