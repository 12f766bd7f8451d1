// The pod actor's two collaborators, named for their role: what the sandbox runtime can do
// (runsc's CLI, `Runsc`, today) and what process supervision can do (`Supervisor`: pidfds,
// reaping, the spawn helper). PodShim, its termination ladder, stdio and cgroup cleanup talk
// to them only through these protocols, so that the pod actor's state machine runs in unit
// tests against in-memory implementations (ShimCoreTests' PodShimTests), and a second runtime
// (runsc's control channel) can go behind the same seam.

import LinuxSys
import Runsc
import Supervisor
import SwiftProtobuf

/// What the sandbox runtime can do, verb by verb, each bounded as the implementation says
/// (`Runsc`: `runsc_call_timeout`, or `create_timeout` for create, start and exec).
protocol SandboxRuntime: Sendable {
    /// Where the runtime keeps its state (for logs, status and the test hooks).
    var root: String { get }
    /// `panicLog`: the file the sandbox writes its crash output to (a sandbox's create only).
    func create(
        _ id: String, bundle: String, pidFile: String, consoleSocket: String?, stdio: ContainerStdio?, panicLog: String?
    ) async throws(RunscError)
    func start(_ id: String, stdio: ContainerStdio?) async throws(RunscError)
    func exec(
        _ id: String, processFile: String, pidFile: String, internalPidFile: String, consoleSocket: String?, stdio: ContainerStdio?
    ) async throws(RunscError)
    func kill(_ id: String, signal: Int32, all: Bool, pid: Int32?, timeout: Duration?) async throws(RunscError)
    func delete(_ id: String, force: Bool, timeout: Duration?) async throws(RunscError)
    /// The container's exit status, once it exits.
    func wait(_ id: String, timeout: Duration?) async throws(RunscError) -> Int32
    func stats(_ id: String) async throws(RunscError) -> RunscStats
    func pause(_ id: String) async throws(RunscError)
    func resume(_ id: String) async throws(RunscError)
    func ps(_ id: String) async throws(RunscError) -> [Int32]
    /// The container's new resources (OCI `LinuxResources` JSON), for a runtime that has it.
    func update(_ id: String, resourcesJSON: [UInt8]) async throws(RunscError)
    /// The subcommands the runtime has (`runsc help`): whether `update` exists.
    func subcommands() async throws(RunscError) -> Set<String>
    /// What the runtime says its version is, for messages.
    func version() async throws(RunscError) -> String
    /// Removes what the runtime keeps for a container / a whole sandbox; what was removed.
    @discardableResult func removeState(_ id: String) -> [String]
    func removeSandboxState(_ sandboxID: String) -> [String]
    /// The sandbox's root container started: a runtime that decides per sandbox how to reach
    /// it (ChannelRuntime's probe) decides now.
    func sandboxStarted(_ sandboxID: String) async
}

extension SandboxRuntime {
    func create(_ id: String, bundle: String, pidFile: String, consoleSocket: String? = nil) async throws(RunscError) {
        try await create(id, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket, stdio: nil, panicLog: nil)
    }
    func start(_ id: String) async throws(RunscError) { try await start(id, stdio: nil) }
    func kill(_ id: String, signal: Int32, all: Bool = false, pid: Int32? = nil) async throws(RunscError) {
        try await kill(id, signal: signal, all: all, pid: pid, timeout: nil)
    }
    func kill(_ id: String, signal: Int32, all: Bool = false, timeout: Duration?) async throws(RunscError) {
        try await kill(id, signal: signal, all: all, pid: nil, timeout: timeout)
    }
    func delete(_ id: String, force: Bool = false) async throws(RunscError) { try await delete(id, force: force, timeout: nil) }
    func wait(_ id: String) async throws(RunscError) -> Int32 { try await wait(id, timeout: nil) }
    func sandboxStarted(_ sandboxID: String) async {}
}

extension Runsc: SandboxRuntime {
    var root: String { configuration.root }
}

/// What process supervision can do: hold processes as handles (pidfds in `Supervisor`),
/// signal them, learn of their exits, spawn tracked children.
protocol ProcessSupervision: Sendable {
    /// Starts tracking an existing process by pid (runsc's sandbox from its pid file).
    func adopt(pid: Int32) throws(Errno) -> Child
    /// Every process re-parented to the shim that nobody tracks yet (what runsc daemonized).
    func adoptUntrackedChildren() -> [Child]
    /// Every living descendant of `pid`, tracked (so none escapes by being re-parented).
    func adoptDescendants(of pid: Int32) -> [Child]
    func wait(_ child: Child) async -> ChildOutcome
    /// Its outcome if it has ended, else nil.
    func outcome(_ child: Child) -> ChildOutcome?
    /// Whether the signal was sent (false: it had already exited).
    func signal(_ child: Child, _ signal: Int32) throws(Errno) -> Bool
    func release(_ child: Child)
    func shutdown()
    func spawn(path: String, arguments: [String], environment: [String], descriptors: [Int32], newSession: Bool) throws(Errno) -> Child
}

/// Where the pod's task events go (containerd, through `EventPublisher`), in the order given.
protocol TaskEventSink: Sendable {
    func publish(_ topic: String, _ message: some SwiftProtobuf.Message)
}

extension EventPublisher: TaskEventSink {}

extension Supervisor: ProcessSupervision {
    func adoptDescendants(of pid: Int32) -> [Child] {
        ProcessTable.descendants(of: pid).compactMap { try? adopt(pid: $0) }
    }
}
