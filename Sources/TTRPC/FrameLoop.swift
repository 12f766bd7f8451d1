import LinuxSys
import Synchronization

/// One thread, one epoll set, for every ttrpc socket of a process: the server's listener, each
/// connection containerd opens (one per task it loads, so a pod of ten containers has ten),
/// and the client connection events go out on. A shim's thread count is then the same for
/// one container or fifty.
///
/// Handlers run on the loop thread and must not block: sockets are non-blocking, decoded
/// requests are handed to tasks. Every descriptor is closed on the loop thread (`perform`),
/// so a number is never reused while the loop may still act on it.
public final class FrameLoop: Sendable {
    /// What the loop calls when a registered descriptor is ready.
    protocol Handler: AnyObject, Sendable {
        /// `events`: the epoll mask (readable 0x1, writable 0x4, error 0x8, hang-up 0x10).
        func ready(_ events: UInt32)
    }

    static let readableEvents: UInt32 = 0x1 | 0x8 | 0x10
    static let writableEvents: UInt32 = 0x4 | 0x8

    private let epoll: Epoll
    private let state = Mutex(State())

    private struct State {
        var handlers: [UInt64: any Handler] = [:]
        var nextTag: UInt64 = 0
        var commands: [@Sendable () -> Void] = []
        var threadStarted = false
    }

    public init() throws(Errno) {
        epoll = try Epoll()
    }

    /// Adds `fd` (made non-blocking) for readability; returns its tag. Starts the thread on
    /// first use.
    func register(_ fd: Int32, _ handler: any Handler) throws(Errno) -> UInt64 {
        try FileDescriptor.setNonBlocking(fd)
        let (tag, startThread) = state.withLock { state -> (UInt64, Bool) in
            state.nextTag += 1
            state.handlers[state.nextTag] = handler
            defer { state.threadStarted = true }
            return (state.nextTag, !state.threadStarted)
        }
        do throws(Errno) {
            if startThread { try DetachedThread.spawn(name: "ttrpc") { [self] in run() } }
            try epoll.watch(fd, tag: tag, for: .readable, replacing: false)
        } catch {
            state.withLock { state in
                state.handlers[tag] = nil
                if startThread { state.threadStarted = false }
            }
            throw error
        }
        return tag
    }

    /// Changes what `fd` is watched for: writability while output is queued, readability
    /// until the input ended (error and hang-up are always reported).
    func watch(_ fd: Int32, tag: UInt64, readable: Bool, writable: Bool) {
        var interest: Epoll.Interest = []
        if readable { interest.insert(.readable) }
        if writable { interest.insert(.writable) }
        _ = try? epoll.watch(fd, tag: tag, for: interest, replacing: true)
    }

    /// Removes `fd` and its handler. Call on the loop thread, before closing `fd`.
    func unregister(_ fd: Int32, tag: UInt64) {
        epoll.remove(fd)
        _ = state.withLock { $0.handlers.removeValue(forKey: tag) }
    }

    /// Runs `body` on the loop thread at its next turn.
    func perform(_ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.commands.append(body) }
        epoll.wake()
    }

    private func run() {
        while true {
            let ready = epoll.waitEvents(timeoutMilliseconds: -1)
            let commands = state.withLock { state in
                defer { state.commands = [] }
                return state.commands
            }
            commands.forEach { $0() }
            for (tag, events) in ready where tag != Epoll.wakeTag {
                // A handler unregistered earlier in this turn is skipped.
                state.withLock { $0.handlers[tag] }?.ready(events)
            }
        }
    }
}
