import Config
import ContainerdAPI
import LinuxSys
import ShimLayout
import SwiftProtobuf

/// Version of this build, printed by `-v`.
public let wardenVersion = "0.2.0"

/// Entry point of the shim binary: `start`, `delete`, or (no action) the long-running server
/// that `start` spawns with the listening socket as fd 3.
public enum ShimCommand {
    /// Passed from `start` to the server it spawns (ShimLayout: the node tools read them too).
    static let configPathVariable = ShimEnvironment.configPath
    static let socketPathVariable = ShimEnvironment.socketPath
    static let podVariable = ShimEnvironment.pod
    static let bundleConfigFile = ShimFiles.bundleConfig

    /// The binary's main. `start` and `delete` are on the critical path of every container
    /// start and removal (containerd waits for them to exit): `start` runs on the main thread
    /// without starting Swift's concurrency runtime, and both end with `_exit` right after
    /// their output. The server runs as a task; the main thread parks.
    public static func main(arguments: [String]) -> Never {
        let flags: ShimFlags
        do throws(ShimFlags.UsageError) {
            flags = try ShimFlags.parse(arguments)
        } catch {
            Console.error("containerd-shim-warden-v2: \(error)")
            exitImmediately(2)
        }
        if flags.version {
            Console.output("containerd-shim-warden-v2:\n  Version: \(wardenVersion)\n  Runtime: io.containerd.warden.v2")
            exitImmediately(0)
        }
        if flags.info {
            exitImmediately(ShimInfo.run())
        }
        switch flags.action {
        case "start":
            exitImmediately(ShimStart.run(flags))
        case "delete":
            guard let plan = ShimDelete.Plan(flags) else { exitImmediately(1) }
            // After a normal teardown: nothing to wait for, so no concurrency runtime either.
            if !plan.needsWaiting { exitImmediately(ShimDelete.finish(plan)) }
            // .medium: the default QoS, as every task the shim starts later. A task inheriting
            // the main thread's (user-initiated) would get a second set of pool threads.
            Task(priority: .medium) { exitImmediately(await ShimDelete.run(plan)) }
            parkForever()
        case nil:
            // Before any thread exists, so that every thread inherits it: SIGCHLD reaches the
            // supervisor through a signalfd and no other thread (the spawn helper resets
            // every mask before it execs anything).
            do throws(Errno) {
                try ChildSignals.block()
            } catch {
                Console.error("containerd-shim-warden-v2: \(error)")
            }
            // Forked first, while this is the only thread and the heap is small: the helper
            // keeps a copy-on-write image of the shim as it is now (SpawnHelper).
            let spawnHelper: SpawnHelper
            do throws(Errno) {
                spawnHelper = try SpawnHelper.start()
            } catch {
                Console.error("containerd-shim-warden-v2: \(error)")
                exitImmediately(1)
            }
            // One malloc arena, set while this is the only thread: a thread that allocates
            // before the limit is in force gets an arena of its own (one was 288 kB resident).
            MallocTuning.limitArenas(1)
            // Its own executor before its first task: an idle shim then never wakes up
            // (libdispatch's pool ticks once a second; design: docs/architecture.md).
            // One base worker, not one per core: a shim serves one pod and mostly waits, and
            // each worker's stack and TLS are resident in every shim of the node (a 64-core
            // node would have paid 64). A worker is added whenever every worker has been
            // blocked 50 ms (executor.c), so a blocking call never stalls the pod for longer.
            do throws(Errno) {
                try GlobalExecutor.install(base: 1, max: 64)
            } catch {
                Console.error("containerd-shim-warden-v2: \(error); running on libdispatch's pool")
            }
            // A normal exit: the server has shut everything down by then.
            Task(priority: .medium) { exit(await ShimServer.run(flags, spawnHelper: spawnHelper)) }
            parkForever()
        case let action?:
            Console.error("containerd-shim-warden-v2: unknown action \"\(action)\" (expected start or delete)")
            exitImmediately(2)
        }
    }

    /// The config the shim uses: the runtime options' ConfigPath when given, else
    /// /etc/containerd/warden.toml when present, else the built-in defaults.
    static func loadConfig(path: String?) throws(ConfigError) -> (WardenConfig, String) {
        if let path, !path.isEmpty {
            return (try WardenConfig.load(path: path, read: { FileDescriptor.readAll($0, limit: 1 << 20) }), path)
        }
        if FileDescriptor.exists(WardenConfig.defaultPath) {
            return (
                try WardenConfig.load(path: WardenConfig.defaultPath, read: { FileDescriptor.readAll($0, limit: 1 << 20) }),
                WardenConfig.defaultPath
            )
        }
        return (WardenConfig(), "")
    }
}
