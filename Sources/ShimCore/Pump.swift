import LinuxSys
import Synchronization

/// Copies bytes from one descriptor to another on a thread of its own, until end of input
/// or until stopped. Both ends are polled with a short timeout, so `stop()` ends it even when
/// the source never reaches EOF (a process still holds the pipe) or the destination is full
/// (nobody reads the fifo). The pump owns both descriptors and closes them when done;
/// closing the destination is what delivers EOF to containerd's reader.
final class Pump: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let draining = Atomic<Bool>(false)
    private let state = Mutex<State>(State())
    private struct State {
        var finished = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    init(name: String, from source: Int32, to destination: Int32) throws(Errno) {
        try DetachedThread.spawn(name: name) { [self] in
            run(source, destination)
        }
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    func stop() { stopped.store(true, ordering: .relaxed) }

    /// Ends the pump once the source has nothing more to give right now (CloseIO: what the
    /// client wrote before closing still reaches the process).
    func drainThenStop() { draining.store(true, ordering: .relaxed) }

    /// Waits until the pump has finished (EOF or stop), at most `timeout`; then stops it.
    func finish(within timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while !isFinished && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
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

    private func run(_ source: Int32, _ destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 32 * 1024)
        var discarding = false
        reading: while !stopped.load(ordering: .relaxed) {
            let events = Poll.wait(source, events: Poll.readable, timeoutMilliseconds: 100)
            if events == 0 {
                if draining.load(ordering: .relaxed) { break }
                continue
            }
            let result = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(Errno) -> Int in try FileDescriptor.read(source, into: raw) }
            }
            let count: Int
            switch result {
            case .success(let n): count = n
            case .failure(let error):
                if error.code == Errno.EAGAIN { continue }
                break reading  // EIO: the terminal's other side is gone; anything else: nothing more to read.
            }
            if count == 0 { break }
            if discarding { continue }
            var offset = 0
            while offset < count {
                let written = buffer.withUnsafeBytes { raw in
                    FileDescriptor.writeSome(destination, UnsafeRawBufferPointer(rebasing: raw[offset..<count]))
                }
                switch written {
                case .wrote(let n):
                    offset += n
                case .wouldBlock:
                    if stopped.load(ordering: .relaxed) { break reading }
                    _ = Poll.wait(destination, events: Poll.writable, timeoutMilliseconds: 100)
                case .failed:
                    // The reader went away (EPIPE): keep draining the source so the
                    // container never blocks on a full pipe.
                    discarding = true
                    offset = count
                }
            }
        }
        FileDescriptor.close(source)
        FileDescriptor.close(destination)
        let waiters = state.withLock { state in
            state.finished = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }
}
