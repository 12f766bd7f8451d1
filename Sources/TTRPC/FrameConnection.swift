import LinuxSys
import Synchronization

/// One ttrpc byte stream, shared by server and client, served by a `FrameLoop`: the loop
/// thread reads and decodes frames and hands them to `onFrame`; `send` writes at once
/// without blocking and queues what the socket cannot take yet, which the loop flushes when
/// the socket is writable. A peer that stops reading therefore never blocks a caller or the
/// loop; its frames wait in memory until the connection closes.
///
/// Descriptor ownership: the fd is closed on the loop thread, once reading has ended and
/// queued output is flushed (or dropped by `close`).
final class FrameConnection: Sendable, FrameLoop.Handler {
    /// What the reader does with a frame: keep reading, or close the connection.
    enum Disposition { case keepOpen, close }

    let name: String
    private let fd: Int32
    private let loop: FrameLoop
    private let state = Mutex(State())
    /// Touched only on the loop thread; a lock for Sendable's sake, never contended.
    private let decoder = Mutex(FrameDecoder())
    private let onFrame: @Sendable (DecodedFrame) -> Disposition
    private let onCorrupt: @Sendable (FrameError) -> Void
    private let onClose: @Sendable () -> Void

    private struct State {
        var tag: UInt64?
        /// Encoded frames the socket has not taken yet, in order; `sentOfFirst` bytes of the
        /// first are written.
        var queued: [[UInt8]] = []
        var sentOfFirst = 0
        var watchingWritable = false
        /// No more input will be read (EOF, error, `.close`, or `close()`); sends fail.
        var inputEnded = false
        var finished = false
    }

    init(
        fd: Int32,
        name: String,
        loop: FrameLoop,
        onFrame: @escaping @Sendable (DecodedFrame) -> Disposition,
        onCorrupt: @escaping @Sendable (FrameError) -> Void,
        onClose: @escaping @Sendable () -> Void
    ) {
        self.fd = fd
        self.name = name
        self.loop = loop
        self.onFrame = onFrame
        self.onCorrupt = onCorrupt
        self.onClose = onClose
    }

    /// Starts serving the descriptor on the loop. On failure the descriptor is closed.
    func start() throws(Errno) {
        do throws(Errno) {
            let tag = try loop.register(fd, self)
            state.withLock { $0.tag = tag }
        } catch {
            UnixSocket.close(fd)
            throw error
        }
    }

    /// Sends `frame`, or queues it behind earlier output. Returns false if the connection is
    /// closed or the frame is too large to send.
    @discardableResult
    func send(_ frame: Frame) -> Bool {
        guard let bytes = try? frame.encoded() else { return false }
        return state.withLock { state -> Bool in
            guard !state.inputEnded, !state.finished else { return false }
            state.queued.append(bytes)
            if state.queued.count == 1 { flush(&state) }
            return true
        }
    }

    /// Closes hard: reading stops, queued frames are dropped, the descriptor is closed on the
    /// loop thread. A graceful close after a final answer is the reader returning `.close`.
    func close() {
        let shouldEnd = state.withLock { state -> Bool in
            guard !state.finished else { return false }
            state.queued = []
            state.sentOfFirst = 0
            // Wakes the loop (hang-up) even if it is not watching for anything else.
            UnixSocket.shutdown(fd)
            return true
        }
        if shouldEnd { loop.perform { [self] in endInput() } }
    }

    // MARK: on the loop thread

    func ready(_ events: UInt32) {
        // Output first (writable, or an error/hang-up that makes the next write fail), so a
        // final answer queued before the input ended still goes out.
        state.withLock { state in if !state.queued.isEmpty { flush(&state) } }
        if events & FrameLoop.readableEvents != 0 { readAvailable() }
        let done = state.withLock { $0.inputEnded && $0.queued.isEmpty && !$0.finished }
        if done { finish() }
    }

    /// Reads what the socket has (a bounded amount per turn, so one busy peer cannot starve
    /// the others) and hands each complete frame on.
    private func readAvailable() {
        if state.withLock({ $0.inputEnded }) { return }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        for _ in 0..<16 {
            let result = chunk.withUnsafeMutableBytes { raw in
                Result { () throws(Errno) -> Int in try UnixSocket.read(fd, into: raw) }
            }
            let count: Int
            switch result {
            case .success(let n): count = n
            case .failure(let error):
                if error.code == Errno.EAGAIN { return }
                endInput()
                return
            }
            if count == 0 {
                endInput()
                return
            }
            do {
                var frames: [DecodedFrame] = []
                try decoder.withLock { decoder throws(FrameError) in
                    decoder.append(chunk[0..<count])
                    while let item = try decoder.next() { frames.append(item) }
                }
                for item in frames where onFrame(item) == .close {
                    endInput()
                    return
                }
            } catch {
                onCorrupt(error)
                endInput()
                return
            }
        }
    }

    /// No more reading: what is queued still goes out (a final answer), then the connection
    /// closes.
    private func endInput() {
        let done = state.withLock { state -> Bool in
            if state.finished || state.inputEnded { return false }
            state.inputEnded = true
            if !state.queued.isEmpty, let tag = state.tag {
                // Readable stays set at EOF: watch only for the output to drain.
                state.watchingWritable = true
                loop.watch(fd, tag: tag, readable: false, writable: true)
            }
            return state.queued.isEmpty
        }
        if done { finish() }
    }

    private func finish() {
        let tag = state.withLock { state -> UInt64? in
            if state.finished { return nil }
            state.finished = true
            state.inputEnded = true
            state.queued = []
            return state.tag
        }
        guard let tag else { return }
        loop.unregister(fd, tag: tag)
        UnixSocket.close(fd)
        onClose()
    }

    /// Writes queued frames until the socket is full; watches for writability while anything
    /// is left. A failed write (peer gone) drops the output and ends the connection.
    private func flush(_ state: inout State) {
        while let first = state.queued.first {
            let result = first.withUnsafeBytes { raw in
                UnixSocket.sendSome(fd, UnsafeRawBufferPointer(rebasing: raw[state.sentOfFirst...]))
            }
            switch result {
            case .wrote(let n):
                state.sentOfFirst += n
                if state.sentOfFirst == first.count {
                    state.queued.removeFirst()
                    state.sentOfFirst = 0
                }
            case .wouldBlock:
                if !state.watchingWritable, let tag = state.tag {
                    state.watchingWritable = true
                    loop.watch(fd, tag: tag, readable: !state.inputEnded, writable: true)
                }
                return
            case .failed:
                state.queued = []
                state.sentOfFirst = 0
                // The loop sees the hang-up and ends the connection there.
                UnixSocket.shutdown(fd)
            }
        }
        if state.watchingWritable, let tag = state.tag {
            state.watchingWritable = false
            loop.watch(fd, tag: tag, readable: !state.inputEnded, writable: false)
        }
    }
}
