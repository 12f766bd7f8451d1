import Deadlines
import LinuxSys
import Synchronization

/// Copies every stdio stream of a shim (fifos, pipes, terminals of all its containers and
/// execs) on one thread, driven by epoll: a pod costs one thread for its stdio however many
/// processes it runs, and an EOF, a full destination draining, a stop or a CloseIO is seen the
/// moment it happens, with no polling tick.
///
/// Every stream's state is touched only by the copier thread; callers talk to it through
/// commands queued under a lock and an eventfd wake-up. The thread starts with the first
/// stream and lives as long as the shim.
public final class StdioCopier: Sendable {
    private let epoll: Epoll
    private let state = Mutex(State())

    private struct State {
        var commands: [Command] = []
        var nextID: UInt64 = 0
        var threadStarted = false
    }

    private enum Command {
        case add(UInt64, source: Int32, destination: Int32, Pump)
        case stop(UInt64)
        case drain(UInt64)
    }

    public init() throws(Errno) {
        epoll = try Epoll()
    }

    /// Starts copying `source` to `destination`; the pump owns both descriptors from here on
    /// and closes them when it finishes (closing the destination is what delivers EOF to
    /// containerd's reader).
    func copy(from source: Int32, to destination: Int32) throws(Errno) -> Pump {
        do throws(Errno) {
            try FileDescriptor.setNonBlocking(source)
            try FileDescriptor.setNonBlocking(destination)
        } catch {
            FileDescriptor.close(source)
            FileDescriptor.close(destination)
            throw error
        }
        let (id, startThread) = state.withLock { state -> (UInt64, Bool) in
            state.nextID += 1
            defer { state.threadStarted = true }
            return (state.nextID, !state.threadStarted)
        }
        let pump = Pump(id: id, copier: self)
        if startThread {
            do throws(Errno) {
                try DetachedThread.spawn(name: "stdio") { [self] in run() }
            } catch {
                state.withLock { $0.threadStarted = false }
                FileDescriptor.close(source)
                FileDescriptor.close(destination)
                throw error
            }
        }
        send(.add(id, source: source, destination: destination, pump))
        return pump
    }

    fileprivate func stop(_ id: UInt64) { send(.stop(id)) }
    fileprivate func drainThenStop(_ id: UInt64) { send(.drain(id)) }

    private func send(_ command: Command) {
        state.withLock { $0.commands.append(command) }
        epoll.wake()
    }

    // MARK: the copier thread

    /// A stream as the copier thread sees it.
    private final class Stream {
        let id: UInt64
        let source: Int32
        let destination: Int32
        let pump: Pump
        /// Read but not yet written: the destination would block (nobody reads the fifo).
        var pending: [UInt8] = []
        /// The reader went away (EPIPE): the source is still drained so the process never
        /// blocks on a full pipe.
        var discarding = false
        /// CloseIO: end once the source has nothing more to give right now.
        var draining = false

        init(id: UInt64, source: Int32, destination: Int32, pump: Pump) {
            self.id = id
            self.source = source
            self.destination = destination
            self.pump = pump
        }
    }

    /// Tags: stream id × 2 for the source, + 1 for the destination.
    private static func sourceTag(_ id: UInt64) -> UInt64 { id << 1 }
    private static func destinationTag(_ id: UInt64) -> UInt64 { id << 1 | 1 }

    private func run() {
        var streams: [UInt64: Stream] = [:]
        var buffer = [UInt8](repeating: 0, count: 32 * 1024)
        while true {
            let ready = epoll.waitEvents(timeoutMilliseconds: -1)
            let commands = state.withLock { state in
                defer { state.commands = [] }
                return state.commands
            }
            for command in commands {
                switch command {
                case .add(let id, let source, let destination, let pump):
                    let stream = Stream(id: id, source: source, destination: destination, pump: pump)
                    do throws(Errno) {
                        try epoll.watch(source, tag: Self.sourceTag(id), for: .readable, replacing: false)
                        streams[id] = stream
                    } catch {
                        finish(stream, &streams)
                    }
                case .stop(let id):
                    if let stream = streams[id] { finish(stream, &streams) }
                case .drain(let id):
                    guard let stream = streams[id] else { continue }
                    stream.draining = true
                    if stream.pending.isEmpty { transfer(stream, &streams, &buffer) }
                }
            }
            for (tag, _) in ready where tag != Epoll.wakeTag {
                guard let stream = streams[tag >> 1] else { continue }  // finished earlier in this round
                if tag & 1 == 0 {
                    if stream.pending.isEmpty { transfer(stream, &streams, &buffer) }
                } else {
                    flushPending(stream, &streams, &buffer)
                }
            }
        }
    }

    /// The source is readable (or at EOF): copy what it has, a bounded amount per wake-up so
    /// one chatty stream cannot starve the others.
    private func transfer(_ stream: Stream, _ streams: inout [UInt64: Stream], _ buffer: inout [UInt8]) {
        for _ in 0..<16 {
            let result = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(Errno) -> Int in try FileDescriptor.read(stream.source, into: raw) }
            }
            let count: Int
            switch result {
            case .success(let n): count = n
            case .failure(let error):
                if error.code == Errno.EAGAIN {
                    if stream.draining { finish(stream, &streams) }
                    return
                }
                // EIO: the terminal's other side is gone; anything else: nothing more to read.
                finish(stream, &streams)
                return
            }
            if count == 0 {
                finish(stream, &streams)
                return
            }
            if stream.discarding { continue }
            let written = write(stream, buffer[0..<count])
            if written < count {
                if stream.discarding { continue }
                // The destination is full: keep the rest, stop reading until it drains.
                stream.pending = Array(buffer[written..<count])
                // Out of the set, not just without interest: a hang-up is always reported
                // and would spin this loop while the destination is full.
                epoll.remove(stream.source)
                do throws(Errno) {
                    try epoll.watch(
                        stream.destination, tag: Self.destinationTag(stream.id), for: .writable, replacing: false)
                } catch {
                    finish(stream, &streams)
                }
                return
            }
        }
    }

    /// The destination can take more: write what was pending, then resume reading the source.
    private func flushPending(_ stream: Stream, _ streams: inout [UInt64: Stream], _ buffer: inout [UInt8]) {
        let written = write(stream, stream.pending[...])
        if stream.discarding {
            stream.pending = []
        } else if written < stream.pending.count {
            stream.pending.removeFirst(written)
            return
        } else {
            stream.pending = []
        }
        epoll.remove(stream.destination)
        do throws(Errno) {
            try epoll.watch(stream.source, tag: Self.sourceTag(stream.id), for: .readable, replacing: false)
        } catch {
            finish(stream, &streams)
            return
        }
        transfer(stream, &streams, &buffer)
    }

    /// Writes as much of `bytes` as the destination takes now; a reader that went away turns
    /// the stream to discarding (everything counts as written).
    private func write(_ stream: Stream, _ bytes: ArraySlice<UInt8>) -> Int {
        var offset = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                FileDescriptor.writeSome(stream.destination, UnsafeRawBufferPointer(rebasing: raw[offset...]))
            }
            switch result {
            case .wrote(let n): offset += n
            case .wouldBlock: return offset
            case .failed:
                stream.discarding = true
                return bytes.count
            }
        }
        return offset
    }

    private func finish(_ stream: Stream, _ streams: inout [UInt64: Stream]) {
        streams[stream.id] = nil
        // Out of the epoll set before closing: a duplicate of the descriptor elsewhere (a
        // terminal's master) would otherwise keep the registration alive.
        epoll.remove(stream.source)
        epoll.remove(stream.destination)
        FileDescriptor.close(stream.source)
        FileDescriptor.close(stream.destination)
        stream.pump.markFinished()
    }
}

/// One stream being copied by the shim's `StdioCopier`: stop it, drain it, wait for its end.
final class Pump: Sendable {
    private let id: UInt64
    private let copier: StdioCopier
    private let state = Mutex<State>(State())
    private struct State {
        var finished = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    fileprivate init(id: UInt64, copier: StdioCopier) {
        self.id = id
        self.copier = copier
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    /// Ends the copy now, whatever is left in the source.
    func stop() { copier.stop(id) }

    /// Ends the pump once the source has nothing more to give right now (CloseIO: what the
    /// client wrote before closing still reaches the process).
    func drainThenStop() { copier.drainThenStop(id) }

    /// Waits until the pump has finished (EOF or stop), at most `timeout`; then stops it.
    func finish(within timeout: Duration) async {
        if !isFinished {
            _ = await waitAtMost(timeout) { await self.waitFinished() }
        }
        stop()
        await waitFinished()
    }

    func waitFinished() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.finished { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    fileprivate func markFinished() {
        let waiters = state.withLock { state in
            state.finished = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }
}
