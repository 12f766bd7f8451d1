// The second runtime behind the seam (RuntimeSeam.swift): runsc's CLI for every verb, except
// that wait, kill, ps and stats of a sandbox whose control server answered a probe call go
// to that server directly (SandboxControl): no `runsc wait` process per container, no runsc
// process per kill. The probe is per sandbox; a sandbox whose server is not found (runsc
// 2022 records none), refuses the probe or answers it wrongly, and one whose server later
// stops answering as urpc does (closed, garbage), uses the CLI from then on. A hung server
// is a wedged sandbox: each call keeps the CLI call's deadline, and a timeout is a timeout.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import Runsc
import SandboxControl
import Synchronization

final class ChannelRuntime: SandboxRuntime {
    /// Which way a sandbox's calls go, and why.
    enum Path: Sendable, Equatable {
        case control(socket: String)
        /// `expected`: the runtime has no channel to offer (runsc 2022), not one that failed.
        case cli(reason: String, expected: Bool = false)

        var name: String {
            if case .control = self { "control" } else { "cli" }
        }
    }

    private let cli: any SandboxRuntime
    private let stateDirectory: RunscRoot
    private let loop: EventLoop
    private let callTimeout: Duration
    /// Told once per sandbox when its path is decided, and again if it falls back.
    private let onPath: @Sendable (_ sandboxID: String, _ path: Path) -> Void
    /// Told of every control call when it ends (like the CLI's `onCallEnded`).
    private let onCall: @Sendable (_ call: String, _ took: Duration, _ outcome: ShimMetrics.RunscOutcome) -> Void
    private let paths = Mutex<[String: Task<Path, Never>]>([:])

    init(
        cli: any SandboxRuntime, loop: EventLoop, callTimeout: Duration,
        onPath: @escaping @Sendable (String, Path) -> Void = { _, _ in },
        onCall: @escaping @Sendable (String, Duration, ShimMetrics.RunscOutcome) -> Void = { _, _, _ in }
    ) {
        self.cli = cli
        self.stateDirectory = RunscRoot(cli.root)
        self.loop = loop
        self.callTimeout = callTimeout
        self.onPath = onPath
        self.onCall = onCall
    }

    var root: String { cli.root }

    // MARK: the probe

    /// The path of container `id`'s sandbox: decided once per sandbox by a probe call.
    func path(of id: String) async -> (sandboxID: String, path: Path)? {
        guard let recorded = stateDirectory.controlSocket(of: id) else { return nil }
        let sandboxID = recorded.sandboxID
        let task = paths.withLock { paths -> Task<Path, Never> in
            if let task = paths[sandboxID] { return task }
            let task = Task { [self] in
                let path = await probe(sandboxID, socket: recorded.path)
                onPath(sandboxID, path)
                return path
            }
            paths[sandboxID] = task
            return task
        }
        return (sandboxID, await task.value)
    }

    /// Decides the sandbox's path now (after its start), so that the log says it from the start.
    func sandboxStarted(_ sandboxID: String) async { _ = await path(of: sandboxID) }

    private func probe(_ sandboxID: String, socket: String?) async -> Path {
        guard let socket else {
            return .cli(reason: "runsc records no control socket for the sandbox (runsc 2022 serves an abstract one)", expected: true)
        }
        let control = SandboxControl(socketPath: socket, loop: loop)
        do throws(ControlError) {
            _ = try await timed("probe") { () throws(ControlError) in try await control.processes(sandboxID, timeout: callTimeout) }
            return .control(socket: socket)
        } catch {
            return .cli(reason: "its control server did not answer the probe as expected: \(error)")
        }
    }

    /// From now on the CLI, for a sandbox whose server answered a call not as urpc does.
    private func fallBack(_ sandboxID: String, after error: ControlError) {
        let path = Path.cli(reason: "its control server failed a call: \(error)")
        paths.withLock { $0[sandboxID] = Task { path } }
        onPath(sandboxID, path)
    }

    private func timed<T>(_ call: String, _ body: () async throws(ControlError) -> T) async throws(ControlError) -> T {
        let began = ContinuousClock.now
        do {
            let result = try await body()
            onCall(call, .now - began, .ok)
            return result
        } catch {
            onCall(call, .now - began, { if case .timedOut = error { .timedOut } else { .failed } }())
            throw error
        }
    }

    /// `body` over the channel when the sandbox is on it, else (or after the channel failed
    /// to answer as urpc does) `fallback` through the CLI, with what is left of `timeout`.
    private func route<T>(
        _ id: String, verb: String, timeout: Duration?,
        _ body: (SandboxControl, Duration?) async throws(ControlError) -> T,
        fallback: (Duration?) async throws(RunscError) -> T
    ) async throws(RunscError) -> T {
        let began = ContinuousClock.now
        // What is left of the call's bound: a probe still in flight (a server that hangs from
        // the start) is waited for within it, not on top of it.
        func left() -> Duration? { timeout.map { max(.milliseconds(1), $0 - (.now - began)) } }
        guard let (sandboxID, path) = await path(of: id), case .control(let socket) = path else {
            return try await fallback(left())
        }
        let control = SandboxControl(socketPath: socket, loop: loop)
        do throws(ControlError) {
            return try await timed(verb) { () throws(ControlError) in try await body(control, left()) }
        } catch {
            switch error {
            case .refused(_, let message): throw RunscError.classify(verb: verb, exitStatus: 1, output: message)
            case .timedOut(_, let after): throw .timedOut(verb: verb, after: timeout ?? after)
            case .cancelled: throw .cancelled(verb: verb)
            case .unreachable, .closed, .malformed:
                fallBack(sandboxID, after: error)
                if let timeout, ContinuousClock.now - began >= timeout { throw .timedOut(verb: verb, after: timeout) }
                return try await fallback(left())
            }
        }
    }

    // MARK: the verbs the channel serves

    /// `containerManager.Event`'s answer (runsc/boot/events.go EventOut).
    private struct EventOut: Decodable {
        struct Event: Decodable { var data: RunscStats }
        var event: Event
        var containerUsage: [String: UInt64]?
    }

    func wait(_ id: String, timeout: Duration?) async throws(RunscError) -> Int32 {
        try await route(id, verb: "wait", timeout: timeout) { (control, left) throws(ControlError) in
            try await control.wait(id, timeout: left)
        } fallback: { (left) throws(RunscError) in
            try await cli.wait(id, timeout: left)
        }
    }

    func kill(_ id: String, signal: Int32, all: Bool, pid: Int32?, timeout: Duration?) async throws(RunscError) {
        try await route(id, verb: "kill", timeout: timeout ?? callTimeout) { (control, left) throws(ControlError) in
            try await control.signal(id, signal: signal, pid: pid ?? 0, mode: all ? .allProcesses : .process, timeout: left)
        } fallback: { (left) throws(RunscError) in
            try await cli.kill(id, signal: signal, all: all, pid: pid, timeout: left)
        }
    }

    func ps(_ id: String) async throws(RunscError) -> [Int32] {
        try await route(id, verb: "ps", timeout: callTimeout) { (control, left) throws(ControlError) in
            try await control.processes(id, timeout: left)
        } fallback: { (_) throws(RunscError) in
            try await cli.ps(id)
        }
    }

    func stats(_ id: String) async throws(RunscError) -> RunscStats {
        try await route(id, verb: "events", timeout: callTimeout) { (control, left) throws(ControlError) in
            guard let out = try await control.call("containerManager.Event", id, as: EventOut.self, timeout: left) else {
                throw ControlError.malformed(method: "containerManager.Event", detail: "no event in the answer")
            }
            var stats = out.event.data
            // Without cgroups inside the sandbox the sentry reports each container's CPU time
            // beside the event instead (runsc's CLI then apportions the host cgroup's).
            if (stats.cpu?.usage?.total ?? 0) == 0, let usage = out.containerUsage?[id] { stats.cpu?.usage?.total = usage }
            return stats
        } fallback: { (_) throws(RunscError) in
            try await cli.stats(id)
        }
    }

    // MARK: the CLI's

    func create(
        _ id: String, bundle: String, pidFile: String, consoleSocket: String?, stdio: ContainerStdio?, panicLog: String?
    ) async throws(RunscError) {
        try await cli.create(id, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket, stdio: stdio, panicLog: panicLog)
    }
    func start(_ id: String, stdio: ContainerStdio?) async throws(RunscError) { try await cli.start(id, stdio: stdio) }
    func exec(
        _ id: String, processFile: String, pidFile: String, internalPidFile: String, consoleSocket: String?, stdio: ContainerStdio?
    ) async throws(RunscError) {
        try await cli.exec(
            id, processFile: processFile, pidFile: pidFile, internalPidFile: internalPidFile, consoleSocket: consoleSocket, stdio: stdio)
    }
    func delete(_ id: String, force: Bool, timeout: Duration?) async throws(RunscError) {
        try await cli.delete(id, force: force, timeout: timeout)
    }
    func pause(_ id: String) async throws(RunscError) { try await cli.pause(id) }
    func resume(_ id: String) async throws(RunscError) { try await cli.resume(id) }
    func update(_ id: String, resourcesJSON: [UInt8]) async throws(RunscError) { try await cli.update(id, resourcesJSON: resourcesJSON) }
    func subcommands() async throws(RunscError) -> Set<String> { try await cli.subcommands() }
    func version() async throws(RunscError) -> String { try await cli.version() }
    @discardableResult func removeState(_ id: String) -> [String] { cli.removeState(id) }
    func removeSandboxState(_ sandboxID: String) -> [String] {
        _ = paths.withLock { $0.removeValue(forKey: sandboxID) }
        return cli.removeSandboxState(sandboxID)
    }
}
