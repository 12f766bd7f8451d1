import LinuxSys
import Synchronization

/// One ttrpc byte stream, shared by server and client: a reader thread that decodes frames
/// and hands them to `onFrame`, and a writer thread that sends queued frames in order.
///
/// Blocking socket I/O lives only on these two threads. Async code calls `send`, which
/// never blocks, so a peer that stops reading cannot stall Swift's cooperative pool.
/// Descriptor ownership: the writer thread closes the fd, and only after the reader has
/// finished with it (the queue is closed by the reader on its way out).
final class FrameConnection: Sendable {
    /// What the reader does with a frame: keep reading, or close the connection.
    enum Disposition { case keepOpen, close }

    let name: String
    private let fd: Int32
    private let outgoing = BlockingQueue<[UInt8]>()
    private let fdState = Mutex(FDState())
    private let onFrame: @Sendable (DecodedFrame) -> Disposition
    private let onCorrupt: @Sendable (FrameError) -> Void
    private let onClose: @Sendable () -> Void

    private struct FDState {
        var closed = false
    }

    init(
        fd: Int32,
        name: String,
        onFrame: @escaping @Sendable (DecodedFrame) -> Disposition,
        onCorrupt: @escaping @Sendable (FrameError) -> Void,
        onClose: @escaping @Sendable () -> Void
    ) {
        self.fd = fd
        self.name = name
        self.onFrame = onFrame
        self.onCorrupt = onCorrupt
        self.onClose = onClose
    }

    /// Starts the reader and writer threads. On failure the descriptor is closed.
    func start() throws(Errno) {
        do {
            try DetachedThread.spawn(name: "\(name)-w") { [self] in writeLoop() }
        } catch {
            UnixSocket.close(fd)
            throw error
        }
        do {
            try DetachedThread.spawn(name: "\(name)-r") { [self] in readLoop() }
        } catch {
            // The writer owns the fd: closing the queue makes it close the fd and exit.
            outgoing.close()
            onClose()
            throw error
        }
    }

    /// Queues `frame` for sending. Returns false if the connection is closed or the frame is
    /// too large to send.
    @discardableResult
    func send(_ frame: Frame) -> Bool {
        guard let bytes = try? frame.encoded() else { return false }
        return outgoing.push(bytes)
    }

    /// Closes hard: both directions are shut, so the reader wakes and exits, queued frames are
    /// dropped (writes fail), and the writer then closes the descriptor. A graceful close after
    /// a final answer is the reader returning `.close` instead.
    func close() {
        fdState.withLock { state in
            if !state.closed { UnixSocket.shutdown(fd) }
        }
    }

    private func readLoop() {
        var decoder = FrameDecoder()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        reading: while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try UnixSocket.read(fd, into: raw) }
            } catch {
                break
            }
            if count == 0 { break }
            decoder.append(chunk[0..<count])
            do {
                while let item = try decoder.next() {
                    if onFrame(item) == .close { break reading }
                }
            } catch {
                onCorrupt(error)
                break
            }
        }
        outgoing.close()
        onClose()
    }

    private func writeLoop() {
        var failed = false
        while let bytes = outgoing.pop() {
            if failed { continue }
            do {
                try UnixSocket.writeAll(fd, bytes)
            } catch {
                // The peer is gone: wake the reader so the connection winds down, and drop
                // what is still queued.
                failed = true
                fdState.withLock { state in
                    if !state.closed { UnixSocket.shutdown(fd) }
                }
            }
        }
        // The queue closes only after the reader stopped using the descriptor.
        fdState.withLock { state in
            state.closed = true
            UnixSocket.close(fd)
        }
    }
}
