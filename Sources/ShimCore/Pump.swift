import Deadlines
import LinuxSys
import Synchronization

/// Copies every stdio stream of a shim (fifos, pipes, terminals of all its containers and
/// execs) on one thread, its own `EventLoop`: a pod costs one thread for its stdio however
/// many processes it runs, and an EOF, a full destination draining, a stop or a CloseIO is
/// seen the moment it happens, with no polling tick.
///
/// Every stream's state is touched only on the loop thread; callers' stops and drains are
/// commands the loop runs at its next turn, before that turn's ready descriptors.
public final class StdioCopier: Sendable {
    private let loop: EventLoop
    private let streams = Streams()
    private let nextID = Mutex<UInt64>(0)

    public init() throws(Errno) {
        loop = try EventLoop(name: "stdio")
    }

    /// Starts copying `source` to `destination`; the pump owns both descriptors from here on
    /// and closes them when it finishes (closing the destination is what delivers EOF to
    /// containerd's reader).
    func copy(from source: Int32, to destination: Int32) throws(Errno) -> Pump {
        do throws(Errno) {
            try FileDescriptor.setNonBlocking(source)
            try FileDescriptor.setNonBlocking(destination)
            try loop.start()
        } catch {
            FileDescriptor.close(source)
            FileDescriptor.close(destination)
            throw error
        }
        let id = nextID.withLock { id in
            id += 1
            return id
        }
        let pump = Pump(id: id, copier: self)
        let stream = Stream(id: id, source: source, destination: destination, pump: pump)
        loop.perform { [self] in
            if !watchSource(stream) { finish(stream) }
        }
        return pump
    }

    fileprivate func stop(_ id: UInt64) {
        loop.perform { [self] in
            if let stream = streams.byID[id] { finish(stream) }
        }
    }

    fileprivate func drainThenStop(_ id: UInt64) {
        loop.perform { [self] in
            guard let stream = streams.byID[id] else { return }
            stream.draining = true
            if stream.pending.isEmpty { transfer(stream) }
        }
    }

    // MARK: on the loop thread

    /// The streams being copied; touched on the loop thread only.
    private final class Streams: @unchecked Sendable {
        var byID: [UInt64: Stream] = [:]
        var buffer = [UInt8](repeating: 0, count: 32 * 1024)
    }

    /// A stream as the loop thread sees it.
    private final class Stream: @unchecked Sendable {
        let id: UInt64
        let source: Int32
        let destination: Int32
        let pump: Pump
        /// The loop's registrations: the source while reading, the destination while full.
        var sourceTag: UInt64?
        var destinationTag: UInt64?
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

    /// One end of a stream, as the loop calls it when ready.
    private final class End: EventLoop.Handler, @unchecked Sendable {
        let stream: Stream
        let isSource: Bool
        weak var copier: StdioCopier?

        init(_ stream: Stream, isSource: Bool, copier: StdioCopier) {
            self.stream = stream
            self.isSource = isSource
            self.copier = copier
        }

        func ready(_ events: UInt32) {
            guard let copier, copier.streams.byID[stream.id] === stream else { return }  // finished earlier in this turn
            if isSource {
                if stream.pending.isEmpty { copier.transfer(stream) }
            } else {
                copier.flushPending(stream)
            }
        }
    }

    /// Reads the source from now on; false if the loop would not take it.
    private func watchSource(_ stream: Stream) -> Bool {
        do throws(Errno) {
            stream.sourceTag = try loop.register(stream.source, End(stream, isSource: true, copier: self), makeNonBlocking: false)
            streams.byID[stream.id] = stream
            return true
        } catch {
            return false
        }
    }

    /// The source is readable (or at EOF): copy what it has, a bounded amount per wake-up so
    /// one chatty stream cannot starve the others.
    private func transfer(_ stream: Stream) {
        for _ in 0..<16 {
            let result = streams.buffer.withUnsafeMutableBytes { raw in
                Result { () throws(Errno) -> Int in try FileDescriptor.read(stream.source, into: raw) }
            }
            let count: Int
            switch result {
            case .success(let n): count = n
            case .failure(let error):
                if error.code == Errno.EAGAIN {
                    if stream.draining { finish(stream) }
                    return
                }
                // EIO: the terminal's other side is gone; anything else: nothing more to read.
                finish(stream)
                return
            }
            if count == 0 {
                finish(stream)
                return
            }
            if stream.discarding { continue }
            let written = write(stream, streams.buffer[0..<count])
            if written < count {
                if stream.discarding { continue }
                // The destination is full: keep the rest, stop reading until it drains.
                stream.pending = Array(streams.buffer[written..<count])
                // Out of the set, not just without interest: a hang-up is always reported
                // and would spin this loop while the destination is full.
                if let tag = stream.sourceTag { loop.unregister(stream.source, tag: tag) }
                stream.sourceTag = nil
                do throws(Errno) {
                    stream.destinationTag = try loop.register(
                        stream.destination, End(stream, isSource: false, copier: self), for: .writable, makeNonBlocking: false)
                } catch {
                    finish(stream)
                }
                return
            }
        }
    }

    /// The destination can take more: write what was pending, then resume reading the source.
    private func flushPending(_ stream: Stream) {
        let written = write(stream, stream.pending[...])
        if stream.discarding {
            stream.pending = []
        } else if written < stream.pending.count {
            stream.pending.removeFirst(written)
            return
        } else {
            stream.pending = []
        }
        if let tag = stream.destinationTag { loop.unregister(stream.destination, tag: tag) }
        stream.destinationTag = nil
        guard watchSource(stream) else {
            finish(stream)
            return
        }
        transfer(stream)
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

    private func finish(_ stream: Stream) {
        streams.byID[stream.id] = nil
        // Out of the epoll set before closing: a duplicate of the descriptor elsewhere (a
        // terminal's master) would otherwise keep the registration alive.
        if let tag = stream.sourceTag { loop.unregister(stream.source, tag: tag) }
        if let tag = stream.destinationTag { loop.unregister(stream.destination, tag: tag) }
        stream.sourceTag = nil
        stream.destinationTag = nil
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
