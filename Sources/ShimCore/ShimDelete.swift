import Config
import ContainerdAPI
import Deadlines
import LinuxSys
import Runsc
import Supervisor
import SwiftProtobuf

/// `delete`: containerd's cleanup after a shim died (or after a normal teardown). Bounded by
/// `delete_deadline`: the pod's recorded processes (and their descendants) SIGKILLed by pidfd
/// when they are still the processes recorded, `runsc delete --force` (its state files
/// removed by hand if runsc hangs), the container's cgroup if runsc left it, unmount
/// `<bundle>/rootfs`, remove the dead shim's socket,
/// then print a DeleteResponse (exit status 137) on stdout.
enum ShimDelete {
    static func run(_ flags: ShimFlags) async -> Int32 {
        guard let bundle = flags.bundle.isEmpty ? ProcessEnvironment.workingDirectory : flags.bundle else {
            Console.error("delete: cannot determine the bundle directory")
            return 1
        }
        let recordedConfig = FileDescriptor.readText(bundle + "/" + ShimCommand.bundleConfigFile)?.trimmingWhitespace
        let config: WardenConfig
        do throws(ConfigError) {
            (config, _) = try ShimCommand.loadConfig(path: recordedConfig)
        } catch {
            Console.error("delete: \(error); using defaults")
            config = WardenConfig()
        }
        var warnings: [String] = []
        let spec = try? OCISpec.load(bundle: bundle)
        let pod = spec?.groupID(containerID: flags.id) ?? flags.id
        let clock = ContinuousClock()
        let deleteBy = clock.now + config.deadlines.deleteDeadline
        let recordPath = bundle + "/" + PodShim.processRecordFile
        let records = RecordedProcesses.decode(FileDescriptor.readText(recordPath) ?? "")
        if !records.isEmpty {
            // A third of the time: SIGKILL is not refused, only a process stuck in the kernel waits.
            let report = await RecordedProcesses.kill(records, within: config.deadlines.deleteDeadline / 3)
            if !report.survivors.isEmpty { warnings.append("still alive after SIGKILL: \(report.survivors)") }
        }
        do throws(Errno) {
            let supervisor = try Supervisor()
            let scratch = ShimServer.scratchDirectory(config: config, flags: flags) + "-delete"
            try Directories.make(scratch)
            defer {
                FileDescriptor.removeDirectory(scratch)
                FileDescriptor.removeDirectory(config.root + "/shim")  // only if no live shim uses it
            }
            // The pod's own runsc root; a pod started by a Warden before per-pod roots keeps
            // its state directly under the configured root.
            let podRoot = ShimServer.runscRoot(config: config, namespace: flags.namespace, pod: pod)
            var runsc = Runsc(
                configuration: ShimServer.runscConfiguration(config, scratchDirectory: scratch, root: podRoot),
                supervisor: supervisor)
            let legacy = Runsc(
                configuration: ShimServer.runscConfiguration(config, scratchDirectory: scratch, root: config.root),
                supervisor: supervisor)
            if !runsc.hasState(flags.id) && legacy.hasState(flags.id) { runsc = legacy }
            defer { ShimServer.removePodRoot(config: config, namespace: flags.namespace, pod: pod) }
            // After a normal teardown (containerd runs `delete` then too) runsc has nothing left:
            // no call, so a wedged runsc costs nothing here.
            if runsc.hasState(flags.id) {
                do throws(RunscError) {
                    // Most of what is left, keeping time to remove the state by hand if runsc hangs.
                    try await runsc.delete(flags.id, force: true, timeout: max(.zero, deleteBy - clock.now) * 0.8)
                } catch {
                    let removed = runsc.removeState(flags.id)
                    if case .notFound = error {} else {
                        warnings.append("runsc delete --force \(flags.id): \(error); removed \(removed.joined(separator: " "))")
                    }
                }
            }
            // What runsc left of the container's cgroup (it cannot remove it after the sandbox was
            // killed); for a pod's sandbox, with whatever still runs in it.
            if let spec, let cgroups = spec.cgroups {
                let report = await cgroups.release(
                    killingLeftovers: spec.joinsSandbox == nil, within: max(.zero, deleteBy - clock.now), supervisor: supervisor)
                if report.killed > 0 || !report.left.isEmpty { warnings.append("cgroup \(cgroups.path): \(report)") }
            }
            // containerd runs one `delete` per task of a dead shim, side by side; a subcontainer's
            // `runsc delete` loads the sandbox's state and, done after the sandbox's own delete,
            // re-creates its lock file. Once the sandbox's state is gone, that is stale; each
            // delete clears it at its end, so the last one to finish leaves nothing.
            let stale = runsc.removeStaleSandboxLocks(spec?.joinsSandbox ?? flags.id)
            if !stale.isEmpty { Console.error("removed stale runsc locks: \(stale.joined(separator: " "))") }
            supervisor.shutdown()
        } catch {
            warnings.append("\(error)")
        }
        Rootfs.unmount(bundle: bundle)
        FileDescriptor.remove(recordPath)
        // The dead shim's socket (a live one is left alone: other containers of the pod use it).
        if let address = FileDescriptor.readText(bundle + "/address")?.trimmingWhitespace, address.hasPrefix("unix://") {
            let path = String(address.dropFirst("unix://".count))
            if let fd = try? UnixSocket.connect(path: path) {
                UnixSocket.close(fd)
            } else {
                UnixSocket.remove(path: path)
                // The dead shim's scratch directory (runsc call files, pid files, console sockets).
                Directories.removeTree(ShimServer.scratchDirectory(config: config, flags: flags))
                FileDescriptor.removeDirectory(config.root + "/shim")
                // Its metrics file: a dead shim's counts are stale, not a live pod's.
                if !config.metricsDirectory.isEmpty {
                    ShimMetrics(directory: config.metricsDirectory, namespace: flags.namespace, pod: pod).close()
                }
            }
        }
        warnings.forEach { Console.error($0) }
        var response = Containerd_Task_V2_DeleteResponse()
        response.exitStatus = 137
        let (seconds, nanos) = WallClock.now()
        response.exitedAt = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
        guard let bytes: [UInt8] = try? response.serializedBytes() else { return 1 }
        do throws(Errno) {
            try FileDescriptor.writeAll(1, bytes)
        } catch {
            return 1
        }
        return 0
    }
}
