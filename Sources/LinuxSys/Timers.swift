import CLinuxSys
import Glibc
import Synchronization

/// Sleeping for the shim: on the shim's executor (GlobalExecutor) a timer of its own, which a
/// cancellation removes at once, so a deadline that was not needed never fires later (an
/// idle shim does not wake up); anywhere else (tests, the CLI), Task.sleep.
public enum Timers {
    /// Sleeps for `duration`; throws CancellationError, at once, when the task is cancelled.
    public static func sleep(for duration: Duration) async throws {
        guard clinux_executor_installed() != 0 else {
            try await Task.sleep(for: duration)
            return
        }
        let sleeper = Sleeper()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                sleeper.start(continuation, nanoseconds: duration.nanoseconds)
            }
        } onCancel: {
            sleeper.cancel()
        }
    }

    /// Sleeps until `deadline` of the continuous clock.
    public static func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await sleep(for: deadline - .now)
    }
}

extension Duration {
    /// Whole nanoseconds, 0 for a negative duration, Int64.max for one too long to count.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        guard seconds < Int64.max / 1_000_000_000 - 1 else { return Int64.max }  // the executor clamps far timers
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// One sleep: the continuation, the timer, and which of firing and cancelling came first.
private final class Sleeper: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Void, any Error>?
        var timer: UInt64 = 0
        var cancelled = false
        var done = false
    }
    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<Void, any Error>, nanoseconds: Int64) {
        let cancelledFirst = state.withLock { state -> Bool in
            if state.cancelled { state.done = true; return true }
            state.continuation = continuation
            return false
        }
        if cancelledFirst {
            continuation.resume(throwing: CancellationError())
            return
        }
        // The timer holds a reference until it fires or is cancelled.
        let context = Unmanaged.passRetained(self).toOpaque()
        let id = clinux_timer_schedule(nanoseconds, { context in
            let sleeper = Unmanaged<Sleeper>.fromOpaque(context!).takeRetainedValue()
            sleeper.finish(with: nil)
        }, context)
        if id == 0 {
            Unmanaged<Sleeper>.fromOpaque(context).release()
            finish(with: nil)  // cannot happen once installed; never leave the task hanging
            return
        }
        let cancelNow = state.withLock { state -> Bool in
            state.timer = id
            return state.cancelled && !state.done
        }
        if cancelNow { cancel() }
    }

    func cancel() {
        let timer = state.withLock { state -> UInt64 in
            state.cancelled = true
            return state.timer
        }
        guard timer != 0 else { return }  // start() sees `cancelled` and ends it
        if clinux_timer_cancel(timer) != 0 {
            Unmanaged.passUnretained(self).release()  // the timer's reference
            finish(with: CancellationError())
        }
    }

    private func finish(with error: (any Error)?) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard !state.done else { return nil }
            state.done = true
            defer { state.continuation = nil }
            return state.continuation
        }
        if let error { continuation?.resume(throwing: error) } else { continuation?.resume() }
    }
}

/// Wall-clock time, for timestamps containerd shows (exited_at, log lines).
public enum WallClock {
    public static func now() -> (seconds: Int64, nanoseconds: Int32) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return (Int64(spec.tv_sec), Int32(spec.tv_nsec))
    }
}
