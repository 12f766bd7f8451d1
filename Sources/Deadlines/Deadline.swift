import LinuxSys
import Synchronization

/// Runs `operation`, returning its result or throwing `onTimeout()` at `deadline`,
/// whichever comes first. At the deadline the operation is cancelled and abandoned: the
/// caller never waits for an operation that ignores cancellation (a wedged runsc call, a
/// peer that never answers). A nil deadline has no timer, but cancelling the caller still
/// ends the wait at once (throwing CancellationError) and cancels the operation.
public func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant?,
    onTimeout: @escaping @Sendable () -> any Error,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.begin(continuation)
            let work = Task {
                do {
                    race.finish(.success(try await operation()))
                } catch {
                    race.finish(.failure(error))
                }
            }
            let timer = deadline.map { deadline in
                Task {
                    try? await Timers.sleep(until: deadline)
                    if !Task.isCancelled { race.finish(.failure(onTimeout())) }
                }
            }
            race.attach([work] + (timer.map { [$0] } ?? []))
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// Waits for `operation` at most `duration`: its result, or nil once the time is up (or the
/// caller is cancelled). The operation is then cancelled and abandoned, as with `withDeadline`.
public func waitAtMost<T: Sendable>(_ duration: Duration, _ operation: @escaping @Sendable () async -> T) async -> T? {
    try? await withDeadline(.now + duration, onTimeout: { CancellationError() }, operation)
}

/// Returns when the first of two operations does; the other goes on unawaited.
public func firstOf(_ first: @escaping @Sendable () async -> Void, _ second: @escaping @Sendable () async -> Void) async {
    let done = Mutex(false)
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let finish: @Sendable () -> Void = {
            let isFirst = done.withLock { done -> Bool in
                defer { done = true }
                return !done
            }
            if isFirst { continuation.resume() }
        }
        Task { await first(); finish() }
        Task { await second(); finish() }
    }
}

/// The first of {result, deadline, cancellation} wins; the losers are cancelled.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var outcome: Result<T, any Error>?
        var tasks: [Task<Void, Never>] = []
        var done = false
    }
    private let state = Mutex(State())

    func begin(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let outcome = state.outcome { return outcome }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func attach(_ tasks: [Task<Void, Never>]) {
        let finished = state.withLock { state -> Bool in
            if state.done { return true }
            state.tasks = tasks
            return false
        }
        if finished {
            for task in tasks { task.cancel() }
        }
    }

    func finish(_ outcome: Result<T, any Error>) {
        let (continuation, tasks) = state.withLock { state -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            guard !state.done else { return (nil, []) }
            state.done = true
            state.outcome = outcome
            let continuation = state.continuation
            state.continuation = nil
            let tasks = state.tasks
            state.tasks = []
            return (continuation, tasks)
        }
        continuation?.resume(with: outcome)
        for task in tasks { task.cancel() }
    }
}
