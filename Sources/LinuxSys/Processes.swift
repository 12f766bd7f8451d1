import CLinuxSys
import Glibc
import Synchronization

/// How a process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// The number containerd reports: the exit code, or 128 + signal.
    public var code: UInt32 {
        switch self {
        case .exited(let code): UInt32(truncatingIfNeeded: code)
        case .signaled(let signal): UInt32(128 + signal)
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exit \(code)"
        case .signaled(let signal): "signal \(signal)"
        }
    }

    init?(code: Int32, status: Int32) {
        switch code {
        case 0: return nil
        case Int32(CLD_EXITED): self = .exited(status)
        default: self = .signaled(status)
        }
    }
}

/// pidfd operations: every signal and reap goes through a descriptor bound to one process,
/// never through a pid that may have been recycled.
public enum PidFD {
    /// Opens a pidfd for `pid` (ESRCH if it no longer exists).
    public static func open(_ pid: Int32) throws(Errno) -> Int32 {
        try retryingEINTR("pidfd_open(\(pid))") { clinux_pidfd_open(pid) }
    }

    public static func sendSignal(_ pidfd: Int32, _ signal: Int32) throws(Errno) {
        _ = try retryingEINTR("pidfd_send_signal") { clinux_pidfd_send_signal(pidfd, signal) }
    }

    /// Reaps the process if it has exited: nil if it is still running. ECHILD means it is not
    /// this process's child (or was already reaped).
    public static func reap(_ pidfd: Int32) throws(Errno) -> ExitStatus? {
        var code: Int32 = 0
        var status: Int32 = 0
        if clinux_waitid_pidfd(pidfd, WNOHANG, &code, &status) != 0 {
            throw Errno.current("waitid(P_PIDFD)")
        }
        return ExitStatus(code: code, status: status)
    }

    public static func close(_ pidfd: Int32) {
        _ = Glibc.close(pidfd)
    }
}

/// Children this process does not hold a pidfd for (re-parented orphans).
public enum ChildProcesses {
    /// Makes this process the reaper of its descendants' orphans (PR_SET_CHILD_SUBREAPER).
    public static func becomeSubreaper() throws(Errno) {
        _ = try retryingEINTR("prctl(PR_SET_CHILD_SUBREAPER)") { clinux_set_child_subreaper() }
    }

    /// The pid of one exited child, left unreaped; nil if none (or no children at all).
    public static func peekExited() -> Int32? {
        var pid: pid_t = 0
        guard clinux_peek_exited_child(&pid) == 0, pid > 0 else { return nil }
        return pid
    }

    /// Reaps exactly `pid` if it has exited.
    public static func reap(_ pid: Int32) -> ExitStatus? {
        var code: Int32 = 0
        var status: Int32 = 0
        guard clinux_reap_pid(pid, &code, &status) == 0 else { return nil }
        return ExitStatus(code: code, status: status)
    }

    /// Sends `signal` to `pid` by number. Only for processes known to be alive and unreaped
    /// (a zombie's pid cannot be reused); everything else goes through `PidFD`.
    public static func signalUnreaped(_ pid: Int32, _ signal: Int32) {
        _ = kill(pid, signal)
    }
}

/// Process creation.
public enum Spawn {
    /// posix_spawn with stdio from the given descriptors; returns the pid.
    public static func spawn(
        path: String, arguments: [String], environment: [String], stdin: Int32, stdout: Int32, stderr: Int32,
        newSession: Bool
    ) throws(Errno) -> Int32 {
        try spawn(
            path: path, arguments: arguments, environment: environment, descriptors: [stdin, stdout, stderr],
            newSession: newSession)
    }

    /// posix_spawn where `descriptors[i]` becomes fd i of the child (at least stdio); nothing
    /// else is inherited (every descriptor the shim opens is close-on-exec).
    public static func spawn(
        path: String, arguments: [String], environment: [String], descriptors: [Int32], newSession: Bool
    ) throws(Errno) -> Int32 {
        precondition(descriptors.count >= 3, "stdio descriptors are required")
        var pid: pid_t = 0
        let rc = withCStrings(path: path, arguments: arguments, environment: environment) { argv, envp in
            descriptors.withUnsafeBufferPointer { fds in
                clinux_spawn_fds(path, argv, envp, fds.baseAddress, Int32(fds.count), newSession ? 1 : 0, &pid)
            }
        }
        if rc != 0 { throw Errno.current("posix_spawn(\(path))") }
        return pid
    }

    /// argv (with the binary's base name as argv[0]) and envp as NULL-terminated C arrays.
    static func withCStrings<Result>(
        path: String, arguments: [String], environment: [String],
        _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>?, UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Result
    ) -> Result {
        let argv = ([path.split(separator: "/").last.map(String.init) ?? path] + arguments).map { strdup($0) }
        let envp = environment.map { strdup($0) }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        return (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (envp + [nil]).withUnsafeBufferPointer { envBuffer in body(argvBuffer.baseAddress, envBuffer.baseAddress) }
        }
    }
}

/// The process that execs on the shim's behalf once the shim's seccomp filter forbids
/// `execve` (CLinuxSys/spawner.c). Forked before the filter, while the shim is still
/// single-threaded; every process it creates is the shim's own child (CLONE_PARENT), so
/// pidfds, reaping and exit statuses work as for `Spawn.spawn`.
public final class SpawnHelper: Sendable {
    public let pid: Int32
    private let socket: Mutex<Int32>

    private init(pid: Int32, socket: Int32) {
        self.pid = pid
        self.socket = Mutex(socket)
    }

    /// Forks the helper. Only while the process has a single thread.
    public static func start() throws(Errno) -> SpawnHelper {
        var pid: pid_t = 0
        let fd = clinux_spawner_start(&pid)
        if fd < 0 { throw Errno.current("fork(spawn helper)") }
        return SpawnHelper(pid: pid, socket: fd)
    }

    /// What `Spawn.spawn` does, through the helper. A process whose exec failed is reaped
    /// before the error is thrown.
    public func spawn(
        path: String, arguments: [String], environment: [String], descriptors: [Int32], newSession: Bool
    ) throws(Errno) -> Int32 {
        precondition(descriptors.count >= 3, "stdio descriptors are required")
        var pid: pid_t = 0
        let (rc, code) = socket.withLock { fd in
            let rc = Spawn.withCStrings(path: path, arguments: arguments, environment: environment) { argv, envp in
                descriptors.withUnsafeBufferPointer { fds in
                    clinux_spawner_spawn(fd, path, argv, envp, fds.baseAddress, Int32(fds.count), newSession ? 1 : 0, &pid)
                }
            }
            return (rc, errno)
        }
        guard rc != 0 else { return pid }
        switch code {
        case EPIPE: throw Errno(code: code, call: "spawn helper (pid \(self.pid)) is gone; cannot run \(path)")
        case EAGAIN: throw Errno(code: code, call: "spawn helper (pid \(self.pid)) did not answer within 10s for \(path)")
        default: throw Errno(code: code, call: "spawn helper: execve(\(path))")
        }
    }

    /// Closes the shim's end: the helper exits.
    public func close() {
        socket.withLock { fd in
            if fd >= 0 { _ = Glibc.close(fd) }
            fd = -1
        }
    }
}

/// epoll over descriptors tagged with 64-bit values, plus an eventfd to wake the waiter.
public final class Epoll: Sendable {
    private let epfd: Int32
    private let wakeFD: Int32
    /// The tag `wait` reports for a `wake()`.
    public static let wakeTag: UInt64 = .max

    public init() throws(Errno) {
        epfd = try retryingEINTR("epoll_create1") { clinux_epoll_create() }
        do {
            wakeFD = try retryingEINTR("eventfd") { clinux_eventfd() }
        } catch {
            _ = Glibc.close(epfd)
            throw error
        }
        _ = clinux_epoll_control(epfd, 0, wakeFD, Interest.readable.rawValue, Self.wakeTag)
    }

    deinit {
        _ = Glibc.close(wakeFD)
        _ = Glibc.close(epfd)
    }

    public func add(_ fd: Int32, tag: UInt64) throws(Errno) {
        try watch(fd, tag: tag, for: .readable, replacing: false)
    }

    public func remove(_ fd: Int32) {
        _ = clinux_epoll_remove(epfd, fd)
    }

    /// Interest in a descriptor: readable (input, end of input, hang-up) and/or writable.
    public struct Interest: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Interest(rawValue: 0x001)  // EPOLLIN (Glibc does not export the enum)
        public static let writable = Interest(rawValue: 0x004)  // EPOLLOUT
    }

    /// Registers `fd` (level-triggered) for `interest`, or changes the interest of one registered.
    public func watch(_ fd: Int32, tag: UInt64, for interest: Interest, replacing: Bool) throws(Errno) {
        _ = try retryingEINTR(replacing ? "epoll_ctl(MOD)" : "epoll_ctl(ADD)") {
            clinux_epoll_control(epfd, replacing ? 1 : 0, fd, interest.rawValue, tag)
        }
    }

    /// Ready descriptors as (tag, events) — the wake tag included, drained — waiting at most
    /// `timeoutMilliseconds` (-1: until something is ready). Empty on timeout.
    public func waitEvents(timeoutMilliseconds: Int32) -> [(tag: UInt64, events: UInt32)] {
        var tags = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        let count = tags.withUnsafeMutableBufferPointer { tagBuffer in
            events.withUnsafeMutableBufferPointer { eventBuffer in
                clinux_epoll_wait_events(epfd, tagBuffer.baseAddress, eventBuffer.baseAddress, 64, timeoutMilliseconds)
            }
        }
        guard count > 0 else { return [] }
        let ready = (0..<Int(count)).map { (tag: tags[$0], events: events[$0]) }
        if ready.contains(where: { $0.tag == Self.wakeTag }) { clinux_eventfd_drain(wakeFD) }
        return ready
    }

    public func wake() {
        _ = clinux_eventfd_signal(wakeFD)
    }

    /// Tags of ready descriptors (the wake tag included, drained); empty on timeout.
    public func wait(timeoutMilliseconds: Int32) -> [UInt64] {
        waitEvents(timeoutMilliseconds: timeoutMilliseconds).map(\.tag)
    }
}

/// SIGCHLD as a readable descriptor, so that the supervisor sleeps until a child (an orphan
/// re-parented to the shim included) exits instead of sweeping on a timer.
public enum ChildSignals {
    /// Blocks SIGCHLD in the calling thread; call before any other thread is created, so that
    /// every thread inherits it (a thread that did not would take the signal and lose it).
    public static func block() throws(Errno) {
        if clinux_block_sigchld() != 0 { throw Errno.current("pthread_sigmask(SIGCHLD)") }
    }

    /// A non-blocking signalfd for SIGCHLD, or nil when some thread of the process does not
    /// block it (then the signal could go to that thread and never reach the descriptor).
    public static func descriptorIfBlockedEverywhere() throws(Errno) -> Int32? {
        guard blockedInEveryThread() else { return nil }
        let fd = clinux_sigchld_fd()
        if fd < 0 { throw Errno.current("signalfd(SIGCHLD)") }
        return fd
    }

    public static func drain(_ fd: Int32) { clinux_sigchld_drain(fd) }

    /// Whether every thread's SigBlk has SIGCHLD (17: bit 16).
    public static func blockedInEveryThread() -> Bool {
        Directories.entries("/proc/self/task").allSatisfy { tid in
            guard let status = FileDescriptor.readText("/proc/self/task/\(tid)/status"),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
                let mask = UInt64(line.dropFirst("SigBlk:".count).filter { !$0.isWhitespace }, radix: 16)
            else { return false }
            return mask & (1 << (SIGCHLD - 1)) != 0
        }
    }
}

extension Spawn {
    /// Runs a short command to completion for its stdout (the `-info` probe of runsc's version),
    /// on the calling thread with no runtime: stdin and stderr are /dev/null, output is capped
    /// at `limit` bytes, and a command still running at `timeoutMilliseconds` is SIGKILLed and
    /// reaped. nil when it could not be started, timed out, or did not exit 0.
    public static func outputOf(
        path: String, arguments: [String], environment: [String], timeoutMilliseconds: Int32, limit: Int = 64 << 10
    ) -> [UInt8]? {
        guard let null = try? FileDescriptor.openNull() else { return nil }
        defer { FileDescriptor.close(null) }
        guard let pipe = try? FileDescriptor.pipe() else { return nil }
        defer { FileDescriptor.close(pipe.read) }
        let pid: Int32
        do throws(Errno) {
            pid = try spawn(path: path, arguments: arguments, environment: environment, descriptors: [null, pipe.write, null], newSession: false)
        } catch {
            FileDescriptor.close(pipe.write)
            return nil
        }
        FileDescriptor.close(pipe.write)
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = monotonicMilliseconds() + Int64(timeoutMilliseconds)
        var timedOut = false
        while true {
            let left = deadline - monotonicMilliseconds()
            if left <= 0 { timedOut = true; break }
            guard Poll.wait(pipe.read, events: Poll.readable, timeoutMilliseconds: Int32(left)) != 0 else { continue }
            let count = (try? buffer.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try FileDescriptor.read(pipe.read, into: raw) }) ?? 0
            if count <= 0 { break }
            if output.count < limit { output += buffer[..<min(count, limit - output.count)] }
        }
        if timedOut { Glibc.kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard !timedOut, (status & 0x7f) == 0, ((status >> 8) & 0xff) == 0 else { return nil }
        return output
    }

    private static func monotonicMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
