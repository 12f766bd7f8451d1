import Config
import LinuxSys
import Runsc
import Seccomp
import Supervisor
import TTRPC

/// The long-running shim: serves the task API on the listener `start` handed over as fd 3,
/// until Shutdown arrives with no container left.
enum ShimServer {
    static let listenerDescriptor: Int32 = 3

    static func run(_ flags: ShimFlags, spawnHelper: SpawnHelper) async -> Int32 {
        Signals.ignoreBrokenPipe()
        OpenFileLimit.raiseToHard()
        let configPath = ProcessEnvironment.value(ShimCommand.configPathVariable)
        let config: WardenConfig
        let bootLog = ShimLog(fifo: "log", level: .info, fields: " id=\(flags.id)")
        do throws(ConfigError) {
            (config, _) = try ShimCommand.loadConfig(path: configPath)
        } catch {
            bootLog.error("\(error)")
            return 1
        }
        let log = ShimLog(fifo: "log", level: config.logLevel, fields: " id=\(flags.id)")
        do throws(Errno) {
            try ChildProcesses.becomeSubreaper()
            var supervisorOptions = Supervisor.Options()
            // SIGCHLD was blocked before any thread existed (ShimCommand): orphans are reaped
            // when they exit, with no sweep timer. If some thread does not block it, the sweep.
            supervisorOptions.childSignalDescriptor = try ChildSignals.descriptorIfBlockedEverywhere()
            if supervisorOptions.childSignalDescriptor == nil {
                log.warn("SIGCHLD is not blocked in every thread; orphans are looked for on a timer")
            }
            let supervisor = try Supervisor(options: supervisorOptions, spawnHelper: spawnHelper)
            let scratch = scratchDirectory(config: config, flags: flags)
            try Directories.make(scratch)
            let pod = ProcessEnvironment.value(ShimCommand.podVariable) ?? flags.id
            let podRoot = runscRoot(config: config, namespace: flags.namespace, pod: pod)
            try Directories.make(podRoot)
            var runscConfiguration = runscConfiguration(config, scratchDirectory: scratch, root: podRoot)
            let metrics = ShimMetrics(
                directory: config.metricsDirectory.isEmpty ? nil : config.metricsDirectory, namespace: flags.namespace, pod: pod)
            runscConfiguration.onCallEnded = { verb, took, outcome in
                let (suffix, counted): (String, ShimMetrics.RunscOutcome) =
                    switch outcome {
                    case .succeeded: ("", .ok)
                    case .failed: (" (failed)", .failed)
                    case .timedOut: (" (timed out)", .timedOut)
                    }
                log.debug("runsc \(verb) \(milliseconds(took))ms\(suffix)")
                metrics.runscCall(verb: verb, took: took, outcome: counted)
            }
            let runsc = Runsc(configuration: runscConfiguration, supervisor: supervisor)
            let ttrpcAddress = ProcessEnvironment.value("TTRPC_ADDRESS") ?? (flags.address + ".ttrpc")
            // One thread serves every ttrpc socket of the shim: the listener, containerd's
            // connections (one per task) and the events connection; and the sandbox's
            // control channel calls.
            let frameLoop = try FrameLoop.frames()
            let runtime: any SandboxRuntime =
                switch config.controlChannel {
                case .off: runsc
                case .auto:
                    ChannelRuntime(
                        cli: runsc, loop: frameLoop, callTimeout: config.deadlines.runscCallTimeout,
                        onPath: { sandboxID, path in
                            switch path {
                            case .control(let socket):
                                log.info("sandbox \(sandboxID): wait, kill, ps and stats over its control server \(socket)")
                            case .cli(let reason, let expected):
                                let line = "sandbox \(sandboxID): runsc's CLI for every call: \(reason)"
                                if expected { log.info(line) } else { log.warn(line) }
                            }
                            metrics.runtimePath(sandbox: sandboxID, path.name)
                        },
                        onCall: { call, took, outcome in
                            log.debug("control \(call) \(milliseconds(took))ms\(outcome == .ok ? "" : " (\(outcome.rawValue))")")
                            metrics.controlCall(call, took: took, outcome: outcome)
                        })
                }
            let events = EventPublisher(address: ttrpcAddress, namespace: flags.namespace, log: log, loop: frameLoop)
            let (shutdownRequests, shutdownContinuation) = AsyncStream<Void>.makeStream()
            let shim = PodShim(
                runtime: runtime, supervision: supervisor, stdioCopier: try StdioCopier(), events: events, log: log,
                namespace: flags.namespace, scratchDirectory: scratch, deadlines: config.deadlines,
                netnsRelease: config.netnsRelease, metrics: metrics, pauseRootfs: config.pauseRootfs,
                onEmptyShutdown: { shutdownContinuation.yield() })
            metrics.setSnapshot { await shim.metricsSnapshot() }
            var registry = ServiceRegistry()
            TaskService.register(shim, into: &registry)
            SandboxService.register(shim, into: &registry)
            var options = ServerOptions()
            options.log = { log.warn($0) }
            options.afterLargeMessage = { MallocTuning.trim() }
            options.onAnswered = { service, method, took, code in
                log.debug("rpc \(method) \(milliseconds(took))ms status \(code)")
                metrics.requestAnswered(service: service, method: method, code: code)
                // Without metrics writes, a started task is where a burst of work ends.
                if !metrics.writes, method == "Start" || method == "StartSandbox" { Self.settle() }
            }
            // The coalesced metrics write comes last after a burst of calls (200 ms after the
            // last change): the shim is about to idle.
            metrics.afterEachWrite { Self.settle() }
            #if WARDEN_TEST_HOOKS
            if ProcessEnvironment.value(SeccompProbe.variable) != nil { SeccompProbe.register(into: &registry, log: log) }
            #endif
            let server = TTRPCServer(registry: registry, options: options, loop: frameLoop)
            // Every thread is up; from here on the shim makes only the syscalls it serves with.
            do throws(ConfinementError) {
                try ShimSyscalls.confine(ConfinementMode(config.seccompMode))
            } catch {
                log.error("cannot confine the shim: \(error)")
                return 1
            }
            try server.serve(listener: listenerDescriptor)
            log.info(
                "serving (pid \(ProcessIdentity.pid), runsc \(config.runsc), root \(podRoot), seccomp \(config.seccompMode.rawValue), spawn helper pid \(spawnHelper.pid))"
            )
            await metrics.write()

            for await _ in shutdownRequests { break }
            // The Shutdown answer (and any other) reaches containerd before the socket goes
            // away; containerd waits for the connection to close before it runs `delete`.
            await server.waitUntilAnswered(within: .milliseconds(500))
            await events.close(within: config.deadlines.shutdownDeadline)
            server.shutdown()
            if let socketPath = ProcessEnvironment.value(ShimCommand.socketPathVariable) {
                UnixSocket.remove(path: socketPath)
            }
            // Panic logs of sandboxes no Delete reached (the shim is told to shut down anyway).
            for name in Directories.entries(scratch) where name.hasSuffix(".panic") { Files.remove("\(scratch)/\(name)") }
            Directories.removeIfEmpty(scratch)
            Directories.removeIfEmpty(config.root + "/shim")  // only once no other shim uses it
            removePodRoot(config: config, namespace: flags.namespace, pod: pod)
            spawnHelper.close()
            metrics.close()
            supervisor.shutdown()
            log.info("shut down")
            return 0
        } catch {
            log.error("cannot serve: \(error)")
            return 1
        }
    }

    /// How this shim invokes runsc, from warden.toml. `callTimeout` defaults to
    /// `runsc_call_timeout`; the `delete` command bounds its calls by `delete_deadline`.
    static func runscConfiguration(
        _ config: WardenConfig, scratchDirectory: String, root: String, callTimeout: Duration? = nil
    ) -> RunscConfiguration {
        RunscConfiguration(
            binary: config.runsc, root: root,
            flags: config.runscFlags.map { (key: $0.key, value: $0.value) },
            // A fixed PATH; fake-runsc's fault variables pass through for the tests.
            environment: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
                + ProcessEnvironment.all.filter { $0.hasPrefix("WARDEN_FAKE_RUNSC") },
            scratchDirectory: scratchDirectory, callTimeout: callTimeout ?? config.deadlines.runscCallTimeout,
            createTimeout: config.deadlines.createTimeout)
    }

    /// runsc's `--root` for one pod: `<root>/<namespace>/<pod>`. runsc resolves a container id
    /// by prefix among every container in its root (`c1` is ambiguous once `c10` exists, and
    /// a call could reach the wrong container): with a root per pod it sees only the pod's own.
    static func runscRoot(config: WardenConfig, namespace: String, pod: String) -> String {
        "\(config.root)/\(namespace)/\(pod)"
    }

    /// Removes the pod's runsc root and its namespace directory, each only if empty (runsc
    /// state left there is a leak the audits and `delete` should see, not something to hide).
    static func removePodRoot(config: WardenConfig, namespace: String, pod: String) {
        Directories.removeIfEmpty(runscRoot(config: config, namespace: namespace, pod: pod))
        Directories.removeIfEmpty("\(config.root)/\(namespace)")
    }

    /// Per-shim directory for runsc call output, pid files, exec specs and console sockets.
    static func scratchDirectory(config: WardenConfig, flags: ShimFlags) -> String {
        "\(config.root)/shim/\(flags.namespace)-\(flags.id)"
    }
}

extension ConfinementMode {
    init(_ mode: WardenConfig.SeccompMode) {
        switch mode {
        case .off: self = .off
        case .log: self = .log
        case .enforce: self = .enforce
        }
    }
}

extension ShimServer {
    /// Between bursts of work: the code that ran (config, confinement, create, start, the
    /// metrics text) need not stay mapped in every shim of the node: its pages stay in the
    /// page cache, shared, and a later call maps what it touches again (minor faults); free
    /// heap goes back to the kernel. docs/benchmarks.md, per-pod memory.
    static func settle() {
        MallocTuning.releaseCodePages()
        MallocTuning.trim()
    }
}
