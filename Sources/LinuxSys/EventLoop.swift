import Synchronization

/// One thread, one epoll set: the loop every blocking wait of the shim runs on (the ttrpc
/// sockets, the stdio streams, the supervisor's pidfds and SIGCHLD). Each user holds a loop of
/// its own, so that a slow stdio destination never delays a ttrpc answer, but none of them
/// writes its own command queue, wake-up or thread start.
///
/// Descriptors are registered with a handler, called on the loop thread when ready; `perform`
/// runs a closure there at the next turn, before that turn's ready handlers (so a command
/// queued before an event is seen first). Handlers must not block. Everything the loop's
/// users keep about their descriptors is touched on the loop thread only, and every
/// descriptor is closed there, so a number is never reused while the loop may still act on it.
public final class EventLoop: Sendable {
    /// What the loop calls when a registered descriptor is ready.
    public protocol Handler: AnyObject, Sendable {
        /// `events`: the epoll mask (readable 0x1, writable 0x4, error 0x8, hang-up 0x10).
        func ready(_ events: UInt32)
    }

    public static let readableEvents: UInt32 = 0x1 | 0x8 | 0x10
    public static let writableEvents: UInt32 = 0x4 | 0x8

    /// When a turn ends without an event, how long to wait for the next one (-1: for good),
    /// and what runs after each turn (`anyReady`: a descriptor or command woke it). The
    /// supervisor sweeps unknown children there.
    public struct Turns: Sendable {
        public var timeoutMilliseconds: @Sendable () -> Int32
        public var afterEach: (@Sendable (_ anyReady: Bool) -> Void)?

        public init(timeoutMilliseconds: @escaping @Sendable () -> Int32 = { -1 }, afterEach: (@Sendable (Bool) -> Void)? = nil) {
            self.timeoutMilliseconds = timeoutMilliseconds
            self.afterEach = afterEach
        }
    }

    private let name: String
    private let epoll: Epoll
    private let turns: Turns
    private let state = Mutex(State())

    private struct State {
        var handlers: [UInt64: any Handler] = [:]
        var nextTag: UInt64 = 0
        var commands: [@Sendable () -> Void] = []
        var threadStarted = false
        var stopped = false
    }

    /// `name`: the thread's. The thread starts with the first registration or command.
    public init(name: String, turns: Turns = Turns()) throws(Errno) {
        self.name = name
        self.turns = turns
        epoll = try Epoll()
    }

    /// Adds `fd` (made non-blocking unless told otherwise) for `interest`; returns its tag.
    public func register(
        _ fd: Int32, _ handler: any Handler, for interest: Epoll.Interest = .readable, makeNonBlocking: Bool = true
    ) throws(Errno) -> UInt64 {
        if makeNonBlocking { try FileDescriptor.setNonBlocking(fd) }
        let tag = state.withLock { state -> UInt64 in
            state.nextTag += 1
            state.handlers[state.nextTag] = handler
            return state.nextTag
        }
        do throws(Errno) {
            try startIfNeeded()
            try epoll.watch(fd, tag: tag, for: interest, replacing: false)
        } catch {
            _ = state.withLock { $0.handlers.removeValue(forKey: tag) }
            throw error
        }
        return tag
    }

    /// Changes what `fd` is watched for (error and hang-up are always reported).
    public func watch(_ fd: Int32, tag: UInt64, readable: Bool, writable: Bool) {
        var interest: Epoll.Interest = []
        if readable { interest.insert(.readable) }
        if writable { interest.insert(.writable) }
        _ = try? epoll.watch(fd, tag: tag, for: interest, replacing: true)
    }

    /// Removes `fd` and its handler. Call on the loop thread, before closing `fd`.
    public func unregister(_ fd: Int32, tag: UInt64) {
        epoll.remove(fd)
        _ = state.withLock { $0.handlers.removeValue(forKey: tag) }
    }

    /// Runs `body` on the loop thread at its next turn (once the thread runs: `start`, or the
    /// first registration, starts it).
    public func perform(_ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.commands.append(body) }
        epoll.wake()
    }

    /// Starts the thread now, if it is not running (idempotent).
    public func start() throws(Errno) { try startIfNeeded() }

    /// Wakes the loop for a turn (its `afterEach` runs) with nothing to do.
    public func wake() { epoll.wake() }

    /// Ends the loop after its current turn; commands still queued are dropped.
    public func stop() {
        state.withLock { $0.stopped = true }
        epoll.wake()
    }

    private func startIfNeeded() throws(Errno) {
        let start = state.withLock { state -> Bool in
            defer { state.threadStarted = true }
            return !state.threadStarted
        }
        guard start else { return }
        do throws(Errno) {
            try DetachedThread.spawn(name: name) { [self] in run() }
        } catch {
            state.withLock { $0.threadStarted = false }
            throw error
        }
    }

    private func run() {
        while !state.withLock({ $0.stopped }) {
            let ready = epoll.waitEvents(timeoutMilliseconds: turns.timeoutMilliseconds())
            let commands = state.withLock { state in
                defer { state.commands = [] }
                return state.commands
            }
            commands.forEach { $0() }
            for (tag, events) in ready where tag != Epoll.wakeTag {
                // A handler unregistered earlier in this turn is skipped.
                state.withLock { $0.handlers[tag] }?.ready(events)
            }
            turns.afterEach?(!ready.isEmpty)
        }
    }
}
