import LinuxSys
import Synchronization

/// A process the supervisor tracks. `pid` is informational (logs, runsc pid files); every
/// signal and wait goes through the supervisor, which holds the pidfd.
public struct Child: Hashable, Sendable, CustomStringConvertible {
    public let id: UInt64
    public let pid: Int32
    public var description: String { "pid \(pid)" }

    /// A handle as a supervisor registers it (another implementation of the shim's
    /// supervision, e.g. an in-memory one for the pod actor's unit tests, makes its own).
    public init(id: UInt64, pid: Int32) {
        self.id = id
        self.pid = pid
    }
}

/// How a tracked process ended, as far as the supervisor could tell.
public enum ChildOutcome: Equatable, Sendable {
    /// Reaped through its pidfd: the real status.
    case exited(ExitStatus)
    /// Seen to exit, but it was not this process's child, so its status was not ours to reap.
    case exitedWithoutStatus
    /// The supervisor shut down before the process exited.
    case abandoned
}

/// The shim's only owner of `wait` (design.md §3, Supervisor).
///
/// Every process the shim cares about is held as a pidfd: spawned children from the moment
/// they exist, and processes adopted by pid (the runsc sandbox and gofer that `runsc create`
/// daemonizes). One thread polls the pidfds (POLLIN fires at exit, before reaping) and reaps
/// with `waitid(P_PIDFD)`. Orphans re-parented to the shim as subreaper are found by
/// peeking (`WNOWAIT`) and reaped by their exact pid only when no pidfd owner claims them.
/// Nothing ever calls `wait(-1)`.
public final class Supervisor: Sendable {
    public struct Options: Sendable {
        /// Reap exited children that no one tracks (orphans re-parented to a subreaper).
        /// Off only where another owner reaps children too (e.g. a test process using
        /// Foundation.Process).
        public var reapsUnknownChildren = true
        /// How soon unknown children are looked for after something happened (a spawn, an
        /// adoption, an exit, an orphan reaped). Orphans appear only then (runsc create, exec
        /// and kill daemonize and leave processes), so each quiet sweep doubles the wait, up
        /// to `idleSweepIntervalMilliseconds`: an idle pod's shim is not woken twice a second.
        public var sweepIntervalMilliseconds: Int32 = 500
        public var idleSweepIntervalMilliseconds: Int32 = 8_000
        /// A signalfd for SIGCHLD (ChildSignals), blocked in every thread: then unknown
        /// children are looked for when a child exits, and never on a timer (an idle shim
        /// does not wake up). Without it, the sweep above.
        public var childSignalDescriptor: Int32?
        /// Told of each unknown child reaped.
        public var onUnknownReaped: @Sendable (Int32, ExitStatus) -> Void = { _, _ in }

        public init() {}
    }

    private struct Entry {
        let pid: Int32
        var pidfd: Int32?
        /// Its registration in the loop (removed when it is collected).
        var loopTag: UInt64?
        var outcome: ChildOutcome?
        var waiters: [CheckedContinuation<ChildOutcome, Never>] = []
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var idOfPid: [Int32: UInt64] = [:]
        var nextID: UInt64 = 0
        var stopped = false
        /// Unknown children reaped lately, so that adopting one that already died still
        /// yields its status (a sandbox can exit before its pid file is read).
        var recentlyReaped: [(pid: Int32, status: ExitStatus)] = []
    }

    private let options: Options
    /// Set when the process may not exec itself (its seccomp filter forbids execve).
    private let spawnHelper: SpawnHelper?
    /// pidfds and the SIGCHLD signalfd; after every turn, the sweep of unknown children.
    private let loop: EventLoop
    private let hooks: LoopHooks
    private let state = Mutex(State())
    /// Held from posix_spawn/pidfd_open to registration, and by the unknown-child sweep, so
    /// the sweep can never reap a child in the instant before it is tracked.
    private let registration = Mutex(())

    /// With a `spawnHelper`, every spawn goes through it; the helper itself is tracked, so
    /// it is never taken for a pod's process by `adoptUntrackedChildren`.
    public init(options: Options = Options(), spawnHelper: SpawnHelper? = nil) throws(Errno) {
        self.options = options
        self.spawnHelper = spawnHelper
        let hooks = LoopHooks(interval: options.sweepIntervalMilliseconds)
        let signalled = options.childSignalDescriptor
        // Without the signalfd, exited children are looked for on a timer that backs off
        // while nothing happens; with it, only when something happened.
        loop = try EventLoop(
            name: "supervisor",
            turns: EventLoop.Turns(
                timeoutMilliseconds: { signalled == nil ? hooks.interval.withLock { $0 } : -1 },
                afterEach: { anyReady in hooks.owner.withLock { $0 }?.afterTurn(anyReady: anyReady) }))
        self.hooks = hooks
        hooks.owner.withLock { $0 = self }
        if let signalled { _ = try loop.register(signalled, ChildSignalHandler(fd: signalled), makeNonBlocking: false) }
        try loop.start()
        if let spawnHelper { _ = try adopt(pid: spawnHelper.pid) }
    }

    /// Spawns a tracked child.
    public func spawn(
        path: String, arguments: [String], environment: [String], stdin: Int32, stdout: Int32, stderr: Int32,
        newSession: Bool = false
    ) throws(Errno) -> Child {
        try spawn(
            path: path, arguments: arguments, environment: environment, descriptors: [stdin, stdout, stderr],
            newSession: newSession)
    }

    /// Spawns a tracked child whose fd i is `descriptors[i]` (stdio, then e.g. a listener as fd 3).
    public func spawn(
        path: String, arguments: [String], environment: [String], descriptors: [Int32], newSession: Bool = false
    ) throws(Errno) -> Child {
        try registration.withLock { _ throws(Errno) -> Child in
            let pid =
                if let spawnHelper {
                    try spawnHelper.spawn(
                        path: path, arguments: arguments, environment: environment, descriptors: descriptors,
                        newSession: newSession)
                } else {
                    try Spawn.spawn(
                        path: path, arguments: arguments, environment: environment, descriptors: descriptors,
                        newSession: newSession)
                }
            let pidfd: Int32
            do throws(Errno) {
                pidfd = try PidFD.open(pid)
            } catch {
                // Cannot happen for a fresh unreaped child; do not leave it running untracked.
                ChildProcesses.signalUnreaped(pid, 9)
                _ = ChildProcesses.reap(pid)
                throw error
            }
            return try register(pid: pid, pidfd: pidfd)
        }
    }

    /// Starts tracking an existing process by pid (e.g. from runsc's `--pid-file`). If it was
    /// an orphan the sweep already reaped, the child is returned already exited.
    public func adopt(pid: Int32) throws(Errno) -> Child {
        try registration.withLock { _ throws(Errno) -> Child in
            if let existing = state.withLock({ $0.idOfPid[pid] }) {
                return Child(id: existing, pid: pid)
            }
            do throws(Errno) {
                return try register(pid: pid, pidfd: try PidFD.open(pid))
            } catch {
                let reaped = state.withLock { state in state.recentlyReaped.last { $0.pid == pid }?.status }
                guard let reaped else { throw error }
                return state.withLock { state in
                    state.nextID += 1
                    state.entries[state.nextID] = Entry(pid: pid, pidfd: nil, outcome: .exited(reaped))
                    return Child(id: state.nextID, pid: pid)
                }
            }
        }
    }

    /// Adopts every live child of this process that is not tracked yet: after `runsc create`,
    /// the runsc-sandbox and runsc-gofer it daemonized, re-parented here as subreaper. Runsc
    /// calls in flight are tracked already, so what is left belongs to the pod.
    public func adoptUntrackedChildren() -> [Child] {
        registration.withLock { _ in
            ProcessTable.children(of: ProcessIdentity.pid).compactMap { pid -> Child? in
                guard state.withLock({ $0.idOfPid[pid] }) == nil, !ProcessTable.isGoneOrZombie(pid),
                    let pidfd = try? PidFD.open(pid)
                else { return nil }
                return try? register(pid: pid, pidfd: pidfd)
            }
        }
    }

    private func register(pid: Int32, pidfd: Int32) throws(Errno) -> Child {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            state.entries[state.nextID] = Entry(pid: pid, pidfd: pidfd)
            state.idOfPid[pid] = state.nextID
            return state.nextID
        }
        do throws(Errno) {
            let tag = try loop.register(pidfd, PidfdHandler(id: id, supervisor: self), makeNonBlocking: false)
            state.withLock { $0.entries[id]?.loopTag = tag }
            loop.wake()  // a new process: orphans may follow, sweep soon again
        } catch {
            state.withLock { state in
                state.entries[id] = nil
                state.idOfPid[pid] = nil
            }
            PidFD.close(pidfd)
            throw error
        }
        return Child(id: id, pid: pid)
    }

    /// Waits for the child to exit. Returns at once if it already has.
    public func wait(_ child: Child) async -> ChildOutcome {
        await withCheckedContinuation { continuation in
            let outcome = state.withLock { state -> ChildOutcome? in
                guard var entry = state.entries[child.id] else { return .abandoned }
                if let outcome = entry.outcome { return outcome }
                if state.stopped { return .abandoned }
                entry.waiters.append(continuation)
                state.entries[child.id] = entry
                return nil
            }
            if let outcome { continuation.resume(returning: outcome) }
        }
    }

    /// The outcome if the child has exited, without waiting.
    public func outcome(_ child: Child) -> ChildOutcome? {
        state.withLock { $0.entries[child.id]?.outcome }
    }

    /// Signals the child through its pidfd. Returns false, sending nothing, once the child
    /// has exited: a reaped pid may already belong to someone else.
    @discardableResult
    public func signal(_ child: Child, _ signal: Int32) throws(Errno) -> Bool {
        // Under the lock that also closes pidfds, so the descriptor cannot be closed (and
        // its number reused) between the check and the send.
        try state.withLock { state throws(Errno) -> Bool in
            guard let entry = state.entries[child.id], entry.outcome == nil, let pidfd = entry.pidfd else {
                return false
            }
            do throws(Errno) {
                try PidFD.sendSignal(pidfd, signal)
            } catch {
                if error.code == Errno.ESRCH { return false }  // exited, not yet reaped
                throw error
            }
            return true
        }
    }

    /// Forgets an exited child (its record is kept until then so late waiters get the status).
    public func release(_ child: Child) {
        state.withLock { state in
            guard let entry = state.entries[child.id], entry.outcome != nil else { return }
            state.entries[child.id] = nil
        }
    }

    /// Processes tracked and not yet exited.
    public var runningCount: Int {
        state.withLock { $0.entries.values.filter { $0.outcome == nil }.count }
    }

    /// Stops the loop; waiters of children still running get `.abandoned`.
    public func shutdown() {
        let (waiters, pidfds) = state.withLock { state -> ([CheckedContinuation<ChildOutcome, Never>], [(Int32, UInt64?)]) in
            state.stopped = true
            var waiters: [CheckedContinuation<ChildOutcome, Never>] = []
            var pidfds: [(Int32, UInt64?)] = []
            for (id, var entry) in state.entries where entry.outcome == nil {
                waiters += entry.waiters
                entry.waiters = []
                entry.outcome = .abandoned
                if let pidfd = entry.pidfd { pidfds.append((pidfd, entry.loopTag)) }
                entry.pidfd = nil
                entry.loopTag = nil
                state.entries[id] = entry
            }
            return (waiters, pidfds)
        }
        hooks.owner.withLock { $0 = nil }
        loop.stop()
        for (pidfd, tag) in pidfds {
            if let tag { loop.unregister(pidfd, tag: tag) }
            PidFD.close(pidfd)
        }
        for waiter in waiters { waiter.resume(returning: .abandoned) }
    }

    /// After each turn of the loop: unknown children reaped, and the sweep's next interval
    /// (back to the base after anything happened, doubling up to the idle one otherwise).
    fileprivate func afterTurn(anyReady: Bool) {
        let reaped = options.reapsUnknownChildren ? sweepUnknownChildren() : 0
        hooks.interval.withLock { interval in
            if anyReady || reaped > 0 {
                interval = options.sweepIntervalMilliseconds
            } else {
                interval = min(interval * 2, max(options.idleSweepIntervalMilliseconds, options.sweepIntervalMilliseconds))
            }
        }
    }

    /// The pidfd of `id` is readable: the process has exited. Reap it and wake its waiters.
    fileprivate func collect(_ id: UInt64) {
        let collected = state.withLock { state -> (ChildOutcome, [CheckedContinuation<ChildOutcome, Never>], Int32, UInt64?)? in
            guard var entry = state.entries[id], entry.outcome == nil, let pidfd = entry.pidfd else { return nil }
            let outcome: ChildOutcome
            do {
                guard let status = try PidFD.reap(pidfd) else {
                    return nil  // readable but not reapable yet: look again on the next event
                }
                outcome = .exited(status)
            } catch {
                outcome = .exitedWithoutStatus  // ECHILD: not our child
            }
            let waiters = entry.waiters
            let tag = entry.loopTag
            entry.outcome = outcome
            entry.pidfd = nil
            entry.loopTag = nil
            entry.waiters = []
            state.entries[id] = entry
            state.idOfPid[entry.pid] = nil
            return (outcome, waiters, pidfd, tag)
        }
        guard let (outcome, waiters, pidfd, tag) = collected else { return }
        if let tag { loop.unregister(pidfd, tag: tag) }
        PidFD.close(pidfd)
        for waiter in waiters { waiter.resume(returning: outcome) }
    }

    /// Reaps exited children no one tracks; returns how many.
    private func sweepUnknownChildren() -> Int {
        registration.withLock { _ in
            var reapedCount = 0
            var seen: Set<Int32> = []
            while let pid = ChildProcesses.peekExited(), seen.insert(pid).inserted {
                if let id = state.withLock({ $0.idOfPid[pid] }) {
                    collect(id)
                    continue
                }
                guard let status = ChildProcesses.reap(pid) else { continue }
                state.withLock { state in
                    state.recentlyReaped.append((pid, status))
                    if state.recentlyReaped.count > 64 { state.recentlyReaped.removeFirst() }
                }
                options.onUnknownReaped(pid, status)
                reapedCount += 1
            }
            return reapedCount
        }
    }
}

/// What the supervisor's loop calls: a pidfd readable (its process exited), the signalfd.
private final class PidfdHandler: EventLoop.Handler {
    let id: UInt64
    weak let supervisor: Supervisor?

    init(id: UInt64, supervisor: Supervisor) {
        self.id = id
        self.supervisor = supervisor
    }

    func ready(_ events: UInt32) { supervisor?.collect(id) }
}

private final class ChildSignalHandler: EventLoop.Handler {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    func ready(_ events: UInt32) { ChildSignals.drain(fd) }
}

/// The loop's view of its supervisor: the sweep interval it waits, and the supervisor its
/// turns call back (set once the supervisor exists, cleared at shutdown).
private final class LoopHooks: Sendable {
    let interval: Mutex<Int32>
    let owner = Mutex<Supervisor?>(nil)
    init(interval: Int32) { self.interval = Mutex(interval) }
}
