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
///
/// After a normal teardown (containerd runs `delete` after every Shutdown, on the critical
/// path of each removal) there is nothing to kill and nothing for runsc to do: `Plan` sees
/// that without waiting for anything, and `finish` then runs on the main thread, with no
/// concurrency runtime and no supervisor thread started.
enum ShimDelete {
    /// What a `delete` has to do, read from the bundle, the config and runsc's root without
    /// waiting for anything.
    struct Plan {
        let flags: ShimFlags
        let bundle: String
        let config: WardenConfig
        let spec: OCISpec?
        let pod: String
        let records: [ProcessRecord]
        /// The runsc root holding the container's state: the pod's own, or (a pod started by
        /// a Warden before per-pod roots) the configured root; nil when runsc has nothing.
        let runscStateRoot: String?
        /// The container's cgroup directories that exist, and whether processes are in them.
        let cgroupDirectories: [String]
        let cgroupHasMembers: Bool
        var warnings: [String] = []

        var recordPath: String { bundle + "/" + PodShim.processRecordFile }
        var podRoot: String { ShimServer.runscRoot(config: config, namespace: flags.namespace, pod: pod) }
        /// Anything to kill or wait for, or a runsc call to make: the asynchronous path.
        var needsWaiting: Bool { !records.isEmpty || runscStateRoot != nil || (cgroupHasMembers && killsCgroupLeftovers) }
        /// A pod's sandbox cgroup: whatever still runs there is the pod's and is killed.
        var killsCgroupLeftovers: Bool { spec?.joinsSandbox == nil }

        init?(_ flags: ShimFlags) {
            guard let bundle = flags.bundle.isEmpty ? ProcessEnvironment.workingDirectory : flags.bundle else {
                Console.error("delete: cannot determine the bundle directory")
                return nil
            }
            self.flags = flags
            self.bundle = bundle
            let recordedConfig = FileDescriptor.readText(bundle + "/" + ShimCommand.bundleConfigFile)?.trimmingWhitespace
            do throws(ConfigError) {
                (config, _) = try ShimCommand.loadConfig(path: recordedConfig)
            } catch {
                Console.error("delete: \(error); using defaults")
                config = WardenConfig()
            }
            spec = try? OCISpec.load(bundle: bundle)
            pod = spec?.groupID(containerID: flags.id) ?? flags.id
            records = RecordedProcesses.decode(FileDescriptor.readText(bundle + "/" + PodShim.processRecordFile) ?? "")
            let podRoot = ShimServer.runscRoot(config: config, namespace: flags.namespace, pod: pod)
            runscStateRoot = [podRoot, config.root].first { RunscRoot($0).hasState(flags.id) }
            cgroupDirectories = spec?.cgroups?.directories(in: Cgroups.mountedHierarchies()) ?? []
            cgroupHasMembers = cgroupDirectories.contains { !(Cgroups.processes(in: $0) ?? []).isEmpty }
        }
    }

    /// The asynchronous path: kill what the dead shim left, `runsc delete`, the cgroup with
    /// its leftovers; then `finish`.
    static func run(_ plan: Plan) async -> Int32 {
        var plan = plan
        let (config, flags) = (plan.config, plan.flags)
        let clock = ContinuousClock()
        let deleteBy = clock.now + config.deadlines.deleteDeadline
        if !plan.records.isEmpty {
            // A third of the time: SIGKILL is not refused, only a process stuck in the kernel waits.
            let report = await RecordedProcesses.kill(plan.records, within: config.deadlines.deleteDeadline / 3)
            if !report.survivors.isEmpty { plan.warnings.append("still alive after SIGKILL: \(report.survivors)") }
        }
        do throws(Errno) {
            let supervisor = try Supervisor()
            defer { supervisor.shutdown() }
            let scratch = ShimServer.scratchDirectory(config: config, flags: flags) + "-delete"
            try Directories.make(scratch)
            defer { Directories.removeIfEmpty(scratch) }
            if let root = plan.runscStateRoot {
                let runsc = Runsc(
                    configuration: ShimServer.runscConfiguration(config, scratchDirectory: scratch, root: root),
                    supervisor: supervisor)
                do throws(RunscError) {
                    // Most of what is left, keeping time to remove the state by hand if runsc hangs.
                    try await runsc.delete(flags.id, force: true, timeout: max(.zero, deleteBy - clock.now) * 0.8)
                } catch {
                    let removed = runsc.removeState(flags.id)
                    if case .notFound = error {} else {
                        plan.warnings.append("runsc delete --force \(flags.id): \(error); removed \(removed.joined(separator: " "))")
                    }
                }
            }
            // What runsc left of the container's cgroup (it cannot remove it after the sandbox was
            // killed); for a pod's sandbox, with whatever still runs in it.
            if let cgroups = plan.spec?.cgroups {
                let report = await cgroups.release(
                    killingLeftovers: plan.killsCgroupLeftovers, within: max(.zero, deleteBy - clock.now), supervisor: supervisor)
                if report.killed > 0 || !report.left.isEmpty { plan.warnings.append("cgroup \(cgroups.path): \(report)") }
            }
        } catch {
            plan.warnings.append("\(error)")
        }
        return finish(plan, cgroupsReleased: true)
    }

    /// What needs no waiting: empty cgroup directories, runsc's stale locks, the pod's runsc
    /// root, the rootfs mount, the dead shim's socket, scratch and metrics files; then the
    /// DeleteResponse on stdout.
    static func finish(_ plan: Plan, cgroupsReleased: Bool = false) -> Int32 {
        var warnings = plan.warnings
        let (config, flags) = (plan.config, plan.flags)
        if !cgroupsReleased, let cgroups = plan.spec?.cgroups {
            for directory in plan.cgroupDirectories {
                do throws(Errno) { try Cgroups.remove(directory) } catch { warnings.append("cgroup \(cgroups.path): \(error)") }
            }
        }
        // containerd runs one `delete` per task of a dead shim, side by side; a subcontainer's
        // `runsc delete` loads the sandbox's state and, done after the sandbox's own delete,
        // re-creates its lock file. Once the sandbox's state is gone, that is stale; each
        // delete clears it at its end, so the last one to finish leaves nothing.
        let sandboxID = plan.spec?.joinsSandbox ?? flags.id
        for root in Set([plan.podRoot, config.root]) {
            let stale = RunscRoot(root).removeStaleSandboxLocks(sandboxID)
            if !stale.isEmpty { Console.error("removed stale runsc locks: \(stale.joined(separator: " "))") }
        }
        ShimServer.removePodRoot(config: config, namespace: flags.namespace, pod: plan.pod)
        Directories.removeIfEmpty(config.root + "/shim")  // only if no live shim uses it
        Rootfs.unmount(bundle: plan.bundle)
        Files.remove(plan.recordPath)
        // The dead shim's socket (a live one is left alone: other containers of the pod use it).
        if let address = FileDescriptor.readText(plan.bundle + "/address")?.trimmingWhitespace, address.hasPrefix("unix://") {
            let path = String(address.dropFirst("unix://".count))
            if let fd = try? UnixSocket.connect(path: path) {
                UnixSocket.close(fd)
            } else {
                UnixSocket.remove(path: path)
                // The dead shim's scratch directory (runsc call files, pid files, console sockets).
                Directories.removeTree(ShimServer.scratchDirectory(config: config, flags: flags))
                Directories.removeIfEmpty(config.root + "/shim")
                // Its metrics file: a dead shim's counts are stale, not a live pod's.
                if !config.metricsDirectory.isEmpty {
                    ShimMetrics(directory: config.metricsDirectory, namespace: flags.namespace, pod: plan.pod).close()
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
