import Foundation
import LinuxSys
import Runsc
import Supervisor
import Synchronization
import SwiftProtobuf

@testable import ShimCore

/// Process supervision with no processes: "pids" above the kernel's pid_max (4,194,304), so
/// nothing a test does can ever reach a real process, that exit when told to (`exit`) or when
/// sent SIGKILL or SIGTERM. A process can have a parent: the shim (an untracked child, what
/// runsc daemonized or left re-parented) or another process (a descendant). A dead parent's
/// children are never re-parented here: the kernel does it only once the parent is reaped,
/// so a sweep right after a kill must find them as descendants or not at all.
final class InMemorySupervision: ProcessSupervision, Sendable {
    private struct Entry {
        var outcome: ChildOutcome?
        var waiters: [CheckedContinuation<ChildOutcome, Never>] = []
        /// SIGTERM is ignored (SIGKILL never is).
        var ignoresTerm = false
        var parent: Parent?
    }

    enum Parent: Equatable {
        case shim
        case process(Int32)
    }

    private struct State {
        var entries: [Int32: Entry] = [:]
        var nextPid: Int32 = 5_000_000
        var nextID: UInt64 = 1
        var ids: [Int32: UInt64] = [:]
        var signals: [(pid: Int32, signal: Int32)] = []
    }

    private let state = Mutex(State())

    /// A new living "process".
    func makeProcess(ignoresTerm: Bool = false, parent: Parent? = nil) -> Int32 {
        state.withLock { state in
            let pid = state.nextPid
            state.nextPid += 1
            state.entries[pid] = Entry(ignoresTerm: ignoresTerm, parent: parent)
            return pid
        }
    }

    /// The process ends with `status`: waiters released, later waits answered at once.
    func exit(_ pid: Int32, _ status: ExitStatus) {
        let waiters = state.withLock { state -> [CheckedContinuation<ChildOutcome, Never>] in
            guard var entry = state.entries[pid], entry.outcome == nil else { return [] }
            entry.outcome = .exited(status)
            let waiters = entry.waiters
            entry.waiters = []
            state.entries[pid] = entry
            return waiters
        }
        waiters.forEach { $0.resume(returning: .exited(status)) }
    }

    func isAlive(_ pid: Int32) -> Bool { state.withLock { $0.entries[pid].map { $0.outcome == nil } ?? false } }
    var signalsSent: [(pid: Int32, signal: Int32)] { state.withLock { $0.signals } }

    func adopt(pid: Int32) throws(Errno) -> Child {
        try state.withLock { state throws(Errno) -> Child in
            guard state.entries[pid] != nil else { throw Errno(code: Errno.ESRCH, call: "adopt(\(pid))") }
            if let id = state.ids[pid] { return Child(id: id, pid: pid) }
            let id = state.nextID
            state.nextID += 1
            state.ids[pid] = id
            return Child(id: id, pid: pid)
        }
    }

    func adoptUntrackedChildren() -> [Child] {
        let untracked = state.withLock { state in
            state.entries.filter { $0.value.parent == .shim && $0.value.outcome == nil && state.ids[$0.key] == nil }.keys.sorted()
        }
        return untracked.compactMap { try? adopt(pid: $0) }
    }

    func adoptDescendants(of pid: Int32) -> [Child] {
        let descendants = state.withLock { state -> [Int32] in
            func descends(_ candidate: Int32) -> Bool {
                var next = state.entries[candidate]?.parent
                while case .process(let parent) = next {
                    if parent == pid { return true }
                    next = state.entries[parent]?.parent
                }
                return false
            }
            return state.entries.filter { $0.value.outcome == nil && descends($0.key) }.keys.sorted()
        }
        return descendants.compactMap { try? adopt(pid: $0) }
    }

    func wait(_ child: Child) async -> ChildOutcome {
        await withCheckedContinuation { continuation in
            let outcome = state.withLock { state -> ChildOutcome? in
                guard var entry = state.entries[child.pid] else { return .exitedWithoutStatus }
                if let outcome = entry.outcome { return outcome }
                entry.waiters.append(continuation)
                state.entries[child.pid] = entry
                return nil
            }
            if let outcome { continuation.resume(returning: outcome) }
        }
    }

    func outcome(_ child: Child) -> ChildOutcome? { state.withLock { $0.entries[child.pid]?.outcome } }

    func signal(_ child: Child, _ signal: Int32) throws(Errno) -> Bool {
        let (alive, ignores) = state.withLock { state -> (Bool, Bool) in
            state.signals.append((child.pid, signal))
            let entry = state.entries[child.pid]
            return (entry != nil && entry?.outcome == nil, entry?.ignoresTerm ?? false)
        }
        guard alive else { return false }
        if signal == 9 || (signal == 15 && !ignores) { exit(child.pid, .signaled(signal)) }
        return true
    }

    func release(_ child: Child) {}

    func shutdown() {
        let waiters = state.withLock { state -> [CheckedContinuation<ChildOutcome, Never>] in
            let all = state.entries.values.flatMap(\.waiters)
            for pid in state.entries.keys { state.entries[pid]?.waiters = [] }
            return all
        }
        waiters.forEach { $0.resume(returning: .abandoned) }
    }

    func spawn(path: String, arguments: [String], environment: [String], descriptors: [Int32], newSession: Bool) throws(Errno) -> Child {
        throw Errno(code: 38 /* ENOSYS */, call: "spawn(\(path)) in the in-memory supervision")
    }
}

/// runsc as a model: containers of sandboxes, their processes in `InMemorySupervision`. A
/// root container's init is the sandbox process (its exit is the sandbox's); a subcontainer's
/// exit is seen through `wait`; an exec is a process of its own. Any verb can be made to hang
/// (`hang`): it then fails as the CLI's deadline would, `.timedOut` after its bound.
final class InMemoryRuntime: SandboxRuntime, Sendable {
    struct Container {
        var sandboxID: String
        var sandboxPid: Int32
        var exitCode: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }

    private struct State {
        var containers: [String: Container] = [:]
        var hung: Set<String> = []
        var calls: [String] = []
        /// Verbs that fail outright (a runsc that answers with an error).
        var failing: Set<String> = []
        /// sandbox id → the panic log its create named.
        var panicLogs: [String: String] = [:]
    }

    let root: String
    let supervision: InMemorySupervision
    /// The bound of a hung call with no timeout of its own (`runsc_call_timeout`, `create_timeout`).
    let callTimeout: Duration
    private let state = Mutex(State())

    init(root: String, supervision: InMemorySupervision, callTimeout: Duration = .milliseconds(300)) {
        self.root = root
        self.supervision = supervision
        self.callTimeout = callTimeout
    }

    func hang(_ verbs: String...) { state.withLock { $0.hung.formUnion(verbs) } }
    func fail(_ verbs: String...) { state.withLock { $0.failing.formUnion(verbs) } }
    func heal() { state.withLock { $0.hung = []; $0.failing = [] } }
    var calls: [String] { state.withLock { $0.calls } }
    func sandboxPid(_ sandboxID: String) -> Int32? { state.withLock { $0.containers[sandboxID]?.sandboxPid } }

    func panicLog(_ sandboxID: String) -> String? { state.withLock { $0.panicLogs[sandboxID] } }

    /// The sandbox crashes as runsc's does: Go's crash output in its panic log (if any),
    /// then runsc-sandbox exits with `status`.
    func sandboxCrashes(_ sandboxID: String, panic text: String?, status: ExitStatus) {
        if let text, let path = panicLog(sandboxID) { try? Files.write(path, text) }
        if let pid = sandboxPid(sandboxID) { supervision.exit(pid, status) }
    }

    /// The container's process ends by itself (a subcontainer's init exiting with `code`).
    func containerExits(_ id: String, code: Int32) {
        let waiters = state.withLock { state -> [CheckedContinuation<Int32, Never>] in
            guard var container = state.containers[id], container.exitCode == nil else { return [] }
            container.exitCode = code
            let waiters = container.waiters
            container.waiters = []
            state.containers[id] = container
            return waiters
        }
        waiters.forEach { $0.resume(returning: code) }
    }

    /// Records the call; hangs (then times out) or fails as told.
    private func enter(_ verb: String, _ id: String, timeout: Duration?) async throws(RunscError) {
        let (hung, failing) = state.withLock { state in
            state.calls.append("\(verb) \(id)")
            return (state.hung.contains(verb), state.failing.contains(verb))
        }
        if hung {
            let bound = timeout ?? callTimeout
            try? await Task.sleep(for: bound)
            throw .timedOut(verb: verb, after: bound)
        }
        if failing { throw .commandFailed(verb: verb, exitStatus: 1, detail: "in-memory runsc: \(verb) fails") }
    }

    private func write(_ text: String, to path: String) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }

    private static func sandboxID(bundle: String, id: String) -> String {
        guard let data = FileManager.default.contents(atPath: bundle + "/config.json"),
            let spec = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let annotations = spec["annotations"] as? [String: String],
            let sandbox = annotations["io.kubernetes.cri.sandbox-id"]
        else { return id }
        return sandbox
    }

    func create(
        _ id: String, bundle: String, pidFile: String, consoleSocket: String?, stdio: ContainerStdio?, panicLog: String?
    ) async throws(RunscError) {
        try await enter("create", id, timeout: callTimeout)
        if let panicLog { state.withLock { $0.panicLogs[id] = panicLog } }
        let sandboxID = Self.sandboxID(bundle: bundle, id: id)
        let pid: Int32? = state.withLock { $0.containers[sandboxID]?.sandboxPid }
        let sandboxPid = sandboxID == id ? supervision.makeProcess() : (pid ?? 0)
        state.withLock { $0.containers[id] = Container(sandboxID: sandboxID, sandboxPid: sandboxPid) }
        write("\(sandboxPid)", to: pidFile)
    }

    func start(_ id: String, stdio: ContainerStdio?) async throws(RunscError) {
        try await enter("start", id, timeout: callTimeout)
    }

    func exec(
        _ id: String, processFile: String, pidFile: String, internalPidFile: String, consoleSocket: String?, stdio: ContainerStdio?
    ) async throws(RunscError) {
        try await enter("exec", id, timeout: callTimeout)
        write("\(supervision.makeProcess())", to: pidFile)
        write("7", to: internalPidFile)
    }

    func kill(_ id: String, signal: Int32, all: Bool, pid: Int32?, timeout: Duration?) async throws(RunscError) {
        try await enter("kill", id, timeout: timeout)
        guard let container = state.withLock({ $0.containers[id] }) else { throw .notFound(verb: "kill", detail: "container \"\(id)\" does not exist") }
        guard signal == 9 || signal == 15, pid == nil else { return }
        if container.sandboxID == id {
            // The root's init is the sandbox: its death is the sandbox's.
            if let child = try? supervision.adopt(pid: container.sandboxPid) { _ = try? supervision.signal(child, signal) }
        } else {
            containerExits(id, code: 128 + signal)
        }
    }

    func delete(_ id: String, force: Bool, timeout: Duration?) async throws(RunscError) {
        try await enter("delete", id, timeout: timeout)
        let container = state.withLock { $0.containers.removeValue(forKey: id) }
        guard let container else { throw .notFound(verb: "delete", detail: "container \"\(id)\" does not exist") }
        if force, container.sandboxID == id, let child = try? supervision.adopt(pid: container.sandboxPid) {
            _ = try? supervision.signal(child, 9)
        }
    }

    func wait(_ id: String, timeout: Duration?) async throws(RunscError) -> Int32 {
        try await enter("wait", id, timeout: timeout)
        return await withCheckedContinuation { continuation in
            let code = state.withLock { state -> Int32? in
                guard var container = state.containers[id] else { return -1 }
                if let code = container.exitCode { return code }
                container.waiters.append(continuation)
                state.containers[id] = container
                return nil
            }
            if let code { continuation.resume(returning: code) }
        }
    }

    func stats(_ id: String) async throws(RunscError) -> RunscStats {
        try await enter("events", id, timeout: nil)
        throw .commandFailed(verb: "events", exitStatus: 1, detail: "in-memory runsc keeps no stats")
    }

    func pause(_ id: String) async throws(RunscError) { try await enter("pause", id, timeout: nil) }
    func resume(_ id: String) async throws(RunscError) { try await enter("resume", id, timeout: nil) }
    func ps(_ id: String) async throws(RunscError) -> [Int32] {
        try await enter("ps", id, timeout: nil)
        return [1]
    }

    /// What `update` was given, by container; and whether this runtime lists `update` at all.
    private let updates = Mutex<[String: [UInt8]]>([:])
    let hasUpdate = Mutex(true)
    var updated: [String: [UInt8]] { updates.withLock { $0 } }

    func update(_ id: String, resourcesJSON: [UInt8]) async throws(RunscError) {
        try await enter("update", id, timeout: nil)
        guard state.withLock({ $0.containers[id] }) != nil else {
            throw .notFound(verb: "update", detail: "container \"\(id)\" does not exist")
        }
        updates.withLock { $0[id] = resourcesJSON }
    }

    func subcommands() async throws(RunscError) -> Set<String> {
        try await enter("help", "", timeout: nil)
        return hasUpdate.withLock { $0 } ? ["create", "kill", "update"] : ["create", "kill"]
    }

    func version() async throws(RunscError) -> String {
        try await enter("version", "", timeout: nil)
        return "runsc version in-memory-2024"
    }

    func removeState(_ id: String) -> [String] {
        state.withLock { $0.containers.removeValue(forKey: id) }.map { _ in ["\(id).state"] } ?? []
    }

    func removeSandboxState(_ sandboxID: String) -> [String] {
        state.withLock { state in
            let ids = state.containers.filter { $0.value.sandboxID == sandboxID }.map(\.key)
            ids.forEach { state.containers.removeValue(forKey: $0) }
            return ids.map { "\($0).state" }
        }
    }
}

/// The events the pod published, in order.
final class RecordedEvents: TaskEventSink, Sendable {
    private let recorded = Mutex<[String]>([])

    func publish(_ topic: String, _ message: some SwiftProtobuf.Message) { recorded.withLock { $0.append(topic) } }

    var topics: [String] { recorded.withLock { $0 } }
}
